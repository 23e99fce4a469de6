// Host implementation of Arduino.h: runs setup() then loop() forever, simulating input pins.
//   SHIM_START_US=N        micros() at start (e.g. 4294900000 to cross the 32-bit wrap soon)
//   SHIM_QUAD=A,B,RATE,N   N quadrature steps at RATE per second (negative: backwards) on pins A, B
//   SHIM_TOGGLE=PIN,RATE,N N rising edges at RATE per second on PIN (falling edges half a period later)
// The simulated inputs start 200 ms after the first byte arrives from the host, so they all come
// after the host's handshake.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "Arduino.h"

void setup();
void loop();

HardwareSerial Serial;

namespace {
const int NPINS = 64;
uint8_t levels[NPINS];
void (*handlers[NPINS])() = {nullptr};
int modes[NPINS];
uint64_t t0_ns = 0, start_us = 0;
int quad_a = -1, quad_b = -1, toggle_pin = -1;
double quad_rate = 0, toggle_rate = 0;
long quad_steps = 0, toggle_edges = 0, quad_max = 0, toggle_max = 0;
uint64_t sim_start_us = 0;
bool sim_started = false;
volatile sig_atomic_t stop = 0;
unsigned long rng = 1;

uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t now_us() { return start_us + (mono_ns() - t0_ns) / 1000; }

void set_pin(int pin, uint8_t level) {
  uint8_t old = levels[pin];
  levels[pin] = level;
  if (old == level || !handlers[pin]) return;
  int m = modes[pin];
  if (m == CHANGE || (m == RISING && level) || (m == FALLING && !level)) handlers[pin]();
}

void simulate(uint64_t elapsed_us) {
  static const uint8_t GRAY[4] = {0, 2, 3, 1};  // AB sequence for forward motion: A leads B
  if (quad_a >= 0 && quad_rate != 0) {
    long want = (long)(quad_rate * (double)elapsed_us / 1e6);
    if (want > quad_max) want = quad_max;
    if (want < -quad_max) want = -quad_max;
    while (quad_steps != want) {
      quad_steps += want > quad_steps ? 1 : -1;
      uint8_t ab = GRAY[((quad_steps % 4) + 4) % 4];
      set_pin(quad_a, (ab >> 1) & 1);
      set_pin(quad_b, ab & 1);
    }
  }
  if (toggle_pin >= 0 && toggle_rate > 0) {
    long halves = (long)(2.0 * toggle_rate * (double)elapsed_us / 1e6);
    if (halves > 2 * toggle_max) halves = 2 * toggle_max;
    while (toggle_edges < halves) {
      ++toggle_edges;
      set_pin(toggle_pin, toggle_edges % 2 ? HIGH : LOW);
    }
  }
}

void on_term(int) { stop = 1; }
}  // namespace

uint32_t micros() { return (uint32_t)now_us(); }
uint32_t millis() { return (uint32_t)(now_us() / 1000); }
void pinMode(uint8_t, uint8_t) {}
void digitalWrite(uint8_t pin, uint8_t value) { levels[pin % NPINS] = value ? 1 : 0; }
int digitalRead(uint8_t pin) { return levels[pin % NPINS]; }
int analogRead(uint8_t) { return (int)(mono_ns() & 1023); }
int digitalPinToInterrupt(uint8_t pin) { return pin; }
void attachInterrupt(int irq, void (*handler)(), int mode) {
  handlers[irq % NPINS] = handler;
  modes[irq % NPINS] = mode;
}
void noInterrupts() {}  // single-threaded: "interrupts" run between loop() calls or inside set_pin
void interrupts() {}
void tone(uint8_t, unsigned int, unsigned long) {}
void noTone(uint8_t) {}
void randomSeed(unsigned long seed) { rng = seed ? seed : 1; }
long random(long max) { return random(0, max); }
long random(long lo, long hi) {
  rng = rng * 1103515245ul + 12345ul;
  return hi > lo ? lo + (long)((rng >> 8) % (unsigned long)(hi - lo)) : lo;
}

namespace {
uint8_t rx_buf[4096];
size_t rx_head = 0, rx_n = 0;
}  // namespace

void HardwareSerial::begin(unsigned long) { fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK); }

int HardwareSerial::available() {
  if (rx_head == rx_n) {
    // EIO while no host has the pty open, EAGAIN when idle: both mean "nothing yet".
    ssize_t n = ::read(0, rx_buf, sizeof(rx_buf));
    rx_head = 0;
    rx_n = n > 0 ? (size_t)n : 0;
    if (rx_n && !sim_started) {
      sim_started = true;
      sim_start_us = now_us() + 200000;
    }
  }
  return (int)(rx_n - rx_head);
}

int HardwareSerial::read() { return available() > 0 ? rx_buf[rx_head++] : -1; }

size_t HardwareSerial::write(const uint8_t* data, size_t n) {
  size_t done = 0;
  while (done < n && !stop) {
    ssize_t w = ::write(1, data + done, n - done);
    if (w > 0) {
      done += (size_t)w;
    } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
      return done;
    } else {
      usleep(200);
    }
  }
  return done;
}

int HardwareSerial::availableForWrite() { return 4096; }

int main() {
  signal(SIGTERM, on_term);
  t0_ns = mono_ns();
  if (const char* s = getenv("SHIM_START_US")) start_us = strtoull(s, nullptr, 10);
  if (const char* s = getenv("SHIM_QUAD")) sscanf(s, "%d,%d,%lf,%ld", &quad_a, &quad_b, &quad_rate, &quad_max);
  if (const char* s = getenv("SHIM_TOGGLE")) sscanf(s, "%d,%lf,%ld", &toggle_pin, &toggle_rate, &toggle_max);
  setup();
  while (!stop) {
    if (sim_started && now_us() >= sim_start_us) simulate(now_us() - sim_start_us);
    loop();
    usleep(100);
  }
  return 0;
}
