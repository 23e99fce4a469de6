"""One-glance summary of a session (`rig info`), and listing an animal's sessions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from rig.datalog.reader import HEADER, Session, SessionError, read_document
from rig.datalog.schema import SYNC_REPORT_SCHEMA
from rig.datalog.water import session_water
from rig.engine.records import EventKind

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SESSION_RE = re.compile(r"^\d{3,}$")
# An interval this many times the median counts as a gap (imaging frames or display frames).
GAP_FACTOR = 1.5


def missing_in_gaps(times: np.ndarray, period: float | None = None) -> int:
    """Frames missing from a regular clock: each interval longer than GAP_FACTOR periods (the median
    interval unless given) counts round(interval / period) - 1 missing frames."""
    times = np.asarray(times, dtype=float)
    if len(times) < 2:
        return 0
    dt = np.diff(times)
    if period is None:
        period = float(np.median(dt))
    if not period > 0:
        return 0
    gaps = dt[dt > GAP_FACTOR * period]
    return int(np.sum(np.maximum(np.rint(gaps / period) - 1, 1))) if len(gaps) else 0


def _stage_names(protocol: dict[str, Any]) -> list[str]:
    stages = protocol.get("stages") or ()
    return [str(s.get("name", f"stage {k}")) if isinstance(s, dict) else f"stage {k}"
            for k, s in enumerate(stages)] or ["main"]


def session_info(session: Session) -> dict[str, Any]:
    """Counts and facts of one session (JSON-serializable). See docs/data-format.md for the fields."""
    h = session.header
    protocol = h.protocol
    events = session.events
    rewards = [e for e in events if e.get("kind") == EventKind.REWARD]
    manual = sum(1 for e in rewards if (e.get("data") or {}).get("source") == "manual")
    water = session_water(session)
    frames = session.frames
    t = frames["t"]
    names = _stage_names(protocol)
    visited = [int(s) for s in dict.fromkeys(frames["stage"].tolist())]  # order of first visit
    info: dict[str, Any] = {
        "path": str(session.path),
        "animal": h.animal,
        "protocol": protocol.get("name"),
        "kind": protocol.get("kind"),
        "seed": h.seed,
        "start_time": h.start_time,
        "complete": session.complete,
        "end_reason": (session.footer or {}).get("reason", "no footer: the session did not end normally"),
        "duration_s": float(t[-1] - t[0]) if len(t) else 0.0,
        "iterations": len(frames),
        "trials": sum(1 for e in events if e.get("kind") == EventKind.TRIAL_END),
        "rewards": len(rewards),
        "rewards_manual": manual,
        "rewards_withheld": sum(1 for e in events if e.get("kind") == EventKind.REWARD_WITHHELD),
        "water_ul": round(water.delivered_ul, 6),
        "water_requested_ul": round(water.requested_ul, 6),
        "valve_openings": water.openings,
        "valve_cut": water.cut,
        "valve_refused": water.refused,
        "licks": int(np.count_nonzero(session.licks["onset"])),
        "frames": len(session.frame_clock),
        "frames_dropped": missing_in_gaps(session.frame_clock["t"]),
        "stage": names[visited[-1]] if visited and visited[-1] < len(names) else None,
        "stages": [names[s] if s < len(names) else str(s) for s in visited],
        "trimmed": list(session.trimmed),
        "warnings": list(session.warnings) + water.warnings(),
        "faults": len(session.faults),
    }
    sync = _sync_report(session.path, info["warnings"])
    if sync is not None:
        # The reconciled frame table (TTL + mesoscope messages) is the better count when it exists.
        info.update(
            frames=sync.get("frames", info["frames"]),
            frames_dropped=sync.get("frames_dropped", info["frames_dropped"]),
            sync_counts_agree=sync.get("counts_agree"),
            sync_flags=sync.get("flag_counts"),
            imaging_gaps=sync.get("imaging_gaps"),
        )
    if len(session.timing):
        with np.errstate(over="ignore"):  # a damaged huge value becomes inf, not a warning
            work_ms = session.timing["work_s"] * 1e3
            latency_ms = session.timing["latency_s"] * 1e3
        latency_ms = latency_ms[np.isfinite(latency_ms)]
        t_wall = session.timing["t_wall"]
        rate = h.frame_rate_hz
        info.update(
            work_ms_p50=round(float(np.percentile(work_ms, 50)), 4),
            work_ms_p99=round(float(np.percentile(work_ms, 99)), 4),
            latency_ms_p50=round(float(np.percentile(latency_ms, 50)), 4) if len(latency_ms) else None,
            latency_ms_p99=round(float(np.percentile(latency_ms, 99)), 4) if len(latency_ms) else None,
            # Fast (virtual-clock) runs have no display deadlines, so missed frames mean nothing there.
            missed_display_frames=None if h.fast else missing_in_gaps(t_wall, 1 / rate),
        )
    return info


def _sync_report(folder: Path, warnings: list[str]) -> dict[str, Any] | None:
    """sync_report.json when present and sound; a damaged one is left out with a warning (the session's own
    streams still give the frame counts)."""
    path = Path(folder) / "sync_report.json"
    try:
        report = read_document(path)
        if report is None:
            return None
        if not isinstance(report, dict):
            raise SessionError(f"{path}: not a JSON object")
        SYNC_REPORT_SCHEMA.validate_python(report)
    except SessionError as e:
        warnings.append(f"sync_report.json left out: {e}")
        return None
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        warnings.append(f"sync_report.json left out: {'.'.join(map(str, err['loc']))}: {err['msg']}")
        return None
    return report


def find_sessions(animal_dir: str | Path) -> list[Path]:
    """Session folders (ANIMAL/YYYY-MM-DD/NNN holding a header.json) under animal_dir, oldest first."""
    animal_dir = Path(animal_dir)
    if not animal_dir.is_dir():
        raise FileNotFoundError(f"{animal_dir}: no such animal folder")
    found = []
    try:
        for day in sorted(p for p in animal_dir.iterdir() if p.is_dir() and _DATE_RE.match(p.name)):
            numbered = [p for p in day.iterdir() if p.is_dir() and _SESSION_RE.match(p.name)]
            found += [p for p in sorted(numbered, key=lambda p: int(p.name)) if (p / HEADER).is_file()]
    except OSError as e:  # a folder that cannot be listed (permissions)
        raise SessionError(f"{e.filename or animal_dir}: cannot be listed: {e.strerror or e}") from None
    return found
