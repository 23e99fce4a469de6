"""What a set of --fast sessions logs, as sha256 per data file: the yardstick for speed work on the loop.

Speed-ups of the simulated rig (drivers, world, mouse, log writer, runner loop) must not change one byte
of what is logged. This module runs a fixed set of simulated sessions (task and exposure protocols, with
and without imaging rolls, seeds, expert and naive mice (config/sim.yaml, sim-naive.yaml), a staged task
whose stage advances (examples/staged_zone_task.yaml), zone tasks, odd ball and frame rates, an operator
script, a sync output, --max-trials and --duration ends, a mouse that remembers from one day to the next,
a 60-minute session, and a small `rig cohort` of learning mice) and hashes every file they write except
the wall-clock ones (rig.datalog.reader.WALL_CLOCK_FILES); the footer is hashed without its end time.

    python -m tests.runner.fast_bytes            # run every case, compare with tests/data/fast_bytes.json
    python -m tests.runner.fast_bytes --write    # re-take the baseline (after a deliberate format change)

tests/runner/test_fast_bytes.py runs the same comparison under pytest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from rig import api
from rig.config import RigConfig
from rig.datalog.reader import FOOTER, WALL_CLOCK_FILES
from rig.protocol import Protocol
from rig.runner.hooks import LoopHook
from rig.runner.operator import Operator
from rig.runner.session import SessionOptions, run_session
from tests.support.operator_script import OperatorScript

REPO = Path(__file__).resolve().parents[2]
EXPECTED = REPO / "tests" / "data" / "fast_bytes.json"
DAY = date(2024, 1, 1)  # fixed, so the memory file's history (DATE/NNN) is the same on every run


def _script() -> tuple[LoopHook, ...]:
    actions = {  # by the iteration at whose end they are put in the queue (the next one reads them)
        300: [Operator("manual_reward", volume_ul=3.0)],
        301: [Operator("manual_reward", volume_ul=3.0)],  # refused: too soon after the first
        900: [Operator("note", text="scripted note")],
        1200: [Operator("pause")],
        1500: [Operator("resume")],
        4000: [Operator("manual_reward", volume_ul=2.0), Operator("pause")],
        4100: [Operator("resume")],
    }
    # OperatorScript keys actions by the iteration that reads them.
    return (OperatorScript({i + 1: ops for i, ops in actions.items()}),)


@dataclass(frozen=True)
class Case:
    """One session (or a sequence of one animal's sessions on consecutive days) to run and hash."""

    name: str
    protocols: tuple[str, ...]  # one per day
    config: str = "sim.yaml"
    seed: int = 1
    max_trials: int | None = None
    duration_s: float | None = None
    protocol_changes: dict[str, Any] = field(default_factory=dict)
    config_changes: Callable[[dict[str, Any]], None] | None = None
    hooks: Callable[[], tuple[LoopHook, ...]] | None = None


def _ball_250(cfg: dict[str, Any]) -> None:
    cfg["drivers"]["ball"]["sample_rate_hz"] = 250


def _ball_333_frames_fast(cfg: dict[str, Any]) -> None:
    # An odd ball rate (sample times not on the frame grid) and a faster, jitterier frame clock.
    cfg["drivers"]["ball"]["sample_rate_hz"] = 333
    cfg["drivers"]["frame_clock"].update(rate_hz=30.0, jitter_ms=1.0, start_s=0.0)


def _with_sync(cfg: dict[str, Any]) -> None:
    cfg["drivers"]["sync"] = {"type": "sim"}


def _no_memory(cfg: dict[str, Any]) -> None:
    cfg["sim"]["memory"] = False


CASES: tuple[Case, ...] = (
    Case("train1_expert", ("train1_task",), seed=1, max_trials=40),  # imaging pre- and post-rolls
    Case("train1_naive", ("train1_task",), config="sim-naive.yaml", seed=2, max_trials=40),
    Case("demo", ("demo",), seed=3, max_trials=30),  # no rolls
    Case("staged_zone", ("examples/staged_zone_task",), seed=4, max_trials=60,
         protocol_changes={"stages": "advance early"}),
    Case("natural_exposure", ("pretrain_natural_exposure",), config="sim-naive.yaml", seed=5, max_trials=30),
    Case("zone_passive", ("nocue_passive_task",), seed=6, max_trials=30),
    Case("zone_active_naive", ("nocue_active_task",), config="sim-naive.yaml", seed=7, max_trials=30),
    Case("test3_swap", ("test3_swap1_task",), seed=8, max_trials=30),
    Case("passive_cue_pause_250hz", ("train1_task",), seed=9, max_trials=30,
         protocol_changes={"reward": {"mode": "passive_after_cue", "delay_ms": 300},
                           "inter_trial": {"mode": "pause", "pause_s": 1.5}},
         config_changes=_ball_250),
    Case("odd_rates_exposure", ("train1_exposure",), seed=10, max_trials=20, config_changes=_ball_333_frames_fast),
    Case("operator_script", ("train1_task",), seed=11, max_trials=25, hooks=_script),
    Case("sync_output", ("demo",), seed=12, max_trials=20, config_changes=_with_sync),
    Case("memory_days", ("pretrain_natural_exposure", "nocue_passive_task", "nocue_active_task"),
         config="sim-naive.yaml", seed=13, max_trials=25),
    Case("duration_no_memory", ("test1_task",), seed=14, duration_s=300.0, config_changes=_no_memory),
    Case("sixty_minutes", ("train1_task",), seed=1, duration_s=3600.0),
)

# The `rig cohort` path (rig.sim.cohort.run_cohort): one small curriculum, one process, the learning mouse
# carrying its memory file from day to day (an exposure day, a rest day, a passive day, an active day).
COHORT = "cohort"
COHORT_CURRICULUM = {
    "name": "fast-bytes", "mice_per_group": 2, "start_date": "2024-01-01",
    "session": {"max_trials": None, "max_duration_s": 240.0},
    "groups": [
        {"name": "natural", "days": [{"protocol": "pretrain_natural_exposure"}, {"protocol": None},
                                     {"protocol": "nocue_passive_task"}, {"protocol": "nocue_active_task"}]},
        {"name": "none", "days": [{"protocol": None}, {"protocol": "nocue_active_task"}]},
    ],
}


def _protocol(name: str, changes: dict[str, Any]) -> Protocol:
    path = REPO / f"{name}.yaml" if "/" in name else REPO / "protocols" / f"{name}.yaml"
    p = api.load_protocol(path)
    changes = dict(changes)
    if changes.pop("stages", None) == "advance early" and p.stages:
        # The stage advance within a short test session: a short anticipatory window, few trials.
        stages = [s.model_dump(mode="json") for s in p.stages]
        for s in stages:
            if s.get("advance"):
                s["advance"] = {**s["advance"], "window": 10, "after_trials": 25}
        changes["stages"] = stages
    return api.modify(p, **changes) if changes else p


def _config(case: Case) -> RigConfig:
    cfg = api.load_config(REPO / "config" / case.config)
    if case.config_changes is None:
        return cfg
    data = cfg.model_dump(mode="json")
    case.config_changes(data)
    return RigConfig.model_validate(data)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hash_session(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in sorted(path.iterdir()):
        if f.name in WALL_CLOCK_FILES and f.name != FOOTER:
            continue
        if f.name == FOOTER:
            footer = json.loads(f.read_text())
            footer.pop("end_time", None)
            out[f.name + " (no end_time)"] = _sha(json.dumps(footer, sort_keys=True).encode())
        else:
            out[f.name] = _sha(f.read_bytes())
    return out


def run_case(case: Case, data_dir: Path) -> dict[str, str]:
    """Run the case's sessions into data_dir; returns "DAY/FILE" -> sha256 (and the memory file's)."""
    config = _config(case)
    animal = f"fb-{case.name.replace('_', '-')}"
    hashes: dict[str, str] = {}
    for day, name in enumerate(case.protocols):
        options = SessionOptions(animal=animal, seed=case.seed + day, fast=True, max_trials=case.max_trials,
                                 duration_s=case.duration_s, data_dir=data_dir,
                                 date=date.fromordinal(DAY.toordinal() + day))
        result = run_session(_protocol(name, case.protocol_changes), config, options,
                             hooks=case.hooks() if case.hooks is not None else ())
        for f, h in _hash_session(result.path).items():
            hashes[f"{day}/{f}"] = h
    memory = data_dir / animal / "sim-mouse.json"
    if memory.exists():
        hashes["sim-mouse.json"] = _sha(memory.read_bytes())
    return hashes


def run_cohort_case(out: Path) -> dict[str, str]:
    """Run COHORT_CURRICULUM through rig.sim.cohort in one process; returns "ANIMAL/DATE/NNN/FILE" -> sha256,
    each mouse's memory file's, and the scored rows'."""
    from rig.sim.cohort import Curriculum, row_dict, run_cohort

    result = run_cohort(Curriculum.model_validate(COHORT_CURRICULUM), out, seed=5, jobs=1)
    data = out / "data"
    hashes: dict[str, str] = {}
    for animal in sorted(d for d in data.iterdir() if d.is_dir()):
        for session in sorted(animal.glob("*/[0-9][0-9][0-9]")):
            for f, h in _hash_session(session).items():
                hashes[f"{session.relative_to(data)}/{f}"] = h
        memory = animal / "sim-mouse.json"
        if memory.exists():
            hashes[f"{animal.name}/sim-mouse.json"] = _sha(memory.read_bytes())
    rows = [row_dict(r) for r in result.rows]
    hashes["rows"] = _sha(json.dumps(rows, sort_keys=True).encode())
    return hashes


def case_names() -> list[str]:
    return [c.name for c in CASES] + [COHORT]


def run_named(name: str, data_dir: Path) -> dict[str, str]:
    """Run one case (or the cohort) into data_dir (which must not hold another run of it)."""
    if name == COHORT:
        return run_cohort_case(data_dir / COHORT)
    return run_case(next(c for c in CASES if c.name == name), data_dir)


def run_all(data_dir: Path, names: list[str] | None = None) -> dict[str, dict[str, str]]:
    return {n: run_named(n, data_dir) for n in case_names() if names is None or n in names}


def compare(got: dict[str, dict[str, str]], expected: dict[str, dict[str, str]]) -> list[str]:
    """Every difference, as one line each (empty: byte-identical)."""
    problems = []
    for case, files in got.items():
        want = expected.get(case)
        if want is None:
            problems.append(f"{case}: no expected hashes (re-take the baseline with --write)")
            continue
        for f in sorted(set(files) | set(want)):
            if files.get(f) != want.get(f):
                have, need = files.get(f, "missing"), want.get(f, "missing")
                problems.append(f"{case}: {f}: {have[:12]} != expected {need[:12]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"store the hashes as the baseline ({EXPECTED.name})")
    ap.add_argument("--case", action="append", help="run only this case (repeatable)")
    ap.add_argument("--keep", metavar="DIR", help="write the sessions into DIR (default: a temporary folder)")
    args = ap.parse_args(argv)
    if args.keep:
        got = run_all(Path(args.keep), args.case)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            got = run_all(Path(tmp), args.case)
    if args.write:
        if args.case:
            print("--write needs every case (no --case)", file=sys.stderr)
            return 2
        EXPECTED.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(f"wrote {sum(len(v) for v in got.values())} hashes of {len(got)} cases to {EXPECTED}")
        return 0
    problems = compare(got, json.loads(EXPECTED.read_text()))
    for p in problems:
        print(p)
    print(f"{len(got)} cases, {sum(len(v) for v in got.values())} files: "
          + ("byte-identical" if not problems else f"{len(problems)} differences"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
