"""`rig prime --config FILE --seconds S [--pulse-ms P] [--gap-ms G]`: fill (flush) the water line.

S seconds of opening as pulses of at most the valve's max_open_ms, with closed gaps between; only when no
session holds the rig (exit 3 when one does). Logged in the rig's history (DATA/rig-NAME.history.jsonl).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from rig.errors import ExitCode


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("prime", help="fill the water line (pulses within max_open_ms), outside sessions")
    p.add_argument("--config", help="rig config YAML (default: config/sim.yaml)")
    p.add_argument("--seconds", type=float, required=True, help="total opening time (s)")
    p.add_argument("--pulse-ms", type=float, help="each opening (ms; default and maximum: the valve's max_open_ms)")
    p.add_argument("--gap-ms", type=float, default=50.0, help="closed time between openings (default: 50)")
    p.add_argument("--data", help="data directory holding the rig's history (default: the config's data_dir)")
    p.add_argument("--by", help="who primes (default: the config's lab.experimenter, else your user name)")
    p.set_defaults(func=cmd_prime)


def cmd_prime(args: argparse.Namespace) -> int:
    from rig.cli.launch import hold_rig
    from rig.lab import journal, rig_history
    from rig.loading import config_path, load_config
    from rig.runner.hooks import SignalStop
    from rig.setup.prime import PrimePlan, prime

    path = config_path(args.config)
    config = load_config(path)
    max_open_ms = float(config.driver_params("valve").max_open_ms)  # type: ignore[attr-defined]
    try:
        plan = PrimePlan.make(args.seconds, max_open_ms, args.pulse_ms, args.gap_ms)
    except ValueError as e:
        print(f"rig prime: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    lock = hold_rig(config, "rig prime", protocol="prime")
    signals = SignalStop()
    try:
        with lock, signals.installed():
            result = prime(config, plan, stop=lambda: bool(signals.received),
                           say=lambda m: print(m, file=sys.stderr, flush=True))
    except (OSError, ValueError, RuntimeError) as e:
        print(f"rig prime: {e}", file=sys.stderr)
        return ExitCode.FAULT
    by = args.by or config.lab.experimenter or getpass.getuser()
    history = rig_history.config_history_path(config, Path(args.data) if args.data else None)
    rig_history.append(history, rig_history.PrimeRecord(
        recorded_at=journal.now_iso(), by=by, rig=config.name, config=str(path), seconds=plan.seconds,
        pulse_ms=plan.pulse_ms, gap_ms=plan.gap_ms, pulses=result.pulses, open_s=result.open_s,
        complete=result.complete, reason=result.reason))
    print(f"{'primed' if result.complete else 'priming ' + result.reason}: {result.pulses} opening(s), "
          f"{result.open_s:g} s open (logged in {history})")
    if signals.received or result.reason == "interrupted":
        return ExitCode.SIGNAL
    return ExitCode.OK if result.complete else ExitCode.FAULT
