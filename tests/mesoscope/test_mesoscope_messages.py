"""Mesoscope wire messages and their bounded decoders, CURVE key files, and bad input on both ends of the
link (the hypothesis fuzzers over real sockets are in test_mesoscope_fuzz.py)."""

from __future__ import annotations

import json
import re
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from rig.mesoscope.bridge import Bridge
from rig.mesoscope.faults import FaultLog
from rig.mesoscope.keys import generate_keypair, is_loopback, load_keypair, require_keys_for
from rig.mesoscope.link import MesoscopeLink
from rig.mesoscope.messages import (
    MAX_MESSAGE_BYTES,
    Ack,
    AcqStartMsg,
    FrameMsg,
    HeartbeatMsg,
    MessageError,
    PingCmd,
    StartCmd,
    decode_ack,
    decode_command,
    decode_stream,
    encode,
)
from rig.mesoscope.stream import StreamGuard


def _frame(seq: int, frame: int = 1) -> FrameMsg:
    return FrameMsg(instance="abc", seq=seq, t_bridge=1.0, acquisition=1, frame=frame, plane=0, volume=0, t_meso=2.5)


def test_every_message_round_trips() -> None:
    start = StartCmd(id=3, stem="m1_2024-05-01_002", metadata={"animal": "m1", "planes": 4}, subscriber="ab")
    assert decode_command(encode(start)) == start
    assert decode_command(encode(PingCmd(id=4, t_rig=12.25))).t_rig == 12.25
    ack = Ack(id=3, ok=False, error="busy", state="acquiring", t_bridge=3.0)
    assert decode_ack(encode(ack)) == ack
    for msg in (
        _frame(7),
        AcqStartMsg(instance="abc", seq=0, t_bridge=0.0, acquisition=1, stem="s", frame_rate_hz=3.17, planes=2),
    ):
        assert decode_stream(encode(msg)) == msg


def test_receive_time_is_never_sent() -> None:
    data = encode(_frame(1).model_copy(update={"t_receive": 99.0}))
    assert "t_receive" not in json.loads(data)


@pytest.mark.parametrize(
    ("data", "kind", "text"),
    [
        (b"\xff\x00", "malformed", "not UTF-8"),
        (b"[1, 2]", "malformed", "JSON list, not an object"),
        (b'{"v": 2, "type": "ping", "id": 1, "t_rig": 0}', "version", "has v=2; this side speaks v=1"),
        (b'{"v": 1, "type": "start", "id": 1, "stem": "../../etc"}', "malformed", "start.stem"),
        (b'{"v": 1, "type": "launch", "id": 1}', "malformed", "does not match any of the expected tags"),
        (b'{"v": 1, "type": "ping", "id": "1", "t_rig": 0}', "malformed", "ping.id"),
        (b" " * (MAX_MESSAGE_BYTES + 1), "oversized", f"> {MAX_MESSAGE_BYTES}"),
    ],
)
def test_bad_commands_are_rejected_with_what_and_where(data: bytes, kind: str, text: str) -> None:
    with pytest.raises(MessageError, match=text) as err:
        decode_command(data)
    assert err.value.kind == kind


_STOP = b'{"v": 1, "type": "stop", "id": %s}'
_PING = b'{"v": 1, "type": "ping", "id": 1, "t_rig": %s}'


@pytest.mark.parametrize(
    ("data", "kind", "text"),
    [
        (b'{"v": true, "type": "stop", "id": 1}', "version", "v=True"),  # a boolean is no version
        (b'{"v": 1.0, "type": "stop", "id": 1}', "version", "v=1.0"),
        (b'{"v": "1", "type": "stop", "id": 1}', "version", "v='1'"),
        (b'{"type": "stop", "id": 1}', "version", "v=None"),
        (_STOP % b"true", "malformed", "stop.id: Input should be a valid integer"),
        (_STOP % b"1.0", "malformed", "stop.id"),
        (_STOP % b"-1", "malformed", "stop.id"),
        (_STOP % str(2**53 + 1).encode(), "malformed", "stop.id"),  # beyond the JSON-safe range
        (_STOP % (b"9" * 20), "malformed", "an integer of 20 digits"),
        (_STOP % (b"9" * 5000), "malformed", "an integer of 5000 digits"),  # used to be a ValueError
        (_PING % b"NaN", "malformed", "NaN (only finite numbers)"),
        (_PING % b"-Infinity", "malformed", "-Infinity"),
        (_PING % b"1e999", "malformed", "a number out of range"),
        (_PING % b"true", "malformed", "ping.t_rig"),
        (_PING % b"1e13", "malformed", "ping.t_rig"),  # no clock reads that
        (b'{"v": 1, "type": "stop", "id": 1, "id": 2}', "malformed", "duplicate key 'id'"),
        (b"[" * 60_000, "too_deep", "deeper than 8"),  # used to be a RecursionError
        (b'{"v": 1, "type": "start", "id": 1, "stem": "s", "metadata": {"a": [[[[[[[[1]]]]]]]]}}', "too_deep",
         "deeper than 8"),
        (b'{"v": 1, "type": "start", "id": 1, "stem": "s", "metadata": {"a": "[[[[[[[[[[[[[["}}', None, ""),
        ('{"v": 1, "type": "stop", "id": 1}'.encode("utf-16"), "malformed", "not UTF-8"),
        (b'{"v": 1, "type": "start", "id": 1, "stem": "s", "subscriber": "not hex"}', "malformed", "subscriber"),
    ],
)
def test_the_command_decoder_is_bounded_and_exact(data: bytes, kind: str | None, text: str) -> None:
    if kind is None:  # brackets inside a string are not nesting
        assert decode_command(data).type == "start"
        return
    with pytest.raises(MessageError, match=re.escape(text)) as err:
        decode_command(data)
    assert err.value.kind == kind


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"ok": 1}, "ack: ok: Input should be a valid boolean"),
        ({"state": "flying"}, "ack: state"),
        ({"frames": True}, "ack: frames"),
        ({"t_bridge": "3"}, "ack: t_bridge"),
        ({"error": "x" * 1001}, "ack: error"),
        ({"planes": 1001}, "ack: planes"),
    ],
)
def test_the_ack_decoder_refuses_wrong_types_and_ranges(change: dict, text: str) -> None:
    ok = {"v": 1, "type": "ack", "id": 3, "ok": True}
    assert decode_ack(json.dumps(ok).encode()).ok is True
    with pytest.raises(MessageError, match=re.escape(text)):
        decode_ack(json.dumps({**ok, **change}).encode())


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"frame": 0}, "frame.frame"),
        ({"frame": True}, "frame.frame"),
        ({"plane": -1}, "frame.plane"),
        ({"plane": 1000}, "frame.plane"),
        ({"acquisition": 0}, "frame.acquisition"),
        ({"instance": ""}, "frame.instance"),
        ({"instance": "a/b"}, "frame.instance"),
        ({"t_meso": None}, "frame.t_meso"),
        ({"seq": 2**53 + 1}, "frame.seq"),
        ({"type": "framed"}, "does not match any of the expected tags"),
    ],
)
def test_the_stream_decoder_refuses_wrong_types_and_ranges(change: dict, text: str) -> None:
    good = json.loads(encode(_frame(1)))
    assert decode_stream(json.dumps(good).encode()) == _frame(1)
    with pytest.raises(MessageError, match=re.escape(text)):
        decode_stream(json.dumps({**good, **change}).encode())


def test_nan_in_a_frame_message_is_refused_whatever_the_spelling() -> None:
    good = encode(_frame(1))
    for token in (b"NaN", b"Infinity", b"-Infinity", b"1e400"):
        with pytest.raises(MessageError, match="malformed"):
            decode_stream(good.replace(b'"t_meso":2.5', b'"t_meso":' + token))


def test_encoding_an_oversized_message_is_refused() -> None:
    with pytest.raises(MessageError, match="oversized"):
        encode(StartCmd(id=1, stem="s", metadata={"notes": "x" * MAX_MESSAGE_BYTES}))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.dictionaries(
            st.sampled_from(["v", "type", "id", "seq", "frame", "instance", "t_meso"]),
            st.one_of(st.integers(), st.text(max_size=5), st.floats(), st.none()),
        ).map(lambda d: json.dumps(d).encode()),
    )
)
def test_decoding_arbitrary_bytes_only_ever_raises_protocol_error(data: bytes) -> None:
    for decode in (decode_command, decode_stream, decode_ack):
        try:
            decode(data)
        except MessageError:
            pass


def test_keys_are_generated_private_and_never_overwritten(tmp_path: Path) -> None:
    public, secret = generate_keypair(tmp_path, "rig1")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    pair = load_keypair(secret)
    assert len(pair.public) == 40 and len(pair.secret) == 40
    with pytest.raises(FileExistsError, match="never overwritten"):
        generate_keypair(tmp_path, "rig1")
    with pytest.raises(ValueError, match="holds no secret key"):
        load_keypair(public)
    with pytest.raises(FileNotFoundError, match="create it with `rig keys`"):
        load_keypair(tmp_path / "nope.key_secret")
    with pytest.raises(ValueError, match="plain file name"):
        generate_keypair(tmp_path, "../evil")


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:5570", True),
        ("tcp://localhost:1", True),
        ("tcp://[::1]:1", True),
        ("ipc:///tmp/x", True),
        ("tcp://10.0.0.5:5570", False),
        ("tcp://*:5570", False),
        ("tcp://mesoscope-pc:5570", False),
    ],
)
def test_loopback_detection(endpoint: str, loopback: bool) -> None:
    assert is_loopback(endpoint) is loopback
    if not loopback:
        with pytest.raises(ValueError, match="need CURVE keys"):
            require_keys_for(endpoint, None)


def _wait(cond: Any, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_link_counts_fuzzed_stream_messages_and_keeps_the_good_ones() -> None:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.linger = 0
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    try:
        with MesoscopeLink("tcp://127.0.0.1:1", f"tcp://127.0.0.1:{port}", ping_interval_s=0) as link:
            assert pub.poll(5000), "the link never subscribed"
            garbage = [b"\xff" + bytes([i % 256]) * (i % 40) for i in range(150)]
            schema = [json.dumps({"v": 1, "type": "frame", "frame": -i}).encode() for i in range(20)]
            wrong_version = [encode(_frame(100 + i)).replace(b'"v":1', b'"v":7') for i in range(10)]
            oversized = [b'{"v":1,"pad":"' + b"x" * MAX_MESSAGE_BYTES + b'"}'] * 3
            good = [encode(_frame(s, frame=s + 1)) for s in range(10)]
            for data in [*good[:5], *garbage, *schema, *wrong_version, *oversized, *good[5:]]:
                pub.send(data)
            pub.send(encode(_frame(3, frame=99)))  # replayed seq: out of order
            pub.send(encode(HeartbeatMsg(instance="abc", seq=20, t_bridge=2.0, state="idle")))
            _wait(lambda: link.counters.stream_messages == 12, "the valid messages")
            c = link.counters
            assert (c.malformed, c.wrong_version, c.oversized) == (170, 10, 3)
            assert (c.out_of_order, c.seq_gaps) == (1, 10)  # seq 10-19 never came
            frames = link.poll()
            assert [f.frame for f in frames] == [*range(1, 11), 99]
            assert all(f.t_receive is not None for f in frames)
            rejected = [m for m in link.take_log() if m.error]
            assert len(rejected) == 183 and all(len(m.data) <= 1024 for m in rejected)
    finally:
        pub.close()
        ctx.term()


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self, stem: str, metadata: dict[str, Any]) -> None:
        self.calls.append(f"start {stem}")

    def stop(self) -> None:
        self.calls.append("stop")


def test_bridge_counts_fuzzed_commands_and_keeps_serving() -> None:
    ctrl = _Recorder()
    with Bridge("tcp://127.0.0.1:0", "tcp://127.0.0.1:0", ctrl) as bridge:
        ctx = zmq.Context()
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.connect(bridge.endpoint_cmd)
        try:
            for i in range(100):
                dealer.send(b"\xfe" + bytes([i]) * i)
            dealer.send(b'{"v": 9, "type": "stop", "id": 1}')
            dealer.send(b'{"v": 1, "type": "start", "id": 2, "stem": "a/../b"}')
            dealer.send(b" " * (MAX_MESSAGE_BYTES + 10))
            dealer.send_multipart([b"two", b"parts"])
            _wait(lambda: bridge.counters.malformed == 102, "the bridge to read the fuzz")
            assert (bridge.counters.wrong_version, bridge.counters.oversized) == (1, 1)
            assert not dealer.poll(100), "the bridge must not answer what it cannot parse"
        finally:
            dealer.close()
            ctx.term()
        with MesoscopeLink(bridge.endpoint_cmd, bridge.endpoint_frames) as link:
            assert link.status().state == "idle"
            link.start("stem_001", {"x": 1})
        assert ctrl.calls == ["start stem_001"]


# ---- the stream's plausibility checks, and fault counting ---------------------------------------


def _start(seq: int, acquisition: int = 1, rate: float = 10.0, planes: int = 2) -> AcqStartMsg:
    return AcqStartMsg(instance="abc", seq=seq, t_bridge=0.0, acquisition=acquisition, stem="s",
                       frame_rate_hz=rate, planes=planes)


def _f(seq: int, frame: int, *, plane: int = 0, acquisition: int = 1, instance: str = "abc") -> FrameMsg:
    return FrameMsg(instance=instance, seq=seq, t_bridge=1.0, acquisition=acquisition, frame=frame, plane=plane,
                    volume=0, t_meso=2.5)


def test_stream_guard_bounds_frame_numbers_by_rate_and_time_and_keeps_every_real_frame() -> None:
    g = StreamGuard(t_open=100.0, slack_s=5.0)
    g.check(_start(0), 100.0)
    # at 10 Hz, 3 s after acq_start: up to 10 x (3 + 5) + 2 x 2 + 10 = 94
    g.check(_f(1, 94), 103.0)
    with pytest.raises(MessageError, match="implausible.*frame 95 .* more than 10 Hz"):
        g.check(_f(2, 95), 103.0)
    with pytest.raises(MessageError, match="plane 2 .* 2 planes"):
        g.check(_f(2, 3, plane=2), 103.0)
    with pytest.raises(MessageError, match="implausible.*frame 1000000000000"):
        g.check(_f(2, 10**12), 103.0)
    assert g.check(_f(2, 3), 103.0).seq_gap == 0  # a refused message changes nothing


def test_stream_guard_sequence_numbers_restarts_and_duplicates() -> None:
    g = StreamGuard(t_open=0.0, max_msgs_per_frame=3)
    assert g.check(_start(10), 0.0).new_instance
    with pytest.raises(MessageError, match="seq 100000 jumps"):  # one forged seq cannot make the rest "replays"
        g.check(_f(100_000, 1), 0.01)
    assert g.check(_f(14, 1), 0.01).seq_gap == 3
    assert g.check(_f(14, 1), 0.02).out_of_order  # a replay is kept (a duplicate), and counted
    g.check(_f(15, 1), 0.03)
    with pytest.raises(MessageError, match="more than 3 messages for frame 1"):
        g.check(_f(16, 1), 0.04)
    with pytest.raises(MessageError, match="acq_start of acquisition 1, but 1 already started"):
        g.check(_start(17), 0.05)
    with pytest.raises(MessageError, match="acquisition 500 after 1"):
        g.check(_f(17, 1, acquisition=500), 0.05)
    restart = g.check(_f(0, 1, instance="new"), 0.06)  # a restarted bridge numbering from 1 again
    assert restart.new_instance and restart.restart


def test_fault_log_reports_each_kind_once_then_one_summary_per_interval() -> None:
    log = FaultLog(interval_s=1.0)
    for i in range(1000):
        log.note(10.0 + i * 0.001, "stream_malformed", f"bad {i}")
    log.note(10.5, "stream_implausible", "frame 10**12")
    first = log.take(10.6)
    assert [(f.kind, f.count) for f in first] == [("stream_malformed", 1), ("stream_implausible", 1)]
    assert log.take(10.7) == []  # repeats wait for the interval
    (summary,) = log.take(11.1)
    assert (summary.kind, summary.count, summary.message) == ("stream_malformed", 999, "bad 999")
    assert "999 like this" in summary.text()
    assert log.totals == {"stream_malformed": 1000, "stream_implausible": 1}


def test_the_bridge_service_thread_survives_a_bug_and_a_death_is_reported_within_a_second(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from rig.mesoscope.emulator import BridgeDied, Emulator, EmulatorConfig, _Commands

    real = Bridge._serve_once
    calls = {"n": 0}

    def buggy(self: Bridge, *args: Any) -> float:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyError("a bug: survived, counted")
        if calls["n"] == 6:
            raise SystemExit("a bug that escapes every handler")
        return real(self, *args)

    monkeypatch.setattr(Bridge, "_serve_once", buggy)
    with Bridge("tcp://127.0.0.1:0", "tcp://127.0.0.1:0", _Recorder(), heartbeat_s=0.01) as bridge:
        _wait(lambda: bridge.service_failure is not None and not bridge.service_alive, "the thread to die", 1.0)
        assert bridge.counters.service_errors == 1
        assert "SystemExit: a bug that escapes every handler" in (bridge.service_failure or "")
        t0 = time.monotonic()
        with pytest.raises(BridgeDied, match="service thread died"):  # the emulator exits (status 4) on it
            Emulator(EmulatorConfig(), bridge, _Commands(), None, threading.Event()).run()
        assert time.monotonic() - t0 < 1.0
