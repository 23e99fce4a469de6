"""Pre-session sync check (part of `rig check`): a short test acquisition proves the frame clock works.

Checks, in order: the mesoscope starts and frames arrive at its declared rate; the frame-clock TTL is
present; the TTL rate matches the declared rate; the TTL and ZeroMQ paths count the same frames.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from drivers.base import CheckResult, Clock, FrameClock
from drivers.registry import DriverContext
from rig.config import driver_registry
from rig.mesoscope.config import MesoscopeSettings
from rig.mesoscope.keys import ClientKeys
from rig.mesoscope.link import FrameRateMismatch, LinkError, MesoscopeLink, frames_to_array
from rig.mesoscope.messages import FrameMsg
from rig.runner.clock import RealClock
from rig.sync.reconcile import reconcile, sync_report

NAME = "mesoscope"


def mesoscope_sync_check(settings: MesoscopeSettings, frame_clock: FrameClock, clock: Clock, *,
                         keys: ClientKeys | None = None, duration_s: float | None = None,
                         stem: str | None = None) -> list[CheckResult]:
    """Run a test acquisition of duration_s (default settings.check_duration_s) and check sync.

    `frame_clock` must be open; `clock` is the timeline its ClockMap maps onto (the session clock the
    driver was built with). Never raises for a failed check: every problem is a failed CheckResult.
    """
    s = settings
    duration = s.check_duration_s if duration_s is None else duration_s
    stem = stem or f"synccheck_{datetime.now():%Y-%m-%d_%H%M%S}"
    results: list[CheckResult] = []
    ttl: list[np.ndarray] = []
    frames: list[FrameMsg] = []

    def take_ttl() -> None:
        edges = frame_clock.read()
        if len(edges):
            ttl.append(np.asarray(frame_clock.clock.to_session(edges), dtype=float))

    with MesoscopeLink(s.endpoint_cmd, s.endpoint_frames, keys, s.command_timeout_s, clock=clock.now,
                       ping_interval_s=0, silence_s=s.silence_s) as link:
        frame_clock.read()  # edges from before the test acquisition are not part of it
        try:
            link.start(stem, {"purpose": "rig check: sync test acquisition"})
            rate = link.wait_for_frames(s.min_frames, s.expected_rate_hz, s.start_timeout_s, s.rate_tolerance)
        except LinkError as e:
            name = "frame rate" if isinstance(e, FrameRateMismatch) else "acquisition"
            _stop_quietly(link)
            return [CheckResult(f"{NAME}: {name}", False, str(e))]
        start = link.acquisition_start
        declared = start.frame_rate_hz if start is not None else s.expected_rate_hz
        results.append(CheckResult(f"{NAME}: acquisition", True,
                                   f"frames arrive at {rate:.3f} Hz (declared {declared:.3f} Hz)"))
        deadline = clock.now() + duration
        while clock.now() < deadline:
            frames.extend(link.poll())
            take_ttl()
            time.sleep(0.01)
        try:
            link.stop(wait_s=s.stop_wait_s)
        except LinkError as e:
            results.append(CheckResult(f"{NAME}: stop", False, str(e)))
        time.sleep(s.ttl_settle_s)
        take_ttl()
        frames.extend(link.poll())

    edges = np.concatenate(ttl) if ttl else np.zeros(0)
    if len(edges) == 0:
        results.append(CheckResult(f"{NAME}: frame clock present", False,
                                   f"no frame-clock edges in {duration:g} s while the mesoscope reported "
                                   f"{len(frames)} frames: check the frame-clock cable and input"))
        return results
    results.append(CheckResult(f"{NAME}: frame clock present", True, f"{len(edges)} frame-clock edges"))
    results.append(_rate_check(edges, declared, s.rate_tolerance))
    results.append(_count_check(edges, frames))
    return results


def _rate_check(edges: np.ndarray, declared: float, tolerance: float) -> CheckResult:
    name = f"{NAME}: frame clock rate"
    if len(edges) < 3:
        return CheckResult(name, False, f"only {len(edges)} frame-clock edges: too few to measure a rate")
    ttl_rate = 1.0 / float(np.median(np.diff(np.sort(edges))))
    ok = abs(ttl_rate / declared - 1) <= tolerance
    return CheckResult(name, ok, f"TTL at {ttl_rate:.3f} Hz, mesoscope declares {declared:.3f} Hz"
                       + ("" if ok else f" (more than {tolerance:.0%} apart: wrong input or scan settings?)"))


def _count_check(edges: np.ndarray, frames: list[FrameMsg]) -> CheckResult:
    name = f"{NAME}: TTL and ZeroMQ counts"
    try:
        report: dict[str, Any] = sync_report(reconcile(edges, frames_to_array(frames)))
    except ValueError as e:
        return CheckResult(name, False, f"cannot reconcile: {e}")
    flags = {k: v for k, v in report["flag_counts"].items() if v}
    ok = report["counts_agree"] and not flags
    return CheckResult(name, ok, f"{report['ttl_frames']} frames by TTL, {report['message_frames']} by ZeroMQ"
                       + ("" if ok else f"; flagged: {flags}"))


def _stop_quietly(link: MesoscopeLink) -> None:
    try:
        link.stop(wait_s=0.5)
    except LinkError:
        return  # nobody to stop: the failed check already says why


def check_from_config(config: Any, *, duration_s: float | None = None,
                      config_dir: Path | None = None) -> list[CheckResult]:
    """The sync check for a rig config with a `mesoscope:` section ([] without one): builds and opens
    only the config's frame-clock driver, on a fresh real-time clock."""
    settings: MesoscopeSettings | None = getattr(config, "mesoscope", None)
    if settings is None:
        return []
    entry = config.drivers["frame_clock"]
    clock = RealClock()
    try:
        fc = driver_registry().create("frame_clock", entry.type, config.driver_params("frame_clock"),
                                       DriverContext(clock=clock, world=None))
    except (TypeError, ValueError) as e:
        return [CheckResult(f"{NAME}: frame clock", False,
                            f"frame_clock type {entry.type!r} cannot be used for the sync check ({e}); a "
                            "simulated rig needs type emulator_ttl with `rig mesoscope-sim --truth FILE`")]
    try:
        fc.open()
    except (OSError, RuntimeError) as e:
        return [CheckResult(f"{NAME}: frame clock", False, str(e))]
    try:
        return mesoscope_sync_check(settings, fc, clock, keys=settings.client_keys(config_dir),
                                    duration_s=duration_s)
    finally:
        fc.close()


def sync_check(ctx: Any) -> list[CheckResult]:
    """The check for rig.setup.checks.run_checks (`ctx`: rig.setup.checks.CheckContext, its drivers open):
    `run_checks(cfg, checks=DEFAULT_CHECKS + (sync_check,))`."""
    settings: MesoscopeSettings | None = getattr(ctx.config, "mesoscope", None)
    if settings is None:
        return [CheckResult(NAME, True, "no mesoscope: section in the config; sync check skipped")]
    if ctx.clock.virtual:
        return [CheckResult(NAME, False, "the sync check needs the real-time clock; the mesoscope cannot "
                                         "follow a virtual one")]
    return mesoscope_sync_check(settings, ctx.drivers["frame_clock"], ctx.clock,
                                keys=settings.client_keys())
