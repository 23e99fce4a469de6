"""The runner's side of the live link to the app: telemetry out, operator commands in, both authenticated.

`ControlServer` rides along with the loop (a LoopHook). It owns two sockets on a ZeroMQ context of its own,
used only from the loop's thread and never in a blocking way, both CURVE servers that accept only the
session's client key (rig.control.credentials):

- PUB (telemetry): multipart [topic, JSON]. Topics: `hello` (what the session is), `state` (frames batched
  at `rate_hz`: {"i", "t", "pos", "speed", "trial", "corridor", "grey"} lists), `event` (every engine
  event at once: the logged record plus "i" and "corridor"), `status` (counters, valve, loop health, and the
  stage in force with its advance criterion live (rig.control.stage_status), at `status_hz`; doubles as a
  heartbeat), `fault` (warnings logged anywhere in the runner process),
  `control` (who controls the session), `end` (when the loop ends).
- ROUTER (commands): a DEALER sends [b"", JSON request] and gets [b"", JSON reply {"id", "ok", ...}].
  Requests (rig.control.wire): hello, take_control, manual_reward, pause, resume, stop, valve_open,
  valve_close, note. Requests that change the session come only from the controlling client: the first
  to `take_control`, until another takes it explicitly. Closing the valve is always honoured.

Every request is decoded by the bounded decoder in rig.control.wire; a bad one is answered, counted and
logged, and never reaches the loop. The valve is only ever opened through the runner's ValveGuard.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import zmq
from zmq.auth.thread import ThreadAuthenticator

from rig.control.credentials import SessionKeys
from rig.control.stage_status import StageFollower
from rig.control.wire import (
    CONTROL_ACTIONS,
    ManualReward,
    Note,
    Request,
    TakeControl,
    ValveOpen,
    encode,
    parse_request,
)
from rig.engine.records import EventKind, Step
from rig.errors import ExitCode, RigError
from rig.runner.hooks import LoopHook
from rig.runner.operator import Operator

if TYPE_CHECKING:
    from rig.runner.loop import Runner, RunResult

log = logging.getLogger(__name__)

MAX_COMMANDS_PER_ITERATION = 16  # bounds the loop's cost even when flooded with requests
MAX_MANUAL_REWARD_UL = 50.0
DEFAULT_FLUSH_S = 5.0
LOOPBACK = "tcp://127.0.0.1:*"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class ControlError(RigError):
    """A socket could not be bound, or a request failed or timed out."""


class EndpointRefused(ControlError):
    """An endpoint the control channel will not listen on (beyond loopback without --allow-remote)."""

    exit_code = ExitCode.BAD_INPUT


def check_endpoint(endpoint: str, allow_remote: bool) -> None:
    """Loopback TCP or ipc:// only, unless remote access is configured (it is CURVE-authenticated too)."""
    parts = urlsplit(endpoint)
    if parts.scheme in ("ipc", "inproc"):
        return
    if parts.scheme != "tcp":
        raise EndpointRefused(f"{endpoint}: only tcp:// and ipc:// endpoints are served")
    host = (parts.hostname or "").strip("[]")
    if host not in LOOPBACK_HOSTS and not allow_remote:
        raise EndpointRefused(f"{endpoint}: refusing to listen beyond loopback; bind 127.0.0.1, or allow remote "
                           "control explicitly (--allow-remote: still CURVE-authenticated)")


class _FaultHandler(logging.Handler):
    """Collects WARNING+ records from any thread of the runner process; the loop publishes them."""

    def __init__(self, maxlen: int = 200) -> None:
        super().__init__(logging.WARNING)
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=maxlen)  # thread-safe append

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append({"wall": record.created, "level": record.levelname, "source": record.name,
                             "message": record.getMessage()[:2000]})


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
        iv, self.intervals = self.intervals, []
        if not iv:
            return {"loop_period_ms": None, "loop_period_max_ms": None}
        return {"loop_period_ms": round(1000 * sum(iv) / len(iv), 3), "loop_period_max_ms": round(1000 * max(iv), 3)}


@dataclass
class _Client:
    id: str
    label: str


class ControlServer(LoopHook):
    """Publishes telemetry and serves operator commands for one session. Binds in the constructor (so a port
    problem refuses the session before any folder exists); `close()` when done (or use `with`)."""

    def __init__(
        self,
        keys: SessionKeys,
        telemetry: str = LOOPBACK,
        commands: str = LOOPBACK,
        *,
        allow_remote: bool = False,
        rate_hz: float = 25.0,
        status_hz: float = 2.0,
    ) -> None:
        if not (0 < rate_hz <= 1000 and 0 < status_hz <= rate_hz):
            raise ValueError(f"rate_hz {rate_hz} / status_hz {status_hz}: need 0 < status_hz <= rate_hz <= 1000")
        for ep in (telemetry, commands):
            check_endpoint(ep, allow_remote)
        self._keys = keys
        self._ctx = zmq.Context()
        self._auth = ThreadAuthenticator(self._ctx, log=logging.getLogger("rig.control.auth"))
        self._auth.start()
        self._auth.configure_curve_callback(domain="corridor-rig", credentials_provider=self)
        self._pub = self._ctx.socket(zmq.PUB)
        self._router = self._ctx.socket(zmq.ROUTER)
        self._closed = False
        for s in (self._pub, self._router):
            s.setsockopt(zmq.LINGER, 500)
            keys.apply_server(s)
        self._pub.setsockopt(zmq.SNDHWM, 2000)  # a slow subscriber loses old messages; the loop never waits
        self._router.setsockopt(zmq.ROUTER_MANDATORY, 0)  # replies to vanished clients are dropped silently
        self._router.setsockopt(zmq.MAXMSGSIZE, 1 << 20)  # libzmq drops bigger ones before we see them
        try:
            self._pub.bind(telemetry)
            self._router.bind(commands)
        except zmq.ZMQError as e:
            self.close()
            raise ControlError(f"cannot bind telemetry {telemetry} / commands {commands}: {e}") from None
        self.telemetry_endpoint = self._pub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.commands_endpoint = self._router.getsockopt_string(zmq.LAST_ENDPOINT)
        self._state_every = 1.0 / rate_hz
        self._status_every = 1.0 / status_hz
        self.info: dict[str, Any] = {}  # set by the runner process (session folder, animal, ...); sent on hello
        self.rejected = 0  # requests refused as malformed or unknown
        self.refused = 0  # well-formed requests refused (not the controller, a valve limit, ...)
        self._controller: _Client | None = None
        self._runner: Runner | None = None
        self._stages = StageFollower(())
        self._faults = _FaultHandler()
        self._reset_batch()

    # ---- lifecycle ---------------------------------------------------------------------------------

    def callback(self, domain: str, key: bytes) -> bool:
        """ZAP: only the session's own client key may connect (called from the authenticator's thread)."""
        return key == self._keys.client.client_public

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for s in (self._pub, self._router):
            s.close()
        self._auth.stop()
        self._ctx.term()

    def __enter__(self) -> ControlServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- LoopHook ----------------------------------------------------------------------------------

    def start(self, runner: Runner) -> None:
        self._runner = runner
        p = runner.protocol
        self._corridor_names = [c.name for c in p.corridors]
        self._stage_names = [s.name for s in p.stages] or ["main"]
        self._stages = StageFollower(p.stages)  # the stage and its criterion, from the events as they come
        rules = p.reward_rules()
        self._default_reward_ul = float(rules[0].volume_ul) if rules else 2.5
        self._stats = _LoopStats(runner.period)
        self._wall0 = time.perf_counter()
        self._next_state = self._wall0 + self._state_every
        self._next_status = self._wall0
        self._trials = self._rewards = 0
        self._paused = False
        self._t = 0.0
        self._i = 0
        self._free_mb: float | None = None
        self._corridor = 0
        # A mesoscope hook riding along (rig.mesoscope.session_hook.MesoscopeHook): its link state joins the
        # status. Found by its attributes, so this module does not import the mesoscope package.
        self._meso = next((h for h in runner.hooks if hasattr(h, "frames") and hasattr(h, "gaps")
                           and hasattr(h, "link")), None)
        self._meso_last: tuple[float, int] | None = None
        logging.getLogger().addHandler(self._faults)
        self.info.setdefault("protocol", p.name)
        self.info.setdefault("kind", p.kind)
        self.info["corridors"] = self._corridor_names
        self.info["rewarded"] = [c.rewarded for c in p.corridors]
        self.info["lengths_cm"] = [c.length_cm for c in p.corridors]
        self.info["stages"] = self._stage_names
        self.info["frame_rate_hz"] = 1.0 / runner.period
        self.info["max_flush_s"] = runner.valve_guard.max_open_ms / 1000.0
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
            self._count(ev.kind)
            self._stages.add(ev.kind, ev.data)
            self._publish("event", {"i": i, "t": ev.t, "kind": ev.kind, "trial": ev.trial,
                                    "position_cm": ev.position_cm, "corridor": s.corridor, "data": ev.data})
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

    def end(self, runner: Runner, result: RunResult | None) -> None:
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
            "trials": self._trials, "rewards": self._rewards, "water_ul": round(runner.valve_guard.water_ul, 6),
            "missed_frames": self._stats.missed if result is None else result.missed_frames,
        })
        logging.getLogger().removeHandler(self._faults)

    # ---- what is published ------------------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        limits: dict[str, float] = {"manual_reward_ul_max": MAX_MANUAL_REWARD_UL}
        if self._runner is not None:
            limits["flush_s_max"] = self._runner.valve_guard.max_open_ms / 1000.0
            limits["manual_rewards_per_minute"] = self._runner.valve_guard.safety.manual_rewards_per_minute
        return {**self.info, "pid": os.getpid(), "telemetry": self.telemetry_endpoint,
                "commands": self.commands_endpoint, "limits": limits}

    def status(self) -> dict[str, Any]:
        wall = time.perf_counter()
        runner = self._runner
        if runner is not None and (self._free_mb is None or int(wall) % 5 == 0):
            try:
                self._free_mb = shutil.disk_usage(runner.writer.path).free / 1e6
            except OSError as e:
                log.warning("cannot read free disk space: %s", e)
        guard = runner.valve_guard if runner is not None else None
        return {
            "running": True, "i": self._i, "t": round(self._t, 3), "elapsed_s": round(wall - self._wall0, 3),
            "trials": self._trials, "rewards": self._rewards,
            "water_ul": round(guard.water_ul, 6) if guard is not None else 0.0,
            "paused": self._paused, "valve_open": bool(guard is not None and guard.is_open),
            **self._stages.status(),
            "missed_frames": self._stats.missed, "corridor": self._corridor,
            "free_disk_mb": None if self._free_mb is None else round(self._free_mb, 1),
            "drivers": self._driver_health(), "controlled_by": self._controller.label if self._controller else None,
            "requests_rejected": self.rejected, "requests_refused": self.refused, **self._stats.take(),
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
        gaps = list(getattr(hook, "gaps", ()) or ())
        return {
            "connected": link is not None,
            "alive": bool(getattr(link, "alive", False)) if link is not None else False,
            "frames": n, "rate_hz": rate,
            "drops": int(getattr(counters, "seq_gaps", 0) or 0),
            "rejected": int(getattr(counters, "refused", 0) or 0),
            "receiver_alive": getattr(link, "receiver_failure", None) is None,
            "reconnects": int(getattr(counters, "reconnects", 0) or 0),
            # The link stamps frames with perf_counter (the rig clock), like `wall` here.
            "last_frame_age_s": None if last_t is None else round(max(wall - last_t, 0.0), 3),
            "imaging_gaps": len(gaps),
            "in_gap": bool(gaps) and getattr(gaps[-1], "end", 0) is None,
        }

    def _driver_health(self) -> dict[str, str]:
        if self._runner is None:
            return {}
        return {role: type(device).__name__ for role, device in self._runner.devices.by_role().items()}

    def _count(self, kind: str) -> None:
        if kind == EventKind.TRIAL_END:
            self._trials += 1
        elif kind == EventKind.REWARD:
            self._rewards += 1

    def _reset_batch(self) -> None:
        self._batch: dict[str, list[float | int]] = {k: [] for k in ("i", "t", "pos", "speed", "trial", "corridor",
                                                                      "grey")}

    def _publish(self, topic: str, body: dict[str, Any]) -> None:
        try:
            self._pub.send_multipart([topic.encode(), encode(body)], zmq.NOBLOCK)
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
            try:
                reply = self._handle(body)
            except Exception as e:  # a bug here must cost one reply, never the session; it is logged
                log.exception("command handling failed")
                reply = {"id": None, "ok": False, "error": f"internal error: {type(e).__name__}"}
            try:
                self._router.send_multipart([ident, b"", encode(reply)], zmq.NOBLOCK)
            except zmq.Again:
                log.warning("command reply to a slow client dropped")

    def _reject(self, rid: Any, error: str) -> dict[str, Any]:
        self.rejected += 1
        if self.rejected <= 20 or self.rejected % 1000 == 0:  # a flood must not flood the log too
            log.warning("control request rejected (%d so far): %s", self.rejected, error)
        return {"id": rid, "ok": False, "error": error}

    def _refuse(self, req: Request, error: str) -> dict[str, Any]:
        self.refused += 1
        if self.refused <= 20 or self.refused % 1000 == 0:
            log.warning("control request %s refused (%d so far): %s", req.action, self.refused, error)
        return {"id": req.id, "ok": False, "action": req.action, "error": error}

    def _handle(self, body: bytes) -> dict[str, Any]:
        req, rid, error = parse_request(body)
        if req is None:
            return self._reject(rid, error)
        if req.action == "hello":
            return {"id": req.id, "ok": True, "action": "hello", **self.hello(), "status": self.status(),
                    "controller": self._controller is not None and self._controller.id == req.client,
                    "controlled_by": self._controller.label if self._controller else None}
        if self._runner is None:
            return self._refuse(req, "the session has not started yet")
        if isinstance(req, TakeControl):
            if not req.client:
                return self._refuse(req, "take_control needs a client id")
            before = self._controller.label if self._controller else None
            self._controller = _Client(req.client, req.label or req.client[:8])
            self._publish("control", {"controlled_by": self._controller.label, "before": before})
            self._runner.writer.operator(self._i, self._t, "take_control", label=self._controller.label,
                                         before=before)
            return {"id": req.id, "ok": True, "action": req.action, "controller": True, "before": before}
        if req.action in CONTROL_ACTIONS:
            if self._controller is None or self._controller.id != req.client:
                who = self._controller.label if self._controller else "nobody"
                return self._refuse(req, f"view only: {who} controls this session; take control first")
        try:
            out = self._do(req)
        except ValueError as e:
            return self._refuse(req, str(e))
        return {"id": req.id, "ok": True, "action": req.action, "i": self._i, **out}

    def _do(self, req: Request) -> dict[str, Any]:
        runner = self._runner
        assert runner is not None
        if isinstance(req, ManualReward):
            volume = req.volume_ul if req.volume_ul is not None else self._default_reward_ul
            if not 0 < volume <= MAX_MANUAL_REWARD_UL:
                raise ValueError(f"volume_ul must be > 0 and <= {MAX_MANUAL_REWARD_UL:g}, got {volume:g}")
            refusal = runner.valve_guard.manual_refusal(runner.clock.now())
            if refusal:
                raise ValueError(refusal)
            runner.operator.put(Operator("manual_reward", volume))
            return {"volume_ul": volume}
        if req.action in ("pause", "resume", "stop"):
            runner.operator.put(Operator(req.action))
            if req.action != "stop":
                self._paused = req.action == "pause"
            return {}
        if isinstance(req, Note):
            runner.operator.put(Operator("note", text=req.text))
            return {"chars": len(req.text)}
        if isinstance(req, ValveOpen):
            limit = runner.valve_guard.max_open_ms / 1000.0
            close_after = req.close_after_s if req.close_after_s is not None else min(DEFAULT_FLUSH_S, limit)
            if close_after > limit:
                raise ValueError(f"close_after_s must be <= the valve's max_open_ms ({limit:g} s), got "
                                 f"{close_after:g}; use `rig prime` outside a session to fill a line")
            d = runner.open_flush(close_after, source="operator")
            if d.outcome == "refused":
                raise ValueError(d.reason)
            return {"close_after_s": d.sent_ms / 1000.0}
        # valve_close: always honoured, whoever asks (closing is always safe)
        runner.close_flush(self._i, "operator")
        return {}
