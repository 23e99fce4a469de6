"""`rig info` summary on synthetic sessions with known counts, and listing an animal's sessions."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np

from rig.datalog.info import find_sessions, missing_in_gaps, session_info
from rig.datalog.reader import Session
from rig.datalog.writer import SessionWriter
from rig.engine.records import Command, Event, State
from tests.support.headers import facts

HEADER = {
    "protocol": {"name": "train2", "kind": "task", "stages": [{"name": "easy"}, {"name": "hard"}]},
    "seed": 99,
    "frame_rate_hz": 60.0,
    "fast": False,
    "start_time": "2024-03-01T10:00:00+00:00",
}


def _state(k: int, stage: int) -> State:
    t = k / 60
    return State(t, k // 60, 0, stage, t, t, 1.0, 1.0, True, False, 10.0, False, 0.0, 0, False)


def _write(data_dir: Path, complete: bool = True, today: date = date(2024, 3, 1)) -> Path:
    with SessionWriter.create(data_dir, facts("M7", **HEADER), min_free_mb=0, today=today) as w:
        for k in range(181):  # t = 0 .. 3 s
            t = k / 60
            w.frame(k, _state(k, 0 if k < 100 else 1))
            # display loop: iteration 50 started 3 periods late -> 2 missed display frames;
            # work 4 ms on 91 of 181 iterations -> median 4 ms
            w.timing(k, t + (2 / 60 if k >= 50 else 0.0), 0.002 if k % 2 else 0.004, 0.03)
        # imaging at 30 Hz, frames 10 and 11 lost (one interval of 3 periods) -> 2 dropped
        ft = np.array([n / 30 for n in range(40) if n not in (10, 11)])
        w.frame_clock(5, ft)
        w.licks(5, [0.1, 0.15, 0.2, 0.25, 0.3], [True, False, True, False, True])
        for trial in range(3):
            w.events(60 * trial + 59, [Event(trial + 0.99, "trial_end", trial, 150.0, {})])
        w.events(30, [Event(0.5, "reward", 0, 80.0, {"volume_ul": 2.5, "source": "task"})])
        w.commands(30, [Command(0.5, "valve", 40.0, volume_ul=2.5, source="task")])
        w.valve(30, "open", {"t": 0.5, "source": "task", "requested_ms": 40.0, "sent_ms": 40.0, "volume_ul": 2.5,
                           "requested_ul": 2.5, "outcome": "delivered", "reason": ""})
        w.events(90, [Event(1.5, "reward", 1, 80.0, {"volume_ul": 2.5, "source": "task"})])
        w.commands(90, [Command(1.5, "valve", 40.0, volume_ul=2.5, source="task")])
        w.valve(90, "open", {"t": 1.5, "source": "task", "requested_ms": 40.0, "sent_ms": 40.0, "volume_ul": 2.5,
                           "requested_ul": 2.5, "outcome": "delivered", "reason": ""})
        w.operator(120, 2.0, "manual_reward", volume_ul=4.0)
        w.events(120, [Event(2.0, "reward", 2, 10.0, {"volume_ul": 4.0, "source": "manual"})])
        w.commands(120, [Command(2.0, "valve", 60.0, volume_ul=4.0, source="manual")])
        w.valve(120, "open", {"t": 2.0, "source": "manual", "requested_ms": 60.0, "sent_ms": 60.0, "volume_ul": 4.0,
                           "requested_ul": 4.0, "outcome": "delivered", "reason": ""})
        w.commands(121, [Command(2.0, "cue", 100.0, frequency_hz=5000.0)])
        w.close(True, "max_trials")
    if not complete:  # what a crash leaves: no footer, a record cut in half
        (w.path / "footer.json").unlink()
        with open(w.path / "frames.bin", "ab") as f:
            f.write(b"\x01\x02\x03")
    return w.path


def test_session_info_counts_a_synthetic_session(tmp_path: Path):
    info = session_info(Session.open(_write(tmp_path)))
    assert info["animal"] == "M7" and info["protocol"] == "train2" and info["kind"] == "task"
    assert info["seed"] == 99 and info["start_time"] == "2024-03-01T10:00:00+00:00"
    assert info["trials"] == 3
    assert info["rewards"] == 3 and info["rewards_manual"] == 1
    assert info["water_ul"] == 9.0
    assert info["licks"] == 3
    assert info["frames"] == 38 and info["frames_dropped"] == 2
    assert info["duration_s"] == 3.0
    assert info["complete"] is True and info["end_reason"] == "max_trials"
    assert info["stages"] == ["easy", "hard"] and info["stage"] == "hard"
    assert info["work_ms_p50"] == 4.0 and info["missed_display_frames"] == 2
    assert info["latency_ms_p99"] == 30.0
    assert json.loads(json.dumps(info)) == info  # `rig info --json` prints it as is


def test_session_info_of_a_crashed_session_is_incomplete_and_says_it_was_trimmed(tmp_path: Path):
    info = session_info(Session.open(_write(tmp_path, complete=False)))
    assert info["complete"] is False and "no footer" in info["end_reason"]
    assert info["trimmed"] == ["frames.bin"] and info["trials"] == 3 and info["duration_s"] == 3.0


def test_session_info_of_an_empty_session(tmp_path: Path):
    w = SessionWriter.create(tmp_path, facts("M7", protocol={"name": "x", "kind": "exposure"}), min_free_mb=0)
    w.close(False, "stopped")
    info = session_info(Session.open(w.path))
    assert info["kind"] == "exposure" and info["frames"] == 0 and info["duration_s"] == 0.0
    assert info["trials"] == 0 and info["stage"] is None and "work_ms_p50" not in info


def test_missing_in_gaps():
    assert missing_in_gaps(np.arange(10.0)) == 0
    assert missing_in_gaps(np.array([0.0, 1.0, 2.0, 5.0, 6.0, 7.0])) == 2
    assert missing_in_gaps(np.array([0.0, 1.0, 2.6, 3.6, 4.6])) == 1  # 1.6 periods: one frame lost
    assert missing_in_gaps(np.array([0.0])) == 0


def test_find_sessions_lists_real_sessions_oldest_first(tmp_path: Path):
    a = _write(tmp_path, today=date(2024, 3, 2))
    b = _write(tmp_path, today=date(2024, 3, 1))
    c = _write(tmp_path, today=date(2024, 3, 2))
    (tmp_path / "M7" / "2024-03-02" / "009").mkdir()  # no header: not a session
    (tmp_path / "M7" / "notes").mkdir()
    assert find_sessions(tmp_path / "M7") == [b, a, c]
