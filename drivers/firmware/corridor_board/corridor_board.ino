// Corridor rig board firmware (Teensy 3.x/4.x, Arduino Due/Zero/Mega): speaks docs/serial-protocol.md.
//
// Inputs are timestamped with micros() in their interrupt handlers and queued in a ring buffer; the
// loop turns them into packets, times the valve, tone and sync outputs, and sends heartbeats. The valve
// is never left open longer than max_open_ms (itself capped at HARD_MAX_OPEN_MS): the limit lives here,
// not only in the host software. Nothing in the loop blocks: when the USB/serial buffer is full a packet
// is dropped and counted (reported in the next heartbeat) rather than stalling the valve timing.
//
// 1 kHz encoder packets need a native-USB board (Teensy, Due native port, SAMD) or >= 500000 baud.

#include <Arduino.h>

#include "corridor_protocol.h"

// ---- board configuration ------------------------------------------------------------------------
#ifndef PIN_ENC_A
#define PIN_ENC_A 2
#endif
#ifndef PIN_ENC_B
#define PIN_ENC_B 3
#endif
#ifndef PIN_LICK
#define PIN_LICK 4
#endif
#ifndef PIN_FRAME
#define PIN_FRAME 5
#endif
#ifndef PIN_VALVE
#define PIN_VALVE 6
#endif
#ifndef PIN_CUE
#define PIN_CUE 7
#endif
#ifndef PIN_SYNC
#define PIN_SYNC 8
#endif
#ifndef BOARD_ID
#define BOARD_ID 0x00000001UL
#endif
#ifndef SERIAL_BAUD
#define SERIAL_BAUD 115200
#endif

const uint8_t FW_MAJOR = 1, FW_MINOR = 0, FW_PATCH = 0;
const uint16_t HARD_MAX_OPEN_MS = 5000;  // no command can keep the valve open longer
const uint16_t DEFAULT_MAX_OPEN_MS = 1000;
const uint32_t LICK_DEBOUNCE_US = 500;

// ---- events from interrupt handlers --------------------------------------------------------------
struct Event {
  uint8_t type;  // cp::LICK or cp::FRAME
  uint8_t arg;   // lick: 1 onset / 0 offset
  uint32_t t_us;
  uint32_t count;
};

const uint8_t RING_SIZE = 64;  // power of two
volatile Event ring[RING_SIZE];
volatile uint8_t ring_head = 0, ring_tail = 0;
volatile uint16_t ring_dropped = 0;

volatile int32_t enc_total = 0;
volatile uint8_t enc_state = 0;
volatile uint32_t lick_count = 0, frame_count = 0;
volatile uint8_t lick_level = 0;
volatile uint32_t lick_last_us = 0;

static void push_event(uint8_t type, uint8_t arg, uint32_t t_us, uint32_t count) {
  uint8_t next = (uint8_t)((ring_head + 1) & (RING_SIZE - 1));
  if (next == ring_tail) {
    ++ring_dropped;
    return;
  }
  ring[ring_head].type = type;
  ring[ring_head].arg = arg;
  ring[ring_head].t_us = t_us;
  ring[ring_head].count = count;
  ring_head = next;
}

// X4 quadrature decoding: index = previous AB << 2 | new AB; A leading B counts up (forward).
static const int8_t QUAD_STEP[16] = {0, -1, 1, 0, 1, 0, 0, -1, -1, 0, 0, 1, 0, 1, -1, 0};

static void on_encoder() {
  uint8_t ab = (uint8_t)((digitalRead(PIN_ENC_A) << 1) | digitalRead(PIN_ENC_B));
  enc_total += QUAD_STEP[(enc_state << 2) | ab];
  enc_state = ab;
}

static void on_lick() {
  uint32_t t = micros();
  uint8_t level = (uint8_t)digitalRead(PIN_LICK);
  if (level == lick_level || (uint32_t)(t - lick_last_us) < LICK_DEBOUNCE_US) return;
  lick_level = level;
  lick_last_us = t;
  push_event(cp::LICK, level, t, ++lick_count);
}

static void on_frame() { push_event(cp::FRAME, 0, micros(), ++frame_count); }

// ---- loop state ------------------------------------------------------------------------------------
uint16_t tx_seq = 0;
uint16_t tx_dropped = 0, rx_errors = 0;
uint16_t boot_id = 0;
uint16_t rollovers = 0;
uint32_t last_micros = 0;

uint16_t max_open_ms = DEFAULT_MAX_OPEN_MS;
uint32_t encoder_period_us = 1000;
uint32_t heartbeat_us = 100000;
uint32_t next_encoder_us = 0, next_heartbeat_us = 0;
int32_t enc_sent = 0;
uint32_t lick_sent = 0, frame_sent = 0;

bool valve_open = false, valve_pulse = false;
uint32_t valve_close_at = 0;

uint32_t sync_count = 0;
bool sync_high = false;
uint32_t sync_low_at = 0;
uint16_t sync_min_ms = 0, sync_max_ms = 0, sync_width_ms = 10;
uint32_t next_sync_at = 0;

uint8_t rx_frame[cp::MAX_WIRE];
size_t rx_len = 0;
bool rx_overflow = false;

static bool due(uint32_t now, uint32_t at) { return (int32_t)(now - at) >= 0; }  // wrap-safe

static void send(cp::Packet& p) {
  uint8_t wire[cp::MAX_WIRE];
  size_t n = p.finish(wire);
  if ((size_t)Serial.availableForWrite() < n) {
    ++tx_dropped;  // never block: the valve timing matters more than one packet
    return;
  }
  Serial.write(wire, n);
  ++tx_seq;
}

static void send_hello(uint8_t cause, uint32_t now) {
  cp::Packet p(cp::HELLO, tx_seq, now);
  p.u8(cp::PROTOCOL_VERSION);
  p.u8(FW_MAJOR);
  p.u8(FW_MINOR);
  p.u8(FW_PATCH);
  p.u32(BOARD_ID);
  p.u16(max_open_ms);
  p.u16(HARD_MAX_OPEN_MS);
  p.u8(cause);
  noInterrupts();
  int32_t enc = enc_total;
  interrupts();
  // Event counters as of the last event *sent*, so the host's running counts stay consistent.
  p.i32(enc);
  p.u32(lick_sent);
  p.u32(frame_sent);
  p.u32(sync_count);
  p.u16(rollovers);
  p.u16(boot_id);
  send(p);
  enc_sent = enc;
}

static void send_ack(const cp::Command& c, uint8_t status, uint16_t value, uint32_t now) {
  cp::Packet p(cp::ACK, tx_seq, now);
  p.u16(c.seq);
  p.u8(c.type);
  p.u8(status);
  p.u16(value);
  send(p);
}

static void send_error(uint8_t code, uint16_t detail, uint32_t now) {
  cp::Packet p(cp::ERROR, tx_seq, now);
  p.u8(code);
  p.u16(detail);
  send(p);
}

static void set_valve(bool open, uint8_t reason, uint32_t t) {
  valve_open = open;
  digitalWrite(PIN_VALVE, open ? HIGH : LOW);
  cp::Packet p(cp::VALVE, tx_seq, t);
  p.u8(open ? 1 : 0);
  p.u8(reason);
  send(p);
}

static void sync_pulse(uint16_t width_ms, uint32_t now) {
  digitalWrite(PIN_SYNC, HIGH);
  sync_high = true;
  sync_low_at = now + (uint32_t)width_ms * 1000UL;
  cp::Packet p(cp::SYNC, tx_seq, now);
  p.u32(++sync_count);
  send(p);
}

static void drain_events() {
  while (ring_tail != ring_head) {
    Event e;
    noInterrupts();
    e.type = ring[ring_tail].type;
    e.arg = ring[ring_tail].arg;
    e.t_us = ring[ring_tail].t_us;
    e.count = ring[ring_tail].count;
    ring_tail = (uint8_t)((ring_tail + 1) & (RING_SIZE - 1));
    interrupts();
    cp::Packet p(e.type, tx_seq, e.t_us);
    if (e.type == cp::LICK) p.u8(e.arg);
    p.u32(e.count);
    send(p);
    if (e.type == cp::LICK) lick_sent = e.count;
    else frame_sent = e.count;
  }
}

static void handle_command(const cp::Command& c, uint32_t now) {
  uint8_t status = cp::ACK_OK;
  uint16_t value = 0;
  const uint8_t* a = c.payload;
  switch (c.type) {
    case cp::CMD_HELLO:
      drain_events();
      send_hello(cp::CAUSE_REQUESTED, now);
      break;
    case cp::CMD_VALVE_PULSE: {
      uint32_t us = cp::rd_u32(a);
      uint32_t limit = (uint32_t)max_open_ms * 1000UL;
      if (us > limit) {
        us = limit;
        status = cp::ACK_CLAMPED;
      }
      value = (uint16_t)(us / 1000UL);
      if (us > 0) {
        valve_close_at = now + us;
        valve_pulse = (status == cp::ACK_OK);  // a clamped pulse ends as a max-open cut
        if (!valve_open) set_valve(true, cp::VALVE_COMMAND, now);
      }
      break;
    }
    case cp::CMD_VALVE_OPEN:
      valve_close_at = now + (uint32_t)max_open_ms * 1000UL;
      valve_pulse = false;
      value = max_open_ms;
      if (!valve_open) set_valve(true, cp::VALVE_COMMAND, now);
      break;
    case cp::CMD_VALVE_CLOSE:
      if (valve_open) set_valve(false, cp::VALVE_COMMAND, now);
      break;
    case cp::CMD_CUE: {
      uint16_t ms = cp::rd_u16(a), hz = cp::rd_u16(a + 2);
      if (ms == 0 || hz < 20) {
        status = cp::ACK_BAD_ARGS;
      } else {
        tone(PIN_CUE, hz, ms);
      }
      break;
    }
    case cp::CMD_SYNC_PULSE:
      sync_pulse(cp::rd_u16(a), now);
      break;
    case cp::CMD_SYNC_RANDOM: {
      uint16_t lo = cp::rd_u16(a), hi = cp::rd_u16(a + 2), width = cp::rd_u16(a + 4);
      if (lo == 0) {
        sync_min_ms = 0;
      } else if (hi < lo || width == 0 || width >= lo) {
        status = cp::ACK_BAD_ARGS;
      } else {
        sync_min_ms = lo;
        sync_max_ms = hi;
        sync_width_ms = width;
        next_sync_at = now + (uint32_t)random(lo, (long)hi + 1) * 1000UL;
      }
      break;
    }
    case cp::CMD_CONFIG: {
      uint16_t open_ms = cp::rd_u16(a), enc_us = cp::rd_u16(a + 2), hb_ms = cp::rd_u16(a + 4);
      if (open_ms) {
        max_open_ms = open_ms > HARD_MAX_OPEN_MS ? HARD_MAX_OPEN_MS : open_ms;
        if (max_open_ms < open_ms) status = cp::ACK_CLAMPED;
        // An opening already under way obeys the new limit too.
        uint32_t latest = now + (uint32_t)max_open_ms * 1000UL;
        if (valve_open && due(valve_close_at, latest)) valve_close_at = latest;
      }
      if (enc_us) encoder_period_us = enc_us < 1000 ? 1000 : enc_us;
      if (hb_ms) heartbeat_us = (uint32_t)hb_ms * 1000UL;
      value = max_open_ms;
      break;
    }
    default:
      status = cp::ACK_UNKNOWN;
  }
  send_ack(c, status, value, now);
}

static void read_commands(uint32_t now) {
  while (Serial.available() > 0) {
    uint8_t b = (uint8_t)Serial.read();
    if (b != 0) {
      if (rx_len < sizeof(rx_frame)) {
        rx_frame[rx_len++] = b;
      } else {
        rx_overflow = true;
      }
      continue;
    }
    if (rx_len == 0) continue;  // the leading delimiter of a packet
    uint8_t scratch[cp::MAX_PACKET];
    cp::Command c;
    cp::Command::Result r = rx_overflow ? cp::Command::BAD_FRAME
                                        : cp::Command::parse(rx_frame, rx_len, scratch, sizeof(scratch), &c);
    rx_len = 0;
    rx_overflow = false;
    if (r == cp::Command::OK || r == cp::Command::UNKNOWN) {
      handle_command(c, now);
    } else {
      ++rx_errors;
      send_error(r == cp::Command::BAD_CRC ? cp::ERR_BAD_CRC : cp::ERR_BAD_FRAME, 1, now);
    }
  }
}

void setup() {
  pinMode(PIN_VALVE, OUTPUT);
  digitalWrite(PIN_VALVE, LOW);  // first thing: the valve is closed at power-up
  pinMode(PIN_SYNC, OUTPUT);
  digitalWrite(PIN_SYNC, LOW);
  pinMode(PIN_CUE, OUTPUT);
  pinMode(PIN_ENC_A, INPUT_PULLUP);
  pinMode(PIN_ENC_B, INPUT_PULLUP);
  pinMode(PIN_LICK, INPUT);
  pinMode(PIN_FRAME, INPUT);
  Serial.begin(SERIAL_BAUD);
  randomSeed((unsigned long)analogRead(A0) ^ micros());
  boot_id = (uint16_t)random(0, 65536L);
  enc_state = (uint8_t)((digitalRead(PIN_ENC_A) << 1) | digitalRead(PIN_ENC_B));
  lick_level = (uint8_t)digitalRead(PIN_LICK);
  attachInterrupt(digitalPinToInterrupt(PIN_ENC_A), on_encoder, CHANGE);
  attachInterrupt(digitalPinToInterrupt(PIN_ENC_B), on_encoder, CHANGE);
  attachInterrupt(digitalPinToInterrupt(PIN_LICK), on_lick, CHANGE);
  attachInterrupt(digitalPinToInterrupt(PIN_FRAME), on_frame, RISING);
  uint32_t now = micros();
  last_micros = now;
  next_encoder_us = now + encoder_period_us;
  next_heartbeat_us = now;
  send_hello(cp::CAUSE_BOOT, now);
}

void loop() {
  uint32_t now = micros();
  if (now < last_micros) ++rollovers;  // the loop runs far more often than the 71-minute wrap
  last_micros = now;

  // Outputs first: their timing is what the animal experiences.
  if (valve_open && due(now, valve_close_at)) {
    set_valve(false, valve_pulse ? cp::VALVE_PULSE_DONE : cp::VALVE_MAX_OPEN, valve_close_at);
  }
  if (sync_high && due(now, sync_low_at)) {
    digitalWrite(PIN_SYNC, LOW);
    sync_high = false;
  }
  if (sync_min_ms && !sync_high && due(now, next_sync_at)) {
    sync_pulse(sync_width_ms, now);
    next_sync_at = now + (uint32_t)random(sync_min_ms, (long)sync_max_ms + 1) * 1000UL;
  }

  drain_events();
  if (due(now, next_encoder_us)) {
    noInterrupts();
    int32_t enc = enc_total;
    interrupts();
    if (enc != enc_sent) {
      cp::Packet p(cp::ENCODER, tx_seq, now);
      p.i32(enc);
      send(p);
      enc_sent = enc;
    }
    next_encoder_us = now + encoder_period_us;
  }
  if (due(now, next_heartbeat_us)) {
    cp::Packet p(cp::HEARTBEAT, tx_seq, now);
    p.u16(rollovers);
    p.u8((uint8_t)((valve_open ? cp::LINE_VALVE : 0) | (lick_level ? cp::LINE_LICK : 0) |
                   (sync_high ? cp::LINE_SYNC : 0)));
    p.u16((uint16_t)(tx_dropped + ring_dropped));
    p.u16(rx_errors);
    send(p);
    next_heartbeat_us = now + heartbeat_us;
  }
  read_commands(micros());
}
