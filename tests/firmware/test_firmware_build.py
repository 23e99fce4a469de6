"""The firmware builds with the real Arduino AVR core for every supported board, and refuses at compile time
what would not work on the chip (pins without the interrupt they need, an inexact baud rate, a valve pin
the timer interrupt cannot close in one instruction). A missing tool fails the test, never skips it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from drivers.serial_board import hil


@pytest.mark.parametrize("board", ["mega", "uno"])
def test_firmware_builds_for_the_board_and_fits(board: str) -> None:
    fw = hil.build(board)
    limits = {"mega": (253_952, 8192), "uno": (32_256, 2048)}[board]  # boards.txt maximum_size / data_size
    print(f"{board} ({fw.mcu}): flash {fw.flash_bytes} of {limits[0]} bytes, RAM {fw.ram_bytes} of {limits[1]}")
    assert 0 < fw.flash_bytes < limits[0] // 2
    # Static RAM leaves room for the stack (interrupts nest on it) and the core's serial buffers.
    assert 0 < fw.ram_bytes < limits[1] * 0.6
    assert fw.baud == 500_000
    assert fw.elf.with_suffix(".hex").stat().st_size > 0


def test_the_pin_map_is_the_interrupt_capable_one() -> None:
    mega = hil.build("mega").pins
    # Mega: 2/3 are INT4/INT5 (PE4/PE5), 18/19 are INT3/INT2 (PD3/PD2); the valve on PB5 (pin 11).
    inputs = ("enc_a", "enc_b", "lick", "frame", "valve")
    assert {k: (p.arduino, p.port, p.bit) for k, p in mega.items() if k in inputs} == {
        "enc_a": (2, "E", 4), "enc_b": (3, "E", 5), "lick": (18, "D", 3), "frame": (19, "D", 2), "valve": (11, "B", 5),
    }  # fmt: skip
    uno = hil.build("uno").pins
    assert (uno["lick"].arduino, uno["frame"].arduino, uno["valve"].port) == (4, 5, "B")


@pytest.mark.parametrize(
    ("board", "defines", "message"),
    [
        ("mega", "-DPIN_LICK=4", "PIN_LICK has no external interrupt"),  # the old default: silently dead
        ("mega", "-DPIN_FRAME=5", "PIN_FRAME has no external interrupt"),
        ("uno", "-DPIN_ENC_B=4", "PIN_ENC_B has no external interrupt"),
        ("uno", "-DPIN_LICK=9", "PIN_LICK must be a port D pin-change pin"),
        ("mega", "-DSERIAL_BAUD=115200UL", "SERIAL_BAUD is not exact"),
        ("mega", "-DPIN_VALVE=6", "PIN_VALVE must be Timer1's OC1A pin"),
        ("uno", "-DPIN_VALVE=10", "PIN_VALVE must be Timer1's OC1A pin"),
        ("mega", "-DPIN_LICK=2", "need four different pins"),
    ],
)
def test_a_pin_or_baud_that_cannot_work_stops_the_build(board: str, defines: str, message: str, tmp_path: Path) -> None:
    hil.check_tools()
    target = f"{tmp_path}/{board}/sketch.o"
    r = subprocess.run(
        ["make", "-s", "-C", str(hil.HIL_DIR), f"BUILD={tmp_path}", f"FW_DEFINES={defines}", target],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode != 0
    assert message in r.stderr


def test_1000000_baud_is_accepted_as_exact(tmp_path: Path) -> None:
    hil.check_tools()
    r = subprocess.run(
        ["make", "-s", "-C", str(hil.HIL_DIR), f"BUILD={tmp_path}", "FW_DEFINES=-DSERIAL_BAUD=1000000UL",
         f"{tmp_path}/mega/sketch.o"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
