"""Test support: a private X server for Qt, started before any QApplication exists."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rig.vr.xvfb import Xvfb, XvfbError

__all__ = ["XvfbError", "qt_display", "xvfb"]


def _qt_app_alive() -> bool:
    qt = sys.modules.get("PyQt5.QtWidgets")
    return qt is not None and qt.QApplication.instance() is not None


@contextmanager
def xvfb(width: int = 1600, height: int = 1000, timeout_s: float = 10.0) -> Iterator[str]:
    """A private Xvfb (rig.vr.xvfb.Xvfb) for the duration; yields the DISPLAY string."""
    server = Xvfb(width, height, timeout_s=timeout_s)
    display = server.start()
    try:
        yield display
    finally:
        # Qt aborts the whole process (exit 1) when its X server vanishes under a live QApplication; the
        # server then ends with this process instead (Xvfb is started to die with its parent).
        if not _qt_app_alive():
            server.stop()


@contextmanager
def qt_display(width: int = 1600, height: int = 1000) -> Iterator[str | None]:
    """Point DISPLAY at a private Xvfb for the duration. When a QApplication exists already (another test
    module made it, on its own display), reuse that. Fails loudly without Xvfb: GUI tests never skip."""
    from PyQt5 import QtWidgets

    if QtWidgets.QApplication.instance() is not None:
        yield os.environ.get("DISPLAY")
        return
    old = os.environ.get("DISPLAY")
    with xvfb(width, height) as display:
        os.environ["DISPLAY"] = display
        os.environ.pop("QT_QPA_PLATFORM", None)
        try:
            yield display
        finally:
            if old is None:
                os.environ.pop("DISPLAY", None)
            else:
                os.environ["DISPLAY"] = old
