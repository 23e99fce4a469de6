"""`rig calibrate-valve --config FILE [--durations 20,40,80] [--pulses 100] [--interval-ms 200]`.

Pulses the valve at each duration, asks for the weighed water on stdin, shows the fit and residuals and
writes the points into the config's valve_calibration section (the old file kept as FILE.bak).
"""

from __future__ import annotations

import argparse
import sys

from rig.errors import ExitCode


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("calibrate-valve", help="measure the valve's volume per opening")
    p.add_argument("--config", required=True, help="rig config YAML to calibrate and update")
    p.add_argument("--durations", default="20,40,80", help="opening durations in ms (default: %(default)s)")
    p.add_argument("--pulses", type=int, default=100, help="openings per duration (default: %(default)s)")
    p.add_argument("--interval-ms", type=float, default=200.0, help="from one opening to the next (default: 200)")
    p.add_argument("--dry-run", action="store_true", help="show the fit but leave the config as it is")
    p.set_defaults(func=cmd_calibrate)


def parse_durations(text: str) -> list[float]:
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--durations: expected comma-separated milliseconds like 20,40,80, got {text!r}") from None
    if not out:
        raise ValueError("--durations: no durations given")
    return out


def ask_weight(duration_ms: float, pulses: int) -> float:
    """Read grams from stdin until a positive number is given; EOF aborts."""
    while True:
        print(f"Weigh the water from {pulses} x {duration_ms:g} ms, put an empty tube under the spout, "
              f"then enter the weight in grams: ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            raise EOFError(f"no weight given for {duration_ms:g} ms (end of input)")
        try:
            grams = float(line.strip())
        except ValueError:
            print(f"  not a number: {line.strip()!r}", file=sys.stderr)
            continue
        if grams > 0:
            return grams
        print(f"  the weight must be > 0 g, got {grams:g}", file=sys.stderr)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from rig.loading import LoadError, find_file, load_config
    from rig.setup.calibrate import calibrate_valve, write_calibration

    path = find_file(args.config, "config")
    try:
        config = load_config(path)
    except LoadError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return ExitCode.BAD_INPUT
    try:
        durations = parse_durations(args.durations)
        fit = calibrate_valve(
            config, durations, args.pulses, args.interval_ms,
            lambda d: ask_weight(d, args.pulses),
            say=lambda msg: print(msg, file=sys.stderr, flush=True),
        )
    except EOFError as e:
        print(f"\nrig calibrate-valve: {e}; nothing written", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except ValueError as e:
        print(f"rig calibrate-valve: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except OSError as e:
        print(f"rig calibrate-valve: {e}", file=sys.stderr)
        return ExitCode.FAULT
    print(fit.report())
    if args.dry_run:
        print("dry run: config not changed")
        return ExitCode.OK
    try:
        backup = write_calibration(path, fit)
    except (LoadError, ValueError, OSError) as e:
        print(f"rig calibrate-valve: not written: {e}", file=sys.stderr)
        return ExitCode.FAULT
    print(f"wrote valve_calibration to {path} (previous version: {backup})")
    return ExitCode.OK
