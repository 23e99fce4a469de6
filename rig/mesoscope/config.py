"""The optional `mesoscope:` section of a rig config: where the bridge is, how to trust it, what to expect.

A rig config without this section runs no mesoscope link. With it, `rig run` starts the acquisition
before the task and refuses to start the task until frames arrive at `expected_rate_hz`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from rig.mesoscope.keys import ClientKeys, client_keys, is_loopback
from rig.protocol import Frozen, field_error

ENDPOINT_SCHEMES = ("tcp://", "ipc://", "inproc://")


class MesoscopeKeys(Frozen):
    """CURVE key files for a remote bridge (made with `rig keys`)."""

    secret: str = Field(min_length=1, description="this rig's NAME.key_secret")
    server_public: str = Field(min_length=1, description="the bridge's NAME.key (public)")

    def load(self, base: Path | None = None) -> ClientKeys:
        """The keys, with relative paths taken from `base` (the config file's folder)."""
        def path(p: str) -> Path:
            q = Path(p).expanduser()
            return q if q.is_absolute() or base is None else base / q

        return client_keys(path(self.secret), path(self.server_public))


class MesoscopeSettings(Frozen):
    endpoint_cmd: str = Field("tcp://127.0.0.1:5570", description="the bridge's command socket (ROUTER)")
    endpoint_frames: str = Field("tcp://127.0.0.1:5571", description="the bridge's frame stream (XPUB)")
    keys: MesoscopeKeys | None = Field(None, description="CURVE keys; required for a non-loopback endpoint")
    expected_rate_hz: float = Field(gt=0, le=10_000, description="frame-clock rate of the scan layout")
    rate_tolerance: float = Field(0.05, gt=0, lt=1, description="relative rate mismatch that refuses a start")
    start_timeout_s: float = Field(15.0, gt=0, le=600,
                                   description="wait for imaging to begin (the pre-roll's own length comes on top)")
    min_frames: int = Field(5, ge=2, le=10_000, description="frames to see (and rate-check) before the task")
    pre_roll_frames: int = Field(20, ge=0, le=100_000,
                                 description="frames imaged before the task starts (at least min_frames)")
    post_roll_frames: int = Field(20, ge=0, le=100_000,
                                  description="frames imaged after the task ends, before the stop")
    command_timeout_s: float = Field(2.0, gt=0, le=60, description="wait for each acknowledgement")
    silence_s: float = Field(2.0, gt=0, le=60, description="bridge silence that counts as the mesoscope dead")
    ping_interval_s: float = Field(5.0, ge=0, le=600, description="clock pings during the session; 0 = none")
    stop_wait_s: float = Field(3.0, gt=0, le=60, description="wait for the stream's acq_stop after stop")
    ttl_settle_s: float = Field(0.2, ge=0, le=10, description="wait for the last frame-clock edges after stop")
    check_duration_s: float = Field(3.0, gt=0, le=600, description="length of the `rig check` test acquisition")

    @field_validator("endpoint_cmd", "endpoint_frames")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if not v.startswith(ENDPOINT_SCHEMES):
            raise ValueError(f"{v!r} is not a ZeroMQ endpoint; use e.g. tcp://127.0.0.1:5570")
        return v

    @model_validator(mode="after")
    def _remote_needs_keys(self) -> MesoscopeSettings:
        remote = [e for e in (self.endpoint_cmd, self.endpoint_frames) if not is_loopback(e)]
        if remote and self.keys is None:
            raise field_error(("keys",), f"endpoint {remote[0]} is not on this host: remote links need CURVE "
                              "keys (keys: {secret: ..., server_public: ...}; make them with `rig keys`)")
        return self

    def client_keys(self, base: Path | None = None) -> ClientKeys | None:
        return None if self.keys is None else self.keys.load(base)
