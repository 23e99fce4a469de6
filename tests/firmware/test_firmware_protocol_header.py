"""The firmware's protocol header (corridor_protocol.h), compiled for the PC with g++, encodes and parses the
same bytes as drivers/serial_board/protocol.py. (The whole firmware runs on simavr: test_firmware_hil.py.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from drivers.serial_board import protocol as P

FW = Path(__file__).resolve().parents[2] / "drivers" / "firmware" / "corridor_board"
GXX = shutil.which("g++")
T = P.PacketType


@pytest.fixture(autouse=True)
def _need_gxx() -> None:
    # A missing compiler is a broken test machine, not a pass: fail loudly (CI installs g++).
    assert GXX is not None, "g++ is needed to build the protocol probe for the host (apt-get install g++)"


PROBE = r"""
#include <stdio.h>
#include "corridor_protocol.h"
static void dump(cp::Packet& p) {
  uint8_t wire[cp::MAX_WIRE];
  size_t n = p.finish(wire);
  if (n != cp::wire_size(p.n - cp::HEADER_SIZE - 2)) printf("wire_size mismatch\n");
  for (size_t i = 0; i < n; ++i) printf("%02x", wire[i]);
  printf("\n");
}
int main(int argc, char** argv) {
  {
    cp::Packet p(cp::HEARTBEAT, 513, 4294967290u);
    p.u16(3); p.u8(cp::LINE_VALVE | cp::LINE_FRAME); p.u16(1); p.u16(2); p.u16(7); p.u16(4); p.u16(5);
    dump(p);
  }
  { cp::Packet p(cp::ENCODER, 0, 0); p.i32(-123456); dump(p); }
  {
    cp::Packet p(cp::ACK, 65535, 1000);
    p.u16(9); p.u8(cp::CMD_VALVE_PULSE); p.u8(cp::ACK_CLAMPED); p.u16(300);
    dump(p);
  }
  // Parse each command given in hex on the command line (the frame between the zeros).
  for (int a = 1; a < argc; ++a) {
    uint8_t frame[64], scratch[64];
    size_t n = 0;
    for (const char* s = argv[a]; s[0] && s[1]; s += 2) sscanf(s, "%2hhx", &frame[n++]);
    cp::Command c = {0, 0, scratch};
    int r = cp::Command::parse(frame, n, scratch, sizeof(scratch), &c);
    if (r != 0) printf("%d\n", r);
    else printf("%d %u %u %u %u\n", r, c.type, c.seq, cp::rd_u32(c.payload), c.payload[6]);
  }
  printf("%u %u\n", (unsigned)cp::HELLO_PAYLOAD, (unsigned)cp::HEARTBEAT_PAYLOAD);
  return 0;
}
"""


def test_firmware_protocol_header_matches_the_python_protocol(tmp_path: Path) -> None:
    src = tmp_path / "probe.cpp"
    src.write_text(PROBE)
    probe = tmp_path / "probe"
    subprocess.run([GXX, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-O1", f"-I{FW}", str(src), "-o", str(probe)],
                   check=True, capture_output=True, text=True)  # fmt: skip
    pulse = P.encode_packet(T.CMD_VALVE_PULSE, 77, 0, (37_500,))
    config = P.encode_packet(T.CMD_CONFIG, 78, 0, (250, 1000, 100, P.FrameEdge.RISING, 800))
    bad_crc = bytearray(P.cobs_decode(pulse[1:-1]))
    bad_crc[-1] ^= 1
    args = [pulse[1:-1].hex(), config[1:-1].hex(), P.cobs_encode(bytes(bad_crc)).hex()]
    lines = subprocess.run([probe, *args], check=True, capture_output=True, text=True).stdout.splitlines()
    heartbeat = (3, P.LINE_VALVE | P.LINE_FRAME, 1, 2, 7, 4, 5)
    assert lines[0] == P.encode_packet(T.HEARTBEAT, 513, 4294967290, heartbeat).hex()
    assert lines[1] == P.encode_packet(T.ENCODER, 0, 0, (-123456,)).hex()
    assert lines[2] == P.encode_packet(T.ACK, 65535, 1000, (9, T.CMD_VALVE_PULSE, P.AckStatus.CLAMPED, 300)).hex()
    assert lines[3].split()[:4] == ["0", str(int(T.CMD_VALVE_PULSE)), "77", "37500"]
    # CMD_CONFIG v2: max_open 250, encoder 1000 (the first u32 reads both), frame edge RISING at offset 6.
    assert lines[4].split() == ["0", str(int(T.CMD_CONFIG)), "78", str(250 | 1000 << 16), "1"]
    assert lines[5] == "2"  # BAD_CRC
    layouts = P.LAYOUTS
    assert lines[6].split() == [str(layouts[T.HELLO][0].size), str(layouts[T.HEARTBEAT][0].size)]
    assert "wire_size mismatch" not in lines
