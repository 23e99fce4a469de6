"""The shipped protocols and rig configs: all valid, and true to the paper's numbers (shared/PAPER.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.loading import dump_protocol, load_config, load_protocol, protocol_from_yaml, validate_files
from rig.protocol import GatedMovement, Protocol
from tests.support.paths import REPO

PROTOCOLS = sorted((REPO / "protocols").glob("*.yaml"))
CONFIGS = sorted((REPO / "config").glob("*.yaml"))

PAIRED_STAGES = ("train1", "test1", "train2", "test2", "test3", "grating_train1", "grating_test1", "nocue",
                 "behaviour_zone_passive", "behaviour_zone_active")
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
    "train2": {"leaf1": (True, False), "leaf2": (False, False)},
    "test2": {"leaf1": (True, False), "leaf2": (False, False), "leaf3": (False, True)},
    "test3": {
        "leaf1": (True, False),
        "leaf2": (False, False),
        "leaf1_swap1": (False, True),
        "leaf1_swap2": (False, True),
    },
    "grating_train1": {"grating0": (True, False), "grating45": (False, False)},
    "grating_test1": {
        "grating0": (True, False),
        "grating45": (False, False),
        "grating0_p15": (False, True),
        "grating45_p15": (False, True),
    },
    "nocue": {"leaf1": (True, False), "circle1": (False, False)},
    "behaviour_zone_passive": {"leaf1": (True, False), "circle1": (False, False)},
    "behaviour_zone_active": {"leaf1": (True, False), "circle1": (False, False)},
}


def load(stem: str) -> Protocol:
    return load_protocol(REPO / "protocols" / f"{stem}.yaml")


def test_all_shipped_files_validate() -> None:
    assert PROTOCOLS and CONFIGS
    assert validate_files([*PROTOCOLS, *CONFIGS]) == []


def test_every_paper_stage_is_shipped_as_a_task_and_exposure_pair() -> None:
    stems = {p.stem for p in PROTOCOLS}
    expected = {f"{s}_{k}" for s in PAIRED_STAGES for k in ("task", "exposure")} | set(PRETRAINING) | {"demo"}
    assert stems == expected


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


def test_session_size_matches_the_papers_sessions() -> None:
    for stage in PAIRED_STAGES:
        p = load(f"{stage}_task")
        assert p.end.max_trials == 600 and p.end.max_duration_s == 2.5 * 3600


def test_texture_sources_and_exemplars() -> None:
    t = {c.name: c.texture for c in load("test3_task").corridors}
    assert (t["leaf1"].source, t["leaf1"].exemplar, t["leaf1"].swap) == ("leaf", 1, None)
    assert (t["leaf1_swap2"].source, t["leaf1_swap2"].exemplar, t["leaf1_swap2"].swap) == ("leaf", 1, 2)
    g = {c.name: c.texture for c in load("grating_train1_task").corridors}
    assert (g["grating0"].source, g["grating0"].angle_deg) == ("grating", 0)
    assert (g["grating45"].source, g["grating45"].angle_deg) == ("grating", 45)


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


def test_nocue_task_goes_from_passive_to_active() -> None:
    p = load("nocue_task")
    assert p.cue is None and p.reward is None
    assert [(s.name, s.reward.mode if s.reward else None) for s in p.stages] == [
        ("passive", "zone_passive"),
        ("active", "zone_active"),
    ]
    adv = p.stages[0].advance
    assert adv is not None and adv.after_trials and adv.anticipatory_fraction
    assert p.stages[1].advance is None


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
