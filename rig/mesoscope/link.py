"""The rig's side of the mesoscope link: commands over DEALER, the frame stream over SUB.

Commands are synchronous calls with a timeout (`start`, `stop`, `status`, `ping`), made from the thread
that owns the link (the runner's). The frame stream is read by a small receiver thread that stamps
each message with the rig clock on arrival and queues it; `poll()` only drains that queue, so it never
blocks the runner's loop. Every message sent or received is kept for the session log (`take_log()`).
"""

from __future__ import annotations

import collections
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import zmq

from rig.mesoscope.bridge import JOIN_TOPIC
from rig.mesoscope.keys import ClientKeys, require_keys_for
from rig.mesoscope.protocol import (
    HARD_MAX_MESSAGE_BYTES,
    Ack,
    AcqStartMsg,
    AcqStopMsg,
    FrameMsg,
    HeartbeatMsg,
    PingCmd,
    ProtocolError,
    StartCmd,
    StatusCmd,
    StopCmd,
    decode_ack,
    decode_stream,
    encode,
)
from rig.sync.reconcile import MSG_DTYPE, ClockFit, clock_from_pings

log = logging.getLogger(__name__)


class LinkError(RuntimeError):
    """The mesoscope link failed; the message says what and where."""


class LinkTimeout(LinkError):
    pass


class CommandRefused(LinkError):
    pass


class MesoscopeNotStarted(LinkError):
    pass


class FrameRateMismatch(LinkError):
    pass


@dataclass
class LinkCounters:
    """What the link received and what it had to reject (all messages, both sockets)."""

    stream_messages: int = 0
    frames: int = 0
    malformed: int = 0
    oversized: int = 0
    wrong_version: int = 0
    out_of_order: int = 0  # stream seq not above the previous one from the same bridge instance
    seq_gaps: int = 0  # stream messages missing between two received ones (lost in transport)
    stale_acks: int = 0  # acks for no pending request (late replies to timed-out requests)
    bridge_restarts: int = 0  # the bridge instance changed mid-link


@dataclass(frozen=True)
class PingSample:
    t_send: float  # rig clock
    t_bridge: float  # bridge clock
    t_recv: float  # rig clock

    @property
    def rtt(self) -> float:
        return self.t_recv - self.t_send


@dataclass(frozen=True)
class LoggedMessage:
    """One message as it crossed the link: for the session log."""

    t: float  # rig clock at send / receipt
    direction: str  # "out" (to the bridge) | "in"
    channel: str  # "cmd" | "frames"
    data: bytes
    error: str | None = None  # set when the message was rejected


@dataclass
class _StreamState:
    instance: str | None = None
    last_seq: int = -1
    last_message_t: float | None = None
    acq_start: AcqStartMsg | None = None
    acq_stop: AcqStopMsg | None = None
    first_frame: FrameMsg | None = None
    last_frame: FrameMsg | None = None
    frames_this_acq: int = 0
    events: list[str] = field(default_factory=list)


class MesoscopeLink:
    """Client for one bridge. `clock` must be the rig clock the TTL edges are recorded in."""

    def __init__(self, endpoint_cmd: str, endpoint_frames: str, keys: ClientKeys | None = None,
                 timeout_s: float = 2.0, *, clock: Callable[[], float] = time.perf_counter,
                 ping_interval_s: float = 5.0, silence_s: float = 2.0) -> None:
        require_keys_for(endpoint_cmd, keys)
        require_keys_for(endpoint_frames, keys)
        if timeout_s <= 0:
            raise ValueError(f"timeout_s={timeout_s}: must be > 0")
        self.endpoint_cmd, self.endpoint_frames = endpoint_cmd, endpoint_frames
        self.timeout_s, self.clock = timeout_s, clock
        self.ping_interval_s, self.silence_s = ping_interval_s, silence_s
        self.counters = LinkCounters()
        self.pings: list[PingSample] = []
        self.token = secrets.token_hex(8)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # guards counters, _stream and _log written by the receiver
        self._stream = _StreamState()
        self._frames: collections.deque[FrameMsg] = collections.deque()
        self._log: list[LoggedMessage] = []
        self._pending_pings: dict[int, float] = {}
        self._next_ping = 0.0
        self._stop_rx = threading.Event()
        self._ctx = zmq.Context()
        self._dealer = self._ctx.socket(zmq.DEALER)
        sub = self._ctx.socket(zmq.SUB)
        for s in (self._dealer, sub):
            s.linger = 0
            s.setsockopt(zmq.MAXMSGSIZE, HARD_MAX_MESSAGE_BYTES)
            if keys is not None:
                keys.apply(s)
        # Queue requests only on live connections: a start must never sit in a buffer and fire later.
        self._dealer.setsockopt(zmq.IMMEDIATE, 1)
        sub.rcvhwm = 0  # never drop frames on our side; the receiver thread keeps up
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.setsockopt(zmq.SUBSCRIBE, JOIN_TOPIC + self.token.encode())  # the join handshake
        self._dealer.connect(endpoint_cmd)
        sub.connect(endpoint_frames)
        self._rx = threading.Thread(target=self._receive, args=(sub,), name="mesoscope-link-rx", daemon=True)
        self._rx.start()

    # ---- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        if self._ctx.closed:
            return
        self._stop_rx.set()
        self._rx.join(timeout=2.0)
        self._dealer.close(linger=0)
        self._ctx.term()

    def __enter__(self) -> MesoscopeLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- commands ----------------------------------------------------------------------------------

    def start(self, stem: str, metadata: dict | None = None) -> Ack:
        """Ask the mesoscope to acquire into `stem`. Raises LinkTimeout / CommandRefused."""
        with self._lock:
            self._stream.acq_start = self._stream.acq_stop = None
            self._stream.first_frame = self._stream.last_frame = None
            self._stream.frames_this_acq = 0
        cmd = StartCmd(id=next(self._ids), stem=stem, metadata=metadata or {}, subscriber=self.token)
        try:
            return self._request(cmd)
        except LinkTimeout:
            # The start may still reach the bridge late: cancel it rather than leave an acquisition running.
            self._send_quietly(StopCmd(id=next(self._ids)))
            raise

    def stop(self, wait_s: float | None = None) -> Ack:
        """Stop acquiring, then wait up to wait_s (default timeout_s) for the stream's acq_stop so that
        every frame message has arrived; a missing acq_stop is noted in events(), not raised."""
        ack = self._request(StopCmd(id=next(self._ids)))
        deadline = self.clock() + (self.timeout_s if wait_s is None else wait_s)
        while self.clock() < deadline:
            with self._lock:
                s = self._stream
                if s.acq_stop is not None or s.acq_start is None:
                    return ack
            time.sleep(0.005)
        self._event(f"no acq_stop on the frame stream within {wait_s or self.timeout_s} s after stop")
        return ack

    def status(self) -> Ack:
        return self._request(StatusCmd(id=next(self._ids)))

    def ping(self) -> PingSample:
        t_send = self.clock()
        ack = self._request(PingCmd(id=next(self._ids), t_rig=t_send))
        sample = PingSample(t_send, ack.t_bridge, self.clock())
        self.pings.append(sample)
        return sample

    def clock_fit(self) -> ClockFit:
        """Bridge clock -> rig clock from the pings so far (raises ValueError when there are none)."""
        p = self.pings
        return clock_from_pings([s.t_send for s in p], [s.t_bridge for s in p], [s.t_recv for s in p])

    def _send(self, cmd: StartCmd | StopCmd | StatusCmd | PingCmd, deadline: float) -> None:
        data = encode(cmd)
        while True:
            try:
                self._dealer.send(data, zmq.NOBLOCK)
                self._log_msg(LoggedMessage(self.clock(), "out", "cmd", data))
                return
            except zmq.Again:
                left = deadline - self.clock()
                if left <= 0 or not self._dealer.poll(int(left * 1000) + 1, zmq.POLLOUT):
                    raise LinkTimeout(
                        f"could not reach the mesoscope bridge at {self.endpoint_cmd} to send '{cmd.type}' "
                        f"within {self.timeout_s} s: is the bridge running and reachable, and (remote links) "
                        "is this rig's CURVE public key in its trusted directory?"
                    ) from None

    def _send_quietly(self, cmd: StopCmd) -> None:
        try:
            self._dealer.send(encode(cmd), zmq.NOBLOCK)
        except zmq.Again:
            pass  # not connected: nothing was delivered to cancel

    def _request(self, cmd: StartCmd | StopCmd | StatusCmd | PingCmd) -> Ack:
        deadline = self.clock() + self.timeout_s
        self._send(cmd, deadline)
        while True:
            left = deadline - self.clock()
            if left <= 0 or not self._dealer.poll(int(left * 1000) + 1, zmq.POLLIN):
                if self.clock() < deadline:
                    continue
                raise LinkTimeout(
                    f"the mesoscope bridge at {self.endpoint_cmd} did not answer '{cmd.type}' (request "
                    f"{cmd.id}) within {self.timeout_s} s; is it running and responsive?"
                )
            ack = self._read_ack()
            if ack is None or ack.id != cmd.id:
                continue
            if not ack.ok:
                raise CommandRefused(f"the mesoscope bridge refused '{cmd.type}': {ack.error}")
            return ack

    def _read_ack(self) -> Ack | None:
        """Read one reply; pings sent from poll() are filed, anything else unexpected is counted."""
        data = self._dealer.recv(zmq.NOBLOCK)
        t = self.clock()
        try:
            ack = decode_ack(data)
        except ProtocolError as e:
            self._reject(t, "cmd", data, e)
            return None
        self._log_msg(LoggedMessage(t, "in", "cmd", data))
        sent = self._pending_pings.pop(ack.id, None)
        if sent is not None:
            if ack.ok:
                self.pings.append(PingSample(sent, ack.t_bridge, t))
            return None
        return ack

    # ---- frames ------------------------------------------------------------------------------------

    def poll(self) -> list[FrameMsg]:
        """Frame messages received since the last call, in arrival order; never blocks. Also sends a
        clock ping every ping_interval_s and files replies, without waiting for them."""
        out: list[FrameMsg] = []
        while True:
            try:
                out.append(self._frames.popleft())
            except IndexError:
                break
        now = self.clock()
        try:
            while self._dealer.poll(0, zmq.POLLIN):
                ack = self._read_ack()
                if ack is not None:
                    with self._lock:
                        self.counters.stale_acks += 1
            if self.ping_interval_s > 0 and now >= self._next_ping:
                self._next_ping = now + self.ping_interval_s
                cmd = PingCmd(id=next(self._ids), t_rig=now)
                data = encode(cmd)
                self._dealer.send(data, zmq.NOBLOCK)
                self._pending_pings[cmd.id] = now
                self._log_msg(LoggedMessage(now, "out", "cmd", data))
                if len(self._pending_pings) > 100:  # unanswered pings: forget the oldest
                    self._pending_pings.pop(next(iter(self._pending_pings)))
        except zmq.Again:
            pass  # not connected right now; the next call tries again
        return out

    def wait_for_frames(self, min_frames: int, expected_rate_hz: float, timeout_s: float,
                        rate_tolerance: float = 0.05) -> float:
        """Block until min_frames (>= 2) frames of the current acquisition have arrived and return their
        rate (Hz, from mesoscope timestamps). The frames stay queued for poll(). Raises
        MesoscopeNotStarted if they do not come within timeout_s, FrameRateMismatch if the declared or
        measured rate is off by more than rate_tolerance (relative)."""
        if min_frames < 2:
            raise ValueError("min_frames must be >= 2 to measure a rate")
        deadline = self.clock() + timeout_s
        while True:
            with self._lock:
                s = self._stream
                n, start, first, last = s.frames_this_acq, s.acq_start, s.first_frame, s.last_frame
            if start is not None and abs(start.frame_rate_hz / expected_rate_hz - 1) > rate_tolerance:
                raise FrameRateMismatch(
                    f"the mesoscope declares {start.frame_rate_hz:.3f} Hz, the rig expects "
                    f"{expected_rate_hz:.3f} Hz (tolerance {rate_tolerance:.0%}); "
                    "check the ScanImage ROI setup"
                )
            if n >= min_frames and first is not None and last is not None:
                frames = last.frame - first.frame
                rate = frames / (last.t_meso - first.t_meso) if last.t_meso > first.t_meso else float("inf")
                if abs(rate / expected_rate_hz - 1) > rate_tolerance:
                    raise FrameRateMismatch(
                        f"frames arrive at {rate:.3f} Hz, expected {expected_rate_hz:.3f} Hz "
                        f"(tolerance {rate_tolerance:.0%}, {n} frames)")
                return rate
            if self.clock() >= deadline:
                age = self._silence()
                raise MesoscopeNotStarted(
                    f"{n} of {min_frames} frames from the mesoscope within {timeout_s} s "
                    f"(acquisition start message {'seen' if start else 'not seen'}; "
                    f"bridge last heard {'never' if age is None else f'{age:.1f} s ago'}); "
                    "is ScanImage acquiring and the frame stream endpoint "
                    f"{self.endpoint_frames} reachable?")
            time.sleep(0.005)

    def _silence(self) -> float | None:
        with self._lock:
            last = self._stream.last_message_t
        return None if last is None else self.clock() - last

    @property
    def acquisition_start(self) -> AcqStartMsg | None:
        """The stream's last acq_start since start() (None before it arrives)."""
        with self._lock:
            return self._stream.acq_start

    @property
    def acquisition_stop(self) -> AcqStopMsg | None:
        """The stream's acq_stop for the current acquisition, once it has arrived."""
        with self._lock:
            return self._stream.acq_stop

    @property
    def alive(self) -> bool:
        """False once the bridge has been silent (no frame, no heartbeat) for silence_s."""
        age = self._silence()
        return age is not None and age < self.silence_s

    def events(self) -> list[str]:
        """Notable things seen on the link (bridge restarts, silences, stops), oldest first."""
        if not self.alive and self._stream.last_message_t is not None:
            age = self._silence()
            note = "mesoscope bridge silent"
            with self._lock:
                if not self._stream.events or not self._stream.events[-1].startswith(note):
                    self._stream.events.append(f"{note} since rig time {self._stream.last_message_t:.3f} "
                                               f"({age:.1f} s)")
        with self._lock:
            return list(self._stream.events)

    def take_log(self) -> list[LoggedMessage]:
        """Every message sent or received since the last call (for the session folder)."""
        with self._lock:
            out, self._log = self._log, []
        return out

    def _log_msg(self, m: LoggedMessage) -> None:
        with self._lock:
            self._log.append(m)

    def _event(self, text: str) -> None:
        log.warning("mesoscope link: %s", text)
        with self._lock:
            self._stream.events.append(text)

    def _reject(self, t: float, channel: str, data: bytes, e: ProtocolError) -> None:
        with self._lock:
            if e.kind == "oversized":
                self.counters.oversized += 1
            elif e.kind == "version":
                self.counters.wrong_version += 1
            else:
                self.counters.malformed += 1
            # Keep the log bounded: an oversized message is logged by size, not content.
            self._log.append(LoggedMessage(t, "in", channel, data[:1024], str(e)[:500]))
        log.debug("mesoscope link rejected a message: %s", e)

    def _receive(self, sub: zmq.Socket) -> None:
        try:
            while not self._stop_rx.is_set():
                if not sub.poll(50, zmq.POLLIN):
                    continue
                while True:
                    try:
                        data = sub.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._on_stream(self.clock(), data)
        finally:
            sub.close(linger=0)

    def _on_stream(self, t: float, data: bytes) -> None:
        try:
            msg = decode_stream(data)
        except ProtocolError as e:
            self._reject(t, "frames", data, e)
            return
        with self._lock:
            c, s = self.counters, self._stream
            self._log.append(LoggedMessage(t, "in", "frames", data))
            c.stream_messages += 1
            s.last_message_t = t
            if msg.instance != s.instance:
                if s.instance is not None:
                    c.bridge_restarts += 1
                    s.events.append(f"mesoscope bridge restarted (instance {msg.instance}) "
                                    f"at rig time {t:.3f}")
                s.instance, s.last_seq = msg.instance, msg.seq
            elif msg.seq <= s.last_seq:
                c.out_of_order += 1
            else:
                c.seq_gaps += msg.seq - s.last_seq - 1
                s.last_seq = msg.seq
            if isinstance(msg, FrameMsg):
                c.frames += 1
                frame = msg.model_copy(update={"t_receive": t})
                if s.acq_start is not None and msg.acquisition == s.acq_start.acquisition:
                    s.frames_this_acq += 1
                    s.first_frame = s.first_frame or frame
                    s.last_frame = frame
                self._frames.append(frame)
            elif isinstance(msg, AcqStartMsg):
                s.acq_start, s.acq_stop = msg, None
                s.first_frame = s.last_frame = None
                s.frames_this_acq = 0
                s.events.append(f"acquisition {msg.acquisition} started ({msg.frame_rate_hz} Hz, "
                                f"{msg.planes} planes) at rig time {t:.3f}")
            elif isinstance(msg, AcqStopMsg):
                s.acq_stop = msg
                s.events.append(f"acquisition {msg.acquisition} stopped after {msg.frames} frames "
                                f"({msg.reason}) at rig time {t:.3f}")
            elif isinstance(msg, HeartbeatMsg):
                pass


def frames_to_array(frames: list[FrameMsg]) -> np.ndarray:
    """Frame messages as the rig.sync.reconcile.MSG_DTYPE array that `reconcile` takes."""
    out = np.zeros(len(frames), MSG_DTYPE)
    for i, f in enumerate(frames):
        out[i] = (f.frame, f.plane, f.t_meso, np.nan if f.t_receive is None else f.t_receive, f.acquisition)
    return out
