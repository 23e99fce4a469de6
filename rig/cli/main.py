"""The `rig` command. Exit codes: 0 ok, 1 a fault or failed check, 2 bad input, 3 the rig is busy with another
session, 130 stopped by a signal."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rig.config import RigConfig
    from rig.mesoscope.session_hook import MesoscopeHook
    from rig.protocol import Protocol
    from rig.runner.session import SessionOptions

EXIT_OK, EXIT_FAULT, EXIT_BAD_INPUT, EXIT_BUSY, EXIT_SIGNAL = 0, 1, 2, 3, 130

# Subcommand modules (see rig/cli/commands/__init__.py), in the order `rig --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "rig.cli.commands.board", "rig.cli.commands.summary", "rig.cli.commands.check", "rig.cli.commands.calibrate",
    "rig.cli.commands.mesoscope", "rig.cli.commands.replay", "rig.cli.commands.gui", "rig.cli.commands.export",
    "rig.cli.commands.vr", "rig.cli.commands.cohort",
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = Path("config/sim.yaml")


def find_file(name: str, folder: str) -> Path:
    """A path as given; else the shipped file of that name (`demo` -> protocols/demo.yaml)."""
    p = Path(name)
    if p.exists():
        return p
    for candidate in (REPO_ROOT / folder / name, REPO_ROOT / folder / f"{name}.yaml"):
        if candidate.exists():
            return candidate
    return p  # let the loader report it missing, with its name


def _print_problems(problems: Sequence[object]) -> None:
    for p in problems:
        print(p, file=sys.stderr)


@contextmanager
def signals_stop(stop: Callable[[], None]):
    """SIGINT/SIGTERM ask the loop to end cleanly instead of killing it mid-write."""
    received: list[int] = []

    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        received.append(signum)
        stop()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in old.items():
            signal.signal(s, h)


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

    config_path = find_file(args.config, "config") if args.config else default_config()
    try:
        protocol = load_protocol(find_file(args.protocol, "protocols"))
        config = load_config(config_path)
    except LoadError as e:
        _print_problems(e.problems)
        return EXIT_BAD_INPUT
    hook = mesoscope_hook(config, config_dir=config_path.parent)
    if hook is not None and args.fast:
        print(f"{prog}: {config_path}: the config's mesoscope: section needs a real-time session; drop --fast",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    options = SessionOptions(
        animal=args.animal, seed=args.seed, fast=args.fast, max_trials=args.max_trials,
        duration_s=args.duration, data_dir=Path(args.data) if args.data else None,
        experimenter=args.experimenter or "", notes=args.notes or "", date=getattr(args, "date", None),
    )
    return RunInputs(protocol, config, config_path, options, hook)


def run_prepared(prep: RunInputs, prog: str, *, extra_hooks: tuple = (), on_runner: Callable | None = None,
                 progress: object | None = None) -> int:
    """Run the session with SIGINT/SIGTERM asking the loop to stop; print the outcome, the folder last."""
    from rig.mesoscope.session_hook import MesoscopeStartError
    from rig.runner.session import run_session

    stopper: list[Callable[[], None]] = []

    def wire(runner) -> None:
        stopper.append(runner.request_stop)
        if on_runner is not None:
            on_runner(runner)

    hooks = ((prep.mesoscope,) if prep.mesoscope is not None else ()) + tuple(extra_hooks)
    try:
        with signals_stop(lambda: stopper[0]() if stopper else None) as received:
            result = run_session(prep.protocol, prep.config, prep.options, on_runner=wire, progress=progress,
                                 hooks=hooks)
    except MesoscopeStartError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        print(e.path)
        return EXIT_FAULT
    except OSError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return EXIT_FAULT
    r = result.run
    print(f"{'complete' if r.complete else 'incomplete'}: {r.reason}; trials {r.trials}, rewards {r.rewards}, "
          f"seed {result.seed}, missed display frames {r.missed_frames}")
    print(result.path, flush=True)
    if received:
        return EXIT_SIGNAL
    return EXIT_OK if r.complete else EXIT_FAULT


def cmd_run(args: argparse.Namespace) -> int:
    prep = prepare_run(args, "rig run")
    if isinstance(prep, int):
        return prep
    protocol, config = prep.protocol, prep.config
    lock = None
    if not args.fast:
        # A real-time session owns the rig's hardware: one at a time per rig, whoever starts it (CLI or GUI).
        from rig.cli.runner_process import RigBusy, RigLock

        try:
            lock = RigLock.acquire(config.name, animal=args.animal, protocol=protocol.name, source="rig run")
        except RigBusy as e:
            print(f"rig run: {e}", file=sys.stderr)
            return EXIT_BUSY
    bar = _progress_bar(protocol, args)
    try:
        return run_prepared(prep, "rig run", progress=bar)
    finally:
        if bar is not None:
            bar.close()
        if lock is not None:
            lock.release()


def default_config() -> Path:
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else REPO_ROOT / DEFAULT_CONFIG


def _progress_bar(protocol, args):
    if args.quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    total = args.max_trials or protocol.end.max_trials
    return tqdm(total=total, unit="trial", desc=protocol.name, file=sys.stderr, dynamic_ncols=True)


def cmd_validate(args: argparse.Namespace) -> int:
    from rig.loading import validate_files

    problems = validate_files([Path(f) for f in args.files])
    _print_problems(problems)
    if problems:
        return EXIT_BAD_INPUT
    if not args.quiet:
        print(f"{len(args.files)} file(s) valid")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from rig.datalog.info import session_info
    from rig.datalog.reader import Session, SessionError

    try:
        info = session_info(Session.open(Path(args.session)))
    except SessionError as e:
        print(f"rig info: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(info, sort_keys=True, default=str))
    else:
        width = max(len(k) for k in info)
        for k, v in info.items():
            print(f"{k:<{width}}  {v}")
    return EXIT_OK


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rig", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run one session")
    p.add_argument("protocol", help="protocol YAML file (or the name of a shipped protocol)")
    p.add_argument("--config", help="rig config YAML (default: config/sim.yaml)")
    p.add_argument("--animal", default="sim-mouse", help="animal ID (default: %(default)s)")
    p.add_argument("--data", help="data directory (default: the config's data_dir)")
    p.add_argument("--seed", type=int, help="random seed (default: drawn and recorded)")
    p.add_argument("--fast", action="store_true", help="simulated rig on a virtual clock, as fast as possible")
    p.add_argument("--max-trials", type=int, help="end after this many trials")
    p.add_argument("--duration", type=float, help="end after this many seconds")
    p.add_argument("--experimenter", help="who ran the session")
    p.add_argument("--notes", help="free-text notes stored in the header")
    p.add_argument("--date", type=_iso_date, help="the session's day, YYYY-MM-DD (default today); for simulated "
                                                  "curricula over days")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check protocol and rig config files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("info", help="summarise a session folder")
    p.add_argument("session", metavar="SESSION")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=cmd_info)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for name in COMMAND_MODULES:
        passthrough = getattr(importlib.import_module(name), "PASSTHROUGH", {})
        if argv and argv[0] in passthrough:
            return passthrough[argv[0]](argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
