"""NWB export of a session (pynwb, the `export` extra). Layout: docs/export.md.

All times are seconds from session time 0, which is also the NWB session_start_time. Data are stored in
the session's own units (cm, cm/s, uL) with an NWB `conversion` to SI, so values read back equal the
session arrays exactly.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hdmf.backends.hdf5.h5_utils import H5DataIO
from hdmf.common import DynamicTable, VectorData
from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.behavior import BehavioralTimeSeries, Position, SpatialSeries
from pynwb.event import DurationVectorData, EventsTable, TimestampVectorData
from pynwb.file import Subject

from rig.config import PERSON_NAME
from rig.datalog.reader import Session
from rig.engine.records import EventKind
from rig.export import ExportError, progress, session_key, time_origin, trials
from rig.sync.frametable import FrameTable, frame_table, session_protocol

CM = 0.01  # cm -> m
UL = 1e-6  # uL -> L
_COMPRESS_ABOVE = 4096  # elements; smaller datasets gain nothing from gzip


@dataclass(frozen=True)
class SubjectInfo:
    """Subject facts that override the session header's (its registry record and weight at start); None
    keeps the header's. Without either: sex U, species Mus musculus, age P0D/ (NWB's "unknown")."""

    sex: str | None = None  # "M", "F", "U" (unknown) or "O"
    species: str | None = None  # Latin binomial (DANDI maps it to NCBITaxon offline) or an NCBITaxon URL
    date_of_birth: dt.date | None = None  # the age is then computed (whole days at session start)
    # used only without a date of birth: ISO 8601 duration ("P90D") or range ("P8W/P12W"); "P0D/" = unknown
    age: str | None = None
    strain: str | None = None  # e.g. "C57BL/6J"
    genotype: str | None = None  # e.g. "wild type"
    weight_g: float | None = None  # at session start
    description: str | None = None


@dataclass(frozen=True)
class LabInfo:
    """Who and where, overriding the rig config's lab: section and the header's experimenter."""

    institution: str | None = None
    lab: str | None = None
    experimenter: tuple[str, ...] = ()  # "Last, First" (DANDI's form)
    related_publications: tuple[str, ...] = ()  # "doi:10.x/..." or "https://doi.org/..."


def _header_subject(session: Session) -> SubjectInfo:
    h = session.header
    s = h.subject
    if s is None:
        return SubjectInfo(weight_g=h.weight_g)
    return SubjectInfo(sex=s.sex, species=s.species, date_of_birth=dt.date.fromisoformat(s.date_of_birth)
                       if s.date_of_birth else None, strain=s.strain, genotype=s.genotype, weight_g=h.weight_g,
                       description=s.description or None)


def _merged(base: SubjectInfo, over: SubjectInfo) -> SubjectInfo:
    return SubjectInfo(**{k: (getattr(over, k) if getattr(over, k) is not None else getattr(base, k))
                          for k in SubjectInfo.__dataclass_fields__})


def _subject(subject: SubjectInfo, animal: str, start: dt.datetime) -> Subject:
    kw: dict[str, Any] = {}
    if subject.date_of_birth is not None:
        days = (start.date() - subject.date_of_birth).days
        if days < 0:
            raise ExportError(f"date of birth {subject.date_of_birth} is after the session ({start.date()})")
        kw["date_of_birth"] = dt.datetime.combine(subject.date_of_birth, dt.time(), tzinfo=start.tzinfo)
        kw["age"] = f"P{days}D"
    else:
        kw["age"] = subject.age or "P0D/"
    if subject.weight_g is not None:
        if not subject.weight_g > 0:
            raise ExportError(f"subject weight {subject.weight_g} g: must be > 0")
        # "<number> <unit>" without an exponent, as nwbinspector's check_subject_weight wants
        kw["weight"] = f"{np.format_float_positional(subject.weight_g, precision=3, trim='-')} g"
    return Subject(subject_id=animal, species=subject.species or "Mus musculus", sex=subject.sex or "U",
                   strain=subject.strain, genotype=subject.genotype,
                   description=subject.description or "animal id as entered at the rig", **kw)


def _experimenters(lab: LabInfo, session: Session) -> list[str] | None:
    names = list(lab.experimenter) or ([session.header.experimenter] if session.header.experimenter else [])
    for n in names:
        if not PERSON_NAME.match(n):
            raise ExportError(f"experimenter {n!r}: NWB and DANDI want 'Last, First' (e.g. 'Doe, Jane'); give it in "
                              "that form with --experimenter")
    return names or None


def _lab_fields(lab: LabInfo, session: Session) -> dict[str, Any]:
    config_lab = session.header.config.get("lab") or {}
    return {"institution": lab.institution or config_lab.get("institution"),
            "lab": lab.lab or config_lab.get("lab"),
            "related_publications": list(lab.related_publications) or None}


def _dated(session: Session, origin: dt.datetime) -> tuple[dt.datetime, str]:
    """Session time 0 on the session's own date: a session given a date (rig run --date, simulated days) keeps
    its run's time of day on that date. Also the sentence that says so in the notes ('' when not moved)."""
    try:
        day = dt.date.fromisoformat(session.header.date)
    except ValueError:
        return origin, ""
    if origin.date() == day:
        return origin, ""
    moved = dt.datetime.combine(day, origin.timetz())
    return moved, (f" The session was dated {day} (rig run --date) and run on {origin.date()}; session_start_time "
                   "puts its time of day on that date.")


def _all_nan(a: Any) -> bool:
    a = np.asarray(a)
    return a.dtype.kind == "f" and a.size > 0 and bool(np.all(np.isnan(a)))


def _small_int(a: np.ndarray) -> np.ndarray:
    """An integer column in the smallest integer type that holds it: nwbinspector suggests making any
    multi-byte column whose values are exactly {0, 1} boolean (check_column_binary_capability), a false
    alarm for counts and indices; a 1-byte column is never flagged. Values are unchanged."""
    a = np.asarray(a)
    if a.dtype.kind not in "iu" or a.size == 0:
        return a
    return a.astype(np.result_type(np.min_scalar_type(a.min()), np.min_scalar_type(a.max())))


def _data(a: np.ndarray) -> Any:
    a = np.ascontiguousarray(a)
    return H5DataIO(a, compression="gzip", compression_opts=4) if a.size > _COMPRESS_ABOVE else a


def _regular(ts: np.ndarray) -> tuple[float, float] | None:
    """(starting_time, rate) when the timestamps are regular to 1 ns (virtual-clock runs), else None;
    NWB prefers a rate to a list of regular timestamps."""
    if len(ts) < 3:
        return None
    steps = np.unique(np.round(np.diff(ts), 9))
    if len(steps) != 1 or not steps[0] > 0:
        return None
    return float(ts[0]), float(1.0 / ((ts[-1] - ts[0]) / (len(ts) - 1)))


class _Clock:
    """Timing arguments for a group of series sampled together: a rate when regular, else timestamps
    stored once by the first series and linked from the others."""

    def __init__(self, ts: np.ndarray) -> None:
        self._ts = ts
        self._reg = _regular(ts)
        self._first: TimeSeries | None = None

    def kwargs(self) -> dict[str, Any]:
        if self._reg is not None:
            return {"starting_time": self._reg[0], "rate": self._reg[1]}
        return {"timestamps": self._first if self._first is not None else _data(self._ts)}

    def owns(self, series: TimeSeries) -> TimeSeries:
        if self._first is None:
            self._first = series
        return series


def _lick_contact_s(session: Session) -> tuple[np.ndarray, np.ndarray]:
    """Lick onset times and how long the tongue stayed on the spout (NaN: no release logged)."""
    lk = session.licks[np.argsort(session.licks["t"], kind="stable")]
    t, onset = lk["t"], lk["onset"] == 1
    on_idx = np.flatnonzero(onset)
    dur = np.full(len(on_idx), np.nan)
    if len(on_idx):
        # the edge after each onset, when it is a release
        nxt = on_idx + 1
        ok = nxt < len(lk)
        ok[ok] = ~onset[nxt[ok]]
        dur[ok] = t[nxt[ok]] - t[on_idx[ok]]
    return t[on_idx], dur


def _events(session: Session, kind: str,
            pred: Callable[[dict[str, Any]], bool] = lambda e: True) -> list[dict[str, Any]]:
    return [e for e in session.events if e.get("kind") == kind and pred(e)]


def build_nwbfile(session: Session, subject: SubjectInfo | None = None, table: FrameTable | None = None,
                  lab: LabInfo | None = None) -> NWBFile:
    """The NWBFile of a session, in memory. The subject comes from the session header (its registry record
    and weight at start), institution and lab from the rig config's lab: section; `subject` and `lab`
    override them field by field."""
    subject = _merged(_header_subject(session), subject or SubjectInfo())
    lab = lab or LabInfo()
    h = session.header
    protocol = session_protocol(session)
    origin, origin_source = time_origin(session)
    origin, dated = _dated(session, origin)
    key = session_key(session)
    tr = trials(session)
    ft = table if table is not None else frame_table(session)
    loop = session.frames
    if len(loop) == 0:
        raise ExportError(f"{session.path}: frames.bin is empty; nothing to export")

    software = h.software
    notes = (
        f"Recorded by corridor-rig {software.rig} (git {h.git_commit}) on host "
        f"{h.host}; seed {h.seed}; {'virtual clock (--fast)' if h.fast else 'real time'}."
        f" Session end: {(session.footer or {}).get('reason', 'no footer: the session did not end normally')}."
        f" Time origin from {origin_source}.{dated}"
        f" Valve calibration {h.calibration.id if h.calibration else '(not recorded)'}"
        f" ({h.calibration.date if h.calibration and h.calibration.date else 'undated'})."
        f" Notes at the start: {h.notes or '(none)'}"
        + _lab_notes(session)
    )
    nwb = NWBFile(
        session_description=f"{protocol.name} ({protocol.kind}): {protocol.description or 'virtual corridor'}",
        identifier=str(uuid.uuid5(uuid.NAMESPACE_URL, f"corridor-rig:{key}:{h.start_time}")),
        session_start_time=origin,
        timestamps_reference_time=origin,
        session_id=key,
        experimenter=_experimenters(lab, session),
        **_lab_fields(lab, session),
        experiment_description=(
            "Head-fixed mouse running through a virtual linear corridor (textured walls, then grey); "
            f"protocol {protocol.name!r}, kind {protocol.kind}."
        ),
        protocol=f"{protocol.name} (sha256 {h.protocol_sha256})",
        stimulus_notes="Resolved protocol (corridor-rig YAML):\n" + str(h.protocol_yaml),
        data_collection="Rig configuration (corridor-rig, JSON):\n" + json.dumps(h.config, sort_keys=True),
        notes=notes,
        keywords=["virtual reality", "linear corridor", "head-fixed mouse", "licking", protocol.kind],
        source_script=f"corridor-rig {software.rig}",
        source_script_file_name="rig/export/nwb.py",
    )
    nwb.subject = _subject(subject, str(h.animal), origin)

    steps = ["trials", "behavior", "events", "imaging frames", "loop timing"]
    bar = progress(steps, "nwb", total=len(steps))
    next(bar)
    _add_trials(nwb, tr, float(loop["t"][-1]))
    next(bar)
    _add_behavior(nwb, session)
    next(bar)
    _add_events(nwb, session)
    next(bar)
    _add_imaging_frames(nwb, ft)
    next(bar)
    _add_loop_timing(nwb, session)
    _add_operator_notes(nwb, session)
    for _ in bar:
        pass
    return nwb


def _add_trials(nwb: NWBFile, tr: Any, last_t: float) -> None:
    cols: list[tuple[str, str, np.ndarray]] = [
        ("corridor", "corridor (trial type) name", tr.corridor_name),
        ("corridor_index", "index of the corridor in the protocol's corridor list", tr.corridor),
        ("rewarded", "a task reward was delivered in this trial", tr.rewards > 0),
        ("rewarded_corridor", "the corridor is a rewarded one (exposure: reward was due, not given)",
         tr.rewarded_corridor),
        ("probe", "probe corridor", tr.probe),
        ("stage", "index of the protocol stage in force", tr.stage),
        ("complete", "the trial reached its end (false: the session stopped during it)", tr.complete),
        ("grey_time", "entry into the grey part (s; NaN: not reached)", tr.grey_t),
        ("cue_position_cm", "position where the sound cue played (cm from corridor start; NaN: no cue)",
         tr.cue_cm),
        ("cue_time", "time the sound cue played (s; NaN: no cue)", tr.cue_t),
        ("reward_zone_start_cm", "reward zone start (cm; NaN unless a zone reward mode)", tr.zone_start_cm),
        ("reward_position_cm", "position of the first task reward (cm; NaN: none)", tr.reward_cm),
        ("reward_time", "time of the first task reward (s; NaN: none)", tr.reward_t),
        ("reward_withheld_time", "exposure: time a reward was due but withheld (s; NaN: none)", tr.withheld_t),
        ("n_rewards", "task rewards delivered in the trial", tr.rewards),
        ("n_manual_rewards", "operator rewards in the trial", tr.manual_rewards),
        ("first_lick_time", "first lick onset in the trial (s; NaN: no lick)", tr.first_lick_t),
        ("n_licks", "lick onsets in the trial", tr.licks),
    ]
    cols = [c for c in cols if not _all_nan(c[2])]  # nwbinspector check_col_not_nan: such a column is left out
    stop = np.where(np.isnan(tr.end_t), max(last_t, 0.0), tr.end_t)
    for k in range(len(tr)):
        nwb.add_trial(start_time=float(tr.start_t[k]), stop_time=float(max(stop[k], tr.start_t[k])))
    # whole columns after the rows, so each keeps its numpy type (rows would store Python ints as int64)
    for name, desc, v in cols:
        nwb.add_trial_column(name=name, description=desc, data=v.tolist() if v.dtype.kind == "U" else _small_int(v))


def _add_behavior(nwb: NWBFile, session: Session) -> None:
    loop = session.frames
    mod = nwb.create_processing_module("behavior", "Virtual-corridor behaviour at the loop (display) rate")
    clock = _Clock(loop["t"])
    pos = clock.owns(SpatialSeries(
        name="position", data=_data(loop["position_cm"]), conversion=CM, unit="meters",
        reference_frame="0 = start of the corridor's textured part; the grey part follows; resets each trial",
        description="position in the current corridor after each loop iteration (cm stored, conversion to m)",
        **clock.kwargs(),
    ))
    cum = SpatialSeries(
        name="cumulative_position", data=_data(loop["position_cum_cm"]), conversion=CM, unit="meters",
        reference_frame="0 = session start; total distance travelled in the virtual world",
        description="total distance travelled in the virtual world, never decreasing (cm, conversion to m)",
        **clock.kwargs(),
    )
    mod.add(Position(spatial_series=[pos, cum], name="Position"))
    specs = [
        ("ball_speed", "ball_speed_cm_s", "m/s", CM, "running speed measured on the ball (cm/s, conversion to m/s)"),
        ("virtual_speed", "virtual_speed_cm_s", "m/s", CM, "speed of the corridor on the screen (cm/s, conversion)"),
        ("trial_index", "trial", "n.a.", 1.0, "0-based trial index after each loop iteration"),
        ("corridor_index", "corridor", "n.a.", 1.0, "index into the protocol's corridors after each loop iteration"),
        ("state_flags", "flags", "n.a.", 1.0, "bit 0 moving, bit 1 in grey, bit 2 cue played, bit 3 done"),
    ]
    series = [TimeSeries(name=name, data=_data(loop[col]), unit=unit, conversion=conv, description=desc,
                         **clock.kwargs()) for name, col, unit, conv, desc in specs]
    mod.add(BehavioralTimeSeries(time_series=series, name="BehavioralTimeSeries"))
    ball = session.ball
    if len(ball):
        nwb.add_acquisition(TimeSeries(
            name="ball_displacement", data=_data(ball["cm"]), unit="meters", conversion=CM,
            description="forward ball surface displacement per encoder sample (cm, conversion to m)",
            **_Clock(ball["t"]).kwargs(),
        ))


def _event_table(name: str, description: str, source: str, ev: list[dict[str, Any]], duration: np.ndarray,
                 extra: list[tuple[str, str, np.ndarray | list[str]]]) -> EventsTable:
    cols: list[VectorData] = [
        TimestampVectorData(name="timestamp", description="event time (s from session start)",
                            data=np.array([float(e["t"]) for e in ev])),
        DurationVectorData(name="duration", description="event duration (s; NaN: unknown)", data=duration),
        VectorData(name="trial", description="0-based trial index",
                   data=_small_int(np.array([int(e.get("trial", -1)) for e in ev], dtype=np.int64))),
        VectorData(name="position_cm", description="position in the corridor (cm from its start)",
                   data=np.array([float(e.get("position_cm", np.nan)) for e in ev])),
    ]
    cols += [VectorData(name=n, description=d, data=_small_int(v) if isinstance(v, np.ndarray) else v)
             for n, d, v in extra]
    cols = [c for c in cols if not _all_nan(c.data)]  # nwbinspector check_col_not_nan (duration is optional)
    return EventsTable(name=name, description=description, source_description=source, columns=cols)


def _add_events(nwb: NWBFile, session: Session) -> None:
    engine = "events.jsonl of the corridor-rig session (engine events)"
    lick_ev = _events(session, EventKind.LICK)
    if lick_ev:
        onset_t, contact = _lick_contact_s(session)
        # engine lick events carry the lick-sensor onset times exactly; look up each one's contact time
        lt = np.array([float(e["t"]) for e in lick_ev])
        idx = np.clip(np.searchsorted(onset_t, lt), 0, max(len(onset_t) - 1, 0))
        dur = np.full(len(lt), np.nan)
        if len(onset_t):
            same = onset_t[idx] == lt
            dur[same] = contact[idx[same]]
        nwb.add_events_table(_event_table(
            "licks", "lick onsets; duration: how long the tongue stayed on the spout", engine, lick_ev, dur,
            [("anticipatory", "the engine counted the lick as anticipatory",
              np.array([bool((e.get("data") or {}).get("anticipatory", False)) for e in lick_ev]))],
        ))
    for name, kind, desc in (
        ("rewards", "reward", "water rewards (task and operator); duration: valve opening time"),
        ("rewards_withheld", "reward_withheld", "exposure sessions: rewards due but not given"),
    ):
        ev = _events(session, kind)
        if not ev:
            continue
        data = [e.get("data") or {} for e in ev]
        nwb.add_events_table(_event_table(
            name, desc, engine, ev, np.array([float(d.get("duration_ms", np.nan)) / 1000.0 for d in data]),
            [("volume_ul", "water volume (uL)", np.array([float(d.get("volume_ul", np.nan)) for d in data])),
             ("source", "'task' (the protocol's rule) or 'manual' (operator)",
              [str(d.get("source", "task")) for d in data])],
        ))
    cues = _events(session, EventKind.CUE)
    if cues:
        data = [e.get("data") or {} for e in cues]
        nwb.add_events_table(_event_table(
            "cues", "sound cue onsets", engine, cues,
            np.array([float(d.get("duration_ms", np.nan)) / 1000.0 for d in data]),
            [("frequency_hz", "tone frequency (Hz)", np.array([float(d.get("frequency_hz", np.nan)) for d in data]))],
        ))


def _add_imaging_frames(nwb: NWBFile, ft: FrameTable) -> None:
    if len(ft) == 0:
        return
    # Frame times are the timing truth and rarely exactly regular, so they are always stored as timestamps.
    nwb.add_acquisition(TimeSeries(
        name="imaging_frame_clock", data=_data(ft.frame), timestamps=_data(ft.time), unit="n.a.",
        description=f"imaging frame-clock edges (timing truth, from {ft.source}); data: logged frame number",
    ))
    descs = {
        "time": "frame time (s)", "frame": "logged frame number", "iteration": "loop iteration on screen",
        "trial": "0-based trial index", "corridor": "corridor index", "corridor_name": "corridor name",
        "position_cm": "position in the corridor (cm)", "position_cum_cm": "total distance travelled (cm)",
        "ball_speed_cm_s": "mean ball speed over the frame (cm/s)",
        "virtual_speed_cm_s": "mean corridor speed over the frame (cm/s)",
        "moved_cm": "corridor distance travelled during the frame (cm)", "moving": "engine moving flag",
        "in_grey": "in the grey part", "licks": "lick onsets in the frame", "rewards": "rewards in the frame",
        "flags": "sync flags (bits: see docs/export.md)",
    }
    columns = [VectorData(name=k, description=descs.get(k, k),
                          data=v.tolist() if v.dtype.kind == "U" else _small_int(v))
               for k, v in ft.columns().items()]
    nwb.processing["behavior"].add(DynamicTable(
        name="imaging_frame_behaviour", columns=columns,
        description="behaviour on the imaging frame grid, one row per imaging frame (rig.sync.frametable)",
    ))


def _add_loop_timing(nwb: NWBFile, session: Session) -> None:
    timing, loop = session.timing, session.frames
    # timing.bin rows join frames.bin rows on the iteration i
    t_of_i = dict(zip(loop["i"].tolist(), loop["t"].tolist(), strict=True))
    timing = timing[np.array([i in t_of_i for i in timing["i"].tolist()], dtype=bool)]
    if len(timing) == 0:
        return
    clock = _Clock(np.array([t_of_i[i] for i in timing["i"].tolist()]))
    mod = nwb.create_processing_module("misc", "Real-time loop timing (wall clock; not deterministic)")
    for name, col, desc in (
        ("loop_wall_time", "t_wall", "wall time at which each loop iteration started, from the loop's start"),
        ("loop_work_time", "work_s", "wall time spent in each iteration: read inputs, step, command, render, log"),
        ("loop_latency", "latency_s", "closed-loop latency: buffer swap minus the newest ball sample used (NaN: none)"),
    ):
        mod.add(clock.owns(TimeSeries(name=name, data=_data(timing[col]), unit="seconds", description=desc,
                                      **clock.kwargs())))


def _lab_notes(session: Session) -> str:
    """Notes kept in the lab records after (or about) the session (rig.lab.notes, `rig animal ID note`): those
    naming this session, then those for its day naming none. '' when there are none or the folder is not
    DATA/ANIMAL/DATE/NNN of a data folder holding the animal's records."""
    from rig.lab.journal import LabRecordError
    from rig.lab.notes import notes

    folder = Path(session.path)
    if len(folder.parents) < 3:
        return ""
    name = f"{folder.parent.name}/{folder.name}"
    try:
        day = dt.date.fromisoformat(folder.parent.name)
        entries = notes(folder.parents[2], str(session.header.animal))
    except (ValueError, LabRecordError, OSError):
        return ""

    def line(n: Any) -> str:
        by = f" by {n.by}" if n.by else ""
        return f"[{n.recorded_at}{by}] {n.text}"

    # A note typed in the app during the session is in operator.jsonl too (events/operator_notes): once.
    typed = {str((r.get("data") or {}).get("text", "")) for r in session.operator if r.get("action") == "note"}
    mine = [line(n) for n in entries if n.session == name and not (n.during and n.text in typed)]
    of_day = [line(n) for n in entries if n.session is None and n.date == day]
    out = ""
    if mine:
        out += f" Notes on this session ({len(mine)}, lab records): " + " | ".join(mine)
    if of_day:
        out += f" Notes on the animal for {day} ({len(of_day)}, lab records, no session named): " + " | ".join(of_day)
    return out


def _add_operator_notes(nwb: NWBFile, session: Session) -> None:
    """Notes typed during the session (operator.jsonl `note`), at the session time the runner logged them."""
    rows = [r for r in session.operator if r.get("action") == "note"]
    if not rows:
        return
    loop = session.frames
    # the trial on screen when the note was logged: the frames.bin row of its iteration (or the one before)
    k = np.clip(np.searchsorted(loop["i"], np.array([int(r["i"]) for r in rows]), side="right") - 1, 0, None)
    cols = [
        TimestampVectorData(name="timestamp", description="session time the runner logged the note at (s)",
                            data=np.array([float(r["t"]) for r in rows])),
        VectorData(name="annotation", description="the note's text, as typed",
                   data=[str((r.get("data") or {}).get("text", "")) for r in rows]),
        VectorData(name="trial", description="0-based trial index on screen (-1: before the first trial)",
                   data=_small_int(loop["trial"][k].astype(np.int64))),
    ]
    nwb.add_events_table(EventsTable(
        name="operator_notes", description="notes the operator typed during the session",
        source_description="operator.jsonl of the corridor-rig session (action 'note', from the app or a script)",
        columns=cols))


def export_nwb(session: Session | str | Path, path: str | Path, subject: SubjectInfo | None = None,
               lab: LabInfo | None = None) -> Path:
    """Write the session to an NWB file (written to a temporary name, then renamed into place)."""
    if not isinstance(session, Session):
        session = Session.open(session)
    path = Path(path)
    if path.suffix != ".nwb":
        raise ExportError(f"{path}: an NWB file name ends in .nwb")
    nwb = build_nwbfile(session, subject, lab=lab)
    tmp = path.with_name(f".{path.stem}.tmp.nwb")
    with NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwb)
    tmp.replace(path)
    return path


__all__ = ["LabInfo", "SubjectInfo", "build_nwbfile", "export_nwb"]
