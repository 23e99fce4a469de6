"""The `rig` command. Exit codes: 0 ok, 1 a fault or failed check, 2 bad input, 3 the rig is busy with another
session, 130 stopped by a signal."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from rig.cli.launch import add_session_options, hold_rig, prepare_run, print_problems, run_prepared
from rig.errors import ExitCode, RigError
from rig.protocol import Protocol
from rig.runner.hooks import ProgressHook
from rig.yamlload import LoadError

# Subcommand modules (see rig/cli/commands/__init__.py), in the order `rig --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "rig.cli.commands.board", "rig.cli.commands.summary", "rig.cli.commands.check", "rig.cli.commands.calibrate",
    "rig.cli.commands.mesoscope", "rig.cli.commands.replay", "rig.cli.commands.gui", "rig.cli.commands.export",
    "rig.cli.commands.vr", "rig.cli.commands.cohort", "rig.cli.commands.animal", "rig.cli.commands.prime",
)

# The modules of the optional extras (pyproject.toml), by the extra that installs them.
OPTIONAL_MODULES = {"moderngl": "vr", "glcontext": "vr", "PIL": "vr", "PyQt5": "gui", "pyqtgraph": "gui",
                    "nidaqmx": "daq", "pynwb": "export", "hdmf": "export", "nwbinspector": "export",
                    "dandi": "dandi"}


def cmd_run(args: argparse.Namespace) -> int:
    prep = prepare_run(args, "rig run")
    if isinstance(prep, int):
        return prep
    protocol, config = prep.protocol, prep.config
    lock = None
    if not args.fast or config.names_hardware:
        # A session that owns the rig's hardware: one at a time per rig and per device, whoever starts it (CLI
        # or app), and whichever config names the device; a --fast run that opens a board counts too.
        lock = hold_rig(config, "rig run", animal=prep.options.animal, protocol=protocol.name)
    bar = _progress_bar(protocol, args)
    try:
        return run_prepared(prep, "rig run", hooks=(ProgressHook(bar),) if bar is not None else ())
    finally:
        if bar is not None:
            bar.close()
        if lock is not None:
            lock.release()


def _progress_bar(protocol: Protocol, args: argparse.Namespace) -> tqdm | None:
    if args.quiet or not sys.stderr.isatty():
        return None
    total = args.max_trials or protocol.end.max_trials
    return tqdm(total=total, unit="trial", desc=protocol.name, file=sys.stderr, dynamic_ncols=True)


def cmd_validate(args: argparse.Namespace) -> int:
    from rig.loading import validate_files

    problems = validate_files([Path(f) for f in args.files])
    print_problems(problems)
    if problems:
        return ExitCode.BAD_INPUT
    if not args.quiet:
        print(f"{len(args.files)} file(s) valid")
    return ExitCode.OK


def cmd_info(args: argparse.Namespace) -> int:
    from rig.cli.commands.animal import is_animal_folder, print_animal_folder
    from rig.datalog.info import session_info
    from rig.datalog.reader import Session, SessionError

    path = Path(args.session)
    if is_animal_folder(path):  # DATA/ANIMAL: its daily log
        return print_animal_folder(path, args.json, "rig info")
    try:
        info = session_info(Session.open(path))
    except SessionError as e:
        print(f"rig info: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if args.json:
        print(json.dumps(info, sort_keys=True, default=str))
    else:
        width = max(len(k) for k in info)
        for k, v in info.items():
            print(f"{k:<{width}}  {v}")
    return ExitCode.OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rig", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run one session")
    p.add_argument("protocol", help="protocol YAML file (or the name of a shipped protocol)")
    add_session_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check protocol and rig config files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("info", help="summarise a session folder (an animal folder: its daily log)")
    p.add_argument("session", metavar="SESSION|ANIMAL_DIR")
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
    try:
        return int(args.func(args))
    except LoadError as e:  # a protocol or config: every problem found, one line each (file:line, field)
        print_problems(e.problems)
        return int(ExitCode.BAD_INPUT)
    except RigError as e:  # the rig's own errors carry their exit code; one line, no traceback
        print(f"rig {args.command}: {e}", file=sys.stderr)
        return int(e.exit_code)
    except ModuleNotFoundError as e:  # an optional part not installed: say which extra brings it
        extra = OPTIONAL_MODULES.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"rig {args.command}: needs the '{extra}' extra, not installed here (no module {e.name!r}): "
              f"pip install 'corridor-rig[{extra}]'", file=sys.stderr)
        return int(ExitCode.BAD_INPUT)
    except KeyboardInterrupt:
        return int(ExitCode.SIGNAL)
    except BrokenPipeError:  # `rig info ... | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's own flush at exit does not raise again
        return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())
