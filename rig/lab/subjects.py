"""The animal registry: one validated file per animal, DATA/ANIMAL/animal.yaml, beside its sessions.

The file is YAML a person can read and edit; every read validates it (problems as FILE:LINE: field:
message). `rig animal ID add` creates it and `rig animal ID set` changes it; each creation and change is
also appended to DATA/ANIMAL/registry.jsonl (who, when, old and new values), so the record's history
survives edits. Animal ids are limited to letters, digits and '-' (see ANIMAL_ID).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rig.datalog.header import SubjectFacts
from rig.lab import journal
from rig.lab.journal import Entry, LabRecordError
from rig.protocol import FieldErrors, FieldIssue
from rig.yamlload import LoadError, Problem, YamlError, format_path, load_yaml

# Letters, digits and '-': DANDI names a subject's files sub-<id>/sub-<id>_....nwb and turns every other
# character (_ . spaces / : and more) into '-', so an id holding one would name a different subject in a
# DANDI dataset than in the rig's folders and logs; these characters are also safe in file names anywhere.
ANIMAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
ANIMAL_ID_RULE = "1-64 letters, digits and '-' (starting with a letter or digit)"
SUBJECT_FILE = "animal.yaml"
CHANGES_FILE = "registry.jsonl"
# A Latin binomial ("Mus musculus") or an NCBI taxonomy URL: the forms DANDI maps to a species.
_SPECIES = re.compile(r"^([A-Z][a-z]+ [a-z]+|http://purl\.obolibrary\.org/obo/NCBITaxon_\d+)$")


class Subject(BaseModel):
    """DATA/ANIMAL/animal.yaml. Weights and water are journals beside it (rig.lab.weights, rig.lab.water)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description=f"the animal id: {ANIMAL_ID_RULE}; the name of its folder")
    species: str = Field("Mus musculus", description="Latin binomial, or an NCBITaxon URL")
    sex: Literal["M", "F", "U", "O"] = Field(description="M, F, U (unknown) or O (other): the NWB/DANDI codes")
    date_of_birth: dt.date | None = None
    strain: str | None = Field(None, min_length=1, max_length=200)
    genotype: str | None = Field(None, min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    restricted: bool = Field(False, description="on water restriction")
    water_restriction_start: dt.date | None = None
    baseline_weight_g: float | None = Field(None, gt=0, le=2000, description="weight before restriction")
    daily_water_target_ml: float | None = Field(None, gt=0, le=50, description="water per day, rig + supplements")
    cage: str | None = Field(None, min_length=1, max_length=64)
    license: str | None = Field(None, min_length=1, max_length=200, description="animal license / protocol number")
    source: str | None = Field(None, min_length=1, max_length=200, description="vendor or breeding colony")
    extra: dict[str, str] = Field(default_factory=dict, description="anything else the lab records")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not ANIMAL_ID.match(v):
            raise ValueError(f"{v!r}: an animal id is {ANIMAL_ID_RULE} (DANDI keeps no other characters)")
        return v

    @field_validator("species")
    @classmethod
    def _species(cls, v: str) -> str:
        if not _SPECIES.match(v):
            raise ValueError(f"{v!r}: give the Latin binomial ('Mus musculus') or an NCBITaxon URL "
                             "(http://purl.obolibrary.org/obo/NCBITaxon_10090), as DANDI asks")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Subject:
        issues: list[FieldIssue] = []
        today = dt.date.today()
        if self.date_of_birth is not None and self.date_of_birth > today:
            issues.append(FieldIssue(("date_of_birth",), f"{self.date_of_birth} is in the future"))
        if self.restricted:
            missing = [n for n in ("water_restriction_start", "baseline_weight_g", "daily_water_target_ml")
                       if getattr(self, n) is None]
            if missing:
                issues.append(FieldIssue(("restricted",), f"a water-restricted animal needs {', '.join(missing)}"))
        start = self.water_restriction_start
        if start is not None and self.date_of_birth is not None and start < self.date_of_birth:
            issues.append(FieldIssue(("water_restriction_start",), f"{start} is before the date of birth"))
        if issues:
            raise FieldErrors(issues)
        return self

    def facts(self) -> SubjectFacts:
        """The record as the session header holds it."""
        def iso(d: dt.date | None) -> str | None:
            return d.isoformat() if d is not None else None

        return SubjectFacts(
            id=self.id, species=self.species, sex=self.sex, date_of_birth=iso(self.date_of_birth),
            strain=self.strain, genotype=self.genotype, description=self.description, restricted=self.restricted,
            water_restriction_start=iso(self.water_restriction_start), baseline_weight_g=self.baseline_weight_g,
            daily_water_target_ml=self.daily_water_target_ml,
        )

    def restricted_on(self, day: dt.date) -> bool:
        """Restricted on that day (from the restriction start on)."""
        start = self.water_restriction_start
        return self.restricted and (start is None or day >= start)


class RegistryChange(Entry):
    """registry.jsonl: a creation or a change of animal.yaml."""

    recorded_at: str
    by: str = ""
    action: Literal["created", "changed"]
    changes: dict[str, list[Any]]  # field -> [old, new] (created: [None, value])


def check_animal_id(animal: str) -> str:
    if not ANIMAL_ID.match(animal):
        raise LabRecordError(f"animal id {animal!r}: an animal id is {ANIMAL_ID_RULE} (DANDI keeps no other "
                             "characters in subject names)")
    return animal


def animal_dir(data_dir: Path, animal: str) -> Path:
    return Path(data_dir) / animal


def subject_path(data_dir: Path, animal: str) -> Path:
    return animal_dir(data_dir, animal) / SUBJECT_FILE


def load_subject(data_dir: Path, animal: str) -> Subject | None:
    """The animal's record, None when it is not registered. Raises LoadError (FILE:LINE problems) when the
    file is not a valid record or names another animal than its folder."""
    path = subject_path(data_dir, animal)
    if not path.exists():
        return None
    try:
        loaded = load_yaml(path)
    except YamlError as e:
        raise LoadError(e.problems) from None
    try:
        subject = Subject.model_validate(loaded.data)
    except ValidationError as e:
        raise LoadError(_problems(str(path), loaded.line_of, e)) from None
    if subject.id != animal:
        raise LoadError([Problem(str(path), loaded.line_of(("id",)), "id",
                                 f"{subject.id!r} is not the animal of this folder ({animal!r})")])
    return subject


def _problems(file: str, line_of: Any, err: ValidationError) -> list[Problem]:
    out: list[Problem] = []
    for e in err.errors():
        loc = tuple(e["loc"])
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, FieldErrors):
            out += [Problem(file, line_of((*loc, *i.loc)), format_path((*loc, *i.loc)), i.message)
                    for i in cause.issues]
            continue
        msg = str((e.get("ctx") or {}).get("error") or e["msg"])
        if e["type"] == "extra_forbidden":
            msg = f"unknown key; allowed keys: {', '.join(Subject.model_fields)}"
        elif e["type"] == "missing":
            msg = "required key is missing"
        out.append(Problem(file, line_of(loc), format_path(loc) or "(top level)", msg))
    return sorted(set(out), key=lambda p: (p.line, p.field))


def _write(path: Path, subject: Subject) -> None:
    """animal.yaml, written whole under a temporary name and renamed into place."""
    data = subject.model_dump(exclude_none=True, exclude_defaults=False)
    if not data.get("extra"):
        data.pop("extra", None)
    text = (f"# {subject.id}: animal record (rig animal {subject.id} set FIELD=VALUE changes it; the history of\n"
            f"# every change is in {CHANGES_FILE} beside this file)\n"
            + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def create_subject(data_dir: Path, subject: Subject, by: str = "") -> Path:
    """Register a new animal; refuses when it is registered already."""
    path = subject_path(data_dir, subject.id)
    if path.exists():
        raise LabRecordError(f"{path}: {subject.id} is registered already; change it with "
                             f"`rig animal {subject.id} set FIELD=VALUE`")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, subject)
    dumped = subject.model_dump(mode="json", exclude_none=True)
    journal.append(path.parent / CHANGES_FILE, RegistryChange(
        recorded_at=journal.now_iso(), by=by, action="created", changes={k: [None, v] for k, v in dumped.items()}))
    return path


def update_subject(data_dir: Path, animal: str, changes: dict[str, Any], by: str = "") -> Subject:
    """Change fields of a registered animal (validated as a whole record); the change is journaled."""
    old = load_subject(data_dir, animal)
    if old is None:
        raise LabRecordError(f"{animal} is not registered; add it first with `rig animal {animal} add ...`")
    if "id" in changes and changes["id"] != animal:
        raise LabRecordError("the id names the animal's folder and cannot change")
    unknown = sorted(set(changes) - set(Subject.model_fields))
    if unknown:
        raise LabRecordError(f"unknown field(s) {', '.join(unknown)}; fields: {', '.join(Subject.model_fields)}")
    data = old.model_dump()
    data.update(changes)
    try:
        new = Subject.model_validate(data)
    except ValidationError as e:
        raise LabRecordError("; ".join(problem_texts(e))) from None
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    diff = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if not diff:
        return old
    _write(subject_path(data_dir, animal), new)
    journal.append(animal_dir(data_dir, animal) / CHANGES_FILE,
                   RegistryChange(recorded_at=journal.now_iso(), by=by, action="changed", changes=diff))
    return new


def problem_texts(err: ValidationError) -> list[str]:
    return [f"{p.field}: {p.message}" for p in _problems("", lambda _loc: 0, err)]


def registry_changes(data_dir: Path, animal: str) -> list[RegistryChange]:
    return journal.read(animal_dir(data_dir, animal) / CHANGES_FILE, RegistryChange)


def list_animals(data_dir: Path) -> list[str]:
    """Animals with a folder in the data directory (registered or with sessions), sorted."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return []
    return sorted(p.name for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (any(p.glob("????-??-??")) or (p / SUBJECT_FILE).is_file()))
