// Minimal Arduino API for building the corridor_board sketch on a PC (tests only, not for boards).
// Serial is stdin/stdout, time is CLOCK_MONOTONIC, and input pins are driven by the simulation in
// shim_main.cpp (environment variables SHIM_QUAD, SHIM_TOGGLE) which calls the attached interrupts.
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef uint8_t byte;

#define HIGH 1
#define LOW 0
#define INPUT 0
#define OUTPUT 1
#define INPUT_PULLUP 2
#define CHANGE 1
#define FALLING 2
#define RISING 3
#define A0 14

uint32_t micros();
uint32_t millis();
void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t value);
int digitalRead(uint8_t pin);
int analogRead(uint8_t pin);
int digitalPinToInterrupt(uint8_t pin);
void attachInterrupt(int irq, void (*handler)(), int mode);
void noInterrupts();
void interrupts();
void tone(uint8_t pin, unsigned int frequency, unsigned long duration_ms);
void noTone(uint8_t pin);
void randomSeed(unsigned long seed);
long random(long max);
long random(long min, long max);

class HardwareSerial {
 public:
  void begin(unsigned long baud);
  int available();
  int read();
  size_t write(const uint8_t* data, size_t n);
  int availableForWrite();
  explicit operator bool() const { return true; }
};

extern HardwareSerial Serial;
