"""`rig export` (NWB, MouseLand) and `rig frames` (behaviour on the imaging frame grid).

    rig export SESSION --nwb FILE.nwb [--subject-sex M ...] [--institution I --lab L --experimenter 'Last, First']
    rig export SESSION [SESSION ...] --mouseland Beh_train1.npy
    rig frames SESSION -o FILE.npy|FILE.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from rig.errors import ExitCode


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export sessions to NWB or the MouseLand analysis format")
    p.add_argument("sessions", nargs="+", metavar="SESSION", help="session folder(s)")
    p.add_argument("--nwb", metavar="FILE", help="write an NWB file (one session only)")
    p.add_argument("--mouseland", metavar="FILE",
                   help="write a MouseLand behaviour dict (.npy); several sessions are merged into one dict")
    # NWB: the subject comes from the session header (the animal registry and the weight at start) and
    # institution/lab from the rig config; these options override them.
    p.add_argument("--subject-sex", choices=("M", "F", "U", "O"),
                   help="NWB subject sex (default: the header's, else U)")
    p.add_argument("--subject-age", help="NWB subject age, ISO 8601 (P90D, or a range P8W/P12W); used without a "
                                         "date of birth (default: P0D/, unknown)")
    p.add_argument("--subject-dob", type=_date, metavar="YYYY-MM-DD", help="date of birth (the age is computed)")
    p.add_argument("--subject-species",
                   help="Latin binomial or NCBITaxon URL (default: the header's, else Mus musculus)")
    p.add_argument("--subject-strain", help="NWB subject strain")
    p.add_argument("--subject-genotype", help="NWB subject genotype")
    p.add_argument("--subject-weight-g", type=float, metavar="G", help="weight at session start (g)")
    p.add_argument("--institution", help="NWB institution (default: the rig config's lab.institution)")
    p.add_argument("--lab", help="NWB lab (default: the rig config's lab.lab)")
    p.add_argument("--experimenter", action="append", default=[], metavar="'LAST, FIRST'",
                   help="experimenter, repeatable (default: the session header's)")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser("frames", help="write the session's behaviour per imaging frame (.npy or .csv)")
    p.add_argument("session", metavar="SESSION")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="output file, .npy or .csv")
    p.set_defaults(func=cmd_frames)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _fail(cmd: str, message: object, code: int = ExitCode.BAD_INPUT) -> int:
    print(f"rig {cmd}: {message}", file=sys.stderr)
    return code


def cmd_export(args: argparse.Namespace) -> int:
    from rig.datalog.reader import SessionError
    from rig.export import ExportError

    if not args.nwb and not args.mouseland:
        return _fail("export", "give --nwb FILE and/or --mouseland FILE")
    if args.nwb and len(args.sessions) > 1:
        return _fail("export", f"--nwb takes one session, got {len(args.sessions)}")
    if args.nwb and not args.nwb.endswith(".nwb"):
        return _fail("export", f"{args.nwb}: an NWB file name ends in .nwb")
    if args.mouseland and not args.mouseland.endswith(".npy"):
        return _fail("export", f"{args.mouseland}: a MouseLand file is a .npy pickle; name it *.npy")
    for session in args.sessions:
        # Only session folders: a file given as SESSION is never opened, so a pickle (a .npy of Python
        # objects, which can run code when loaded) can never be loaded from a path on the command line.
        if not Path(session).is_dir():
            return _fail("export", f"{session}: not a session folder (DATA/ANIMAL/DATE/NNN); rig export reads "
                                   "session folders only and never loads a file given as SESSION")
    try:
        if args.mouseland:
            from rig.export.mouseland import merge

            beh = merge([Path(s) for s in args.sessions], Path(args.mouseland))
            print(f"{args.mouseland}: {len(beh)} session(s): {', '.join(beh)}", file=sys.stderr)
            print(args.mouseland)
        if args.nwb:
            try:
                from rig.export.nwb import LabInfo, SubjectInfo, export_nwb
            except ImportError as e:
                return _fail("export", f"NWB export needs pynwb ({e}); pip install 'corridor-rig[export]'",
                             ExitCode.FAULT)
            subject = SubjectInfo(sex=args.subject_sex, age=args.subject_age, strain=args.subject_strain,
                                  genotype=args.subject_genotype, species=args.subject_species,
                                  date_of_birth=args.subject_dob, weight_g=args.subject_weight_g)
            lab = LabInfo(institution=args.institution, lab=args.lab, experimenter=tuple(args.experimenter))
            print(export_nwb(Path(args.sessions[0]), Path(args.nwb), subject, lab))
    except (SessionError, ExportError) as e:
        return _fail("export", e)
    except OSError as e:
        return _fail("export", e, ExitCode.FAULT)
    return ExitCode.OK


def cmd_frames(args: argparse.Namespace) -> int:
    from rig.datalog.reader import SessionError
    from rig.sync.frametable import frame_table

    out = Path(args.output)
    if out.suffix.lower() not in (".npy", ".csv"):
        return _fail("frames", f"{out}: the output must end in .npy or .csv")
    try:
        table = frame_table(Path(args.session))
        table.to_file(out)
    except SessionError as e:
        return _fail("frames", e)
    except OSError as e:
        return _fail("frames", e, ExitCode.FAULT)
    flagged = int(table.doubtful.sum())
    print(f"{len(table)} imaging frames ({flagged} with doubtful sync) from {table.source}", file=sys.stderr)
    print(out)
    return ExitCode.OK
