"""The MouseLand behaviour dict: the per-session format the lab's analysis code reads.

One dict per session, keyed `<animal>_<YYYY_MM_DD>_<block>` inside a pickled .npy dict (a `Beh_*.npy`
holds many). Positions are decimetres, times MATLAB datenums (days, UTC), `...Fr` fields 0-based
fractional imaging-frame indices. Every field, its meaning and derivation: docs/export.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from rig.datalog.reader import Session
from rig.export import ExportError, Trials, datenum, licks, progress, session_key, time_origin, trials
from rig.protocol import Protocol
from rig.sync.frametable import FrameTable, frame_table, session_protocol

CM_PER_DM = 10.0
N_BINS = 60  # run_pos bins per corridor (the lab bins a 6 m corridor in decimetres)

# The lab's stimulus codes (stim_id), as its analysis code indexes them; other corridors get -1.
LAB_STIM_ID = {
    "circle1": 0, "circle2": 1, "leaf1": 2, "leaf2": 3, "leaf3": 4, "leaf1_swap1": 5, "leaf1_swap2": 6,
}
REWARD_MODE = {
    "active_after_cue": "Active after cue",
    "passive_after_cue": "Passive",
    "zone_passive": "Passive",
    "zone_active": "Active in zone",
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


def run_by_position(session: Session, ntrials: int, corridor_dm: float) -> np.ndarray:
    """ntrials x 60: mean ball speed (cm/s) over the loop iterations in each decimetre bin (NaN: none)."""
    loop = session.frames
    out = np.full((ntrials, N_BINS), np.nan)
    if len(loop) == 0 or ntrials == 0:
        return out
    keep = (loop["trial"] >= 0) & (loop["trial"] < ntrials)
    loop = loop[keep]
    bins = np.clip(np.floor(loop["position_cm"] / CM_PER_DM * N_BINS / corridor_dm), 0, N_BINS - 1).astype(int)
    cell = loop["trial"].astype(np.int64) * N_BINS + bins
    count = np.bincount(cell, minlength=ntrials * N_BINS)
    total = np.bincount(cell, weights=loop["ball_speed_cm_s"], minlength=ntrials * N_BINS)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return mean.reshape(ntrials, N_BINS)


def _position_after(session: Session, t0: np.ndarray, pos0_cm: np.ndarray, delay_s: float) -> np.ndarray:
    """Position (cm, may pass the corridor's end) reached delay_s after being at pos0_cm at t0."""
    loop = session.frames
    if len(loop) == 0:
        return np.full(len(t0), np.nan)
    cum = loop["position_cum_cm"]
    return pos0_cm + np.interp(t0 + delay_s, loop["t"], cum) - np.interp(t0, loop["t"], cum)


def session_dict(session: Session | str | Path, table: FrameTable | None = None) -> dict[str, Any]:
    """The MouseLand dict of one session (not keyed; see export_session for the keyed file)."""
    if not isinstance(session, Session):
        session = Session.open(session)
    protocol = session_protocol(session)
    corridor_dm, texture_dm, grey_dm = _lengths_dm(protocol, session.path)
    ft = table if table is not None else frame_table(session)
    tr: Trials = trials(session)
    lk = licks(session)
    origin, origin_source = time_origin(session)
    t0 = origin.timestamp()

    def dn(t: np.ndarray) -> np.ndarray:
        return datenum(t0 + np.asarray(t, dtype=float))

    n = len(tr)
    first_stage = int(tr.stage[0]) if n else 0
    rule = protocol.stage_reward(first_stage)  # validation guarantees every stage has a rule
    delay_ms = float(rule.delay_ms)
    mode = REWARD_MODE[rule.mode]

    wall = tr.corridor_name
    uniq = np.unique(wall) if n else np.array([c.name for c in protocol.corridors])
    sound_delay_t = tr.cue_t + delay_ms / 1000.0
    d: dict[str, Any] = {
        # session
        "Corridor_Length": corridor_dm,
        "Texture_Length": texture_dm,
        "Gray_Space_length": grey_dm,
        "Reward_Delay_ms": delay_ms,
        "Reward_Mode": mode,
        "ntrials": n,
        "UniqWalls": uniq,
        "stim_id": np.array([LAB_STIM_ID.get(str(w), -1) for w in uniq], dtype=np.int64),
        # per trial
        "WallName": wall,
        "WallType": np.array([_wall_type(protocol, str(w)) for w in wall]) if n else np.array([], dtype="<U1"),
        "WallIsProbe": tr.probe,
        "WallIsRewarded": tr.rewarded_corridor,
        "isRew": tr.rewards > 0,
        "StartFr": ft.index_of(tr.start_t),
        "GrayFr": ft.index_of(tr.grey_t),
        "EndFr": ft.index_of(tr.end_t),
        "RewardFr": ft.index_of(tr.reward_t),
        "RewPos": tr.reward_cm / CM_PER_DM,
        "RewTime": dn(tr.reward_t),
        "SoundFr": ft.index_of(tr.cue_t),
        "SoundPos": tr.cue_cm / CM_PER_DM,
        "SoundTime": dn(tr.cue_t),
        "SoundDelayFr": ft.index_of(sound_delay_t),
        "SoundDelPos": _position_after(session, tr.cue_t, tr.cue_cm, delay_ms / 1000.0) / CM_PER_DM,
        "SoundTimeDelay": dn(sound_delay_t),
        "RewZonePos": tr.zone_start_cm / CM_PER_DM,
        "Trial_start_time": dn(tr.start_t),
        "Trial_end_time": dn(tr.end_t),
        "Gray_space_time": dn(tr.grey_t),
        "TrialComplete": tr.complete,
        "Stage": tr.stage,
        "run_pos": run_by_position(session, n, corridor_dm),
        "StimTrial": {str(w): wall == w for w in uniq},
        # per imaging frame
        "ft": dn(ft.time),
        "ft_trInd": ft.trial.astype(np.int64),
        "ft_Pos": ft.position_cm / CM_PER_DM,
        "ft_PosCum": ft.trial * corridor_dm + ft.position_cm / CM_PER_DM,
        "ft_RunSpeed": ft.ball_speed_cm_s,
        "ft_VirtualSpeed": ft.virtual_speed_cm_s,
        "ft_WallID": ft.corridor_name,
        "ft_isMoving": ft.moving,
        "ft_move": ft.moved_cm / CM_PER_DM,
        "ft_CorrSpc": ~ft.in_grey,
        "ft_GraySpc": ft.in_grey.copy(),
        "ft_SyncFlags": ft.flags,
        # licks
        "LickFr": ft.index_of(lk.t),
        "LickPos": lk.position_cm / CM_PER_DM,
        "LickTime": dn(lk.t),
        "LickTrind": lk.trial,
        "Lick_wallName": wall[lk.trial] if n else np.array([], dtype="<U1"),
        # provenance
        "Animal": str(session.header.animal),
        "Date": str(session.header.date),
        "Block": int(session.header.session),
        "Protocol": protocol.name,
        "Kind": protocol.kind,
        "nframes": len(ft),
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
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.array(beh, dtype=object), allow_pickle=True)
    tmp.replace(path)
    return path


def load(path: str | Path) -> dict[str, dict[str, Any]]:
    data = np.load(Path(path), allow_pickle=True)
    beh = data.item() if data.shape == () else None
    if not isinstance(beh, dict):
        raise ExportError(f"{path}: not a MouseLand behaviour dict (expected a pickled dict of sessions)")
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
