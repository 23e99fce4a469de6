"""`rig cohort [CURRICULUM] -o OUT`: run virtual mice through a curriculum over simulated days.

Without CURRICULUM, the built-in behaviour cohort of Zhong et al. 2025 (3 groups: 10 days of
pretraining on the task's natural textures, on gratings, or none; then 1 day of passive reward in the
zone and 4 active days). Every mouse runs its days in order in its own process, all cores in parallel;
sessions go to OUT/data/GROUP-NN/DATE/NNN, dated from the curriculum's start_date (or --start-date).
Writes OUT/cohort.csv, OUT/cohort.json and OUT/cohort.png (learning curves with the lab's measure:
licking in 2-4 m over the first 200 trials of each session); the last line printed is the PNG's path.
Exit codes: 0 ok, 1 a session failed, 2 bad input (curriculum, config, options, or OUT already used).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from rig.errors import ExitCode


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not x > 0 or x != x or x == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return x


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "cohort", help="simulate a cohort of virtual mice over days and draw its learning curves",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("curriculum", nargs="?", metavar="CURRICULUM",
                   help="curriculum YAML (default: the built-in behaviour cohort; docs/sim.md)")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="a new folder for the cohort")
    p.add_argument("--mice", type=_positive_int, help="mice per group (default: the curriculum's)")
    p.add_argument("--seed", type=int, default=1, help="cohort seed (default: %(default)s)")
    p.add_argument("--jobs", type=_positive_int, help="parallel processes (default: every core)")
    p.add_argument("--config", help="simulated rig config (default: config/sim-naive.yaml: naive mice)")
    p.add_argument("--max-trials", type=_positive_int, help="end every session after this many trials")
    p.add_argument("--duration", type=_positive_float, help="end every session after this many seconds")
    p.add_argument("--start-date", type=_iso_date, help="date of day 1, YYYY-MM-DD (default: the curriculum's)")
    p.add_argument("--discard-sessions", action="store_true",
                   help="remove each session folder once it is scored (rows and the mice's memory files stay; "
                        "a 1 h session is ~115 MB)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_cohort)


def _error(message: str) -> int:
    print(f"rig cohort: {message}", file=sys.stderr)
    return ExitCode.BAD_INPUT


def cmd_cohort(args: argparse.Namespace) -> int:
    from rig.loading import load_config
    from rig.sim import cohort as co
    from rig.sim.cohort_report import draw, write_numbers

    try:
        if args.curriculum:
            path = Path(args.curriculum)
            curriculum, base = co.load_curriculum(path), path.parent
        else:
            curriculum, base = co.BEHAVIOUR_COHORT, None
        config = load_config(Path(args.config)) if args.config else None
        if args.seed < 0:
            return _error(f"--seed must be >= 0, got {args.seed}")
        out = Path(args.out)
        co.check_out(out)
        co.load_protocols(curriculum, base)  # every protocol checked before any session starts
        if config is not None:
            co.prepare_config(config)
    except (FileExistsError, ValueError) as e:
        return _error(str(e))

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"rig cohort: {line}", file=sys.stderr, flush=True)

    try:
        result = co.run_cohort(
            curriculum, out, config=config, base=base, mice=args.mice, seed=args.seed, jobs=args.jobs,
            max_trials=args.max_trials, duration_s=args.duration, start_date=args.start_date, progress=progress,
            keep_sessions=not args.discard_sessions,
        )
    except OSError as e:
        print(f"rig cohort: {e}", file=sys.stderr)
        return ExitCode.FAULT
    csv_path, json_path = write_numbers(result)
    png = draw(result)
    incomplete = [r for r in result.rows if not r.complete]
    print(f"{len(result.rows)} sessions, {result.simulated_s / 3600:.1f} h simulated in {result.wall_s:.0f} s "
          f"on {result.jobs} processes ({result.simulated_s / max(result.wall_s, 1e-9):.0f}x real time)")
    print(csv_path)
    print(json_path)
    print(png, flush=True)
    if incomplete:
        print(f"rig cohort: {len(incomplete)} sessions ended early, e.g. {incomplete[0].session}", file=sys.stderr)
        return ExitCode.FAULT
    return ExitCode.OK
