"""`rig check [--config FILE] [--json]`: pre-session device checks; exit 0 when all pass, 1 when any fails."""

from __future__ import annotations

import argparse
import json
import sys

from rig.errors import ExitCode


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("check", help="test the rig's devices before a session")
    p.add_argument("--config", help="rig config YAML (default: config/sim.yaml)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout (for the GUI)")
    p.add_argument("--seconds", type=float, default=3.0, help="how long each input is watched (default: 3)")
    p.add_argument("--no-imaging", action="store_true", help="skip the frame-clock check")
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from rig.loading import LoadError, default_config_path, find_file, load_config
    from rig.setup.checks import DEFAULT_CHECKS, CheckSettings, run_checks

    if not args.seconds > 0:
        print(f"rig check: --seconds must be > 0, got {args.seconds}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    path = find_file(args.config, "config") if args.config else default_config_path()
    try:
        config = load_config(path)
    except LoadError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return ExitCode.BAD_INPUT

    def say(msg: str) -> None:
        print(f">>> {msg}", file=sys.stderr, flush=True)

    settings = CheckSettings(window_s=args.seconds, imaging=not args.no_imaging)
    checks = DEFAULT_CHECKS
    if config.mesoscope is not None:
        from rig.mesoscope.check import sync_check

        checks = DEFAULT_CHECKS + (sync_check,)
    report = run_checks(config, checks=checks, settings=settings, say=say)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        for line in report.lines():
            print(line)
        failed = sum(not r.ok for r in report.results)
        print("all checks passed" if report.ok else f"{failed} check(s) failed")
    return ExitCode.OK if report.ok else ExitCode.FAULT

