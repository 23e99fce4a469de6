"""Prints the mesoscope fuzzers' per-boundary figures at the end of a run that included them."""

from __future__ import annotations

import sys

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    fuzz = sys.modules.get("tests.mesoscope.test_mesoscope_fuzz")
    if fuzz is None or not fuzz.STATS:
        return
    keys = ("tried", "hostile", "refused", "valid_frames", "frames_lost", "crashes", "hangs")
    terminalreporter.section("mesoscope fuzz, per boundary")
    for name, c in fuzz.STATS.items():
        terminalreporter.write_line(f"{name:<26} " + "  ".join(f"{k}={c.get(k, 0)}" for k in keys))
