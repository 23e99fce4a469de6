"""`rig calibrate-valve --config FILE [--durations 20,40,80] [--pulses 100] [--interval-ms 200] [--net]`.

Checks every parameter before the first pulse; pulses the valve at each duration (shortest first); asks
for the empty and the filled tube's weight (or, with --net, the water alone) and checks each entry before
going on; shows the fit and its residuals and refuses a bad one (exit 2). An accepted fit is written into
the config's valve_calibration (id, date, points; the old file kept as FILE.bak). Every attempt, accepted
or refused, goes into the rig's history (DATA/rig-NAME.history.jsonl, DATA: --data or the config's data_dir).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rig.errors import ExitCode

if TYPE_CHECKING:
    from rig.setup.calibrate import Weighed


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("calibrate-valve", help="measure the valve's volume per opening",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="rig config YAML to calibrate and update")
    p.add_argument("--durations", default="20,40,80", help="opening durations in ms (default: %(default)s)")
    p.add_argument("--pulses", type=int, default=100, help="openings per duration (default: %(default)s)")
    p.add_argument("--interval-ms", type=float, default=200.0, help="from one opening to the next (default: 200)")
    p.add_argument("--net", action="store_true", help="enter the net water weight instead of tare and filled")
    p.add_argument("--dry-run", action="store_true", help="show the fit but leave the config as it is")
    p.add_argument("--data", help="data directory holding the rig's history (default: the config's data_dir)")
    p.add_argument("--by", help="who calibrates (default: the config's lab.experimenter, else your user name)")
    p.set_defaults(func=cmd_calibrate)


def parse_durations(text: str) -> list[float]:
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--durations: expected comma-separated milliseconds like 20,40,80, got {text!r}") from None
    if not out:
        raise ValueError("--durations: no durations given")
    return out


def _read_grams(prompt: str) -> float:
    """Grams from stdin, asked again until a number is given; EOF aborts."""
    while True:
        print(prompt, end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            raise EOFError("no weight given (end of input)")
        try:
            return float(line.strip())
        except ValueError:
            print(f"  not a number: {line.strip()!r}", file=sys.stderr)


def asker(pulses: int, net: bool) -> Callable[[float, str | None], Weighed]:
    """The operator's side of rig.setup.calibrate.Weigh: prompts on stderr, answers on stdin."""
    from rig.setup.calibrate import Weighed as Weighing

    def ask(duration_ms: float, problem: str | None) -> Weighed:
        if problem is not None:
            print(f"  not accepted: {problem}", file=sys.stderr)
        what = f"the water from {pulses} x {duration_ms:g} ms"
        try:
            if net:
                return Weighing(_read_grams(f"Weigh {what}; net water (g): "))
            tare = _read_grams(f"Weight of the empty tube for {what} (g): ")
            return Weighing.of(tare, _read_grams(f"Weight of that tube with {what} (g): "))
        except EOFError:
            raise EOFError(f"no weight given for {duration_ms:g} ms (end of input)") from None

    return ask


def cmd_calibrate(args: argparse.Namespace) -> int:
    from rig.cli.launch import hold_rig
    from rig.lab import rig_history
    from rig.loading import LoadError, find_file, load_config
    from rig.setup.calibrate import calibrate_valve, check_request, history_record, write_calibration

    path = find_file(args.config, "config")
    config = load_config(path)
    try:
        durations = parse_durations(args.durations)
        check_request(config, durations, args.pulses, args.interval_ms)  # all of it, before the first pulse
    except ValueError as e:
        print(f"rig calibrate-valve: {e}; nothing was pulsed", file=sys.stderr)
        return ExitCode.BAD_INPUT
    history = rig_history.config_history_path(config, Path(args.data) if args.data else None)
    by = args.by or config.lab.experimenter or getpass.getuser()
    try:
        with hold_rig(config, "rig calibrate-valve", protocol="calibration"):
            run = calibrate_valve(config, durations, args.pulses, args.interval_ms, asker(args.pulses, args.net),
                                  say=lambda msg: print(msg, file=sys.stderr, flush=True))
    except EOFError as e:
        print(f"\nrig calibrate-valve: {e}; nothing written", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except ValueError as e:
        print(f"rig calibrate-valve: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except OSError as e:
        print(f"rig calibrate-valve: {e}", file=sys.stderr)
        return ExitCode.FAULT
    print(run.fit.report())
    if not run.fit.ok:
        rig_history.append(history, history_record(run, config, path, by=by, written=False))
        print(f"rig calibrate-valve: calibration refused, config not changed (the attempt is in {history})",
              file=sys.stderr)
        return ExitCode.BAD_INPUT
    if args.dry_run:
        rig_history.append(history, history_record(run, config, path, by=by, written=False))
        print("dry run: config not changed")
        return ExitCode.OK
    try:
        backup, cal = write_calibration(path, run.fit)
    except (LoadError, ValueError, OSError) as e:
        print(f"rig calibrate-valve: not written: {e}", file=sys.stderr)
        return ExitCode.FAULT
    rig_history.append(history, history_record(run, config, path, by=by, written=True))
    print(f"wrote valve_calibration {cal.id} ({cal.date}) to {path} (previous version: {backup}; history: {history})")
    return ExitCode.OK
