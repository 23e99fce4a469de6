from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import REPO


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def sim_config_path() -> Path:
    return REPO / "config" / "sim.yaml"
