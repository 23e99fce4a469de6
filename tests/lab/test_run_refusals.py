"""What `rig run` refuses before anything starts (exit 2, no session folder): an animal missing with real
devices, reward volumes the valve cannot give as logged, and what the lab records and the config forbid."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from rig.cli.main import main
from rig.lab.subjects import Subject, create_subject
from rig.lab.water import check_reward_volumes
from rig.loading import load_config, load_protocol
from tests.support.paths import REPO

SIM = REPO / "config" / "sim.yaml"
TRAIN = REPO / "protocols" / "train1_task.yaml"


def rig(*argv: str) -> int:
    return main(list(argv))


def sessions_under(data: Path) -> list[Path]:
    return sorted(data.glob("*/*/[0-9][0-9][0-9]"))


def config_with(tmp_path: Path, text_from: Path, edit: dict[str, str]) -> Path:
    text = text_from.read_text()
    for old, new in edit.items():
        assert old in text, old
        text = text.replace(old, new)
    out = tmp_path / "rig.yaml"
    out.write_text(text)
    return out


# ---- --animal with real devices -----------------------------------------------------------------------


def test_a_config_with_real_devices_needs_an_animal(tmp_path: Path, capsys) -> None:
    board = REPO / "config" / "board-emulated.yaml"  # names serial_board devices: nothing is opened here
    assert rig("run", "demo", "--config", str(board), "--data", str(tmp_path), "-q") == 2
    err = capsys.readouterr().err
    assert "names real devices (ball: serial_board, lick: serial_board, valve: serial_board, cue: serial_board)" in err
    assert "give --animal ID" in err and sessions_under(tmp_path) == []
    # the simulated rig keeps its virtual mouse
    assert rig("run", "demo", "--fast", "--max-trials", "1", "--data", str(tmp_path), "-q") == 0
    assert [p.parent.parent.name for p in sessions_under(tmp_path)] == ["sim-mouse"]


# ---- reward volumes against the calibration and max_open_ms -------------------------------------------


def test_a_reward_longer_than_max_open_ms_is_refused_at_both_lines(tmp_path: Path, capsys) -> None:
    cfg = config_with(tmp_path, SIM, {"max_open_ms: 1000 ": "max_open_ms: 20   "})
    problems = check_reward_volumes(load_protocol(TRAIN), load_config(cfg), TRAIN, cfg)
    lines = {ln: i + 1 for i, ln in enumerate(cfg.read_text().splitlines())}
    max_line = next(n for ln, n in lines.items() if "max_open_ms: 20" in ln)
    vol_line = next(i + 1 for i, ln in enumerate(TRAIN.read_text().splitlines()) if "volume_ul: 2.5" in ln)
    assert [(p.file, p.line, p.field) for p in problems] == [
        (str(TRAIN), vol_line, "reward.volume_ul"), (str(cfg), max_line, "drivers.valve.max_open_ms")]
    assert "2.5 ul needs a 25 ms opening, longer than the valve's max_open_ms 20 ms" in problems[0].message
    assert f"({TRAIN}:{vol_line} reward.volume_ul): every such reward would be cut to about 2 ul" \
        in problems[1].message
    assert rig("run", str(TRAIN), "--config", str(cfg), "--fast", "--data", str(tmp_path), "-q") == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [str(p) for p in problems] and sessions_under(tmp_path) == []


def test_a_reward_outside_the_calibrated_range_is_refused(tmp_path: Path) -> None:
    cfg = config_with(tmp_path, SIM, {"    - {duration_ms: 10, volume_ul: 1.0}\n": "",
                                      "  id: cal-227a849eec": "  id: null", "  date: 2026-12-01": "  date: null"})
    protocol = tmp_path / "p.yaml"
    protocol.write_text(TRAIN.read_text().replace("volume_ul: 2.5", "volume_ul: 1.5"))
    (p,) = check_reward_volumes(load_protocol(protocol), load_config(cfg), protocol, cfg)
    assert p.field == "reward.volume_ul" and p.file == str(protocol)
    assert p.message.startswith("1.5 ul is outside the valve calibration's range 2.5-5 ul (")
    assert "extrapolated" in p.message
    assert rig("run", str(protocol), "--config", str(cfg), "--fast", "--data", str(tmp_path), "-q") == 2


def test_stage_rewards_are_checked_and_the_default_max_open_ms_is_named(tmp_path: Path) -> None:
    # a slow valve (1 ul per 200 ms) whose max_open_ms is left to the sim driver's default, 500 ms
    cfg = config_with(tmp_path, SIM, {
        "    max_open_ms: 1000        # the valve refuses any opening longer than this\n": "",
        "  id: cal-227a849eec": "  id: null", "  date: 2026-12-01": "  date: null",
        "{duration_ms: 10, volume_ul: 1.0}": "{duration_ms: 200, volume_ul: 1.0}",
        "{duration_ms: 25, volume_ul: 2.5}": "{duration_ms: 500, volume_ul: 2.5}",
        "{duration_ms: 50, volume_ul: 5.0}": "{duration_ms: 1000, volume_ul: 5.0}"})
    text = (REPO / "examples" / "staged_zone_task.yaml").read_text()
    first = text.index("volume_ul: 2.5")
    second = text.index("volume_ul: 2.5", first + 1)
    protocol = tmp_path / "staged.yaml"
    protocol.write_text(text[:second] + "volume_ul: 4.9" + text[second + len("volume_ul: 2.5"):])
    found = check_reward_volumes(load_protocol(protocol), load_config(cfg), protocol, cfg)
    stage_line = text[:second].count("\n") + 1
    valve_line = cfg.read_text().splitlines().index("  valve:") + 1  # the key is absent: its section's line
    assert [(p.file, p.line, p.field) for p in found] == [
        (str(protocol), stage_line, "stages[1].reward.volume_ul"), (str(cfg), valve_line, "drivers.valve.max_open_ms")]
    assert found[1].message.startswith("500 ms (the driver's default) is shorter than the 980 ms that 4.9 ul needs")


# ---- the lab records --------------------------------------------------------------------------------


@pytest.fixture
def restricted(tmp_path: Path) -> Path:
    create_subject(tmp_path, Subject(id="W1", sex="M", restricted=True, water_restriction_start=dt.date(2026, 1, 1),
                                     baseline_weight_g=28.0, daily_water_target_ml=1.0))
    return tmp_path


def test_a_restricted_animal_without_a_weight_is_refused_or_warned(restricted: Path, tmp_path: Path, capsys) -> None:
    run = ("run", "demo", "--fast", "--max-trials", "1", "--animal", "W1", "--data", str(restricted), "-q")
    assert rig(*run) == 2
    err = capsys.readouterr().err
    assert "W1 is water-restricted and has no weight for" in err and "lab.missing_weight is refuse" in err
    assert sessions_under(restricted) == []
    warn = config_with(tmp_path, SIM, {"missing_weight: refuse": "missing_weight: warn  "})
    assert rig(*run, "--config", str(warn)) == 0
    assert "warning: W1 is water-restricted and has no weight" in capsys.readouterr().err
    assert len(sessions_under(restricted)) == 1
    assert rig(*run, "--weight-g", "27.1") == 0  # refused no more: the weight is given
    assert rig(*run, "--weight-g", "2.71") == 2  # a typo is refused, not journaled
    assert "10% of W1's baseline 28 g" in capsys.readouterr().err
    assert (restricted / "W1" / "weights.jsonl").read_text().count("\n") == 1


def test_a_low_weight_is_warned_at_the_start(restricted: Path, capsys) -> None:
    assert rig("run", "demo", "--fast", "--max-trials", "1", "--animal", "W1", "--data", str(restricted), "-q",
               "--weight-g", "21.5") == 0
    assert "warning: W1 weighs 21.5 g, 76.8% of its baseline 28 g (alert below 80%)" in capsys.readouterr().err


def test_registration_can_be_required_and_a_bad_record_is_refused(restricted: Path, tmp_path: Path,
                                                                 capsys) -> None:
    strict = config_with(tmp_path, SIM, {"  min_weight_fraction: 0.8 ": "  require_registered: true\n"
                                                                        "  min_weight_fraction: 0.8 "})
    assert rig("run", "demo", "--config", str(strict), "--fast", "--animal", "X1", "--data", str(restricted)) == 2
    assert "X1 is not in the registry" in capsys.readouterr().err
    (restricted / "W1" / "animal.yaml").write_text("id: W1\nsex: male\n")
    assert rig("run", "demo", "--fast", "--animal", "W1", "--data", str(restricted)) == 2
    assert f"{restricted / 'W1' / 'animal.yaml'}:2: sex:" in capsys.readouterr().err
    assert sessions_under(restricted) == []


def test_an_experimenter_not_in_nwb_form_is_warned_about(tmp_path: Path, capsys) -> None:
    assert rig("run", "demo", "--fast", "--max-trials", "1", "--data", str(tmp_path), "-q",
               "--experimenter", "J. Doe") == 0
    assert "experimenter 'J. Doe': NWB and DANDI want 'Last, First'" in capsys.readouterr().err
