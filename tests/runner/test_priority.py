"""Raising the loop's priority: what was asked for, what was obtained, and a clear fallback."""

from __future__ import annotations

import os
import subprocess
import sys

from rig.runner.priority import raise_priority


def _in_child(code: str) -> str:
    # A child process, so the test never changes the scheduling of the test runner itself.
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          check=True).stdout.strip()


def test_normal_changes_nothing():
    out = _in_child("import os; from rig.runner.priority import raise_priority; "
                    "n = os.getpriority(os.PRIO_PROCESS, 0); "
                    "r = raise_priority('normal'); print(r, os.getpriority(os.PRIO_PROCESS, 0) == n, "
                    "os.sched_getscheduler(0) == os.SCHED_OTHER)")
    assert out == "normal True True"


def test_realtime_gets_fifo_or_says_why_not():
    out = _in_child("import os; from rig.runner.priority import raise_priority; r = raise_priority('realtime'); "
                    "print(r); print(os.sched_getscheduler(0) == os.SCHED_FIFO)")
    obtained, fifo = out.splitlines()
    if fifo == "True":
        assert obtained.startswith("realtime (SCHED_FIFO")
    else:
        assert obtained.startswith("normal (realtime refused:")


def test_high_lowers_nice_or_says_why_not():
    out = _in_child("import os; from rig.runner.priority import raise_priority; r = raise_priority('high'); "
                    "print(r); print(os.getpriority(os.PRIO_PROCESS, 0))")
    obtained, nice = out.splitlines()
    if obtained.startswith("high"):
        assert int(nice) == -10
    else:
        assert obtained.startswith("normal (high refused:")


def test_unprivileged_request_is_refused_cleanly():
    if os.geteuid() != 0:
        assert raise_priority("realtime").startswith("normal (realtime refused:")
        return
    # As root, drop privileges in a child (nobody) and ask again: refused, with the reason.
    # (Import first: the interpreter's files may not be readable by nobody.)
    out = _in_child("import os, logging; from rig.runner.priority import raise_priority; os.setgid(65534); "
                    "os.setuid(65534); print(raise_priority('realtime'))")
    assert out.startswith("normal (realtime refused:")
