"""Pre-session checks (rig.setup.checks and `rig check`) on the simulated rig and on broken fakes."""

from __future__ import annotations

import json

import numpy as np

from drivers.base import BallSamples, CheckResult, ClockMap, LickEdge
from drivers.registry import Registry
from rig.cli.main import main
from rig.loading import load_config
from rig.runner.clock import VirtualClock
from rig.setup.checks import DEFAULT_CHECKS, CheckContext, CheckSettings, run_checks
from tests.support.paths import REPO

SIM = REPO / "config" / "sim.yaml"


def run_cli(argv: list[str]) -> int:
    return main(["check", *argv])  # the `rig` entry point: its error handling included


def test_sim_rig_passes_every_check() -> None:
    report = run_checks(load_config(SIM))
    assert report.ok
    names = [r.name for r in report.results]
    for n in ("encoder moves", "lick line idle", "valve clicks", "frame clock present", "cue output"):
        assert n in names
    enc = next(r for r in report.results if r.name == "encoder moves")
    assert "cm" in enc.message


def test_cli_json_for_the_gui(tmp_path, capsys) -> None:
    assert run_cli(["--config", str(SIM), "--json", "--data", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and out["config"] == "sim"
    assert all(set(r) == {"name", "ok", "message"} for r in out["results"])


def test_cli_text_and_bad_config(tmp_path, capsys) -> None:
    assert run_cli(["--config", str(SIM), "--no-imaging", "--data", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "PASS  frame clock present: not imaging: skipped" in text and "all checks passed" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(SIM.read_text().replace("counts_per_cm: 100", "counts_per_cm: -1"))
    assert run_cli(["--config", str(bad), "--data", str(tmp_path)]) == 2
    assert "counts_per_cm" in capsys.readouterr().err


def test_every_check_run_goes_into_the_rigs_history(tmp_path, capsys) -> None:
    from rig.lab import rig_history

    assert run_cli(["--config", str(SIM), "--data", str(tmp_path), "--by", "Doe, Jane"]) == 0
    assert f"(recorded in {tmp_path / 'rig-sim.history.jsonl'})" in capsys.readouterr().out
    assert run_cli(["--config", str(SIM), "--data", str(tmp_path), "--json", "--no-imaging"]) == 0
    first, second = rig_history.read(tmp_path / "rig-sim.history.jsonl")
    assert isinstance(first, rig_history.CheckRecord) and first.ok and first.by == "Doe, Jane"
    assert [r.name for r in first.results] == [r["name"] for r in run_checks(load_config(SIM)).to_json()["results"]]
    assert isinstance(second, rig_history.CheckRecord)
    assert any(r.message == "not imaging: skipped" for r in second.results)


# ---- failures, with fakes at the driver boundary ------------------------------------------------------


class _Fake:
    def __init__(self, params, context) -> None:
        self.clock = ClockMap()
        self._clock = context.clock
        self.opened = False
        self.closed_valve = 0

    def open(self) -> None:
        self.opened = True

    def close(self) -> None:
        self.opened = False

    def self_test(self) -> list[CheckResult]:
        return [CheckResult("fake", True, "ok")]


class StillBall(_Fake):
    """An encoder that samples but never moves (disconnected encoder, ball stuck)."""

    counts_per_cm = 100.0
    Params = None

    def read(self) -> BallSamples:
        t = self._clock.now()
        return BallSamples(np.array([t]), np.array([0]))


class StuckLick(_Fake):
    """A lick line shorted: one onset at the start, never released."""

    def __init__(self, params, context) -> None:
        super().__init__(params, context)
        self._sent = False

    def read(self) -> list[LickEdge]:
        if self._sent:
            return []
        self._sent = True
        return [LickEdge(self._clock.now(), True)]


class DeadFrameClock(_Fake):
    def read(self) -> np.ndarray:
        return np.zeros(0)


class BrokenCue(_Fake):
    def play(self, duration_ms: float, frequency_hz: float) -> None:
        raise OSError("speaker amplifier not answering")


def registry_with(**fakes: type) -> Registry:
    """The sim drivers, with some roles' 'sim' type replaced by fakes."""
    from pydantic import BaseModel, ConfigDict

    import drivers.sim as sim

    class AnyParams(BaseModel):
        model_config = ConfigDict(extra="allow")

    reg = Registry()
    base = {"ball": sim.SimBall, "lick": sim.SimLick, "valve": sim.SimValve, "cue": sim.SimCue,
            "frame_clock": sim.SimFrameClock, "display": sim.SimDisplay}
    for role, cls in {**base, **fakes}.items():
        if cls is not base[role]:
            cls.Params = AnyParams
        reg.add(role, "sim", cls)
    return reg


def test_each_broken_device_fails_its_check_and_the_others_still_run() -> None:
    reg = registry_with(ball=StillBall, lick=StuckLick, frame_clock=DeadFrameClock, cue=BrokenCue)
    cfg = load_config(SIM, reg)
    report = run_checks(cfg, registry=reg, clock=VirtualClock())
    by = {r.name: r for r in report.results}
    assert not report.ok
    assert not by["encoder moves"].ok and "needs at least" in by["encoder moves"].message
    assert not by["lick line idle"].ok and "contact held" in by["lick line idle"].message
    assert not by["frame clock present"].ok and "0 frame edge(s)" in by["frame clock present"].message
    assert not by["cue output"].ok and "speaker amplifier not answering" in by["cue output"].message
    assert by["valve clicks"].ok


def test_a_driver_that_cannot_open_is_one_failed_result() -> None:
    class Unplugged(_Fake):
        def open(self) -> None:
            raise OSError("NI-DAQ device 'Dev1' not found; devices found: none")

    reg = registry_with(lick=Unplugged)
    report = run_checks(load_config(SIM, reg), registry=reg)
    assert [(r.name, r.ok) for r in report.results] == [("open drivers", False)]
    assert "Dev1" in report.results[0].message


def test_extra_checks_plug_in_after_the_defaults() -> None:
    seen: list[CheckContext] = []

    def mesoscope_sync(ctx: CheckContext) -> list[CheckResult]:
        seen.append(ctx)
        return [CheckResult("mesoscope sync", False, "no frame messages")]

    report = run_checks(load_config(SIM), checks=(*DEFAULT_CHECKS, mesoscope_sync),
                        settings=CheckSettings(window_s=1.0))
    assert report.results[-1].name == "mesoscope sync" and not report.ok
    assert set(seen[0].drivers) == {"valve", "ball", "lick", "cue", "frame_clock"}


def test_operator_is_told_what_to_do_on_an_interactive_rig() -> None:
    said: list[str] = []
    reg = registry_with(ball=StillBall)
    from rig.setup import checks

    report = run_checks(load_config(SIM, reg), checks=(checks.encoder_moves, checks.valve_clicks), registry=reg,
                        say=said.append, interactive=True, settings=CheckSettings(window_s=0.5))
    assert not report.ok
    assert said == ["Turn the ball forward now: watching the encoder for 0.5 s"]
    assert report.results[-1].message.endswith("listen for the click")
