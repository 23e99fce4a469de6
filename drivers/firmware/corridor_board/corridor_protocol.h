// Wire protocol of the corridor board (docs/serial-protocol.md), free of Arduino calls so the host
// can compile and test it with g++ (tests/firmware/test_protocol_header.py). Packet: type u8 | seq u16 |
// t_us u32 | payload | crc16, all little-endian; CRC-16/CCITT-FALSE over everything before it; sent as
// 0x00 COBS(packet) 0x00.
#pragma once

#include <stddef.h>
#include <stdint.h>
#if defined(__AVR__)
#include <util/crc16.h>
#endif

namespace cp {

const uint8_t PROTOCOL_VERSION = 2;
const size_t HEADER_SIZE = 7;
const size_t MAX_PAYLOAD = 40;
const size_t MAX_PACKET = HEADER_SIZE + MAX_PAYLOAD + 2;
const size_t MAX_WIRE = MAX_PACKET + MAX_PACKET / 254 + 3;  // COBS overhead + two delimiters

// Bytes on the wire for a payload of n bytes: header, CRC, one COBS code byte (packets < 254 bytes) and
// the two delimiters.
constexpr size_t wire_size(size_t payload) { return HEADER_SIZE + payload + 2 + 1 + 2; }

enum PacketType : uint8_t {
  HELLO = 0x01,
  HEARTBEAT = 0x02,
  ENCODER = 0x03,
  LICK = 0x04,
  FRAME = 0x05,
  SYNC = 0x06,
  VALVE = 0x07,
  ACK = 0x08,
  ERROR = 0x09,
  CMD_HELLO = 0x81,
  CMD_VALVE_PULSE = 0x82,
  CMD_VALVE_OPEN = 0x83,
  CMD_VALVE_CLOSE = 0x84,
  CMD_CUE = 0x85,
  CMD_SYNC_PULSE = 0x86,
  CMD_SYNC_RANDOM = 0x87,
  CMD_CONFIG = 0x88,
};

enum ResetCause : uint8_t { CAUSE_BOOT = 0, CAUSE_REQUESTED = 1 };
enum ValveReason : uint8_t { VALVE_COMMAND = 0, VALVE_PULSE_DONE = 1, VALVE_MAX_OPEN = 2 };
enum AckStatus : uint8_t { ACK_OK = 0, ACK_CLAMPED = 1, ACK_BAD_ARGS = 2, ACK_UNKNOWN = 3 };
enum ErrorCode : uint8_t { ERR_BAD_FRAME = 1, ERR_BAD_CRC = 2, ERR_UNKNOWN_COMMAND = 3, ERR_TX_OVERFLOW = 4 };
enum Lines : uint8_t { LINE_VALVE = 1, LINE_LICK = 2, LINE_SYNC = 4, LINE_FRAME = 8 };
enum FrameEdge : uint8_t { EDGE_FALLING = 0, EDGE_RISING = 1, EDGE_KEEP = 0xFF };
enum Mcu : uint8_t { MCU_OTHER = 0, MCU_ATMEGA2560 = 1, MCU_ATMEGA328P = 2 };

// Payload sizes of the board's packets (the host's struct layouts in drivers/serial_board/protocol.py).
const size_t HELLO_PAYLOAD = 39;
const size_t HEARTBEAT_PAYLOAD = 13;

// Payload size of each command (host -> board); -1: not a command.
inline int command_payload_size(uint8_t type) {
  switch (type) {
    case CMD_HELLO: return 1;
    case CMD_VALVE_PULSE: return 4;
    case CMD_VALVE_OPEN: return 0;
    case CMD_VALVE_CLOSE: return 0;
    case CMD_CUE: return 4;
    case CMD_SYNC_PULSE: return 2;
    case CMD_SYNC_RANDOM: return 6;
    case CMD_CONFIG: return 9;
    default: return -1;
  }
}

inline uint16_t crc16(const uint8_t* data, size_t n) {
  uint16_t crc = 0xFFFF;
  for (size_t i = 0; i < n; ++i) {
#if defined(__AVR__)
    crc = _crc_xmodem_update(crc, data[i]);  // same polynomial, MSB first; ~20 cycles a byte
#else
    crc ^= (uint16_t)data[i] << 8;
    for (int b = 0; b < 8; ++b) crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
#endif
  }
  return crc;
}

// COBS: out must hold n + n / 254 + 1 bytes; returns the encoded length (no zero bytes in it).
inline size_t cobs_encode(const uint8_t* in, size_t n, uint8_t* out) {
  size_t code_at = 0, o = 1;
  uint8_t code = 1;
  for (size_t i = 0; i < n; ++i) {
    if (in[i] != 0) {
      out[o++] = in[i];
      ++code;
    }
    if (in[i] == 0 || code == 0xFF) {
      out[code_at] = code;
      code_at = o++;
      code = 1;
    }
  }
  out[code_at] = code;
  return o;
}

// Returns the decoded length, or 0 when the frame is not valid COBS (a zero or a block past the end).
inline size_t cobs_decode(const uint8_t* in, size_t n, uint8_t* out, size_t out_cap) {
  size_t i = 0, o = 0;
  while (i < n) {
    uint8_t code = in[i];
    if (code == 0 || i + code > n) return 0;
    for (size_t k = i + 1; k < i + code; ++k) {
      if (o >= out_cap) return 0;
      out[o++] = in[k];
    }
    i += code;
    if (code != 0xFF && i < n) {
      if (o >= out_cap) return 0;
      out[o++] = 0;
    }
  }
  return o;
}

// Little-endian field writer for one packet.
struct Packet {
  uint8_t buf[MAX_PACKET];
  size_t n;

  Packet(uint8_t type, uint16_t seq, uint32_t t_us) : n(0) {
    u8(type);
    u16(seq);
    u32(t_us);
  }
  void u8(uint8_t v) {
    if (n < MAX_PACKET - 2) buf[n++] = v;
  }
  void u16(uint16_t v) {
    u8((uint8_t)v);
    u8((uint8_t)(v >> 8));
  }
  void u32(uint32_t v) {
    u16((uint16_t)v);
    u16((uint16_t)(v >> 16));
  }
  void i32(int32_t v) { u32((uint32_t)v); }

  // Appends the CRC and writes 0x00 COBS 0x00 into wire (MAX_WIRE bytes); returns the wire length.
  size_t finish(uint8_t* wire) {
    uint16_t crc = crc16(buf, n);
    buf[n++] = (uint8_t)crc;
    buf[n++] = (uint8_t)(crc >> 8);
    wire[0] = 0;
    size_t len = cobs_encode(buf, n, wire + 1);
    wire[len + 1] = 0;
    return len + 2;
  }
};

inline uint16_t rd_u16(const uint8_t* p) { return (uint16_t)(p[0] | (p[1] << 8)); }
inline uint32_t rd_u32(const uint8_t* p) { return (uint32_t)rd_u16(p) | ((uint32_t)rd_u16(p + 2) << 16); }

// A decoded host command; parse() checks COBS, length and CRC.
struct Command {
  uint8_t type;
  uint16_t seq;
  const uint8_t* payload;  // points into the caller's buffer
  enum Result { OK, BAD_FRAME, BAD_CRC, UNKNOWN };

  static Result parse(const uint8_t* frame, size_t n, uint8_t* scratch, size_t cap, Command* out) {
    size_t len = cobs_decode(frame, n, scratch, cap);
    if (len < HEADER_SIZE + 2) return BAD_FRAME;
    if (crc16(scratch, len - 2) != rd_u16(scratch + len - 2)) return BAD_CRC;
    out->type = scratch[0];
    out->seq = rd_u16(scratch + 1);
    out->payload = scratch + HEADER_SIZE;
    int want = command_payload_size(out->type);
    if (want < 0) return UNKNOWN;
    if (len != HEADER_SIZE + (size_t)want + 2) return BAD_FRAME;
    return OK;
  }
};

}  // namespace cp
