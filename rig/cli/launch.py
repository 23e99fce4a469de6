"""The launch path shared by `rig run` and the app's runner process: read the arguments into a protocol,
a config and session options, then run the session with SIGINT/SIGTERM asking the loop to stop."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from rig import loading
from rig.errors import ExitCode
from rig.loading import find_file
from rig.runner.hooks import LoopHook, SignalStop

if TYPE_CHECKING:
    from rig.config import RigConfig
    from rig.mesoscope.session_hook import MesoscopeHook
    from rig.protocol import Protocol
    from rig.runner.lock import RigLock
    from rig.runner.session import SessionOptions


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def add_session_options(p: argparse.ArgumentParser) -> None:
    """The options of a session, shared by `rig run` and the app's runner process (one launch path)."""
    p.add_argument("--config", help="rig config YAML (default: config/sim.yaml)")
    p.add_argument("--animal", help="animal ID (required when the config names real devices; a simulated rig's "
                                    "default: sim-mouse)")
    p.add_argument("--weight-g", type=float, metavar="G", help="the animal's weight at session start (g); journaled "
                                                               "and written into the session header")
    p.add_argument("--data", help="data directory (default: the config's data_dir)")
    p.add_argument("--seed", type=int, help="random seed (default: drawn and recorded)")
    p.add_argument("--fast", action="store_true", help="simulated rig on a virtual clock, as fast as possible")
    p.add_argument("--max-trials", type=int, help="end after this many trials")
    p.add_argument("--duration", type=float, help="end after this many seconds")
    p.add_argument("--experimenter", help="who ran the session")
    p.add_argument("--notes", help="free-text notes stored in the header")
    p.add_argument("--date", type=_iso_date, help="the session's day, YYYY-MM-DD (default today); for simulated "
                                                  "curricula over days")


def hold_rig(config: RigConfig, source: str, **info: object) -> RigLock:
    """The rig's lock and its devices' (serial port, NI-DAQ device), for anything that opens the rig's
    hardware: a session, a check, a calibration, a prime. Raises RigBusy (exit 3, one line) when held."""
    from rig.runner.lock import RigLock

    return RigLock.acquire(config.name, None, config.resources(), source=source, **info)


def print_problems(problems: Sequence[object]) -> None:
    for p in problems:
        print(p, file=sys.stderr)


@dataclass(frozen=True)
class RunInputs:
    """What `rig run` and the GUI's runner process both build from their arguments before a session."""

    protocol: Protocol
    config: RigConfig
    config_path: Path
    options: SessionOptions
    mesoscope: MesoscopeHook | None


def prepare_run(args: argparse.Namespace, prog: str) -> RunInputs | int:
    """Load and check the protocol and config named by args; an exit code (after printing why) on bad input."""
    from rig.loading import LoadError, load_config, load_protocol
    from rig.mesoscope.session_hook import mesoscope_hook
    from rig.runner.session import SessionOptions

    config_path = loading.config_path(args.config)
    try:
        protocol = load_protocol(find_file(args.protocol, "protocols"))
        config = load_config(config_path)
    except LoadError as e:
        print_problems(e.problems)
        return ExitCode.BAD_INPUT
    hook = mesoscope_hook(config, config_dir=config_path.parent)
    if hook is not None and args.fast:
        print(f"{prog}: {config_path}: the config's mesoscope: section needs a real-time session; drop --fast",
              file=sys.stderr)
        return ExitCode.BAD_INPUT
    refused = lab_checks(args, protocol, config, config_path, prog)
    if isinstance(refused, int):
        return refused
    animal, weight_g = refused
    options = SessionOptions(
        animal=animal, seed=args.seed, fast=args.fast, max_trials=args.max_trials,
        duration_s=args.duration, data_dir=Path(args.data) if args.data else None,
        experimenter=args.experimenter or "", notes=args.notes or "", date=getattr(args, "date", None),
        weight_g=weight_g,
    )
    return RunInputs(protocol, config, config_path, options, hook)


def lab_checks(args: argparse.Namespace, protocol: Protocol, config: RigConfig, config_path: Path,
               prog: str) -> tuple[str, float | None] | int:
    """(animal, weight at start) once the lab's checks pass, else the exit code after printing why: --animal
    is required with real devices; reward volumes must be deliverable as logged; the registry's refusals."""
    from rig.config import PERSON_NAME
    from rig.lab.journal import LabRecordError
    from rig.lab.session_start import prepare_lab
    from rig.lab.water import check_reward_volumes
    from rig.loading import LoadError

    animal = args.animal
    if not animal:  # not given (the app's runner passes "" for an empty field)
        real = config.real_animal_roles
        if real:
            named = ", ".join(f"{r}: {config.drivers[r].type}" for r in real)
            print(f"{prog}: {config_path}: this config names real devices ({named}), so an animal is on the rig: "
                  "give --animal ID", file=sys.stderr)
            return ExitCode.BAD_INPUT
        animal = "sim-mouse"
    problems = check_reward_volumes(protocol, config, find_file(args.protocol, "protocols"), config_path)
    if problems:
        print_problems(problems)
        return ExitCode.BAD_INPUT
    weight_g = getattr(args, "weight_g", None)
    data_dir = Path(args.data if args.data else config.data_dir).expanduser()
    try:
        lab = prepare_lab(config, data_dir, animal, weight_g=weight_g, day=getattr(args, "date", None))
    except LoadError as e:
        print_problems(e.problems)
        return ExitCode.BAD_INPUT
    except LabRecordError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    for w in lab.warnings:
        print(f"{prog}: warning: {w}", file=sys.stderr)
    who = args.experimenter or lab.experimenter
    if who and not PERSON_NAME.match(who):
        print(f"{prog}: warning: experimenter {who!r}: NWB and DANDI want 'Last, First' (e.g. 'Doe, Jane'); "
              "the NWB export will ask for the name in that form", file=sys.stderr)
    return animal, weight_g


def run_prepared(prep: RunInputs, prog: str, *, hooks: tuple[LoopHook, ...] = ()) -> int:
    """Run the session with SIGINT/SIGTERM asking the loop to stop; print the outcome, the folder last."""
    from rig.mesoscope.session_hook import MesoscopeStartError
    from rig.runner.session import run_session

    signals = SignalStop()
    all_hooks = ((prep.mesoscope,) if prep.mesoscope is not None else ()) + (signals, *hooks)
    try:
        with signals.installed():
            result = run_session(prep.protocol, prep.config, prep.options, hooks=all_hooks)
    except MesoscopeStartError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        print(e.path)
        return ExitCode.FAULT
    except OSError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return ExitCode.FAULT
    r = result.run
    print(f"{'complete' if r.complete else 'incomplete'}: {r.reason}; trials {r.trials}, rewards {r.rewards}, "
          f"seed {result.seed}, missed display frames {r.missed_frames}")
    print(result.path, flush=True)
    if signals.received:
        return ExitCode.SIGNAL
    return ExitCode.OK if r.complete else ExitCode.FAULT
