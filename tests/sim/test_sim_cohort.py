"""Cohort simulation through the API, and the lab's learning measure it scores with."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rig import api
from rig.sim.cohort import BEHAVIOUR_COHORT, Curriculum, CurriculumError, load_curriculum
from rig.sim.score import zone_score

SMALL = {
    "name": "small",
    "mice_per_group": 1,
    "start_date": "2024-03-01",
    "session": {"max_trials": 12, "max_duration_s": None},
    "groups": [
        {"name": "natural", "days": [{"protocol": "pretrain_natural_exposure"},
                                      {"protocol": "nocue_passive_task"},
                                      {"protocol": "nocue_active_task"}]},
        {"name": "none", "days": [{"protocol": None}, {"protocol": "nocue_passive_task"},
                                   {"protocol": "nocue_active_task"}]},
    ],
}


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same 2 mice x 3 days twice with one seed (1 and 2 processes) and once with another."""
    root = tmp_path_factory.mktemp("cohort")
    c = Curriculum.model_validate(SMALL)
    return {
        "a": api.run_cohort(c, out=root / "a", seed=5, jobs=2),
        "b": api.run_cohort(c, out=root / "b", seed=5, jobs=1, figure=False),
        "c": api.run_cohort(c, out=root / "c", seed=6, jobs=1, figure=False),
    }


def test_a_cohort_runs_every_mouse_through_its_days_in_order_with_dates(cohorts: dict) -> None:
    r = cohorts["a"]
    got = [(row.animal, row.day, row.date, row.protocol, row.task_day) for row in r.rows]
    assert got == [
        ("natural-01", 1, "2024-03-01", "pretrain_natural_exposure", 0),
        ("natural-01", 2, "2024-03-02", "nocue_passive_task", 1),
        ("natural-01", 3, "2024-03-03", "nocue_active_task", 2),
        ("none-01", 2, "2024-03-02", "nocue_passive_task", 1),
        ("none-01", 3, "2024-03-03", "nocue_active_task", 2),
    ]
    assert all(row.complete and row.trials == 12 for row in r.rows)
    data = r.out / "data"
    for row in r.rows:
        assert (data / row.session / "footer.json").is_file()
        assert row.session.startswith(f"{row.animal}/{row.date}/")
    # Each mouse learned across its days: its memory saw every session.
    memory = json.loads((data / "natural-01" / "sim-mouse.json").read_text())
    assert [h["session"] for h in memory["history"]] == [row.session.split("/", 1)[1] for row in r.rows[:3]]
    assert memory["knowledge"]["exposure_sessions"] == 1 and memory["knowledge"]["task_sessions"] == 2
    assert (r.out / "cohort.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((r.out / "cohort.json").read_text())
    assert [e["task_day"] for e in doc["summary"]["none"]] == [1, 2]
    assert (r.out / "cohort.csv").read_text().count("\n") == 1 + len(r.rows)


def test_a_cohort_is_deterministic_per_seed_whatever_the_number_of_processes(cohorts: dict) -> None:
    a, b, c = cohorts["a"], cohorts["b"], cohorts["c"]
    assert (a.out / "cohort.csv").read_bytes() == (b.out / "cohort.csv").read_bytes()
    for row in a.rows:
        for f in ("events.jsonl", "licks.bin"):
            assert (a.out / "data" / row.session / f).read_bytes() == (b.out / "data" / row.session / f).read_bytes()
    assert (a.out / "cohort.csv").read_bytes() != (c.out / "cohort.csv").read_bytes()


def test_a_cohort_folder_is_never_reused(cohorts: dict) -> None:
    with pytest.raises(FileExistsError, match="already holds a cohort"):
        api.run_cohort(Curriculum.model_validate(SMALL), out=cohorts["a"].out, seed=5)


def test_the_built_in_curriculum_is_the_behaviour_cohort() -> None:
    groups = {g.name: [(d.protocol, d.repeat) for d in g.days] for g in BEHAVIOUR_COHORT.groups}
    task = [("nocue_passive_task", 1), ("nocue_active_task", 4)]
    assert groups == {"natural": [("pretrain_natural_exposure", 10), *task],
                      "grating": [("pretrain_grating_exposure", 10), *task], "none": [(None, 10), *task]}
    assert BEHAVIOUR_COHORT.days == 15 and BEHAVIOUR_COHORT.mice_per_group == 10


def test_a_bad_curriculum_file_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ngroups:\n  - name: natural\n    days:\n      - {protocol: a, repeat: 0}\n")
    with pytest.raises(CurriculumError) as err:
        load_curriculum(path)
    assert [str(p).split(": ")[0] for p in err.value.problems] == [f"{path}:5"]
    assert "repeat" in str(err.value)


# ---- the lab's measure ---------------------------------------------------------------------------------


def events(trials: list[tuple[bool, list[float]]], *, end_last: bool = True) -> list[dict]:
    out: list[dict] = []
    t = 0.0
    for n, (rewarded, licks) in enumerate(trials):
        out.append({"kind": "trial_start", "t": t, "trial": n, "position_cm": 0.0,
                    "data": {"corridor": "leaf1" if rewarded else "circle1", "rewarded": rewarded}})
        for p in licks:
            t += 0.01
            out.append({"kind": "lick", "t": t, "trial": n, "position_cm": p, "data": {"iti": False}})
        t += 1.0
        if end_last or n < len(trials) - 1:
            out.append({"kind": "trial_end", "t": t, "trial": n, "position_cm": 600.0, "data": {}})
    return out


def test_zone_score_counts_trials_with_a_lick_between_2_and_4_m_inclusive() -> None:
    s = zone_score(events([(True, [200.0]), (True, [150.0, 450.0]), (True, [400.0]),
                           (False, [199.9, 400.1]), (False, [300.0])]))
    assert (s.rewarded, s.unrewarded, s.delta) == (pytest.approx(2 / 3), 0.5, pytest.approx(2 / 3 - 0.5))
    assert (s.rewarded_trials, s.unrewarded_trials) == (3, 2)
    # First licks of rewarded trials: 200, 150, 400 cm; as numpy's (and the lab's) histogram, the last
    # 10 cm bin includes its right edge.
    assert s.first_lick_trials == 3 and s.first_lick_median_cm == 200.0
    hist = s.first_lick_hist
    assert len(hist) == 40 and (hist[15], hist[20], hist[39]) == (pytest.approx(1 / 3),) * 3 and sum(hist) == 1.0
    assert s.first_lick_beyond_200 == pytest.approx(2 / 3)


def test_zone_score_uses_the_first_trials_and_leaves_out_a_last_trial_cut_short() -> None:
    trials = [(True, [250.0])] * 3 + [(True, [])] * 2
    assert zone_score(events(trials), first_trials=3).rewarded == 1.0
    assert zone_score(events(trials), first_trials=5).rewarded == 0.6
    cut = zone_score(events([(True, [250.0]), (True, [])], end_last=False))
    assert cut.trials == 1 and cut.rewarded == 1.0 and math.isnan(cut.unrewarded)
