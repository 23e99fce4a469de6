"""The rig's side of the mesoscope link: commands over DEALER, the frame stream over SUB.

Commands are synchronous calls with a timeout (`start`, `stop`, `status`, `ping`), made from the thread
that owns the link (the runner's). The frame stream is read by a small receiver thread that stamps
each message with the rig clock on arrival and queues it; `poll()` only drains that queue, so it never
blocks the runner's loop. Every message sent or received is kept for the session log (`take_log()`).

Hostile or broken input never stops the link: every message goes through the bounded decoders
(rig.mesoscope.messages) and the stream's plausibility checks (rig.mesoscope.stream); what fails is
counted, noted as a fault (`take_faults()`, once per kind with a count) and dropped. ZeroMQ drops a
connection for good after a message over HARD_MAX_MESSAGE_BYTES (or a failed handshake); the link sees
that on a socket monitor and reconnects, so the stream resumes and `stop` still reaches the bridge. If
the receiver thread dies anyway (a bug), `receiver_failure` says why, and the session hook notices.
"""

from __future__ import annotations

import collections
import itertools
import logging
import secrets
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from drivers.clockfit import LinearFit
from rig.mesoscope.bridge import JOIN_TOPIC
from rig.mesoscope.faults import FaultLog, LinkFault
from rig.mesoscope.keys import ClientKeys, require_keys_for
from rig.mesoscope.messages import (
    HARD_MAX_MESSAGE_BYTES,
    Ack,
    AcqStartMsg,
    AcqStopMsg,
    FrameMsg,
    HeartbeatMsg,
    MessageError,
    PingCmd,
    StartCmd,
    StatusCmd,
    StopCmd,
    decode_ack,
    decode_stream,
    encode,
)
from rig.mesoscope.stream import StreamGuard
from rig.sync.reconcile import MSG_DTYPE, clock_from_pings

log = logging.getLogger(__name__)

# Bounds on what the link keeps in memory whatever arrives.
MAX_REJECTED_LOGGED = 200  # rejected messages kept (first 1 KiB each) for the session log; then counted only
MAX_EVENTS = 1000
ACKS_PER_POLL = 100  # poll() reads at most this many replies per call: a flood cannot hold the loop
RECEIVE_BATCH = 1000  # stream messages read before the receiver looks at its socket monitor again


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
    """What the link received and what it had to refuse (all messages, both sockets)."""

    stream_messages: int = 0  # accepted stream messages
    frames: int = 0  # accepted frame messages
    malformed: int = 0
    oversized: int = 0
    too_deep: int = 0
    wrong_version: int = 0
    implausible: int = 0  # decoded but impossible here (frame number too far ahead, plane out of range...)
    out_of_order: int = 0  # stream seq not above the previous one from the same bridge instance (kept)
    seq_gaps: int = 0  # stream messages missing between two received ones (lost in transport)
    stale_acks: int = 0  # acks for no pending request (late replies to timed-out requests)
    bridge_restarts: int = 0  # the bridge instance changed mid-link
    reconnects: int = 0  # connections ZeroMQ had dropped for good, made again
    receiver_errors: int = 0  # unexpected errors inside the receiver (bugs), survived

    @property
    def refused(self) -> int:
        """Messages dropped as unacceptable, all reasons."""
        return self.malformed + self.oversized + self.too_deep + self.wrong_version + self.implausible


_COUNTER_OF_KIND = {"malformed": "malformed", "oversized": "oversized", "too_deep": "too_deep",
                    "version": "wrong_version", "implausible": "implausible"}


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
    last_message_t: float | None = None
    acq_start: AcqStartMsg | None = None
    acq_stop: AcqStopMsg | None = None
    first_frame: FrameMsg | None = None
    last_frame: FrameMsg | None = None
    frames_this_acq: int = 0
    events: list[str] = field(default_factory=list)


class _Reconnecting:
    """A connecting socket's monitor: when ZeroMQ drops the connection and does not try again by itself
    (after an oversized message or a failed handshake libzmq gives up; after a peer's ordinary close it
    retries, and keeps what was received), connect again, at most once per interval_s. Used only from
    the thread that owns the socket."""

    _RETRYING = zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_CONNECT_DELAYED | zmq.EVENT_CONNECTED

    def __init__(self, sock: zmq.Socket, endpoint: str, grace_s: float = 0.3, interval_s: float = 0.2) -> None:
        self.sock, self.endpoint, self.grace_s, self.interval_s = sock, endpoint, grace_s, interval_s
        self.monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED | self._RETRYING)
        self._due: float | None = None
        self._last = -1e9

    def service(self, now: float) -> bool:
        """Read monitor events; reconnect when one is due. True when it reconnected."""
        for _ in range(100):
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)["event"]
            except zmq.Again:
                break
            if event == zmq.EVENT_DISCONNECTED:
                self._due = max(now + self.grace_s, self._last + self.interval_s)
            elif event & self._RETRYING:
                self._due = None  # libzmq is on it
        if self._due is None or now < self._due:
            return False
        self._due, self._last = None, now
        try:
            self.sock.disconnect(self.endpoint)
        except zmq.ZMQError:
            pass  # libzmq already forgot the endpoint
        self.sock.connect(self.endpoint)
        return True

    @property
    def pending(self) -> bool:
        return self._due is not None

    def close(self) -> None:
        try:
            self.sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self.monitor.close(linger=0)


class MesoscopeLink:
    """Client for one bridge. `clock` must be the rig clock the TTL edges are recorded in."""

    def __init__(self, endpoint_cmd: str, endpoint_frames: str, keys: ClientKeys | None = None,
                 timeout_s: float = 2.0, *, clock: Callable[[], float] = time.perf_counter,
                 ping_interval_s: float = 5.0, silence_s: float = 2.0, fault_interval_s: float = 1.0) -> None:
        require_keys_for(endpoint_cmd, keys)
        require_keys_for(endpoint_frames, keys)
        if timeout_s <= 0:
            raise ValueError(f"timeout_s={timeout_s}: must be > 0")
        self.endpoint_cmd, self.endpoint_frames = endpoint_cmd, endpoint_frames
        self.timeout_s, self.clock = timeout_s, clock
        self.ping_interval_s, self.silence_s = ping_interval_s, silence_s
        self.counters = LinkCounters()
        self.faults = FaultLog(fault_interval_s)
        self.pings: list[PingSample] = []
        self.token = secrets.token_hex(8)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # guards counters, _stream and _log written by the receiver
        self._stream = _StreamState()
        self._guard = StreamGuard(clock())
        self._frames: collections.deque[FrameMsg] = collections.deque()
        self._log: list[LoggedMessage] = []
        self._rejected_logged = 0
        self._pending_pings: dict[int, float] = {}
        self._next_ping = 0.0
        self._rx_failure: str | None = None
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
        self._dealer_mon = _Reconnecting(self._dealer, endpoint_cmd)
        sub_mon = _Reconnecting(sub, endpoint_frames)
        self._dealer.connect(endpoint_cmd)
        sub.connect(endpoint_frames)
        self._rx = threading.Thread(target=self._receive, args=(sub, sub_mon), name="mesoscope-link-rx",
                                    daemon=True)
        self._rx.start()

    # ---- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        if self._ctx.closed:
            return
        self._stop_rx.set()
        self._rx.join(timeout=2.0)
        self._dealer_mon.close()
        self._dealer.close(linger=0)
        self._ctx.term()

    def __enter__(self) -> MesoscopeLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- health ------------------------------------------------------------------------------------

    @property
    def receiver_alive(self) -> bool:
        return self._rx.is_alive()

    @property
    def receiver_failure(self) -> str | None:
        """Why the receiver thread stopped, when it stopped without being told to (else None)."""
        if self._rx_failure is not None:
            return self._rx_failure
        if not self._rx.is_alive() and not self._stop_rx.is_set():
            return "the mesoscope link's receiver thread ended unexpectedly"
        return None

    def take_faults(self, final: bool = False) -> list[LinkFault]:
        """Faults to log now (rig clock times): each kind once at first, then one summary per interval."""
        return self.faults.take(self.clock(), final)

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
        wait = self.timeout_s if wait_s is None else wait_s
        deadline = self.clock() + wait
        while self.clock() < deadline:
            with self._lock:
                s = self._stream
                if s.acq_stop is not None or s.acq_start is None:
                    return ack
            time.sleep(0.005)
        self._event(f"no acq_stop on the frame stream within {wait} s after stop")
        return ack

    def status(self) -> Ack:
        return self._request(StatusCmd(id=next(self._ids)))

    def ping(self) -> PingSample:
        t_send = self.clock()
        ack = self._request(PingCmd(id=next(self._ids), t_rig=t_send))
        sample = PingSample(t_send, ack.t_bridge, self.clock())
        self.pings.append(sample)
        return sample

    def clock_fit(self) -> LinearFit:
        """Bridge clock -> rig clock from the pings so far (raises ValueError when there are none)."""
        p = self.pings
        return clock_from_pings([s.t_send for s in p], [s.t_bridge for s in p], [s.t_recv for s in p])

    def _service_dealer(self) -> None:
        if self._dealer_mon.service(self.clock()):
            self._reconnected("cmd", self.endpoint_cmd)

    def _reconnected(self, channel: str, endpoint: str) -> None:
        with self._lock:
            self.counters.reconnects += 1
        self.faults.note(self.clock(), f"reconnect_{channel}",
                         f"ZeroMQ dropped the {channel} connection to {endpoint} (oversized message or failed "
                         "handshake); connected again")

    def _send(self, cmd: StartCmd | StopCmd | StatusCmd | PingCmd, deadline: float) -> None:
        data = encode(cmd)
        while True:
            try:
                self._dealer.send(data, zmq.NOBLOCK)
                self._log_msg(LoggedMessage(self.clock(), "out", "cmd", data))
                return
            except zmq.Again:
                self._service_dealer()
                left = deadline - self.clock()
                if left <= 0:
                    raise LinkTimeout(
                        f"could not reach the mesoscope bridge at {self.endpoint_cmd} to send '{cmd.type}' "
                        f"within {self.timeout_s} s: is the bridge running and reachable, and (remote links) "
                        "is this rig's CURVE public key in its trusted directory?"
                    ) from None
                self._dealer.poll(int(min(left, 0.05) * 1000) + 1, zmq.POLLOUT)

    def _send_quietly(self, cmd: StopCmd) -> None:
        try:
            self._dealer.send(encode(cmd), zmq.NOBLOCK)
        except zmq.Again:
            pass  # not connected: nothing was delivered to cancel

    def _request(self, cmd: StartCmd | StopCmd | StatusCmd | PingCmd) -> Ack:
        deadline = self.clock() + self.timeout_s
        self._service_dealer()
        self._send(cmd, deadline)
        while True:
            left = deadline - self.clock()
            if left <= 0:
                raise LinkTimeout(
                    f"the mesoscope bridge at {self.endpoint_cmd} did not answer '{cmd.type}' (request "
                    f"{cmd.id}) within {self.timeout_s} s; is it running and responsive?"
                )
            if not self._dealer.poll(int(min(left, 0.05) * 1000) + 1, zmq.POLLIN):
                self._service_dealer()
                continue
            ack = self._read_ack()
            if ack is None:
                continue
            if ack.id != cmd.id:  # a late reply to an earlier request
                with self._lock:
                    self.counters.stale_acks += 1
                continue
            if not ack.ok:
                raise CommandRefused(f"the mesoscope bridge refused '{cmd.type}': {ack.error}")
            return ack

    def _read_ack(self) -> Ack | None:
        """Read one reply; pings sent from poll() are filed, anything unacceptable is counted."""
        try:
            parts = self._dealer.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
        t = self.clock()
        data = parts[0] if len(parts) == 1 else b"".join(p[:64] for p in parts)[:1024]
        try:
            if len(parts) != 1:
                raise MessageError("malformed", f"ack in {len(parts)} ZeroMQ frames (expected 1)")
            ack = decode_ack(data)
        except MessageError as e:
            self._reject(t, "cmd", data, e)
            return None
        except Exception as e:  # a decoder bug must not end a session: counted like any refusal
            self._reject(t, "cmd", data, MessageError("malformed", f"ack could not be decoded ({e!r})"))
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
        self._service_dealer()
        try:
            for _ in range(ACKS_PER_POLL):
                if not self._dealer.poll(0, zmq.POLLIN):
                    break
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
            self._service_dealer()
            time.sleep(0.005)

    def frames_received(self) -> int:
        """Frames of the current acquisition received so far."""
        with self._lock:
            return self._stream.frames_this_acq

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
        """False once the bridge has been silent (no frame, no heartbeat) for silence_s, or the receiver
        thread has died."""
        age = self._silence()
        return age is not None and age < self.silence_s and self._rx.is_alive()

    def events(self) -> list[str]:
        """Notable things seen on the link (bridge restarts, silences, stops), oldest first."""
        if not self.alive and self._stream.last_message_t is not None:
            age = self._silence()
            note = "mesoscope bridge silent"
            with self._lock:
                ev = self._stream.events
                if (not ev or not ev[-1].startswith(note)) and len(ev) < MAX_EVENTS:
                    ev.append(f"{note} since rig time {self._stream.last_message_t:.3f} ({age:.1f} s)")
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
            self._add_event(text)

    def _add_event(self, text: str) -> None:  # caller holds the lock
        ev = self._stream.events
        if len(ev) < MAX_EVENTS:
            ev.append(text)
        elif len(ev) == MAX_EVENTS:
            ev.append(f"more than {MAX_EVENTS} link events: later ones not kept")

    def _reject(self, t: float, channel: str, data: bytes, e: MessageError) -> None:
        name = _COUNTER_OF_KIND.get(e.kind, "malformed")
        with self._lock:
            setattr(self.counters, name, getattr(self.counters, name) + 1)
            # Keep the log bounded: the first rejected messages by their first KiB, the rest only counted.
            if self._rejected_logged < MAX_REJECTED_LOGGED:
                self._rejected_logged += 1
                self._log.append(LoggedMessage(t, "in", channel, data[:1024], str(e)[:500]))
        self.faults.note(t, f"{'ack' if channel == 'cmd' else 'stream'}_{e.kind}", str(e))
        log.debug("mesoscope link refused a message: %s", e)

    def _receive(self, sub: zmq.Socket, mon: _Reconnecting) -> None:
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        poller.register(mon.monitor, zmq.POLLIN)
        try:
            while not self._stop_rx.is_set():
                ready = dict(poller.poll(20 if mon.pending else 50))
                if sub in ready:  # read what arrived before looking at the connection's state
                    for _ in range(RECEIVE_BATCH):
                        try:
                            data = sub.recv(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._on_stream_safely(self.clock(), data)
                if (mon.monitor in ready or mon.pending) and mon.service(self.clock()):
                    self._reconnected("frames", self.endpoint_frames)
        except BaseException as e:  # noqa: BLE001 - record why, so the session hook can say so
            self._rx_failure = f"the mesoscope link's receiver thread died: {type(e).__name__}: {e}"
            log.error("%s\n%s", self._rx_failure, traceback.format_exc())
            self.faults.note(self.clock(), "receiver_died", self._rx_failure)
        finally:
            mon.close()
            sub.close(linger=0)

    def _on_stream_safely(self, t: float, data: bytes) -> None:
        try:
            self._on_stream(t, data)
        except Exception as e:  # a bug, not the input: survive it, count it, say so once per kind
            with self._lock:
                self.counters.receiver_errors += 1
            self.faults.note(t, "receiver_error", f"unexpected {type(e).__name__} handling a stream message: {e}")
            log.exception("mesoscope link: error handling a stream message")

    def _on_stream(self, t: float, data: bytes) -> None:
        try:
            msg = decode_stream(data)
            with self._lock:
                verdict = self._guard.check(msg, t)
        except MessageError as e:
            self._reject(t, "frames", data, e)
            return
        with self._lock:
            c, s = self.counters, self._stream
            self._log.append(LoggedMessage(t, "in", "frames", data))
            c.stream_messages += 1
            s.last_message_t = t
            c.seq_gaps += verdict.seq_gap
            c.out_of_order += verdict.out_of_order
            if verdict.restart:
                c.bridge_restarts += 1
                self._add_event(f"mesoscope bridge restarted (instance {msg.instance}) at rig time {t:.3f}")
            if isinstance(msg, FrameMsg):
                c.frames += 1
                frame = msg.model_copy(update={"t_receive": t})
                a = s.acq_start
                if a is not None and (msg.instance, msg.acquisition) == (a.instance, a.acquisition):
                    s.frames_this_acq += 1
                    s.first_frame = s.first_frame or frame
                    s.last_frame = frame
                self._frames.append(frame)
            elif isinstance(msg, AcqStartMsg):
                s.acq_start, s.acq_stop = msg, None
                s.first_frame = s.last_frame = None
                s.frames_this_acq = 0
                self._add_event(f"acquisition {msg.acquisition} started ({msg.frame_rate_hz} Hz, "
                                f"{msg.planes} planes) at rig time {t:.3f}")
            elif isinstance(msg, AcqStopMsg):
                a = s.acq_start
                if a is None or (msg.instance, msg.acquisition) == (a.instance, a.acquisition):
                    s.acq_stop = msg
                self._add_event(f"acquisition {msg.acquisition} stopped after {msg.frames} frames "
                                f"({msg.reason}) at rig time {t:.3f}")
            elif isinstance(msg, HeartbeatMsg):
                pass


def frames_to_array(frames: list[FrameMsg]) -> np.ndarray:
    """Frame messages as the rig.sync.reconcile.MSG_DTYPE array that `reconcile` takes.

    Frames are keyed by bridge instance as well as acquisition: a restarted bridge numbers its
    acquisitions (and their frames) from 1 again. `acquisition` is the session's own number, 1, 2, ...
    for each (instance, acquisition) in order of arrival; `bridge_run` (0-based) and
    `bridge_acquisition` keep the bridge's instance and numbering."""
    out = np.zeros(len(frames), MSG_DTYPE)
    runs: dict[str, int] = {}
    acqs: dict[tuple[str, int], int] = {}
    for i, f in enumerate(frames):
        run = runs.setdefault(f.instance, len(runs))
        acq = acqs.setdefault((f.instance, f.acquisition), len(acqs) + 1)
        out[i] = (f.frame, f.plane, f.t_meso, np.nan if f.t_receive is None else f.t_receive, acq, run,
                  f.acquisition)
    return out
