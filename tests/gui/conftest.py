"""Every app test runs on one private Xvfb screen (a real X server with GL, as the app needs), started once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gui.testing import qt_display


@pytest.fixture(scope="session", autouse=True)
def xvfb_display() -> Iterator[object]:
    with qt_display() as display:
        yield display
