"""The mesoscope in a session: a runner hook that starts imaging, records the link and proves sync.

Lifecycle (rig.runner.loop.LoopHook):
- start: start an acquisition named after the session folder (ANIMAL_DATE_NNN) and wait until the
  pre-roll (`pre_roll_frames`, at least `min_frames`, 20 by default) has arrived at the expected rate,
  so imaging runs before the task. If it does not, raise MesoscopeStartError: the task never starts and
  the session folder is closed incomplete with the reason. Once imaging runs, the session clock is
  restarted, so task time 0 is when the task starts, not when the mesoscope was asked to start; frames
  acquired while waiting keep their (negative) session times.
- iteration: drain the link (never blocks) and log every message to mesoscope.jsonl, and every refused
  message as a fault (faults.jsonl: once per kind, then one line per second with a count); watch for
  the mesoscope going silent or stopping by itself: behaviour keeps running, a warning is logged and the
  imaging gap is recorded. A dead receiver thread is noticed at the next iteration: a fault, a gap,
  and `health()` reports it.
- end: keep imaging for the post-roll (`post_roll_frames` more frames after the task ended, 20 by
  default), stop the acquisition, collect the last frame-clock edges and messages, reconcile the
  session's frame clock (the TTL, timing truth) with the frame messages (identity) into
  frame_table.npy, and write sync_report.json. A session whose link was unhealthy is marked incomplete
  (the RunResult given to `end`), with the reason.
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from drivers.clockfit import LinearFit
from rig.datalog.reader import BINARY_FIELDS
from rig.datalog.writer import SessionWriter, json_default
from rig.mesoscope.config import MesoscopeSettings
from rig.mesoscope.faults import LinkFault
from rig.mesoscope.keys import ClientKeys
from rig.mesoscope.link import LinkError, LoggedMessage, MesoscopeLink, frames_to_array
from rig.mesoscope.messages import FrameMsg, MessageError, read_object
from rig.runner.hooks import LoopHook
from rig.sync.reconcile import reconcile, sync_report

if TYPE_CHECKING:
    from rig.engine.records import Step
    from rig.runner.loop import Runner, RunResult

log = logging.getLogger(__name__)

FRAME_TABLE = "frame_table.npy"
SYNC_REPORT = "sync_report.json"


class MesoscopeStartError(RuntimeError):
    """The mesoscope could not be started as required; the task was not started. `path`: the session
    folder, closed incomplete with this message as the reason (None if refused before it was used)."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


@dataclass
class ImagingGap:
    """A stretch of session time (s) during which behaviour ran without imaging."""

    start: float
    end: float | None
    reason: str


def session_stem(folder: Path) -> str:
    """ANIMAL_YYYY-MM-DD_NNN for DATA/ANIMAL/YYYY-MM-DD/NNN: the imaging files' name on the mesoscope PC."""
    folder = Path(folder)
    return f"{folder.parent.parent.name}_{folder.parent.name}_{folder.name}"


class MesoscopeHook(LoopHook):
    """Runs the mesoscope link inside a session. Give it to run_session(..., hooks=(hook,))."""

    def __init__(self, settings: MesoscopeSettings, *, keys: ClientKeys | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.keys = keys
        self.metadata = dict(metadata or {})
        self.link: MesoscopeLink | None = None
        self.frames: list[FrameMsg] = []  # every frame message received, in arrival order
        self.gaps: list[ImagingGap] = []
        self.report: dict[str, Any] | None = None  # the sync report, once the session has ended
        self._writer: SessionWriter | None = None
        self._origin = 0.0  # perf_counter at session time 0
        self._events_seen = 0
        self._problems: list[str] = []  # what made the link unhealthy (see health())
        self._receiver_reported = False

    # ---- LoopHook ----------------------------------------------------------------------------------

    def start(self, runner: Runner) -> None:
        s = self.settings
        if runner.clock.virtual:
            raise MesoscopeStartError(
                "the mesoscope link needs a real-time session: a --fast session runs on a virtual clock "
                "that the mesoscope cannot follow; run without --fast, or use a config without mesoscope:",
                runner.writer.path)
        writer = self._writer = runner.writer
        self._origin = time.perf_counter() - runner.clock.now()
        stem = session_stem(writer.path)
        metadata = {"animal": writer.path.parent.parent.name, "date": writer.path.parent.name,
                    "session": writer.path.name, "protocol": runner.protocol.name, **self.metadata}
        link = MesoscopeLink(s.endpoint_cmd, s.endpoint_frames, self.keys, s.command_timeout_s,
                             clock=time.perf_counter, ping_interval_s=s.ping_interval_s, silence_s=s.silence_s)
        pre_roll = max(s.min_frames, s.pre_roll_frames)
        try:
            link.start(stem, metadata)
            # The pre-roll's own duration comes on top of the wait for imaging to begin.
            rate = link.wait_for_frames(pre_roll, s.expected_rate_hz,
                                        s.start_timeout_s + pre_roll / s.expected_rate_hz, s.rate_tolerance)
        except LinkError as e:
            self._refuse(link, e)
            raise MesoscopeStartError(f"the mesoscope did not start, so the task was not started: {e}",
                                      writer.path) from e
        except BaseException:
            link.close()
            raise
        self.link = link
        # Task time 0 is now: the wait for imaging must not count as task time (or as missed display frames).
        clock = runner.clock
        clock.restart()
        now, perf, unix = clock.now(), time.perf_counter(), time.time()
        self._origin = perf - now
        writer.clock_origin(self._origin, unix - now)
        self._drain(0, link)
        writer.mesoscope(0, 0.0, "imaging_ready", stem=stem, measured_rate_hz=rate,
                         expected_rate_hz=s.expected_rate_hz, pre_roll_frames=link.frames_received())

    def health(self) -> list[str]:
        """What is wrong with the link that makes this session's data incomplete (empty: healthy):
        a receiver thread that died, an error inside the hook. Cheap; for the runner to poll."""
        link = self.link
        if link is None:
            return list(getattr(self, "_final_problems", self._problems))
        problems = list(self._problems)
        if not self._receiver_reported:
            failure = link.receiver_failure
            if failure is not None:
                problems.append(failure)
        return problems

    def iteration(self, i: int, t: float, step: Step) -> None:
        link = self.link
        if link is None:
            return
        try:
            self._iteration(i, t, link)
        except Exception as e:  # noqa: BLE001 - the loop must go on; the session is marked incomplete
            self._problem(i, t, "hook_error", f"mesoscope hook failed in iteration {i}: {type(e).__name__}: {e}")
            log.exception("mesoscope hook iteration %d", i)

    def _problem(self, i: int, t: float, kind: str, text: str) -> None:
        if text not in self._problems:
            self._problems.append(text)
            if self._writer is not None:
                self._writer.fault(i, t, "mesoscope", kind, text)

    def _iteration(self, i: int, t: float, link: MesoscopeLink) -> None:
        self._drain(i, link)
        failure = link.receiver_failure
        if failure is not None and not self._receiver_reported:
            self._receiver_reported = True
            self._problem(i, t, "receiver_died", failure)
        if failure is not None:
            down: str | None = "the mesoscope link's receiver thread died"
        else:
            down = None if link.alive else "the mesoscope went silent"
        stop = link.acquisition_stop
        if down is None and stop is not None:
            down = f"the mesoscope stopped acquiring ({stop.reason})"
        open_gap = self.gaps[-1] if self.gaps and self.gaps[-1].end is None else None
        if down is not None and open_gap is None:
            start = self._last_frame_t(t)
            self.gaps.append(ImagingGap(start, None, down))
            message = (f"{down} at session time {start:.3f} s; behaviour keeps recording, the imaging gap "
                       "is flagged in sync_report.json")
            log.warning("mesoscope: %s", message)
            self._writer_or_fail().mesoscope(i, t, "warning", message=message)
        elif down is None and open_gap is not None:
            open_gap.end = t
            self._writer_or_fail().mesoscope(i, t, "imaging_resumed", gap_s=t - open_gap.start)

    def end(self, runner: Runner, result: RunResult | None) -> None:
        link = self.link
        if link is None:
            return
        try:
            self._finish(runner)
        finally:
            self._final_problems = self.health()  # the runner asks health() again after end()
            link.close()
            self.link = None

    # ---- internals ---------------------------------------------------------------------------------

    def _writer_or_fail(self) -> SessionWriter:
        if self._writer is None:
            raise RuntimeError("MesoscopeHook used before start()")
        return self._writer

    def _refuse(self, link: MesoscopeLink, error: LinkError) -> None:
        """Record why the mesoscope did not start, cancel any acquisition, and close the link."""
        try:
            writer = self._writer_or_fail()
            try:
                link.stop(wait_s=0.5)
            except LinkError as e:  # nothing to stop or nobody there: the start error says what matters
                log.info("mesoscope: stop after a failed start: %s", e)
            self._drain(0, link)
            writer.mesoscope(0, time.perf_counter() - self._origin, "start_failed", error=str(error),
                             link_events=link.events())
        finally:
            link.close()

    def _last_frame_t(self, now: float) -> float:
        """Session time the imaging was last heard of: the last frame's receipt, else now."""
        if self.frames and self.frames[-1].t_receive is not None:
            return self.frames[-1].t_receive - self._origin
        return now

    def _drain(self, i: int, link: MesoscopeLink, final: bool = False) -> None:
        """Take new frames and log every message, link event and fault; never blocks."""
        writer = self._writer_or_fail()
        self.frames.extend(link.poll())
        for m in link.take_log():
            self._record(writer, i, m)
        events = link.events()
        for text in events[self._events_seen:]:
            writer.mesoscope(i, time.perf_counter() - self._origin, "link_event", text=text)
        self._events_seen = len(events)
        for f in link.take_faults(final):
            self._fault(writer, i, f)

    def _fault(self, writer: SessionWriter, i: int, f: LinkFault) -> None:
        if f.kind == "receiver_died":
            return  # logged once by _iteration, with the same text
        writer.fault(i, f.t - self._origin, "mesoscope", f.kind, f.text())

    def _record(self, writer: SessionWriter, i: int, m: LoggedMessage) -> None:
        t = m.t - self._origin
        if m.error is None:
            try:
                fields: dict[str, Any] = read_object(m.data, "logged message")
            except MessageError as e:  # the link accepted it, so this cannot happen; keep the bytes anyway
                fields = {"raw": m.data.decode("utf-8", "replace")[:1024], "error": str(e)}
            kind = str(fields.get("type", "unknown"))
            writer.mesoscope(i, t, kind, dir=m.direction, channel=m.channel, msg=fields)
        else:
            writer.mesoscope(i, t, "rejected", dir=m.direction, channel=m.channel, error=m.error,
                             raw=m.data.decode("utf-8", "replace"))

    def _finish(self, runner: Runner) -> None:
        s, writer, link = self.settings, self._writer_or_fail(), self.link
        assert link is not None
        i = runner.iteration
        problems: list[str] = []
        post_roll = self._post_roll(i, link)
        try:
            link.stop(wait_s=s.stop_wait_s)
            time.sleep(s.ttl_settle_s)  # the last frame-clock edges may still be on their way in
        except LinkError as e:
            problems.append(f"stop: {e}")
            log.warning("mesoscope: %s", e)
        fc = runner.devices.frame_clock
        try:
            edges = fc.read()
            if len(edges):
                writer.frame_clock(i, np.asarray(fc.clock.to_session(edges), dtype=float))
        except (OSError, ValueError, RuntimeError) as e:
            problems.append(f"reading the last frame-clock edges: {e}")
        self._drain(i, link, final=True)
        t_end = runner.clock.now()
        for gap in self.gaps:
            if gap.end is None:
                gap.end = t_end
        writer.flush()
        ttl = np.fromfile(writer.path / "frame_clock.bin", dtype=np.dtype(list(BINARY_FIELDS["frame_clock.bin"])))
        msgs = frames_to_array(self.frames)
        msgs["rig_receive_time"] -= self._origin
        ping_fit = self._ping_fit(link)
        report: dict[str, Any]
        try:
            table = reconcile(ttl["t"], msgs, prior=ping_fit)
            report = sync_report(table, ping_fit)
            writer.attach(FRAME_TABLE, _npy_bytes(table.rows))
        except ValueError as e:
            problems.append(f"reconcile: {e}")
            report = {"error": str(e)}
        report["session_end_s"] = t_end
        report["imaging_gaps"] = [asdict(g) for g in self.gaps]
        report["link"] = {
            "endpoint_cmd": s.endpoint_cmd, "endpoint_frames": s.endpoint_frames,
            "expected_rate_hz": s.expected_rate_hz, "counters": asdict(link.counters),
            "refused": link.counters.refused, "faults": dict(link.faults.totals),
            "events": link.events(), "pings": len(link.pings), "problems": problems + self.health(),
            "post_roll": post_roll,
            # Link events quote host perf_counter times ("rig time"); session time = that - this.
            "host_clock_at_session_zero_s": self._origin,
        }
        self.report = report
        writer.attach(SYNC_REPORT, json.dumps(report, indent=1, default=json_default).encode())

    def _post_roll(self, i: int, link: MesoscopeLink) -> dict[str, Any]:
        """Keep acquiring until post_roll_frames more frames have arrived after the task ended (while the
        mesoscope is alive; at most 1.5x their duration + 1 s), draining the link meanwhile."""
        s, writer = self.settings, self._writer_or_fail()
        want = s.post_roll_frames
        need = want + 1  # the frame acquired just before the end may still be on its way: it does not count
        n0, t0 = link.frames_received(), time.perf_counter()
        deadline = t0 + 1.5 * need / s.expected_rate_hz + 1.0
        while (link.frames_received() - n0 < need and link.alive and link.acquisition_stop is None
               and time.perf_counter() < deadline):
            self._drain(i, link)
            time.sleep(0.01)
        got = link.frames_received() - n0
        out = {"frames": got, "wanted": want, "s": round(time.perf_counter() - t0, 3)}
        writer.mesoscope(i, time.perf_counter() - self._origin, "post_roll", **out)
        if got < want:
            log.warning("mesoscope: post-roll got %d of %d frames", got, want)
        return out

    def _ping_fit(self, link: MesoscopeLink) -> LinearFit | None:
        """Mesoscope clock -> session time from the link's pings (None without pings)."""
        try:
            f = link.clock_fit()
        except ValueError:
            return None
        return LinearFit(f.offset - self._origin, f.scale, f.n, f.rms_s, f.max_abs_s)


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def mesoscope_hook(config: Any, *, config_dir: Path | None = None) -> MesoscopeHook | None:
    """The hook for a rig config's `mesoscope:` section (None when it has none). Key paths in the
    section are relative to config_dir (the config file's folder)."""
    settings: MesoscopeSettings | None = getattr(config, "mesoscope", None)
    if settings is None:
        return None
    return MesoscopeHook(settings, keys=settings.client_keys(config_dir), metadata={"rig": config.name})
