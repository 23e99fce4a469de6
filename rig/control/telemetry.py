"""Live telemetry and remote control of a running session over ZeroMQ (what the Qt app talks to).

`TelemetryHook` rides along with the runner loop (a rig.runner.loop.LoopHook). It owns two sockets, both used
only from the loop's thread and never in a blocking way:

- PUB (telemetry): multipart messages [topic, JSON]. Topics:
  `state` frames batched at `rate_hz` ({"i": [...], "t": [...], "pos": [...], "speed": [...],
  "trial": [...], "corridor": [...], "grey": [...]}); `event` every engine event at once (the logged
  record plus "i" and "corridor"); `status` counters and loop health at `status_hz` (doubles as a
  heartbeat); `fault` warnings and errors logged anywhere in the runner process; `end` when the loop ends.
- ROUTER (commands): a DEALER sends [b"", JSON {"id": ..., "action": ..., ...}] and gets
  [b"", JSON {"id": ..., "ok": bool, ...}] back. Actions: hello, manual_reward {volume_ul}, pause, resume,
  stop, valve_open {close_after_s}, valve_close. Operator actions are queued on the runner's OperatorQueue
  (the runner logs them); valve flushing is carried out and logged here, and the valve closes by itself
  after close_after_s (never longer than the valve's max_open_ms).

`CommandClient` and `TelemetrySubscriber` are the other ends, without Qt, for the app, scripts and tests.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from rig.engine.records import EventKind, Step

log = logging.getLogger(__name__)

ACTIONS = ("hello", "manual_reward", "pause", "resume", "stop", "valve_open", "valve_close")
MAX_COMMANDS_PER_ITERATION = 16  # bounds the loop's cost even when flooded with requests
MAX_MANUAL_REWARD_UL = 50.0
DEFAULT_FLUSH_S = 5.0
LOOPBACK = "tcp://127.0.0.1:*"


class TelemetryError(RuntimeError):
    """A socket could not be bound, or a request failed or timed out."""


class _FaultHandler(logging.Handler):
    """Collects WARNING+ records from any thread of the runner process; the loop publishes them."""

    def __init__(self, maxlen: int = 200) -> None:
        super().__init__(logging.WARNING)
        self.records: collections.deque[dict] = collections.deque(maxlen=maxlen)  # append is thread-safe

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append({
            "wall": record.created,
            "level": record.levelname,
            "source": record.name,
            "message": record.getMessage(),
        })


@dataclass
class _LoopStats:
    """Iteration intervals seen by the hook: the loop period as it really ran, and frames it missed."""

    period: float
    last: float | None = None
    missed: int = 0
    intervals: list[float] = field(default_factory=list)

    def tick(self, now: float) -> None:
        if self.last is not None:
            dt = now - self.last
            self.intervals.append(dt)
            if dt > 1.5 * self.period:
                self.missed += max(round(dt / self.period) - 1, 1)
        self.last = now

    def take(self) -> dict[str, float | None]:
        iv = sorted(self.intervals)
        self.intervals = []
        if not iv:
            return {"period_ms_p50": None, "period_ms_max": None}
        return {"period_ms_p50": round(iv[len(iv) // 2] * 1e3, 3), "period_ms_max": round(iv[-1] * 1e3, 3)}


class TelemetryHook:
    """Publishes telemetry and serves operator commands for one session. Bind with the constructor (so a
    port problem refuses the session before any folder exists); `close()` when done (or use `with`)."""

    def __init__(
        self,
        telemetry: str = LOOPBACK,
        commands: str = LOOPBACK,
        rate_hz: float = 25.0,
        status_hz: float = 2.0,
        context: zmq.Context | None = None,
    ) -> None:
        if not (0 < rate_hz <= 1000 and 0 < status_hz <= rate_hz):
            raise ValueError(f"rate_hz {rate_hz} / status_hz {status_hz}: need 0 < status_hz <= rate_hz <= 1000")
        self._ctx = context or zmq.Context.instance()
        self._pub = self._ctx.socket(zmq.PUB)
        self._router = self._ctx.socket(zmq.ROUTER)
        for s in (self._pub, self._router):
            s.setsockopt(zmq.LINGER, 500)
        self._pub.setsockopt(zmq.SNDHWM, 2000)  # a slow subscriber loses old messages; the loop never waits
        self._router.setsockopt(zmq.ROUTER_MANDATORY, 0)  # replies to vanished clients are dropped silently
        try:
            self._pub.bind(telemetry)
            self._router.bind(commands)
        except zmq.ZMQError as e:
            self.close()
            raise TelemetryError(f"cannot bind telemetry {telemetry} / commands {commands}: {e}") from None
        self.telemetry_endpoint = self._pub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.commands_endpoint = self._router.getsockopt_string(zmq.LAST_ENDPOINT)
        self._state_every = 1.0 / rate_hz
        self._status_every = 1.0 / status_hz
        self.info: dict[str, Any] = {}  # set by the runner process (session folder, animal, ...); sent on hello
        self._runner = None
        self._faults = _FaultHandler()
        self._reset_batch()
        self._closed = False

    # ---- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        if getattr(self, "_closed", False):
            return
        self._closed = True
        self._pub.close()
        self._router.close()

    def __enter__(self) -> TelemetryHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- LoopHook ----------------------------------------------------------------------------------

    def start(self, runner) -> None:
        self._runner = runner
        p = runner.protocol
        self._corridor_names = [c.name for c in p.corridors]
        rules = p.reward_rules() if hasattr(p, "reward_rules") else ()
        self._default_reward_ul = float(rules[0].volume_ul) if rules else 2.5
        self._valve = runner.devices.valve
        self._stats = _LoopStats(runner.period)
        self._wall0 = time.perf_counter()
        self._next_state = self._wall0 + self._state_every
        self._next_status = self._wall0
        self._trials = self._rewards = 0
        self._water_ul = 0.0
        self._paused = False
        self._flush_until: float | None = None  # session time at which a flush opening closes
        self._t = 0.0
        self._i = 0
        self._free_mb: float | None = None
        self._corridor = 0
        # A mesoscope hook riding along (rig.mesoscope.session_hook.MesoscopeHook): its link state joins the
        # status. Found by its attributes, so telemetry does not import the mesoscope package.
        self._meso = next((h for h in getattr(runner, "hooks", ()) if hasattr(h, "frames") and hasattr(h, "gaps")
                           and hasattr(h, "link")), None)
        self._meso_last: tuple[float, int] | None = None
        logging.getLogger().addHandler(self._faults)
        self.info.setdefault("protocol", p.name)
        self.info.setdefault("kind", p.kind)
        self.info["corridors"] = self._corridor_names
        self.info["rewarded"] = [c.rewarded for c in p.corridors]
        self.info["lengths_cm"] = [c.length_cm for c in p.corridors]
        self.info["frame_rate_hz"] = 1.0 / runner.period
        self._publish("hello", self.hello())

    def iteration(self, i: int, t: float, step: Step) -> None:
        now = time.perf_counter()
        self._i, self._t = i, t
        self._stats.tick(now)
        s = step.state
        self._corridor = s.corridor
        b = self._batch
        b["i"].append(i)
        b["t"].append(round(t, 4))
        b["pos"].append(round(s.position_cm, 2))
        b["speed"].append(round(s.ball_speed_cm_s, 2))
        b["trial"].append(s.trial)
        b["corridor"].append(s.corridor)
        b["grey"].append(1 if s.in_grey else 0)
        for ev in step.events:
            self._count(ev)
            self._publish("event", {"i": i, "t": ev.t, "kind": ev.kind, "trial": ev.trial,
                                    "position_cm": ev.position_cm, "corridor": s.corridor, "data": ev.data})
        for cmd in step.commands:
            if cmd.kind == "valve":
                self._water_ul += cmd.volume_ul
        if self._flush_until is not None and t >= self._flush_until:
            self._close_flush("timeout")
        self._serve_commands()
        while self._faults.records:
            self._publish("fault", self._faults.records.popleft())
        if now >= self._next_state:
            self._publish("state", self._batch)
            self._reset_batch()
            self._next_state = now + self._state_every
        if now >= self._next_status:
            self._publish("status", self.status())
            self._next_status = now + self._status_every

    def end(self, runner, result) -> None:
        if self._flush_until is not None:
            self._close_flush("session end")
        if self._batch["i"]:
            self._publish("state", self._batch)
            self._reset_batch()
        while self._faults.records:
            self._publish("fault", self._faults.records.popleft())
        self._serve_commands()  # answer what is waiting rather than letting it time out
        final = self.status()
        final["running"] = False
        self._publish("status", final)
        self._publish("end", {
            "complete": None if result is None else result.complete,
            "reason": "crashed: see the runner log" if result is None else result.reason,
            "trials": self._trials, "rewards": self._rewards, "water_ul": round(self._water_ul, 6),
            "missed_frames": self._stats.missed if result is None else result.missed_frames,
        })
        logging.getLogger().removeHandler(self._faults)

    # ---- what is published ------------------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        return {**self.info, "pid": os.getpid(), "telemetry": self.telemetry_endpoint,
                "commands": self.commands_endpoint}

    def status(self) -> dict[str, Any]:
        wall = time.perf_counter()
        if self._runner is not None and (self._free_mb is None or int(wall) % 5 == 0):
            try:
                self._free_mb = shutil.disk_usage(self._runner.writer.path).free / 1e6
            except OSError as e:
                log.warning("cannot read free disk space: %s", e)
        return {
            "running": True, "i": self._i, "t": round(self._t, 3), "elapsed_s": round(wall - self._wall0, 3),
            "trials": self._trials, "rewards": self._rewards, "water_ul": round(self._water_ul, 6),
            "paused": self._paused, "valve_open": self._flush_until is not None,
            "missed_frames": self._stats.missed, "corridor": self._corridor,
            "free_disk_mb": None if self._free_mb is None else round(self._free_mb, 1),
            "drivers": self._driver_health(), **self._stats.take(),
            **({"mesoscope": self._mesoscope_status(wall)} if self._meso is not None else {}),
        }

    def _mesoscope_status(self, wall: float) -> dict[str, Any]:
        """Frames received, their rate since the last status, transport drops and the last frame's age.
        Read defensively: the hook's state is its own, and the link is None before start and after end."""
        hook = self._meso
        frames = list(getattr(hook, "frames", ()) or ())
        n = len(frames)
        rate = None
        if self._meso_last is not None and wall > self._meso_last[0]:
            rate = round((n - self._meso_last[1]) / (wall - self._meso_last[0]), 2)
        self._meso_last = (wall, n)
        link = getattr(hook, "link", None)
        counters = getattr(link, "counters", None)
        last_t = getattr(frames[-1], "t_receive", None) if frames else None
        gaps = getattr(hook, "gaps", ()) or ()
        return {
            "connected": link is not None,
            "alive": bool(getattr(link, "alive", False)) if link is not None else False,
            "frames": n, "rate_hz": rate,
            "drops": int(getattr(counters, "seq_gaps", 0) or 0),
            "rejected": sum(int(getattr(counters, k, 0) or 0) for k in ("malformed", "oversized", "wrong_version",
                                                                         "out_of_order")),
            # The link stamps frames with perf_counter (the rig clock), like `wall` here.
            "last_frame_age_s": None if last_t is None else round(max(wall - last_t, 0.0), 3),
            "imaging_gaps": len(gaps),
            "in_gap": bool(gaps) and getattr(gaps[-1], "end", 0) is None,
        }

    def _driver_health(self) -> dict[str, str]:
        dev = self._runner.devices
        return {role: type(device).__name__ for role, device in dev.by_role().items()}

    def _count(self, ev) -> None:
        if ev.kind == EventKind.TRIAL_END:
            self._trials += 1
        elif ev.kind == EventKind.REWARD:
            self._rewards += 1

    def _reset_batch(self) -> None:
        self._batch: dict[str, list] = {k: [] for k in ("i", "t", "pos", "speed", "trial", "corridor", "grey")}

    def _publish(self, topic: str, body: dict) -> None:
        try:
            self._pub.send_multipart([topic.encode(), json.dumps(body, default=_jsonable).encode()], zmq.NOBLOCK)
        except zmq.Again:
            pass  # PUB drops at its high-water mark; telemetry is best-effort and the log is the truth

    # ---- commands ----------------------------------------------------------------------------------

    def _serve_commands(self) -> None:
        for _ in range(MAX_COMMANDS_PER_ITERATION):
            try:
                frames = self._router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            ident, body = frames[0], frames[-1]
            reply = self._handle(body)
            try:
                self._router.send_multipart([ident, b"", json.dumps(reply, default=_jsonable).encode()],
                                            zmq.NOBLOCK)
            except zmq.Again:
                log.warning("command reply to a slow client dropped: %s", reply)

    def _handle(self, body: bytes) -> dict[str, Any]:
        try:
            req = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return {"id": None, "ok": False, "error": f"request is not a JSON object: {e}"}
        if not isinstance(req, dict):
            return {"id": None, "ok": False, "error": "request is not a JSON object"}
        rid, action = req.get("id"), req.get("action")
        if action not in ACTIONS:
            return {"id": rid, "ok": False, "error": f"unknown action {action!r}; known: {list(ACTIONS)}"}
        try:
            out = self._do(action, req)
        except ValueError as e:
            return {"id": rid, "ok": False, "action": action, "error": str(e)}
        return {"id": rid, "ok": True, "action": action, "i": self._i, **out}

    def _do(self, action: str, req: dict) -> dict[str, Any]:
        from rig.runner.loop import Operator

        if action == "hello":
            return self.hello() | {"status": self.status()}
        if self._runner is None:
            raise ValueError("the session has not started yet")
        if action == "manual_reward":
            volume = _number(req, "volume_ul", self._default_reward_ul)
            if not 0 < volume <= MAX_MANUAL_REWARD_UL:
                raise ValueError(f"volume_ul must be > 0 and <= {MAX_MANUAL_REWARD_UL}, got {volume}")
            self._runner.operator.put(Operator("manual_reward", volume))
            return {"volume_ul": volume}
        if action in ("pause", "resume", "stop"):
            self._runner.operator.put(Operator(action))
            if action != "stop":
                self._paused = action == "pause"
            return {}
        if action == "valve_open":
            limit = self._valve.max_open_ms / 1000.0
            timeout = _number(req, "close_after_s", min(DEFAULT_FLUSH_S, limit))
            if not 0 < timeout <= limit:
                raise ValueError(
                    f"close_after_s must be > 0 and <= the valve's max_open_ms ({limit:g} s), got {timeout}")
            self._valve.open_valve()
            self._flush_until = self._t + timeout
            self._runner.writer.operator(self._i, self._t, "valve_open", close_after_s=timeout)
            return {"close_after_s": timeout}
        # valve_close: always honoured, even when the valve is not held open (closing is always safe)
        self._close_flush("operator")
        return {}

    def _close_flush(self, reason: str) -> None:
        try:
            self._valve.close_valve()
        finally:
            self._flush_until = None
            self._runner.writer.operator(self._i, self._t, "valve_close", reason=reason)


def _number(req: dict, key: str, default: float) -> float:
    v = req.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"{key} must be a finite number, got {v!r}")
    return float(v)


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


# ---- the other ends ----------------------------------------------------------------------------------


class CommandClient:
    """Sends requests to a session's command channel. `send` never blocks (returns the request id);
    `poll_replies` collects what has come back; `request` waits (up to timeout_s) for one reply."""

    def __init__(self, endpoint: str, context: zmq.Context | None = None) -> None:
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(endpoint)
        self.endpoint = endpoint
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid()}-{id(self):x}-"

    def send(self, action: str, **params: Any) -> str:
        rid = f"{self._prefix}{next(self._ids)}"
        try:
            self._sock.send_multipart([b"", json.dumps({"id": rid, "action": action, **params}).encode()],
                                      zmq.NOBLOCK)
        except zmq.Again:
            raise TelemetryError(f"cannot send {action!r} to {self.endpoint}: the session is not reachable") from None
        return rid

    def poll_replies(self) -> list[dict]:
        out = []
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return out
            try:
                out.append(json.loads(frames[-1].decode("utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                log.warning("unreadable reply from %s: %s", self.endpoint, e)

    def request(self, action: str, timeout_s: float = 2.0, **params: Any) -> dict:
        """Send and wait for this request's reply; raises TelemetryError on timeout or refusal."""
        rid = self.send(action, **params)
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if self._sock.poll(int(left * 1000) + 1):
                for reply in self.poll_replies():
                    if reply.get("id") == rid:
                        if not reply.get("ok"):
                            raise TelemetryError(f"{action}: refused: {reply.get('error')}")
                        return reply
        raise TelemetryError(f"{action}: no reply from {self.endpoint} within {timeout_s:g} s")

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> CommandClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TelemetrySubscriber:
    """Receives a session's telemetry; `poll(max_messages)` never blocks and returns (topic, body) pairs."""

    def __init__(self, endpoint: str, context: zmq.Context | None = None) -> None:
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, 10000)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._sock.connect(endpoint)
        self.endpoint = endpoint

    def poll(self, max_messages: int = 1000, timeout_ms: int = 0) -> list[tuple[str, dict]]:
        out: list[tuple[str, dict]] = []
        if timeout_ms and not self._sock.poll(timeout_ms):
            return out
        for _ in range(max_messages):
            try:
                topic, body = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            except ValueError:
                log.warning("telemetry message with an unexpected number of parts from %s", self.endpoint)
                continue
            try:
                out.append((topic.decode(), json.loads(body.decode("utf-8"))))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                log.warning("unreadable telemetry from %s: %s", self.endpoint, e)
        return out

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> TelemetrySubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
