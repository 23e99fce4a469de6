"""Hypothesis fuzzers for every boundary of the mesoscope link, over real ZeroMQ sockets on 127.0.0.1.

Boundaries: the rig's frame-stream receiver (SUB), the rig's ack reader (DEALER), the bridge's command
reader (ROUTER), the bridge's subscription reader (XPUB), the bridge's acquisition-side API (what
ScanImage calls), the stateless decoders, and the reconciliation the session ends with. Each fuzzer
mixes hostile input (arbitrary bytes and JSON, deep nesting, huge integers, NaN/inf, wrong types,
out-of-range frames, oversized messages, replays, restarts) with valid messages, and after each example
sends a sentinel that must come through within SENTINEL_S: no hang. It then checks that every hostile
message was counted as refused, that every valid frame arrived, and that the reading thread lives.

The figures (inputs tried, refused, crashes, hangs, frames lost) are printed at the end of the module
and written as JSON to $MESOSCOPE_FUZZ_SUMMARY when that is set.
"""

from __future__ import annotations

import collections
import json
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig.mesoscope.bridge import JOIN_TOPIC, MAX_JOINED, Bridge
from rig.mesoscope.link import LinkTimeout, MesoscopeLink
from rig.mesoscope.messages import (
    HARD_MAX_MESSAGE_BYTES,
    MAX_MESSAGE_BYTES,
    MessageError,
    decode_ack,
    decode_command,
    decode_stream,
)
from rig.sync.reconcile import reconcile, sync_report

SENTINEL_S = 3.0  # a sentinel later than this is a hang
FUZZ = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

STATS: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    """The figures go to the terminal summary (conftest.py) and, when set, $MESOSCOPE_FUZZ_SUMMARY."""
    yield
    out = os.environ.get("MESOSCOPE_FUZZ_SUMMARY")
    if out:
        Path(out).write_text(json.dumps({k: dict(v) for k, v in STATS.items()}, indent=1))


def _wait(cond: Callable[[], bool], timeout: float = SENTINEL_S) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


# ---- hostile input -------------------------------------------------------------------------------

_leaf = (st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=12))
# Random JSON with no "v" key anywhere at the top: never a valid message of any channel.
_json = st.recursive(_leaf, lambda c: st.lists(c, max_size=4)
                     | st.dictionaries(st.text(max_size=6).filter(lambda k: k != "v"), c, max_size=4),
                     max_leaves=12)

NUMBER_BAD = [True, False, "1", None, [], {}, 1e13, -1e13]
INT_BAD = [True, 1.5, "1", None, -1, 2**53 + 1]


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()  # NaN, Infinity written as such: hostile on purpose


def hostile(template: dict[str, Any], bad: dict[str, list[Any]]) -> st.SearchStrategy[bytes]:
    """Bytes the decoders must refuse, built around a valid message `template` whose fields can be
    replaced by the values in `bad` (field -> values that make the message unacceptable)."""
    fields = sorted(bad)
    numeric = [f for f in fields if isinstance(template.get(f), int | float) and not isinstance(template[f], bool)]

    def mutate(field: str, value: Any) -> bytes:
        return _dumps({**template, field: value})

    def token_in(field: str, token: str) -> bytes:  # a raw JSON token json.dumps would not write
        return _dumps({**template, field: 0}).replace(f'"{field}": 0'.encode(), f'"{field}": {token}'.encode())

    def deep(depth: int) -> bytes:
        return _dumps(template)[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"

    def oversized(n: int) -> bytes:
        return _dumps({**template, "pad": "x" * n})

    return st.one_of(
        st.binary(max_size=300),
        _json.map(lambda v: json.dumps(v).encode()),
        st.sampled_from(fields).flatmap(lambda f: st.sampled_from(bad[f]).map(lambda v: mutate(f, v))),
        st.tuples(st.sampled_from(numeric), st.integers(19, 6000)).map(lambda a: token_in(a[0], "9" * a[1])),
        st.tuples(st.sampled_from(numeric), st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"]))
        .map(lambda a: token_in(*a)),
        st.integers(9, 30_000).map(deep),
        st.integers(MAX_MESSAGE_BYTES + 1, HARD_MAX_MESSAGE_BYTES - 1000).map(oversized),
        st.sampled_from([_dumps({**template, "v": v}) for v in (True, 1.0, "1", 2, None)]),
        st.just(_dumps(template).replace(b"{", b'{"type": "x", ', 1)),  # a duplicate key
    )


# ---- the rig's frame-stream receiver -------------------------------------------------------------

RATE_HZ, PLANES = 500.0, 2
_FRAME = {"v": 1, "type": "frame", "instance": "fuzzA", "seq": 5, "t_bridge": 1.0, "acquisition": 1, "frame": 3,
          "plane": 0, "volume": 1, "t_meso": 2.0}
STREAM_BAD = {
    "type": ["", "frames", 1, None], "instance": ["", "x" * 65, "a b", 5, None],
    "seq": INT_BAD, "t_bridge": NUMBER_BAD, "t_meso": NUMBER_BAD,
    "acquisition": [0, *INT_BAD, 10**6],  # 10**6: far past every acq_start seen
    "frame": [0, -5, True, 2.0, "3", None, 10**7, 10**12],  # 10**7+: more than rate x elapsed allows
    "plane": [-1, PLANES, 999, 1000, True, 0.5],  # PLANES, 999: beyond the acquisition's planes
    "volume": [-1, True, 10**9],  # 10**9: a volume above the frame number
}
stream_item = st.one_of(
    st.just(("valid", b"")), st.just(("valid", b"")), st.just(("replay", b"")), st.just(("restart", b"")),
    hostile(_FRAME, STREAM_BAD).map(lambda b: ("hostile", b)),
)


class StreamRig:
    """A hostile 'bridge' (an XPUB socket of the test's) and a real MesoscopeLink reading it."""

    def __init__(self, boundary: str = "link stream (SUB)") -> None:
        self.ctx = zmq.Context()
        self.xpub = self.ctx.socket(zmq.XPUB)
        self.xpub.linger = 0
        self.xpub.sndhwm = 0
        self.xpub.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscription is seen, a reconnect's too
        port = self.xpub.bind_to_random_port("tcp://127.0.0.1")
        self.link = MesoscopeLink("tcp://127.0.0.1:1", f"tcp://127.0.0.1:{port}", ping_interval_s=0,
                                  fault_interval_s=0.05)
        assert self.xpub.poll(5000), "the link never subscribed"
        self.seq = {"fuzzA": 0, "fuzzB": 0}
        self.frame = {"fuzzA": 0, "fuzzB": 0}
        self.started: set[str] = set()
        self.sent: set[tuple[str, int]] = set()
        self.received: set[tuple[str, int]] = set()
        self.per_frame: collections.Counter[tuple[str, int]] = collections.Counter()
        self.last: bytes | None = None
        self.last_key: tuple[str, int] | None = None
        self.accepted = self.refused = 0
        self.stats = STATS[boundary]
        self.valid_frame("fuzzA")  # the acq_start first: the hostile frames then face its rate and planes

    def close(self) -> None:
        self.link.close()
        self.xpub.close()
        self.ctx.term()

    def _send(self, data: bytes) -> None:
        self.xpub.send(data)

    def _msg(self, instance: str, **fields: Any) -> bytes:
        seq = self.seq[instance]
        self.seq[instance] += 1
        return _dumps({"v": 1, "instance": instance, "seq": seq, "t_bridge": time.perf_counter(), **fields})

    def valid_frame(self, instance: str) -> None:
        if instance not in self.started:
            self.started.add(instance)
            self._send(self._msg(instance, type="acq_start", acquisition=1, stem="fuzz", frame_rate_hz=RATE_HZ,
                                 planes=PLANES))
            self.accepted += 1
        self.frame[instance] += 1
        f = self.frame[instance]
        data = self._msg(instance, type="frame", acquisition=1, frame=f, plane=(f - 1) % PLANES,
                         volume=(f - 1) // PLANES, t_meso=time.perf_counter())
        self._send(data)
        key = (instance, f)
        self.sent.add(key)
        self.per_frame[key] += 1
        self.accepted += 1
        self.last, self.last_key = data, key
        self.stats["valid_frames"] += 1

    def run(self, batch: list[tuple[str, bytes]]) -> None:
        for kind, data in batch:
            self.stats["tried"] += 1
            if kind == "valid":
                self.valid_frame("fuzzA")
            elif kind == "restart":  # a second bridge instance, numbering from 1
                self.valid_frame("fuzzB")
            elif kind == "replay" and self.last is not None and self.last_key is not None:
                self._send(self.last)  # the same bytes again: a duplicate, kept up to the per-frame limit
                if self.per_frame[self.last_key] < self.link._guard.max_msgs_per_frame:
                    self.per_frame[self.last_key] += 1
                    self.accepted += 1
                else:
                    self.refused += 1
                    self.stats["hostile"] += 1  # one duplicate too many: refused like the rest
            elif kind == "hostile":
                self._send(data)
                self.refused += 1
                self.stats["hostile"] += 1
        self._send(self._msg("fuzzA", type="heartbeat", state="acquiring"))  # the sentinel
        self.accepted += 1
        c = self.link.counters
        done = _wait(lambda: c.stream_messages >= self.accepted and c.refused >= self.refused)
        self.received |= {(f.instance, f.frame) for f in self.link.poll()}
        self.stats["refused"] = c.refused
        if not done:
            self.stats["hangs"] += 1
        assert done, (c, self.accepted, self.refused)
        assert (c.stream_messages, c.refused) == (self.accepted, self.refused), c
        if not self.link.receiver_alive or c.receiver_errors:
            self.stats["crashes"] += 1
        assert self.link.receiver_alive and c.receiver_errors == 0

    def finish(self) -> None:
        lost = self.sent - self.received
        self.stats["frames_lost"] += len(lost)
        assert not lost
        faults = self.link.take_faults(final=True)
        kinds = {f.kind for f in faults}
        assert kinds <= {f"stream_{k}" for k in ("malformed", "oversized", "too_deep", "version", "implausible")}
        # Once per kind at first, then one summary per interval: far fewer lines than refusals.
        assert sum(f.count for f in faults) == self.refused and len(faults) < max(10, self.refused / 2)


def test_link_frame_stream_survives_hostile_messages_and_loses_no_valid_frame() -> None:
    rig = StreamRig()
    try:
        @FUZZ
        @given(st.lists(stream_item, min_size=1, max_size=12))
        def run(batch: list[tuple[str, bytes]]) -> None:
            rig.run(batch)

        run()
        rig.finish()
    finally:
        rig.close()


@settings(max_examples=4, deadline=None, database=None)
@given(st.integers(HARD_MAX_MESSAGE_BYTES + 1, 3 * HARD_MAX_MESSAGE_BYTES), st.integers(1, 5))
def test_link_frame_stream_reconnects_after_a_message_too_big_for_zeromq(size: int, frames: int) -> None:
    rig = StreamRig("link stream >1 MiB")
    stats = rig.stats
    try:
        for _ in range(frames):
            rig.valid_frame("fuzzA")
        # Frames still unread inside libzmq when it drops the connection go with it (documented); these
        # have been read. What must hold is that the stream resumes and nothing after it is lost.
        assert _wait(lambda: rig.link.counters.frames >= len(rig.sent))
        while rig.xpub.poll(0):
            rig.xpub.recv()  # the subscriptions so far
        rig._send(b"x" * size)  # ZeroMQ drops the connection for good (libzmq does not reconnect)
        stats["tried"] += 1
        stats["hostile"] += 1
        ok = _wait(lambda: rig.link.counters.reconnects >= 1)

        def subscribed_again() -> bool:
            return bool(rig.xpub.poll(0)) and rig.xpub.recv()[:1] == b"\x01"

        ok = ok and _wait(subscribed_again)  # the XPUB sees the link subscribe again
        stats["refused"] += int(ok)
        if not ok:
            stats["hangs"] += 1
        assert ok, "the link did not reconnect"
        for _ in range(frames):
            rig.valid_frame("fuzzA")
        stats["tried"] += frames
        done = _wait(lambda: rig.link.counters.frames >= len(rig.sent))
        rig.received |= {(f.instance, f.frame) for f in rig.link.poll()}
        stats["frames_lost"] += len(rig.sent - rig.received)
        assert done and rig.sent == rig.received and rig.link.receiver_alive
        assert any(f.kind == "reconnect_frames" for f in rig.link.take_faults(final=True))
    finally:
        rig.close()


# ---- the rig's ack reader ------------------------------------------------------------------------

_ACK = {"v": 1, "type": "ack", "id": 999_999, "ok": True, "state": "idle", "acquisition": 0, "frames": 0,
        "frame_rate_hz": 0.0, "planes": 0, "t_bridge": 1.0}
ACK_BAD = {
    "type": ["nack", 1, None], "id": INT_BAD, "ok": [1, 0, "true", None],
    "state": ["flying", 1, None], "acquisition": INT_BAD, "frames": INT_BAD,
    "frame_rate_hz": [-1.0, 1e5, *NUMBER_BAD], "planes": [-1, 1001, True], "t_bridge": NUMBER_BAD,
    "error": [5, "x" * 1001, []],
}
ack_item = st.one_of(
    hostile(_ACK, ACK_BAD).map(lambda b: ("hostile", [b])),
    st.lists(st.binary(max_size=40), min_size=2, max_size=4).map(lambda parts: ("hostile", parts)),
    st.integers(10**6, 10**7).map(lambda i: ("stale", [_dumps({**_ACK, "id": i})])),
)


class AckRig:
    """A hostile 'bridge' (a ROUTER in a thread of the test's) answering a real link's requests."""

    def __init__(self, timeout_s: float = SENTINEL_S) -> None:
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.linger = 0
        self.port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.replies: queue.SimpleQueue[list[list[bytes]]] = queue.SimpleQueue()
        self.seen: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.link = MesoscopeLink(f"tcp://127.0.0.1:{self.port}", "tcp://127.0.0.1:1", timeout_s=timeout_s,
                                  ping_interval_s=0)

    def _serve(self) -> None:
        while not self.stop.is_set():
            if not self.router.poll(20):
                continue
            identity, data = self.router.recv_multipart()
            cmd = json.loads(data)
            self.seen.append(cmd)
            try:
                batch = self.replies.get_nowait()
            except queue.Empty:
                batch = []
            for parts in batch:
                self.router.send_multipart([identity, *parts])
            self.router.send_multipart([identity, _dumps({**_ACK, "id": cmd["id"]})])

    def close(self) -> None:
        self.link.close()
        self.stop.set()
        self.thread.join(5)
        self.router.close()
        self.ctx.term()


def test_link_ack_reader_survives_hostile_replies() -> None:
    rig = AckRig()
    stats = STATS["link acks (DEALER)"]
    expected_refused = expected_stale = 0
    try:
        @FUZZ
        @given(st.lists(ack_item, min_size=1, max_size=10))
        def run(batch: list[tuple[str, list[bytes]]]) -> None:
            nonlocal expected_refused, expected_stale
            rig.replies.put([parts for _, parts in batch])
            for kind, _ in batch:
                stats["tried"] += 1
                stats["hostile"] += kind == "hostile"
                expected_refused += kind == "hostile"
                expected_stale += kind == "stale"
            try:
                ack = rig.link.status()  # must return the real ack whatever came before it
            except LinkTimeout:
                stats["hangs"] += 1
                raise
            stats["tried"] += 1
            assert ack.id == rig.seen[-1]["id"]
            rig.link.poll()  # stale acks are counted when they are read, here or in status()
            c = rig.link.counters
            stats["refused"] = c.refused
            assert c.refused == expected_refused
            assert c.stale_acks == expected_stale

        run()
        # stop still reaches the bridge after all that
        rig.link.stop(wait_s=0)
        assert rig.seen[-1]["type"] == "stop"
    finally:
        rig.close()


def test_link_reconnects_after_an_ack_too_big_for_zeromq_and_stop_still_arrives() -> None:
    rig = AckRig(timeout_s=0.5)
    stats = STATS["link acks >1 MiB"]
    try:
        for size in (HARD_MAX_MESSAGE_BYTES + 1, 2 * HARD_MAX_MESSAGE_BYTES):
            rig.replies.put([[b"y" * size]])  # sent before the real ack, which is lost with the connection
            stats["tried"] += 1
            stats["hostile"] += 1
            with pytest.raises(LinkTimeout):
                rig.link.status()
            ack = rig.link.stop(wait_s=0)  # the link reconnected: stop reaches the bridge
            stats["tried"] += 1
            stats["refused"] += 1
            assert ack.ok and rig.seen[-1]["type"] == "stop"
        assert rig.link.counters.reconnects >= 2
        assert any(f.kind == "reconnect_cmd" for f in rig.link.take_faults(final=True))
    finally:
        rig.close()


# ---- the bridge's command reader -----------------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self, stem: str, metadata: dict[str, Any]) -> None:
        self.calls.append(f"start {stem}")

    def stop(self) -> None:
        self.calls.append("stop")


_CMDS: dict[str, tuple[dict[str, Any], dict[str, list[Any]]]] = {
    "status": ({"v": 1, "type": "status", "id": 1}, {"id": INT_BAD, "type": ["launch", 1, None]}),
    "stop": ({"v": 1, "type": "stop", "id": 1}, {"id": INT_BAD}),
    "ping": ({"v": 1, "type": "ping", "id": 1, "t_rig": 1.0}, {"id": INT_BAD, "t_rig": NUMBER_BAD}),
    "start": ({"v": 1, "type": "start", "id": 1, "stem": "s_001", "metadata": {}, "subscriber": ""},
              {"id": INT_BAD, "stem": ["", "../x", "a/b", "a" * 200, 5, None],
               "metadata": [[], "x", 5, None], "subscriber": ["XYZ", "a" * 65, 5]}),
}
command_item = st.one_of(
    *[hostile(t, b).map(lambda d: [d]) for t, b in _CMDS.values()],
    st.lists(st.binary(max_size=40), min_size=2, max_size=4),  # several ZeroMQ frames
)


@contextmanager
def _bridge_and_dealer() -> Iterator[tuple[Bridge, _Recorder, zmq.Socket]]:
    ctrl = _Recorder()
    with Bridge("tcp://127.0.0.1:0", "tcp://127.0.0.1:0", ctrl) as bridge:
        ctx = zmq.Context()
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.connect(bridge.endpoint_cmd)
        try:
            yield bridge, ctrl, dealer
        finally:
            dealer.close()
            ctx.term()


def test_bridge_command_reader_survives_hostile_commands() -> None:
    stats = STATS["bridge commands (ROUTER)"]
    with _bridge_and_dealer() as (bridge, ctrl, dealer):
        ids = iter(range(1, 10**6))
        expected = 0

        @FUZZ
        @given(st.lists(command_item, min_size=1, max_size=10))
        def run(batch: list[list[bytes]]) -> None:
            nonlocal expected
            for parts in batch:
                dealer.send_multipart(parts)
                stats["tried"] += 1
                stats["hostile"] += 1
                expected += 1
            sentinel = next(ids)
            dealer.send(_dumps({"v": 1, "type": "status", "id": sentinel}))
            stats["tried"] += 1
            ok = dealer.poll(int(SENTINEL_S * 1000))
            if not ok:
                stats["hangs"] += 1
            assert ok, "no answer to the sentinel"
            reply = decode_ack(dealer.recv())
            assert reply.id == sentinel and reply.ok  # nothing hostile was answered
            stats["refused"] = bridge.counters.refused
            assert bridge.counters.refused == expected
            if not bridge.service_alive:
                stats["crashes"] += 1
            assert bridge.service_alive and bridge.counters.service_errors == 0

        run()
        assert ctrl.calls == []  # no hostile command reached ScanImage
        with MesoscopeLink(bridge.endpoint_cmd, bridge.endpoint_frames) as link:
            link.start("stem_001")
        assert ctrl.calls == ["start stem_001"]


# ---- the bridge's subscription reader ------------------------------------------------------------

subscription_item = st.one_of(
    st.binary(max_size=80),
    st.binary(max_size=70).map(lambda b: b"\x01" + JOIN_TOPIC + b),
    st.text("0123456789abcdef", min_size=1, max_size=64).map(lambda t: b"\x01" + JOIN_TOPIC + t.encode()),
    st.binary(max_size=70).map(lambda b: b"\x00" + JOIN_TOPIC + b),
)


def _bad_subscription(m: bytes) -> bool:
    if m[:1] not in (b"\x00", b"\x01"):
        return True
    if m[:1] == b"\x00" or not m[1:].startswith(JOIN_TOPIC):
        return False
    token = m[1 + len(JOIN_TOPIC):]
    return not (1 <= len(token) <= 64 and all(c in b"0123456789abcdef" for c in token))


def test_bridge_subscription_reader_survives_hostile_subscriptions() -> None:
    stats = STATS["bridge subscriptions"]
    ctrl = _Recorder()
    with Bridge("tcp://127.0.0.1:0", "tcp://127.0.0.1:0", ctrl) as bridge:
        ctx = zmq.Context()
        xsub = ctx.socket(zmq.XSUB)
        xsub.linger = 0
        xsub.connect(bridge.endpoint_frames)
        expected = 0
        n = iter(range(10**6))
        try:
            @FUZZ
            @given(st.lists(subscription_item, min_size=1, max_size=20))
            def run(batch: list[bytes]) -> None:
                nonlocal expected
                for m in batch:
                    xsub.send(m)
                    stats["tried"] += 1
                    bad = _bad_subscription(m)
                    stats["hostile"] += bad
                    expected += bad
                token = f"{next(n):016x}"
                xsub.send(b"\x01" + JOIN_TOPIC + token.encode())  # the sentinel: a real join
                ok = _wait(lambda: bridge.has_joined(token))
                if not ok:
                    stats["hangs"] += 1
                assert ok
                stats["refused"] = bridge.counters.bad_subscriptions
                assert bridge.counters.bad_subscriptions == expected
                assert bridge.service_alive

            run()
            first = "f" * 16
            xsub.send(b"\x01" + JOIN_TOPIC + first.encode())
            assert _wait(lambda: bridge.has_joined(first))
            for i in range(MAX_JOINED):
                xsub.send(b"\x01" + JOIN_TOPIC + f"{i:032x}".encode())
            assert _wait(lambda: bridge.has_joined(f"{MAX_JOINED - 1:032x}"))
            assert not bridge.has_joined(first)  # memory is bounded: the oldest join was forgotten
        finally:
            xsub.close()
            ctx.term()
        with MesoscopeLink(bridge.endpoint_cmd, bridge.endpoint_frames) as link:
            link.start("stem_001")  # the join handshake still works
        assert ctrl.calls == ["start stem_001"]


# ---- the bridge's acquisition side (what ScanImage calls) ----------------------------------------

_any_bad = st.sampled_from([True, None, "1", 1.5, -1, 0, 2**60, 10**30, math.nan, math.inf, [], b"x"])
api_call = st.one_of(  # valid starts often enough for frames to be published
    st.tuples(st.just("start"), st.sampled_from(["s_001", "s_001", "x", "", "../a", "a\n", 5, None]),
              st.one_of(st.just(30.0), st.just(30), st.just(30.0), _any_bad),
              st.one_of(st.just(PLANES), st.just(PLANES), _any_bad)),
    *[st.tuples(st.just("frame"), st.one_of(st.integers(1, 500), st.integers(1, 500), st.integers(1, 500), _any_bad),
                st.one_of(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), _any_bad),
                st.one_of(st.none(), st.integers(0, 1), st.none(), _any_bad),
                st.one_of(st.none(), st.integers(0, 300), st.none(), _any_bad))] * 2,
    *[st.tuples(st.just("frame"), st.integers(1, 500), st.floats(-1e6, 1e6), st.none(), st.none())] * 3,
    st.tuples(st.just("stop"), st.one_of(st.text(max_size=300), _any_bad)),
)


def test_bridge_acquisition_api_refuses_bad_arguments_and_publishes_only_valid_messages() -> None:
    stats = STATS["bridge ScanImage API"]
    with Bridge("tcp://127.0.0.1:0", "tcp://127.0.0.1:0", _Recorder(), heartbeat_s=60) as bridge:
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.subscribe(b"")
        sub.connect(bridge.endpoint_frames)
        received: list[bytes] = []
        try:
            time.sleep(0.3)  # the subscription reaches the bridge; its one heartbeat may have gone before
            while sub.poll(0):
                received.append(sub.recv())
            published = len(received)

            @FUZZ
            @given(st.lists(api_call, min_size=1, max_size=15))
            def run(calls: list[tuple[Any, ...]]) -> None:
                nonlocal published
                if bridge.state != "acquiring":  # most examples then report frames
                    bridge.acquisition_started("s_001", 30.0, PLANES)
                    published += 1
                for name, *args in calls:
                    stats["tried"] += 1
                    acquiring = bridge.state == "acquiring"
                    try:
                        if name == "start":
                            bridge.acquisition_started(*args)
                            published += 1
                        elif name == "frame":
                            bridge.frame(*args)
                            if acquiring:
                                published += 1
                                stats["valid_frames"] += 1
                        else:
                            bridge.acquisition_stopped(*args)
                            published += acquiring
                    except ValueError:
                        stats["refused"] += 1
                        stats["hostile"] += 1
                    except Exception:
                        stats["crashes"] += 1
                        raise

                def drain() -> bool:
                    while sub.poll(0):
                        received.append(sub.recv())
                    return len(received) >= published

                ok = _wait(drain)
                if not ok:
                    stats["hangs"] += 1
                assert ok and len(received) == published
                assert bridge.service_alive and bridge.counters.unpublishable == 0

            run()
        finally:
            sub.close()
            ctx.term()
    for data in received:
        decode_stream(data)  # everything the bridge published is a message the rig accepts as well-formed


# ---- the decoders alone, and the reconciliation at the session's end -----------------------------


@settings(max_examples=400, deadline=None, database=None)
@given(st.one_of(st.binary(max_size=400), _json.map(lambda v: json.dumps(v).encode()),
                 hostile(_FRAME, STREAM_BAD), hostile(_ACK, ACK_BAD), hostile(*_CMDS["start"])))
def test_decoders_raise_only_message_error(data: bytes) -> None:
    stats = STATS["decoders (no socket)"]
    for decode in (decode_command, decode_stream, decode_ack):
        stats["tried"] += 1
        try:
            decode(data)
        except MessageError:
            stats["refused"] += 1
        except Exception:
            stats["crashes"] += 1
            raise


_bad_float = st.sampled_from([math.nan, math.inf, -math.inf])


@st.composite
def _reconcile_case(draw: st.DrawFn) -> tuple[int, list[tuple[int, int, float]], list[float]]:
    n = draw(st.integers(5, 200))
    # Fewer hostile messages than real ones: a majority could always out-vote the truth in the fits.
    extra = draw(st.lists(st.tuples(st.integers(-(2**62), 2**62), st.integers(0, 3),
                                    st.one_of(st.floats(-1e9, 1e9), _bad_float)), max_size=min(20, n // 2)))
    return n, extra, draw(st.lists(_bad_float, max_size=5))


@settings(max_examples=80, deadline=None, database=None)  # time is bounded by the hang check below
@given(_reconcile_case())
def test_reconcile_of_hostile_messages_is_bounded_and_keeps_the_valid_frames(
        case: tuple[int, list[tuple[int, int, float]], list[float]]) -> None:
    n, extra, bad_ttl = case
    stats = STATS["reconcile"]
    period = 0.05
    t = 10.0 + np.arange(n) * period
    msgs = [(k + 1, 0, t[k] - 3.0, t[k] + 0.005) for k in range(n)]
    msgs += [(f, p, m, 11.0) for f, p, m in extra]
    stats["tried"] += len(extra) + len(bad_ttl)
    stats["hostile"] += len(extra) + len(bad_ttl)
    stats["valid_frames"] += n
    t0 = time.monotonic()
    table = reconcile(np.concatenate([t, bad_ttl]), msgs)
    report = sync_report(table)
    json.dumps(report)
    if time.monotonic() - t0 > 4:
        stats["hangs"] += 1
    rows = table.rows
    kept = {int(f) for f in rows["scanimage_frame"][~rows["missing_ttl"] & ~rows["missing_msg"]]}
    # A hostile message may claim a real frame's number (and be received first): that frame is then
    # ambiguous, which the link's checks exist to prevent. Any other frame must be intact.
    claimed = {e[0] for e in extra}
    lost = set(range(1, n + 1)) - kept - claimed
    stats["frames_lost"] += len(lost)
    stats["refused"] += table.n_msgs_refused + table.n_ttl_refused
    assert not lost
    assert len(rows) <= n + len(extra) + 1000 + 4 * (n + len(extra))  # never a row per implied number
    np.testing.assert_array_equal(rows["index"], np.arange(len(rows)))
