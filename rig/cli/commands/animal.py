"""`rig animal`: the animal registry, weights, water supplements, notes and the per-day log.

    rig animal                                   the animals in the data directory
    rig animal ID [--days N] [--json]            the daily log: weight against baseline, rig water plus
                                                 supplements against the target, sessions, stage, learning, alerts
    rig animal ID add --sex F [--dob 2026-08-01] [--strain C57BL/6J] [--genotype "wild type"]
                      [--restricted --restriction-start D --baseline-g 25 --target-ml 1.0] [...]
    rig animal ID set FIELD=VALUE [FIELD=VALUE ...]      change the record (every change is journaled)
    rig animal ID weigh G [--date D] [--note TEXT]       a body weight (g)
    rig animal ID supplement ML [--date D] [--note TEXT] water given by hand (ml)
    rig animal ID note TEXT [--date D | --session DATE/NNN]

Every command takes --data DIR (default: the rig config's data_dir) and --config FILE (default:
config/sim.yaml; its lab: section sets the alert threshold and the default --by). Exit 2 on bad input.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import yaml

from rig.errors import ExitCode

FIELDS_HELP = ("id species sex date_of_birth strain genotype description restricted water_restriction_start "
               "baseline_weight_g daily_water_target_ml cage license source extra")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("animal", help="animal registry, weights, water, notes and the daily log",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p, None)
    p.add_argument("id", nargs="?", metavar="ID", help="the animal (none: list the animals)")
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="ACTION ...",
                   help="add, set, weigh, supplement or note (none: print the daily log)")
    p.set_defaults(func=cmd_animal)


def _common(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument("--data", default=default, help="data directory (default: the rig config's data_dir)")
    p.add_argument("--config", default=default, help="rig config YAML (default: config/sim.yaml)")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


class _Parser(argparse.ArgumentParser):
    """Errors as one line and exit 2, like the main parser, but raised so the command reports them."""

    def error(self, message: str) -> NoReturn:
        raise _Usage(f"{self.prog}: {message}")


class _Usage(Exception):
    pass


def action_parser(animal: str) -> argparse.ArgumentParser:
    p = _Parser(prog=f"rig animal {animal}", add_help=True)
    _common(p, argparse.SUPPRESS)
    p.add_argument("--days", type=int, metavar="N", help="the log: only the last N days")
    p.add_argument("--json", action="store_true", help="the log as one JSON object")
    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)

    def action(name: str, help_: str) -> argparse.ArgumentParser:
        a = sub.add_parser(name, help=help_)
        _common(a, argparse.SUPPRESS)
        a.add_argument("--by", help="who (default: the config's lab.experimenter, else your user name)")
        return a

    a = action("add", "register the animal (writes DATA/ID/animal.yaml)")
    a.add_argument("--sex", required=True, choices=("M", "F", "U", "O"), help="M, F, U (unknown) or O (other)")
    a.add_argument("--species", default="Mus musculus", help="Latin binomial (default: %(default)s)")
    a.add_argument("--dob", type=_date, metavar="YYYY-MM-DD", help="date of birth")
    a.add_argument("--strain", help="e.g. C57BL/6J")
    a.add_argument("--genotype", help="e.g. 'wild type'")
    a.add_argument("--description", default="", help="free text")
    a.add_argument("--restricted", action="store_true", help="on water restriction")
    a.add_argument("--restriction-start", type=_date, metavar="YYYY-MM-DD",
                   help="first day of water restriction (default with --restricted: today)")
    a.add_argument("--baseline-g", type=float, metavar="G", help="baseline body weight (g)")
    a.add_argument("--target-ml", type=float, metavar="ML", help="daily water target, rig plus supplements (ml)")
    a.add_argument("--cage")
    a.add_argument("--license", help="animal license or protocol number")
    a.add_argument("--source", help="vendor or colony")
    a = action("set", "change fields of the record (validated; journaled in registry.jsonl)")
    a.add_argument("changes", nargs="+", metavar="FIELD=VALUE", help=f"fields: {FIELDS_HELP}")
    a = action("weigh", "record a body weight")
    a.add_argument("grams", type=float, metavar="G")
    a.add_argument("--date", type=_date, help="the day it counts for (default: today)")
    a.add_argument("--note", default="")
    a = action("supplement", "record water given by hand")
    a.add_argument("ml", type=float, metavar="ML")
    a.add_argument("--date", type=_date, help="the day it counts for (default: today)")
    a.add_argument("--note", default="")
    a = action("note", "add a note (never changes a session's files)")
    a.add_argument("text", metavar="TEXT")
    when = a.add_mutually_exclusive_group()
    when.add_argument("--date", type=_date, help="the day it is about (default: today)")
    when.add_argument("--session", metavar="DATE/NNN", help="the session it is about")
    return p


def _fail(message: object) -> int:
    print(f"rig animal: {message}", file=sys.stderr)
    return ExitCode.BAD_INPUT


def _config_and_data(config_arg: str | None, data_arg: str | None) -> tuple[Any, Path]:
    from rig.loading import config_path, load_config

    config = load_config(config_path(config_arg))
    return config, Path(data_arg if data_arg else config.data_dir).expanduser()


def _parse_changes(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _Usage(f"rig animal set: {item!r}: write FIELD=VALUE (e.g. restricted=false)")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def cmd_animal(args: argparse.Namespace) -> int:
    from rig.lab.journal import LabRecordError

    try:
        sub = action_parser(args.id or "ID").parse_args(args.rest) if args.rest else argparse.Namespace(action=None)
    except _Usage as e:
        print(e, file=sys.stderr)
        return ExitCode.BAD_INPUT
    config_arg = getattr(sub, "config", None) or args.config
    data_arg = getattr(sub, "data", None) or args.data
    try:
        config, data = _config_and_data(config_arg, data_arg)
        if args.id is None:
            return _list(data)
        by = getattr(sub, "by", None) or config.lab.experimenter or _user()
        if sub.action is None:
            return _log(data, args.id, config, getattr(sub, "days", None), getattr(sub, "json", False))
        return _act(data, args.id, sub, by, config)
    except LabRecordError as e:
        return _fail(e)
    except _Usage as e:
        print(e, file=sys.stderr)
        return ExitCode.BAD_INPUT
    except OSError as e:
        print(f"rig animal: {e}", file=sys.stderr)
        return ExitCode.FAULT


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _list(data: Path) -> int:
    from rig.lab.subjects import list_animals, load_subject

    animals = list_animals(data)
    if not animals:
        print(f"no animals in {data}")
        return ExitCode.OK
    for a in animals:
        s = load_subject(data, a)
        what = "not registered" if s is None else \
            f"{s.sex} {s.species}" + (", water-restricted" if s.restricted else "")
        print(f"{a:<20} {what}")
    return ExitCode.OK


def _log(data: Path, animal: str, config: Any, days: int | None, as_json: bool) -> int:
    from rig.lab.daily import animal_log

    folder = data / animal
    if not folder.is_dir():
        return _fail(f"{folder}: no such animal (register it with `rig animal {animal} add --sex ...`)")
    log = animal_log(data, animal, config.lab, last_days=days)
    print(json.dumps(log.to_json(), sort_keys=True) if as_json else log.text())
    return ExitCode.OK


def _act(data: Path, animal: str, sub: argparse.Namespace, by: str, config: Any) -> int:
    from rig.lab import notes, subjects, water, weights
    from rig.lab.daily import animal_log

    subjects.check_animal_id(animal)
    today = dt.date.today()
    if sub.action == "add":
        if sub.restricted and sub.restriction_start is None:
            sub.restriction_start = today
        fields = {"id": animal, "species": sub.species, "sex": sub.sex, "date_of_birth": sub.dob,
                  "strain": sub.strain, "genotype": sub.genotype, "description": sub.description,
                  "restricted": sub.restricted, "water_restriction_start": sub.restriction_start,
                  "baseline_weight_g": sub.baseline_g, "daily_water_target_ml": sub.target_ml, "cage": sub.cage,
                  "license": sub.license, "source": sub.source}
        subject = _subject({k: v for k, v in fields.items() if v is not None})
        print(subjects.create_subject(data, subject, by=by))
        return ExitCode.OK
    if sub.action == "set":
        new = subjects.update_subject(data, animal, _parse_changes(sub.changes), by=by)
        print(yaml.safe_dump(new.model_dump(mode="json", exclude_none=True), sort_keys=False).rstrip())
        return ExitCode.OK
    subject = subjects.load_subject(data, animal)
    if sub.action == "weigh":
        w = weights.record_weight(data, animal, sub.grams, sub.date or today, subject, by=by, note=sub.note)
        print(f"{animal} {w.date}: {w.weight_g:g} g recorded")
        day = w.date
    elif sub.action == "supplement":
        s = water.record_supplement(data, animal, sub.ml, sub.date or today, by=by, note=sub.note)
        print(f"{animal} {s.date}: {s.volume_ml:g} ml supplement recorded")
        day = s.date
    else:
        n = notes.add_note(data, animal, sub.text, sub.date, by=by, session=sub.session)
        print(f"{animal} {n.date}: note recorded")
        day = n.date
    for d in animal_log(data, animal, config.lab).days:
        if d.date == day:
            for alert in d.alerts:
                print(f"alert {day}: {alert}")
    return ExitCode.OK


def _subject(fields: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from rig.lab.journal import LabRecordError
    from rig.lab.subjects import Subject, problem_texts

    try:
        return Subject.model_validate(fields)
    except ValidationError as e:
        raise LabRecordError("; ".join(problem_texts(e))) from None


def is_animal_folder(path: Path) -> bool:
    """DATA/ANIMAL: a folder (not a session) holding sessions or a registry record."""
    from rig.datalog.info import find_sessions
    from rig.lab.subjects import SUBJECT_FILE

    return path.is_dir() and not (path / "header.json").exists() and (
        (path / SUBJECT_FILE).is_file() or bool(find_sessions(path)))


def print_animal_folder(path: Path, as_json: bool, prog: str) -> int:
    """`rig info ANIMAL_DIR`: the animal's daily log (alert thresholds from the default rig config)."""
    from rig.lab.daily import animal_log
    from rig.lab.journal import LabRecordError
    from rig.loading import default_config_path, load_config

    try:
        settings = load_config(default_config_path()).lab
        log = animal_log(path.parent, path.name, settings)
    except LabRecordError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    print(json.dumps(log.to_json(), sort_keys=True) if as_json else log.text())
    if not as_json:
        print(f"\n(an animal folder: `rig animal {path.name} --data {path.parent}` is this log; "
              f"`rig info {path}/DATE/NNN` a session's summary)")
    return ExitCode.OK
