"""The animal registry (DATA/ANIMAL/animal.yaml) and the append-only journals beside it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from rig.lab import journal
from rig.lab.journal import LabRecordError
from rig.lab.notes import add_note, notes
from rig.lab.subjects import (
    ANIMAL_ID,
    Subject,
    check_animal_id,
    create_subject,
    list_animals,
    load_subject,
    registry_changes,
    update_subject,
)
from rig.lab.water import record_supplement, supplements
from rig.lab.weights import WeightEntry, record_weight, weight_on, weights
from rig.yamlload import LoadError

RESTRICTED = dict(id="M1", sex="F", date_of_birth=dt.date(2026, 8, 1), strain="C57BL/6J", genotype="wild type",
                  restricted=True, water_restriction_start=dt.date(2026, 11, 1), baseline_weight_g=25.0,
                  daily_water_target_ml=1.0)


def test_ids_are_what_dandi_keeps() -> None:
    # DANDI turns _ . spaces / into '-' in sub-<id> names, so such an id would not survive an upload.
    for ok in ("M1", "mouse-07", "A", "x" * 64):
        assert ANIMAL_ID.match(ok) and check_animal_id(ok) == ok
    for bad in ("m_01", "m.01", "m 01", "a/b", "-m1", "", "x" * 65, "mäus"):
        with pytest.raises(LabRecordError, match="letters, digits and '-'"):
            check_animal_id(bad)
        with pytest.raises(ValueError, match="DANDI"):
            Subject(id=bad, sex="F")


def test_a_record_is_validated_as_a_whole() -> None:
    assert Subject(**RESTRICTED).restricted_on(dt.date(2026, 11, 1))
    assert not Subject(**RESTRICTED).restricted_on(dt.date(2026, 10, 31))
    with pytest.raises(ValueError, match="a water-restricted animal needs water_restriction_start, baseline"):
        Subject(id="M1", sex="F", restricted=True)
    with pytest.raises(ValueError, match="is before the date of birth"):
        Subject(**{**RESTRICTED, "water_restriction_start": dt.date(2026, 7, 1)})
    with pytest.raises(ValueError, match="in the future"):
        Subject(id="M1", sex="F", date_of_birth=dt.date.today() + dt.timedelta(days=1))
    with pytest.raises(ValueError, match="Latin binomial"):
        Subject(id="M1", sex="F", species="mouse")
    with pytest.raises(ValueError, match="'M', 'F', 'U' or 'O'"):
        Subject(id="M1", sex="female")
    facts = Subject(**RESTRICTED).facts()
    assert (facts.id, facts.sex, facts.date_of_birth, facts.baseline_weight_g) == ("M1", "F", "2026-08-01", 25.0)


def test_create_load_update_and_the_change_journal(tmp_path: Path) -> None:
    path = create_subject(tmp_path, Subject(**RESTRICTED), by="Doe, Jane")
    assert path == tmp_path / "M1" / "animal.yaml"
    assert load_subject(tmp_path, "M1") == Subject(**RESTRICTED)
    assert load_subject(tmp_path, "M2") is None
    with pytest.raises(LabRecordError, match="registered already"):
        create_subject(tmp_path, Subject(**RESTRICTED))
    new = update_subject(tmp_path, "M1", {"restricted": False, "cage": "C12"}, by="Roe, Rick")
    assert (new.restricted, new.cage) == (False, "C12") and load_subject(tmp_path, "M1") == new
    with pytest.raises(LabRecordError, match="baseline_weight_g"):
        update_subject(tmp_path, "M1", {"baseline_weight_g": -3})
    with pytest.raises(LabRecordError, match="unknown field"):
        update_subject(tmp_path, "M1", {"weight": 3})
    with pytest.raises(LabRecordError, match="cannot change"):
        update_subject(tmp_path, "M1", {"id": "M9"})
    changes = registry_changes(tmp_path, "M1")
    assert [c.action for c in changes] == ["created", "changed"]  # refused changes leave no trace
    assert changes[1].changes == {"restricted": [True, False], "cage": [None, "C12"]} and changes[1].by == "Roe, Rick"
    assert list_animals(tmp_path) == ["M1"]


def test_a_bad_record_file_is_reported_as_file_line_field(tmp_path: Path) -> None:
    folder = tmp_path / "M1"
    folder.mkdir()
    f = folder / "animal.yaml"
    f.write_text("id: M1\nsex: female\ncolour: brown\n")
    with pytest.raises(LoadError) as e:
        load_subject(tmp_path, "M1")
    got = [str(p) for p in e.value.problems]
    assert got[0] == f"{f}:2: sex: Input should be 'M', 'F', 'U' or 'O'"
    assert got[1].startswith(f"{f}:3: colour: unknown key; allowed keys: id, species, sex")
    f.write_text("id: M1\nsex: F\nrestricted: true\nbaseline_weight_g: 25\n")
    with pytest.raises(LoadError) as e:
        load_subject(tmp_path, "M1")
    assert [str(p) for p in e.value.problems] == [
        f"{f}:3: restricted: a water-restricted animal needs water_restriction_start, daily_water_target_ml"]
    (folder / "animal.yaml").write_text("id: M2\nsex: F\n")
    with pytest.raises(LoadError, match="not the animal of this folder"):
        load_subject(tmp_path, "M1")


def test_journals_only_append_and_report_damage_with_file_and_line(tmp_path: Path) -> None:
    subject = Subject(**RESTRICTED)
    create_subject(tmp_path, subject)
    day = dt.date(2026, 11, 3)
    record_weight(tmp_path, "M1", 24.0, day, subject)
    path = tmp_path / "M1" / "weights.jsonl"
    first = path.read_bytes()
    record_weight(tmp_path, "M1", 23.5, day, subject, source="rig run", by="Doe, Jane")
    assert path.read_bytes().startswith(first)  # the earlier entry is untouched
    entries = weights(tmp_path, "M1")
    assert [e.weight_g for e in entries] == [24.0, 23.5] and weight_on(entries, day) == entries[-1]
    assert weight_on(entries, dt.date(2026, 11, 4)) is None
    # a crash mid-write can only leave an unterminated last line: it is dropped, not fatal
    with open(path, "ab") as f:
        f.write(b'{"date": "2026-11-0')
    assert len(weights(tmp_path, "M1")) == 2
    path.write_bytes(first + b"not json\n" + first)
    with pytest.raises(LabRecordError, match=rf"{path}:2: not a JSON line"):
        weights(tmp_path, "M1")
    path.write_bytes(first + json.dumps({"date": "2026-11-03", "weight_g": -1, "recorded_at": "x"}).encode() + b"\n")
    with pytest.raises(LabRecordError, match=rf"{path}:2: weight_g: Input should be greater than 0"):
        weights(tmp_path, "M1")
    journal.append(tmp_path / "M1" / "other.jsonl", WeightEntry(date=day, weight_g=1.0, recorded_at="now"))
    assert journal.read(tmp_path / "M1" / "other.jsonl", WeightEntry)[0].weight_g == 1.0


def test_implausible_weights_and_supplements_are_refused_before_writing(tmp_path: Path) -> None:
    subject = Subject(**RESTRICTED)
    day = dt.date(2026, 11, 3)
    for bad, words in ((0, "give the body weight in grams"), (float("nan"), "give the body weight"),
                       (2.4, "10% of M1's baseline 25 g"), (240, "960% of M1's baseline")):
        with pytest.raises(LabRecordError, match=words):
            record_weight(tmp_path, "M1", bad, day, subject)
    for bad in (0, -0.5, 250):  # 250 "ml" is ul typed as ml
        with pytest.raises(LabRecordError, match="give the water in millilitres"):
            record_supplement(tmp_path, "M1", bad, day)
    assert weights(tmp_path, "M1") == [] and supplements(tmp_path, "M1") == []
    record_supplement(tmp_path, "M1", 0.4, day, by="Doe, Jane", note="after the session")
    assert supplements(tmp_path, "M1")[0].volume_ml == 0.4
    with pytest.raises(LabRecordError, match="letters, digits"):
        record_supplement(tmp_path, "m_1", 0.4, day)


def test_notes_name_an_existing_session_and_never_touch_it(tmp_path: Path) -> None:
    session = tmp_path / "M1" / "2026-11-03" / "001"
    session.mkdir(parents=True)
    (session / "header.json").write_text("{}")
    n = add_note(tmp_path, "M1", "  licked early  ", session="2026-11-03/001", by="Doe, Jane")
    assert (n.date, n.text, n.session) == (dt.date(2026, 11, 3), "licked early", "2026-11-03/001")
    assert sorted(p.name for p in session.iterdir()) == ["header.json"]
    with pytest.raises(LabRecordError, match="no such session"):
        add_note(tmp_path, "M1", "x", session="2026-11-04/001")
    with pytest.raises(LabRecordError, match="DATE/NNN"):
        add_note(tmp_path, "M1", "x", session="yesterday")
    with pytest.raises(LabRecordError, match="needs some text"):
        add_note(tmp_path, "M1", "   ")
    assert [x.text for x in notes(tmp_path, "M1")] == ["licked early"]
