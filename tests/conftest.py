from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fuzz_tally import TALLIES, FuzzTallies
from tests.support.paths import REPO


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def sim_config_path() -> Path:
    return REPO / "config" / "sim.yaml"


def pytest_configure(config: pytest.Config) -> None:
    config.stash[TALLIES] = FuzzTallies()


@pytest.fixture(scope="session")
def fuzz_tally(pytestconfig: pytest.Config) -> FuzzTallies:
    """Call it with (boundary, unit) for that boundary's Tally; the figures are printed at the end."""
    return pytestconfig.stash[TALLIES]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = config.stash[TALLIES].lines() if TALLIES in config.stash else []
    if lines:
        terminalreporter.section("fuzz, per boundary")
        for line in lines:
            terminalreporter.write_line(line)
