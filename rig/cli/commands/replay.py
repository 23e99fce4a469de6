"""`rig replay SESSION [--verify] [--speed X | --fast] [--protocol OTHER]`.

--verify      re-run the engine from the logged inputs and compare every output; exit 0 when identical,
              1 naming the first divergence, 2 when SESSION is not a readable session folder (damaged).
(default)     replay through the live runner in real time (--speed X: X times faster; --fast: virtual
              clock) into a new session folder marked as a replay; the last stdout line is its path.
--protocol P  what-if: the logged running and licking through protocol P (virtual clock unless --speed).
--display-config C   draw the replay with rig config C's display driver (e.g. config/sim-gl.yaml: the
              corridor in a window, as the mouse saw it; config/sim-offscreen.yaml: offscreen).
--telemetry EP / --commands EP   publish live telemetry and serve operator commands on these ZeroMQ
              endpoints (tcp://127.0.0.1:* picks a free port), as a runner process does, so the app or any
              subscriber can watch and steer the replay; the bound endpoints are printed on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from rig.errors import ExitCode

if TYPE_CHECKING:
    from rig.control.server import ControlServer
    from rig.replay.live import ReplayOptions
    from rig.runner.hooks import LoopHook
    from rig.runner.loop import Runner

MAX_LISTED = 10  # further divergences listed after the first


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "replay", help="verify a session against its log, replay it, or run its inputs through another protocol",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("session", metavar="SESSION", help="session folder DATA/ANIMAL/DATE/NNN")
    p.add_argument("--verify", action="store_true", help="re-run the engine from the log and compare every output")
    p.add_argument("--speed", type=float, help="replay X times faster than real time (default 1; >= 1000: --fast)")
    p.add_argument("--fast", action="store_true", help="replay on a virtual clock, as fast as possible")
    p.add_argument("--protocol", help="what-if: replay the inputs through this protocol (file or shipped name)")
    p.add_argument("--data", help="data directory for the new session (default: the original's)")
    p.add_argument("--animal", help="animal folder for the new session (default: ANIMAL-replay / ANIMAL-whatif)")
    p.add_argument("--display-config", metavar="FILE",
                   help="draw the replay with this rig config's display driver (file or shipped name)")
    p.add_argument("--telemetry", metavar="ENDPOINT",
                   help="publish telemetry on this ZeroMQ PUB endpoint (default with --commands: a free loopback port)")
    p.add_argument("--commands", metavar="ENDPOINT",
                   help="serve operator commands on this ZeroMQ ROUTER endpoint (default with --telemetry: a free "
                        "loopback port)")
    p.add_argument("--json", action="store_true", help="--verify: print the report as one JSON object")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    from rig.datalog.reader import HEADER, SessionError

    path = Path(args.session)
    if not (path / HEADER).is_file():
        print(f"rig replay: {path}: not a session folder (no {HEADER})", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if args.verify:
        if (args.protocol or args.speed is not None or args.fast or args.display_config or args.telemetry
                or args.commands):
            print("rig replay: --verify replays the session's own protocol offline; it takes no --protocol, "
                  "--speed, --fast, --display-config, --telemetry or --commands", file=sys.stderr)
            return ExitCode.BAD_INPUT
        from rig.replay.verify import verify_session

        try:
            report = verify_session(path)
        except SessionError as e:  # unreadable (damaged) is bad input, like any damaged folder
            print(f"rig replay: CORRUPTED: {e}", file=sys.stderr)
            return ExitCode.BAD_INPUT
        _print_report(report, args.json)
        return ExitCode.OK if report.ok else ExitCode.FAULT
    if args.speed is not None and not args.speed > 0:
        print(f"rig replay: --speed must be a positive number, got {args.speed}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    return _run_replay(args, path)


def _print_report(report, as_json: bool) -> None:
    if as_json:
        print(json.dumps({
            "ok": report.ok, "path": str(report.path), "iterations": report.iterations,
            "session_s": report.session_s, "elapsed_s": report.elapsed_s, "speed_x_real_time": report.speed,
            "truncated": report.truncated, "first_divergence": str(report.first) if report.first else None,
            "divergences": [str(d) for d in report.divergences], "notes": report.notes,
        }, default=str))
        return
    span = f"{report.iterations} iterations ({report.session_s:.3f} s of session time)"
    speed = f"{report.speed:.0f}x real time" if report.speed != float("inf") else "instantly"
    if report.ok:
        if report.truncated:
            print(f"OK (TRUNCATED session: killed, no footer): iterations 1..{report.iterations} "
                  f"({report.session_s:.3f} s) reproduce the log exactly; nothing after the cut was verified "
                  f"[{speed}]")
        else:
            print(f"OK: {span} reproduce the log exactly [{speed}]")
    else:
        print(f"DIVERGENCE at {report.first}")
        for d in report.divergences[1:MAX_LISTED + 1]:
            print(f"  also: {d}")
        if len(report.divergences) > MAX_LISTED + 1:
            print(f"  ... and {len(report.divergences) - MAX_LISTED - 1} more")
        if report.truncated:
            print(f"(TRUNCATED session: killed, no footer; compared up to iteration {report.iterations})")
    for note in report.notes:
        print(f"note: {note}")


def _run_replay(args: argparse.Namespace, path: Path) -> int:
    from rig.loading import find_file, load_config, load_protocol
    from rig.replay.live import ReplayOptions

    protocol = display_config = None
    if args.protocol:
        protocol = load_protocol(find_file(args.protocol, "protocols"))
    if args.display_config:
        display_config = load_config(find_file(args.display_config, "config"))
    # A what-if is an analysis: it runs on the virtual clock unless a speed is asked for.
    fast = args.fast or (protocol is not None and args.speed is None)
    options = ReplayOptions(
        speed=args.speed if args.speed is not None else 1.0, fast=fast, protocol=protocol,
        protocol_source=str(args.protocol or ""), data_dir=Path(args.data) if args.data else None,
        animal=args.animal, display_config=display_config, display_source=str(args.display_config or ""),
    )
    with ExitStack() as stack:
        hooks: tuple[ControlServer, ...] = ()
        if args.telemetry or args.commands:
            from rig.control.credentials import SessionKeys
            from rig.control.server import LOOPBACK, ControlError, ControlServer
            from rig.runner.lock import default_lock_dir, private_dir

            keys = SessionKeys.generate()
            try:
                hook = stack.enter_context(ControlServer(keys, args.telemetry or LOOPBACK, args.commands or LOOPBACK))
            except ControlError as e:
                print(f"rig replay: {e}", file=sys.stderr)
                return ExitCode.BAD_INPUT
            cred = keys.write_client(private_dir(default_lock_dir()) / f"corridor-rig-replay-{os.getpid()}.cred")
            stack.callback(cred.unlink, missing_ok=True)
            hook.info.update(replay_of=str(path.resolve()), animal=options.animal, display=options.display_source)
            print(f"rig replay: telemetry {hook.telemetry_endpoint} commands {hook.commands_endpoint} "
                  f"credential {cred}", file=sys.stderr, flush=True)
            hooks = (hook,)
        return _replay_with(args, path, options, hooks)


def _replay_with(
    args: argparse.Namespace, path: Path, options: ReplayOptions, hooks: tuple[ControlServer, ...]
) -> int:
    from rig.datalog.reader import SessionError
    from rig.replay.live import ReplayError, replay_session
    from rig.runner.hooks import OnStart, ProgressHook, SignalStop

    def record_folder(runner: Runner) -> None:
        for hook in hooks:  # subscribers asking "hello" learn where the replay is written
            hook.info["session"] = str(runner.writer.path)

    signals = SignalStop()
    all_hooks: tuple[LoopHook, ...] = (signals, OnStart(record_folder), *hooks)
    bar = None
    if not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit="trial", desc="replay", file=sys.stderr, dynamic_ncols=True)
        all_hooks += (ProgressHook(bar),)
    try:
        with signals.installed():
            result = replay_session(path, options, hooks=all_hooks)
    except (ReplayError, SessionError, ValueError) as e:
        where = "" if str(path) in str(e) else f"{path}: "  # name the session when the message does not
        print(f"rig replay: {where}{e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except OSError as e:
        print(f"rig replay: {e}", file=sys.stderr)
        return ExitCode.FAULT
    except RuntimeError as e:  # a display that cannot open (no GL context, no X display)
        print(f"rig replay: {e}", file=sys.stderr)
        return ExitCode.FAULT
    finally:
        if bar is not None:
            bar.close()
    r = result.run
    what = "what-if" if result.mode == "whatif" else "replay"
    print(f"{what} of {result.original}: {'complete' if result.complete else 'incomplete'}: {result.reason}; "
          f"trials {r.trials}, rewards {r.rewards}; {r.iterations - 1} iterations run, {result.iterations_available} "
          f"logged; missed display frames {r.missed_frames}")
    print(result.path)
    if signals.received:
        return ExitCode.SIGNAL
    return ExitCode.OK
