// Per-board pin map of the corridor board firmware, checked at compile time.
//
// Supported boards (16 MHz AVR, built with the Arduino AVR core):
//   Arduino Mega 2560 (ATmega2560): encoder A/B, lick and frame clock on external interrupts INTn.
//   Arduino Uno (ATmega328P): encoder A/B on INT0/INT1 (its only two); lick and frame clock on
//     pin-change interrupts of port D (pins 4-7).
// The valve is Timer1's compare output OC1A (prescaler chosen per pulse, 0.5-64 us tick): the compare
// match closes it in hardware. Any other board is refused with #error: the
// pin, timer and interrupt facts below must be checked by hand for it.
//
// Override a pin with -DPIN_LICK=20 etc.; a pin that cannot do its job stops the build here.
#pragma once

#include <avr/io.h>

#define CB_CAT(a, b) a##b
#define CB_XCAT(a, b) CB_CAT(a, b)
#define CB_CAT3(a, b, c) a##b##c
#define CB_XCAT3(a, b, c) CB_CAT3(a, b, c)

#if defined(__AVR_ATmega2560__)
#define CB_MCU_ID 1
#define CB_MCU_NAME "atmega2560"
// Defaults: 2/3 (INT4/INT5) for the encoder, 18/19 (INT3/INT2) for lick and frame clock. (Pins 4 and 5
// have no external interrupt on this chip: an earlier firmware silently never saw a lick there.)
#ifndef PIN_ENC_A
#define PIN_ENC_A 2
#endif
#ifndef PIN_ENC_B
#define PIN_ENC_B 3
#endif
#ifndef PIN_LICK
#define PIN_LICK 18
#endif
#ifndef PIN_FRAME
#define PIN_FRAME 19
#endif
#ifndef PIN_VALVE
#define PIN_VALVE 11
#endif
#ifndef PIN_CUE
#define PIN_CUE 7
#endif
#ifndef PIN_SYNC
#define PIN_SYNC 8
#endif
// Arduino pin -> hardware external interrupt number + 1 (0: none), port letter and bit.
#define CB_EXT_2 5
#define CB_EXT_3 6
#define CB_EXT_18 4
#define CB_EXT_19 3
#define CB_EXT_20 2
#define CB_EXT_21 1
#define CB_PORT_2 E
#define CB_BIT_2 4
#define CB_PORT_3 E
#define CB_BIT_3 5
#define CB_PORT_18 D
#define CB_BIT_18 3
#define CB_PORT_19 D
#define CB_BIT_19 2
#define CB_PORT_20 D
#define CB_BIT_20 1
#define CB_PORT_21 D
#define CB_BIT_21 0
// Port B pins for the valve (10-13 = PB4-PB7), and the outputs' ports (for the pin map only).
#define CB_PORT_10 B
#define CB_BIT_10 4
#define CB_PORT_11 B
#define CB_BIT_11 5
#define CB_PORT_12 B
#define CB_BIT_12 6
#define CB_PORT_13 B
#define CB_BIT_13 7
#define CB_PORT_7 H
#define CB_BIT_7 4
#define CB_PORT_8 H
#define CB_BIT_8 5
#define CB_PORT_9 H
#define CB_BIT_9 6
#define CB_PORT_6 H
#define CB_BIT_6 3
#define CB_LICK_KIND 1  // 1: external interrupt, 2: pin change (port D)
#define CB_FRAME_KIND 1
#define CB_EVENT_RING 64

#elif defined(__AVR_ATmega328P__)
#define CB_MCU_ID 2
#define CB_MCU_NAME "atmega328p"
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
#define PIN_VALVE 9
#endif
#ifndef PIN_CUE
#define PIN_CUE 7
#endif
#ifndef PIN_SYNC
#define PIN_SYNC 8
#endif
#define CB_EXT_2 1
#define CB_EXT_3 2
#define CB_PORT_2 D
#define CB_BIT_2 2
#define CB_PORT_3 D
#define CB_BIT_3 3
// Pin-change capable pins used for lick / frame clock: port D 4-7 (PCINT20-23, one vector).
#define CB_PCD_4 1
#define CB_PCD_5 1
#define CB_PCD_6 1
#define CB_PCD_7 1
#define CB_PORT_4 D
#define CB_BIT_4 4
#define CB_PORT_5 D
#define CB_BIT_5 5
#define CB_PORT_6 D
#define CB_BIT_6 6
#define CB_PORT_7 D
#define CB_BIT_7 7
#define CB_PORT_8 B
#define CB_BIT_8 0
#define CB_PORT_9 B
#define CB_BIT_9 1
#define CB_PORT_10 B
#define CB_BIT_10 2
#define CB_PORT_11 B
#define CB_BIT_11 3
#define CB_PORT_12 B
#define CB_BIT_12 4
#define CB_PORT_13 B
#define CB_BIT_13 5
#define CB_LICK_KIND 2
#define CB_FRAME_KIND 2
#define CB_EVENT_RING 32  // 2 kB of RAM

#else
#error "corridor_board supports the Arduino Mega 2560 (atmega2560) and Uno (atmega328p) at 16 MHz; see board.h"
#endif

// 500000 baud: exact with U2X on 16 MHz (UBRR 3), and supported by the Mega's 16U2 and by CH340, FTDI and
// CP210x bridges; 1000000 is exact too (not on a CP2102). See docs/serial-protocol.md for the budget.
#ifndef SERIAL_BAUD
#define SERIAL_BAUD 500000UL
#endif

#if F_CPU != 16000000L
#error "corridor_board is written for a 16 MHz clock (baud rate, micros() and valve timer ticks)"
#endif

// ---- compile-time checks of the pin map ------------------------------------------------------------
#define CB_EXT(pin) CB_XCAT(CB_EXT_, pin)
#define CB_PORT(pin) CB_XCAT(CB_PORT_, pin)
#define CB_BIT(pin) CB_XCAT(CB_BIT_, pin)

#if CB_EXT(PIN_ENC_A) == 0
#error "PIN_ENC_A has no external interrupt on this board (Mega: 2, 3, 18, 19, 20, 21; Uno: 2, 3)"
#endif
#if CB_EXT(PIN_ENC_B) == 0
#error "PIN_ENC_B has no external interrupt on this board (Mega: 2, 3, 18, 19, 20, 21; Uno: 2, 3)"
#endif
#if CB_LICK_KIND == 1 && CB_EXT(PIN_LICK) == 0
#error "PIN_LICK has no external interrupt on this board (Mega: 2, 3, 18, 19, 20, 21)"
#endif
#if CB_FRAME_KIND == 1 && CB_EXT(PIN_FRAME) == 0
#error "PIN_FRAME has no external interrupt on this board (Mega: 2, 3, 18, 19, 20, 21)"
#endif
#if CB_LICK_KIND == 2 && CB_XCAT(CB_PCD_, PIN_LICK) != 1
#error "PIN_LICK must be a port D pin-change pin on the Uno (4, 5, 6 or 7)"
#endif
#if CB_FRAME_KIND == 2 && CB_XCAT(CB_PCD_, PIN_FRAME) != 1
#error "PIN_FRAME must be a port D pin-change pin on the Uno (4, 5, 6 or 7)"
#endif
#if PIN_ENC_A == PIN_ENC_B || PIN_ENC_A == PIN_LICK || PIN_ENC_A == PIN_FRAME || PIN_ENC_B == PIN_LICK || \
    PIN_ENC_B == PIN_FRAME || PIN_LICK == PIN_FRAME
#error "encoder A, encoder B, lick and frame clock need four different pins"
#endif
#if PIN_VALVE == PIN_CUE || PIN_VALVE == PIN_SYNC || PIN_CUE == PIN_SYNC
#error "valve, cue and sync need three different pins"
#endif
#if PIN_VALVE == PIN_ENC_A || PIN_VALVE == PIN_ENC_B || PIN_VALVE == PIN_LICK || PIN_VALVE == PIN_FRAME
#error "the valve pin is also an input pin"
#endif

// The valve must be Timer1's compare output OC1A: the compare match closes it in hardware, whatever the
// interrupts are doing (see corridor_board.ino). OC1A is PB5 (pin 11) on the Mega, PB1 (pin 9) on the Uno.
#if defined(__AVR_ATmega2560__)
#define CB_OC1A_PIN 11
#else
#define CB_OC1A_PIN 9
#endif
#if PIN_VALVE != CB_OC1A_PIN
#error "PIN_VALVE must be Timer1's OC1A pin (Mega: 11, Uno: 9), which closes the valve in hardware"
#endif

// Register names for a pin: PIN_REG(PIN_ENC_A) -> PINE, etc.
#define CB_PINREG(pin) CB_XCAT(PIN, CB_PORT(pin))
#define CB_PORTREG(pin) CB_XCAT(PORT, CB_PORT(pin))
#define CB_DDRREG(pin) CB_XCAT(DDR, CB_PORT(pin))
#define CB_INTNUM(pin) (CB_EXT(pin) - 1)
#define CB_INT_VECT(pin) CB_XCAT3(INT, CB_INTNUM_TOKEN(pin), _vect)  // one paste: INT4 alone is a macro
// A token (not an expression) for the vector name: one more table.
#define CB_INTNUM_TOKEN(pin) CB_XCAT(CB_INTTOK_, pin)
#if defined(__AVR_ATmega2560__)
#define CB_INTTOK_2 4
#define CB_INTTOK_3 5
#define CB_INTTOK_18 3
#define CB_INTTOK_19 2
#define CB_INTTOK_20 1
#define CB_INTTOK_21 0
#else
#define CB_INTTOK_2 0
#define CB_INTTOK_3 1
#endif
