// Corridor rig board firmware for the Arduino Mega 2560 and Uno (16 MHz AVR): speaks
// docs/serial-protocol.md (protocol v2) over the UART at 500000 baud.
//
// Inputs are timestamped in their interrupt handlers (encoder: counted; lick: stable-level debounce;
// frame clock: the configured edge, falling by default) and queued in a ring buffer. The loop turns
// them into packets, which wait for room in the serial buffer rather than being dropped: the only
// loss is a full event ring, which is counted and reported in every heartbeat (and visible to the host
// as a gap in the running counters).
//
// The valve is Timer1's compare output OC1A: the pulse is opened by forcing the output high with the
// timer started in the next instructions, stamped at that moment, and the compare match clears the pin in
// hardware, exact to the timer tick (0.5 us for pulses < 32 ms, 64 us at worst) however busy the
// interrupts are (an encoder flood cannot hold the valve open). The compare interrupt only tells the loop.
// No opening lasts longer than max_open_ms (itself capped at HARD_MAX_OPEN_MS) whatever the host does:
// the limit lives here, and a loop backstop closes the valve even if the timer were misprogrammed.
// Build: hil/Makefile (Arduino AVR core + avr-gcc); pins and checks: board.h.

#include <Arduino.h>
#include <avr/sleep.h>
#include <util/atomic.h>

#include "board.h"
#include "corridor_protocol.h"

// ---- configuration -------------------------------------------------------------------------------
#ifndef BOARD_ID
#define BOARD_ID 0x00000001UL
#endif
#ifndef FRAME_EDGE_DEFAULT
#define FRAME_EDGE_DEFAULT 0  // 0 falling (frame starts at the falling edge), 1 rising
#endif

// The core sets U2X except at 57600, so a rate is exact when F_CPU / 8 is a multiple of it.
static_assert((F_CPU / 8) % SERIAL_BAUD == 0, "SERIAL_BAUD is not exact on this clock (use 500000 or 1000000)");
static_assert(digitalPinToInterrupt(PIN_ENC_A) != NOT_AN_INTERRUPT, "PIN_ENC_A needs an external interrupt");
static_assert(digitalPinToInterrupt(PIN_ENC_B) != NOT_AN_INTERRUPT, "PIN_ENC_B needs an external interrupt");
#if CB_LICK_KIND == 1
static_assert(digitalPinToInterrupt(PIN_LICK) != NOT_AN_INTERRUPT, "PIN_LICK needs an external interrupt");
#endif
#if CB_FRAME_KIND == 1
static_assert(digitalPinToInterrupt(PIN_FRAME) != NOT_AN_INTERRUPT, "PIN_FRAME needs an external interrupt");
#endif

const uint8_t FW_MAJOR = 2, FW_MINOR = 0, FW_PATCH = 0;
const uint16_t HARD_MAX_OPEN_MS = 4000;  // Timer1's range at its slowest tick (64 us x 65535 = 4.19 s)
const uint16_t DEFAULT_MAX_OPEN_MS = 1000;
const uint16_t DEFAULT_LICK_DEBOUNCE_US = 500;
const uint32_t VALVE_BACKSTOP_US = 2000;  // the loop closes a valve the timer should have closed by then

#define VALVE_BIT CB_BIT(PIN_VALVE)
#define VALVE_DONE_FLAG 0  // GPIOR0 bit set by the compare interrupt when it closed the valve

// ---- fast timestamps -----------------------------------------------------------------------------
extern volatile unsigned long timer0_overflow_count;  // the core's micros() state (wiring.c)

// micros() inlined for interrupt handlers and atomic blocks (interrupts must be off): same arithmetic,
// no call, so the stamp is taken a few cycles after the edge or the pin write.
static inline __attribute__((always_inline)) uint32_t micros_irqoff() {
  uint32_t m = timer0_overflow_count;
  uint8_t t = TCNT0;
  if ((TIFR0 & _BV(TOV0)) && t < 255) m++;
  return ((m << 8) + t) * (64 / clockCyclesPerMicrosecond());
}

// ---- events from interrupt handlers --------------------------------------------------------------
struct Event {
  uint8_t type;  // cp::LICK, FRAME, SYNC or VALVE
  uint8_t arg;   // lick: onset; valve: open | reason << 1
  uint32_t t_us;
  uint32_t count;
};

const uint8_t RING_SIZE = CB_EVENT_RING;  // power of two
static_assert((RING_SIZE & (RING_SIZE - 1)) == 0, "the event ring size must be a power of two");
volatile Event ring[RING_SIZE];
volatile uint8_t ring_head = 0, ring_tail = 0;
volatile uint16_t events_dropped = 0;  // the ring was full: reported in heartbeats

// Interrupts off (ISR or atomic block).
static inline __attribute__((always_inline)) void push_event(uint8_t type, uint8_t arg, uint32_t t_us, uint32_t count) {
  uint8_t next = (uint8_t)((ring_head + 1) & (RING_SIZE - 1));
  if (next == ring_tail) {
    ++events_dropped;  // the counters still advance: the host sees the gap too
    return;
  }
  ring[ring_head].type = type;
  ring[ring_head].arg = arg;
  ring[ring_head].t_us = t_us;
  ring[ring_head].count = count;
  ring_head = next;
}

// ---- encoder: X4 decoding on both edges of both channels ------------------------------------------
// index = previous AB << 2 | new AB; A leading B counts up (forward).
static const int8_t QUAD_STEP[16] = {0, -1, 1, 0, 1, 0, 0, -1, -1, 0, 0, 1, 0, 1, -1, 0};
volatile int32_t enc_total = 0;
volatile uint8_t enc_state = 0;
volatile uint16_t enc_errors = 0;  // both lines changed between two interrupts: an edge was missed

static inline __attribute__((always_inline)) uint8_t read_ab() {
  return (uint8_t)((((CB_PINREG(PIN_ENC_A) >> CB_BIT(PIN_ENC_A)) & 1) << 1) |
                   ((CB_PINREG(PIN_ENC_B) >> CB_BIT(PIN_ENC_B)) & 1));
}

ISR(CB_INT_VECT(PIN_ENC_A)) {
  uint8_t ab = read_ab();
  uint8_t prev = enc_state;
  enc_total += QUAD_STEP[(prev << 2) | ab];
  if ((uint8_t)(prev ^ ab) == 3) ++enc_errors;
  enc_state = ab;
}
ISR(CB_INT_VECT(PIN_ENC_B), ISR_ALIASOF(CB_INT_VECT(PIN_ENC_A)));

// ---- lick: a level counts once it has been stable for lick_debounce_us ------------------------------
// The interrupt records every raw edge; the loop accepts a new level when no edge has come for the
// debounce time. The edge is stamped with the first raw edge away from the accepted level (the true
// onset of a bouncing contact); a level that returns before it is stable is a glitch, not a lick.
volatile uint8_t lick_raw = 0;        // last level seen by the interrupt
volatile uint8_t lick_level = 0;      // accepted level
volatile uint8_t lick_episode = 0;    // the raw level left the accepted one and has not settled
volatile uint32_t lick_edge_us = 0;   // last raw edge
volatile uint32_t lick_start_us = 0;  // first raw edge of the episode
uint16_t lick_debounce_us = DEFAULT_LICK_DEBOUNCE_US;
uint32_t lick_count = 0;      // accepted edges since boot
uint16_t lick_glitches = 0;   // episodes that settled back on the accepted level

static inline __attribute__((always_inline)) uint8_t read_lick() { return (uint8_t)((CB_PINREG(PIN_LICK) >> CB_BIT(PIN_LICK)) & 1); }
static inline __attribute__((always_inline)) uint8_t read_frame() { return (uint8_t)((CB_PINREG(PIN_FRAME) >> CB_BIT(PIN_FRAME)) & 1); }

static inline __attribute__((always_inline)) void lick_edge(uint8_t level, uint32_t t) {
  if (level == lick_raw) return;
  lick_raw = level;
  lick_edge_us = t;
  if (!lick_episode && level != lick_level) {
    lick_episode = 1;
    lick_start_us = t;
  }
}

// ---- frame clock: one event per edge of the configured polarity ------------------------------------
volatile uint32_t frame_count = 0;
volatile uint8_t frame_edge = FRAME_EDGE_DEFAULT;

static inline __attribute__((always_inline)) void frame_event(uint32_t t) { push_event(cp::FRAME, 0, t, ++frame_count); }

#if CB_LICK_KIND == 1
ISR(CB_INT_VECT(PIN_LICK)) { lick_edge(read_lick(), micros_irqoff()); }
#endif
#if CB_FRAME_KIND == 1
ISR(CB_INT_VECT(PIN_FRAME)) { frame_event(micros_irqoff()); }
#endif
#if CB_LICK_KIND == 2 || CB_FRAME_KIND == 2
// Uno: lick and frame clock share port D's pin-change interrupt; the handler tells them apart.
volatile uint8_t pcint_prev = 0;
ISR(PCINT2_vect) {
  uint32_t t = micros_irqoff();
  uint8_t now = PIND, changed = (uint8_t)(now ^ pcint_prev);
  pcint_prev = now;
#if CB_LICK_KIND == 2
  if (changed & _BV(CB_BIT(PIN_LICK))) lick_edge(read_lick(), t);
#endif
#if CB_FRAME_KIND == 2
  if ((changed & _BV(CB_BIT(PIN_FRAME))) && (uint8_t)((now >> CB_BIT(PIN_FRAME)) & 1) == frame_edge) frame_event(t);
#endif
}
#endif

// External interrupt sense control: isc 1 = any change, 2 = falling, 3 = rising.
static void set_sense(uint8_t n, uint8_t isc) {
  uint8_t shift = (uint8_t)((n & 3) * 2);
  uint8_t mask = (uint8_t)~(3 << shift), bits = (uint8_t)(isc << shift);
  EIMSK &= (uint8_t)~_BV(n);
#if defined(EICRB)
  if (n >= 4) {
    EICRB = (uint8_t)((EICRB & mask) | bits);
  } else {
    EICRA = (uint8_t)((EICRA & mask) | bits);
  }
#else
  EICRA = (uint8_t)((EICRA & mask) | bits);
#endif
  EIFR = _BV(n);  // changing the sense can raise a spurious flag
  EIMSK |= _BV(n);
}

static void apply_frame_edge() {
#if CB_FRAME_KIND == 1
  set_sense(CB_INTNUM(PIN_FRAME), frame_edge ? 3 : 2);
#endif
}

// ---- the valve: Timer1 in CTC mode, its compare output OC1A drives the pin ---------------------------
// Prescalers 8, 64, 256, 1024: ticks of 0.5, 4, 16 and 64 us; the smallest that holds the target is used.
// CTC (WGM12): the count restarts at the match, so a match can never come back round as an "overflow".
static const uint8_t PRESC_CS[4] = {_BV(WGM12) | 2, _BV(WGM12) | 3, _BV(WGM12) | 4, _BV(WGM12) | 5};
static const uint8_t PRESC_SHIFT[4] = {3, 6, 8, 10};  // log2(prescaler); ticks = us * 16 >> shift
const uint8_t COM_SET = _BV(COM1A1) | _BV(COM1A0), COM_CLEAR = _BV(COM1A1), COM_MASK = COM_SET;

// Interrupts off. Drives OC1A (the valve pin) to `level` now, through the compare unit, and leaves it in
// "clear on match" so that the next match closes the valve in hardware. PORTB mirrors the level so the pin
// stays put when the compare unit lets go of it.
static inline __attribute__((always_inline)) void valve_force_irqoff(bool level) {
  TCCR1A = (uint8_t)((TCCR1A & ~COM_MASK) | (level ? COM_SET : COM_CLEAR));
  TCCR1C = _BV(FOC1A);  // OC1A takes the level the mode says: set (open) or clear (close)
  TCCR1A = (uint8_t)((TCCR1A & ~COM_MASK) | COM_CLEAR);
  if (level) {
    PORTB |= _BV(VALVE_BIT);
  } else {
    PORTB &= (uint8_t)~_BV(VALVE_BIT);
  }
}

// The match has already cleared the pin in hardware; this makes PORTB agree and tells the loop.
ISR(TIMER1_COMPA_vect, ISR_NAKED) {
  asm volatile("cbi %[port], %[bit]\n\t"
               "sbi %[flag], %[done]\n\t"
               "reti\n\t" ::[port] "I"(_SFR_IO_ADDR(PORTB)),
               [bit] "I"(VALVE_BIT), [flag] "I"(_SFR_IO_ADDR(GPIOR0)), [done] "I"(VALVE_DONE_FLAG));
}

bool valve_open = false;
bool valve_capped = false;     // the target was cut at max_open_ms
uint32_t valve_open_us = 0;    // micros() at the pin write
uint32_t valve_target_us = 0;  // scheduled close, us after the opening (on the timer's tick)
uint8_t valve_presc = 0;
uint16_t valve_backstops = 0;  // times the loop had to close the valve itself (should stay 0)
uint16_t max_open_ms = DEFAULT_MAX_OPEN_MS;

static uint8_t presc_for(uint32_t us) {
  for (uint8_t i = 0; i < 3; ++i) {
    if (((us << 4) >> PRESC_SHIFT[i]) < 65535UL) return i;
  }
  return 3;
}

static uint16_t ticks_for(uint32_t us, uint8_t presc) {
  uint32_t ticks = ((us << 4) + (1UL << (PRESC_SHIFT[presc] - 1))) >> PRESC_SHIFT[presc];
  if (ticks < 2) ticks = 2;
  if (ticks > 65535UL) ticks = 65535UL;
  return (uint16_t)ticks;
}

static uint32_t ticks_us(uint32_t ticks, uint8_t presc) { return (ticks << PRESC_SHIFT[presc]) >> 4; }

static void report_valve(bool open, uint8_t reason, uint32_t t) {
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { push_event(cp::VALVE, (uint8_t)((open ? 1 : 0) | (reason << 1)), t, 0); }
}

// Interrupts off: the compare unit lets go of the pin (PORTB, already low, holds it) and the timer stops.
static void valve_release_irqoff() {
  TCCR1B = 0;
  TIMSK1 &= (uint8_t)~_BV(OCIE1A);
  TCCR1A &= (uint8_t)~COM_MASK;
  GPIOR0 &= (uint8_t)~_BV(VALVE_DONE_FLAG);
}

// Interrupts off. Closes now, whatever the timer was doing.
static uint32_t valve_close_now_irqoff() {
  valve_force_irqoff(false);
  uint32_t t = micros_irqoff();
  valve_release_irqoff();
  return t;
}

// Reports a close the compare interrupt made (at the scheduled instant) and stops the timer.
static void valve_poll() {
  if (!valve_open || !(GPIOR0 & _BV(VALVE_DONE_FLAG))) return;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { valve_release_irqoff(); }
  valve_open = false;
  report_valve(false, valve_capped ? cp::VALVE_MAX_OPEN : cp::VALVE_PULSE_DONE, valve_open_us + valve_target_us);
}

static void valve_close(uint8_t reason) {
  valve_poll();
  if (!valve_open) return;
  uint32_t t;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { t = valve_close_now_irqoff(); }
  valve_open = false;
  report_valve(false, reason, t);
}

// Interrupts off, valve open and not yet closed by the interrupt: a new close target (us after the
// opening), later or earlier, on the timer's tick. Returns false when the target has already passed
// (the caller closes the valve).
static bool valve_retarget_irqoff(uint32_t target_us) {
  uint8_t p = presc_for(target_us);
  uint16_t ticks = ticks_for(target_us, p);
  if (p != valve_presc) {
    // Re-express the elapsed count on the new tick (loses at most one new tick).
    TCCR1B = 0;
    uint32_t cnt = ((uint32_t)TCNT1 << PRESC_SHIFT[valve_presc]) >> PRESC_SHIFT[p];
    TCNT1 = (uint16_t)cnt;
    OCR1A = (uint16_t)(ticks - 1);
    TCCR1B = PRESC_CS[p];
  } else {
    OCR1A = (uint16_t)(ticks - 1);
  }
  valve_presc = p;
  valve_target_us = ticks_us(ticks, p);
  // A target already passed would wait a whole timer period for the next match.
  return TCNT1 < (uint16_t)(ticks - 1);
}

// Interrupts off: us since the opening, from the timer (exact to its tick).
static uint32_t valve_elapsed_irqoff() { return ticks_us(TCNT1, valve_presc); }

// Open for `us` (a pulse), or extend an opening under way; never past max_open_ms after the opening
// began. Returns the granted time from now, in us; *clamped when the limit cut the request.
static uint32_t valve_open_for(uint32_t us, bool* clamped) {
  uint32_t limit = (uint32_t)max_open_ms * 1000UL;
  valve_poll();
  if (valve_open) {
    bool extended = false, passed = false;
    uint32_t left = 0;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
      if (!(GPIOR0 & _BV(VALVE_DONE_FLAG))) {
        extended = true;
        uint32_t elapsed = valve_elapsed_irqoff();
        uint32_t want = elapsed + us;
        *clamped = want > limit;
        if (*clamped) want = limit;
        if (want > valve_target_us) {
          valve_capped = *clamped;
          passed = !valve_retarget_irqoff(want);
        }
        left = valve_target_us > elapsed ? valve_target_us - elapsed : 0;
      }
    }
    if (passed) valve_close(valve_capped ? cp::VALVE_MAX_OPEN : cp::VALVE_PULSE_DONE);
    if (extended) return left;
    valve_poll();  // the interrupt closed it meanwhile: open afresh below
  }
  *clamped = us > limit;
  if (*clamped) us = limit;
  uint8_t p = presc_for(us);
  uint16_t ticks = ticks_for(us, p);
  uint32_t t;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    TCCR1B = 0;
    TCNT1 = 0;
    OCR1A = (uint16_t)(ticks - 1);  // the match comes one tick after TCNT1 == OCR1A: `ticks` ticks
    TIFR1 = _BV(OCF1A);
    TIMSK1 |= _BV(OCIE1A);
    GPIOR0 &= (uint8_t)~_BV(VALVE_DONE_FLAG);
    valve_force_irqoff(true);  // open ...
    TCCR1B = PRESC_CS[p];      // ... and start the timer right after
    t = micros_irqoff();       // stamped at the pin write
  }
  valve_open = true;
  valve_capped = *clamped;
  valve_open_us = t;
  valve_presc = p;
  valve_target_us = ticks_us(ticks, p);
  report_valve(true, cp::VALVE_COMMAND, t);
  return valve_target_us;
}

// A lower max_open_ms applies to an opening under way too.
static void valve_apply_limit() {
  uint32_t limit = (uint32_t)max_open_ms * 1000UL;
  valve_poll();
  if (!valve_open || valve_target_us <= limit) return;
  bool close = false;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    if (!(GPIOR0 & _BV(VALVE_DONE_FLAG))) {
      valve_capped = true;
      close = valve_elapsed_irqoff() >= limit || !valve_retarget_irqoff(limit);
    }
  }
  if (close) valve_close(cp::VALVE_MAX_OPEN);
}

// ---- loop state ------------------------------------------------------------------------------------
uint16_t tx_seq = 0;
uint16_t tx_waits = 0;  // packets that had to wait for room in the serial buffer (link saturated)
uint16_t rx_errors = 0;
uint16_t boot_id = 0;
uint16_t rollovers = 0;

uint32_t encoder_period_us = 1000;
uint32_t heartbeat_us = 100000;
uint32_t next_encoder_us = 0, next_heartbeat_us = 0;
int32_t enc_sent = 0;
uint32_t lick_sent = 0, frame_sent = 0, sync_sent = 0;

uint32_t sync_count = 0;
bool sync_high = false;
uint32_t sync_low_at = 0;
uint16_t sync_min_ms = 0, sync_max_ms = 0, sync_width_ms = 10;
uint32_t next_sync_at = 0;

const uint8_t HELLO_NONE = 0xFF;
uint8_t pending_hello = HELLO_NONE;  // cause of a HELLO waiting to be sent

struct Ack {
  uint16_t seq;
  uint8_t type, status;
  uint16_t value;
};
const uint8_t ACK_QUEUE = 8;
Ack acks[ACK_QUEUE];
uint8_t ack_head = 0, ack_n = 0;
uint16_t pending_bad_frames = 0, pending_bad_crc = 0;
bool tx_blocked = false;
bool tx_more = false;  // transmit() stopped on its budget with packets ready: do not sleep

uint8_t rx_frame[cp::MAX_WIRE];
size_t rx_len = 0;
bool rx_overflow = false;

static bool due(uint32_t now, uint32_t at) { return (int32_t)(now - at) >= 0; }  // wrap-safe

// micros() that also counts its wraps (the high word sent in HELLO and HEARTBEAT). Every packet stamp
// taken in the loop comes from here, so a heartbeat's rollovers always match its t_us.
uint32_t last_clock_us = 0;
static uint32_t clock_now() {
  uint32_t t = micros();
  // A wrap is a fall by more than half the range (this runs far more often than the 71-minute wrap); a
  // small step back is micros() itself stumbling when an interrupt flood delayed Timer0's overflow.
  if (t < last_clock_us && last_clock_us - t > 0x80000000UL) ++rollovers;
  if ((int32_t)(t - last_clock_us) > 0) last_clock_us = t;
  return t;
}

// ---- sending ---------------------------------------------------------------------------------------
static bool room_for(size_t payload) {
  if ((size_t)Serial.availableForWrite() >= cp::wire_size(payload)) {
    tx_blocked = false;
    return true;
  }
  if (!tx_blocked) ++tx_waits;  // once per waiting packet
  tx_blocked = true;
  tx_more = false;  // the serial interrupt wakes the loop when bytes have gone out
  return false;
}

static void send(cp::Packet& p) {
  uint8_t wire[cp::MAX_WIRE];
  size_t n = p.finish(wire);
  Serial.write(wire, n);  // room_for() checked first: never blocks
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
  int32_t enc;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { enc = enc_total; }
  // Event counters as of the last event *sent*, so the host's running counts stay consistent.
  p.i32(enc);
  p.u32(lick_sent);
  p.u32(frame_sent);
  p.u32(sync_sent);
  p.u16(rollovers);
  p.u16(boot_id);
  p.u8(CB_MCU_ID);
  p.u8(frame_edge);
  p.u16(lick_debounce_us);
  p.u16((uint16_t)encoder_period_us);
  send(p);
  enc_sent = enc;
}

static void send_heartbeat(uint32_t now) {
  cp::Packet p(cp::HEARTBEAT, tx_seq, now);
  p.u16(rollovers);
  uint8_t lines = (uint8_t)((valve_open ? cp::LINE_VALVE : 0) | (lick_level ? cp::LINE_LICK : 0) |
                            (sync_high ? cp::LINE_SYNC : 0) | (read_frame() ? cp::LINE_FRAME : 0));
  p.u8(lines);
  uint16_t dropped, enc_err;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    dropped = events_dropped;
    enc_err = enc_errors;
  }
  p.u16(dropped);
  p.u16(tx_waits);
  p.u16(rx_errors);
  p.u16(enc_err);
  p.u16(lick_glitches);
  send(p);
}

// Sends what fits, most urgent first: HELLO, acks, error reports, the heartbeat (the host's sign that the
// link is alive: never starved by a busy input), events (valve, lick, frame, sync), encoder (a running
// total: a late packet loses nothing). Nothing is dropped: what does not fit waits for the next pass.
// At most a few packets per call, each with a fresh clock: under a flood of input events the loop still
// reads commands, times the outputs and sends heartbeats between them.
static void transmit() {
  tx_more = true;
  for (uint8_t budget = 4; budget; --budget) {
    uint32_t now = clock_now();
    if (pending_hello != HELLO_NONE) {
      if (!room_for(cp::HELLO_PAYLOAD)) return;
      send_hello(pending_hello, now);
      pending_hello = HELLO_NONE;
      continue;
    }
    if (ack_n) {
      if (!room_for(6)) return;
      const Ack& a = acks[ack_head];
      cp::Packet p(cp::ACK, tx_seq, now);
      p.u16(a.seq);
      p.u8(a.type);
      p.u8(a.status);
      p.u16(a.value);
      send(p);
      ack_head = (uint8_t)((ack_head + 1) % ACK_QUEUE);
      --ack_n;
      continue;
    }
    if (pending_bad_frames || pending_bad_crc) {
      if (!room_for(3)) return;
      bool crc = pending_bad_crc != 0;
      cp::Packet p(cp::ERROR, tx_seq, now);
      p.u8(crc ? cp::ERR_BAD_CRC : cp::ERR_BAD_FRAME);
      p.u16(crc ? pending_bad_crc : pending_bad_frames);  // detail: how many since the last report
      send(p);
      (crc ? pending_bad_crc : pending_bad_frames) = 0;
      continue;
    }
    if (due(now, next_heartbeat_us)) {
      if (!room_for(cp::HEARTBEAT_PAYLOAD)) return;
      send_heartbeat(now);
      next_heartbeat_us += heartbeat_us;
      if (due(now, next_heartbeat_us)) next_heartbeat_us = now + heartbeat_us;  // fell far behind
      continue;
    }
    if (ring_tail != ring_head) {
      uint8_t type = ring[ring_tail].type;
      size_t payload = type == cp::LICK ? 5 : type == cp::VALVE ? 2 : 4;
      if (!room_for(payload)) return;
      Event e;
      ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
        e.type = ring[ring_tail].type;
        e.arg = ring[ring_tail].arg;
        e.t_us = ring[ring_tail].t_us;
        e.count = ring[ring_tail].count;
        ring_tail = (uint8_t)((ring_tail + 1) & (RING_SIZE - 1));
      }
      cp::Packet p(e.type, tx_seq, e.t_us);
      if (e.type == cp::VALVE) {
        p.u8(e.arg & 1);
        p.u8((uint8_t)(e.arg >> 1));
      } else {
        if (e.type == cp::LICK) p.u8(e.arg);
        p.u32(e.count);
      }
      send(p);
      if (e.type == cp::LICK) lick_sent = e.count;
      else if (e.type == cp::FRAME) frame_sent = e.count;
      else if (e.type == cp::SYNC) sync_sent = e.count;
      continue;
    }
    if (due(now, next_encoder_us)) {
      int32_t enc;
      uint32_t t;
      ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
        enc = enc_total;  // the total and its stamp are read together: the count at exactly t
        t = micros_irqoff();
      }
      if (enc == enc_sent) {
        next_encoder_us = now + encoder_period_us;
        return;
      }
      if (!room_for(4)) return;
      cp::Packet p(cp::ENCODER, tx_seq, t);
      p.i32(enc);
      send(p);
      enc_sent = enc;
      next_encoder_us = now + encoder_period_us;
    }
    tx_more = false;  // nothing else to send
    return;
  }
}

// ---- outputs timed by the loop -----------------------------------------------------------------------
static void sync_pulse(uint16_t width_ms) {
  uint32_t t;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    digitalWrite(PIN_SYNC, HIGH);
    t = micros_irqoff();
    push_event(cp::SYNC, 0, t, ++sync_count);
  }
  sync_high = true;
  sync_low_at = t + (uint32_t)width_ms * 1000UL;
}

static void service_outputs(uint32_t now) {
  valve_poll();
  if (valve_open && (uint32_t)(now - valve_open_us) > valve_target_us + VALVE_BACKSTOP_US) {
    ++valve_backstops;  // the timer should have closed it: close it anyway (never seen in the bench)
    valve_close(cp::VALVE_MAX_OPEN);
  }
  if (sync_high && due(now, sync_low_at)) {
    digitalWrite(PIN_SYNC, LOW);
    sync_high = false;
  }
  if (sync_min_ms && !sync_high && due(now, next_sync_at)) {
    sync_pulse(sync_width_ms);
    next_sync_at = now + (uint32_t)random(sync_min_ms, (long)sync_max_ms + 1) * 1000UL;
  }
}

static void service_lick() {
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    if (!lick_episode) return;
    uint32_t now = micros_irqoff();
    if ((uint32_t)(now - lick_edge_us) < lick_debounce_us) return;
    lick_episode = 0;
    if (lick_raw == lick_level) {
      ++lick_glitches;
      return;
    }
    lick_level = lick_raw;
    push_event(cp::LICK, lick_level, lick_start_us, ++lick_count);
  }
}

// ---- commands ----------------------------------------------------------------------------------------
static void queue_ack(const cp::Command& c, uint8_t status, uint16_t value) {
  Ack& a = acks[(ack_head + ack_n) % ACK_QUEUE];
  a.seq = c.seq;
  a.type = c.type;
  a.status = status;
  a.value = value;
  ++ack_n;
}

static void handle_command(const cp::Command& c, uint32_t now) {
  uint8_t status = cp::ACK_OK;
  uint16_t value = 0;
  const uint8_t* a = c.payload;
  switch (c.type) {
    case cp::CMD_HELLO:
      pending_hello = cp::CAUSE_REQUESTED;
      break;
    case cp::CMD_VALVE_PULSE: {
      uint32_t us = cp::rd_u32(a);
      if (us > 0) {
        bool clamped = false;
        uint32_t granted = valve_open_for(us, &clamped);
        if (clamped) status = cp::ACK_CLAMPED;
        value = (uint16_t)(granted / 1000UL);
      }
      break;
    }
    case cp::CMD_VALVE_OPEN: {
      bool clamped = false;
      value = (uint16_t)(valve_open_for((uint32_t)max_open_ms * 1000UL, &clamped) / 1000UL);
      valve_capped = true;  // a flush always ends as a max-open cut
      break;
    }
    case cp::CMD_VALVE_CLOSE:
      valve_close(cp::VALVE_COMMAND);
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
    case cp::CMD_SYNC_PULSE: {
      uint16_t width = cp::rd_u16(a);
      if (width == 0 || width > 1000) {
        status = cp::ACK_BAD_ARGS;
      } else {
        sync_pulse(width);
      }
      break;
    }
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
      uint8_t edge = a[6];
      uint16_t debounce = cp::rd_u16(a + 7);
      if (edge != cp::EDGE_FALLING && edge != cp::EDGE_RISING && edge != cp::EDGE_KEEP) {
        status = cp::ACK_BAD_ARGS;
        value = max_open_ms;
        break;
      }
      if (open_ms) {
        max_open_ms = open_ms > HARD_MAX_OPEN_MS ? HARD_MAX_OPEN_MS : open_ms;
        if (max_open_ms < open_ms) status = cp::ACK_CLAMPED;
        valve_apply_limit();
      }
      if (enc_us) encoder_period_us = enc_us < 1000 ? 1000 : enc_us;
      if (hb_ms) heartbeat_us = (uint32_t)(hb_ms < 20 ? 20 : hb_ms > 1000 ? 1000 : hb_ms) * 1000UL;
      if (edge != cp::EDGE_KEEP && edge != frame_edge) {
        ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
          frame_edge = edge;
          apply_frame_edge();
        }
      }
      if (debounce) lick_debounce_us = debounce < 50 ? 50 : debounce > 20000 ? 20000 : debounce;
      value = max_open_ms;
      break;
    }
    default:
      status = cp::ACK_UNKNOWN;
  }
  queue_ack(c, status, value);
}

static void read_commands(uint32_t now) {
  // Stop reading while the ack queue is full: the bytes wait in the serial buffer, every command is
  // answered in order.
  while (ack_n < ACK_QUEUE && Serial.available() > 0) {
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
      if (r == cp::Command::BAD_CRC) {
        ++pending_bad_crc;
      } else {
        ++pending_bad_frames;
      }
    }
  }
}

// ---- setup and loop --------------------------------------------------------------------------------
#ifdef CB_TEST_START_US
// Test builds only: start micros() near the 32-bit wrap (runs right after the core's init()).
void initVariant() { timer0_overflow_count = (unsigned long)(CB_TEST_START_US / 1024ULL); }
#endif

void setup() {
  // The valve first: closed, driven low, Timer1 stopped (init() had set it up for analogWrite).
  PORTB &= (uint8_t)~_BV(VALVE_BIT);
  DDRB |= _BV(VALVE_BIT);
  TCCR1A = 0;
  TCCR1B = 0;
  TIMSK1 = 0;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { valve_close_now_irqoff(); }  // the compare latch low too
  pinMode(PIN_SYNC, OUTPUT);
  digitalWrite(PIN_SYNC, LOW);
  pinMode(PIN_CUE, OUTPUT);
  pinMode(PIN_ENC_A, INPUT_PULLUP);
  pinMode(PIN_ENC_B, INPUT_PULLUP);
  pinMode(PIN_LICK, INPUT);
  pinMode(PIN_FRAME, INPUT);
  Serial.begin(SERIAL_BAUD);
  set_sleep_mode(SLEEP_MODE_IDLE);  // clocks, timers and the UART keep running
  randomSeed((unsigned long)analogRead(A0) ^ micros());
  boot_id = (uint16_t)random(0, 65536L);
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    enc_state = read_ab();
    lick_raw = lick_level = read_lick();
    set_sense(CB_INTNUM(PIN_ENC_A), 1);
    set_sense(CB_INTNUM(PIN_ENC_B), 1);
#if CB_LICK_KIND == 1
    set_sense(CB_INTNUM(PIN_LICK), 1);
#endif
    apply_frame_edge();
#if CB_LICK_KIND == 2 || CB_FRAME_KIND == 2
    pcint_prev = PIND;
#if CB_LICK_KIND == 2
    PCMSK2 |= _BV(CB_BIT(PIN_LICK));
#endif
#if CB_FRAME_KIND == 2
    PCMSK2 |= _BV(CB_BIT(PIN_FRAME));
#endif
    PCIFR = _BV(PCIF2);
    PCICR |= _BV(PCIE2);
#endif
  }
  last_clock_us = micros();
  uint32_t now = clock_now();
  next_encoder_us = now + encoder_period_us;
  next_heartbeat_us = now;
  pending_hello = cp::CAUSE_BOOT;
}

// Sleeps until the next interrupt unless there is work: an edge, a byte in or out, the valve timer or
// Timer0's overflow (every 1.024 ms, which paces the encoder packets and the debounce check) wakes it.
// `sei; sleep` is atomic, so an interrupt arriving after the check still wakes the loop.
static void idle() {
  cli();
  bool work = tx_more || (GPIOR0 & _BV(VALVE_DONE_FLAG)) || Serial.available() > 0 ||
              (!tx_blocked && ring_tail != ring_head);
  if (work) {
    sei();
    return;
  }
  sleep_enable();
  sei();
  sleep_cpu();
  sleep_disable();
}

void loop() {
  uint32_t now = clock_now();
  service_outputs(now);  // the valve and sync first: their timing is what the animal experiences
  service_lick();
  read_commands(now);
  transmit();
  idle();
}
