"""What every NI-DAQ role shares: the device parameter, the session lifecycle and the self-test."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from drivers.base import CheckResult, ClockMap
from drivers.nidaq.errors import NidaqError, device_names, physical_channels
from drivers.nidaq.session import SESSIONS, DeviceSession, SessionPool, Stream
from drivers.registry import DriverContext


class NidaqParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str = Field("Dev1", min_length=1, description="NI MAX device name, e.g. Dev1")


class NidaqRole:
    """Open/close through the shared per-device session (reference counted), and a self-test that
    checks the device and the configured channels exist."""

    role: ClassVar[str] = ""
    pool: ClassVar[SessionPool] = SESSIONS

    def __init__(self, params: Any, context: DriverContext) -> None:
        self.params = params
        self._session_clock = context.clock
        self._session: DeviceSession | None = None
        self._stream: Stream | None = None
        self.clock = ClockMap()

    @property
    def who(self) -> str:
        return f"nidaq {self.role} ({self.params.device})"

    @property
    def is_open(self) -> bool:
        return self._session is not None

    def open(self) -> None:
        if self._session is not None:
            return
        self._session = self.pool.acquire(self.params.device, self._session_clock, self.who)
        try:
            self._configure()
        except BaseException:
            self._release()
            raise

    def close(self) -> None:
        if self._session is None:
            return
        try:
            self._teardown()
        finally:
            self._release()

    def _release(self) -> None:
        s, self._session = self._session, None
        if s is None:
            return
        if self._stream is not None:
            s.unsubscribe(self._stream)
            self._stream = None
        self.pool.release(s)

    def __enter__(self) -> Any:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def self_test(self) -> list[CheckResult]:
        """The device is present and each configured channel is one of its physical channels."""
        name = self.who
        try:
            nd = self.pool.load()
            found = device_names(nd)
        except NidaqError as e:
            return [CheckResult(name, False, str(e))]
        device = self.params.device
        if device not in found:
            listing = ", ".join(found) or "none"
            return [CheckResult(name, False, f"device {device!r} not found; devices found: {listing}")]
        results = []
        for kind, channel in self._channels():
            listed = physical_channels(nd, device, kind)
            full = f"{device}/{channel}"
            ok = full.lower() in (c.lower() for c in listed)
            has = ", ".join(listed) or "none"
            msg = self._describe() if ok else f"{full} is not a {kind} channel of {device}; it has: {has}"
            results.append(CheckResult(name, ok, msg))
        return results or [CheckResult(name, True, self._describe())]

    # ---- for subclasses ------------------------------------------------------------------------------

    def _need_session(self) -> DeviceSession:
        if self._session is None:
            raise RuntimeError(f"{self.who} is not open; call open() first")
        return self._session

    def _take(self) -> tuple[int, np.ndarray]:
        s = self._need_session()
        assert self._stream is not None
        return s.take(self._stream)

    def _times(self, start: int, n: int) -> np.ndarray:
        return (start + np.arange(n)) / float(self.params.sample_rate_hz)

    def _configure(self) -> None:
        """Add this role's channels/tasks (the session is held)."""

    def _teardown(self) -> None:
        """Stop and clear the tasks this role owns (not the session's)."""

    def _channels(self) -> list[tuple[str, str]]:
        """(kind, channel) pairs this role uses: kind is ai, ao, ci, co, di or do."""
        return []

    def _describe(self) -> str:
        return self.who
