"""The scripting API: load, modify, validate and run protocols, and read the results.

    from rig import api
    p = api.load_protocol("protocols/train1_task.yaml")
    p = api.modify(p, end={"max_trials": 100}, cue={"position_cm": [100, 300]})
    path = api.run(p, animal="M1", seed=1, fast=True)
    print(api.info(path)["rewards"])
    cohort = api.run_cohort(out="cohort", mice=4, max_trials=200)   # virtual mice over simulated days
    table = api.trials(path)                  # one row per trial: table["corridor"], table["anticipatory"], ...
    print(api.learning(path).describe())      # rewarded against unrewarded anticipatory licking
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rig.config import RigConfig
from rig.datalog.info import session_info
from rig.datalog.reader import Session
from rig.engine.learning import Score, criterion_of, outcomes_from_events, score
from rig.export import trials as trial_columns
from rig.loading import LoadError, default_config_path, load_config, load_protocol, protocol_from_dict, validate_files
from rig.protocol import Criterion, Protocol
from rig.runner.loop import Operator, OperatorQueue
from rig.runner.session import SessionOptions, SessionResult, run_session

__all__ = [
    "Criterion", "LoadError", "Operator", "OperatorQueue", "Protocol", "RigConfig", "Score", "Session",
    "SessionOptions", "TRIAL_DTYPE", "info", "learning", "load_config", "load_protocol", "modify", "open_session",
    "run", "run_cohort", "run_full", "trials", "validate_files",
]


def modify(protocol: Protocol, **changes: Any) -> Protocol:
    """A new protocol with top-level sections replaced or (for mappings) merged, validated again."""
    data = protocol.model_dump(mode="json")
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return protocol_from_dict(data, source="<api.modify>")


def run_full(
    protocol: Protocol | str | Path, config: RigConfig | str | Path | None = None, **options: Any
) -> SessionResult:
    """Run a session; `options` are SessionOptions fields (animal, seed, fast, max_trials, ...)."""
    if not isinstance(protocol, Protocol):
        protocol = load_protocol(Path(protocol))
    if not isinstance(config, RigConfig):
        config = load_config(Path(config) if config is not None else default_config_path())
    if "data_dir" in options and options["data_dir"] is not None:
        options["data_dir"] = Path(options["data_dir"])
    return run_session(protocol, config, SessionOptions(**options))


def run(protocol: Protocol | str | Path, config: RigConfig | str | Path | None = None, **options: Any) -> Path:
    """Run a session and return its folder."""
    return run_full(protocol, config, **options).path


def open_session(path: str | Path) -> Session:
    return Session.open(Path(path))


def info(path: str | Path) -> dict:
    return session_info(open_session(path))


def run_cohort(curriculum: Any = None, config: RigConfig | str | Path | None = None, *, out: str | Path,
               figure: bool = True, **options: Any) -> Any:
    """Run virtual mice through a curriculum over simulated days (rig.sim.cohort; docs/sim.md) and write
    OUT/cohort.csv, cohort.json and (with `figure`) cohort.png. `curriculum`: a Curriculum, a YAML path,
    or None for the built-in behaviour cohort; `config`: default config/sim-naive.yaml. `options`: mice,
    seed, jobs, max_trials, duration_s, start_date. Returns the rig.sim.cohort.CohortResult."""
    from rig.sim import cohort as co
    from rig.sim.cohort_report import draw, write_numbers

    base = None
    if curriculum is None:
        curriculum = co.BEHAVIOUR_COHORT
    elif not isinstance(curriculum, co.Curriculum):
        base = Path(curriculum).parent
        curriculum = co.load_curriculum(Path(curriculum))
    if config is not None and not isinstance(config, RigConfig):
        config = load_config(Path(config))
    result = co.run_cohort(curriculum, Path(out), config=config, base=base, **options)
    write_numbers(result)
    if figure:
        draw(result)
    return result


# One row per trial that started, in trial order; times in session seconds, positions in cm; NaN (or
# False, 0) where a trial has no such event. `complete` is false for a trial cut short by the session's end.
TRIAL_DTYPE = np.dtype([
    ("trial", "<i8"), ("corridor", "<U64"), ("corridor_index", "<i8"), ("rewarded_corridor", "?"), ("probe", "?"),
    ("stage", "<i8"), ("stage_name", "<U64"), ("complete", "?"), ("start_t", "<f8"), ("end_t", "<f8"),
    ("grey_t", "<f8"), ("cue_t", "<f8"), ("cue_cm", "<f8"), ("zone_start_cm", "<f8"), ("rewards", "<i8"),
    ("reward_t", "<f8"), ("reward_cm", "<f8"), ("manual_rewards", "<i8"), ("withheld_t", "<f8"), ("licks", "<i8"),
    ("first_lick_t", "<f8"), ("anticipatory", "?"),
])


def _session(path: str | Path | Session) -> Session:
    return path if isinstance(path, Session) else open_session(path)


def trials(path: str | Path | Session) -> np.ndarray:
    """The session's trials as a table: a structured array with one row per trial (TRIAL_DTYPE)."""
    tr = trial_columns(_session(path))
    out = np.zeros(len(tr), dtype=TRIAL_DTYPE)
    out["trial"] = np.arange(len(tr))
    out["corridor"], out["corridor_index"] = tr.corridor_name, tr.corridor
    out["rewarded_corridor"], out["probe"] = tr.rewarded_corridor, tr.probe
    out["stage"], out["stage_name"], out["complete"] = tr.stage, tr.stage_name, tr.complete
    for name in ("start_t", "end_t", "grey_t", "cue_t", "cue_cm", "zone_start_cm", "rewards", "reward_t",
                 "reward_cm", "manual_rewards", "withheld_t", "licks", "first_lick_t", "anticipatory"):
        out[name] = getattr(tr, name)
    return out


def learning(path: str | Path | Session, criterion: Criterion | None = None) -> Score:
    """Has the mouse learned, by the criterion of rig.engine.learning (rewarded against unrewarded
    corridors' anticipatory licking over the session's last trials)? `criterion`: default the
    protocol's own (its last stage criterion), else the default Criterion()."""
    s = _session(path)
    if criterion is None:
        criterion = criterion_of(protocol_from_dict(s.header.protocol, source=f"{s.path}/header.json protocol"))
    return score(outcomes_from_events(s.events), criterion)
