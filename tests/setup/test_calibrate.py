"""Valve calibration: every parameter checked before the first pulse, every weighing checked before going
on, bad fits refused, the config rewritten with an id and date, and every attempt in the rig's history."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import sys
from pathlib import Path

import pytest

import drivers.sim as sim
from drivers.registry import Registry
from rig.cli.main import main
from rig.lab import rig_history
from rig.loading import load_config
from rig.runner.clock import VirtualClock
from rig.setup.calibrate import (
    Weighed,
    calibrate_valve,
    check_request,
    check_weighing,
    fit_points,
    replace_section,
    volumes_ul,
    write_calibration,
)
from rig.setup.checks import open_drivers
from tests.support.paths import REPO

SIM = REPO / "config" / "sim.yaml"
DAY = dt.date(2026, 11, 30)


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    p = tmp_path / "rig.yaml"
    shutil.copy(SIM, p)
    return p


class Recorder:
    """A registry whose sim valve remembers itself, to look at the openings a calibration made (or not)."""

    def __init__(self) -> None:
        self.valves: list[sim.SimValve] = []
        self.registry = Registry()
        made = self.valves

        class RecordingValve(sim.SimValve):
            def __init__(self, params, context) -> None:
                super().__init__(params, context)
                made.append(self)

        self.registry.add("valve", "sim", RecordingValve)

    @property
    def openings(self) -> list[float]:
        return [round(o.duration_ms, 6) for v in self.valves for o in v.openings]


def run_cli(argv: list[str]) -> int:
    return main(["calibrate-valve", *argv])  # the `rig` entry point: its error handling included


# ---- the request, before any pulse ---------------------------------------------------------------------


@pytest.mark.parametrize(("durations", "pulses", "interval", "words"), [
    ([20, 40], 10, 50, "interval 50 ms is too short for 40 ms openings; use at least 60 ms"),
    ([40], 10, 200, "give at least 2 durations"),
    ([20, 20, 40], 10, 200, "each duration once"),
    ([20, -5], 10, 200, "durations must be positive numbers of ms, got [-5.0]"),
    ([20, 2000], 10, 3000, "durations [2000.0] ms exceed the valve's max_open_ms 1000"),
    ([20, 40], 0, 200, "pulses must be a whole number from 1 to 10000, got 0"),
    ([20, 40], 10, float("nan"), "interval must be a number of ms"),
])
def test_every_parameter_is_checked_before_the_first_pulse(cfg_path: Path, durations, pulses, interval,
                                                            words) -> None:
    rec = Recorder()
    with pytest.raises(ValueError) as e:
        calibrate_valve(load_config(cfg_path), durations, pulses, interval, [0.1] * len(durations),
                        registry=rec.registry, clock=VirtualClock())
    assert words in str(e.value)
    assert rec.valves == []  # no driver was even opened


def test_all_problems_are_said_at_once(cfg_path: Path) -> None:
    with pytest.raises(ValueError) as e:
        check_request(load_config(cfg_path), [20], 0, 10)
    assert str(e.value).count(";") >= 2 and "pulses" in str(e.value) and "interval" in str(e.value)


def test_cli_refuses_a_short_interval_before_pulsing(cfg_path: Path, capsys) -> None:
    assert run_cli(["--config", str(cfg_path), "--interval-ms", "50", "--data", str(cfg_path.parent)]) == 2
    err = capsys.readouterr().err
    assert "interval 50 ms is too short for 80 ms openings" in err and "nothing was pulsed" in err
    assert not (cfg_path.parent / "rig-sim.history.jsonl").exists()


# ---- each weighing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("weighed", "previous", "pulses", "words"), [
    # the case: gross tube weights entered as water (10 openings: 105 ul each)
    (Weighed(1.05), [], 10, "looks like the weight of the tube with the water in it (gross)"),
    # gross weights over 100 openings look like 10.5 ul each, but barely change with the opening
    (Weighed(1.07), [(20.0, 10.5)], 100, "hardly more than the 10.5 ul of 20 ms (2% more for 2x the opening)"),
    (Weighed.of(1.05, 1.02), [], 100, "are the two weights swapped?"),
    (Weighed.of(0.0, 0.2), [], 100, "A tare is the weight of the empty tube"),
    (Weighed.of(1.0, 7.0), [], 100, "check the empty tube's weight (tare)"),
    (Weighed(0.0001), [], 100, "less than a working valve gives"),
    (Weighed(0.0), [], 100, "must weigh more than 0 g"),
    (Weighed(float("nan")), [], 100, "not a number of grams"),
    (Weighed(0.19), [(20.0, 2.0)], 100, "not more than the 2 ul of 20 ms"),
    (Weighed(2.0), [(20.0, 2.0)], 100, "was water lost from the 20 ms tube"),
])
def test_implausible_weighings_are_explained(weighed, previous, pulses, words) -> None:
    problem = check_weighing(40.0 if previous else 20.0, weighed, pulses, previous)
    assert problem is not None and words in problem


def test_plausible_weighings_pass() -> None:
    assert check_weighing(20, Weighed.of(1.05, 1.25), 100) is None  # 2 ul per opening
    assert check_weighing(40, Weighed(0.41), 100, [(20.0, 2.0)]) is None
    assert check_weighing(80, Weighed(0.79), 100, [(20.0, 2.0), (40.0, 4.1)]) is None


def test_a_refused_entry_is_asked_again_with_the_reason(cfg_path: Path) -> None:
    asked: list[tuple[float, str | None]] = []
    answers = {20.0: [Weighed(6.0), Weighed.of(1.0, 1.2)], 40.0: [Weighed.of(1.0, 1.41)]}

    def weigh(d: float, problem: str | None) -> Weighed:
        asked.append((d, problem))
        return answers[d].pop(0)

    rec = Recorder()
    run = calibrate_valve(load_config(cfg_path), [40, 20], 100, 150, weigh, registry=rec.registry,
                          clock=VirtualClock())
    assert [d for d, _ in asked] == [20.0, 20.0, 40.0]  # shortest first, the refused entry asked again
    assert asked[0][1] is None and asked[2][1] is None and "60 ul per opening" in asked[1][1]
    assert rec.openings == [20.0] * 100 + [40.0] * 100  # the water was not pulsed again
    assert [p.volume_ul for p in run.fit.points] == pytest.approx([2.0, 4.1]) and run.fit.ok
    assert len(run.refused_entries) == 1


def test_scripted_weights_stop_at_the_first_implausible_one(cfg_path: Path) -> None:
    with pytest.raises(ValueError, match="20 ms: .*gross"):
        calibrate_valve(load_config(cfg_path), [20, 40, 80], 10, 150, [1.05, 1.07, 1.10], clock=VirtualClock())


# ---- the fit ------------------------------------------------------------------------------------------


def test_grams_to_microlitres_per_opening() -> None:
    assert volumes_ul([0.2, 0.41], pulses=100) == pytest.approx([2.0, 4.1])
    with pytest.raises(ValueError, match="positive number of grams"):
        volumes_ul([0.0], 100)


def test_fit_shows_line_and_residuals() -> None:
    fit = fit_points([20, 40, 80], [2.0, 4.1, 7.9])
    assert fit.ok and fit.slope_ul_per_ms == pytest.approx(0.097857, rel=1e-4)
    assert sum(fit.residuals_ul) == pytest.approx(0.0, abs=1e-9)
    text = fit.report()
    assert "residual" in text and "+0.086" in text and "ul/ms" in text and "REFUSED" not in text


@pytest.mark.parametrize(("durations", "volumes", "words"), [
    ([20, 40], [5.0, 2.0], "volume must increase with duration"),
    ([10, 20], [4.0, 4.1], "implausible intercept: the line gives 3.9 ul at 0 ms (98% of the smallest"),
    ([20, 40, 80], [105.0, 107.0, 110.0], "implausible intercept"),  # gross tube weights / 10 openings
    ([10, 20, 40], [1.0, 1.5, 4.5], "poor fit: 20 ms measured 1.5 ul but the line gives"),
])
def test_bad_fits_are_reported_and_refused(durations, volumes, words) -> None:
    fit = fit_points(durations, volumes)
    assert not fit.ok and any(words in p for p in fit.problems)
    assert "REFUSED: " in fit.report() and "residual" in fit.report()
    with pytest.raises(ValueError, match="the fit was refused"):
        write_calibration("unused.yaml", fit)


def test_cli_refuses_a_bad_fit_writes_nothing_and_logs_the_attempt(cfg_path: Path, monkeypatch, capsys) -> None:
    before = cfg_path.read_text()
    # net weights that pass each check (against the one before) but do not lie on a line: 2, 4, 14 ul
    monkeypatch.setattr(sys, "stdin", io.StringIO("0.2\n0.4\n1.4\n"))
    assert run_cli(["--config", str(cfg_path), "--net", "--data", str(cfg_path.parent), "--by", "Doe, Jane"]) == 2
    captured = capsys.readouterr()
    assert "REFUSED: poor fit" in captured.out and "calibration refused, config not changed" in captured.err
    assert cfg_path.read_text() == before and not (cfg_path.parent / "rig.yaml.bak").exists()
    (entry,) = rig_history.read(cfg_path.parent / "rig-sim.history.jsonl")
    assert isinstance(entry, rig_history.CalibrationRecord)
    assert (entry.accepted, entry.written, entry.id, entry.by) == (False, False, None, "Doe, Jane")
    assert "poor fit" in entry.reason and [w.net_g for w in entry.weighings] == [0.2, 0.4, 1.4]


# ---- writing the config and the history ------------------------------------------------------------------


def test_calibrate_runs_the_pulses_on_the_sim_valve(cfg_path: Path) -> None:
    rec = Recorder()
    run = calibrate_valve(load_config(cfg_path), [20, 40, 80], 10, 150, [0.02, 0.041, 0.079], registry=rec.registry,
                          clock=VirtualClock())
    assert rec.openings == [20.0] * 10 + [40.0] * 10 + [80.0] * 10
    starts = [o.t_open for o in rec.valves[0].openings[:10]]
    assert [round(b - a, 9) for a, b in zip(starts, starts[1:], strict=False)] == [0.15] * 9
    assert [p.volume_ul for p in run.fit.points] == pytest.approx([2.0, 4.1, 7.9])


def test_write_replaces_only_the_calibration_with_id_and_date(cfg_path: Path) -> None:
    before = cfg_path.read_text()
    fit = fit_points([20, 40, 80], [2.0, 4.1, 7.9])
    backup, cal = write_calibration(cfg_path, fit, date=DAY)
    assert backup.read_text() == before
    cfg = load_config(cfg_path)
    assert cfg.valve_calibration == cal and cal.date == DAY and cal.id is not None and cal.id.startswith("cal-")
    assert [(p.duration_ms, p.volume_ul) for p in cal.points] == [(20, 2.0), (40, 4.1), (80, 7.9)]
    # Everything outside the section, comments included, is as it was.
    def outside(text: str) -> list[str]:
        lines = text.splitlines()
        start = next(i for i, ln in enumerate(lines) if ln.startswith("valve_calibration:"))
        end = next(i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace())
        return lines[:start + 1] + lines[end:]
    after = cfg_path.read_text()
    assert outside(before) == outside(after) and "# volume per opening, as weighed" in after
    assert f"  date: {DAY}\n" in after and f"  id: {cal.id}  # rig calibrate-valve: 0.09786 ul/ms" in after


def test_an_edited_calibration_no_longer_matches_its_id(cfg_path: Path) -> None:
    write_calibration(cfg_path, fit_points([20, 40, 80], [2.0, 4.1, 7.9]), date=DAY)
    cfg_path.write_text(cfg_path.read_text().replace("volume_ul: 7.9", "volume_ul: 8.1"))
    from rig.loading import ConfigError

    with pytest.raises(ConfigError) as e:
        load_config(cfg_path)
    (p,) = e.value.problems
    assert p.field == "valve_calibration.id" and "does not match the points and date" in p.message


def test_replace_section_handles_inline_and_missing_sections() -> None:
    fit = fit_points([10, 30], [1.0, 3.2])
    inline = "name: x\nvalve_calibration: {points: [{duration_ms: 1, volume_ul: 1}]}\ndrivers: {}\n"
    out = replace_section(inline, fit, DAY)
    assert out.startswith("name: x\nvalve_calibration:\n  id: cal-") and out.endswith("drivers: {}\n")
    assert "{duration_ms: 30, volume_ul: 3.2}" in out and f"  date: {DAY}\n" in out
    missing = replace_section("name: x", fit, DAY)
    assert missing.startswith("name: x\nvalve_calibration:\n  id: cal-")


def test_cli_asks_tare_and_filled_checks_them_writes_and_logs(cfg_path: Path, monkeypatch, capsys) -> None:
    # 20 ms: tare 1.05, then a swapped entry (refused, asked again), then 1.05 -> 1.058; 40 ms: 1.10 -> 1.1164
    stdin = "1.05\nnot-a-number\n1.02\n1.05\n1.058\n1.10\n1.1164\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert run_cli(["--config", str(cfg_path), "--durations", "40,20", "--pulses", "4", "--interval-ms", "100",
                    "--data", str(cfg_path.parent), "--by", "Doe, Jane"]) == 0
    captured = capsys.readouterr()
    assert "not a number: 'not-a-number'" in captured.err and "are the two weights swapped?" in captured.err
    assert "Weight of the empty tube" in captured.err and "residual" in captured.out
    cal = load_config(cfg_path).valve_calibration
    assert [(p.duration_ms, p.volume_ul) for p in cal.points] == [(20, 2.0), (40, 4.1)]
    assert cal.date == dt.date.today() and f"wrote valve_calibration {cal.id}" in captured.out
    assert (cfg_path.parent / "rig.yaml.bak").exists()
    (entry,) = rig_history.calibrations(cfg_path.parent / "rig-sim.history.jsonl")
    assert (entry.accepted, entry.written, entry.id, entry.pulses) == (True, True, cal.id, 4)
    assert [(w.tare_g, w.filled_g) for w in entry.weighings] == [(1.05, 1.058), (1.10, 1.1164)]
    line = json.loads((cfg_path.parent / "rig-sim.history.jsonl").read_text())
    assert line["kind"] == "calibration" and line["rig"] == "sim" and line["config"] == str(cfg_path)


def test_cli_end_of_input_writes_nothing(cfg_path: Path, monkeypatch, capsys) -> None:
    before = cfg_path.read_text()
    monkeypatch.setattr(sys, "stdin", io.StringIO("0.004\n"))
    assert run_cli(["--config", str(cfg_path), "--pulses", "2", "--net", "--data", str(cfg_path.parent)]) == 2
    assert "no weight given for 40 ms" in capsys.readouterr().err
    assert cfg_path.read_text() == before and not (cfg_path.parent / "rig.yaml.bak").exists()


def test_open_drivers_closes_the_valve_first(cfg_path: Path) -> None:
    cfg = load_config(cfg_path)
    with open_drivers(cfg, ["valve"], VirtualClock()) as d:
        d["valve"].open_valve()
        assert d["valve"].held_open
    assert not d["valve"].is_open and len(d["valve"].openings) == 1
