// Hardware-in-the-loop bench for the corridor board firmware: runs the real firmware ELF on a simulated
// AVR (libsimavr) at 16 MHz, exposes its UART0 on a pty, drives input pins from a scripted ground truth
// at exact CPU cycles, and records every output pin transition with its cycle.
//
// The pty bridge is our own rather than libsimavrparts' uart_pty: uart_pty moves bytes through a
// 512-byte FIFO that the simulation thread writes without checking for room and a second thread drains;
// when that thread is starved of CPU (a loaded test machine) the FIFO wraps and bytes vanish, which would
// be blamed on the firmware. Here one thread does everything: bytes from the UART go to a 16 KiB ring and
// on to the pty master when it takes them; bytes from the host are fed to the UART as its receive FIFO
// has room (its XON/XOFF signals), at the UART's own baud rate. Bytes the host is not reading are dropped
// once the ring is full (counted), as a USB-serial bridge drops them. The Python tests (tests/firmware/) and benchmarks/bench_board_hil.py write the script, let the
// project's own driver / `rig check` / `rig run` talk to the pty, and compare what the host logged with
// the ground truth this program writes.
//
//   corridor_hil --mcu atmega2560 --elf corridor_board.elf --script in.txt --out truth.txt
//                [--link PATH] [--speed 1.0] [--max-seconds S] [--realtime]
//
// Script (text, one directive a line, '#' comments):
//   input NAME PORT BIT LEVEL     an input pin (e.g. `input enc_a E 4 1`) and its level at power-up
//   output NAME PORT BIT [live]   an output pin to record; `live`: also print its edges on stdout
//   trigger rx DELAY_CYCLES       script time 0 = the first byte from the host + DELAY (default)
//   trigger boot DELAY_CYCLES     script time 0 = power-up + DELAY
//   at CYCLE NAME LEVEL           drive NAME to LEVEL at script time CYCLE (ascending CYCLE)
//   end CYCLE                     stop at script time CYCLE (else run until SIGTERM, `quit` on stdin,
//                                 or --max-seconds of simulated time)
// Output file (--out, written when the run ends):
//   freq F / mcu NAME / timer0_start C (cycle at which Timer0 started: micros() = (c - C) / 16)
//   trigger C (absolute cycle of script time 0, or -1) / in NAME LEVEL C / out NAME LEVEL C /
//   wall C MONO_NS (every ms: when the simulation reached cycle C on the host's CLOCK_MONOTONIC) /
//   uart_tx BYTES / uart_rx BYTES / uart_dropped BYTES / end C WALL_S LAG_MAX_S
// stdout: `pty PATH` once the UART is up, `trigger C`, `out NAME LEVEL C` for live outputs, `end ...`.
// --speed caps simulated time at that multiple of wall time (1.0: real time, like a real board; 0: as
// fast as the host allows); the end line reports the largest lag of simulated behind wall time.
// --realtime asks for SCHED_RR (else a lower nice value) so that a busy machine does not hold the
// simulated board back: a real board's clock never stalls. It sleeps whenever it is ahead, so it takes
// only the CPU the simulation needs (about a quarter of a core at 1 kHz encoder traffic).

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "avr_extint.h"
#include "avr_ioport.h"
#include "avr_uart.h"
#include "sim_avr.h"
#include "sim_cycle_timers.h"
#include "sim_elf.h"
#include "sim_irq.h"
#include <pty.h>
#include <sched.h>
#include <sys/resource.h>
#include <termios.h>

#define MAX_PINS 16
#define TCCR0B_ADDR 0x45  // data-space address of TCCR0B on both the ATmega2560 and ATmega328P

typedef struct {
  char name[16];
  char port;
  int bit;
  int is_output, live;
  int level;
  avr_irq_t *irq;
} pin_t;

typedef struct {
  uint64_t cycle;
  uint8_t pin, level;
} change_t;

typedef struct {
  uint64_t cycle;
  uint8_t pin, level, is_output;
} record_t;

typedef struct {
  uint64_t cycle;
  int64_t mono_ns;
} wall_t;

static pin_t pins[MAX_PINS];
static int npins = 0;
static change_t *script = NULL;
static size_t nscript = 0, script_cap = 0, script_next = 0;
static record_t *records = NULL;
static size_t nrecords = 0, records_cap = 0;
static wall_t *walls = NULL;
static size_t nwalls = 0, walls_cap = 0;
static int trigger_on_rx = 1;
static uint64_t trigger_delay = 0, end_cycle = 0;
static int64_t trigger_cycle = -1;
static uint64_t uart_tx = 0, uart_rx = 0, uart_dropped = 0;

// ---- the pty bridge ----------------------------------------------------------------------------------
#define RING 16384
static uint8_t ring[RING];
static size_t ring_head = 0, ring_len = 0;
static int pty_master = -1, pty_slave = -1;
static char pty_name[256];
static uint8_t host_buf[4096];
static size_t host_len = 0, host_pos = 0;
static int uart_xon = 1;
static avr_irq_t *uart_input = NULL;
static avr_t *avr = NULL;
static volatile sig_atomic_t stop_flag = 0;

static void die(const char *fmt, const char *arg) {
  fprintf(stderr, "corridor_hil: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n");
  exit(2);
}

static void record(int pin, int level, int is_output) {
  if (nrecords == records_cap) {
    records_cap = records_cap ? records_cap * 2 : 65536;
    records = realloc(records, records_cap * sizeof(record_t));
    if (!records) die("%s", "out of memory");
  }
  records[nrecords++] = (record_t){avr->cycle, (uint8_t)pin, (uint8_t)level, (uint8_t)is_output};
}

static int find_pin(const char *name) {
  for (int i = 0; i < npins; ++i)
    if (!strcmp(pins[i].name, name)) return i;
  return -1;
}

static void load_script(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) die("cannot read the script %s", path);
  char line[256];
  int lineno = 0;
  while (fgets(line, sizeof line, f)) {
    ++lineno;
    char word[16], name[16], port;
    unsigned long long cycle;
    int bit, level;
    char extra[16] = "";
    if (line[0] == '#' || line[0] == '\n') continue;
    if (sscanf(line, "at %llu %15s %d", &cycle, name, &level) == 3) {
      int p = find_pin(name);
      if (p < 0 || pins[p].is_output) die("script: `at` names an unknown input: %s", line);
      if (nscript && cycle < script[nscript - 1].cycle) die("script: `at` lines must be in time order: %s", line);
      if (nscript == script_cap) {
        script_cap = script_cap ? script_cap * 2 : 65536;
        script = realloc(script, script_cap * sizeof(change_t));
        if (!script) die("%s", "out of memory");
      }
      script[nscript++] = (change_t){cycle, (uint8_t)p, (uint8_t)(level != 0)};
    } else if (sscanf(line, "input %15s %c %d %d", name, &port, &bit, &level) == 4 ||
               sscanf(line, "output %15s %c %d %15s", name, &port, &bit, extra) >= 3) {
      if (npins == MAX_PINS) die("script: too many pins: %s", line);
      pin_t *p = &pins[npins++];
      snprintf(p->name, sizeof p->name, "%s", name);
      p->port = port;
      p->bit = bit;
      p->is_output = line[0] == 'o';
      p->live = !strcmp(extra, "live");
      p->level = p->is_output ? -1 : (level != 0);
      if (bit < 0 || bit > 7 || port < 'A' || port > 'L') die("script: bad port or bit: %s", line);
    } else if (sscanf(line, "trigger %15s %llu", word, &cycle) == 2) {
      if (!strcmp(word, "rx")) trigger_on_rx = 1;
      else if (!strcmp(word, "boot")) trigger_on_rx = 0;
      else die("script: trigger must be rx or boot: %s", line);
      trigger_delay = cycle;
    } else if (sscanf(line, "end %llu", &cycle) == 1) {
      end_cycle = cycle;
    } else {
      fprintf(stderr, "corridor_hil: %s:%d: ", path, lineno);
      die("cannot parse: %s", line);
    }
  }
  fclose(f);
}

// Output pins: every change the firmware makes (PORT writes, the timer's compare output).
static void on_output(avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq;
  int i = (int)(intptr_t)param;
  int level = value & 1;
  if (pins[i].level == level) return;
  pins[i].level = level;
  record(i, level, 1);
  if (pins[i].live) {
    printf("out %s %d %" PRIu64 "\n", pins[i].name, level, avr->cycle);
    fflush(stdout);
  }
}

static void on_uart_out(avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq, (void)param;
  ++uart_tx;
  if (ring_len == RING) {
    ++uart_dropped;  // the host has not been reading for a long while
    return;
  }
  ring[(ring_head + ring_len++) % RING] = (uint8_t)value;
}

static void on_xon(avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq, (void)value, (void)param;
  uart_xon = 1;
}

static void on_xoff(avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq, (void)value, (void)param;
  uart_xon = 0;
}

// Moves bytes both ways; called every 250 us of simulated time.
static void pump_pty(void) {
  while (ring_len) {
    size_t chunk = ring_len < RING - ring_head ? ring_len : RING - ring_head;
    ssize_t n = write(pty_master, ring + ring_head, chunk);
    if (n <= 0) break;  // EAGAIN: the pty is full (nobody reads); keep the bytes for now
    ring_head = (ring_head + (size_t)n) % RING;
    ring_len -= (size_t)n;
  }
  if (host_pos == host_len) {
    ssize_t n = read(pty_master, host_buf, sizeof host_buf);
    host_pos = 0;
    host_len = n > 0 ? (size_t)n : 0;
  }
  // The UART takes a byte per frame time and says XOFF when its receive FIFO is full.
  while (uart_xon && host_pos < host_len) avr_raise_irq(uart_input, host_buf[host_pos++]);
}

static void drive(int i, int level) {
  pins[i].level = level;
  avr_raise_irq(pins[i].irq, (uint32_t)level);
  record(i, level, 0);
}

// The script runs on simavr cycle timers, so a sleeping CPU is woken at the exact cycle of each change
// (the main loop alone would only see it after the sleep's fast-forward).
static avr_cycle_count_t on_script(avr_t *a, avr_cycle_count_t when, void *param) {
  (void)a, (void)param, (void)when;
  uint64_t base = (uint64_t)trigger_cycle;
  while (script_next < nscript && base + script[script_next].cycle <= avr->cycle) {
    change_t *ch = &script[script_next++];
    if (pins[ch->pin].level != ch->level) drive(ch->pin, ch->level);
  }
  return script_next < nscript ? base + script[script_next].cycle : 0;
}

static avr_cycle_count_t on_trigger(avr_t *a, avr_cycle_count_t when, void *param) {
  (void)a, (void)param;
  printf("trigger %" PRId64 "\n", trigger_cycle);
  fflush(stdout);
  if (nscript) avr_cycle_timer_register(avr, script[0].cycle ? script[0].cycle : 1, on_script, NULL);
  return 0 * when;
}

static void set_trigger(uint64_t at) {
  trigger_cycle = (int64_t)at;
  avr_cycle_timer_register(avr, at > avr->cycle ? at - avr->cycle : 1, on_trigger, NULL);
}

static void on_uart_in(avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq, (void)value, (void)param;
  if (uart_rx++ == 0 && trigger_on_rx && trigger_cycle < 0) set_trigger(avr->cycle + trigger_delay);
}

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double now_s(void) { return (double)mono_ns() / 1e9; }

// When (on the host's monotonic clock, which Python's time.perf_counter reads) the simulation reached a
// cycle: the true host time of everything the firmware did then.
static void record_wall(uint64_t cycle) {
  if (nwalls == walls_cap) {
    walls_cap = walls_cap ? walls_cap * 2 : 65536;
    walls = realloc(walls, walls_cap * sizeof(wall_t));
    if (!walls) die("%s", "out of memory");
  }
  walls[nwalls++] = (wall_t){cycle, mono_ns()};
}

// simavr's own sleep callback usleep()s for every simulated sleep, so a simulation that fell behind wall
// time (a loaded machine) could never catch up; the main loop paces simulated time itself instead.
static void no_sleep(avr_t *a, avr_cycle_count_t how_long) { (void)a, (void)how_long; }

static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static void poll_stdin(void) {
  char buf[64];
  ssize_t n = read(0, buf, sizeof buf - 1);
  if (n <= 0) return;
  buf[n] = 0;
  if (strstr(buf, "quit")) stop_flag = 1;
}

int main(int argc, char **argv) {
  const char *mcu = "atmega2560", *elf = NULL, *script_path = NULL, *out_path = NULL, *link = NULL;
  double speed = 1.0, max_seconds = 0;
  int realtime = 0;
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v && strcmp(a, "--realtime")) die("missing a value after %s", a);
    if (!strcmp(a, "--mcu")) mcu = v;
    else if (!strcmp(a, "--elf")) elf = v;
    else if (!strcmp(a, "--script")) script_path = v;
    else if (!strcmp(a, "--out")) out_path = v;
    else if (!strcmp(a, "--link")) link = v;
    else if (!strcmp(a, "--speed")) speed = atof(v);
    else if (!strcmp(a, "--max-seconds")) max_seconds = atof(v);
    else if (!strcmp(a, "--realtime")) {
      realtime = 1;
      continue;  // takes no value
    }
    else die("unknown option %s (see the comment at the top of hil/corridor_hil.c)", a);
    ++i;
  }
  if (!elf || !script_path || !out_path) die("%s", "usage: corridor_hil --elf FW.elf --script IN --out TRUTH [...]");
  load_script(script_path);
  const char *sched = "normal";
  if (realtime) {
    struct sched_param sp = {.sched_priority = 1};
    if (sched_setscheduler(0, SCHED_RR, &sp) == 0) sched = "rr";
    else if (setpriority(PRIO_PROCESS, 0, -10) == 0) sched = "nice-10";
  }

  elf_firmware_t fw;
  memset(&fw, 0, sizeof fw);
  if (elf_read_firmware(elf, &fw) != 0) die("cannot load the firmware %s", elf);
  avr = avr_make_mcu_by_name(mcu);
  if (!avr) die("simavr does not know the MCU %s", mcu);
  avr_init(avr);
  avr_load_firmware(avr, &fw);
  avr->frequency = 16000000;
  avr->log = LOG_ERROR;
  avr->sleep = no_sleep;

  // UART0 on a pty (raw: no echo, no line discipline). The slave stays open here too, so the pty lives
  // while hosts come and go, like a USB-serial port that stays plugged in.
  struct termios tio;
  if (openpty(&pty_master, &pty_slave, pty_name, NULL, NULL) != 0) die("cannot create a pty: %s", strerror(errno));
  tcgetattr(pty_slave, &tio);
  cfmakeraw(&tio);
  tcsetattr(pty_slave, TCSANOW, &tio);
  fcntl(pty_master, F_SETFL, fcntl(pty_master, F_GETFL) | O_NONBLOCK);
  // No stdio dump of the UART, no usleep() when the firmware polls UCSR0A: neither models anything.
  uint32_t flags = 0;
  avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
  flags &= ~(uint32_t)(AVR_UART_FLAG_POLL_SLEEP | AVR_UART_FLAG_STDIO);
  avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
  uart_input = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
  avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), on_uart_out, NULL);
  avr_irq_register_notify(uart_input, on_uart_in, NULL);
  avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XON), on_xon, NULL);
  avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XOFF), on_xoff, NULL);
  if (link) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", link, (int)getpid());
    unlink(tmp);
    if (symlink(pty_name, tmp) != 0 || rename(tmp, link) != 0) die("cannot create the link %s", link);
  }

  // The firmware never uses low-level interrupts; simavr 1.6 keeps polling a pin that was low while
  // EICR still said "low level" (its reset value) and ignores the later edge setting: turn that off.
  for (int n = 0; n < 8; ++n) avr_extint_set_strict_lvl_trig(avr, (uint8_t)n, 0);
  for (int i = 0; i < npins; ++i) {
    pins[i].irq = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(pins[i].port), pins[i].bit);
    if (!pins[i].irq) die("this MCU has no such pin: %s", pins[i].name);
    if (pins[i].is_output) {
      avr_irq_register_notify(pins[i].irq, on_output, (void *)(intptr_t)i);
    } else {
      drive(i, pins[i].level);  // the level at power-up
    }
  }
  if (!trigger_on_rx) set_trigger(trigger_delay);

  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGPIPE, SIG_IGN);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  printf("pty %s\nscheduling %s\n", pty_name, sched);
  fflush(stdout);

  int64_t timer0_start = -1;
  double wall0 = now_s(), lag_max = 0;
  uint64_t next_check = 0, checks = 0;
  const uint64_t check_every = 4000;  // 250 us of simulated time
  int state = cpu_Running;
  while (!stop_flag && state != cpu_Done && state != cpu_Crashed) {
    state = avr_run(avr);
    uint64_t c = avr->cycle;
    if (timer0_start < 0 && avr->data[TCCR0B_ADDR]) timer0_start = (int64_t)c;
    if (c >= next_check) {
      next_check = c + check_every;
      pump_pty();
      if (end_cycle && trigger_cycle >= 0 && c >= (uint64_t)trigger_cycle + end_cycle) break;
      double sim = (double)c / avr->frequency, wall = now_s() - wall0;
      if (max_seconds > 0 && sim >= max_seconds) break;
      if (wall - sim > lag_max) lag_max = wall - sim;
      if (speed > 0 && sim / speed > wall + 0.00025) {
        double ahead = sim / speed - wall;
        struct timespec ts = {(time_t)ahead, (long)((ahead - (time_t)ahead) * 1e9)};
        nanosleep(&ts, NULL);
      }
      ++checks;
      if (checks % 4 == 0) record_wall(c);  // after any pacing sleep: when the simulation moves on from c
      if (checks % 64 == 0) poll_stdin();
    }
  }
  double wall = now_s() - wall0;

  FILE *out = fopen(out_path, "w");
  if (!out) die("cannot write %s", out_path);
  fprintf(out, "scheduling %s\n", sched);
  fprintf(out, "freq %" PRIu32 "\nmcu %s\ntimer0_start %" PRId64 "\ntrigger %" PRId64 "\n", avr->frequency, mcu,
          timer0_start, trigger_cycle);
  for (size_t i = 0; i < nrecords; ++i) {
    record_t *r = &records[i];
    fprintf(out, "%s %s %d %" PRIu64 "\n", r->is_output ? "out" : "in", pins[r->pin].name, r->level, r->cycle);
  }
  for (size_t i = 0; i < nwalls; ++i) fprintf(out, "wall %" PRIu64 " %" PRId64 "\n", walls[i].cycle, walls[i].mono_ns);
  fprintf(out, "uart_tx %" PRIu64 "\nuart_rx %" PRIu64 "\nuart_dropped %" PRIu64 "\nscript_left %zu\n", uart_tx,
          uart_rx, uart_dropped, nscript - script_next);
  fprintf(out, "end %" PRIu64 " %.3f %.3f\n", avr->cycle, wall, lag_max);
  fclose(out);
  printf("end %" PRIu64 " %.3f %.3f state %d\n", avr->cycle, wall, lag_max, state);
  fflush(stdout);
  if (link) unlink(link);
  return state == cpu_Crashed ? 3 : 0;
}
