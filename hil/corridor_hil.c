// Hardware-in-the-loop bench for the corridor board firmware: runs the real firmware ELF on a simulated
// AVR (libsimavr) at 16 MHz, exposes its UART0 on a pty (libsimavrparts' uart_pty), drives input pins
// from a scripted ground truth at exact CPU cycles, and records every output pin transition with its
// cycle. The Python tests (tests/firmware/) and benchmarks/bench_board_hil.py write the script, let the
// project's own driver / `rig check` / `rig run` talk to the pty, and compare what the host logged with
// the ground truth this program writes.
//
//   corridor_hil --mcu atmega2560 --elf corridor_board.elf --script in.txt --out truth.txt
//                [--link PATH] [--speed 1.0] [--max-seconds S]
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
//   uart_tx BYTES / uart_rx BYTES / end C WALL_S LAG_MAX_S
// stdout: `pty PATH` once the UART is up, `trigger C`, `out NAME LEVEL C` for live outputs, `end ...`.
// --speed caps simulated time at that multiple of wall time (1.0: real time, like a real board; 0: as
// fast as the host allows); the end line reports the largest lag of simulated behind wall time.

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
#include "uart_pty.h"

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

static pin_t pins[MAX_PINS];
static int npins = 0;
static change_t *script = NULL;
static size_t nscript = 0, script_cap = 0, script_next = 0;
static record_t *records = NULL;
static size_t nrecords = 0, records_cap = 0;
static int trigger_on_rx = 1;
static uint64_t trigger_delay = 0, end_cycle = 0;
static int64_t trigger_cycle = -1;
static uint64_t uart_tx = 0, uart_rx = 0;
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
  (void)irq, (void)value, (void)param;
  ++uart_tx;
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

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

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
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) die("missing a value after %s", a);
    if (!strcmp(a, "--mcu")) mcu = v;
    else if (!strcmp(a, "--elf")) elf = v;
    else if (!strcmp(a, "--script")) script_path = v;
    else if (!strcmp(a, "--out")) out_path = v;
    else if (!strcmp(a, "--link")) link = v;
    else if (!strcmp(a, "--speed")) speed = atof(v);
    else if (!strcmp(a, "--max-seconds")) max_seconds = atof(v);
    else die("unknown option %s (see the comment at the top of hil/corridor_hil.c)", a);
    ++i;
  }
  if (!elf || !script_path || !out_path) die("%s", "usage: corridor_hil --elf FW.elf --script IN --out TRUTH [...]");
  load_script(script_path);

  elf_firmware_t fw;
  memset(&fw, 0, sizeof fw);
  if (elf_read_firmware(elf, &fw) != 0) die("cannot load the firmware %s", elf);
  avr = avr_make_mcu_by_name(mcu);
  if (!avr) die("simavr does not know the MCU %s", mcu);
  avr_init(avr);
  avr_load_firmware(avr, &fw);
  avr->frequency = 16000000;
  avr->log = LOG_ERROR;

  // The UART on a pty. uart_pty also points /tmp/simavr-uart0 at it; we use our own --link instead.
  static uart_pty_t pty;
  uart_pty_init(avr, &pty);
  uart_pty_connect(&pty, '0');
  unlink("/tmp/simavr-uart0");
  // No usleep() when the firmware polls UCSR0A: it would slow simulated time, not model anything.
  uint32_t flags = 0;
  avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
  flags &= ~(uint32_t)AVR_UART_FLAG_POLL_SLEEP;
  avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
  avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), on_uart_out, NULL);
  avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT), on_uart_in, NULL);
  if (link) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", link, (int)getpid());
    unlink(tmp);
    if (symlink(pty.pty.slavename, tmp) != 0 || rename(tmp, link) != 0) die("cannot create the link %s", link);
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
  printf("pty %s\n", pty.pty.slavename);
  fflush(stdout);

  int64_t timer0_start = -1;
  double wall0 = now_s(), lag_max = 0;
  uint64_t next_check = 0;
  const uint64_t check_every = 4000;  // 250 us of simulated time
  int state = cpu_Running;
  while (!stop_flag && state != cpu_Done && state != cpu_Crashed) {
    state = avr_run(avr);
    uint64_t c = avr->cycle;
    if (timer0_start < 0 && avr->data[TCCR0B_ADDR]) timer0_start = (int64_t)c;
    if (c >= next_check) {
      next_check = c + check_every;
      if (end_cycle && trigger_cycle >= 0 && c >= (uint64_t)trigger_cycle + end_cycle) break;
      double sim = (double)c / avr->frequency, wall = now_s() - wall0;
      if (max_seconds > 0 && sim >= max_seconds) break;
      if (wall - sim > lag_max) lag_max = wall - sim;
      if (speed > 0 && sim / speed > wall + 0.001) {
        double ahead = sim / speed - wall;
        struct timespec ts = {(time_t)ahead, (long)((ahead - (time_t)ahead) * 1e9)};
        nanosleep(&ts, NULL);
      }
      if ((c / check_every) % 64 == 0) poll_stdin();
    }
  }
  double wall = now_s() - wall0;

  FILE *out = fopen(out_path, "w");
  if (!out) die("cannot write %s", out_path);
  fprintf(out, "freq %" PRIu32 "\nmcu %s\ntimer0_start %" PRId64 "\ntrigger %" PRId64 "\n", avr->frequency, mcu,
          timer0_start, trigger_cycle);
  for (size_t i = 0; i < nrecords; ++i) {
    record_t *r = &records[i];
    fprintf(out, "%s %s %d %" PRIu64 "\n", r->is_output ? "out" : "in", pins[r->pin].name, r->level, r->cycle);
  }
  fprintf(out, "uart_tx %" PRIu64 "\nuart_rx %" PRIu64 "\nscript_left %zu\n", uart_tx, uart_rx, nscript - script_next);
  fprintf(out, "end %" PRIu64 " %.3f %.3f\n", avr->cycle, wall, lag_max);
  fclose(out);
  printf("end %" PRIu64 " %.3f %.3f state %d\n", avr->cycle, wall, lag_max, state);
  fflush(stdout);
  if (link) unlink(link);
  // Not uart_pty_stop(): its thread join can hang; exiting closes the pty.
  return state == cpu_Crashed ? 3 : 0;
}
