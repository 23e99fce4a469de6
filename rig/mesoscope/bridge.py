"""The mesoscope side of the link: a small server beside ScanImage (or the emulator).

A service thread owns every socket: a ROUTER answers the rig's commands (start, stop, status, ping) and
an XPUB publishes the frame stream. The acquisition side (ScanImage user functions via
docs/scanimage/, or the emulator) reports acquisition start, frames and stop through thread-safe
methods; those are queued and published by the service thread, which numbers them (`seq`) in order.

Hostile input: commands go through the bounded decoder (rig.mesoscope.messages.decode_command), the
subscriptions the XPUB sees are checked and bounded, and the acquisition side's arguments are checked
in the caller's thread (a ValueError there, never a bad message later). Nothing a peer sends can end the
service thread; should it end anyway, `service_failure` says why (the emulator exits on it, the
ScanImage user function reports it) and the rig sees the heartbeats stop.

Slow joiners: the rig subscribes to the stream with a one-off token topic before it sends `start`; the
XPUB sees that subscription arrive, and the bridge acknowledges `start` only once it has (or refuses it
after `join_timeout_s`). Nothing of an acquisition is published before its `start` is acknowledged, so
the rig cannot miss the first messages.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import queue
import re
import secrets
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import zmq
from pydantic import ValidationError
from zmq.auth.thread import ThreadAuthenticator

from rig.mesoscope.keys import ServerKeys, require_keys_for
from rig.mesoscope.messages import (
    HARD_MAX_MESSAGE_BYTES,
    MAX_ABS_TIME_S,
    MAX_INT,
    MAX_PLANES,
    MAX_RATE_HZ,
    STEM_PATTERN,
    Ack,
    AcqStartMsg,
    AcqStopMsg,
    FrameMsg,
    HeartbeatMsg,
    MessageError,
    PingCmd,
    StartCmd,
    State,
    StatusCmd,
    StopCmd,
    decode_command,
    encode,
)

log = logging.getLogger(__name__)

JOIN_TOPIC = b"join:"
_TOKEN = re.compile(rb"[0-9a-f]{1,64}")
MAX_JOINED = 256  # join tokens remembered (oldest forgotten first)
COMMANDS_PER_PASS = 1000  # commands read before the service thread publishes and beats again


def _integer(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value} is outside [{lo}, {hi}]")
    return int(value)


def _number(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, not {type(value).__name__}")
    x = float(value)
    if not (math.isfinite(x) and lo <= x <= hi):
        raise ValueError(f"{name}={value} is not a finite number in [{lo}, {hi}]")
    return x


class Controller(Protocol):
    """What the bridge asks of the acquisition side. Called on the service thread: must not block.
    Raise ValueError (with a message for the rig) to refuse."""

    def start(self, stem: str, metadata: dict[str, Any]) -> None: ...

    def stop(self) -> None: ...


class QueuedController:
    """For ScanImage: commands wait in a queue that a MATLAB timer drains with `take()`."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[tuple[str, str, dict[str, Any]]] = queue.SimpleQueue()

    def start(self, stem: str, metadata: dict[str, Any]) -> None:
        self._q.put(("start", stem, metadata))

    def stop(self) -> None:
        self._q.put(("stop", "", {}))

    def take(self) -> tuple[str, str, dict[str, Any]] | None:
        """The next command ("start"|"stop", stem, metadata), or None; never blocks."""
        try:
            return self._q.get_nowait()
        except queue.Empty:
            return None


@dataclass
class BridgeCounters:
    commands: int = 0
    malformed: int = 0
    oversized: int = 0
    too_deep: int = 0
    wrong_version: int = 0
    bad_subscriptions: int = 0  # XPUB subscription messages that are not a valid join or a plain subscribe
    published: int = 0
    unpublishable: int = 0  # stream messages that could not be built or sent (logged, dropped)
    service_errors: int = 0  # unexpected errors in the service thread (bugs), survived

    @property
    def refused(self) -> int:
        return self.malformed + self.oversized + self.too_deep + self.wrong_version


@dataclass
class _Acq:
    state: str = "idle"  # idle | starting | acquiring
    acquisition: int = 0
    frames: int = 0
    frame_rate_hz: float = 0.0
    planes: int = 0
    stem: str = ""


@dataclass
class _PendingStart:
    identity: bytes
    cmd: StartCmd
    deadline: float


@dataclass
class _Outbox:
    """Stream messages waiting for the service thread, which stamps instance and seq."""

    q: queue.SimpleQueue[tuple[str, dict[str, Any]]] = field(default_factory=queue.SimpleQueue)


def _bind(sock: zmq.Socket, endpoint: str) -> str:
    """Bind, accepting port 0 for an ephemeral port; returns the endpoint actually bound."""
    if endpoint.startswith("tcp://") and endpoint.endswith(":0"):
        endpoint = endpoint[:-2] + ":*"
    sock.bind(endpoint)
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


class Bridge:
    """Serve the mesoscope link. Use as a context manager, or call open() and close()."""

    def __init__(self, endpoint_cmd: str, endpoint_frames: str, controller: Controller, *,
                 keys: ServerKeys | None = None, clock: Callable[[], float] = time.perf_counter,
                 heartbeat_s: float = 0.5, join_timeout_s: float = 2.0) -> None:
        require_keys_for(endpoint_cmd, keys)
        require_keys_for(endpoint_frames, keys)
        self._endpoints = (endpoint_cmd, endpoint_frames)
        self.controller = controller
        self.keys = keys
        self.clock = clock
        self.heartbeat_s = heartbeat_s
        self.join_timeout_s = join_timeout_s
        self.instance = secrets.token_hex(8)
        self.counters = BridgeCounters()
        self.endpoint_cmd = ""
        self.endpoint_frames = ""
        self._acq = _Acq()
        self._lock = threading.Lock()
        self._outbox = _Outbox()
        self._seq = 0
        self._joined: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._failure: str | None = None
        self._ack_injections: list[bytes] = []
        self._pending: _PendingStart | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ctx: zmq.Context | None = None
        self._auth: ThreadAuthenticator | None = None
        self._wake_tx: zmq.Socket | None = None

    # ---- lifecycle ---------------------------------------------------------------------------------

    def open(self) -> Bridge:
        if self._thread is not None:
            raise RuntimeError("bridge already open")
        ctx = self._ctx = zmq.Context()
        if self.keys is not None:
            self._auth = ThreadAuthenticator(ctx)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(self.keys.trusted_dir))
        router = ctx.socket(zmq.ROUTER)
        xpub = ctx.socket(zmq.XPUB)
        for s in (router, xpub):
            s.linger = 0
            s.setsockopt(zmq.MAXMSGSIZE, HARD_MAX_MESSAGE_BYTES)
            if self.keys is not None:
                self.keys.apply(s)
        xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
        xpub.sndhwm = 100_000  # ~30 min of 60 Hz frames buffered for a slow reader before drops
        self.endpoint_cmd = _bind(router, self._endpoints[0])
        self.endpoint_frames = _bind(xpub, self._endpoints[1])
        wake_rx = ctx.socket(zmq.PAIR)
        wake_rx.bind(f"inproc://bridge-wake-{self.instance}")
        self._wake_tx = ctx.socket(zmq.PAIR)
        self._wake_tx.connect(f"inproc://bridge-wake-{self.instance}")
        self._thread = threading.Thread(target=self._serve, args=(router, xpub, wake_rx),
                                        name="mesoscope-bridge", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._wake()
            self._thread.join(timeout=5.0)
            if self._thread.is_alive():
                log.error("bridge service thread did not stop within 5 s")
            self._thread = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._ctx is not None:
            with self._lock:
                if self._wake_tx is not None:
                    self._wake_tx.close(linger=0)
                    self._wake_tx = None
            self._ctx.term()
            self._ctx = None

    def __enter__(self) -> Bridge:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the acquisition side (thread-safe) ---------------------------------------------------------

    def acquisition_started(self, stem: str, frame_rate_hz: float, planes: int) -> int:
        """ScanImage (or the emulator) began acquiring; returns the new acquisition number. Raises
        ValueError (and reports nothing) for arguments the protocol cannot carry."""
        if not isinstance(stem, str) or not re.fullmatch(STEM_PATTERN.strip("^$"), stem):
            raise ValueError(f"stem {stem!r} is not a plain file stem ({STEM_PATTERN})")
        frame_rate_hz = _number("frame_rate_hz", frame_rate_hz, 1e-9, MAX_RATE_HZ)
        planes = _integer("planes", planes, 1, MAX_PLANES)
        with self._lock:
            a = self._acq
            a.acquisition += 1
            a.state, a.frames, a.frame_rate_hz, a.planes, a.stem = "acquiring", 0, frame_rate_hz, planes, stem
            n = a.acquisition
        self._post("acq_start", {"acquisition": n, "stem": stem, "frame_rate_hz": frame_rate_hz,
                                 "planes": planes})
        return n

    def frame(self, frame: int, t_meso: float, plane: int | None = None, volume: int | None = None) -> None:
        """Report one acquired frame (ScanImage's 1-based `frame`); plane/volume default from the plane
        count. Raises ValueError for arguments the protocol cannot carry."""
        frame = _integer("frame", frame, 1, MAX_INT)
        t_meso = _number("t_meso", t_meso, -MAX_ABS_TIME_S, MAX_ABS_TIME_S)
        if plane is not None:
            plane = _integer("plane", plane, 0, MAX_PLANES - 1)
        if volume is not None:
            volume = _integer("volume", volume, 0, MAX_INT)
        with self._lock:
            a = self._acq
            if a.state != "acquiring":
                log.warning("frame %d reported while %s; ignored", frame, a.state)
                return
            a.frames += 1
            planes = max(1, a.planes)
            acq = a.acquisition
        self._post("frame", {"acquisition": acq, "frame": frame,
                             "plane": (frame - 1) % planes if plane is None else plane,
                             "volume": (frame - 1) // planes if volume is None else volume, "t_meso": t_meso})

    def acquisition_stopped(self, reason: str = "stopped") -> None:
        reason = str(reason)
        with self._lock:
            a = self._acq
            was, a.state = a.state, "idle"
            if a.acquisition == 0 or was != "acquiring":
                return
            acq, frames = a.acquisition, a.frames
        self._post("acq_stop", {"acquisition": acq, "frames": frames, "reason": reason[:200]})

    @property
    def state(self) -> str:
        with self._lock:
            return self._acq.state

    def has_joined(self, token: str) -> bool:
        """Whether a rig's frame subscription with this join token has reached the bridge."""
        return token in self._joined

    @property
    def service_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def service_failure(self) -> str | None:
        """Why the service thread ended without being closed (None while it runs or after close())."""
        if self._failure is not None:
            return self._failure
        if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
            return "the bridge's service thread ended unexpectedly"
        return None

    # ---- fault injection (the emulator's misbehaving-bridge faults; tests) --------------------------

    def inject_stream(self, raw: bytes | None = None, fields: dict[str, Any] | None = None) -> None:
        """Publish bytes as they are (`raw`), or `fields` as JSON stamped with this bridge's instance and
        next seq unless they set their own (NaN and huge values allowed): in order with real messages."""
        if (raw is None) == (fields is None):
            raise ValueError("inject_stream takes raw bytes or fields")
        self._outbox.q.put(("raw", {"raw": raw} if raw is not None else {"fields": dict(fields or {})}))
        self._wake()

    def inject_ack(self, raw: bytes) -> None:
        """Send `raw` to the rig just before the next ack (any command)."""
        with self._lock:
            self._ack_injections.append(raw)

    def _post(self, kind: str, fields: dict[str, Any]) -> None:
        fields["t_bridge"] = self.clock()
        self._outbox.q.put((kind, fields))
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            if self._wake_tx is not None:
                try:
                    self._wake_tx.send(b"", zmq.NOBLOCK)
                except zmq.Again:
                    pass  # the service thread already has wake-ups queued: it will drain the outbox

    # ---- the service thread ------------------------------------------------------------------------

    def _serve(self, router: zmq.Socket, xpub: zmq.Socket, wake_rx: zmq.Socket) -> None:
        poller = zmq.Poller()
        for s in (router, xpub, wake_rx):
            poller.register(s, zmq.POLLIN)
        next_beat = self.clock()
        try:
            while not self._stop.is_set():
                try:
                    next_beat = self._serve_once(poller, router, xpub, wake_rx, next_beat)
                except zmq.ContextTerminated:
                    raise
                except Exception as e:  # a bug, never the input: survive it, say so, keep serving
                    self.counters.service_errors += 1
                    log.exception("bridge service thread: unexpected %s (carrying on)", type(e).__name__)
                    time.sleep(0.01)
            self._flush_outbox(xpub)
        except BaseException as e:  # noqa: BLE001 - record why, for service_failure
            self._failure = f"the bridge's service thread died: {type(e).__name__}: {e}"
            log.error("%s\n%s", self._failure, traceback.format_exc())
        finally:
            for s in (router, xpub, wake_rx):
                s.close(linger=0)

    def _serve_once(self, poller: zmq.Poller, router: zmq.Socket, xpub: zmq.Socket, wake_rx: zmq.Socket,
                    next_beat: float) -> float:
        wait_ms = max(0, int((next_beat - self.clock()) * 1000))
        if self._pending is not None:
            wait_ms = min(wait_ms, 20)
        ready = dict(poller.poll(wait_ms))
        if wake_rx in ready:
            while True:
                try:
                    wake_rx.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
        self._flush_outbox(xpub)
        if xpub in ready:
            self._read_subscriptions(xpub)
        if router in ready:
            self._read_commands(router)
        self._check_pending(router)
        if self.clock() >= next_beat:
            self._publish(xpub, "heartbeat", {"state": self.state, "t_bridge": self.clock()})
            next_beat = self.clock() + self.heartbeat_s
        return next_beat

    def _publish_injected(self, xpub: zmq.Socket, what: dict[str, Any]) -> None:
        data = what.get("raw")
        if data is None:
            fields = {"v": 1, "instance": self.instance, "seq": self._seq, "t_bridge": self.clock(), **what["fields"]}
            self._seq += 1
            data = json.dumps(fields).encode()
        try:
            xpub.send(data, zmq.NOBLOCK)
        except zmq.Again:
            log.error("frame stream send buffer full; injected message dropped")

    def _publish(self, xpub: zmq.Socket, kind: str, fields: dict[str, Any]) -> None:
        if kind == "raw":
            self._publish_injected(xpub, fields)
            return
        model = {"acq_start": AcqStartMsg, "frame": FrameMsg, "acq_stop": AcqStopMsg,
                 "heartbeat": HeartbeatMsg}[kind]
        try:
            msg = model(instance=self.instance, seq=self._seq, **fields)
            data = encode(msg)
        except (ValidationError, MessageError) as e:  # checked at the API; whatever slips through is dropped
            self.counters.unpublishable += 1
            log.error("stream message %s %r cannot be sent: %s", kind, fields, e)
            return
        self._seq += 1
        try:
            xpub.send(data, zmq.NOBLOCK)
            self.counters.published += 1
        except zmq.Again:
            self.counters.unpublishable += 1
            log.error("frame stream send buffer full; %s seq %d dropped", kind, msg.seq)

    def _flush_outbox(self, xpub: zmq.Socket) -> None:
        while True:
            try:
                kind, fields = self._outbox.q.get_nowait()
            except queue.Empty:
                return
            self._publish(xpub, kind, fields)

    def _read_subscriptions(self, xpub: zmq.Socket) -> None:
        for _ in range(COMMANDS_PER_PASS):
            try:
                sub = xpub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            # b"\x01topic" subscribes, b"\x00topic" unsubscribes; only join tokens mean anything here
            if sub[:1] not in (b"\x00", b"\x01"):
                self.counters.bad_subscriptions += 1
                continue
            topic = sub[1:]
            if not topic.startswith(JOIN_TOPIC) or sub[:1] == b"\x00":
                continue
            token = topic[len(JOIN_TOPIC):]
            if not _TOKEN.fullmatch(token):
                self.counters.bad_subscriptions += 1
                continue
            self._joined[token.decode("ascii")] = None
            self._joined.move_to_end(token.decode("ascii"))
            while len(self._joined) > MAX_JOINED:
                self._joined.popitem(last=False)

    def _read_commands(self, router: zmq.Socket) -> None:
        for _ in range(COMMANDS_PER_PASS):
            try:
                parts = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(parts) != 2:
                self.counters.malformed += 1
                log.warning("command with %d frames (expected 1) ignored", len(parts) - 1)
                continue
            identity, data = parts
            try:
                cmd = decode_command(data)
            except MessageError as e:
                self._count(e)
                continue
            self.counters.commands += 1
            self._handle(router, identity, cmd)

    def _count(self, e: MessageError) -> None:
        if e.kind == "oversized":
            self.counters.oversized += 1
        elif e.kind == "too_deep":
            self.counters.too_deep += 1
        elif e.kind == "version":
            self.counters.wrong_version += 1
        else:
            self.counters.malformed += 1
        log.warning("ignored %s", e)

    def _ack(self, router: zmq.Socket, identity: bytes, cmd_id: int, ok: bool, error: str | None = None,
             t_rig: float | None = None) -> None:
        with self._lock:
            a = self._acq
            state = cast(State, "starting" if self._pending is not None and a.state == "idle" else a.state)
            text = None if error is None else error[:1000]
            ack = Ack(id=cmd_id, ok=ok, error=text, state=state, acquisition=a.acquisition, frames=a.frames,
                      frame_rate_hz=a.frame_rate_hz, planes=a.planes, t_bridge=self.clock(), t_rig=t_rig)
        with self._lock:
            injected, self._ack_injections = self._ack_injections, []
        try:
            for raw in injected:
                router.send_multipart([identity, raw], zmq.NOBLOCK)
            router.send_multipart([identity, encode(ack)], zmq.NOBLOCK)
        except zmq.Again:
            log.error("could not send the ack for command %d: peer gone or not reading", cmd_id)

    def _handle(self, router: zmq.Socket, identity: bytes,
                cmd: StartCmd | StopCmd | StatusCmd | PingCmd) -> None:
        if isinstance(cmd, PingCmd):
            self._ack(router, identity, cmd.id, True, t_rig=cmd.t_rig)
        elif isinstance(cmd, StatusCmd):
            self._ack(router, identity, cmd.id, True)
        elif isinstance(cmd, StopCmd):
            self._pending = None
            with self._lock:
                if self._acq.state == "starting":
                    self._acq.state = "idle"
            try:
                self.controller.stop()
            except Exception as e:  # the acquisition side refused (ValueError) or failed: say so to the rig
                self._ack(router, identity, cmd.id, False, f"stop refused: {e}")
                return
            self._ack(router, identity, cmd.id, True)
        else:
            if self.state != "idle" or self._pending is not None:
                self._ack(router, identity, cmd.id, False,
                          f"already {self.state if self._pending is None else 'starting'}; send stop first")
                return
            self._pending = _PendingStart(identity, cmd, self.clock() + self.join_timeout_s)
            self._check_pending(router)

    def _check_pending(self, router: zmq.Socket) -> None:
        p = self._pending
        if p is None:
            return
        if p.cmd.subscriber and p.cmd.subscriber not in self._joined:
            if self.clock() < p.deadline:
                return
            self._pending = None
            self._ack(router, p.identity, p.cmd.id, False,
                      f"the rig's frame subscription ({p.cmd.subscriber}) did not reach the bridge within "
                      f"{self.join_timeout_s} s; check the frame endpoint {self.endpoint_frames}")
            return
        self._pending = None
        with self._lock:
            self._acq.state = "starting"  # until the acquisition side reports acquisition_started
        try:
            self.controller.start(p.cmd.stem, dict(p.cmd.metadata))
        except Exception as e:  # the acquisition side refused (ValueError) or failed: say so to the rig
            with self._lock:
                self._acq.state = "idle"
            self._ack(router, p.identity, p.cmd.id, False, f"start refused: {e}")
            return
        self._ack(router, p.identity, p.cmd.id, True)


def open_for_scanimage(endpoint_cmd: str = "tcp://127.0.0.1:5570",
                       endpoint_frames: str = "tcp://127.0.0.1:5571",
                       server_secret: str | None = None, trusted_dir: str | None = None) -> Bridge:
    """Open a bridge whose commands wait for a MATLAB timer (`bridge.controller.take()`); called by
    docs/scanimage/corridorRigBridge.m. CURVE keys are loaded when both key arguments are given."""
    from rig.mesoscope.keys import server_keys

    keys = server_keys(server_secret, trusted_dir) if server_secret and trusted_dir else None
    return Bridge(endpoint_cmd, endpoint_frames, QueuedController(), keys=keys).open()
