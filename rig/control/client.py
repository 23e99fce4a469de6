"""The other ends of the control channel, without Qt: for the app, scripts and tests.

    info = read_lock("sim")                      # rig.runner.lock: where the session is, and its credential
    with connect(info, label="my script") as (commands, telemetry):
        commands.request("take_control")
        commands.request("manual_reward", volume_ul=2.0)
        for topic, body in telemetry.poll(timeout_ms=500): ...

Both sockets are CURVE clients with the session's credential; without it nothing connects. Everything
received is decoded with the same bounded decoder the runner uses (rig.control.wire).
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import zmq

from rig.control.credentials import ClientCredential
from rig.control.server import ControlError
from rig.control.wire import WireError, decode_object, encode
from rig.runner.lock import LockInfo

log = logging.getLogger(__name__)

MAX_TELEMETRY_BYTES = 4 << 20  # a state batch at 1 kHz for a second is ~100 kB; anything near this is wrong


class CommandClient:
    """Sends requests to a session's command channel. `send` never blocks (returns the request id);
    `poll_replies` collects what has come back; `request` waits (up to timeout_s) for one reply."""

    def __init__(self, endpoint: str, credential: ClientCredential, label: str = "") -> None:
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, 1 << 20)
        credential.apply(self._sock)
        self._sock.connect(endpoint)
        self.endpoint = endpoint
        self.id = secrets.token_hex(8)  # names this client to the runner (who controls the session)
        self.label = label or f"pid {os.getpid()}"
        self._ids = itertools.count(1)

    def send(self, action: str, **params: Any) -> str:
        rid = f"{self.id}-{next(self._ids)}"
        body: dict[str, Any] = {"id": rid, "action": action, "client": self.id, **params}
        if action in ("hello", "take_control"):
            body.setdefault("label", self.label)
        try:
            self._sock.send_multipart([b"", encode(body)], zmq.NOBLOCK)
        except zmq.Again:
            raise ControlError(f"cannot send {action!r} to {self.endpoint}: the session is not reachable") from None
        return rid

    def poll_replies(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return out
            try:
                out.append(decode_object(frames[-1]))
            except WireError as e:
                log.warning("unreadable reply from %s: %s", self.endpoint, e)

    def request(self, action: str, timeout_s: float = 2.0, **params: Any) -> dict[str, Any]:
        """Send and wait for this request's reply; raises ControlError on timeout or refusal."""
        rid = self.send(action, **params)
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if self._sock.poll(int(left * 1000) + 1):
                for reply in self.poll_replies():
                    if reply.get("id") == rid:
                        if not reply.get("ok"):
                            raise ControlError(f"{action}: refused: {reply.get('error')}")
                        return reply
        raise ControlError(f"{action}: no reply from {self.endpoint} within {timeout_s:g} s")

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> CommandClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TelemetrySubscriber:
    """Receives a session's telemetry; `poll(max_messages)` never blocks and returns (topic, body) pairs.
    Messages that are not [topic, JSON object] within the limits are dropped and counted in `dropped`."""

    def __init__(self, endpoint: str, credential: ClientCredential) -> None:
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, 10000)
        self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_TELEMETRY_BYTES)
        credential.apply(self._sock)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._sock.connect(endpoint)
        self.endpoint = endpoint
        self.dropped = 0

    def poll(self, max_messages: int = 1000, timeout_ms: int = 0) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        if timeout_ms and not self._sock.poll(timeout_ms):
            return out
        for _ in range(max_messages):
            try:
                parts = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(parts) != 2 or len(parts[0]) > 32:
                self.dropped += 1
                continue
            try:
                out.append((parts[0].decode("ascii"), decode_object(parts[1], MAX_TELEMETRY_BYTES)))
            except (UnicodeDecodeError, WireError) as e:
                self.dropped += 1
                log.warning("unreadable telemetry from %s: %s", self.endpoint, e)
        return out

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> TelemetrySubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def connect(info: LockInfo, label: str = "") -> Iterator[tuple[CommandClient, TelemetrySubscriber]]:
    """Both ends for the session a lock names (rig.runner.lock.read_lock)."""
    if not (info.commands and info.telemetry and info.credential):
        raise ControlError(f"the session on rig {info.rig!r} has no control channel yet (starting?)")
    cred = ClientCredential.load(info.credential)
    with CommandClient(info.commands, cred, label) as commands, TelemetrySubscriber(info.telemetry, cred) as telemetry:
        yield commands, telemetry
