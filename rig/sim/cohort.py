"""Cohorts of virtual mice run through a curriculum over simulated days (docs/sim.md, "Cohorts").

    curriculum = BEHAVIOUR_COHORT                       # or load_curriculum("my.yaml")
    result = run_cohort(curriculum, out=Path("cohort"), mice=4, seed=1, jobs=2)
    result.rows                                         # one CohortRow per mouse and day with a session

Each group's mice go through the group's days in order; a day either runs one `--fast` session of its
protocol, dated `start_date + day`, or (protocol null) nothing: the mouse rests. Every mouse is one job;
jobs run in parallel processes (each mouse's days stay in order in its own process) and learn through
their memory file (rig.sim.memory) from one day to the next. Seeds derive from the cohort seed, the
group, the mouse and the day, so a cohort is reproducible whatever the number of processes. Every
session is scored with the lab's measure (rig.sim.score).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from pydantic import Field, model_validator

from rig.config import RigConfig
from rig.loading import LoadError, _read, _validate, load_config, load_protocol, protocol_from_dict
from rig.protocol import Frozen, Protocol
from rig.yamlload import Problem

REPO = Path(__file__).resolve().parents[2]
PROTOCOLS = REPO / "protocols"
DEFAULT_CONFIG = REPO / "config" / "sim-naive.yaml"
DATA = "data"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$"


class CurriculumError(LoadError):
    """A curriculum file (or one of the protocols or the config it names) is not usable."""


class Day(Frozen):
    """One entry of a group's schedule: `repeat` consecutive days of one protocol (null: no session)."""

    protocol: str | None = Field(description="a shipped protocol's name, or a YAML path relative to the curriculum")
    repeat: int = Field(1, ge=1, le=1000)


class Group(Frozen):
    name: str = Field(pattern=_NAME, description="also the animal ids' prefix: NAME-01, NAME-02, ...")
    days: tuple[Day, ...] = Field(min_length=1)


class Limits(Frozen):
    """Each session's end, replacing the protocols' own (None: the protocol's)."""

    max_trials: int | None = Field(None, ge=1, le=1_000_000)
    max_duration_s: float | None = Field(3600.0, gt=0, le=7 * 24 * 3600)


class Scoring(Frozen):
    """The lab's measure: licks in [zone_cm] over the first `first_trials` trials of each session."""

    zone_cm: tuple[float, float] = (200.0, 400.0)
    first_trials: int = Field(200, ge=1)


class Curriculum(Frozen):
    name: str = Field(min_length=1, max_length=128)
    description: str = ""
    mice_per_group: int = Field(10, ge=1, le=1000)
    start_date: date = date(2024, 1, 1)
    session: Limits = Limits()
    score: Scoring = Scoring()
    groups: tuple[Group, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_groups(self) -> Curriculum:
        names = [g.name for g in self.groups]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"group names must be unique; repeated: {dupes}")
        return self

    @property
    def days(self) -> int:
        """Days from the first to the last day of the longest schedule."""
        return max(sum(d.repeat for d in g.days) for g in self.groups)


def _days(pretraining: str | None) -> tuple[Day, ...]:
    return (Day(protocol=pretraining, repeat=10), Day(protocol="nocue_passive_task"),
            Day(protocol="nocue_active_task", repeat=4))


BEHAVIOUR_COHORT = Curriculum(
    name="behaviour_cohort",
    description="Zhong et al. 2025 behaviour cohort: 10 days of unrewarded pretraining on the task's natural "
                "textures, on gratings, or none; then 1 day of passive reward in the zone and 4 active days",
    groups=(
        Group(name="natural", days=_days("pretrain_natural_exposure")),
        Group(name="grating", days=_days("pretrain_grating_exposure")),
        Group(name="none", days=_days(None)),
    ),
)


def load_curriculum(path: str | os.PathLike[str]) -> Curriculum:
    """Read and validate a curriculum YAML file; raises CurriculumError (FILE:LINE: field: message)."""
    return _validate(_read(path, CurriculumError), Curriculum, CurriculumError)


@dataclass(frozen=True)
class CohortRow:
    """One mouse's one day with a session."""

    group: str
    animal: str
    mouse: int  # 1-based within the group
    day: int  # 1-based day of the curriculum
    date: str
    protocol: str
    kind: str
    task_day: int  # 1-based among this mouse's task days (0: not a task day)
    session: str  # the session folder, relative to the cohort's data folder
    complete: bool
    trials: int
    rewards: int
    rewarded: float  # the lab's lick response in the zone, rewarded corridor
    unrewarded: float
    delta: float
    first_lick_median_cm: float
    first_lick_beyond_200: float
    first_lick_hist: tuple[float, ...]


@dataclass(frozen=True)
class CohortResult:
    curriculum: Curriculum
    out: Path
    seed: int
    mice: int  # per group
    rows: tuple[CohortRow, ...]
    wall_s: float
    simulated_s: float
    jobs: int


@dataclass(frozen=True)
class _Job:
    group: str
    group_index: int
    mouse: int
    days: tuple[tuple[int, str | None], ...]  # (day, protocol key) per calendar day
    protocols: dict[str, dict]  # key -> protocol model_dump
    config: dict
    data_dir: str
    seed: int
    start_date: str
    limits: tuple[int | None, float | None]
    zone_cm: tuple[float, float]
    first_trials: int
    keep_sessions: bool = True  # False: each session folder is removed once scored (the memory file stays)


def resolve_protocol(name: str, base: Path | None) -> Path:
    """A curriculum's protocol entry: a YAML path (relative to the curriculum's folder), else a shipped
    protocol's name."""
    p = Path(name)
    for candidate in ((base / p) if base is not None and not p.is_absolute() else p, p, PROTOCOLS / f"{name}.yaml",
                      PROTOCOLS / name):
        if candidate.is_file():
            return candidate
    return PROTOCOLS / f"{name}.yaml"


def load_protocols(curriculum: Curriculum, base: Path | None = None) -> dict[str, Protocol]:
    """Every protocol the curriculum names, loaded and validated now (before any session runs)."""
    out: dict[str, Protocol] = {}
    problems: list[Problem] = []
    for gi, g in enumerate(curriculum.groups):
        for di, d in enumerate(g.days):
            if d.protocol is None or d.protocol in out:
                continue
            try:
                out[d.protocol] = load_protocol(resolve_protocol(d.protocol, base))
            except LoadError as e:
                where = f"groups.{gi}.days.{di}.protocol"
                problems += [Problem(p.file, p.line, p.field, f"{p.message} (named by {where})") for p in e.problems]
    if problems:
        raise CurriculumError(problems)
    return out


def animal_id(group: str, mouse: int) -> str:
    return f"{group}-{mouse:02d}"


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def plan(curriculum: Curriculum, protocols: dict[str, Protocol], config: RigConfig, out: Path, *, mice: int,
         seed: int, max_trials: int | None = None, duration_s: float | None = None,
         keep_sessions: bool = True) -> list[_Job]:
    """One job per mouse, in group then mouse order."""
    limits = (max_trials if max_trials is not None else curriculum.session.max_trials,
              duration_s if duration_s is not None else curriculum.session.max_duration_s)
    dumped = {k: p.model_dump(mode="json") for k, p in protocols.items()}
    cfg = config.model_dump(mode="json")
    jobs = []
    for gi, g in enumerate(curriculum.groups):
        days: list[tuple[int, str | None]] = []
        for d in g.days:
            days += [(len(days) + 1 + r, d.protocol) for r in range(d.repeat)]
        for m in range(1, mice + 1):
            jobs.append(_Job(
                group=g.name, group_index=gi, mouse=m, days=tuple(days), protocols=dumped, config=cfg,
                data_dir=str(out / DATA), seed=_seed(seed, gi, m), start_date=curriculum.start_date.isoformat(),
                limits=limits, zone_cm=curriculum.score.zone_cm, first_trials=curriculum.score.first_trials,
                keep_sessions=keep_sessions,
            ))
    return jobs


def run_mouse(job: _Job) -> tuple[list[CohortRow], float]:
    """Every day of one mouse, in order (runs in a worker process). Returns its rows and simulated seconds."""
    from rig.datalog.reader import read_jsonl
    from rig.runner.session import SessionOptions, run_session
    from rig.sim.score import zone_score

    config = RigConfig.model_validate(job.config)
    protocols = {k: protocol_from_dict(v, source=f"<cohort {k}>") for k, v in job.protocols.items()}
    data = Path(job.data_dir)
    animal = animal_id(job.group, job.mouse)
    start = date.fromisoformat(job.start_date)
    rows: list[CohortRow] = []
    simulated = 0.0
    task_day = 0
    for day, key in job.days:
        if key is None:
            continue
        protocol = protocols[key]
        options = SessionOptions(
            animal=animal, seed=_seed(job.seed, day), fast=True, max_trials=job.limits[0],
            duration_s=job.limits[1], data_dir=data, date=start + timedelta(days=day - 1),
            notes=f"cohort {job.group} mouse {job.mouse} day {day}",
        )
        result = run_session(protocol, config, options)
        events, _ = read_jsonl(result.path / "events.jsonl")
        texture = max(c.texture_length_cm for c in protocol.corridors)
        s = zone_score(events, zone_cm=job.zone_cm, first_trials=job.first_trials, texture_cm=texture)
        simulated += float(events[-1]["t"]) if events else 0.0
        if protocol.kind == "task":
            task_day += 1
        rows.append(CohortRow(
            group=job.group, animal=animal, mouse=job.mouse, day=day, date=options.date.isoformat(),  # type: ignore[union-attr]
            protocol=protocol.name, kind=protocol.kind, task_day=task_day if protocol.kind == "task" else 0,
            session=str(result.path.relative_to(data)), complete=result.run.complete, trials=result.run.trials,
            rewards=result.run.rewards, rewarded=s.rewarded, unrewarded=s.unrewarded, delta=s.delta,
            first_lick_median_cm=s.first_lick_median_cm, first_lick_beyond_200=s.first_lick_beyond_200,
            first_lick_hist=s.first_lick_hist,
        ))
        if not job.keep_sessions:  # a 1 h session is ~115 MB, mostly the 1 kHz ball: scored, it can go
            shutil.rmtree(result.path)
    return rows, simulated


def check_out(out: Path) -> None:
    """A cohort needs a fresh folder: its mice would otherwise remember an earlier cohort's days."""
    if (out / DATA).exists() or (out / "cohort.json").exists():
        raise FileExistsError(f"{out}: already holds a cohort ({DATA}/ or cohort.json); choose a new folder")


def prepare_config(config: RigConfig) -> RigConfig:
    """The config the cohort's mice run on: simulated, with the per-animal memory on."""
    if not config.simulated or config.sim is None:
        raise ValueError(f"rig config {config.name!r} is not a simulated rig with a sim: section (the virtual mouse)")
    if config.mesoscope is not None:
        raise ValueError(f"rig config {config.name!r} has a mesoscope: section; cohorts run --fast sessions only")
    return config.model_copy(update={"sim": config.sim.model_copy(update={"memory": True})})


def run_cohort(
    curriculum: Curriculum,
    out: Path,
    *,
    config: RigConfig | None = None,
    base: Path | None = None,
    mice: int | None = None,
    seed: int = 1,
    jobs: int | None = None,
    max_trials: int | None = None,
    duration_s: float | None = None,
    start_date: date | None = None,
    progress: Callable[[str], None] | None = None,
    keep_sessions: bool = True,
) -> CohortResult:
    """Run the cohort into `out` (sessions under out/data) and return its scored rows (not yet written
    out: see rig.sim.cohort_report). `jobs` processes (default: every core). `keep_sessions=False` removes
    each session folder once it is scored (the rows and the mice's memory files stay): a cohort of 1 h
    sessions writes ~115 MB a session."""
    import time

    out = Path(out)
    check_out(out)
    if start_date is not None:
        curriculum = curriculum.model_copy(update={"start_date": start_date})
    config = prepare_config(config if config is not None else load_config(DEFAULT_CONFIG))
    protocols = load_protocols(curriculum, base)
    n = mice if mice is not None else curriculum.mice_per_group
    if n < 1:
        raise ValueError(f"mice per group must be >= 1, got {n}")
    work = plan(curriculum, protocols, config, out, mice=n, seed=seed, max_trials=max_trials,
                duration_s=duration_s, keep_sessions=keep_sessions)
    workers = max(1, min(jobs if jobs is not None else (os.cpu_count() or 1), len(work)))
    (out / DATA).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results: list[tuple[list[CohortRow], float]] = []
    if workers == 1:
        for j in work:
            results.append(run_mouse(j))
            if progress is not None:
                progress(f"{animal_id(j.group, j.mouse)} done")
    else:
        # spawn, not fork: a fresh interpreter per worker, whatever threads the caller has running.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(run_mouse, j) for j in work]
            for j, f in zip(work, futures, strict=True):
                results.append(f.result())
                if progress is not None:
                    progress(f"{animal_id(j.group, j.mouse)} done")
    wall = time.perf_counter() - t0
    rows = tuple(r for rs, _ in results for r in rs)
    simulated = sum(s for _, s in results)
    return CohortResult(curriculum, out, seed, n, rows, wall, simulated, workers)


def row_dict(row: CohortRow) -> dict:
    d = asdict(row)
    d["first_lick_hist"] = list(row.first_lick_hist)
    return d


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "cohort"
