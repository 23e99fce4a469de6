"""The safe YAML loader: data, line numbers, and refusal of hostile or malformed files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from rig import yamlload
from rig.yamlload import Limits, Loaded, Problem, YamlError, format_path, load_yaml, load_yaml_bytes
from tests.support.paths import BROKEN


def only_problem(excinfo: pytest.ExceptionInfo[YamlError]) -> Problem:
    assert len(excinfo.value.problems) == 1, excinfo.value.problems
    return excinfo.value.problems[0]


@pytest.fixture(params=["C", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with libyaml's parser and with PyYAML's pure-Python fallback."""
    if request.param == "python":
        monkeypatch.setattr(yamlload, "_Loader", yaml.SafeLoader)
    elif not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML built without libyaml")
    return request.param


def test_data_and_line_of_every_key_and_item(parser: str) -> None:
    text = "# comment\nname: x\ncorridors:\n  - name: a\n    texture:\n      source: leaf\n  - {name: b}\n"
    loaded = load_yaml_bytes(text, "t.yaml")
    assert loaded.data == {
        "name": "x",
        "corridors": [{"name": "a", "texture": {"source": "leaf"}}, {"name": "b"}],
    }
    assert loaded.lines[()] == 2
    assert loaded.lines[("name",)] == 2
    assert loaded.lines[("corridors",)] == 3
    assert loaded.lines[("corridors", 0)] == 4
    assert loaded.lines[("corridors", 0, "texture", "source")] == 6
    assert loaded.lines[("corridors", 1, "name")] == 7


def test_line_of_falls_back_to_the_closest_ancestor() -> None:
    loaded = load_yaml_bytes("a: 1\nb:\n  c:\n    d: 2\n", "t.yaml")
    assert loaded.line_of(("b", "c", "missing", "deeper")) == 3
    assert loaded.line_of(("nowhere",)) == 1
    assert Loaded("api", {}, {}).line_of(("x",)) == 1


def test_format_path() -> None:
    assert format_path(("corridors", 2, "texture", "source")) == "corridors[2].texture.source"
    assert format_path(("order", "sequence", 0)) == "order.sequence[0]"
    assert format_path(()) == ""


def test_problem_formats_as_file_line_field_message() -> None:
    assert str(Problem("p.yaml", 7, "cue.position_cm", "too far")) == "p.yaml:7: cue.position_cm: too far"


def test_duplicate_keys_report_both_lines(parser: str) -> None:
    with pytest.raises(YamlError) as ei:
        load_yaml_bytes("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\na: 4\n", "d.yaml")
    assert [(p.line, p.field, p.message) for p in ei.value.problems] == [
        (5, "b.c", "duplicate key (first given at line 3)"),
        (6, "a", "duplicate key (first given at line 1)"),
    ]


def test_anchors_and_merge_keys_within_limits_work(parser: str) -> None:
    text = "base: &b {speed: 60, hold: 66}\nfast:\n  <<: *b\n  speed: 90\nsame: *b\n"
    loaded = load_yaml_bytes(text, "m.yaml")
    assert loaded.data["fast"] == {"speed": 90, "hold": 66}
    assert loaded.data["same"] == {"speed": 60, "hold": 66}
    assert loaded.lines[("fast", "speed")] == 4
    assert loaded.lines[("fast", "hold")] == 3  # merged keys point at the `<<` line


def test_too_many_aliases_refused(parser: str) -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 10) + "]\n"
    with pytest.raises(YamlError) as ei:
        load_yaml_bytes(text, "al.yaml", Limits(max_aliases=5))
    p = only_problem(ei)
    assert (p.line, p.field) == (2, "b[5]")
    assert "too many aliases" in p.message


def test_alias_bomb_refused_fast(parser: str) -> None:
    t0 = time.process_time()
    with pytest.raises(YamlError) as ei:
        load_yaml(BROKEN / "alias_bomb.yaml")
    p = only_problem(ei)
    assert (p.line, p.field) == (8, "<yaml>")
    assert "document too large" in p.message
    assert time.process_time() - t0 < 10  # generous: expanding it would take hours and gigabytes


def test_alias_to_unfinished_anchor_refused(parser: str) -> None:
    with pytest.raises(YamlError) as ei:
        load_yaml_bytes("a: &a [1, *a]\n", "r.yaml")
    assert "refers to no complete anchor" in only_problem(ei).message


def test_excessive_nesting_refused(parser: str) -> None:
    text = "a: " + "[" * 100 + "]" * 100 + "\n"
    with pytest.raises(YamlError) as ei:
        load_yaml_bytes(text, "n.yaml")
    p = only_problem(ei)
    assert p.line == 1 and "nesting deeper than 32" in p.message


def test_block_nesting_within_limit_is_fine() -> None:
    text = "".join("  " * i + f"k{i}:\n" for i in range(20)) + "  " * 20 + "v\n"
    assert load_yaml_bytes(text, "ok.yaml").lines[tuple(f"k{i}" for i in range(20))] == 20


@pytest.mark.parametrize(
    "text, line, field, words",
    [
        ("", 1, "<file>", "file is empty"),
        ("# only a comment\n", 1, "<file>", "file is empty"),
        ("just a string\n", 1, "<file>", "must be a mapping of keys, got a str"),
        ("# c\n- 1\n- 2\n", 2, "<file>", "must be a mapping of keys, got a list"),
        ("a: 1\n---\nb: 2\n", 2, "<yaml>", "second YAML document"),
        ("a: !!python/object/apply:os.system ['true']\n", 1, "a", "not supported"),
        ("a: !!python/name:os.system\n", 1, "a", "could not determine a constructor"),
        ("a: !custom 3\n", 1, "a", "could not determine a constructor"),
        ("a: !!set {x: null}\n", 1, "a", "not supported"),
        ("a: 1\n b: 2\n", 2, "<yaml>", "YAML syntax"),
        ("a:\n\t- 1\n", 2, "<yaml>", "YAML syntax"),
        ("a: \x07\n", 1, "<yaml>", "not allowed in YAML text"),
        ("? [1, 2]\n: x\n", 1, "<yaml>", "keys must be plain values"),
        ("a: 2024-13-45\n", 1, "a", "cannot read value"),
    ],
)
def test_malformed_documents(parser: str, text: str, line: int, field: str, words: str) -> None:
    with pytest.raises(YamlError) as ei:
        load_yaml_bytes(text, "x.yaml")
    p = only_problem(ei)
    assert (p.file, p.line, p.field) == ("x.yaml", line, field)
    assert words in p.message


def test_binary_file_refused() -> None:
    with pytest.raises(YamlError) as ei:
        load_yaml(BROKEN / "binary.yaml")
    p = only_problem(ei)
    assert (p.line, p.field) == (5, "<file>")
    assert "binary" in p.message


def test_non_utf8_file_refused_with_its_line() -> None:
    with pytest.raises(YamlError) as ei:
        load_yaml(BROKEN / "latin1.yaml")
    p = only_problem(ei)
    assert (p.line, p.field) == (2, "<file>")
    assert "not UTF-8" in p.message and "0xe9" in p.message


def test_utf8_with_bom_and_non_ascii_text_is_fine() -> None:
    loaded = load_yaml_bytes("\ufeffname: café ☕\n".encode(), "bom.yaml")
    assert loaded.data == {"name": "café ☕"}


def test_huge_file_refused_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "huge.yaml"
    with open(big, "wb") as f:
        f.write(b"name: x\n")
        f.truncate(50 * 1024 * 1024)  # sparse: 50 MiB on paper, nothing on disk
    with pytest.raises(YamlError) as ei:
        load_yaml(big)
    p = only_problem(ei)
    assert (p.line, p.field) == (1, "<file>")
    assert f"{50 * 1024 * 1024} bytes" in p.message and "limit is 1048576" in p.message


def test_size_limit_also_applies_to_text() -> None:
    with pytest.raises(YamlError) as ei:
        load_yaml_bytes("a: " + "x" * 200 + "\n", "t", Limits(max_bytes=100))
    assert "limit is 100 bytes" in only_problem(ei).message


def test_many_values_refused_by_node_budget() -> None:
    with pytest.raises(YamlError) as ei:
        load_yaml_bytes("a: [" + ",".join(["0"] * 2000) + "]\n", "t", Limits(max_nodes=1000))
    assert "more than 1000 values" in only_problem(ei).message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(YamlError) as ei:
        load_yaml(tmp_path / "nope.yaml")
    assert (only_problem(ei).field, only_problem(ei).message) == ("<file>", "no such file")
    with pytest.raises(YamlError) as ei:
        load_yaml(tmp_path)
    assert "is a directory" in only_problem(ei).message


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(YamlError) as ei:
        load_yaml(fifo)
    assert "not a regular file" in only_problem(ei).message
