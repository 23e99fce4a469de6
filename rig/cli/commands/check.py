"""`rig check [--config FILE] [--json]`: pre-session device checks; exit 0 when all pass, 1 when any fails.

Every run's results go into the rig's history (DATA/rig-NAME.history.jsonl; DATA: --data or the config's
data_dir), beside its calibrations and primes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rig.errors import ExitCode

if TYPE_CHECKING:
    from rig.config import RigConfig
    from rig.setup.checks import CheckReport


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("check", help="test the rig's devices before a session")
    p.add_argument("--config", help="rig config YAML (default: config/sim.yaml)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout (for the GUI)")
    p.add_argument("--seconds", type=float, default=3.0, help="how long each input is watched (default: 3)")
    p.add_argument("--no-imaging", action="store_true", help="skip the frame-clock check")
    p.add_argument("--data", help="data directory holding the rig's history (default: the config's data_dir)")
    p.add_argument("--by", help="who checks (default: the config's lab.experimenter, else your user name)")
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from rig.cli.launch import hold_rig
    from rig.loading import config_path, load_config
    from rig.setup.checks import DEFAULT_CHECKS, CheckSettings, run_checks

    if not args.seconds > 0:
        print(f"rig check: --seconds must be > 0, got {args.seconds}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    path = config_path(args.config)
    config = load_config(path)

    def say(msg: str) -> None:
        print(f">>> {msg}", file=sys.stderr, flush=True)

    settings = CheckSettings(window_s=args.seconds, imaging=not args.no_imaging)
    checks = DEFAULT_CHECKS
    if config.mesoscope is not None:
        from rig.mesoscope.check import sync_check

        checks = DEFAULT_CHECKS + (sync_check,)
    with hold_rig(config, "rig check", protocol="check"):
        report = run_checks(config, checks=checks, settings=settings, say=say)
    history = _record(report, config, path, args)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        for line in report.lines():
            print(line)
        failed = sum(not r.ok for r in report.results)
        print("all checks passed" if report.ok else f"{failed} check(s) failed")
        print(f"(recorded in {history})" if history else "(not recorded: the rig's history could not be written)")
    return ExitCode.OK if report.ok else ExitCode.FAULT


def _record(report: CheckReport, config: RigConfig, path: Path, args: argparse.Namespace) -> Path | None:
    """Append the results to the rig's history; None (after saying why) when it cannot be written."""
    import getpass

    from rig.lab import journal, rig_history

    history = rig_history.config_history_path(config, Path(args.data) if args.data else None)
    entry = rig_history.CheckRecord(
        recorded_at=journal.now_iso(), by=args.by or config.lab.experimenter or getpass.getuser(), rig=config.name,
        config=str(path), ok=report.ok,
        results=tuple(rig_history.CheckLine(name=r.name, ok=r.ok, message=r.message) for r in report.results))
    try:
        rig_history.append(history, entry)
    except OSError as e:
        print(f"rig check: warning: {history}: {e}", file=sys.stderr)
        return None
    return history

