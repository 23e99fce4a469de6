"""Role drivers for the corridor serial board: ball, lick, valve, cue, frame clock (and sync output).

Each role is built by the registry as `cls(params, context)`; `open()` joins the shared
`BoardConnection` for its port (see connection.py) and `close()` leaves it. Every role's timestamps are
board time in seconds (the board's microsecond clock, unwrapped, continued across reboots); `clock`
maps them to the session timeline (clockfit.py). `read()` calls drain the reader thread's deques and
never block. `health()` returns the link's counters and fault list, the same object for every role.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from drivers.base import BallSamples, CheckResult, ClockMap, LickEdge
from drivers.registry import DriverContext, register
from drivers.serial_board import protocol as P
from drivers.serial_board.connection import BoardConnection, BoardError, BoardHealth, Fault, LinkSettings


class LinkParams(BaseModel):
    """Settings of the serial link; every role on one port must give the same values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: str = Field(
        min_length=1,
        description="serial device (/dev/ttyACM0, /dev/serial/by-id/..., COM3) or a pyserial URL (socket://host:port)",
    )
    baudrate: int = Field(500000, gt=0, description="the firmware's SERIAL_BAUD (500000 unless rebuilt)")
    handshake_timeout_s: float = Field(3.0, gt=0, le=60, description="Arduinos reboot on open: allow ~2 s")
    heartbeat_timeout_s: float = Field(0.5, gt=0, le=10, description="heartbeat silence that counts as a fault")

    def link(self) -> LinkSettings:
        return LinkSettings(self.port, self.baudrate, self.handshake_timeout_s, self.heartbeat_timeout_s)


class _BoardRole:
    """Shared lifecycle of the role drivers: join the port's connection on open, leave it on close."""

    Params = LinkParams
    _stream: str | None = None  # the board stream this role reads, if any

    def __init__(self, params: LinkParams, context: DriverContext) -> None:
        self.params = params
        self._context = context
        self._conn: BoardConnection | None = None
        self._q: deque = deque()

    @property
    def clock(self) -> ClockMap:
        return self._conn.clock if self._conn is not None else ClockMap()

    @property
    def connection(self) -> BoardConnection:
        if self._conn is None:
            raise BoardError(f"{type(self).__name__} on {self.params.port} is not open; call open() first")
        return self._conn

    def open(self) -> None:
        if self._conn is None:
            self._conn = BoardConnection.acquire(self.params.link(), self._context.clock)
            try:
                if self._stream is not None:
                    self._q = self._conn.stream(self._stream)
                self._on_open(self._conn)
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            if self._stream is not None:
                conn.unclaim(self._stream)
            conn.release()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_open(self, conn: BoardConnection) -> None:
        pass

    def health(self) -> BoardHealth:
        return self.connection.health()

    @property
    def faults(self) -> list[Fault]:
        return self.connection.faults

    def self_test(self) -> list[CheckResult]:
        name = f"{self._role}: serial board"
        if self._conn is None or not self._conn.connected:
            return [CheckResult(name, False, f"no board connected on {self.params.port}")]
        h = self._conn.health()
        return [CheckResult(name, True, f"firmware {h.firmware}, board 0x{h.board_id:08x} on {h.port}")]

    _role = "board"


def _drain(q: deque, conn: BoardConnection | None) -> list:
    # One consumer per deque; popleft is atomic against the reader thread's append. A dead reader
    # thread raises here (BoardError): the session notices within one loop iteration.
    if conn is not None:
        conn.check_reader()
    out = []
    while q:
        out.append(q.popleft())
    return out


@register("ball", "serial_board")
class SerialBall(_BoardRole):
    """Quadrature encoder counted on the board; samples sent when the count changed, at up to 1 kHz."""

    class Params(LinkParams):
        counts_per_cm: float = Field(gt=0, description="encoder counts per cm of ball surface")
        sample_rate_hz: float = Field(1000.0, ge=1, le=1000, description="encoder packets per second (max)")
        check_turn_s: float = Field(5.0, ge=0, le=120, description="how long `rig check` waits for a turn")

    params: Params
    _role = "ball"
    _stream = "encoder"

    def __init__(self, params: Params, context: DriverContext) -> None:
        super().__init__(params, context)
        self.counts_per_cm = params.counts_per_cm

    def _on_open(self, conn: BoardConnection) -> None:
        conn.configure(encoder_period_us=int(round(1e6 / self.params.sample_rate_hz)))

    def read(self) -> BallSamples:
        items = _drain(self._q, self._conn)
        if not items:
            return BallSamples()
        t, c = zip(*items, strict=True)
        return BallSamples(np.asarray(t, dtype=float), np.asarray(c, dtype=np.int64))

    def self_test(self) -> list[CheckResult]:
        out = super().self_test()
        if not out[0].ok:
            return out
        seen = 0
        deadline = time.monotonic() + self.params.check_turn_s
        while True:
            seen += int(np.abs(self.read().counts).sum())
            if seen or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        msg = f"{seen} counts seen" if seen else f"no encoder counts in {self.params.check_turn_s:.0f} s: turn the ball"
        return [*out, CheckResult("ball: encoder moves", seen > 0, msg)]


@register("lick", "serial_board")
class SerialLick(_BoardRole):
    """Lick contact line; the board timestamps each edge in its interrupt handler."""

    class Params(LinkParams):
        debounce_us: int = Field(
            500, ge=50, le=20000, description="a lick level counts once stable this long (bounce is ignored)"
        )

    params: Params
    _role = "lick"
    _stream = "lick"

    def _on_open(self, conn: BoardConnection) -> None:
        conn.configure(lick_debounce_us=self.params.debounce_us)

    def read(self) -> list[LickEdge]:
        return [LickEdge(t, onset) for t, onset in _drain(self._q, self._conn)]

    def self_test(self) -> list[CheckResult]:
        out = super().self_test()
        if not out[0].ok:
            return out
        touching = bool(self.connection.health().lines & P.LINE_LICK)
        msg = "lick line in contact: check the spout wiring or wipe the spout" if touching else "lick line idle"
        return [*out, CheckResult("lick: line idle", not touching, msg)]


@register("valve", "serial_board")
class SerialValve(_BoardRole):
    """Reward valve; the firmware times pulses and cuts any opening at max_open_ms by itself."""

    class Params(LinkParams):
        max_open_ms: float = Field(1000.0, gt=0, le=65535, description="the board closes the valve after this")

    params: Params
    _role = "valve"
    _stream = "valve"

    def __init__(self, params: Params, context: DriverContext) -> None:
        super().__init__(params, context)
        self.max_open_ms = params.max_open_ms

    def _on_open(self, conn: BoardConnection) -> None:
        want = int(math.ceil(self.params.max_open_ms))
        ack = conn.wait_ack(conn.configure(max_open_ms=want), timeout=1.0)
        if ack is None:
            raise BoardError(f"serial board on {self.params.port}: no answer to the valve configuration")
        if ack.status == P.AckStatus.CLAMPED:
            raise BoardError(
                f"valve max_open_ms {want} exceeds the firmware's hard limit of {ack.value} ms on "
                f"{self.params.port}; lower drivers.valve.max_open_ms"
            )
        self.max_open_ms = float(ack.value)

    def pulse(self, duration_ms: float) -> int:
        """Hardware-timed opening; returns the command seq (-1 if it could not be sent). Never blocks."""
        if not (math.isfinite(duration_ms) and duration_ms >= 0):
            raise ValueError(f"valve pulse duration must be a finite number >= 0 ms, got {duration_ms!r}")
        # Sent as asked: the firmware, not this code, enforces max_open_ms (and acks CLAMPED).
        us = min(int(round(duration_ms * 1000)), 0xFFFFFFFF)
        return self.connection.send(P.PacketType.CMD_VALVE_PULSE, (us,))

    def open_valve(self) -> None:
        self.connection.send(P.PacketType.CMD_VALVE_OPEN)

    def close_valve(self) -> None:
        self.connection.send(P.PacketType.CMD_VALVE_CLOSE)

    def events(self) -> list[tuple[float, bool, P.ValveReason]]:
        """Valve transitions reported by the board: (board time, open, reason), ascending."""
        return _drain(self._q, self._conn)

    def self_test(self) -> list[CheckResult]:
        out = super().self_test()
        if not out[0].ok:
            return out
        ack = self.connection.wait_ack(self.pulse(5.0), timeout=1.0)
        ok = ack is not None and ack.status == P.AckStatus.OK
        return [
            *out,
            CheckResult("valve: clicks", ok, "5 ms pulse acknowledged" if ok else "pulse not acknowledged"),
        ]


@register("cue", "serial_board")
class SerialCue(_BoardRole):
    """Tone output on the board (Arduino tone() on a speaker pin)."""

    class Params(LinkParams):
        pass

    _role = "cue"

    def play(self, duration_ms: float, frequency_hz: float) -> int:
        if not (0 < duration_ms <= 65535 and 20 <= frequency_hz <= 65535):
            raise ValueError(
                f"cue needs 0 < duration_ms <= 65535 and 20 <= frequency_hz <= 65535, "
                f"got {duration_ms!r} ms at {frequency_hz!r} Hz"
            )
        body = (int(round(duration_ms)), int(round(frequency_hz)))
        return self.connection.send(P.PacketType.CMD_CUE, body)

    def self_test(self) -> list[CheckResult]:
        out = super().self_test()
        if not out[0].ok:
            return out
        ack = self.connection.wait_ack(self.play(100, 4000), timeout=1.0)
        ok = ack is not None and ack.status == P.AckStatus.OK
        return [
            *out,
            CheckResult("cue: output", ok, "100 ms tone acknowledged" if ok else "tone not acknowledged"),
        ]


@register("frame_clock", "serial_board")
class SerialFrameClock(_BoardRole):
    """Imaging frame-clock TTL edges, timestamped in the board's interrupt handler."""

    class Params(LinkParams):
        require_frames: bool = Field(True, description="`rig check` fails when no frame edge is seen")
        check_s: float = Field(2.0, ge=0, le=60, description="how long `rig check` waits for frame edges")
        edge: Literal["falling", "rising"] = Field(
            "falling", description="the frame-clock edge that starts a frame (ScanImage: falling)"
        )

    params: Params
    _role = "frame_clock"
    _stream = "frame"

    def __init__(self, params: Params, context: DriverContext) -> None:
        super().__init__(params, context)
        self._held: list[float] = []

    def _on_open(self, conn: BoardConnection) -> None:
        edge = P.FrameEdge.RISING if self.params.edge == "rising" else P.FrameEdge.FALLING
        conn.configure(frame_edge=int(edge))

    def read(self) -> np.ndarray:
        items, self._held = self._held + _drain(self._q, self._conn), []
        return np.asarray(items, dtype=float)

    def self_test(self) -> list[CheckResult]:
        out = super().self_test()
        if not out[0].ok:
            return out
        deadline = time.monotonic() + self.params.check_s
        while not self._q and time.monotonic() < deadline:
            time.sleep(0.02)
        # Edges seen by the check stay queued for the session's first read.
        self._held += _drain(self._q, self._conn)
        n = len(self._held)
        ok = n > 0 or not self.params.require_frames
        msg = f"{n} frame edges in {self.params.check_s:.1f} s" if n else "no frame-clock edges: is imaging running?"
        return [*out, CheckResult("frame_clock: present", ok, msg)]


@register("sync", "serial_board")
class SerialSync(_BoardRole):
    """Random-interval sync pulses to the mesoscope's aux trigger (pyControl-style), with their times.

    A session times the pulses itself (`pulse()` when its seeded schedule says so, intervals from
    min/max_interval_ms); `start()` instead lets the board draw the intervals. `read()` returns the
    board times of every pulse the board emitted either way.
    """

    class Params(LinkParams):
        min_interval_ms: int = Field(1000, ge=1, le=65535)
        max_interval_ms: int = Field(5000, ge=1, le=65535)
        width_ms: int = Field(10, ge=1, le=1000)

    params: Params
    _role = "sync"
    _stream = "sync"

    def __init__(self, params: Params, context: DriverContext) -> None:
        super().__init__(params, context)
        if params.max_interval_ms < params.min_interval_ms:
            raise ValueError("sync max_interval_ms must be >= min_interval_ms")
        self.min_interval_s = params.min_interval_ms / 1000.0
        self.max_interval_s = params.max_interval_ms / 1000.0

    def start(self) -> int:
        p = self.params
        return self.connection.send(P.PacketType.CMD_SYNC_RANDOM, (p.min_interval_ms, p.max_interval_ms, p.width_ms))

    def stop(self) -> int:
        return self.connection.send(P.PacketType.CMD_SYNC_RANDOM, (0, 0, 0))

    def pulse(self) -> int:
        return self.connection.send(P.PacketType.CMD_SYNC_PULSE, (self.params.width_ms,))

    def read(self) -> np.ndarray:
        """Board times of the sync pulses emitted since the previous read."""
        return np.asarray(_drain(self._q, self._conn), dtype=float)
