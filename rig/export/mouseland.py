"""The MouseLand behaviour dict: the per-session format the lab's analysis code reads.

One dict per session, keyed `<animal>_<YYYY_MM_DD>_<block>` inside a pickled .npy dict (a `Beh_*.npy`
holds many). Positions are decimetres, times MATLAB datenums (days, UTC), `...Fr` fields 0-based
fractional imaging-frame indices: row k of the frame table, in time order, is imaging frame k (never a
frame *number*, which ScanImage counts from 1). Every field, its meaning and derivation: docs/export.md.

What the lab's functions assume (MouseLand/zhong-et-al-2025, read for facts), and how this export meets it:
- every trial in `ntrials` was imaged completely, with 15 frames to spare on each side (their windows
  are +-15 frames around cues and first licks, with no guard): the trial arrays hold the complete trials
  imaged so (normally all of them, thanks to the engine's pre- and post-roll); a trial cut short by the
  end of the session, or not imaged so, is left out (`TrialIndex` maps exported trials to the session's);
- `Reward_Mode` is exactly 'Passive' or 'Active after cue';
- the lick arrays hold the licks of the exported trials only, so no `LickFr` is NaN (the lab's
  `.astype(int)` would make it INT_MIN) and no `LickTrind` reaches `ntrials`; every lick is in our own
  `LickTime_all`, `LickTrind_all`, `LickFr_all`;
- frames outside the exported trials (the rolls, an excluded trial) match no corridor (`ft_WallID` ''),
  are in neither the texture nor the grey and have trial index -1, so every analysis mask drops them.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rig.datalog.reader import Session
from rig.export import ExportError, Trials, datenum, licks, progress, session_key, time_origin, trials
from rig.protocol import Protocol
from rig.sync.frametable import FrameTable, frame_table, session_protocol

CM_PER_DM = 10.0
N_BINS = 60  # run_pos bins per corridor (the lab bins a 6 m corridor in decimetres)
LAB_WINDOW_FRAMES = 15  # the lab's windows around cues and first licks (utils.py spk_2_cue / spk_2_firstLick)

# The lab's stimulus codes (stim_id), as its analysis code indexes them; other corridors get -1.
LAB_STIMULI = ("circle1", "circle2", "leaf1", "leaf2", "leaf3", "leaf1_swap1", "leaf1_swap2")
LAB_STIM_ID = {name: code for code, name in enumerate(LAB_STIMULI)}
# Our reward modes in the lab's vocabulary, which has two words: 'Passive' (water without a lick; the
# lab counts licks from trial start to cue + Reward_Delay_ms, i.e. before the water) and 'Active after
# cue' (a lick earns the water; the lab counts licks from trial start to the grey part). A zone mode is
# the same rule with the reward zone's start in place of the cue.
REWARD_MODE = {
    "active_after_cue": "Active after cue",
    "passive_after_cue": "Passive",
    "zone_passive": "Passive",
    "zone_active": "Active after cue",
}
# Texture categories as the lab names them (brick is "wood" in its data).
CATEGORY = {"brick": "wood"}


def _lengths_dm(protocol: Protocol, where: Path) -> tuple[float, float, float]:
    tex = {c.texture_length_cm for c in protocol.corridors}
    grey = {c.grey_length_cm for c in protocol.corridors}
    if len(tex) != 1 or len(grey) != 1:
        shapes = ", ".join(f"{c.name} {c.texture_length_cm:g}+{c.grey_length_cm:g} cm" for c in protocol.corridors)
        raise ExportError(f"{where}: the MouseLand format has one corridor length per session; "
                          f"this protocol's corridors differ ({shapes})")
    t, g = tex.pop() / CM_PER_DM, grey.pop() / CM_PER_DM
    return t + g, t, g


def _wall_type(protocol: Protocol, name: str) -> str:
    src = protocol.corridor(name).texture.source
    return CATEGORY.get(src, src)


@dataclass(frozen=True)
class Selection:
    """Which of a session's trials the lab's arrays hold: trials first .. stop-1 (contiguous)."""

    first: int
    stop: int
    excluded: np.ndarray  # session indices of the trials left out, ascending

    @property
    def n(self) -> int:
        return self.stop - self.first


def select_trials(tr: Trials, ft: FrameTable) -> Selection:
    """The complete trials imaged with LAB_WINDOW_FRAMES frames before their start and after their end
    (all complete trials when the session has no imaging frames at all), as one contiguous run."""
    ok = tr.complete.copy()
    if len(ft):
        start_fr, end_fr = ft.index_of(tr.start_t), ft.index_of(tr.end_t)
        with np.errstate(invalid="ignore"):
            ok &= (start_fr >= LAB_WINDOW_FRAMES) & (end_fr <= len(ft) - LAB_WINDOW_FRAMES)
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        return Selection(0, 0, np.arange(len(tr)))
    first = int(idx[0])
    holes = np.flatnonzero(~ok[first:])
    stop = first + int(holes[0]) if len(holes) else len(tr)
    keep = np.zeros(len(tr), bool)
    keep[first:stop] = True
    return Selection(first, stop, np.flatnonzero(~keep))


def run_by_position(session: Session, tr: Trials, sel: Selection, corridor_dm: float) -> np.ndarray:
    """n x 60: mean ball speed (cm/s) over the loop iterations of each exported trial, before its end, in
    each decimetre bin (NaN: none)."""
    n = sel.n
    loop = session.frames
    out = np.full((n, N_BINS), np.nan)
    if len(loop) == 0 or n == 0:
        return out
    j = loop["trial"].astype(np.int64) - sel.first
    inside = (j >= 0) & (j < n)
    end_t = tr.end_t[sel.first:sel.stop]
    inside[inside] &= loop["t"][inside] < end_t[j[inside]]
    loop, j = loop[inside], j[inside]
    bins = np.clip(np.floor(loop["position_cm"] / CM_PER_DM * N_BINS / corridor_dm), 0, N_BINS - 1).astype(int)
    cell = j * N_BINS + bins
    count = np.bincount(cell, minlength=n * N_BINS)
    total = np.bincount(cell, weights=loop["ball_speed_cm_s"], minlength=n * N_BINS)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return mean.reshape(n, N_BINS)


def _cum_at(session: Session, t: np.ndarray) -> np.ndarray:
    loop = session.frames
    if len(loop) == 0:
        return np.full(len(np.atleast_1d(t)), np.nan)
    return np.asarray(np.interp(t, loop["t"], loop["position_cum_cm"]), dtype=float)


def _position_after(session: Session, t0: np.ndarray, pos0_cm: np.ndarray, delay_s: np.ndarray | float
                    ) -> np.ndarray:
    """Position (cm, may pass the corridor's end) reached delay_s after being at pos0_cm at t0."""
    if len(session.frames) == 0:
        return np.full(len(t0), np.nan)
    return np.asarray(pos0_cm + _cum_at(session, t0 + delay_s) - _cum_at(session, t0), dtype=float)


def _time_at_distance(session: Session, cum_cm: np.ndarray) -> np.ndarray:
    """Session time at which the distance travelled first reached each cum_cm (linear between loop rows;
    NaN when never reached)."""
    loop = session.frames
    out = np.full(len(cum_cm), np.nan)
    if len(loop) == 0:
        return out
    t, cum = loop["t"], loop["position_cum_cm"]
    k = np.searchsorted(cum, cum_cm, "left")  # first row at or past the distance (cum never decreases)
    ok = np.isfinite(cum_cm) & (k < len(cum))
    kk = k[ok]
    prev = np.maximum(kk - 1, 0)
    span = cum[kk] - cum[prev]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(span > 0, (cum_cm[ok] - cum[prev]) / span, 1.0)
    out[ok] = np.where(kk == 0, t[0], t[prev] + frac * (t[kk] - t[prev]))
    return out


@dataclass(frozen=True)
class _Sound:
    """The lab's 'Sound' fields: the cue, or where a protocol has none, the reward zone's start."""

    t: np.ndarray
    cm: np.ndarray
    source: str  # "cue" | "zone_start" | "none"


def _sound(session: Session, protocol: Protocol, tr: Trials) -> _Sound:
    if protocol.cue is not None:
        return _Sound(tr.cue_t, tr.cue_cm, "cue")
    if np.isfinite(tr.zone_start_cm).any():
        # No sound in a zone task (the behaviour cohort's): the moment the mouse reaches the zone's start
        # takes the cue's place, the event the lab's 'Passive' count and cue-aligned windows refer to.
        t = _time_at_distance(session, _cum_at(session, tr.start_t) + tr.zone_start_cm)
        return _Sound(t, np.where(np.isfinite(t), tr.zone_start_cm, np.nan), "zone_start")
    return _Sound(np.full(len(tr), np.nan), np.full(len(tr), np.nan), "none")


def _session_stage(stages: np.ndarray) -> int:
    """The stage that held most exported trials (ties: the later); 0 without trials."""
    if len(stages) == 0:
        return 0
    values, counts = np.unique(stages, return_counts=True)
    return int(values[counts == counts.max()].max())


def session_dict(session: Session | str | Path, table: FrameTable | None = None) -> dict[str, Any]:
    """The MouseLand dict of one session (not keyed; see export_session for the keyed file)."""
    if not isinstance(session, Session):
        session = Session.open(session)
    protocol = session_protocol(session)
    corridor_dm, texture_dm, grey_dm = _lengths_dm(protocol, session.path)
    ft = table if table is not None else frame_table(session)
    tr_all: Trials = trials(session)
    lk = licks(session)
    origin, origin_source = time_origin(session)
    t0 = origin.timestamp()

    def dn(t: np.ndarray) -> np.ndarray:
        return datenum(t0 + np.asarray(t, dtype=float))

    sel = select_trials(tr_all, ft)
    cut = slice(sel.first, sel.stop)
    n = sel.n
    sound_all = _sound(session, protocol, tr_all)

    def per_trial(a: np.ndarray) -> np.ndarray:
        return a[cut]

    stage = per_trial(tr_all.stage)
    rules = [protocol.stage_reward(int(k)) for k in stage]
    rule = protocol.stage_reward(_session_stage(stage))  # validation guarantees every stage has a rule
    delay_ms = float(rule.delay_ms)
    delays_s = np.array([r.delay_ms / 1000.0 for r in rules], dtype=float)

    wall = per_trial(tr_all.corridor_name)
    uniq = np.unique(wall) if n else np.unique(np.array([c.name for c in protocol.corridors]))
    sound_t, sound_cm = per_trial(sound_all.t), per_trial(sound_all.cm)
    sound_delay_t = sound_t + delays_s
    start_t, end_t, grey_t = per_trial(tr_all.start_t), per_trial(tr_all.end_t), per_trial(tr_all.grey_t)
    reward_t = per_trial(tr_all.reward_t)

    # Licks: the lab's arrays hold the licks made in the exported trials, renumbered from 0.
    lab_lick = lk.in_trial & (lk.trial >= sel.first) & (lk.trial < sel.stop)
    lick_t, lick_trial = lk.t[lab_lick], lk.trial[lab_lick] - sel.first

    # Frames: inside an exported trial's [start, end) or outside every trial.
    ftr = ft.trial.astype(np.int64) - sel.first
    inside = (ftr >= 0) & (ftr < n)
    if n:
        j = np.clip(ftr, 0, n - 1)
        inside &= (ft.time >= start_t[j]) & (ft.time < end_t[j])
    # Distance since the first exported trial's start (continuous corridors: trial * length + position),
    # so ft_PosCum / Corridor_Length is the exported trial index plus the fraction of the corridor; what
    # moved before that start does not count. Frames after the last trial keep counting, as the lab's.
    cum0 = float(_cum_at(session, start_t[:1])[0]) if n else np.inf
    cum_f = ft.position_cum_cm
    pos_cum_dm = np.maximum(cum_f - cum0, 0.0) / CM_PER_DM if n else np.zeros(len(ft))
    move_dm = np.maximum(cum_f + ft.moved_cm - np.maximum(cum_f, cum0), 0.0) / CM_PER_DM if n \
        else np.zeros(len(ft))
    in_grey = ft.in_grey & inside

    d: dict[str, Any] = {
        # session
        "Corridor_Length": corridor_dm,
        "Texture_Length": texture_dm,
        "Gray_Space_length": grey_dm,
        "Reward_Delay_ms": delay_ms,
        "Reward_Mode": REWARD_MODE[rule.mode],
        "ntrials": n,
        "UniqWalls": uniq,
        "stim_id": np.array([LAB_STIM_ID.get(str(w), -1) for w in uniq], dtype=np.int64),
        # per trial
        "WallName": wall,
        "WallType": np.array([_wall_type(protocol, str(w)) for w in wall]) if n else np.array([], dtype="<U1"),
        "WallIsProbe": per_trial(tr_all.probe),
        "WallIsRewarded": per_trial(tr_all.rewarded_corridor),
        "isRew": per_trial(tr_all.rewards) > 0,
        "StartFr": ft.index_of(start_t),
        "GrayFr": ft.index_of(grey_t),
        "EndFr": ft.index_of(end_t),
        "RewardFr": ft.index_of(reward_t),
        "RewPos": per_trial(tr_all.reward_cm) / CM_PER_DM,
        "RewTime": dn(reward_t),
        "SoundFr": ft.index_of(sound_t),
        "SoundPos": sound_cm / CM_PER_DM,
        "SoundTime": dn(sound_t),
        "SoundDelayFr": ft.index_of(sound_delay_t),
        "SoundDelPos": _position_after(session, sound_t, sound_cm, delays_s) / CM_PER_DM,
        "SoundTimeDelay": dn(sound_delay_t),
        "Sound_source": sound_all.source,
        "RewZonePos": per_trial(tr_all.zone_start_cm) / CM_PER_DM,
        "Trial_start_time": dn(start_t),
        "Trial_end_time": dn(end_t),
        "Gray_space_time": dn(grey_t),
        "TrialComplete": per_trial(tr_all.complete),
        "TrialIndex": np.arange(sel.first, sel.stop, dtype=np.int64),
        "Stage": stage,
        "Stage_name": per_trial(tr_all.stage_name),
        "Reward_Mode_trial": np.array([REWARD_MODE[r.mode] for r in rules], dtype="<U16"),
        "Reward_Rule_trial": np.array([r.mode for r in rules], dtype="<U16"),
        "Reward_Delay_ms_trial": np.array([r.delay_ms for r in rules], dtype=float),
        "Reward_Rule": rule.mode,
        "run_pos": run_by_position(session, tr_all, sel, corridor_dm),
        "StimTrial": {str(w): wall == w for w in uniq},
        # per imaging frame
        "ft": dn(ft.time),
        "ft_trInd": np.where(inside, ftr, -1).astype(np.int64),
        "ft_Pos": ft.position_cm / CM_PER_DM,
        "ft_PosCum": pos_cum_dm,
        "ft_RunSpeed": ft.ball_speed_cm_s,
        "ft_VirtualSpeed": ft.virtual_speed_cm_s,
        "ft_WallID": np.where(inside, ft.corridor_name, ""),
        "ft_isMoving": ft.moving.copy(),
        "ft_move": move_dm,
        "ft_CorrSpc": inside & ~in_grey,
        "ft_GraySpc": in_grey,
        "ft_InTrial": inside,
        "ft_FrameNumber": ft.frame.astype(np.int64),
        "ft_SyncFlags": ft.flags,
        # licks
        "LickFr": ft.index_of(lick_t),
        "LickPos": lk.position_cm[lab_lick] / CM_PER_DM,
        "LickTime": dn(lick_t),
        "LickTrind": lick_trial,
        "Lick_wallName": wall[lick_trial] if n else np.array([], dtype="<U1"),
        "LickTime_all": dn(lk.t),
        "LickFr_all": ft.index_of(lk.t),
        "LickTrind_all": lk.trial.copy(),
        "LickInTrial_all": lab_lick,
        # provenance
        "Animal": str(session.header.animal),
        "Date": str(session.header.date),
        "Block": int(session.header.session),
        "Protocol": protocol.name,
        "Kind": protocol.kind,
        "nframes": len(ft),
        "Frame_index_base": 0,
        "Trials_started": len(tr_all),
        "Trials_excluded": sel.excluded,
        "Pre_roll_s": float(protocol.imaging.pre_roll_s or 0.0),
        "Post_roll_s": float(protocol.imaging.post_roll_s or 0.0),
        "Session_start_time": float(datenum(t0)),
        "Time_origin": origin_source,
    }
    return d


def export_session(session: Session | str | Path, path: str | Path) -> dict[str, dict[str, Any]]:
    """Write `{key: session_dict}` to a pickled .npy (np.load(path, allow_pickle=True).item())."""
    if not isinstance(session, Session):
        session = Session.open(session)
    beh = {session_key(session): session_dict(session)}
    save(beh, path)
    return beh


def save(beh: dict[str, dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    if path.suffix != ".npy":
        raise ExportError(f"{path}: a MouseLand file is a .npy pickle; name it *.npy")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # never writes through a planted file
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, np.array(beh, dtype=object), allow_pickle=True)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


class _ArraysOnly(pickle.Unpickler):
    """Unpickles what a Beh_*.npy holds (dicts, lists, strings, numbers, numpy arrays and scalars) and
    nothing else: a pickle that names any other callable is refused before it can run."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.dtypes", "StrDType"),
               ("numpy.dtypes", "Float64DType"), ("numpy.dtypes", "Int64DType"), ("numpy.dtypes", "BoolDType"),
               ("numpy.dtypes", "ObjectDType"), ("numpy.dtypes", "Int32DType"), ("numpy.dtypes", "Int8DType"),
               ("numpy.dtypes", "UInt8DType"), ("numpy.dtypes", "Float32DType"), ("numpy.dtypes", "Int16DType")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a MouseLand file")
        return super().find_class(module, name)


def load(path: str | Path) -> dict[str, dict[str, Any]]:
    """A Beh_*.npy dict, read with an unpickler that builds only numpy arrays and plain data."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            _, _, dtype = read_header(f)  # the header only, no data yet
            if dtype != np.dtype(object):
                raise ExportError(f"{p}: not a MouseLand behaviour dict (a numeric .npy, not a pickled dict)")
            data = _ArraysOnly(f).load()
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, AttributeError) as e:
        raise ExportError(f"{p}: not a readable MouseLand behaviour dict ({type(e).__name__}: {e})") from None
    beh = data.item() if isinstance(data, np.ndarray) and data.shape == () else data
    if not isinstance(beh, dict):
        raise ExportError(f"{p}: not a MouseLand behaviour dict (expected a pickled dict of sessions)")
    return beh


def merge(sources: Iterable[Session | str | Path], path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """One Beh dict from many sessions: each source is a session folder (or Session) or an exported .npy
    (a dict of sessions). Two sources with the same key are an error. Written to `path` when given."""
    items = list(sources)
    out: dict[str, dict[str, Any]] = {}
    for src in progress(items, "sessions", total=len(items)):
        if isinstance(src, Session) or Path(src).is_dir():
            s = src if isinstance(src, Session) else Session.open(src)
            part = {session_key(s): session_dict(s)}
        else:
            part = load(src)
        for key, value in part.items():
            if key in out:
                raise ExportError(f"{src}: session key {key!r} appears twice among the sources")
            out[key] = value
    if path is not None:
        save(out, path)
    return out
