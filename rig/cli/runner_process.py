"""The runner process: one session, run exactly as `rig run` runs it, plus telemetry and a command channel.

    python -m rig.cli.runner_process --replay SESSION [--speed X] [--fast] [--display-config FILE] [--config C] ...
    python -m rig.cli.runner_process --protocol P [--config C] [--animal A] [--data DIR] [--seed N]
        [--max-trials N] [--duration S] [--fast] [--experimenter E] [--notes N]
        [--telemetry tcp://127.0.0.1:PORT] [--commands tcp://127.0.0.1:PORT] [--lock-dir DIR]

The Qt app starts sessions this way, so closing or crashing the app never touches a running session.
One session per rig: the runner holds the rig's lock (rig.runner.lock) for the session's lifetime.
Exit codes as `rig run`, plus 3 when the rig is busy.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rig.cli.launch import add_session_options
from rig.errors import ExitCode
from rig.runner.hooks import LoopHook, OnStart, SignalStop
from rig.runner.lock import LOCK_DIR_ENV, RigBusy, RigLock, credential_path

if TYPE_CHECKING:
    from rig.runner.loop import Runner


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rig.cli.runner_process", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--protocol", help="protocol YAML file (or a shipped protocol's name)")
    what.add_argument("--replay", metavar="SESSION", type=Path,
                      help="replay this session folder (rig.replay.live) instead of running a protocol")
    p.add_argument("--speed", type=float, default=1.0, help="--replay: session seconds per wall second")
    p.add_argument("--display-config", metavar="FILE",
                   help="--replay: draw with this rig config's display driver (file or shipped name)")
    add_session_options(p)  # as `rig run` takes them; with --replay only --config's rig name (its lock) is used
    p.add_argument("--telemetry", default="tcp://127.0.0.1:*", help="PUB endpoint (default: a free loopback port)")
    p.add_argument("--commands", default="tcp://127.0.0.1:*", help="ROUTER endpoint (default: a free loopback port)")
    p.add_argument("--lock-dir", type=Path, help=f"where rig locks live (default: ${LOCK_DIR_ENV} or a private "
                                                 "per-user directory)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow --telemetry/--commands beyond loopback (still CURVE-authenticated)")
    return p


@contextmanager
def attached(
    args: argparse.Namespace, rig_name: str, lock_info: dict[str, Any], hook_info: dict[str, Any],
    resources: tuple[str, ...] = (),
) -> Iterator[tuple[LoopHook, ...]]:
    """Hold the rig's lock (and its devices') and serve telemetry/commands for one session (live or replay),
    authenticated with a fresh credential in the private lock directory; yields the hooks to run with it:
    the control server, and one that records the session folder in the lock info and the telemetry.
    Raises RigBusy or ControlError."""
    from rig.control.credentials import SessionKeys
    from rig.control.server import ControlServer

    keys = SessionKeys.generate()
    with RigLock.acquire(rig_name, args.lock_dir, resources, **lock_info) as lock, \
            ControlServer(keys, args.telemetry, args.commands, allow_remote=args.allow_remote) as server:
        cred = keys.write_client(credential_path(rig_name, lock.lock_dir))
        try:
            server.info.update(rig=rig_name, **hook_info)
            lock.update(telemetry=server.telemetry_endpoint, commands=server.commands_endpoint, credential=str(cred))

            def record_folder(runner: Runner) -> None:
                server.info["session"] = str(runner.writer.path)
                lock.update(session=str(runner.writer.path))

            yield OnStart(record_folder), server
        finally:
            cred.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    from rig.cli.launch import prepare_run, run_prepared
    from rig.control.server import ControlError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if args.replay is not None:
        return replay_main(args)
    prep = prepare_run(args, "rig runner")  # exactly as `rig run` reads its arguments
    if isinstance(prep, int):
        return prep
    try:
        animal = prep.options.animal
        with attached(args, prep.config.name, {"animal": animal, "protocol": prep.protocol.name},
                      {"animal": animal, "experimenter": prep.options.experimenter,
                       "config_path": str(args.config or "")}, prep.config.resources()) as hooks:
            return run_prepared(prep, "rig runner", hooks=hooks)
    except RigBusy as e:
        print(f"rig runner: {e}", file=sys.stderr)
        return ExitCode.BUSY
    except ControlError as e:
        print(f"rig runner: {e}", file=sys.stderr)
        return e.exit_code


def replay_main(args: argparse.Namespace) -> int:
    """`--replay SESSION`: rig.replay.live.replay_session under the rig's lock, with the same telemetry, so the app
    attaches to a replay exactly as to a live session."""
    from rig.control.server import ControlError
    from rig.datalog.reader import HEADER, SessionError, read_header
    from rig.loading import LoadError, config_path, find_file, load_config
    from rig.replay.live import ReplayError, ReplayOptions, replay_session

    session = args.replay.resolve()
    if not (session / HEADER).is_file():
        print(f"rig runner: --replay {args.replay}: not a session folder (no {HEADER})", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if not args.speed > 0:
        print(f"rig runner: --speed must be a positive number, got {args.speed}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    try:
        config = load_config(config_path(args.config))
        display = load_config(find_file(args.display_config, "config")) if args.display_config else None
    except LoadError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return ExitCode.BAD_INPUT
    options = ReplayOptions(speed=args.speed, fast=args.fast, data_dir=Path(args.data) if args.data else None,
                            display_config=display, display_source=str(args.display_config or ""))
    try:
        header = read_header(session)
    except SessionError as e:
        print(f"rig runner: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    animal = f"{header.animal}-replay"
    protocol_name = header.protocol_name
    signals = SignalStop()
    try:
        with attached(args, config.name, {"animal": animal, "protocol": protocol_name, "replay_of": str(session)},
                      {"animal": animal, "replay_of": str(session)}) as hooks, signals.installed():
            result = replay_session(session, options, hooks=(signals, *hooks))
    except RigBusy as e:
        print(f"rig runner: {e}", file=sys.stderr)
        return ExitCode.BUSY
    except ControlError as e:  # an endpoint refused (not loopback) is bad input, as in a live session
        print(f"rig runner: {e}", file=sys.stderr)
        return e.exit_code
    except (ReplayError, SessionError, OSError) as e:
        print(f"rig runner: {e}", file=sys.stderr)
        return ExitCode.FAULT
    print(f"{'complete' if result.complete else 'incomplete'}: {result.reason}; replay of {session}")
    print(result.path, flush=True)
    if signals.received:
        return ExitCode.SIGNAL
    return ExitCode.OK if result.complete else ExitCode.FAULT


if __name__ == "__main__":
    sys.exit(main())
