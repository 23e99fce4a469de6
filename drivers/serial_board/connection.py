"""One open link to a corridor board, shared by every role driver that uses the same port.

The registry builds one driver object per role, but a board has one serial port. `BoardConnection`
therefore keeps an explicit class-level pool keyed by port name with reference counts: the first role's
`open()` opens the port and handshakes, later roles share it, and the last `close()` closes it. The pool
is the only shared state; `BoardConnection.open_ports()` shows it (tests check it is empty afterwards).

A background reader thread owns all reads: it parses packets into per-stream deques that role `read()`
calls drain without blocking. Commands are written from the caller's thread with a short write timeout.
On any fault the valve is commanded closed and a `Fault` (session time, kind, message) is recorded.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields
from typing import ClassVar

import serial
from serial.tools import list_ports

from drivers.base import Clock, ClockMap
from drivers.serial_board import protocol as P
from drivers.serial_board.clockfit import ClockFit, ClockFitter

STREAMS = ("encoder", "lick", "frame", "sync", "valve")
UNCLAIMED_MAX = 10_000  # items kept for a stream no role has claimed yet (the rest are dropped)
ACK_TIMEOUT_S = 0.5


class BoardError(RuntimeError):
    """The board could not be opened or does not speak the protocol; the message says what to check."""


@dataclass(frozen=True)
class LinkSettings:
    port: str
    baudrate: int = 115200
    handshake_timeout_s: float = 3.0
    heartbeat_timeout_s: float = 0.5
    reconnect_interval_s: float = 0.25
    write_timeout_s: float = 0.05


@dataclass(frozen=True, slots=True)
class Fault:
    t: float  # session time (the DriverContext clock) when the host noticed it
    kind: str
    message: str


@dataclass
class Counters:
    packets: int = 0
    garbage: int = 0
    partial: int = 0
    crc: int = 0
    garbage_bytes: int = 0
    packets_lost: int = 0  # sequence-number gaps
    events_lost: int = 0  # lick/frame/sync counter gaps
    resets: int = 0
    heartbeat_losses: int = 0
    unplugs: int = 0
    reconnects: int = 0
    handshakes: int = 0
    commands: int = 0
    acks: int = 0
    nacks: int = 0
    ack_timeouts: int = 0
    write_errors: int = 0
    device_errors: int = 0
    device_tx_dropped: int = 0
    valve_closes_on_fault: int = 0


@dataclass(frozen=True)
class BoardHealth:
    port: str
    connected: bool
    firmware: str
    board_id: int
    counters: dict[str, int]
    faults: tuple[Fault, ...]
    clock: ClockMap
    clock_fit: ClockFit | None
    heartbeat_age_s: float | None
    lines: int  # last heartbeat's line bits (protocol.LINE_*)

    @property
    def ok(self) -> bool:
        return self.connected and not self.faults


@dataclass
class _Pending:
    ptype: int
    sent: float


@dataclass
class _Epoch:
    """Per-handshake state: where the board's counters and clock stood."""

    boot_offset_us: int = 0
    enc_total: int = 0
    lick_count: int = 0
    frame_count: int = 0
    sync_count: int = 0
    expect_seq: int = 0
    last_us: int = -1  # last unwrapped device stamp (before the boot offset)
    unwrap: P.TimeUnwrapper = field(default_factory=P.TimeUnwrapper)


class BoardConnection:
    _pool: ClassVar[dict[str, BoardConnection]] = {}
    _pool_lock: ClassVar[threading.Lock] = threading.Lock()

    # ---- the pool --------------------------------------------------------------------------------
    @classmethod
    def acquire(cls, settings: LinkSettings, clock: Clock) -> BoardConnection:
        """The open connection for settings.port, opening and handshaking it if no role has yet."""
        with cls._pool_lock:
            conn = cls._pool.get(settings.port)
            if conn is None:
                conn = cls(settings, clock)
                conn._open()
                cls._pool[settings.port] = conn
            elif conn.settings != settings:
                raise BoardError(
                    f"serial board on {settings.port}: roles disagree on link settings "
                    f"({conn.settings} vs {settings}); give every role on one port the same values"
                )
            conn._refs += 1
            return conn

    def release(self) -> None:
        with self._pool_lock:
            self._refs -= 1
            if self._refs > 0:
                return
            self._pool.pop(self.settings.port, None)
        self._shutdown()

    @classmethod
    def open_ports(cls) -> list[str]:
        with cls._pool_lock:
            return sorted(cls._pool)

    # ---- lifecycle -------------------------------------------------------------------------------
    def __init__(self, settings: LinkSettings, clock: Clock) -> None:
        self.settings = settings
        self._clock = clock
        self._refs = 0
        self._serial: serial.Serial | None = None
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._decoder = P.FrameDecoder()
        # Every stream fills from the handshake on, so a role opened a moment after another misses
        # nothing; a stream that no role claims is kept bounded.
        self._streams: dict[str, deque] = {name: deque() for name in STREAMS}
        self._claimed: set[str] = set()
        self._acks: dict[int, P.Ack] = {}
        self._ack_cond = threading.Condition(self._state_lock)
        self._pending: dict[int, _Pending] = {}
        self._cmd_seq = 0
        self.counters = Counters()
        self._faults: list[Fault] = []
        self._fitter = ClockFitter()
        self._fit: ClockFit | None = None
        self._mono_map = ClockMap()  # board time -> host monotonic (perf_counter) seconds
        self._epoch = _Epoch()
        self._hello: P.Hello | None = None
        self._hello_error = ""
        self._handshaken = False
        self._hello_event = threading.Event()
        self._last_rx = 0.0  # time.monotonic() of the last good packet
        self._last_hb: float | None = None
        self._hb_lost = False
        self._next_hello = 0.0
        self._last_valve_close = -1.0
        self._lines = 0
        self._config: dict[str, int] = {"max_open_ms": 0, "encoder_period_us": 0, "heartbeat_ms": 0}
        self._rx_bytes = 0

    def _open(self) -> None:
        s = self.settings
        self._serial = self._open_port()
        if self._serial is None:
            present = ", ".join(p.device for p in list_ports.comports()) or "none"
            raise BoardError(
                f"cannot open serial port {s.port!r} ({self._open_error}); serial ports present: {present}"
            )
        self._thread = threading.Thread(target=self._run, name=f"board-reader {s.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + s.handshake_timeout_s
        while True:
            self.send(P.PacketType.CMD_HELLO, (P.PROTOCOL_VERSION,), track=False)
            if self._hello_event.wait(0.25) or time.monotonic() >= deadline:
                break
        if self._hello_error or not self._handshaken:
            c = self._decoder.counts
            why = self._hello_error or (
                f"no handshake within {s.handshake_timeout_s:.1f} s (received {self._rx_bytes} bytes, "
                f"{c.packets} packets, {c.garbage + c.partial + c.crc} bad frames); check that the "
                f"corridor_board firmware (protocol v{P.PROTOCOL_VERSION}) is flashed and the baud "
                f"rate ({s.baudrate}) matches"
            )
            self._shutdown()
            raise BoardError(f"serial board on {s.port}: {why}")
        # A couple of heartbeats give the clock fit a sound start (the HELLO alone may have queued).
        deadline = time.monotonic() + s.heartbeat_timeout_s
        while len(self._fitter) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)

    def _open_port(self) -> serial.Serial | None:
        s = self.settings
        try:
            ser = serial.Serial(s.port, s.baudrate, timeout=0.02, write_timeout=s.write_timeout_s)
            ser.reset_input_buffer()  # bytes queued before we opened are stale
        except (serial.SerialException, OSError, ValueError) as e:
            self._open_error = str(e)
            return None
        self._open_error = ""
        return ser

    def _shutdown(self) -> None:
        if self._serial is not None and self._handshaken:
            self.send(P.PacketType.CMD_VALVE_CLOSE, track=False)  # leave the rig safe
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._thread = None
        self._close_port()

    def _close_port(self) -> None:
        with self._write_lock:
            ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except (serial.SerialException, OSError) as e:
                # A vanished device can fail to close; it is gone either way.
                self._record("close_failed", f"closing {self.settings.port}: {e}")

    # ---- what the roles use ------------------------------------------------------------------------
    def stream(self, name: str) -> deque:
        """Claim the deque the reader fills for one stream (one consuming role per stream)."""
        if name not in STREAMS:
            raise ValueError(f"unknown board stream {name!r}; streams: {STREAMS}")
        with self._state_lock:
            if name in self._claimed:
                raise BoardError(f"board stream {name!r} on {self.settings.port} already has a reader")
            self._claimed.add(name)
            return self._streams[name]

    def unclaim(self, name: str) -> None:
        with self._state_lock:
            self._claimed.discard(name)

    @property
    def clock(self) -> ClockMap:
        """Board time -> session time, from the current fit (clockfit.py).

        The fit is made against the host's monotonic clock and re-expressed on the session clock each
        time this is read, so a session clock whose origin is reset after the drivers open (as
        rig.runner.clock.RealClock.restart does) is handled. Assumes the session clock runs at the monotonic
        clock's rate, as every real-time clock here does.
        """
        a = time.perf_counter()
        s = self._clock.now()
        b = time.perf_counter()
        m = self._mono_map
        return ClockMap(m.offset + s - (a + b) / 2, m.scale)

    @property
    def connected(self) -> bool:
        return self._serial is not None and self._handshaken

    @property
    def hello(self) -> P.Hello | None:
        return self._hello

    def configure(self, **values: int) -> int:
        """Set CMD_CONFIG fields (kept and re-sent after every handshake); returns the command seq."""
        unknown = set(values) - set(self._config)
        if unknown:
            raise ValueError(f"unknown board config fields {sorted(unknown)}")
        self._config.update(values)
        return self.send(P.PacketType.CMD_CONFIG, self._config_body())

    def _config_body(self) -> tuple:
        c = self._config
        return (c["max_open_ms"], c["encoder_period_us"], c["heartbeat_ms"])

    def send(self, ptype: P.PacketType, body: tuple = (), track: bool = True) -> int:
        """Write one command; never blocks longer than the write timeout. Returns its seq, -1 if not sent."""
        with self._state_lock:
            seq = self._cmd_seq
            self._cmd_seq = (seq + 1) & 0xFFFF
            if track:  # registered before writing: the ack can arrive before write() returns
                self._pending[seq] = _Pending(int(ptype), time.monotonic())
        wire = P.encode_packet(ptype, seq, 0, body)
        with self._write_lock:
            ser = self._serial
            if ser is None:
                err = "the port is closed (board unplugged?)"
            else:
                try:
                    ser.write(wire)
                    err = ""
                except (serial.SerialException, OSError) as e:  # SerialTimeoutException included
                    err = str(e) or type(e).__name__
        with self._state_lock:
            if err:
                self._pending.pop(seq, None)
                self.counters.write_errors += 1
            else:
                self.counters.commands += 1
        if err:
            self._record("write_failed", f"{ptype.name} not sent: {err}")
            return -1
        return seq

    def wait_ack(self, seq: int, timeout: float) -> P.Ack | None:
        """Block until the board acknowledges command `seq` (for self-tests and setup, not the loop)."""
        deadline = time.monotonic() + timeout
        with self._ack_cond:
            while seq not in self._acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._ack_cond.wait(left)
            return self._acks[seq]

    @property
    def faults(self) -> list[Fault]:
        with self._state_lock:
            return list(self._faults)

    def health(self) -> BoardHealth:
        h = self._hello
        with self._state_lock:
            counters = {f.name: getattr(self.counters, f.name) for f in fields(self.counters)}
            faults = tuple(self._faults)
        age = None if self._last_hb is None else time.monotonic() - self._last_hb
        return BoardHealth(
            port=self.settings.port,
            connected=self.connected,
            firmware=f"{h.fw_major}.{h.fw_minor}.{h.fw_patch}" if h else "",
            board_id=h.board_id if h else 0,
            counters=counters,
            faults=faults,
            clock=self.clock,
            clock_fit=self._fit,
            heartbeat_age_s=age,
            lines=self._lines,
        )

    # ---- faults ----------------------------------------------------------------------------------
    def _record(self, kind: str, message: str) -> None:
        with self._state_lock:
            self._faults.append(Fault(self._clock.now(), kind, message))

    def _fault(self, kind: str, message: str) -> None:
        """Record a fault and command the valve closed (at most every 20 ms during bursts)."""
        now = time.monotonic()
        if self._serial is None:
            message += "; valve not commanded (port closed)"
        elif now - self._last_valve_close < 0.02:
            message += "; valve close already commanded"
        else:
            self._last_valve_close = now
            sent = self.send(P.PacketType.CMD_VALVE_CLOSE, track=False) >= 0
            message += "; valve commanded closed" if sent else "; valve close could not be sent"
            with self._state_lock:
                self.counters.valve_closes_on_fault += 1
        self._record(kind, message)

    # ---- the reader thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            ser = self._serial
            if ser is None:
                if self._stop.wait(self.settings.reconnect_interval_s):
                    break
                self._reopen()
                continue
            try:
                data = ser.read(ser.in_waiting or 1)
            except (serial.SerialException, OSError, TypeError) as e:
                # TypeError: pyserial reading a port closed under it (fd None) during shutdown.
                if not self._stop.is_set():
                    self._port_lost(e)
                continue
            if data:
                self._feed(data)
            self._watchdog()

    def _reopen(self) -> None:
        ser = self._open_port()
        if ser is None:
            return
        with self._write_lock:
            self._serial = ser
        with self._state_lock:
            self.counters.reconnects += 1
        self._next_hello = 0.0  # the watchdog asks for a handshake right away

    def _port_lost(self, err: Exception) -> None:
        with self._state_lock:
            self.counters.unplugs += 1
        self._handshaken = False
        self._close_port()
        self._fault("unplugged", f"read from {self.settings.port} failed: {err}")

    def _watchdog(self) -> None:
        now = time.monotonic()
        if not self._handshaken:
            if self._hello is not None and now >= self._next_hello:  # reconnecting
                self._next_hello = now + self.settings.reconnect_interval_s
                self.send(P.PacketType.CMD_HELLO, (P.PROTOCOL_VERSION,), track=False)
            return
        if not self._hb_lost and now - (self._last_hb or now) > self.settings.heartbeat_timeout_s:
            self._hb_lost = True
            with self._state_lock:
                self.counters.heartbeat_losses += 1
            self._fault("heartbeat_lost", f"no heartbeat for {self.settings.heartbeat_timeout_s:.2f} s")
        if self._hb_lost and now >= self._next_hello:
            self._next_hello = now + self.settings.reconnect_interval_s
            self.send(P.PacketType.CMD_HELLO, (P.PROTOCOL_VERSION,), track=False)
        with self._state_lock:
            late = [s for s, p in self._pending.items() if now - p.sent > ACK_TIMEOUT_S]
            for s in late:
                del self._pending[s]
            self.counters.ack_timeouts += len(late)
        if late:
            self._fault("no_ack", f"{len(late)} command(s) not acknowledged within {ACK_TIMEOUT_S} s")

    def _feed(self, data: bytes) -> None:
        self._rx_bytes += len(data)
        c = self._decoder.counts
        before = (c.garbage, c.partial, c.crc)
        packets = self._decoder.feed(data)
        t_host = time.perf_counter()  # receipt time for the clock fit (see `clock`)
        for pkt in packets:
            self._dispatch(pkt, t_host)
        with self._state_lock:
            for name in ("packets", "garbage", "partial", "crc", "garbage_bytes"):
                setattr(self.counters, name, getattr(c, name))
        for kind, n0, label in zip(
            ("garbage", "partial", "crc"), before, ("garbage", "partial packet", "CRC error"), strict=True
        ):
            n = getattr(c, kind) - n0
            if n:
                self._fault(kind, f"{n} {label} frame(s) skipped ({self._decoder.last_error[kind]})")

    def _dispatch(self, pkt: P.Packet, t_host: float) -> None:
        T = P.PacketType
        if pkt.type == T.HELLO:
            self._on_hello(pkt, t_host)
            return
        if not self._handshaken:
            return  # stale traffic from before the handshake
        ep = self._epoch
        if pkt.seq != ep.expect_seq:
            lost = (pkt.seq - ep.expect_seq) & 0xFFFF
            with self._state_lock:
                self.counters.packets_lost += lost
            self._fault("packets_lost", f"{lost} packet(s) missing before seq {pkt.seq}")
        ep.expect_seq = (pkt.seq + 1) & 0xFFFF
        b = pkt.body
        if pkt.type == T.HEARTBEAT:
            t = self._board_seconds(ep.unwrap.anchor(b.rollovers, pkt.t_us))
        else:
            t = self._board_seconds(ep.unwrap.update(pkt.t_us))
        self._last_rx = time.monotonic()
        match pkt.type:
            case T.HEARTBEAT:
                self._on_heartbeat(b, t, t_host)
            case T.ENCODER:
                delta = P.wrap_delta_i32(b.total, ep.enc_total)
                ep.enc_total = b.total
                self._push("encoder", (t, delta))
            case T.LICK:
                self._count_gap("lick", P.wrap_delta_u32(b.count, ep.lick_count))
                ep.lick_count = b.count
                self._push("lick", (t, bool(b.onset)))
            case T.FRAME:
                self._count_gap("frame", P.wrap_delta_u32(b.count, ep.frame_count))
                ep.frame_count = b.count
                self._push("frame", t)
            case T.SYNC:
                self._count_gap("sync", P.wrap_delta_u32(b.count, ep.sync_count))
                ep.sync_count = b.count
                self._push("sync", t)
            case T.VALVE:
                self._push("valve", (t, bool(b.open), P.ValveReason(b.reason)))
            case T.ACK:
                self._on_ack(b)
            case T.ERROR:
                with self._state_lock:
                    self.counters.device_errors += 1
                self._fault("device_error", f"board reports {_name(P.ErrorCode, b.code)} (detail {b.detail})")
            case _:
                self._fault("garbage", f"unexpected {pkt.type.name} packet from the board")

    def _push(self, stream: str, item: object) -> None:
        q = self._streams[stream]
        q.append(item)
        if len(q) > UNCLAIMED_MAX and stream not in self._claimed:
            q.popleft()

    def _count_gap(self, what: str, step: int) -> None:
        if step == 1:
            return
        if step == 0 or step > 1 << 31:
            self._fault("counter_error", f"{what} counter did not advance (step {step - (step >> 31 << 32)})")
            return
        with self._state_lock:
            self.counters.events_lost += step - 1
        self._fault("events_lost", f"{what} counter stepped by {step}")

    def _board_seconds(self, us: int) -> float:
        self._epoch.last_us = us
        return (self._epoch.boot_offset_us + us) / 1e6

    def _on_heartbeat(self, b: P.Heartbeat, t: float, t_host: float) -> None:
        self._last_hb = time.monotonic()
        self._lines = b.lines
        if self._hb_lost:
            self._hb_lost = False
        if b.tx_dropped > self.counters.device_tx_dropped:
            n = b.tx_dropped - self.counters.device_tx_dropped
            with self._state_lock:
                self.counters.device_tx_dropped = b.tx_dropped
            self._fault("device_tx_dropped", f"the board dropped {n} packet(s): link too slow")
        self._fitter.add(t, t_host)
        self._fit = self._fitter.fit()
        if self._fit is not None:
            self._mono_map = self._fit.clock

    def _on_ack(self, a: P.Ack) -> None:
        with self._ack_cond:
            self._pending.pop(a.cmd_seq, None)
            self._acks[a.cmd_seq] = a
            if len(self._acks) > 512:
                self._acks.pop(next(iter(self._acks)))
            self.counters.acks += 1
            bad = a.status not in (P.AckStatus.OK, P.AckStatus.CLAMPED)
            self.counters.nacks += bad
            self._ack_cond.notify_all()
        cmd = _name(P.PacketType, a.cmd_type)
        if bad:
            self._fault("command_rejected", f"{cmd} rejected: {_name(P.AckStatus, a.status)}")
        elif a.status == P.AckStatus.CLAMPED:
            self._record("clamped", f"{cmd} clamped by the board to {a.value} ms")

    def _on_hello(self, pkt: P.Packet, t_host: float) -> None:
        h: P.Hello = pkt.body
        if h.protocol != P.PROTOCOL_VERSION:
            self._hello_error = (
                f"board speaks protocol v{h.protocol}, this driver v{P.PROTOCOL_VERSION}; "
                "flash the firmware from drivers/firmware/corridor_board"
            )
            self._hello_event.set()
            return
        first = self._hello is None
        ep = self._epoch
        dev_us = h.rollovers * P.U32 + pkt.t_us
        new_boot = not first and (
            h.cause == P.ResetCause.BOOT or h.boot_id != self._hello.boot_id or dev_us < ep.last_us
        )
        if new_boot:
            with self._state_lock:
                self.counters.resets += 1
            # Keep board time monotonic across the reboot: continue from the current map's estimate.
            old = self._mono_map
            est_us = round((t_host - old.offset) / old.scale * 1e6)
            last = ep.boot_offset_us + ep.last_us
            self._epoch = ep = _Epoch(boot_offset_us=max(est_us, last + 1) - dev_us)
            self._fitter.reset()
        elif not first:
            # Same boot (e.g. a handshake after a heartbeat gap): counts the packets missed are conserved.
            t_prev = (ep.boot_offset_us + dev_us) / 1e6
            missed = P.wrap_delta_i32(h.encoder_total, ep.enc_total)
            if missed:
                self._push("encoder", (t_prev, missed))
            gaps = sum(
                max(P.wrap_delta_i32(new, old), 0)
                for new, old in ((h.lick_count, ep.lick_count), (h.frame_count, ep.frame_count),
                                 (h.sync_count, ep.sync_count))
            )  # fmt: skip
            if gaps:
                with self._state_lock:
                    self.counters.events_lost += gaps
                self._fault("events_lost", f"{gaps} lick/frame/sync event(s) missed before the handshake")
        ep.unwrap.anchor(h.rollovers, pkt.t_us)
        t = self._board_seconds(dev_us)
        ep.enc_total, ep.lick_count, ep.frame_count, ep.sync_count = (
            h.encoder_total, h.lick_count, h.frame_count, h.sync_count,
        )  # fmt: skip
        ep.expect_seq = (pkt.seq + 1) & 0xFFFF
        if first or new_boot:
            self._fitter.add(t, t_host)
            self._fit = self._fitter.fit()
            if first and self._fit is not None:
                self._mono_map = self._fit.clock
        self._hello = h
        was_handshaken, self._handshaken = self._handshaken, True
        if not was_handshaken or new_boot:
            # Only heartbeats end a heartbeat loss; a fresh link starts its heartbeat timer here.
            self._hb_lost = False
            self._last_hb = time.monotonic()
        with self._state_lock:
            self.counters.handshakes += 1
        if new_boot:
            self._fault("device_reset", f"board rebooted (new HELLO, sequence restarted at {pkt.seq})")
        if first or new_boot or not was_handshaken:
            if any(self._config.values()):
                self.send(P.PacketType.CMD_CONFIG, self._config_body())
        self._hello_event.set()


def _name(enum: type, value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return f"code {value}"
