"""Per-animal memory: the virtual mouse's learning persists between sessions of one animal, atomically,
validated, and recorded in each session's header."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rig import api
from rig.sim.learning import Knowledge
from rig.sim.memory import FILENAME, MemoryFileError, MemoryStore
from tests.support.paths import REPO

NOCUE = REPO / "examples" / "staged_zone_task.yaml"
EXPOSURE = REPO / "protocols" / "pretrain_natural_exposure.yaml"
NAIVE = REPO / "config" / "sim-naive.yaml"


def knowledge() -> Knowledge:
    k = Knowledge()
    k.meet("leaf1", "leaf")
    k.meet("circle1", "circle")
    k.end_trial("leaf1", 3.999, water=True, learning_rate=0.0317, familiarity_m=2500.0)
    k.end_trial("circle1", 4.0, water=False, learning_rate=0.0317, familiarity_m=2500.0)
    k.water_at(251.3)
    k.water_at(262.7)
    k.end_session("task")
    return k


def test_save_then_load_gives_the_same_knowledge_bit_for_bit(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "M1")
    assert store.load() is None  # no memory yet
    k = knowledge()
    store.save(k, session="2024-01-01/001", protocol="staged_zone_task", kind="task")
    again = MemoryStore(tmp_path / "M1").load()
    assert again is not None and again.to_dict() == k.to_dict()
    assert [p.name for p in (tmp_path / "M1").iterdir()] == [FILENAME]  # no temporary file left behind


def test_each_save_appends_one_history_line(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "M1")
    k = knowledge()
    store.save(k, session="2024-01-01/001", protocol="a", kind="task")
    store = MemoryStore(tmp_path / "M1")
    store.load()
    store.save(k, session="2024-01-02/001", protocol="b", kind="exposure")
    doc = json.loads((tmp_path / "M1" / FILENAME).read_text())
    assert [(h["session"], h["protocol"], h["kind"]) for h in doc["history"]] == [
        ("2024-01-01/001", "a", "task"), ("2024-01-02/001", "b", "exposure")]
    assert doc["history"][1]["expectation"]["leaf1"] == k.corridors["leaf1"].expectation


def test_a_failed_write_leaves_the_old_memory_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore(tmp_path / "M1")
    store.save(knowledge(), session="2024-01-01/001", protocol="a", kind="task")
    before = (tmp_path / "M1" / FILENAME).read_bytes()
    changed = knowledge()
    changed.corridors["leaf1"].expectation = 0.9

    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space"):
        store.save(changed, session="2024-01-02/001", protocol="a", kind="task")
    monkeypatch.undo()
    assert (tmp_path / "M1" / FILENAME).read_bytes() == before
    assert [p.name for p in (tmp_path / "M1").iterdir()] == [FILENAME]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: "{not json", "not JSON"),
        (lambda d: {**d, "format": "something-else"}, "format"),
        (lambda d: {**d, "animal": "M2"}, "M2"),
        (lambda d: d | {"knowledge": d["knowledge"] | {"waters": -1}}, "knowledge.waters"),
        (lambda d: d | {"knowledge": d["knowledge"] | {"corridors": {"leaf1": d["knowledge"]["corridors"]["leaf1"]
                                                                    | {"expectation": 1.5}}}},
         "knowledge.corridors.leaf1.expectation"),
        (lambda d: d | {"extra": 1}, "extra"),
    ],
    ids=["not-json", "format", "other-animal", "negative-count", "expectation-out-of-range", "unknown-key"],
)
def test_a_damaged_memory_file_is_refused_naming_the_field(tmp_path: Path, edit, message: str) -> None:
    store = MemoryStore(tmp_path / "M1")
    store.save(knowledge(), session="2024-01-01/001", protocol="a", kind="task")
    path = tmp_path / "M1" / FILENAME
    data = edit(json.loads(path.read_text()))
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(MemoryFileError, match=message) as err:
        store.load()
    assert str(path) in str(err.value)


def test_no_store_for_a_folder_name_that_is_no_animal_id(tmp_path: Path) -> None:
    assert MemoryStore.for_animal(tmp_path / "..") is None
    assert MemoryStore.for_animal(tmp_path / "M1") is not None


# ---- through real sessions ------------------------------------------------------------------------------


def header(path: Path) -> dict:
    return json.loads((path / "header.json").read_text())


def test_the_mouse_remembers_between_sessions_and_each_header_says_what_it_knew(tmp_path: Path) -> None:
    first = api.run(NOCUE, NAIVE, animal="M1", seed=1, fast=True, max_trials=40, data_dir=tmp_path)
    memory = tmp_path / "M1" / FILENAME
    after_first = json.loads(memory.read_text())["knowledge"]
    h1 = header(first)["sim"]
    assert h1["remembered"] is False and h1["motivated"] is True and h1["memory_file"] == str(memory)
    assert all(c["expectation"] == 0.0 for c in h1["knowledge"]["corridors"].values())  # sim-naive: naive
    assert after_first["corridors"]["leaf1"]["expectation"] > 0.0 and after_first["sessions"] == 1

    second = api.run(EXPOSURE, NAIVE, animal="M1", seed=2, fast=True, max_trials=20, data_dir=tmp_path)
    h2 = header(second)["sim"]
    assert h2["remembered"] is True and h2["motivated"] is False
    assert h2["knowledge"] == after_first  # it starts where the first session left it
    after_second = json.loads(memory.read_text())
    k = after_second["knowledge"]
    # Exposure: familiarity grew, reward expectation did not change.
    assert k["corridors"]["leaf1"]["familiarity"] > after_first["corridors"]["leaf1"]["familiarity"]
    assert k["corridors"]["leaf1"]["expectation"] == after_first["corridors"]["leaf1"]["expectation"]
    assert (k["sessions"], k["task_sessions"], k["exposure_sessions"]) == (2, 1, 1)
    assert [h["session"] for h in after_second["history"]] == [
        f"{first.parent.name}/{first.name}", f"{second.parent.name}/{second.name}"]
    # Another animal has its own memory.
    other = api.run(NOCUE, NAIVE, animal="M2", seed=1, fast=True, max_trials=5, data_dir=tmp_path)
    assert header(other)["sim"]["remembered"] is False


def test_memory_off_in_the_config_keeps_no_file(tmp_path: Path) -> None:
    config = api.load_config(NAIVE)
    assert config.sim is not None
    config = config.model_copy(update={"sim": config.sim.model_copy(update={"memory": False})})
    path = api.run(NOCUE, config, animal="M1", seed=1, fast=True, max_trials=5, data_dir=tmp_path)
    assert not (tmp_path / "M1" / FILENAME).exists()
    assert header(path)["sim"]["memory_file"] is None


def test_same_memory_and_seed_give_byte_identical_sessions(tmp_path: Path) -> None:
    runs = []
    for k in range(2):
        data = tmp_path / str(k)
        api.run(NOCUE, NAIVE, animal="M1", seed=1, fast=True, max_trials=30, data_dir=data)
        runs.append(api.run(NOCUE, NAIVE, animal="M1", seed=2, fast=True, max_trials=30, data_dir=data))
    for f in ("licks.bin", "ball.bin", "events.jsonl"):
        assert (runs[0] / f).read_bytes() == (runs[1] / f).read_bytes(), f
    assert (tmp_path / "0" / "M1" / FILENAME).read_bytes() == (tmp_path / "1" / "M1" / FILENAME).read_bytes()


def test_rig_run_refuses_a_damaged_memory_with_a_message_and_no_session(tmp_path: Path) -> None:
    (tmp_path / "M1").mkdir()
    (tmp_path / "M1" / FILENAME).write_text('{"format": "corridor-rig-sim-mouse"}')
    r = subprocess.run([sys.executable, "-m", "rig.cli", "run", str(NOCUE), "--fast", "--max-trials", "3",
                        "--animal", "M1", "--data", str(tmp_path)], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and f"{tmp_path / 'M1' / FILENAME}" in r.stderr
    assert [p.name for p in (tmp_path / "M1").iterdir()] == [FILENAME]  # no session folder
