"""A software corridor board: speaks docs/serial-protocol.md (v2) on a real pseudo-terminal or socket.

The emulator plays the firmware's part: it owns the pty master (or a TCP socket on 127.0.0.1 that the
driver opens as `socket://...`, for machines without ptys, e.g. Windows), runs its own microsecond clock
in a 1 kHz loop, streams encoder, lick, frame-clock and heartbeat packets, obeys commands like the
firmware (valve pulses extended as a union and never past max_open_ms from the opening; a flush ends as
a max-open cut), and can inject the faults and hostile packets the driver must survive. It is the fast
test double; the firmware itself is judged on simavr (hil/, tests/firmware/). Tests drive it in a thread;
`main()` runs it standalone and prints the device path.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from drivers.serial_board import protocol as P


@dataclass(frozen=True)
class EmulatorConfig:
    board_id: int = 0xC0B0A4D
    protocol: int = P.PROTOCOL_VERSION
    firmware: tuple[int, int, int] = (1, 0, 0)
    max_open_ms: int = 1000
    hard_max_open_ms: int = 4000  # the firmware's limit (Timer1 at its slowest tick)
    encoder_period_us: int = 1000
    heartbeat_ms: int = 100
    frame_rate_hz: float = 0.0
    speed_counts_s: float = 0.0
    lick_rate_hz: float = 0.0
    lick_contact_ms: float = 40.0
    start_us: int = 0  # device clock at the first boot; near 2**32 exercises the rollover (reboots start at 0)
    link: str | None = None  # stable symlink to the current pty, like /dev/serial/by-id/...
    transport: Literal["pty", "socket"] = "pty"  # socket: 127.0.0.1, path socket://127.0.0.1:PORT
    seed: int = 0
    tick_s: float = 0.001
    tx_buffer_limit: int = 1 << 20  # bytes held while the host is not reading; more are dropped
    record: bool = True  # keep every emitted event for tests (off for long standalone runs)


@dataclass
class EmulatorLog:
    """What the emulated board did, as the tests' ground truth (device microseconds, 64-bit)."""

    boots: int = 0
    encoder_total: int = 0  # since the current boot
    encoder_sent_total: int = 0  # across boots: counts the host was told about
    licks: list[tuple[int, bool]] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    syncs: list[int] = field(default_factory=list)
    valve: list[tuple[int, bool, int]] = field(default_factory=list)  # (t_us, open, ValveReason or -1: reboot)
    acks: list[P.Ack] = field(default_factory=list)
    cues: list[tuple[int, int, int]] = field(default_factory=list)
    commands: int = 0
    packets: int = 0
    tx_dropped: int = 0
    rx_errors: int = 0
    injected: dict[str, int] = field(default_factory=dict)


class BoardEmulator:
    """Owns a pty pair and a thread; `start()` returns the device path a driver opens."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self._actions: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._log = EmulatorLog()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master: int | None = None
        self._host_present = False  # a host has the pty open (reading the master does not fail)
        self._slave_name = ""
        self._rng = random.Random(self.config.seed)
        self._decoder = P.FrameDecoder()
        self._out = bytearray()
        self._hb_paused_until = 0.0
        self._seq = 0  # the next packet's sequence number (restarts at every boot)
        self.boots_started = 0
        self._pending: list[tuple[int, P.PacketType, tuple]] = []
        self._sent: deque[bytes] = deque(maxlen=256)  # wire bytes of the last packets, for replays
        self._start_us = self.config.start_us
        self._edge_setting = int(P.FrameEdge.FALLING)
        self._debounce_us = 500
        self._listener: socket.socket | None = None
        self._client: socket.socket | None = None
        self._port = 0
        # The world outside the board (ball, imaging) keeps going when the board reboots.
        self._speed = self.config.speed_counts_s
        self._frame_period = int(round(1e6 / self.config.frame_rate_hz)) if self.config.frame_rate_hz > 0 else 0

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> str:
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        self._plug()
        self._boot(send_hello=True)
        self._thread = threading.Thread(target=self._run, name="board-emulator", daemon=True)
        self._thread.start()
        return self.path

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def path(self) -> str:
        if self.config.transport == "socket":
            return f"socket://127.0.0.1:{self._port}"
        return self.config.link or self._slave_name

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._unplug_now()

    def __enter__(self) -> BoardEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def snapshot(self) -> EmulatorLog:
        """A copy of the log, safe to read while the emulator runs."""
        with self._lock:
            log = self._log
            return EmulatorLog(
                log.boots, log.encoder_total, log.encoder_sent_total, list(log.licks), list(log.frames),
                list(log.syncs), list(log.valve), list(log.acks), list(log.cues), log.commands, log.packets,
                log.tx_dropped, log.rx_errors, dict(log.injected),
            )  # fmt: skip

    def monotonic_of(self, t_us: int) -> float:
        """time.monotonic() at which the current boot's clock read t_us (64-bit): for latency benchmarks."""
        return self._boot_ns / 1e9 + (t_us - self._start_us) / 1e6

    def sync(self, timeout: float = 2.0) -> None:
        """Wait until every action queued so far has run in the emulator thread."""
        done = threading.Event()
        self._actions.put(done.set)
        if not done.wait(timeout):
            raise TimeoutError("board emulator thread did not answer")

    # ---- stimuli (thread-safe: queued to the emulator thread) --------------------------------------
    def add_counts(self, n: int) -> None:
        self._actions.put(lambda: self._add_counts(n))

    def set_speed(self, counts_s: float) -> None:
        self._actions.put(lambda: setattr(self, "_speed", counts_s))

    def lick(self, onset: bool) -> None:
        self._actions.put(lambda: self._lick_edge(onset))

    def frame_edges(self, n: int = 1) -> None:
        def act() -> None:
            for _ in range(n):
                self._frame_edge(self._now())

        self._actions.put(act)

    def set_frame_rate(self, hz: float) -> None:
        self._actions.put(lambda: self._set_frame_rate(hz))

    # ---- faults ----------------------------------------------------------------------------------
    def inject_garbage(self, nbytes: int = 40) -> None:
        self._actions.put(lambda: self._inject("garbage", bytes(self._rng.randrange(256) for _ in range(nbytes))))

    def inject_partial(self) -> None:
        """The first half of a heartbeat, without its end: the next packet's delimiter cuts it off."""

        def act() -> None:
            wire = self._heartbeat_bytes()
            self._inject("partial", wire[: len(wire) // 2])

        self._actions.put(act)

    def inject_crc_error(self) -> None:
        """A heartbeat whose CRC is wrong (it takes no sequence number: no real data is lost)."""

        def act() -> None:
            raw = bytearray(P.cobs_decode(self._heartbeat_bytes()[1:-1]))
            raw[-1] ^= 0x5A
            self._inject("crc", b"\x00" + P.cobs_encode(bytes(raw)) + b"\x00")

        self._actions.put(act)

    def reset(self) -> None:
        """The board reboots: valve closed, counters and sequence numbers restart, a new HELLO."""
        def act() -> None:
            self._count("reset")
            self._boot(send_hello=True)

        self._actions.put(act)

    def pause_heartbeat(self, seconds: float) -> None:
        def act() -> None:
            self._count("heartbeat_pause")
            self._pause_hb(seconds)

        self._actions.put(act)

    def unplug(self) -> None:
        """The USB cable is pulled: the pty disappears and the board loses power."""
        def act() -> None:
            self._count("unplug")
            self._unplug_now()

        self._actions.put(act)

    def replug(self) -> None:
        """Cable back in: a new pty (the link follows it) and a freshly booted board."""
        def act() -> None:
            self._plug()
            self._boot(send_hello=True)

        self._actions.put(act)

    # ---- hostile input (fuzz tests) ----------------------------------------------------------------
    def inject_raw(self, data: bytes) -> None:
        """Arbitrary bytes on the line, between two packets."""
        self._actions.put(lambda: self._inject("raw", bytes(data)))

    def inject_packet(self, ptype: int, payload: bytes, seq_ahead: int = 0, t_offset_us: int = 0,
                      consume_seq: bool = False) -> None:
        """A packet with a valid CRC around any type byte and payload: seq = the next genuine seq plus
        `seq_ahead` (mod 2**16), t_us = the board clock now plus `t_offset_us` (mod 2**32).
        `consume_seq`: the genuine stream skips that number, so no real packet is displaced."""

        def act() -> None:
            self._flush_pending()
            seq = (self._seq + seq_ahead) & 0xFFFF
            self._inject("packet", P.encode_raw(ptype, seq, (self._now() + t_offset_us) % P.U32, payload))
            if consume_seq:
                self._seq = (self._seq + 1) & 0xFFFF

        self._actions.put(act)

    def replay(self, count: int = 1, back: int = 0) -> None:
        """Re-send, verbatim, `count` packets that were sent `back` packets ago (a stuck or looping link)."""

        def act() -> None:
            self._flush_pending()
            sent = list(self._sent)
            end = len(sent) - back
            self._inject("replay", b"".join(sent[max(end - count, 0) : max(end, 0)]))

        self._actions.put(act)

    def bad_rollover_heartbeat(self, wraps: int) -> None:
        """A heartbeat whose rollover count is off by `wraps` (it takes the next seq: nothing is displaced)."""

        def act() -> None:
            self._flush_pending()
            now = self._now()
            body = self._heartbeat_body(now)
            body = ((body[0] + wraps) & 0xFFFF, *body[1:])
            self._inject("bad_rollover", P.encode_packet(P.PacketType.HEARTBEAT, self._seq, now, body))
            self._seq = (self._seq + 1) & 0xFFFF

        self._actions.put(act)

    # ---- the device ------------------------------------------------------------------------------
    def _boot(self, send_hello: bool) -> None:
        c = self.config
        if getattr(self, "_valve_open", False):
            with self._lock:  # power loss: the valve line drops with no packet to say so
                self._log.valve.append((self._now(), False, -1))
        if self.boots_started:
            self._start_us = 0  # a real board's clock restarts at zero
        self.boots_started += 1
        self._boot_ns = time.monotonic_ns()
        self._boot_id = self._rng.randrange(1 << 16)
        self._seq = 0
        self._max_open_ms = min(c.max_open_ms, c.hard_max_open_ms)
        self._edge_setting = int(P.FrameEdge.FALLING)
        self._debounce_us = 500
        self._valve_opened_at = 0
        self._enc_period = c.encoder_period_us
        self._hb_period = c.heartbeat_ms * 1000
        self._enc_frac = 0.0
        self._enc_total = 0
        self._enc_sent = 0
        self._lick_count = self._frame_count = self._sync_count = 0
        self._licking = False
        self._valve_open = False
        self._valve_close_at = 0
        self._valve_pulse = False
        self._sync_range: tuple[int, int, int] | None = None
        self._pending = []
        now = self._now()
        self._last_tick = now
        self._next_enc = now + self._enc_period
        self._next_hb = now
        self._next_frame = now + self._frame_period
        self._next_lick = self._draw_lick(now)
        self._next_sync = 0
        with self._lock:
            self._log.boots += 1
            self._log.encoder_total = 0
        if send_hello:
            self._emit(now, P.PacketType.HELLO, self._hello_body(P.ResetCause.BOOT, now))

    def _now(self) -> int:
        return self._start_us + (time.monotonic_ns() - self._boot_ns) // 1000

    def _hello_body(self, cause: P.ResetCause, now: int) -> tuple:
        c = self.config
        return (
            c.protocol, *c.firmware, c.board_id, self._max_open_ms, c.hard_max_open_ms, cause,
            _i32(self._enc_total), self._lick_count, self._frame_count, self._sync_count, (now >> 32) & 0xFFFF,
            self._boot_id, int(P.Mcu.OTHER), self._edge_setting, self._debounce_us, min(self._enc_period, 0xFFFF),
        )  # fmt: skip

    def _heartbeat_body(self, now: int) -> tuple:
        with self._lock:
            rx_errors = self._log.rx_errors
        lines = (P.LINE_VALVE if self._valve_open else 0) | (P.LINE_LICK if self._licking else 0)
        # Like the firmware, the emulator never drops an event; bytes written while no host listens go
        # nowhere (USB CDC, or the USB-serial bridge of a UART board), which no board can count.
        return ((now >> 32) & 0xFFFF, lines, 0, 0, rx_errors & 0xFFFF, 0, 0)

    def _heartbeat_bytes(self) -> bytes:
        """A heartbeat reusing the next sequence number: injected copies take none of their own."""
        now = self._now()
        return P.encode_packet(P.PacketType.HEARTBEAT, self._seq, now, self._heartbeat_body(now))

    def _emit(self, t_us: int, ptype: P.PacketType, body: tuple) -> None:
        self._pending.append((t_us, ptype, body))

    def _flush_pending(self) -> None:
        # Packets go out in device-time order (stable: same-time packets keep their order), each with
        # the next sequence number.
        for t_us, ptype, body in sorted(self._pending, key=lambda e: e[0]):
            wire = P.encode_packet(ptype, self._seq, t_us, body)
            self._sent.append(wire)
            self._write(wire)
            self._seq = (self._seq + 1) & 0xFFFF
            with self._lock:
                self._log.packets += 1
        self._pending = []

    def _write(self, data: bytes) -> None:
        if not self._plugged() or not self._host_present:
            return  # like USB CDC firmware: nobody has the port open, the bytes go nowhere
        if len(self._out) + len(data) > self.config.tx_buffer_limit:
            with self._lock:
                self._log.tx_dropped += 1
            return
        self._out += data

    def _plugged(self) -> bool:
        return self._master is not None or self._listener is not None

    def _drain_out(self) -> None:
        if not self._out:
            return
        try:
            if self._master is not None:
                n = os.write(self._master, self._out)
            elif self._client is not None:
                n = self._client.send(self._out)
            else:
                return
        except BlockingIOError:
            return
        except OSError:
            self._out.clear()
            return
        del self._out[:n]

    def _run(self) -> None:
        tick = self.config.tick_s
        while not self._stop.is_set():
            while True:
                try:
                    self._actions.get_nowait()()
                except queue.Empty:
                    break
            if self._plugged():
                # Inputs first, then commands: a HELLO's counters then include every event sent before it.
                now = self._now()
                self._step(now)
                self._read_commands(now)
                self._flush_pending()
                self._drain_out()
            time.sleep(tick)

    def _step(self, now: int) -> None:
        if self._valve_open and now >= self._valve_close_at:
            reason = P.ValveReason.PULSE_DONE if self._valve_pulse else P.ValveReason.MAX_OPEN
            self._set_valve(False, self._valve_close_at, reason)
        self._enc_frac += self._speed * (now - self._last_tick) / 1e6
        whole = int(self._enc_frac)
        if whole:
            self._enc_frac -= whole
            self._add_counts(whole)
        self._last_tick = now
        if now >= self._next_enc:
            if self._enc_total != self._enc_sent:
                self._send_encoder(now)
            self._next_enc = now + self._enc_period
        while self._frame_period and self._next_frame <= now:
            self._frame_edge(self._next_frame)
            self._next_frame += self._frame_period
        while self._next_lick <= now:
            onset = not self._licking
            self._lick_edge(onset, self._next_lick)
            gap = int(self.config.lick_contact_ms * 1000) if onset else 0
            self._next_lick = self._next_lick + gap if onset else self._draw_lick(self._next_lick)
        while self._sync_range and self._next_sync <= now:
            self._sync_pulse(self._next_sync)
            lo, hi, _ = self._sync_range
            self._next_sync += self._rng.randint(lo, hi) * 1000
        if now >= self._next_hb:
            if time.monotonic() >= self._hb_paused_until:
                self._emit(now, P.PacketType.HEARTBEAT, self._heartbeat_body(now))
            self._next_hb = now + self._hb_period

    def _draw_lick(self, now: int) -> int:
        rate = self.config.lick_rate_hz
        return now + int(self._rng.expovariate(rate) * 1e6) if rate > 0 else 1 << 62

    def _set_frame_rate(self, hz: float) -> None:
        self._frame_period = int(round(1e6 / hz)) if hz > 0 else 0
        self._next_frame = self._now() + self._frame_period

    def _add_counts(self, n: int) -> None:
        self._enc_total += n
        with self._lock:
            self._log.encoder_total = self._enc_total

    def _send_encoder(self, now: int) -> None:
        with self._lock:
            self._log.encoder_sent_total += self._enc_total - self._enc_sent
        self._enc_sent = self._enc_total
        self._emit(now, P.PacketType.ENCODER, (_i32(self._enc_total),))

    def _lick_edge(self, onset: bool, t: int | None = None) -> None:
        t = self._now() if t is None else t
        self._licking = onset
        self._lick_count += 1
        with self._lock:
            if self.config.record:
                self._log.licks.append((t, onset))
        self._emit(t, P.PacketType.LICK, (int(onset), self._lick_count & 0xFFFFFFFF))

    def _frame_edge(self, t: int) -> None:
        self._frame_count += 1
        with self._lock:
            if self.config.record:
                self._log.frames.append(t)
        self._emit(t, P.PacketType.FRAME, (self._frame_count & 0xFFFFFFFF,))

    def _sync_pulse(self, t: int) -> None:
        self._sync_count += 1
        with self._lock:
            if self.config.record:
                self._log.syncs.append(t)
        self._emit(t, P.PacketType.SYNC, (self._sync_count & 0xFFFFFFFF,))

    def _open_for(self, now: int, dur_us: int) -> tuple[int, bool]:
        """The firmware's rule: open (or extend: the later close wins), never past max_open_ms after the
        opening began. Returns (granted us from now, clamped)."""
        limit = self._max_open_ms * 1000
        if not self._valve_open:
            clamped = dur_us > limit
            target = now + min(dur_us, limit)
            self._valve_opened_at = now
            self._valve_close_at, self._valve_pulse = target, not clamped
            self._set_valve(True, now, P.ValveReason.COMMAND)
            return target - now, clamped
        cap = self._valve_opened_at + limit
        want = now + dur_us
        clamped = want > cap
        if min(want, cap) > self._valve_close_at:
            self._valve_close_at, self._valve_pulse = min(want, cap), not clamped
        return max(self._valve_close_at - now, 0), clamped

    def _set_valve(self, is_open: bool, t: int, reason: P.ValveReason) -> None:
        self._valve_open = is_open
        with self._lock:
            self._log.valve.append((t, is_open, int(reason)))
        self._emit(t, P.PacketType.VALVE, (int(is_open), int(reason)))

    def _pause_hb(self, seconds: float) -> None:
        self._hb_paused_until = time.monotonic() + seconds

    def _count(self, kind: str) -> None:
        with self._lock:
            self._log.injected[kind] = self._log.injected.get(kind, 0) + 1

    def _inject(self, kind: str, data: bytes) -> None:
        self._count(kind)
        self._flush_pending()
        self._write(data)

    # ---- commands from the host --------------------------------------------------------------------
    def _read_commands(self, now: int) -> None:
        if self._listener is not None:
            got = self._socket_read()
            self._host_present = got is not None
            if not got:
                return
            data = got
        else:
            assert self._master is not None
            try:
                data = os.read(self._master, 4096)
            except (BlockingIOError, InterruptedError):
                self._host_present = True
                return
            except OSError:
                self._host_present = False  # EIO: no process has the pty's device side open
                return
            self._host_present = True
        c = self._decoder.counts
        before = (c.garbage + c.partial + c.invalid, c.crc)
        for pkt in self._decoder.feed(data):
            self._command(pkt, now)
        for code, n in (
            (P.ErrorCode.BAD_FRAME, c.garbage + c.partial + c.invalid - before[0]),
            (P.ErrorCode.BAD_CRC, c.crc - before[1]),
        ):
            if n:
                with self._lock:
                    self._log.rx_errors += n
                self._emit(now, P.PacketType.ERROR, (code, n & 0xFFFF))

    def _command(self, pkt: P.Packet, now: int) -> None:
        T = P.PacketType
        status, value = P.AckStatus.OK, 0
        with self._lock:
            self._log.commands += 1
        b = pkt.body
        match pkt.type, b:
            case T.CMD_HELLO, _:
                self._emit(now, T.HELLO, self._hello_body(P.ResetCause.REQUESTED, now))
            case T.CMD_VALVE_PULSE, P.CmdValvePulse(duration_us=dur_us):
                if dur_us > 0:
                    granted, clamped = self._open_for(now, dur_us)
                    status = P.AckStatus.CLAMPED if clamped else P.AckStatus.OK
                    value = min(granted // 1000, 0xFFFF)
            case T.CMD_VALVE_OPEN, _:
                granted, _ = self._open_for(now, self._max_open_ms * 1000)
                self._valve_pulse = False  # a flush always ends as a max-open cut
                value = min(granted // 1000, 0xFFFF)
            case T.CMD_VALVE_CLOSE, _:
                if self._valve_open:
                    self._set_valve(False, now, P.ValveReason.COMMAND)
            case T.CMD_CUE, P.CmdCue(duration_ms=ms, frequency_hz=hz):
                if ms == 0 or hz < 20:
                    status = P.AckStatus.BAD_ARGS
                else:
                    with self._lock:
                        self._log.cues.append((now, ms, hz))
            case T.CMD_SYNC_PULSE, P.CmdSyncPulse(width_ms=width):
                if 0 < width <= 1000:
                    self._sync_pulse(now)
                else:
                    status = P.AckStatus.BAD_ARGS
            case T.CMD_SYNC_RANDOM, P.CmdSyncRandom(min_interval_ms=lo, max_interval_ms=hi, width_ms=width):
                if lo == 0:
                    self._sync_range = None
                elif hi < lo or width == 0 or width >= lo:
                    status = P.AckStatus.BAD_ARGS
                else:
                    self._sync_range = (lo, hi, width)
                    self._next_sync = now + self._rng.randint(lo, hi) * 1000
            case T.CMD_CONFIG, P.CmdConfig() as c:
                value = self._max_open_ms
                if c.frame_edge not in (int(P.FrameEdge.FALLING), int(P.FrameEdge.RISING), int(P.FrameEdge.KEEP)):
                    status = P.AckStatus.BAD_ARGS
                else:
                    if c.max_open_ms:
                        self._max_open_ms = min(c.max_open_ms, self.config.hard_max_open_ms)
                        if self._max_open_ms < c.max_open_ms:
                            status = P.AckStatus.CLAMPED
                        limit_at = self._valve_opened_at + self._max_open_ms * 1000
                        if self._valve_open and self._valve_close_at > limit_at:
                            self._valve_close_at, self._valve_pulse = max(limit_at, now), False
                    if c.encoder_period_us:
                        self._enc_period = max(c.encoder_period_us, 1000)
                    if c.heartbeat_ms:
                        self._hb_period = min(max(c.heartbeat_ms, 20), 1000) * 1000
                    if c.frame_edge != P.FrameEdge.KEEP:
                        self._edge_setting = int(c.frame_edge)
                    if c.lick_debounce_us:
                        self._debounce_us = min(max(c.lick_debounce_us, 50), 20000)
                    value = self._max_open_ms
            case _:
                status = P.AckStatus.UNKNOWN
        ack = P.Ack(pkt.seq, int(pkt.type), int(status), value)
        with self._lock:
            self._log.acks.append(ack)
        self._emit(now, T.ACK, tuple(ack))

    # ---- the pty or socket ---------------------------------------------------------------------------
    def _plug(self) -> None:
        if self.config.transport == "socket":
            self._plug_socket()
            return
        import tty  # POSIX only, like os.openpty: the socket transport needs neither

        master, slave = os.openpty()
        tty.setraw(slave)  # bytes pass untouched: no echo, no CR/LF translation
        self._slave_name = os.ttyname(slave)
        # Not kept open: reading the master then fails (EIO) exactly while no host has the port open.
        os.close(slave)
        os.set_blocking(master, False)
        self._master = master
        self._host_present = False
        self._out.clear()
        link = self.config.link
        if link:
            tmp = f"{link}.tmp{os.getpid()}"
            os.symlink(self._slave_name, tmp)
            os.replace(tmp, link)

    def _plug_socket(self) -> None:
        # The same port across replugs, like a device path that comes back.
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self._port))
        ls.listen(1)
        ls.setblocking(False)
        self._port = ls.getsockname()[1]
        self._listener = ls
        self._host_present = False
        self._out.clear()

    def _socket_read(self) -> bytes | None:
        """Bytes from the connected host (b'' if none yet); None when no host is connected."""
        assert self._listener is not None
        if self._client is None:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return None
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._client = client
            self._out.clear()  # a new host gets no stale backlog
        try:
            data = self._client.recv(4096)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            data = b""
        if not data:  # the host closed the port
            self._client.close()
            self._client = None
            return None
        return data

    def _unplug_now(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._master is not None:
            os.close(self._master)
        self._master = None
        self._host_present = False
        self._out.clear()
        if self.config.link and os.path.islink(self.config.link):
            os.unlink(self.config.link)


def _i32(n: int) -> int:
    return ((n + (1 << 31)) % (1 << 32)) - (1 << 31)


def main(argv: list[str] | None = None) -> int:
    """`rig emulate-board`: run an emulated board until interrupted; prints the device path first."""
    ap = argparse.ArgumentParser(prog="rig emulate-board", description=__doc__.splitlines()[0])
    ap.add_argument("--link", help="also expose the device under this stable path (a symlink)")
    ap.add_argument("--transport", choices=("pty", "socket"), default="pty",
                    help="socket: listen on 127.0.0.1 and print a socket:// URL (no pty needed)")
    ap.add_argument("--frame-rate", type=float, default=30.0, help="frame-clock edges per second (0: off)")
    ap.add_argument("--speed", type=float, default=0.0, help="encoder counts per second")
    ap.add_argument("--lick-rate", type=float, default=0.0, help="mean licks per second (Poisson)")
    ap.add_argument("--max-open-ms", type=int, default=1000)
    ap.add_argument("--start-us", type=int, default=0, help="device clock at boot (4294000000: rollover soon)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--garbage-every", type=float, default=0.0, metavar="S", help="inject garbage bytes")
    ap.add_argument("--partial-every", type=float, default=0.0, metavar="S", help="inject partial packets")
    ap.add_argument("--crc-every", type=float, default=0.0, metavar="S", help="inject checksum errors")
    ap.add_argument("--reset-every", type=float, default=0.0, metavar="S", help="reboot the board")
    ap.add_argument("--heartbeat-gap-every", type=float, default=0.0, metavar="S", help="pause heartbeats 1 s")
    ap.add_argument("--unplug-after", type=float, default=0.0, metavar="S", help="close the pty and exit")
    args = ap.parse_args(argv)
    cfg = EmulatorConfig(
        frame_rate_hz=args.frame_rate, speed_counts_s=args.speed, lick_rate_hz=args.lick_rate,
        max_open_ms=args.max_open_ms, start_us=args.start_us, link=args.link, seed=args.seed, record=False,
        transport=args.transport,
    )  # fmt: skip
    emu = BoardEmulator(cfg)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    schedule = [
        (args.garbage_every, emu.inject_garbage), (args.partial_every, emu.inject_partial),
        (args.crc_every, emu.inject_crc_error), (args.reset_every, emu.reset),
        (args.heartbeat_gap_every, lambda: emu.pause_heartbeat(1.0)),
    ]  # fmt: skip
    with emu:
        print(emu.path, flush=True)
        start = time.monotonic()
        due = {i: start + every for i, (every, _) in enumerate(schedule) if every > 0}
        try:
            while not stop.wait(0.05):
                if not emu.alive:
                    print("board emulator thread died (see the traceback above)", file=sys.stderr)
                    return 1
                now = time.monotonic()
                for i, t in due.items():
                    if now >= t:
                        schedule[i][1]()
                        due[i] = t + schedule[i][0]
                if args.unplug_after and now - start >= args.unplug_after:
                    emu.unplug()
                    emu.sync()
                    break
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
