// Prints the pin map board.h resolves to (preprocessed only, never compiled): hil/Makefile writes it to
// build/<board>/pins.txt ("pin NAME ARDUINO_PIN PORT BIT" lines) so that the tests drive the very pins
// the firmware was built for.
#include "board.h"
#define CB_PIN_LINE(name, p) pin name p CB_PORT(p) CB_BIT(p)
mcu CB_MCU_NAME
baud SERIAL_BAUD
CB_PIN_LINE(enc_a, PIN_ENC_A)
CB_PIN_LINE(enc_b, PIN_ENC_B)
CB_PIN_LINE(lick, PIN_LICK)
CB_PIN_LINE(frame, PIN_FRAME)
CB_PIN_LINE(valve, PIN_VALVE)
CB_PIN_LINE(cue, PIN_CUE)
CB_PIN_LINE(sync, PIN_SYNC)
