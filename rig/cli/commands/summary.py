"""`rig summary SESSION|ANIMAL_DIR [-o PNG]`: the after-session figure, or an animal's learning figure.

A session folder (holding header.json) gets the session figure, written by default to SESSION/summary.png;
an animal folder (ANIMAL/YYYY-MM-DD/NNN sessions under it) gets the learning figure, by default
ANIMAL_DIR/learning.png. The last line printed on stdout is the PNG's path.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rig.errors import ExitCode

SESSION_PNG = "summary.png"
ANIMAL_PNG = "learning.png"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "summary", help="summary figure of a session, or learning figure of an animal folder",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="SESSION|ANIMAL_DIR", help="a session folder or an animal's folder")
    p.add_argument("-o", "--output", metavar="PNG",
                   help=f"output file (default: SESSION/{SESSION_PNG} or ANIMAL_DIR/{ANIMAL_PNG})")
    p.set_defaults(func=cmd_summary)


def _error(message: str) -> int:
    print(f"rig summary: {message}", file=sys.stderr)
    return ExitCode.BAD_INPUT


def _save(fig: object, out: Path) -> None:
    """Write the PNG atomically, so an interrupted run never leaves a truncated image behind."""
    # A plain open() (not mkstemp, which makes 0600 files) so the PNG gets the usual umask permissions.
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            fig.savefig(f, format="png", dpi=fig.dpi)  # type: ignore[attr-defined]
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def cmd_summary(args: argparse.Namespace) -> int:
    from rig.datalog.info import find_sessions
    from rig.datalog.reader import HEADER, SessionError

    try:
        from rig.figures.animal import animal_figure
        from rig.figures.learning import animal_days
        from rig.figures.session import session_figure
        from rig.figures.trials import TrialDataError
    except ImportError as e:
        print(f"rig summary: needs matplotlib ({e}); install it with: pip install 'matplotlib>=3.8,<4'",
              file=sys.stderr)
        return ExitCode.FAULT

    path = Path(args.path)
    if not path.exists():
        return _error(f"{path}: no such file or directory")
    if not path.is_dir():
        return _error(f"{path}: not a folder (expected a session folder DATA/ANIMAL/DATE/NNN or an animal "
                      "folder DATA/ANIMAL)")
    is_session = (path / HEADER).is_file()
    if not is_session and not find_sessions(path):
        return _error(f"{path}: not a session folder (no {HEADER}) and no sessions under it "
                      "(expected ANIMAL/YYYY-MM-DD/NNN folders)")
    out = Path(args.output) if args.output else path / (SESSION_PNG if is_session else ANIMAL_PNG)
    if not out.parent.is_dir():
        return _error(f"{out}: output folder {out.parent} does not exist")
    try:
        if is_session:
            from rig.datalog.reader import Session

            session = Session.open(path)
            for w in session.warnings:
                print(f"rig summary: warning: {path}: {w}", file=sys.stderr)
            fig = session_figure(session)
        else:
            skipped: list[str] = []
            days = animal_days(path, skipped)
            for problem in skipped:
                print(f"rig summary: warning: session left out: {problem}", file=sys.stderr)
            fig = animal_figure(path, days)
    except (SessionError, TrialDataError) as e:
        return _error(str(e))
    try:
        _save(fig, out)
    except OSError as e:
        print(f"rig summary: cannot write {out}: {e}", file=sys.stderr)
        return ExitCode.FAULT
    print(out)
    return ExitCode.OK
