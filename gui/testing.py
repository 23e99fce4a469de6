"""Test support: a private X server for Qt, started before any QApplication exists."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def qt_display(width: int = 1600, height: int = 1000) -> Iterator[str | None]:
    """Start Xvfb on a free display and point DISPLAY at it for the duration. When a QApplication exists
    already (another test module made it, on its own display), reuse that. Fails loudly without Xvfb:
    GUI tests are never skipped silently."""
    from PyQt5 import QtWidgets

    from rig.vr.xvfb import Xvfb

    if QtWidgets.QApplication.instance() is not None:
        yield os.environ.get("DISPLAY")
        return
    old = os.environ.get("DISPLAY")
    with Xvfb(width, height) as display:
        os.environ["DISPLAY"] = display
        os.environ.pop("QT_QPA_PLATFORM", None)
        try:
            yield display
        finally:
            if old is None:
                os.environ.pop("DISPLAY", None)
            else:
                os.environ["DISPLAY"] = old
