"""The session folder writer and reader: round trips, numbering, refusal, determinism, plain-numpy reading."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from rig.datalog.header import Software
from rig.datalog.reader import BINARY_FIELDS, JSONL_FILES, WALL_CLOCK_FILES, Session, SessionError, frame_flag
from rig.datalog.writer import LowDiskSpaceError, SessionWriter
from rig.engine.records import Command, Event, State
from tests.support.headers import facts

DAY = date(2024, 5, 17)
HEADER = {
    "protocol": {"name": "train1", "kind": "task", "stages": [{"name": "s1"}, {"name": "s2"}]},
    "protocol_yaml": "name: train1\n",
    "config": {"name": "sim", "frame_rate_hz": 60.0},
    "seed": 1234,
    "software": Software(rig="0.1.0"),
    "git_commit": "abc123",
}


def make_state(k: int) -> State:
    return State(
        t=k / 60 + 1e-12 * k,  # not a round number: the round trip must be bit-exact
        trial=k // 50,
        corridor=k % 3,
        stage=k // 120,
        position_cm=(k % 50) * 3.3,
        position_cum_cm=k * 3.3,
        ball_speed_cm_s=-1.5 if k % 7 == 0 else 25.1,
        virtual_speed_cm_s=25.1,
        moving=k % 2 == 0,
        in_grey=k % 50 > 40,
        cue_position_cm=math.nan if k % 11 == 0 else 100.25,
        cue_played=k % 3 == 0,
        zone_start_cm=math.nan,
        rewards_in_trial=k % 4,
        done=k == 199,
    )


def write_sample(data_dir: Path, n: int = 200, flush_every: int = 7, **create) -> Path:
    """A session with every stream filled; returns its folder. Flushes every `flush_every` iterations."""
    with SessionWriter.create(data_dir, facts("M1", **HEADER), min_free_mb=0, today=DAY, **create) as w:
        w.events(0, [Event(0.0, "session_start", 0, 0.0, {"seed": 1234})])
        for k in range(n):
            t = k / 60
            w.frame(k, make_state(k))
            w.ball(k, np.array([t - 0.01, t - 0.005]), np.array([3, -1]), np.array([0.3, -0.1]))
            if k % 5 == 0:
                w.licks(k, [t - 0.002, t - 0.001], [True, False])
            if k % 2 == 0:
                w.frame_clock(k, np.array([t - 0.003]))
            if k % 10 == 0:
                w.events(k, [Event(t, "lick", k // 50, 1.5, {"anticipatory": True, "n": np.int64(k)})])
                w.commands(k, [Command(t, "valve", 40.0, volume_ul=2.5, source="task")])
            if k == 30:
                w.operator(k, t, "manual_reward", volume_ul=3.0)
                w.mesoscope(k, t, "ack", request_id=7)
            w.timing(k, t, 0.001, 0.02)
            if k % flush_every == 0:
                w.flush()
        w.close(True, "max_trials", {"trials": 4})
    return w.path


def test_round_trip_of_every_stream(tmp_path: Path):
    path = write_sample(tmp_path)
    s = Session.open(path)
    assert s.complete and s.trimmed == [] and s.warnings == []
    assert s.header.seed == 1234 and s.header.animal == "M1"
    assert s.header.protocol["name"] == "train1"
    assert s.footer["reason"] == "max_trials" and s.footer["summary"] == {"trials": 4}

    f = s.frames
    assert len(f) == 200
    for k in (0, 11, 77, 199):
        st = make_state(k)
        row = f[k]
        assert row["i"] == k and row["t"] == st.t and row["trial"] == st.trial and row["stage"] == st.stage
        assert row["corridor"] == st.corridor and row["position_cm"] == st.position_cm
        assert row["ball_speed_cm_s"] == st.ball_speed_cm_s and row["rewards_in_trial"] == st.rewards_in_trial
        assert (math.isnan(row["cue_position_cm"]) and math.isnan(st.cue_position_cm)) or (
            row["cue_position_cm"] == st.cue_position_cm
        )
    for name in ("moving", "in_grey", "cue_played", "done"):
        assert frame_flag(f, name).tolist() == [getattr(make_state(k), name) for k in range(200)]

    assert len(s.ball) == 400 and s.ball["counts"][:2].tolist() == [3, -1]
    assert s.ball["i"][:4].tolist() == [0, 0, 1, 1]
    assert s.ball["t"][2] == 1 / 60 - 0.01 and s.ball["cm"][3] == -0.1
    assert len(s.licks) == 80 and s.licks["onset"][:2].tolist() == [1, 0] and s.licks["i"][2] == 5
    assert s.frame_clock["frame"].tolist() == list(range(100))
    assert s.frame_clock["i"][:3].tolist() == [0, 2, 4]
    assert len(s.timing) == 200 and s.timing["latency_s"][5] == 0.02

    assert s.events[0] == {"i": 0, "t": 0.0, "kind": "session_start", "trial": 0, "position_cm": 0.0,
                           "data": {"seed": 1234}}  # fmt: skip
    assert s.events[3]["data"] == {"anticipatory": True, "n": 20} and s.events[3]["i"] == 20
    assert s.commands[1] == {"i": 10, "t": 10 / 60, "kind": "valve", "duration_ms": 40.0, "volume_ul": 2.5,
                             "frequency_hz": 0.0, "source": "task"}  # fmt: skip
    assert s.operator == [{"i": 30, "t": 0.5, "action": "manual_reward", "data": {"volume_ul": 3.0}}]
    assert s.mesoscope == [{"i": 30, "t": 0.5, "kind": "ack", "data": {"request_id": 7}}]
    assert s.footer["counts"]["frames.bin"] == 200 and s.footer["imaging_frames"] == 100


def test_header_holds_format_facts_and_layouts(tmp_path: Path):
    s = Session.open(write_sample(tmp_path, n=3))
    h = s.header
    assert h.format == "corridor-rig-session" and h.format_version == 1
    assert h.date == "2024-05-17" and h.session == 1 and h.start_time
    assert h.files["frames.bin"].dtype[0] == ["i", "<i8"]
    assert set(h.files) == set(BINARY_FIELDS) | set(JSONL_FILES)


def test_binary_files_read_with_numpy_and_json_alone(tmp_path: Path):
    """What docs/data-format.md promises: no project code needed."""
    path = write_sample(tmp_path, n=20)
    code = f"""
import json, numpy as np, sys
folder = {str(path)!r}
h = json.load(open(folder + '/header.json'))
dt = np.dtype([tuple(f) for f in h['files']['frames.bin']['dtype']])
frames = np.fromfile(folder + '/frames.bin', dtype=dt)
events = [json.loads(line) for line in open(folder + '/events.jsonl')]
assert 'rig' not in sys.modules
print(len(frames), frames['trial'][-1], events[0]['kind'])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["20", "0", "session_start"]


def test_folders_count_up_and_never_reuse_an_empty_or_half_written_folder(tmp_path: Path):
    day = tmp_path / "M1" / "2024-05-17"
    first = write_sample(tmp_path, n=2)
    assert first == day / "001"
    (day / "002").mkdir()  # empty: a crash right after mkdir
    (day / "003").mkdir()
    (day / "003" / "frames.bin").write_bytes(b"\x00" * 10)  # half-written, no header
    w = SessionWriter.create(tmp_path, facts("M1"), min_free_mb=0, today=DAY)
    w.close(True, "done")
    assert w.path == day / "004"
    assert (day / "003" / "frames.bin").read_bytes() == b"\x00" * 10
    assert Session.open(first).complete


def _create_many(args: tuple[str, int]) -> list[str]:
    data_dir, n = args
    out = []
    for _ in range(n):
        w = SessionWriter.create(Path(data_dir), facts("M1"), min_free_mb=0, today=DAY)
        w.close(True, "done")
        out.append(w.path.name)
    return out


def test_concurrent_creations_never_share_a_folder(tmp_path: Path):
    with ProcessPoolExecutor(max_workers=3) as pool:
        names = [n for chunk in pool.map(_create_many, [(str(tmp_path), 15)] * 3) for n in chunk]
    assert len(names) == 45 and len(set(names)) == 45
    assert sorted(names) == [f"{k:03d}" for k in range(1, 46)]


def test_low_disk_space_refused_before_any_folder_exists(tmp_path: Path):
    data = tmp_path / "data"
    with pytest.raises(LowDiskSpaceError, match="MB free.*MB required"):
        SessionWriter.create(data, facts("M1", **HEADER), min_free_mb=1e12, today=DAY)
    assert not data.exists()


def test_bad_animal_and_unserializable_header_refused_before_any_folder(tmp_path: Path):
    with pytest.raises(ValueError, match="animal id '../x'"):
        SessionWriter.create(tmp_path, facts("../x"), min_free_mb=0)
    # The header is typed: what is not JSON, and the keys the writer fills in, never reach it.
    with pytest.raises(ValidationError, match="x"):
        facts("M1", x=object())
    with pytest.raises(ValidationError, match="files"):
        facts("M1", files=1)
    with pytest.raises(TypeError, match="SessionFacts"):
        SessionWriter.create(tmp_path, {"animal": "M1"}, min_free_mb=0)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_same_records_written_twice_give_byte_identical_data_files(tmp_path: Path):
    a = write_sample(tmp_path / "a", flush_every=3)
    b = write_sample(tmp_path / "b", flush_every=50)  # different chunking must not matter
    data_files = sorted(p.name for p in a.iterdir() if p.name not in WALL_CLOCK_FILES)
    assert len(data_files) == len(BINARY_FIELDS) + len(JSONL_FILES) - 1
    for name in data_files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_json_lines_are_sorted_compact_and_float_exact(tmp_path: Path):
    with SessionWriter.create(tmp_path, facts("M1"), min_free_mb=0) as w:
        w.events(3, [Event(0.1 + 0.2, "cue", 2, math.nan, {"b": 1, "a": (1, 2)})])
        w.close(True, "done")
    line = (w.path / "events.jsonl").read_text()
    assert line == (
        '{"data":{"a":[1,2],"b":1},"i":3,"kind":"cue","position_cm":NaN,"t":0.30000000000000004,"trial":2}\n'
    )


def test_exception_inside_the_context_closes_the_session_incomplete(tmp_path: Path):
    with pytest.raises(RuntimeError), SessionWriter.create(tmp_path, facts("M1"), min_free_mb=0) as w:
        w.frame(0, make_state(0))
        raise RuntimeError("driver fault")
    s = Session.open(w.path)
    assert not s.complete and s.footer["reason"] == "error: RuntimeError: driver fault"
    assert len(s.frames) == 1


def test_leaving_without_close_is_incomplete(tmp_path: Path):
    with SessionWriter.create(tmp_path, facts("M1"), min_free_mb=0) as w:
        w.frame(0, make_state(0))
    s = Session.open(w.path)
    assert not s.complete and "without close" in s.footer["reason"]


def test_unserializable_event_data_names_the_stream(tmp_path: Path):
    with SessionWriter.create(tmp_path, facts("M1"), min_free_mb=0) as w:
        with pytest.raises(ValueError, match="events.jsonl: record cannot be written as JSON"):
            w.events(1, [Event(0.0, "cue", 0, 0.0, {"x": object()})])
        with pytest.raises(ValueError, match="ball.bin: t, counts, cm differ in length"):
            w.ball(1, np.zeros(2), np.zeros(3, dtype=int), np.zeros(2))
        w.ball(2, np.ones(1), np.ones(1, dtype=int), np.ones(1))  # the bad calls left nothing behind
        w.close(True, "done")
    assert (w.path / "events.jsonl").read_bytes() == b""
    s = Session.open(w.path)
    assert s.ball.tolist() == [(2, 1.0, 1, 1.0)] and s.warnings == []


def test_tick_flushes_only_after_the_interval(tmp_path: Path):
    with SessionWriter.create(tmp_path, facts("M1"), min_free_mb=0, flush_interval_s=0.05) as w:
        frames = w.path / "frames.bin"
        w.tick(10.0)
        w.frame(0, make_state(0))
        w.tick(10.04)
        assert frames.stat().st_size == 0
        w.tick(10.05)
        assert frames.stat().st_size == 77
        w.close(True, "done")


def test_clock_origin_is_recorded(tmp_path: Path):
    with SessionWriter.create(tmp_path, facts("M1"), min_free_mb=0) as w:
        w.clock_origin(123.5, 1.7e9)
        w.close(True, "done")
    assert Session.open(w.path).timing_origin_monotonic == 123.5


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / "header.json").unlink(), "no header.json"),
        (lambda p: (p / "header.json").write_text("{"), "not valid JSON"),
        (lambda p: (p / "header.json").write_text('{"format": "x"}'), "not a corridor-rig-session header"),
        (
            lambda p: (p / "header.json").write_text('{"format": "corridor-rig-session", "format_version": 99}'),
            "format_version 99 is not supported",
        ),  # fmt: skip
    ],
)
def test_bad_header_gives_a_session_error(tmp_path: Path, damage, message):
    path = write_sample(tmp_path, n=2)
    damage(path)
    with pytest.raises(SessionError, match=message):
        Session.open(path)


def test_not_a_folder_and_corrupt_middle_line_give_session_errors(tmp_path: Path):
    with pytest.raises(SessionError, match="not a directory"):
        Session.open(tmp_path / "nope")
    path = write_sample(tmp_path, n=30)
    lines = (path / "events.jsonl").read_bytes().split(b"\n")
    lines[1] = b"{garbage"
    (path / "events.jsonl").write_bytes(b"\n".join(lines))
    with pytest.raises(SessionError, match=r"events.jsonl:2: not a JSON line"):
        Session.open(path)


def test_footer_counts_larger_than_the_data_are_reported(tmp_path: Path):
    path = write_sample(tmp_path, n=10)
    with open(path / "frames.bin", "r+b") as f:
        f.truncate(77 * 4)
    s = Session.open(path)
    assert len(s.frames) == 4 and "frames.bin: footer counts 10 records, file holds 4" in s.warnings


def test_files_are_never_overwritten(tmp_path: Path):
    path = write_sample(tmp_path, n=2)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    os.rename(path, path.with_name("keep"))
    os.mkdir(path)  # a folder of the same number appears again: the writer must move on, not reuse
    w = SessionWriter.create(tmp_path, facts("M1"), min_free_mb=0, today=DAY)
    w.close(True, "done")
    assert w.path.name == "002"
    assert {p.name: p.read_bytes() for p in path.with_name("keep").iterdir()} == before
    assert json.loads((w.path / "header.json").read_text())["session"] == 2
