"""Valve calibration: pulses on the sim valve, the fit, and rewriting only the config's calibration."""

from __future__ import annotations

import argparse
import io
import shutil
import sys
from pathlib import Path

import pytest

from drivers.registry import Registry
from rig.cli.commands import calibrate as calibrate_cmd
from rig.loading import load_config
from rig.runner.clock import VirtualClock
from rig.setup.calibrate import calibrate_valve, fit_points, replace_section, volumes_ul, write_calibration
from rig.setup.checks import open_drivers
from tests.support.paths import REPO

SIM = REPO / "config" / "sim.yaml"


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    p = tmp_path / "rig.yaml"
    shutil.copy(SIM, p)
    return p


def test_grams_to_microlitres_per_opening() -> None:
    assert volumes_ul([0.2, 0.41], pulses=100) == pytest.approx([2.0, 4.1])
    with pytest.raises(ValueError, match="positive number of grams"):
        volumes_ul([0.0], 100)


def test_fit_shows_line_and_residuals() -> None:
    fit = fit_points([20, 40, 80], [2.0, 4.1, 7.9])
    assert fit.slope_ul_per_ms == pytest.approx(0.097857, rel=1e-4)
    assert sum(fit.residuals_ul) == pytest.approx(0.0, abs=1e-9)
    text = fit.report()
    assert "residual" in text and "+0.086" in text and "ul/ms" in text
    with pytest.raises(ValueError, match="volume must increase"):
        fit_points([20, 40], [5.0, 2.0])


def test_calibrate_runs_the_pulses_on_the_sim_valve(cfg_path: Path) -> None:
    cfg = load_config(cfg_path)
    clock = VirtualClock()
    asked: list[float] = []

    def weigh(d: float) -> float:
        asked.append(d)
        return {20.0: 0.2, 40.0: 0.41, 80.0: 0.79}[d]

    # A sim valve that remembers itself, so the test can look at the openings the calibration made.
    import drivers.sim as sim

    made: list[sim.SimValve] = []

    class RecordingValve(sim.SimValve):
        def __init__(self, params, context) -> None:
            super().__init__(params, context)
            made.append(self)

    reg = Registry()
    reg.add("valve", "sim", RecordingValve)
    fit = calibrate_valve(cfg, [20, 40, 80], pulses=10, interval_ms=150, weigh=weigh, clock=clock, registry=reg)
    assert asked == [20.0, 40.0, 80.0]
    (valve,) = made
    durations = [round(o.duration_ms, 6) for o in valve.openings]
    assert durations == [20.0] * 10 + [40.0] * 10 + [80.0] * 10
    starts = [o.t_open for o in valve.openings[:10]]
    assert [round(b - a, 9) for a, b in zip(starts, starts[1:], strict=False)] == [0.15] * 9
    assert [p.volume_ul for p in fit.points] == pytest.approx([20.0, 41.0, 79.0])


def test_calibrate_refuses_bad_requests(cfg_path: Path) -> None:
    cfg = load_config(cfg_path)
    with pytest.raises(ValueError, match="interval 50 ms is too short"):
        calibrate_valve(cfg, [40], 5, 50, [0.1], clock=VirtualClock())
    with pytest.raises(ValueError, match="exceed the valve's max_open_ms"):
        calibrate_valve(cfg, [2000], 1, 3000, [0.1], clock=VirtualClock())
    with pytest.raises(ValueError, match="2 durations but 1 weights"):
        calibrate_valve(cfg, [20, 40], 1, 100, [0.1], clock=VirtualClock())


def test_write_replaces_only_the_calibration_and_keeps_a_backup(cfg_path: Path) -> None:
    before = cfg_path.read_text()
    fit = fit_points([20, 40, 80], [2.0, 4.1, 7.9])
    backup = write_calibration(cfg_path, fit)
    assert backup.read_text() == before
    after = cfg_path.read_text()
    cfg = load_config(cfg_path)
    assert [(p.duration_ms, p.volume_ul) for p in cfg.valve_calibration.points] == [(20, 2.0), (40, 4.1), (80, 7.9)]
    # Everything outside the section, comments included, is as it was.
    strip = [ln for ln in before.splitlines() if not ln.startswith("    - {duration_ms")]
    strip_after = [ln for ln in after.splitlines() if not ln.startswith("    - {duration_ms")]
    assert [ln for ln in strip if not ln.strip().startswith("points:")] == [
        ln for ln in strip_after if not ln.strip().startswith("points:")
    ]
    assert "# volume per opening, as weighed" in after


def test_replace_section_handles_inline_and_missing_sections() -> None:
    fit = fit_points([10, 30], [1.0, 3.2])
    inline = "name: x\nvalve_calibration: {points: [{duration_ms: 1, volume_ul: 1}]}\ndrivers: {}\n"
    out = replace_section(inline, fit)
    assert out.startswith("name: x\nvalve_calibration:\n  points:") and out.endswith("drivers: {}\n")
    assert "{duration_ms: 30, volume_ul: 3.2}" in out
    missing = replace_section("name: x", fit)
    assert missing.startswith("name: x\nvalve_calibration:\n  points:")


def test_cli_reads_weights_from_stdin_and_writes_the_config(cfg_path, monkeypatch, capsys) -> None:
    parser = argparse.ArgumentParser()
    calibrate_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["calibrate-valve", "--config", str(cfg_path), "--durations", "20,40",
                              "--pulses", "4", "--interval-ms", "100"])
    monkeypatch.setattr(sys, "stdin", io.StringIO("0.008\nnot-a-number\n-1\n0.0164\n"))
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert "not a number: 'not-a-number'" in captured.err and "must be > 0 g" in captured.err
    assert "residual" in captured.out and "wrote valve_calibration" in captured.out
    points = load_config(cfg_path).valve_calibration.points
    assert [(p.duration_ms, p.volume_ul) for p in points] == [(20, 2.0), (40, 4.1)]
    assert (cfg_path.parent / "rig.yaml.bak").exists()


def test_cli_end_of_input_writes_nothing(cfg_path, monkeypatch, capsys) -> None:
    parser = argparse.ArgumentParser()
    calibrate_cmd.register(parser.add_subparsers())
    before = cfg_path.read_text()
    args = parser.parse_args(["calibrate-valve", "--config", str(cfg_path), "--pulses", "2"])
    monkeypatch.setattr(sys, "stdin", io.StringIO("0.004\n"))
    assert args.func(args) == 2
    assert "no weight given for 40 ms" in capsys.readouterr().err
    assert cfg_path.read_text() == before and not (cfg_path.parent / "rig.yaml.bak").exists()


def test_open_drivers_closes_the_valve_first(cfg_path: Path) -> None:
    cfg = load_config(cfg_path)
    with open_drivers(cfg, ["valve"], VirtualClock()) as d:
        d["valve"].open_valve()
        assert d["valve"].held_open
    assert not d["valve"].is_open and len(d["valve"].openings) == 1
