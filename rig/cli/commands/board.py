"""`rig emulate-board`: the serial board emulator on a pseudo-terminal (prints the device path)."""

from __future__ import annotations


def emulate_board(argv: list[str]) -> int:
    from drivers.serial_board.emulator import main

    return int(main(argv) or 0)


# Commands whose options belong to another program: `rig NAME ARGS...` hands ARGS over untouched.
PASSTHROUGH = {"emulate-board": emulate_board}


def register(sub) -> None:
    sub.add_parser("emulate-board", help="emulate the serial microcontroller board on a pty (--help for options)",
                   add_help=False)
