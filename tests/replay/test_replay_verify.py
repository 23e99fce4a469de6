"""`rig replay --verify`: logged sessions reproduce exactly; altered, cut or corrupted logs are caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rig.cli import main as cli
from rig.datalog.reader import BINARY_FIELDS
from rig.loading import load_config, load_protocol
from rig.replay.inputs import group_sums
from rig.replay.verify import verify_session
from rig.runner.loop import Operator
from rig.runner.session import SessionOptions, run_session
from tests.support.operator_script import OperatorScript
from tests.support.paths import REPO

PROTOCOLS = sorted((REPO / "protocols").glob("*.yaml"))


def run_fast(data: Path, protocol: str | Path = "train1_task", trials: int = 30, seed: int = 7, hooks=()) -> Path:
    p = load_protocol(protocol if isinstance(protocol, Path) else REPO / "protocols" / f"{protocol}.yaml")
    config = load_config(REPO / "config" / "sim.yaml")
    options = SessionOptions(animal="M1", seed=seed, fast=True, max_trials=trials, data_dir=data)
    return run_session(p, config, options, hooks=hooks).path


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A task session with manual rewards, a pause and a resume logged as operator inputs."""
    script = OperatorScript({
        40: [Operator("manual_reward", 3.0)],
        300: [Operator("pause")],
        420: [Operator("manual_reward", 1.5), Operator("resume")],
        900: [Operator("manual_reward", 2.0)],
    })
    return run_fast(tmp_path_factory.mktemp("base"), trials=30, hooks=(script,))


@pytest.fixture
def copy(base, tmp_path) -> Path:
    dst = tmp_path / "M1" / "2024-01-01" / "001"
    shutil.copytree(base, dst)
    return dst


def rig_replay(*args: str) -> int:
    """`rig replay ...` through the real CLI entry point (adding the subcommand if the CLI lacks it)."""
    modules = cli.COMMAND_MODULES
    if "rig.cli.commands.replay" not in modules:
        cli.COMMAND_MODULES = (*modules, "rig.cli.commands.replay")
    try:
        return cli.main(["replay", *args])
    finally:
        cli.COMMAND_MODULES = modules


def frames_of(path: Path) -> np.ndarray:
    return np.fromfile(path / "frames.bin", dtype=np.dtype(list(BINARY_FIELDS["frames.bin"])))


def read_lines(path: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (path / name).read_text().splitlines()]


def write_lines(path: Path, name: str, records: list[dict]) -> None:
    text = "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in records)
    (path / name).write_text(text)


# ------------------------------------------------------------------------------------------ reproduces


def test_base_session_has_operator_inputs_and_verifies(base, capsys):
    ops = read_lines(base, "operator.jsonl")
    assert [o["action"] for o in ops] == ["manual_reward", "pause", "manual_reward", "resume", "manual_reward"]
    report = verify_session(base)
    assert report.ok, [str(d) for d in report.divergences]
    assert not report.truncated and report.iterations == len(frames_of(base))
    assert rig_replay(str(base), "--verify") == 0
    assert capsys.readouterr().out.startswith(f"OK: {report.iterations} iterations")


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=[p.stem for p in PROTOCOLS])
def test_every_shipped_protocol_verifies(protocol, tmp_path):
    # 25 trials each keeps CI quick; test_long_sessions_verify runs 300 trials of a task and its exposure twin.
    path = run_fast(tmp_path, protocol, trials=25, seed=11)
    report = verify_session(path)
    assert report.ok, [str(d) for d in report.divergences]
    assert report.iterations == len(frames_of(path)) > 0


@pytest.mark.parametrize("protocol", ["train1_task", "train1_exposure"])
def test_long_sessions_verify(protocol, tmp_path):
    path = run_fast(tmp_path, protocol, trials=300, seed=5)
    report = verify_session(path)
    assert report.ok, [str(d) for d in report.divergences]
    ends = [e for e in read_lines(path, "events.jsonl") if e["kind"] == "trial_end"]
    assert len(ends) == 300


def test_ball_sums_match_the_runners_per_iteration_numpy_sum():
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 300, size=400)
    lengths[:40] = np.arange(40)  # every short length, where numpy's pairwise sum switches strategy
    it = np.repeat(np.arange(1, len(lengths) + 1), lengths)
    cm = rng.integers(-40, 400, size=len(it)) * (1.0 / 97.0)
    got = group_sums(it, cm, len(lengths))
    k = 0
    for i, n in enumerate(lengths, start=1):
        want = float(np.array(cm[k:k + n]).sum()) if n else 0.0
        assert got[i] == want, (i, n)
        k += n


# ------------------------------------------------------------------------------------------ tampering


def test_altered_frame_position_is_named(copy, capsys):
    frames = frames_of(copy)
    k = 1234
    frames["position_cm"][k] = np.nextafter(frames["position_cm"][k], np.inf)  # one ulp
    frames.tofile(copy / "frames.bin")
    report = verify_session(copy)
    d = report.first
    assert not report.ok and d.file == "frames.bin" and d.field == "position_cm" and d.iteration == k + 1
    assert d.logged == frames["position_cm"][k] and d.replayed != d.logged
    assert rig_replay(str(copy), "--verify") == 1
    out = capsys.readouterr().out
    assert out.startswith(f"DIVERGENCE at iteration {k + 1} (t=") and "frames.bin: position_cm" in out


def test_altered_frame_flag_is_named_by_bit(copy):
    frames = frames_of(copy)
    k = 500
    frames["flags"][k] ^= 2  # in_grey
    frames.tofile(copy / "frames.bin")
    d = verify_session(copy).first
    assert (d.file, d.field, d.iteration) == ("frames.bin", "flags.in_grey", k + 1)


def test_altered_event_value_is_named(copy):
    events = read_lines(copy, "events.jsonl")
    k = next(j for j, e in enumerate(events) if e["kind"] == "reward" and e["data"]["source"] == "task")
    events[k]["data"]["volume_ul"] = 2.6
    write_lines(copy, "events.jsonl", events)
    d = verify_session(copy).first
    assert d.file == "events.jsonl" and d.iteration == events[k]["i"]
    assert d.field == f"line {k + 1} (reward) data.volume_ul" and (d.logged, d.replayed) == (2.6, 2.5)


def test_altered_command_value_is_named(copy):
    commands = read_lines(copy, "commands.jsonl")
    k = next(j for j, c in enumerate(commands) if c["kind"] == "valve")
    commands[k]["duration_ms"] += 1.0
    write_lines(copy, "commands.jsonl", commands)
    d = verify_session(copy).first
    assert d.file == "commands.jsonl" and d.iteration == commands[k]["i"] and d.field.endswith("duration_ms")


def test_event_type_change_is_a_divergence(copy):
    events = read_lines(copy, "events.jsonl")
    k = next(j for j, e in enumerate(events) if e["kind"] == "trial_start")
    events[k]["data"]["stage"] = float(events[k]["data"]["stage"])  # 0 -> 0.0: same number, other type
    write_lines(copy, "events.jsonl", events)
    d = verify_session(copy).first
    assert d.file == "events.jsonl" and d.field.endswith("data.stage")


def test_deleted_event_line_is_reported_missing(copy):
    events = read_lines(copy, "events.jsonl")
    k = next(j for j, e in enumerate(events) if e["kind"] == "lick" and j > 20)
    removed = events.pop(k)
    write_lines(copy, "events.jsonl", events)
    report = verify_session(copy)
    d = report.first
    assert d.file == "events.jsonl" and d.iteration == removed["i"] and "missing" in d.message
    assert any("events.jsonl" in str(x) and "footer counts" in x.message for x in report.divergences)


def test_inserted_command_line_is_reported_extra(copy):
    commands = read_lines(copy, "commands.jsonl")
    commands.insert(3, dict(commands[3]))
    write_lines(copy, "commands.jsonl", commands)
    d = verify_session(copy).first
    assert d.file == "commands.jsonl" and "extra line" in d.message


def test_altered_ball_input_is_caught(copy):
    ball = np.fromfile(copy / "ball.bin", dtype=np.dtype(list(BINARY_FIELDS["ball.bin"])))
    k = int(np.flatnonzero(ball["counts"] > 0)[1000])
    ball["counts"][k] += 5
    ball["cm"][k] = ball["counts"][k] * (1.0 / 100.0)  # consistent: only replay can tell
    ball.tofile(copy / "ball.bin")
    d = verify_session(copy).first
    assert d.file == "frames.bin" and d.iteration == ball["i"][k] and d.field == "ball_speed_cm_s"


def test_ball_cm_inconsistent_with_counts_is_caught(copy):
    ball = np.fromfile(copy / "ball.bin", dtype=np.dtype(list(BINARY_FIELDS["ball.bin"])))
    k = 777
    ball["cm"][k] += 0.25
    ball.tofile(copy / "ball.bin")
    d = verify_session(copy).first
    assert d.file == "ball.bin" and d.iteration == ball["i"][k] and "counts" in d.message


def test_altered_lick_time_is_caught(copy):
    licks = np.fromfile(copy / "licks.bin", dtype=np.dtype(list(BINARY_FIELDS["licks.bin"])))
    k = int(np.flatnonzero(licks["onset"] == 1)[5])
    licks["t"][k] -= 0.001
    licks.tofile(copy / "licks.bin")
    d = verify_session(copy).first
    assert d.file == "events.jsonl" and d.iteration == licks["i"][k] and d.field.endswith(" t")


def test_deleted_operator_action_is_caught(copy):
    ops = read_lines(copy, "operator.jsonl")
    removed = ops.pop(0)  # the first manual reward
    write_lines(copy, "operator.jsonl", ops)
    d = verify_session(copy).first
    assert d.iteration == removed["i"] and d.file in ("frames.bin", "events.jsonl", "commands.jsonl")


def test_altered_header_protocol_is_caught(copy):
    header = json.loads((copy / "header.json").read_text())
    header["protocol"]["cue"]["duration_ms"] = 250.0
    (copy / "header.json").write_text(json.dumps(header))
    d = verify_session(copy).first
    assert d.file == "header.json" and d.field == "protocol.cue.duration_ms"
    assert (d.logged, d.replayed) == (250.0, 200.0)


def test_altered_protocol_yaml_fails_its_hash(copy, capsys):
    header = json.loads((copy / "header.json").read_text())
    header["protocol_yaml"] = header["protocol_yaml"].replace("duration_ms: 200", "duration_ms: 250")
    (copy / "header.json").write_text(json.dumps(header))
    report = verify_session(copy)
    assert report.first.field == "protocol_sha256"
    assert rig_replay(str(copy), "--verify") == 1
    assert "does not match its recorded hash" in capsys.readouterr().out


def test_altered_seed_diverges(copy):
    header = json.loads((copy / "header.json").read_text())
    header["seed"] += 1
    (copy / "header.json").write_text(json.dumps(header))
    d = verify_session(copy).first
    assert d.file == "events.jsonl" and d.iteration == 0 and d.field == "line 1 (session_start) data.seed"


def test_truncated_frames_of_a_closed_session_is_reported_as_truncation(copy, capsys):
    size = (copy / "frames.bin").stat().st_size
    rec = np.dtype(list(BINARY_FIELDS["frames.bin"])).itemsize
    with open(copy / "frames.bin", "r+b") as f:
        f.truncate(size - 100 * rec)
    report = verify_session(copy)
    assert not report.ok
    assert any(d.file == "frames.bin" and "truncated" in d.message for d in report.divergences)
    assert rig_replay(str(copy), "--verify") == 1
    assert "truncated" in capsys.readouterr().out


def test_partial_record_in_a_closed_session_is_corruption(copy):
    with open(copy / "licks.bin", "ab") as f:
        f.write(b"\x01\x02\x03")
    report = verify_session(copy)
    assert any(d.file == "licks.bin" and "partial record" in d.message for d in report.divergences)


def test_removed_frame_record_is_named(copy):
    frames = frames_of(copy)
    np.delete(frames, 2000).tofile(copy / "frames.bin")
    report = verify_session(copy)
    assert not report.ok and report.first.iteration == 2001 and report.first.file == "frames.bin"


def test_garbled_json_line_is_corruption_exit_2(copy, capsys):
    lines = (copy / "events.jsonl").read_bytes().split(b"\n")
    lines[10] = b"#" + lines[10][1:]  # no longer JSON
    (copy / "events.jsonl").write_bytes(b"\n".join(lines))
    assert rig_replay(str(copy), "--verify") == 2
    assert "CORRUPTED" in capsys.readouterr().err


def test_not_a_session_is_bad_input(tmp_path, capsys):
    assert rig_replay(str(tmp_path), "--verify") == 2
    assert "not a session folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ truncation


def cut_like_a_kill(path: Path, last: int, events_behind: int = 0) -> None:
    """Make a closed session look killed after iteration `last`: no footer, every stream cut there
    (events.jsonl `events_behind` iterations earlier, as when the kill fell mid-flush), partial tails."""
    (path / "footer.json").unlink()
    for name, fields in BINARY_FIELDS.items():
        arr = np.fromfile(path / name, dtype=np.dtype(list(fields)))
        data = arr[arr["i"] <= last].tobytes()
        (path / name).write_bytes(data + (arr[-1].tobytes()[:5] if name == "frames.bin" else b""))
    for name in ("events.jsonl", "commands.jsonl", "operator.jsonl"):
        limit = last - (events_behind if name == "events.jsonl" else 0)
        kept = [r for r in read_lines(path, name) if r["i"] <= limit]
        write_lines(path, name, kept)
    with open(path / "events.jsonl", "ab") as f:
        f.write(b'{"data":{},"i":')


def test_killed_session_verifies_up_to_its_cut(copy, capsys):
    cut_like_a_kill(copy, 5000, events_behind=3)
    report = verify_session(copy)
    assert report.ok, [str(d) for d in report.divergences]
    assert report.truncated and report.iterations == 5000
    assert rig_replay(str(copy), "--verify") == 0
    out = capsys.readouterr().out
    assert "TRUNCATED" in out and "1..5000" in out


def test_killed_session_still_catches_an_altered_value_before_the_cut(copy):
    cut_like_a_kill(copy, 5000)
    frames = frames_of(copy)
    frames["trial"][4000] += 1
    frames.tofile(copy / "frames.bin")
    report = verify_session(copy)
    assert report.truncated and report.first.iteration == 4001 and report.first.field == "trial"


def test_operator_stopped_session_verifies(tmp_path):
    path = run_fast(tmp_path, trials=30, hooks=(OperatorScript({700: [Operator("stop")]}),))
    frames = frames_of(path)
    assert len(frames) == 700 and json.loads((path / "footer.json").read_text())["complete"] is False
    report = verify_session(path)
    assert report.ok, [str(d) for d in report.divergences]


def test_json_report_and_conflicting_options(copy, capsys):
    frames = frames_of(copy)
    frames["stage"][10] = 3
    frames.tofile(copy / "frames.bin")
    assert rig_replay(str(copy), "--verify", "--json") == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["first_divergence"].startswith("iteration 11 ")
    assert "frames.bin: stage" in out["first_divergence"]
    assert rig_replay(str(copy), "--verify", "--protocol", "train1_exposure") == 2
    assert "--verify" in capsys.readouterr().err


def test_real_clock_session_verifies(tmp_path):
    # Frame times come from the real clock (irregular), so they are inputs here, not the virtual sequence.
    p = load_protocol(REPO / "protocols" / "train1_task.yaml")
    config = load_config(REPO / "config" / "sim.yaml")
    path = run_session(p, config, SessionOptions(animal="RT", seed=3, duration_s=1.0, data_dir=tmp_path)).path
    frames = frames_of(path)
    assert json.loads((path / "header.json").read_text())["fast"] is False and len(frames) > 10
    report = verify_session(path)
    assert report.ok, [str(d) for d in report.divergences]
    frames["t"][10] = frames["t"][9]  # time standing still: the engine refuses it, and the report says where
    frames.tofile(path / "frames.bin")
    d = verify_session(path).first
    assert (d.file, d.iteration, d.field) == ("frames.bin", 11, "engine") and "increase strictly" in d.message
