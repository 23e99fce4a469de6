"""The runner process: one session, run exactly as `rig run` runs it, plus telemetry and a command channel.

    python -m rig.cli.runner_process --replay SESSION [--speed X] [--fast] [--display-config FILE] [--config C] ...
    python -m rig.cli.runner_process --protocol P [--config C] [--animal A] [--data DIR] [--seed N]
        [--max-trials N] [--duration S] [--fast] [--experimenter E] [--notes N]
        [--telemetry tcp://127.0.0.1:PORT] [--commands tcp://127.0.0.1:PORT] [--lock-dir DIR]

The Qt app starts sessions this way, so closing or crashing the app never touches a running session.
One session per rig: a lock file per rig name (an flock held for the process's lifetime, so a crashed
runner never leaves a stale lock that blocks the rig) refuses a second start. Beside it, an info file
(JSON, replaced atomically) tells an app where to attach: pid, endpoints, session folder, animal.
Exit codes as `rig run`, plus 3 when the rig is busy.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig.cli.main import EXIT_BUSY  # one exit code for "the rig is busy", whoever reports it

LOCK_DIR_ENV = "RIG_LOCK_DIR"


class RigBusy(RuntimeError):
    """Another live process holds the rig."""


def default_lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or tempfile.gettempdir())


def _safe(rig_name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in rig_name) or "rig"


def lock_paths(rig_name: str, lock_dir: Path | None = None) -> tuple[Path, Path]:
    """(lock file, info file) of a rig."""
    d = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    stem = f"corridor-rig-{_safe(rig_name)}"
    return d / f"{stem}.lock", d / f"{stem}.json"


def _held_by_someone(lock_file: Path) -> bool:
    """True when a live process holds the lock (an flock dies with its process: no stale locks)."""
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def read_lock(rig_name: str, lock_dir: Path | None = None) -> dict[str, Any] | None:
    """The info of the session running on this rig, or None when no live session holds it."""
    lock_file, info_file = lock_paths(rig_name, lock_dir)
    if not _held_by_someone(lock_file):
        return None
    for _ in range(20):  # the holder may be between creating the lock and writing the info
        try:
            return json.loads(info_file.read_text())
        except FileNotFoundError:
            time.sleep(0.01)
        except json.JSONDecodeError as e:
            raise RigBusy(f"{info_file}: unreadable session info ({e}) while {lock_file} is held") from None
    return {"rig": rig_name, "pid": None, "starting": True}


def busy_message(rig_name: str, info: dict[str, Any]) -> str:
    who = ", ".join(f"{k} {info[k]}" for k in ("pid", "animal", "protocol", "started") if info.get(k))
    return (f"rig {rig_name!r} is already running a session ({who or 'starting'}); "
            "stop that session first, or attach to it with `rig gui`")


@dataclass
class RigLock:
    """Held while the session runs. `acquire` raises RigBusy when a live process holds the rig."""

    rig_name: str
    lock_file: Path
    info_file: Path
    _fd: int
    info: dict[str, Any]

    @classmethod
    def acquire(cls, rig_name: str, lock_dir: Path | None = None, **info: Any) -> RigLock:
        lock_file, info_file = lock_paths(rig_name, lock_dir)
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                held = read_lock(rig_name, lock_dir) or {}
                raise RigBusy(busy_message(rig_name, held)) from None
            # The previous holder may have unlinked the file between our open and our flock: then we
            # hold a lock on a dead inode, and must try again with the file that is there now.
            try:
                same = os.fstat(fd).st_ino == os.stat(lock_file).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                lock = cls(rig_name, lock_file, info_file, fd,
                           {"rig": rig_name, "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")})
                lock.update(**info)
                return lock
            os.close(fd)
        raise RigBusy(f"{lock_file}: could not take the rig lock (it keeps changing hands)")

    def update(self, **info: Any) -> None:
        self.info.update(info)
        tmp = self.info_file.with_name(f".{self.info_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.info, default=str))
        os.replace(tmp, self.info_file)

    def release(self) -> None:
        if self._fd < 0:
            return
        for p in (self.info_file, self.lock_file):  # unlink while holding the lock: nobody sees half a state
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> RigLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


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
    p.add_argument("--config", help="rig config YAML (default: config/sim.yaml); with --replay, only the rig name "
                                    "(whose lock the replay holds) is taken from it")
    p.add_argument("--animal", default="sim-mouse")
    p.add_argument("--data", help="data directory (default: the config's data_dir)")
    p.add_argument("--seed", type=int)
    p.add_argument("--fast", action="store_true")
    p.add_argument("--max-trials", type=int)
    p.add_argument("--duration", type=float)
    p.add_argument("--experimenter", default="")
    p.add_argument("--notes", default="")
    p.add_argument("--telemetry", default="tcp://127.0.0.1:*", help="PUB endpoint (default: a free loopback port)")
    p.add_argument("--commands", default="tcp://127.0.0.1:*", help="ROUTER endpoint (default: a free loopback port)")
    p.add_argument("--lock-dir", type=Path, help=f"where rig locks live (default: ${LOCK_DIR_ENV} or the temp dir)")
    return p


@contextmanager
def attached(args: argparse.Namespace, rig_name: str, lock_info: dict[str, Any], hook_info: dict[str, Any]):
    """Hold the rig's lock and serve telemetry/commands for one session (live or replay); yields
    (hook, on_runner), on_runner recording the session folder in both. Raises RigBusy or TelemetryError."""
    from rig.control.telemetry import TelemetryHook

    with RigLock.acquire(rig_name, args.lock_dir, **lock_info) as lock, \
            TelemetryHook(args.telemetry, args.commands) as hook:
        hook.info.update(rig=rig_name, **hook_info)
        lock.update(telemetry=hook.telemetry_endpoint, commands=hook.commands_endpoint)

        def on_runner(runner) -> None:
            hook.info["session"] = str(runner.writer.path)
            lock.update(session=str(runner.writer.path))

        yield hook, on_runner


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    from rig.cli.main import EXIT_FAULT, prepare_run, run_prepared
    from rig.control.telemetry import TelemetryError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if args.replay is not None:
        return replay_main(args)
    prep = prepare_run(args, "rig runner")  # exactly as `rig run` reads its arguments
    if isinstance(prep, int):
        return prep
    try:
        with attached(args, prep.config.name, {"animal": args.animal, "protocol": prep.protocol.name},
                      {"animal": args.animal, "experimenter": args.experimenter,
                       "config_path": str(args.config or "")}) as (hook, on_runner):
            return run_prepared(prep, "rig runner", extra_hooks=(hook,), on_runner=on_runner)
    except RigBusy as e:
        print(f"rig runner: {e}", file=sys.stderr)
        return EXIT_BUSY
    except TelemetryError as e:
        print(f"rig runner: {e}", file=sys.stderr)
        return EXIT_FAULT


def replay_main(args: argparse.Namespace) -> int:
    """`--replay SESSION`: rig.replay.live.replay_session under the rig's lock, with the same telemetry, so the app
    attaches to a replay exactly as to a live session."""
    from rig.cli.main import EXIT_BAD_INPUT, EXIT_FAULT, EXIT_OK, EXIT_SIGNAL, default_config, find_file, signals_stop
    from rig.control.telemetry import TelemetryError
    from rig.datalog.reader import HEADER, SessionError
    from rig.loading import LoadError, load_config
    from rig.replay.live import ReplayError, ReplayOptions, replay_session

    session = args.replay.resolve()
    if not (session / HEADER).is_file():
        print(f"rig runner: --replay {args.replay}: not a session folder (no {HEADER})", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.speed > 0:
        print(f"rig runner: --speed must be a positive number, got {args.speed}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        config = load_config(find_file(args.config, "config") if args.config else default_config())
        display = load_config(find_file(args.display_config, "config")) if args.display_config else None
    except LoadError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    options = ReplayOptions(speed=args.speed, fast=args.fast, data_dir=Path(args.data) if args.data else None,
                            display_config=display, display_source=str(args.display_config or ""))
    try:
        header = json.loads((session / HEADER).read_text())
    except (OSError, json.JSONDecodeError) as e:
        print(f"rig runner: {session / HEADER}: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    animal = f"{header.get('animal')}-replay"
    protocol_name = (header.get("protocol") or {}).get("name")
    stopper: list = []
    try:
        with attached(args, config.name, {"animal": animal, "protocol": protocol_name, "replay_of": str(session)},
                      {"animal": animal, "replay_of": str(session)}) as (hook, on_runner):

            def wire(runner) -> None:
                stopper.append(runner.request_stop)
                on_runner(runner)

            with signals_stop(lambda: stopper[0]() if stopper else None) as received:
                result = replay_session(session, options, on_runner=wire, hooks=(hook,))
    except RigBusy as e:
        print(f"rig runner: {e}", file=sys.stderr)
        return EXIT_BUSY
    except (TelemetryError, ReplayError, SessionError, OSError) as e:
        print(f"rig runner: {e}", file=sys.stderr)
        return EXIT_FAULT
    print(f"{'complete' if result.complete else 'incomplete'}: {result.reason}; replay of {session}")
    print(result.path, flush=True)
    if received:
        return EXIT_SIGNAL
    return EXIT_OK if result.complete else EXIT_FAULT


if __name__ == "__main__":
    sys.exit(main())
