"""`rig summary` and the per-trial table behind it, on real simulated session folders."""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import rig.datalog.reader
import rig.datalog.writer
from rig import api
from rig.cli.commands import summary as summary_cmd
from rig.datalog.reader import Session
from rig.figures import animal as animal_fig
from rig.figures import session as session_fig
from rig.figures.learning import animal_days
from rig.figures.trials import TrialDataError, position_profiles, running_fraction, trial_data
from tests.support.paths import REPO  # noqa: E402

PROTOCOLS = REPO / "protocols"
SESSION_PX = (1400, 900)  # session.FIGSIZE_IN (14 x 9 in) at session.DPI (100)
ANIMAL_PX = (1200, 900)  # animal.FIGSIZE_IN (12 x 9 in) at animal.DPI (100)


def run_summary(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="rig")
    summary_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["summary", *argv])
    return args.func(args)


def assert_png(path: Path, size: tuple[int, int]) -> None:
    assert path.is_file()
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == size
        im.verify()  # raises on a truncated or damaged image


def _on_day(day: date) -> type[date]:
    class Day(date):
        @classmethod
        def today(cls) -> date:  # type: ignore[override]
            return day

    return Day


@pytest.fixture(scope="module")
def task_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("data")
    return api.run(PROTOCOLS / "train1_task.yaml", fast=True, max_trials=25, data_dir=data, seed=4,
                   animal="T1")


@pytest.fixture(scope="module")
def animal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sessions of one animal on two days, two of them on the second day, with different protocols."""
    data = tmp_path_factory.mktemp("animal")
    plan = [(date(2026, 3, 2), "train1_task", 12), (date(2026, 3, 3), "train1_task", 10),
            (date(2026, 3, 3), "test1_exposure", 10)]
    with pytest.MonkeyPatch.context() as mp:
        for seed, (day, protocol, n) in enumerate(plan):
            # The session writer names the day folder after today's date: pretend the sessions ran on
            # different days.
            mp.setattr(rig.datalog.writer, "date", _on_day(day))
            api.run(PROTOCOLS / f"{protocol}.yaml", fast=True, max_trials=n, data_dir=data, seed=seed,
                    animal="A7")
    return data / "A7"


# ---- the per-trial table -------------------------------------------------------------------------------


def _ev(t: float, kind: str, trial: int, pos: float, **data: object) -> dict:
    return {"t": t, "kind": kind, "trial": trial, "position_cm": pos, "data": data, "i": 0}


def test_trial_table_from_known_events() -> None:
    start = {"rewarded": True, "probe": False, "zone_start_cm": None, "stage": 0, "stage_name": None}
    events = [
        {"t": 0.0, "kind": "session_start", "trial": 0, "position_cm": 0.0, "data": {"kind": "task"}},
        _ev(0.0, "trial_start", 0, 0.0, corridor="leaf1", corridor_index=0, cue_position_cm=100.0, **start),
        _ev(1.0, "lick", 0, 60.0, anticipatory=True, iti=False),
        _ev(2.0, "cue", 0, 100.0, position_cm=100.0),
        _ev(2.5, "lick", 0, 130.0, anticipatory=False, iti=False),
        _ev(2.5, "reward", 0, 130.0, volume_ul=2.5, source="task", rule="active_after_cue"),
        _ev(3.0, "reward", 0, 160.0, volume_ul=4.0, source="manual", rule=None),
        _ev(10.0, "trial_end", 0, 600.0, anticipatory=True, licks=2),
        _ev(10.5, "lick", 0, 600.0, anticipatory=False, iti=True),
        _ev(11.0, "trial_start", 1, 0.0, corridor="circle1", corridor_index=1, cue_position_cm=300.0,
            **{**start, "rewarded": False, "probe": True}),
        _ev(12.0, "lick", 1, 50.0, anticipatory=True, iti=False),
        _ev(13.0, "reward_withheld", 1, 70.0, volume_ul=2.5, source="task", rule="zone_passive"),
    ]
    d = trial_data(events)
    t = d.trials
    assert t.index.tolist() == [0, 1]
    assert t.corridor.tolist() == ["leaf1", "circle1"]
    assert t.rewarded.tolist() == [True, False] and t.probe.tolist() == [False, True]
    assert t.ended.tolist() == [True, False]  # trial 1 was cut short
    assert t.t_start.tolist() == [0.0, 11.0]
    assert t.t_end[0] == 10.0 and np.isnan(t.t_end[1])
    assert t.cue_position_cm.tolist() == [100.0, 300.0]
    assert t.cue_t[0] == 2.0 and np.isnan(t.cue_t[1])
    assert t.reward_t[0] == 2.5 and t.reward_position_cm[0] == 130.0 and np.isnan(t.reward_t[1])
    assert t.rewards.tolist() == [1, 0]
    assert t.manual_rewards.tolist() == [1, 0]
    assert t.rewards_withheld.tolist() == [0, 1]
    assert t.licks.tolist() == [2, 1]  # the inter-trial lick belongs to no trial
    assert t.first_lick_t.tolist() == [1.0, 12.0]
    assert t.first_lick_position_cm.tolist() == [60.0, 50.0]
    assert t.anticipatory.tolist() == [True, True]  # trial 1 from its lick, having no trial_end
    assert d.licks.trial.tolist() == [0, 0, -1, 1]
    assert d.licks.iti.tolist() == [False, False, True, False]
    assert d.rewards.source.tolist() == ["task", "manual", "task"]
    assert d.rewards.withheld.tolist() == [False, False, True]


def test_trial_table_rejects_events_without_trial_start() -> None:
    with pytest.raises(TrialDataError, match="trial 3 has no trial_start"):
        trial_data([_ev(1.0, "lick", 3, 10.0, anticipatory=False, iti=False)])


def test_trial_table_matches_session_events(task_session: Path) -> None:
    s = Session.open(task_session)
    d = trial_data(s.events)
    starts = [e for e in s.events if e["kind"] == "trial_start"]
    ends = {e["trial"]: e for e in s.events if e["kind"] == "trial_end"}
    assert len(d.trials) == len(starts) >= 25
    for row, e in enumerate(starts):
        k = e["trial"]
        assert d.trials.index[row] == k
        assert d.trials.corridor[row] == e["data"]["corridor"]
        assert d.trials.cue_position_cm[row] == e["data"]["cue_position_cm"]
        if k in ends:
            assert d.trials.ended[row]
            assert d.trials.licks[row] == ends[k]["data"]["licks"]
            assert d.trials.anticipatory[row] == ends[k]["data"]["anticipatory"]
            assert d.trials.rewards[row] == ends[k]["data"]["rewards"]
        cues = [c["t"] for c in s.events if c["kind"] == "cue" and c["trial"] == k]
        assert d.trials.cue_t[row] == cues[0]
    lick_events = [e for e in s.events if e["kind"] == "lick"]
    assert d.licks.t.tolist() == [e["t"] for e in lick_events]
    assert int(d.trials.rewards.sum()) == sum(1 for e in s.events if e["kind"] == "reward")
    assert d.trials.anticipatory[d.trials.ended].any()


def test_position_profiles_account_for_every_frame_and_lick(task_session: Path) -> None:
    s = Session.open(task_session)
    d = trial_data(s.events)
    prof = position_profiles(s.frames, d, length_cm=600.0, bin_cm=10.0)
    assert prof.time_s.shape == (len(d.trials), 60)
    ended = d.trials.ended
    # Each ended trial's binned time is its duration, up to the frame that straddles the boundary.
    duration = d.trials.t_end[ended] - d.trials.t_start[ended]
    assert np.allclose(prof.time_s[ended].sum(axis=1), duration, atol=2.5 / 60)
    assert prof.licks.sum(axis=1).tolist() == d.trials.licks.tolist()
    assert np.nanmax(prof.speed_cm_s) > 0
    rate = prof.lick_rate_hz()
    assert np.all(rate[prof.time_s == 0] != rate[prof.time_s == 0])  # NaN where no time was spent


def test_running_fraction_is_a_trailing_window_mean() -> None:
    x = np.array([1, 0, 1, 1, 0, 0], dtype=bool)
    assert running_fraction(x, 2).tolist() == [1.0, 0.5, 0.5, 1.0, 0.5, 0.0]
    assert running_fraction(x, 100).tolist() == pytest.approx([1, 0.5, 2 / 3, 0.75, 0.6, 0.5])
    with pytest.raises(ValueError):
        running_fraction(x, 0)


# ---- the session figure --------------------------------------------------------------------------------


def test_session_summary_written_next_to_the_session(task_session: Path, capsys) -> None:
    assert run_summary(str(task_session)) == 0
    out = task_session / summary_cmd.SESSION_PNG
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    assert_png(out, SESSION_PX)


def test_session_summary_to_chosen_file(task_session: Path, tmp_path: Path) -> None:
    out = tmp_path / "fig.png"
    assert run_summary(str(task_session), "-o", str(out)) == 0
    assert_png(out, SESSION_PX)
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]  # no temporary file left behind


def test_session_figure_shows_the_session_facts(task_session: Path) -> None:
    s = Session.open(task_session)
    info = api.info(task_session)
    fig = session_fig.session_figure(s)
    text = " ".join(t.get_text() for t in fig.texts)
    assert "T1" in text and "train1_task" in text
    assert f"{info['trials']} trials" in text and f"{info['rewards']} rewards" in text
    assert f"{info['water_ul']:.1f} \u00b5l water" in text
    assert f"{info['frames']} imaging frames ({info['frames_dropped']} dropped)" in text
    assert "complete" in text and "INCOMPLETE" not in text
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert "leaf1 \u00b7 rewarded" in titles and "circle1 \u00b7 unrewarded" in titles


def test_incomplete_session_is_marked_and_still_drawn(task_session: Path, tmp_path: Path) -> None:
    copy = tmp_path / "killed"
    shutil.copytree(task_session, copy)
    (copy / "footer.json").unlink()  # as after a crash: no footer
    fig = session_fig.session_figure(Session.open(copy))
    assert any(t.get_text().startswith("INCOMPLETE") for t in fig.texts)
    assert run_summary(str(copy)) == 0
    assert_png(copy / summary_cmd.SESSION_PNG, SESSION_PX)


def test_session_without_a_completed_trial_renders(tmp_path: Path) -> None:
    path = api.run(PROTOCOLS / "nocue_active_task.yaml", fast=True, duration_s=3, data_dir=tmp_path, seed=1)
    assert api.info(path)["trials"] == 0
    assert run_summary(str(path)) == 0
    assert_png(path / summary_cmd.SESSION_PNG, SESSION_PX)


# ---- the animal figure ---------------------------------------------------------------------------------


def test_animal_days_pool_sessions_per_day(animal_dir: Path) -> None:
    days = animal_days(animal_dir)
    assert [d.date for d in days] == ["2026-03-02", "2026-03-03"]
    assert [len(d.sessions) for d in days] == [1, 2]
    assert [d.trials for d in days] == [12, 20]
    assert days[1].label == "train1_task + test1_exposure"
    infos = [api.info(s.path) for s in days[1].sessions]
    assert days[1].water_ul == pytest.approx(sum(i["water_ul"] for i in infos))
    assert days[1].sessions[1].water_ul == 0.0  # exposure: no water
    pooled = days[1].corridors()["leaf1"]
    per_session = [trial_data(Session.open(s.path).events).trials for s in days[1].sessions]
    assert pooled.trials == sum(int(((t.corridor == "leaf1") & t.ended).sum()) for t in per_session)
    assert pooled.anticipatory == sum(int(t.anticipatory[(t.corridor == "leaf1") & t.ended].sum())
                                      for t in per_session)


def test_animal_summary_png(animal_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "learning.png"
    assert run_summary(str(animal_dir), "-o", str(out)) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    assert_png(out, ANIMAL_PX)
    assert run_summary(str(animal_dir)) == 0
    assert_png(animal_dir / summary_cmd.ANIMAL_PNG, ANIMAL_PX)


def test_animal_summary_of_sessions_on_one_day(task_session: Path, tmp_path: Path) -> None:
    # The fixture's animal folder has a single day with a single session: the figure still renders.
    fig = animal_fig.animal_figure(task_session.parent.parent)
    assert "T1" in fig.texts[0].get_text()
    assert run_summary(str(task_session.parent.parent), "-o", str(tmp_path / "a.png")) == 0
    assert_png(tmp_path / "a.png", ANIMAL_PX)


# ---- bad input -----------------------------------------------------------------------------------------


def test_not_a_session_folder_exits_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "stuff").mkdir()
    assert run_summary(str(tmp_path / "stuff")) == 2
    err = capsys.readouterr().err
    assert "not a session folder" in err and str(tmp_path / "stuff") in err
    assert not (tmp_path / "stuff" / summary_cmd.ANIMAL_PNG).exists()


def test_missing_path_or_file_exits_2(tmp_path: Path, capsys) -> None:
    assert run_summary(str(tmp_path / "nope")) == 2
    assert "no such file or directory" in capsys.readouterr().err
    (tmp_path / "f.txt").write_text("x")
    assert run_summary(str(tmp_path / "f.txt")) == 2
    assert "not a folder" in capsys.readouterr().err


def test_damaged_header_exits_2(task_session: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "bad"
    shutil.copytree(task_session, copy)
    (copy / "header.json").write_text(json.dumps({"format": "something-else"}))
    assert run_summary(str(copy)) == 2
    err = capsys.readouterr().err
    assert "header.json" in err and "not a corridor-rig-session header" in err


def test_missing_output_folder_exits_2(task_session: Path, tmp_path: Path, capsys) -> None:
    assert run_summary(str(task_session), "-o", str(tmp_path / "no" / "x.png")) == 2
    assert "does not exist" in capsys.readouterr().err


def test_animal_summary_leaves_out_a_damaged_session(animal_dir: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "A7"
    shutil.copytree(animal_dir, copy)
    bad = copy / "2026-03-03" / "002" / "events.jsonl"
    lines = bad.read_bytes().split(b"\n")
    bad.write_bytes(b"\n".join([lines[0], b"{not json", *lines[1:]]))
    assert run_summary(str(copy), "-o", str(tmp_path / "l.png")) == 0
    err = capsys.readouterr().err
    assert "session left out" in err and "events.jsonl:2" in err
    assert_png(tmp_path / "l.png", ANIMAL_PX)
    assert [len(d.sessions) for d in animal_days(copy, [])] == [1, 1]
    with pytest.raises(rig.datalog.reader.SessionError, match="events.jsonl:2"):
        animal_days(copy)
