"""`rig prime`: seconds of opening as pulses each within max_open_ms, with closed gaps, only outside
sessions, logged in the rig's history."""

from __future__ import annotations

import pytest

import drivers.sim as sim
from drivers.registry import Registry
from rig.cli.main import main
from rig.lab import rig_history
from rig.loading import load_config
from rig.runner.clock import VirtualClock
from rig.runner.lock import LOCK_DIR_ENV, RigLock
from rig.setup.prime import PrimePlan, prime
from tests.support.paths import REPO

SIM = REPO / "config" / "sim.yaml"


def recording_registry(made: list[sim.SimValve]) -> Registry:
    class RecordingValve(sim.SimValve):
        def __init__(self, params, context) -> None:
            super().__init__(params, context)
            made.append(self)

    reg = Registry()
    reg.add("valve", "sim", RecordingValve)
    return reg


@pytest.mark.parametrize(("args", "words"), [
    ((0, 1000.0), "--seconds must be > 0"),
    ((301, 1000.0), "at most 300"),
    ((5, 1000.0, 1500.0), "--pulse-ms must be > 0 and at most the valve's max_open_ms 1000"),
    ((5, 1000.0, None, 5.0), "--gap-ms must be at least 20"),
])
def test_a_bad_plan_is_refused(args, words) -> None:
    with pytest.raises(ValueError, match=words):
        PrimePlan.make(*args)


def test_the_line_fills_with_pulses_each_within_max_open_ms() -> None:
    config = load_config(SIM)  # max_open_ms 1000
    plan = PrimePlan.make(3.5, 1000.0, gap_ms=50.0)
    assert plan.pulses() == [1000.0, 1000.0, 1000.0, 500.0] and plan.wall_s == pytest.approx(3.65)
    made: list[sim.SimValve] = []
    result = prime(config, plan, registry=recording_registry(made), clock=VirtualClock())
    (valve,) = made
    ops = valve.openings
    assert [round(o.duration_ms, 9) for o in ops] == [1000.0, 1000.0, 1000.0, 500.0]
    assert all((o.t_close - o.t_open) * 1000 <= valve.max_open_ms + 1e-9 for o in ops)
    gaps = [b.t_open - a.t_close for a, b in zip(ops, ops[1:], strict=False)]
    assert gaps == pytest.approx([0.05] * 3)  # closed between openings
    assert (result.pulses, result.open_s, result.complete) == (4, 3.5, True)
    assert not valve.is_open


def test_a_stop_ends_priming_after_the_current_opening() -> None:
    made: list[sim.SimValve] = []
    calls = iter([False, False, True])
    result = prime(load_config(SIM), PrimePlan.make(10, 1000.0), registry=recording_registry(made),
                   clock=VirtualClock(), stop=lambda: next(calls))
    assert (result.pulses, result.complete, result.reason) == (2, False, "stopped by a signal")
    assert len(made[0].openings) == 2


def test_cli_primes_logs_and_refuses_while_the_rig_is_busy(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))
    data = str(tmp_path / "data")
    assert main(["prime", "--seconds", "2.5", "--pulse-ms", "400", "--data", data, "--by", "Doe, Jane"]) == 0
    assert "primed: 7 opening(s), 2.5 s open" in capsys.readouterr().out
    (entry,) = rig_history.read(tmp_path / "data" / "rig-sim.history.jsonl")
    assert isinstance(entry, rig_history.PrimeRecord)
    assert (entry.pulses, entry.pulse_ms, entry.open_s, entry.complete, entry.by) == (7, 400.0, 2.5, True,
                                                                                     "Doe, Jane")
    with RigLock.acquire("sim", animal="M1", protocol="demo"):
        assert main(["prime", "--seconds", "2", "--data", data]) == 3
        assert "already running a session" in capsys.readouterr().err
    assert main(["prime", "--seconds", "2", "--pulse-ms", "5000", "--data", data]) == 2
    assert len(rig_history.read(tmp_path / "data" / "rig-sim.history.jsonl")) == 1  # refusals prime nothing
