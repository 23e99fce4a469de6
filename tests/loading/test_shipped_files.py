"""The shipped protocols and rig configs: all valid, and true to the paper's numbers (shared/PAPER.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.loading import dump_protocol, load_config, load_protocol, protocol_from_yaml, validate_files
from rig.protocol import GatedMovement, Protocol
from tests.support.paths import REPO

PROTOCOLS = sorted((REPO / "protocols").glob("*.yaml"))
CONFIGS = sorted((REPO / "config").glob("*.yaml"))

# Stages shipped as a task and an unrewarded-exposure twin (shared/PAPER.md; the lab's analysis code sets).
PAIRED_STAGES = ("train1", "test1", "train2", "test2", "test3_swap1", "test3_swap2", "nocue_passive", "nocue_active")
GRATING_COHORT = ("grating_exposure", "grating_train1_exposure", "grating_test1_exposure")  # never rewarded
PRETRAINING = ("pretrain_natural_exposure", "pretrain_grating_exposure", "pretrain_none_exposure")

# stage -> {corridor: (rewarded, probe)}
CORRIDORS = {
    "train1": {"leaf1": (True, False), "circle1": (False, False)},
    "test1": {
        "leaf1": (True, False),
        "circle1": (False, False),
        "leaf2": (False, True),
        "circle2": (False, True),
    },
    "train2": {"circle1": (False, False), "leaf1": (True, False), "leaf2": (False, False)},
    "test2": {"circle1": (False, False), "leaf1": (True, False), "leaf2": (False, False), "leaf3": (False, True)},
    "test3_swap1": {"circle1": (False, False), "leaf1": (True, False), "leaf2": (False, False),
                    "leaf1_swap1": (False, True)},
    "test3_swap2": {"circle1": (False, False), "leaf1": (True, False), "leaf2": (False, False),
                    "leaf1_swap2": (False, True)},
    "nocue_passive": {"leaf1": (True, False), "circle1": (False, False)},
    "nocue_active": {"leaf1": (True, False), "circle1": (False, False)},
    "grating": {"grating0": (False, False), "grating45": (False, False)},
    "grating_train1": {"leaf1": (False, False), "circle1": (False, False)},
    "grating_test1": {"leaf1": (False, False), "circle1": (False, False), "leaf2": (False, True)},
}


def load(stem: str) -> Protocol:
    return load_protocol(REPO / "protocols" / f"{stem}.yaml")


def test_all_shipped_files_validate() -> None:
    assert PROTOCOLS and CONFIGS
    assert validate_files([*PROTOCOLS, *CONFIGS]) == []


def test_every_paper_stage_is_shipped_as_a_task_and_exposure_pair() -> None:
    stems = {p.stem for p in PROTOCOLS}
    expected = {f"{s}_{k}" for s in PAIRED_STAGES for k in ("task", "exposure")}
    assert stems == expected | set(GRATING_COHORT) | set(PRETRAINING) | {"demo"}


@pytest.mark.parametrize("path", PROTOCOLS, ids=[p.stem for p in PROTOCOLS])
def test_protocol_header_comment_names_the_stage(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    stage = path.stem.removesuffix("_task").removesuffix("_exposure")
    assert first.startswith(f"# {stage} ("), first
    p = load_protocol(path)
    assert p.name == path.stem
    assert p.kind == ("exposure" if path.stem.endswith("_exposure") else "task")


@pytest.mark.parametrize("path", PROTOCOLS, ids=[p.stem for p in PROTOCOLS])
def test_protocol_uses_the_papers_numbers(path: Path) -> None:
    p = load_protocol(path)
    for c in p.corridors:
        assert (c.texture_length_cm, c.grey_length_cm) == (400, 200), c.name
    assert isinstance(p.movement, GatedMovement)
    assert (p.movement.speed_cm_s, p.movement.threshold_cm_s, p.movement.hold_ms) == (60, 6, 66)
    for rule in p.reward_rules():
        assert rule.volume_ul == 2.5
    if p.cue is not None:
        assert p.cue.position_cm == (50, 350)
        assert all(r.mode == "active_after_cue" for r in p.reward_rules())
    else:
        assert all(r.zone_start_cm == (200, 300) for r in p.reward_rules())
    assert p.order.mode == "pseudorandom" and p.inter_trial.mode == "continuous"
    assert p.end.max_trials is not None and p.end.max_duration_s is not None
    probes = [c for c in p.corridors if c.probe]
    assert bool(probes) == (p.order.probe_fraction > 0)
    assert not any(c.rewarded for c in probes)  # probes are never paid, in any lane


@pytest.mark.parametrize("stage", PAIRED_STAGES)
def test_exposure_twin_differs_from_the_task_only_in_kind(stage: str) -> None:
    task, expo = load(f"{stage}_task"), load(f"{stage}_exposure")
    assert (task.kind, expo.kind) == ("task", "exposure")
    drop = {"name", "kind", "description"}
    assert task.model_dump(exclude=drop) == expo.model_dump(exclude=drop)
    got = {c.name: (c.rewarded, c.probe) for c in task.corridors}
    assert got == CORRIDORS[stage]


def test_grating_cohort_sees_gratings_then_natural_corridors_and_is_never_rewarded() -> None:
    for stem in GRATING_COHORT:
        p = load(stem)
        assert p.kind == "exposure" and p.cue is not None
        assert {c.name: (c.rewarded, c.probe) for c in p.corridors} == CORRIDORS[stem.removesuffix("_exposure")]
    g = {c.name: c.texture for c in load("grating_exposure").corridors}
    assert (g["grating0"].source, g["grating0"].angle_deg) == ("grating", 0)
    assert (g["grating45"].source, g["grating45"].angle_deg) == ("grating", 45)


def test_session_limits_admit_the_papers_longest_sessions() -> None:
    # 789 trials; about 32,000 imaging frames at 3.17 Hz (2.8 h)
    for path in PROTOCOLS:
        p = load_protocol(path)
        if p.name == "demo":
            continue
        assert p.end.max_trials is not None and p.end.max_trials >= 789, p.name
        assert p.end.max_duration_s is not None and p.end.max_duration_s >= 32_000 / 3.17, p.name
        assert (p.imaging.pre_roll_frames, p.imaging.post_roll_frames) == (20, 20), p.name
        assert not p.imaging.resolved  # the runner resolves the seconds from the rig's imaging rate


def test_lab_stimulus_sets() -> None:
    """The corridor sets the lab's analysis code expects per stage (its figures index them by position)."""
    expect = {
        "train1": ["circle1", "leaf1"], "test1": ["circle1", "circle2", "leaf1", "leaf2"],
        "train2": ["circle1", "leaf1", "leaf2"], "test2": ["circle1", "leaf1", "leaf2", "leaf3"],
        "test3_swap1": ["circle1", "leaf1", "leaf1_swap1", "leaf2"],
        "test3_swap2": ["circle1", "leaf1", "leaf1_swap2", "leaf2"],
    }
    for stage, names in expect.items():
        for kind in ("task", "exposure"):
            assert sorted(c.name for c in load(f"{stage}_{kind}").corridors) == names


def test_texture_sources_and_exemplars() -> None:
    for k in (1, 2):
        t = {c.name: c.texture for c in load(f"test3_swap{k}_task").corridors}
        assert (t["leaf1"].source, t["leaf1"].exemplar, t["leaf1"].swap) == ("leaf", 1, None)
        swap = t[f"leaf1_swap{k}"]
        assert (swap.source, swap.exemplar, swap.swap) == ("leaf", 1, k)


def test_pretraining_is_unrewarded_without_cue() -> None:
    sources = {}
    for stem in PRETRAINING:
        p = load(stem)
        assert p.kind == "exposure" and p.cue is None
        assert p.reward is not None and p.reward.mode == "zone_active"
        sources[stem] = {c.texture.source for c in p.corridors}
    assert sources == {
        "pretrain_natural_exposure": {"leaf", "circle"},
        "pretrain_grating_exposure": {"grating"},
        "pretrain_none_exposure": {"grey"},
    }


def test_nocue_days_keep_one_reward_rule_for_the_whole_session() -> None:
    # the behaviour cohort: day 1 passive reward in the zone for the whole session, days 2-5 active
    for day, mode in (("passive", "zone_passive"), ("active", "zone_active")):
        for kind in ("task", "exposure"):
            p = load(f"nocue_{day}_{kind}")
            assert p.cue is None and not p.stages
            assert p.reward is not None and (p.reward.mode, p.reward.zone_start_cm) == (mode, (200, 300))


def test_demo_is_short() -> None:
    p = load("demo")
    assert p.kind == "task" and len(p.corridors) == 2 and p.end.max_trials == 20


@pytest.mark.parametrize("path", PROTOCOLS, ids=[p.stem for p in PROTOCOLS])
def test_dumped_protocol_loads_back_equal(path: Path) -> None:
    p = load_protocol(path)
    assert protocol_from_yaml(dump_protocol(p), "dump") == p


def test_sim_configs() -> None:
    sim = load_config(REPO / "config" / "sim.yaml")
    naive = load_config(REPO / "config" / "sim-naive.yaml")
    for cfg in (sim, naive):
        assert cfg.simulated and all(e.type == "sim" for e in cfg.drivers.values())
        assert set(cfg.drivers) == {"ball", "lick", "valve", "cue", "frame_clock", "display"}
        assert cfg.frame_rate_hz == 60 and cfg.data_dir == "data"
        assert cfg.driver_params("frame_clock").rate_hz == pytest.approx(3.17)
        assert cfg.valve_calibration.duration_ms(2.5) == pytest.approx(25.0, rel=0.05)
    assert sim.sim is not None and sim.sim.expertise > 0.5
    assert naive.sim is not None and naive.sim.expertise == 0
    # Apart from the name and the mouse's expertise the two rigs are the same.
    drop = {"name", "sim"}
    assert sim.model_dump(exclude=drop) == naive.model_dump(exclude=drop)
