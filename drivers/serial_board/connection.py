"""One open link to a corridor board, shared by every role driver that uses the same port.

The registry builds one driver object per role, but a board has one serial port. `BoardConnection`
therefore keeps an explicit class-level pool keyed by port name with reference counts: the first role's
`open()` opens the port (exclusively) and handshakes, later roles share it, and the last `close()` closes
it. The pool is the only shared state; `BoardConnection.open_ports()` shows it.

A background reader thread owns all reads: it checks every packet (sequence number, time against the
host's elapsed time, closed enums in the decoder) and parses the good ones into per-stream deques that
role `read()` calls drain without blocking. The thread survives any input; if it dies anyway, the next
`read()` notices, records the fault, commands the valve closed and raises `BoardError`.

Faults (faults.py) are recorded once per kind with a count. Only faults that mean the board or the link
is lost (heartbeat timeout, reset, unplug, a dead reader) command the valve closed; recoverable packet
faults (noise, CRC, a lost or replayed packet, a missing ack) are counted and logged, and leave the valve
alone: a reward under way on a busy link is not cut short by line noise.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields
from enum import IntEnum
from typing import Any, ClassVar

import serial
from serial.tools import list_ports

from drivers.base import Clock, ClockMap
from drivers.serial_board import protocol as P
from drivers.serial_board.clockfit import ClockFitter, HeartbeatFit
from drivers.serial_board.faults import Fault, FaultLog

STREAMS = ("encoder", "lick", "frame", "sync", "valve")
UNCLAIMED_MAX = 10_000  # items kept for a stream no role has claimed yet (the rest are dropped)
ACK_TIMEOUT_S = 0.5
SEQ_WINDOW = 2048  # a packet more than this many numbers ahead is not believed (replay or stale)
BACK_SLACK_US = 250_000  # events may be older than the previous packet by their queueing delay
FORWARD_SLACK_US = 1_000_000  # a stamp may run ahead of host-elapsed time by one receipt latency
DRIFT = 1e-3  # board crystal vs host clock, far above any real crystal error
HELLO_SOLICITED_S = 1.5  # a REQUESTED HELLO answers a CMD_HELLO sent at most this long ago
BOOT_HELLO_MAX_US = 5_000_000  # a BOOT HELLO comes straight after setup(): its stamp is small
REBOOT_CONFIRM_S = 1.0  # a BOOT HELLO is believed once a solicited HELLO confirms its boot_id
HELD_MAX = 4096  # packets of an unconfirmed new boot kept until the confirmation
LINK_LOST = frozenset(("heartbeat_lost", "device_reset", "unplugged", "reader_died"))

__all__ = ["BoardConnection", "BoardError", "BoardHealth", "Fault", "LinkSettings", "STREAMS"]


class BoardError(OSError):
    """The board could not be opened, does not speak the protocol, or its link died.

    An OSError, like the serial port's own errors, so a command line that reports I/O errors (rig run)
    prints the message and exits non-zero instead of a traceback.
    """


@dataclass(frozen=True)
class LinkSettings:
    port: str  # a device path, or a pyserial URL (socket://host:port, loop://) where no pty exists
    baudrate: int = 500000
    handshake_timeout_s: float = 3.0
    heartbeat_timeout_s: float = 0.5
    reconnect_interval_s: float = 0.25
    write_timeout_s: float = 0.05


@dataclass
class Counters:
    packets: int = 0
    garbage: int = 0
    partial: int = 0
    crc: int = 0
    invalid: int = 0  # valid CRC, field outside its closed set
    garbage_bytes: int = 0
    skipped_bytes: int = 0  # tails of packets before the first delimiter after (re)opening
    packets_lost: int = 0  # sequence-number gaps
    out_of_sequence: int = 0  # replayed, old or implausibly far-ahead packets, rejected
    bad_time: int = 0  # stamps or rollovers that disagree with the elapsed time, rejected
    unexpected: int = 0  # well-formed packets a board never sends (host commands, unsolicited HELLOs)
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
    device_events_dropped: int = 0  # the board's event queue overflowed (heartbeat counter)
    device_tx_waits: int = 0  # packets that waited for room on the board: the link was saturated
    device_rx_errors: int = 0
    device_enc_errors: int = 0
    device_lick_glitches: int = 0
    reader_errors: int = 0  # exceptions the reader thread survived
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
    clock_fit: HeartbeatFit | None
    heartbeat_age_s: float | None
    lines: int  # last heartbeat's line bits (protocol.LINE_*)
    reader_alive: bool = True
    mcu: str = ""

    @property
    def ok(self) -> bool:
        return self.connected and self.reader_alive and not self.faults


@dataclass
class _Pending:
    ptype: int
    sent: float


@dataclass
class _Epoch:
    """Per-boot state: where the board's counters and clock stood."""

    boot_id: int = -1
    boot_offset_us: int = 0
    enc_total: int = 0
    lick_count: int = 0
    frame_count: int = 0
    sync_count: int = 0
    expect_seq: int = 0
    last_us: int = -1  # last accepted unwrapped device stamp (before the boot offset)
    last_host: float = 0.0  # time.monotonic() when it was accepted
    hb: dict[str, int] = field(default_factory=dict)  # last heartbeat's wrapping counters
    last_boot_hello: tuple[int, int] = (-1, -1)  # (boot_id, seq) of the last BOOT HELLO believed


_HB_COUNTERS = (
    ("events_dropped", "device_events_dropped"), ("tx_waits", "device_tx_waits"),
    ("rx_errors", "device_rx_errors"), ("enc_errors", "device_enc_errors"),
    ("lick_glitches", "device_lick_glitches"),
)  # fmt: skip


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
        self._serial: Any = None  # serial.Serial, or the class pyserial picked for a URL
        self._open_error = ""
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
        self._faults = FaultLog(clock)
        self._fitter = ClockFitter()
        self._fit: HeartbeatFit | None = None
        self._mono_map = ClockMap()  # board time -> host monotonic (perf_counter) seconds
        self._epoch = _Epoch()
        self._hello: P.Hello | None = None
        self._hello_error = ""
        self._handshaken = False
        self._hello_event = threading.Event()
        self._hello_asked: deque[float] = deque(maxlen=64)  # CMD_HELLOs not yet answered (time.monotonic())
        # A BOOT HELLO is a claim that the board restarted; it is believed only when the board, asked,
        # answers with the same boot_id (a replayed or forged one would otherwise reset the epoch while
        # the real stream goes on). Until then the packets of that new boot are held, not lost.
        self._reboot: tuple[P.Packet, float, float] | None = None  # (BOOT HELLO, t_host, since)
        self._held: list[tuple[P.Packet, float]] = []
        self._last_hb: float | None = None
        self._hb_lost = False
        self._next_hello = 0.0
        self._last_valve_close = -1.0
        self._lines = 0
        self._config: dict[str, int] = {
            "max_open_ms": 0, "encoder_period_us": 0, "heartbeat_ms": 0,
            "frame_edge": int(P.FrameEdge.KEEP), "lick_debounce_us": 0,
        }  # fmt: skip
        self._rx_bytes = 0
        self._reader_dead = ""  # why the reader thread stopped, if it died

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
            self._ask_hello()
            if self._hello_event.wait(0.25) or time.monotonic() >= deadline:
                break
        if self._hello_error or not self._handshaken:
            c = self._decoder.counts
            why = self._hello_error or (
                f"no handshake within {s.handshake_timeout_s:.1f} s (received {self._rx_bytes} bytes, "
                f"{c.packets} packets, {c.garbage + c.partial + c.crc + c.invalid} bad frames); check that "
                f"the corridor_board firmware (protocol v{P.PROTOCOL_VERSION}) is flashed and the baud "
                f"rate ({s.baudrate}) matches"
            )
            self._shutdown()
            raise BoardError(f"serial board on {s.port}: {why}")
        # A couple of heartbeats give the clock fit a sound start (the HELLO alone may have queued).
        deadline = time.monotonic() + s.heartbeat_timeout_s
        while len(self._fitter) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)

    def _open_port(self) -> Any:
        s = self.settings
        try:
            # Exclusive: a second session (or any other program) cannot open the board under this one.
            # Windows opens serial ports exclusively anyway; pyserial only implements the flag on POSIX.
            extra = {"exclusive": True} if os.name == "posix" and "://" not in s.port else {}
            ser = serial.serial_for_url(
                s.port, s.baudrate, timeout=0.02, write_timeout=s.write_timeout_s, **extra
            )
            ser.reset_input_buffer()  # bytes queued before we opened are stale
        except (serial.SerialException, OSError, ValueError) as e:
            self._open_error = str(e) or type(e).__name__
            return None
        self._open_error = ""
        self._decoder.resync()
        return ser

    def _shutdown(self) -> None:
        if self._serial is not None and self._handshaken:
            self.send(P.PacketType.CMD_VALVE_CLOSE, track=False)  # leave the rig safe
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._thread = None
        self._close_port()
        self._faults.flush()

    def _close_port(self) -> None:
        with self._write_lock:
            ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except (serial.SerialException, OSError) as e:
                # A vanished device can fail to close; it is gone either way.
                self._faults.report("close_failed", f"closing {self.settings.port}: {e}")

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

    def check_reader(self) -> None:
        """Raise BoardError if the reader thread died (called by every role's read(): within one loop)."""
        t = self._thread
        if t is None or t.is_alive() or self._stop.is_set():
            return
        if not self._reader_dead:
            self._reader_dead = "the reader thread stopped unexpectedly"
        if not self._faults.seen("reader_died"):
            self._fault("reader_died", f"board reader on {self.settings.port} died: {self._reader_dead}")
        raise BoardError(f"serial board on {self.settings.port}: {self._reader_dead}; no more input from it")

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
        return self._serial is not None and self._handshaken and not self._reader_dead

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

    def _config_set(self) -> bool:
        c = self._config
        return any(v for k, v in c.items() if k != "frame_edge") or c["frame_edge"] != P.FrameEdge.KEEP

    def _config_body(self) -> tuple:
        c = self._config
        return (c["max_open_ms"], c["encoder_period_us"], c["heartbeat_ms"], c["frame_edge"], c["lick_debounce_us"])

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
                except (serial.SerialException, OSError, TypeError) as e:  # SerialTimeoutException included
                    err = str(e) or type(e).__name__
        with self._state_lock:
            if err:
                self._pending.pop(seq, None)
                self.counters.write_errors += 1
            else:
                self.counters.commands += 1
        if err:
            self._faults.report("write_failed", f"{ptype.name} not sent: {err}")
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
        """Every fault so far: one append-only list for the connection's lifetime, shared by its roles
        (the runner logs each record once by keeping its place in this very list)."""
        return self._faults.records

    def health(self) -> BoardHealth:
        h = self._hello
        with self._state_lock:
            counters = {f.name: getattr(self.counters, f.name) for f in fields(self.counters)}
        age = None if self._last_hb is None else time.monotonic() - self._last_hb
        t = self._thread
        alive = not self._reader_dead and (t is None or t.is_alive() or self._stop.is_set())
        return BoardHealth(
            port=self.settings.port,
            connected=self.connected,
            firmware=f"{h.fw_major}.{h.fw_minor}.{h.fw_patch}" if h else "",
            board_id=h.board_id if h else 0,
            counters=counters,
            faults=tuple(self._faults.records),
            clock=self.clock,
            clock_fit=self._fit,
            heartbeat_age_s=age,
            lines=self._lines,
            reader_alive=alive,
            mcu=_name(P.Mcu, h.mcu).lower() if h else "",
        )

    # ---- faults ----------------------------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        with self._state_lock:
            setattr(self.counters, name, getattr(self.counters, name) + n)

    def _fault(self, kind: str, message: str) -> None:
        """Record a fault; for a lost board or link, also command the valve closed (at most every 20 ms)."""
        if kind in LINK_LOST:
            now = time.monotonic()
            if self._serial is None:
                message += "; valve not commanded (port closed)"
            elif now - self._last_valve_close < 0.02:
                message += "; valve close already commanded"
            else:
                self._last_valve_close = now
                sent = self.send(P.PacketType.CMD_VALVE_CLOSE, track=False) >= 0
                message += "; valve commanded closed" if sent else "; valve close could not be sent"
                self._count("valve_closes_on_fault")
        self._faults.report(kind, message)

    # ---- the reader thread -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._step()
                except Exception as e:  # noqa: BLE001 - the reader must outlive anything the line sends
                    self._count("reader_errors")
                    self._faults.report("reader_error", f"reader recovered from {type(e).__name__}: {e}")
                    self._decoder.resync()
        except BaseException as e:  # the thread is ending for good: say why, the roles will notice
            self._reader_dead = f"{type(e).__name__}: {e}"
            raise

    def _step(self) -> None:
        ser = self._serial
        if ser is None:
            if not self._stop.wait(self.settings.reconnect_interval_s):
                self._reopen()
            return
        try:
            data = ser.read(ser.in_waiting or 1)
        except (serial.SerialException, OSError, TypeError, AttributeError) as e:
            # TypeError/AttributeError: pyserial reading a port closed under it during shutdown.
            if not self._stop.is_set():
                self._port_lost(e)
            return
        if data:
            self._feed(data)
        self._watchdog()
        self._faults.tick()

    def _reopen(self) -> None:
        ser = self._open_port()
        if ser is None:
            return
        with self._write_lock:
            self._serial = ser
        self._count("reconnects")
        self._next_hello = 0.0  # the watchdog asks for a handshake right away

    def _port_lost(self, err: Exception) -> None:
        self._count("unplugs")
        self._handshaken = False
        self._fault("unplugged", f"read from {self.settings.port} failed: {err}")
        self._close_port()

    def _ask_hello(self) -> None:
        if self.send(P.PacketType.CMD_HELLO, (P.PROTOCOL_VERSION,), track=False) >= 0:
            self._hello_asked.append(time.monotonic())

    def _take_solicitation(self, now: float) -> bool:
        """True (and one fewer outstanding) if a CMD_HELLO of ours is waiting for its HELLO."""
        while self._hello_asked and now - self._hello_asked[0] > HELLO_SOLICITED_S:
            self._hello_asked.popleft()
        if not self._hello_asked:
            return False
        self._hello_asked.popleft()
        return True

    def _watchdog(self) -> None:
        now = time.monotonic()
        if self._reboot is not None and now - self._reboot[2] > REBOOT_CONFIRM_S:
            self._drop_reboot(f"no answer within {REBOOT_CONFIRM_S} s")
        if not self._handshaken:
            if self._hello is not None and now >= self._next_hello:  # reconnecting
                self._next_hello = now + self.settings.reconnect_interval_s
                self._ask_hello()
            return
        if not self._hb_lost and now - (self._last_hb or now) > self.settings.heartbeat_timeout_s:
            self._hb_lost = True
            self._count("heartbeat_losses")
            self._fault("heartbeat_lost", f"no heartbeat for {self.settings.heartbeat_timeout_s:.2f} s")
        if self._hb_lost and now >= self._next_hello:
            self._next_hello = now + self.settings.reconnect_interval_s
            self._ask_hello()
        with self._state_lock:
            late = [s for s, p in self._pending.items() if now - p.sent > ACK_TIMEOUT_S]
            for s in late:
                del self._pending[s]
            self.counters.ack_timeouts += len(late)
        if late:
            self._faults.report("no_ack", f"{len(late)} command(s) not acknowledged within {ACK_TIMEOUT_S} s")

    def _feed(self, data: bytes) -> None:
        self._rx_bytes += len(data)
        c = self._decoder.counts
        before = {k: getattr(c, k) for k in P.ERROR_KINDS}
        packets = self._decoder.feed(data)
        t_host = time.perf_counter()  # receipt time for the clock fit (see `clock`)
        for pkt in packets:
            self._dispatch(pkt, t_host)
        with self._state_lock:
            for name in ("packets", *P.ERROR_KINDS, "garbage_bytes", "skipped_bytes"):
                setattr(self.counters, name, getattr(c, name))
        if not self._handshaken:
            return  # noise from before the handshake (a board already streaming) is not a fault
        for kind in P.ERROR_KINDS:
            n = getattr(c, kind) - before[kind]
            if n:
                self._faults.report(kind, f"{n} {kind} frame(s) skipped ({self._decoder.last_error[kind]})", n)

    def _reject(self, counter: str, kind: str, message: str) -> None:
        self._count(counter)
        if self._handshaken:
            self._faults.report(kind, message)

    def _dispatch(self, pkt: P.Packet, t_host: float) -> None:
        T = P.PacketType
        if pkt.type not in P.BOARD_TYPES:
            self._reject("unexpected", "unexpected", f"{pkt.type.name} received from the board")
            return
        if pkt.type == T.HELLO:
            self._on_hello(pkt, t_host)
            return
        if not self._handshaken:
            return  # traffic from before the handshake
        ep = self._epoch
        ahead = (pkt.seq - ep.expect_seq) & 0xFFFF
        if self._reboot is not None and self._hold(pkt, t_host, ahead):
            return
        if ahead >= SEQ_WINDOW:
            self._reject(
                "out_of_sequence", "out_of_sequence",
                f"{pkt.type.name} seq {pkt.seq} rejected (expected {ep.expect_seq}): replayed, old or corrupt",
            )  # fmt: skip
            return
        dev_us = self._plausible_time(pkt)
        if dev_us is None:
            return
        if ahead:
            self._count("packets_lost", ahead)
            self._faults.report("packets_lost", f"{ahead} packet(s) missing before seq {pkt.seq}", ahead)
        ep.expect_seq = (pkt.seq + 1) & 0xFFFF
        ep.last_us = max(ep.last_us, dev_us)
        ep.last_host = time.monotonic()
        t = (ep.boot_offset_us + dev_us) / 1e6
        match pkt.body:
            case P.Heartbeat() as hb:
                self._on_heartbeat(hb, t, t_host)
            case P.Encoder(total=total):
                delta = P.wrap_delta_i32(total, ep.enc_total)
                ep.enc_total = total
                self._push("encoder", (t, delta))
            case P.Lick(onset=onset, total=total):
                self._count_gap("lick", P.wrap_delta_u32(total, ep.lick_count))
                ep.lick_count = total
                self._push("lick", (t, bool(onset)))
            case P.Frame(total=total):
                self._count_gap("frame", P.wrap_delta_u32(total, ep.frame_count))
                ep.frame_count = total
                self._push("frame", t)
            case P.Sync(total=total):
                self._count_gap("sync", P.wrap_delta_u32(total, ep.sync_count))
                ep.sync_count = total
                self._push("sync", t)
            case P.Valve(open=is_open, reason=reason):
                self._push("valve", (t, bool(is_open), P.ValveReason(reason)))
            case P.Ack() as ack:
                self._on_ack(ack)
            case P.Error(code=code, detail=detail):
                self._count("device_errors")
                self._faults.report("device_error", f"board reports {_name(P.ErrorCode, code)} (detail {detail})")

    def _hold(self, pkt: P.Packet, t_host: float, ahead: int) -> bool:
        """Keep a packet that belongs to the claimed new boot rather than the current one."""
        assert self._reboot is not None
        hello = self._reboot[0]
        if ahead < SEQ_WINDOW or (pkt.seq - hello.seq - 1) & 0xFFFF >= SEQ_WINDOW or len(self._held) >= HELD_MAX:
            return False
        self._held.append((pkt, t_host))
        return True

    def _drop_reboot(self, why: str) -> None:
        if self._reboot is None:
            return
        n = len(self._held)
        self._reboot, self._held = None, []
        self._count("unexpected")
        if n:
            self._count("out_of_sequence", n)
        self._faults.report("unexpected_hello", f"a BOOT HELLO was not confirmed ({why}): ignored with {n} packet(s)")

    def _plausible_time(self, pkt: P.Packet) -> int | None:
        """The packet's unwrapped device time, or None (counted, logged) when it cannot be true.

        A stamp must lie within [previous - queueing slack, previous + host-elapsed + slack]: a packet
        from another epoch (a replay, a corrupt stamp) lands minutes or hours away. A heartbeat's
        rollover count is accepted only when it agrees with that unwrapped value.
        """
        ep = self._epoch
        dev_us = P.unwrap_near(pkt.t_us, ep.last_us)
        elapsed_us = (time.monotonic() - ep.last_host) * 1e6
        delta = dev_us - ep.last_us
        if not -BACK_SLACK_US <= delta <= elapsed_us * (1 + DRIFT) + FORWARD_SLACK_US:
            self._reject(
                "bad_time", "bad_time",
                f"{pkt.type.name} seq {pkt.seq} stamped {delta / 1e6:+.3f} s from the previous packet after "
                f"{elapsed_us / 1e6:.3f} s on the host: rejected",
            )  # fmt: skip
            return None
        if isinstance(pkt.body, P.Heartbeat) and pkt.body.rollovers != (dev_us >> 32) & 0xFFFF:
            self._reject(
                "bad_time", "bad_rollover",
                f"heartbeat seq {pkt.seq} says {pkt.body.rollovers} clock wraps, the elapsed time says "
                f"{(dev_us >> 32) & 0xFFFF}: rejected",
            )  # fmt: skip
            return None
        return dev_us

    def _push(self, stream: str, item: object) -> None:
        q = self._streams[stream]
        q.append(item)
        if len(q) > UNCLAIMED_MAX and stream not in self._claimed:
            q.popleft()

    def _count_gap(self, what: str, step: int) -> None:
        if step == 1:
            return
        if step == 0 or step > 1 << 31:
            self._faults.report("counter_error", f"{what} counter did not advance (step {step - (step >> 31 << 32)})")
            return
        self._count("events_lost", step - 1)
        self._faults.report("events_lost", f"{what} counter stepped by {step}", step - 1)

    def _on_heartbeat(self, b: P.Heartbeat, t: float, t_host: float) -> None:
        self._last_hb = time.monotonic()
        self._lines = b.lines
        self._hb_lost = False
        ep = self._epoch
        for src, name in _HB_COUNTERS:
            value = getattr(b, src)
            old = ep.hb.get(src)
            ep.hb[src] = value
            n = 0 if old is None else (value - old) & 0xFFFF
            if not n:
                continue
            self._count(name, n)
            if src == "events_dropped":
                msg = f"the board's event queue overflowed: {n} event(s) lost"
                self._faults.report("device_events_dropped", msg, n)
            elif src == "enc_errors":
                self._faults.report("encoder_errors", f"{n} quadrature step(s) too fast for the board", n)
            elif src == "rx_errors":
                self._faults.report("device_rx_errors", f"the board received {n} bad frame(s) from the host", n)
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
            self._faults.report("command_rejected", f"{cmd} rejected: {_name(P.AckStatus, a.status)}")
        elif a.status == P.AckStatus.CLAMPED:
            self._faults.report("clamped", f"{cmd} clamped by the board to {a.value} ms")

    # ---- the handshake -------------------------------------------------------------------------------
    def _on_hello(self, pkt: P.Packet, t_host: float) -> None:
        h = pkt.body
        assert isinstance(h, P.Hello)
        if h.protocol != P.PROTOCOL_VERSION:
            if self._handshaken:  # a board that spoke v2 a moment ago: a corrupt or forged packet
                self._reject("unexpected", "unexpected_hello", f"HELLO seq {pkt.seq} claims protocol v{h.protocol}")
                return
            self._hello_error = (
                f"board speaks protocol v{h.protocol}, this driver v{P.PROTOCOL_VERSION}; "
                "flash the firmware from drivers/firmware/corridor_board (see hil/Makefile)"
            )
            self._hello_event.set()
            return
        ep = self._epoch
        dev_us = h.rollovers * P.U32 + pkt.t_us
        now = time.monotonic()
        first = self._hello is None
        if h.cause == P.ResetCause.BOOT:
            fresh = dev_us < BOOT_HELLO_MAX_US and (h.boot_id, pkt.seq) != ep.last_boot_hello
            if not fresh or (not first and h.boot_id == ep.boot_id):
                self._reject("unexpected", "unexpected_hello", f"BOOT HELLO seq {pkt.seq} is a repeat: ignored")
                return
            if first:
                self._apply_hello(pkt, t_host, new_boot=False)
                return
            # A claimed reboot: ask the board; its answer confirms (or not) this boot_id.
            self._drop_reboot("another BOOT HELLO came")
            self._reboot, self._held = (pkt, t_host, now), []
            self._ask_hello()
            return
        if not self._take_solicitation(now):
            self._reject("unexpected", "unexpected_hello", f"HELLO seq {pkt.seq} not asked for: ignored")
            return
        if self._reboot is not None:
            boot_pkt, boot_host, _ = self._reboot
            if isinstance(boot_pkt.body, P.Hello) and boot_pkt.body.boot_id == h.boot_id:
                held, self._reboot, self._held = self._held, None, []
                self._apply_hello(boot_pkt, boot_host, new_boot=True)
                for old, t_old in held:
                    self._dispatch(old, t_old)
                ep = self._epoch
            else:
                self._drop_reboot("the board answered with its old boot_id")
        if first or h.boot_id != ep.boot_id:
            self._apply_hello(pkt, t_host, new_boot=not first)
            return
        # The same boot (a handshake after a heartbeat gap, or our repeated CMD_HELLO): it must come
        # after what we have, in sequence and in time.
        ahead = (pkt.seq - ep.expect_seq) & 0xFFFF
        delta = dev_us - ep.last_us
        elapsed_us = (now - ep.last_host) * 1e6
        if ahead >= SEQ_WINDOW or not -1000 <= delta <= elapsed_us * (1 + DRIFT) + FORWARD_SLACK_US:
            self._reject("out_of_sequence", "out_of_sequence", f"HELLO seq {pkt.seq} is older than the stream: ignored")
            return
        self._apply_hello(pkt, t_host, new_boot=False)

    def _apply_hello(self, pkt: P.Packet, t_host: float, new_boot: bool) -> None:
        """Start (new_boot or the first HELLO) or re-anchor the epoch on a believed HELLO."""
        h = pkt.body
        assert isinstance(h, P.Hello)
        first = self._hello is None
        ep = self._epoch
        dev_us = h.rollovers * P.U32 + pkt.t_us
        now = time.monotonic()
        if new_boot:
            self._count("resets")
            # Keep board time monotonic across the reboot: continue from the current map's estimate.
            old = self._mono_map
            est_us = round((t_host - old.offset) / old.scale * 1e6)
            last = ep.boot_offset_us + ep.last_us
            self._epoch = ep = _Epoch(boot_offset_us=max(est_us, last + 1) - dev_us)
            self._fitter.reset()
        elif not first:
            # Same boot: the counts of packets missed during the gap are conserved.
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
                self._count("events_lost", gaps)
                self._faults.report("events_lost", f"{gaps} lick/frame/sync event(s) missed before the handshake", gaps)
        if h.cause == P.ResetCause.BOOT:
            ep.last_boot_hello = (h.boot_id, pkt.seq)
        ep.boot_id = h.boot_id
        ep.last_us = max(ep.last_us, dev_us)
        ep.last_host = now
        t = (ep.boot_offset_us + dev_us) / 1e6
        ep.enc_total, ep.lick_count, ep.frame_count, ep.sync_count = (
            h.encoder_total, h.lick_count, h.frame_count, h.sync_count,
        )  # fmt: skip
        ep.expect_seq = (pkt.seq + 1) & 0xFFFF
        if first or new_boot:
            ep.hb.clear()
            self._fitter.add(t, t_host)
            self._fit = self._fitter.fit()
            if first and self._fit is not None:
                self._mono_map = self._fit.clock
        self._hello = h
        was_handshaken, self._handshaken = self._handshaken, True
        if not was_handshaken or new_boot:
            # Only heartbeats end a heartbeat loss; a fresh link starts its heartbeat timer here.
            self._hb_lost = False
            self._last_hb = now
        self._count("handshakes")
        if new_boot:
            self._fault("device_reset", f"board rebooted (new HELLO, sequence restarted at {pkt.seq})")
        if (first or new_boot or not was_handshaken) and self._config_set():
            self.send(P.PacketType.CMD_CONFIG, self._config_body())
        self._hello_event.set()


def _name(enum: type[IntEnum], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return f"code {value}"
