"""Protocol and rig-config validation: every problem is reported at the right FILE:LINE and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.registry import Registry
from rig.config import RigConfig
from rig.loading import (
    ConfigError,
    LoadError,
    Problem,
    ProtocolError,
    dump_config,
    dump_protocol,
    load_any,
    load_config,
    load_protocol,
    protocol_from_dict,
    protocol_from_yaml,
    validate_files,
)
from rig.protocol import Protocol
from tests.support.fuzz_tally import FuzzTallies
from tests.support.paths import BROKEN, REPO

VALID = """\
name: good
kind: task
corridors:
  - name: leaf1
    texture: {source: leaf, exemplar: 1}
    rewarded: true
  - name: circle1
    texture:
      source: circle
      exemplar: 1
  - name: leaf2
    texture: {source: leaf, exemplar: 2}
    probe: true
movement: {rule: gated, speed_cm_s: 60, threshold_cm_s: 6, hold_ms: 66}
cue:
  position_cm: [50, 350]
reward: {mode: active_after_cue, volume_ul: 2.5}
order: {mode: pseudorandom, max_repeat: 3, probe_fraction: 0.2}
stages:
  - name: warmup
    reward: {mode: passive_after_cue, delay_ms: 500}
    advance: {after_trials: 50}
  - name: main
end: {max_trials: 600, max_duration_s: 9000}
"""

# (file, line, field, words the message must contain): each file has exactly this one problem.
BROKEN_PROTOCOLS = [
    (
        "unknown_key.yaml",
        12,
        "corridors[1].texture.colour",
        ["unknown key", "allowed keys: source, exemplar"],
    ),
    ("duplicate_key.yaml", 23, "order.max_repeat", ["duplicate key", "line 22"]),
    ("wrong_type.yaml", 14, "movement.speed_cm_s", ["valid number", "'fast'"]),
    (
        "bad_literal.yaml",
        21,
        "order.mode",
        ["'shuffled'", "allowed values", "'pseudorandom', 'blocks' or 'fixed'"],
    ),
    ("bad_rule.yaml", 13, "movement.rule", ["'teleport'", "allowed values: 'gated', 'proportional'"]),
    ("negative_length.yaml", 8, "corridors[0].texture_length_cm", ["greater than 0", "-400"]),
    ("zone_outside_texture.yaml", 20, "reward.zone_start_cm", ["outside the texture", "'leaf1' (400 cm)"]),
    ("cue_beyond_texture.yaml", 17, "cue.position_cm", ["beyond the texture", "'circle1' (300 cm)"]),
    ("probe_fraction_no_probe.yaml", 23, "order.probe_fraction", ["no corridor is a probe"]),
    (
        "fixed_order_undefined.yaml",
        22,
        "order.sequence[2]",
        ["'rock1' is not a corridor", "'leaf1', 'circle1'"],
    ),
    ("missing_key.yaml", 5, "corridors[0].texture", ["required key is missing"]),
    ("not_mapping.yaml", 2, "<file>", ["must be a mapping", "list"]),
    ("two_documents.yaml", 25, "<yaml>", ["second YAML document"]),
    ("syntax_error.yaml", 17, "<yaml>", ["YAML syntax", "started at line 16"]),
    ("python_tag.yaml", 2, "name", ["python/object/apply", "not supported"]),
    ("alias_bomb.yaml", 8, "<yaml>", ["document too large"]),
    ("binary.yaml", 5, "<file>", ["binary"]),
    ("latin1.yaml", 2, "<file>", ["not UTF-8"]),
]


@pytest.mark.parametrize("name, line, field, words", BROKEN_PROTOCOLS, ids=[b[0] for b in BROKEN_PROTOCOLS])
def test_broken_protocol_reported_at_its_line_and_field(name: str, line: int, field: str, words: list[str],
                                                        fuzz_tally: FuzzTallies) -> None:
    tally = fuzz_tally("YAML: broken protocol files", "documents", bounded=False)
    tally.tried += 1
    path = BROKEN / name
    with pytest.raises(ProtocolError) as ei:
        load_protocol(path)
    assert [(p.file, p.line, p.field) for p in ei.value.problems] == [(str(path), line, field)]
    msg = ei.value.problems[0].message
    for w in words:
        assert w in msg, (w, msg)
    # The same single problem through validate_files, formatted as the `rig validate` line.
    (p,) = validate_files([path])
    assert str(p).startswith(f"{path}:{line}: {field}: ")
    tally.refused += 1  # at its file:line and field, as asserted above


def test_every_broken_file_is_covered() -> None:
    covered = {b[0] for b in BROKEN_PROTOCOLS} | {"config_bad_params.yaml"}
    assert {p.name for p in BROKEN.glob("*.yaml")} == covered


def test_valid_protocol_loads(tmp_path: Path) -> None:
    f = tmp_path / "good.yaml"
    f.write_text(VALID)
    p = load_protocol(f)
    assert isinstance(p, Protocol)
    assert p.corridor("leaf1").rewarded and p.corridor("leaf2").probe
    assert p.stage_reward(0).mode == "passive_after_cue" and p.stage_reward(1).mode == "active_after_cue"
    assert validate_files([f]) == []


def test_several_problems_reported_together_in_line_order(tmp_path: Path) -> None:
    text = VALID.replace("exemplar: 2}", "exemplar: 0}").replace("max_repeat: 3", "max_repeat: 3, block: 4")
    text = text.replace("    advance: {after_trials: 50}\n", "")
    f = tmp_path / "many.yaml"
    f.write_text(text)
    with pytest.raises(ProtocolError) as ei:
        load_protocol(f)
    assert [(p.line, p.field) for p in ei.value.problems] == [
        (12, "corridors[2].texture.exemplar"),
        (18, "order.block"),
    ]
    # Cross-field checks run once the fields themselves are valid.
    f.write_text(VALID.replace("    advance: {after_trials: 50}\n", "").replace("probe: true", "probe: false"))
    with pytest.raises(ProtocolError) as ei:
        load_protocol(f)
    assert [(p.line, p.field) for p in ei.value.problems] == [
        (18, "order.probe_fraction"),
        (20, "stages[0].advance"),
    ]


def test_errors_inside_a_discriminated_union_point_at_the_file_keys(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(VALID.replace("hold_ms: 66}", "hold_ms: 66, gain: 2}"))
    with pytest.raises(ProtocolError) as ei:
        load_protocol(f)
    (p,) = ei.value.problems
    assert (p.line, p.field) == (14, "movement.gain")
    assert "allowed keys: rule, speed_cm_s, threshold_cm_s, hold_ms" in p.message
    f.write_text(VALID.replace("{rule: gated, ", "{"))
    with pytest.raises(ProtocolError) as ei:
        load_protocol(f)
    (p,) = ei.value.problems
    assert (p.line, p.field) == (14, "movement.rule")
    assert "missing" in p.message and "'gated', 'proportional'" in p.message


def test_model_validator_errors_use_the_line_of_their_object(tmp_path: Path) -> None:
    f = tmp_path / "img.yaml"
    f.write_text(VALID.replace("{source: leaf, exemplar: 2}", "{source: image}"))
    with pytest.raises(ProtocolError) as ei:
        load_protocol(f)
    (p,) = ei.value.problems
    assert (p.line, p.field, p.message) == (12, "corridors[2].texture.path", "source 'image' needs a path")
    f.write_text(VALID.replace("    advance: {after_trials: 50}", "    advance: {window: 5}"))
    with pytest.raises(ProtocolError) as ei:
        load_protocol(f)
    (p,) = ei.value.problems
    assert (p.line, p.field) == (22, "stages[0].advance")
    assert "after_trials or criterion" in p.message


def test_zone_outside_texture_in_a_stage_points_at_that_stage(tmp_path: Path) -> None:
    f = tmp_path / "z.yaml"
    f.write_text(
        VALID.replace("{mode: passive_after_cue, delay_ms: 500}", "{mode: zone_passive, zone_start_cm: [200, 400]}")
    )
    with pytest.raises(ProtocolError) as ei:
        load_protocol(f)
    assert [(p.line, p.field) for p in ei.value.problems] == [(21, "stages[0].reward.zone_start_cm")]


def test_load_errors_share_one_base_class() -> None:
    assert issubclass(ProtocolError, LoadError) and issubclass(ConfigError, LoadError)
    with pytest.raises(LoadError):
        load_protocol(BROKEN / "does_not_exist.yaml")


def test_direct_model_validation_names_the_field() -> None:
    data = yaml.safe_load(VALID)
    data["order"]["probe_fraction"] = 0.5
    data["corridors"][2]["probe"] = False
    with pytest.raises(ValidationError) as ei:
        Protocol.model_validate(data)
    assert "order.probe_fraction: is 0.5 but no corridor is a probe" in str(ei.value)


# -- scripting API -----------------------------------------------------------------------------------


def test_protocol_from_dict_and_dump_round_trip() -> None:
    p = protocol_from_dict(yaml.safe_load(VALID))
    text = dump_protocol(p)
    assert protocol_from_yaml(text) == p
    again = yaml.safe_load(text)
    assert again["corridors"][1]["texture_length_cm"] == 400.0  # defaults are written out
    assert again["movement"]["rule"] == "gated"


def test_protocol_from_dict_errors_carry_the_source_and_field() -> None:
    data = yaml.safe_load(VALID)
    data["cue"]["position_cm"] = [50, 500]
    with pytest.raises(ProtocolError) as ei:
        protocol_from_dict(data, source="<script>")
    assert [str(p) for p in ei.value.problems] == [
        "<script>:0: cue.position_cm: [50.0, 500.0] reaches beyond the texture of corridor 'leaf1' (400 cm), "
        "'circle1' (400 cm), 'leaf2' (400 cm)"
    ]
    with pytest.raises(ProtocolError) as ei:
        protocol_from_dict(["not", "a", "dict"])
    assert "must be a mapping" in ei.value.problems[0].message


# -- rig configs -------------------------------------------------------------------------------------


class _Device:
    """Stands in for a hardware driver class: the registry only needs its Params model here."""

    def __init__(self, params: BaseModel, context: Any) -> None:
        self.params = params


class BallParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    counts_per_cm: float = Field(100.0, gt=0)
    sample_rate_hz: float = Field(1000.0, gt=0)


class ValveParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_open_ms: float = Field(1000.0, gt=0, le=10_000)


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _cls(params: type[BaseModel]) -> type:
    return type(f"Fake{params.__name__}", (_Device,), {"Params": params})


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    for type_name in ("fake", "sim"):
        reg.add("ball", type_name, _cls(BallParams))
        reg.add("valve", type_name, _cls(ValveParams))
        for role in ("lick", "cue", "frame_clock", "display"):
            reg.add(role, type_name, _cls(NoParams))
    return reg


CONFIG = """\
name: bench
valve_calibration:
  points:
    - {duration_ms: 10, volume_ul: 1.0}
    - {duration_ms: 25, volume_ul: 2.5}
drivers:
  ball: {type: fake, counts_per_cm: 80}
  lick: {type: fake}
  valve: {type: fake, max_open_ms: 500}
  cue: {type: fake}
  frame_clock: {type: fake}
  display: {type: fake}
"""


def test_valid_config_loads_with_typed_driver_params(tmp_path: Path, registry: Registry) -> None:
    f = tmp_path / "bench.yaml"
    f.write_text(CONFIG)
    cfg = load_config(f, registry)
    assert isinstance(cfg, RigConfig)
    ball = cfg.driver_params("ball")
    assert isinstance(ball, BallParams) and ball.counts_per_cm == 80
    assert cfg.valve_calibration.duration_ms(2.5) == pytest.approx(25.0)
    assert not cfg.simulated
    assert yaml.safe_load(dump_config(cfg))["drivers"]["ball"] == {"type": "fake", "counts_per_cm": 80}


def test_driver_param_errors_point_at_the_parameter(registry: Registry) -> None:
    path = BROKEN / "config_bad_params.yaml"
    with pytest.raises(ConfigError) as ei:
        load_config(path, registry)
    got = [(p.line, p.field, p.message) for p in ei.value.problems]
    assert [g[:2] for g in got] == [
        (9, "drivers.ball.counts_per_cm"),
        (15, "drivers.valve.flow"),
        (21, "drivers.display.type"),
    ]
    assert "greater than 0" in got[0][2] and "-5" in got[0][2]
    assert got[1][2] == "unknown key; allowed keys: max_open_ms"
    assert got[2][2] == "unknown display driver type 'hologram'; allowed: fake, sim"
    # load_any recognises a config by its drivers key.
    with pytest.raises(ConfigError):
        load_any(path, registry)


@pytest.mark.parametrize(
    "old, new, line, field, words",
    [
        ("  display: {type: fake}\n", "", 6, "drivers", "missing roles ['display']"),
        (
            "  display: {type: fake}\n",
            "  display: {type: fake}\n  tail: {type: fake}\n",
            13,
            "drivers.tail",
            "unknown driver role",
        ),
        (
            "  lick: {type: fake}\n",
            "  lick: {kind: fake}\n",
            8,
            "drivers.lick.type",
            "required key is missing",
        ),
        ("volume_ul: 2.5}", "volume_ul: 0.5}", 3, "valve_calibration.points", "volume must increase"),
        ("ball: {type: fake,", "ball: {type: sim,", 1, "sim", "need a sim: section"),
        ("name: bench\n", "name: bench\nframe_rate_hz: 0\n", 2, "frame_rate_hz", "greater than 0"),
    ],
)
def test_config_problems(
    tmp_path: Path, registry: Registry, old: str, new: str, line: int, field: str, words: str
) -> None:
    assert old in CONFIG
    f = tmp_path / "c.yaml"
    f.write_text(CONFIG.replace(old, new))
    with pytest.raises(ConfigError) as ei:
        load_config(f, registry)
    assert [(p.line, p.field) for p in ei.value.problems] == [(line, field)]
    assert words in ei.value.problems[0].message


def test_config_with_sim_drivers_needs_and_accepts_a_sim_section(tmp_path: Path, registry: Registry) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(CONFIG.replace("type: fake", "type: sim") + "sim: {expertise: 0.0}\n")
    cfg = load_config(f, registry)
    assert cfg.simulated and cfg.sim is not None and cfg.sim.expertise == 0.0


def test_validate_files_collects_every_problem_in_order(tmp_path: Path, registry: Registry) -> None:
    good_p = tmp_path / "p.yaml"
    good_p.write_text(VALID)
    good_c = tmp_path / "c.yaml"
    good_c.write_text(CONFIG)
    missing = tmp_path / "missing.yaml"
    files = [
        good_p,
        BROKEN / "bad_literal.yaml",
        missing,
        tmp_path,
        good_c,
        BROKEN / "config_bad_params.yaml",
    ]
    problems = validate_files(files, registry)
    assert all(isinstance(p, Problem) for p in problems)
    assert [(p.file, p.line, p.field) for p in problems] == [
        (str(BROKEN / "bad_literal.yaml"), 21, "order.mode"),
        (str(missing), 1, "<file>"),
        (str(tmp_path), 1, "<file>"),
        (str(BROKEN / "config_bad_params.yaml"), 9, "drivers.ball.counts_per_cm"),
        (str(BROKEN / "config_bad_params.yaml"), 15, "drivers.valve.flow"),
        (str(BROKEN / "config_bad_params.yaml"), 21, "drivers.display.type"),
    ]
    assert problems[1].message == "no such file"
    assert "directory" in problems[2].message
    assert isinstance(load_any(good_p, registry), Protocol)
    assert isinstance(load_any(good_c, registry), RigConfig)


# -- robustness: nothing but LoadError, whatever the input ----------------------------------------------

YAML_CHARS = st.sampled_from(list(":-[]{},&*!|>#'\"\n\t ?%@`\\0123456789.eE+_abcxyz") + ["\x00", "é", "<<", "---"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, len(VALID)), st.integers(0, 3), YAML_CHARS), min_size=1, max_size=6))
def test_text_mutations_raise_only_load_errors(fuzz_tally: FuzzTallies, edits: list[tuple[int, int, str]]) -> None:
    tally = fuzz_tally("YAML: protocol text mutations", "documents", bounded=False)
    tally.tried += 1
    text = VALID
    for pos, cut, ins in edits:
        text = text[:pos] + ins + text[pos + cut :]
    nlines = text.count("\n") + 1
    try:
        protocol_from_yaml(text, "fuzz.yaml")
    except ProtocolError as e:
        assert e.problems
        for p in e.problems:
            assert p.file == "fuzz.yaml" and 1 <= p.line <= nlines and p.field and p.message
        tally.refused += 1  # every problem at fuzz.yaml:LINE with a field and a message
    except Exception:
        tally.crashes += 1  # anything but a ProtocolError is a traceback for the user
        raise
    else:
        tally.other["accepted"] += 1
    assert tally.crashes == 0


def _paths(d: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(d, dict):
        for k, v in d.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out += _paths(v, (*prefix, i))
    return out


BASE_DATA = yaml.safe_load(VALID)
ALL_PATHS = _paths(BASE_DATA)[1:]
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(ALL_PATHS), VALUES), min_size=1, max_size=4))
def test_structural_mutations_raise_only_load_errors(fuzz_tally: FuzzTallies,
                                                    changes: list[tuple[tuple[Any, ...], Any]]) -> None:
    tally = fuzz_tally("YAML: protocol structure mutations", "documents", bounded=False)
    tally.tried += 1
    data = yaml.safe_load(VALID)
    for path, value in changes:
        node = data
        for k in path[:-1]:
            if not isinstance(node, dict | list):
                break
            try:
                node = node[k]
            except (KeyError, IndexError, TypeError):
                break
        else:
            if isinstance(node, dict) or (
                isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node)
            ):
                node[path[-1]] = value
    dumped = yaml.safe_dump(data, allow_unicode=True)
    try:
        p = protocol_from_yaml(dumped, "mut.yaml")
    except ProtocolError as e:
        assert all(p.field and p.message and p.line >= 1 for p in e.problems)
        tally.refused += 1
    except Exception:
        tally.crashes += 1  # anything but a ProtocolError is a traceback for the user
        raise
    else:
        assert protocol_from_yaml(dump_protocol(p)) == p  # anything accepted also round-trips
        tally.other["accepted (round-trips)"] += 1
    assert tally.crashes == 0


# ---- booleans are never numbers (issue 11): each refusal at the offending key's own line -------------------


def _line_of(text: str, needle: str) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(lines) == 1, needle
    return lines[0]


@pytest.mark.parametrize(
    ("old", "new", "needle", "field", "words"),
    [
        ("    probe: true\n", "    probe: true\n    texture_length_cm: true\n", "texture_length_cm: true",
         "corridors[2].texture_length_cm", ["valid number", "True", "boolean"]),
        ("  position_cm: [50, 350]", "  position_cm: [50, yes]", "position_cm: [50, yes]", "cue.position_cm[1]",
         ["valid number", "boolean"]),
        ("max_trials: 600", "max_trials: true", "max_trials: true", "end.max_trials", ["valid integer", "boolean"]),
        ("    probe: true", "    probe: 1", "probe: 1", "corridors[2].probe", ["true or false", "number"]),
        ("speed_cm_s: 60", "speed_cm_s: '60'", "speed_cm_s: '60'", "movement.speed_cm_s", ["valid number", "string"]),
        ("volume_ul: 2.5}", "volume_ul: false}", "volume_ul: false", "reward.volume_ul", ["valid number", "False"]),
    ],
)
def test_a_boolean_is_never_a_number_and_the_error_names_its_own_line(
    tmp_path: Path, old: str, new: str, needle: str, field: str, words: list[str]
) -> None:
    assert VALID.count(old) == 1
    text = VALID.replace(old, new)
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(ProtocolError) as ei:
        load_protocol(f)
    (p,) = ei.value.problems  # one problem: nothing built on the refused value is reported elsewhere
    assert (p.line, p.field) == (_line_of(text, needle), field)
    for w in words:
        assert w in p.message, p.message


def test_texture_length_true_is_refused_at_its_line_not_read_as_1_cm(tmp_path: Path) -> None:
    # Read as 1 cm, the cue range (50-350 cm) became "beyond the texture" and the error named the cue's line.
    text = VALID.replace("    texture: {source: leaf, exemplar: 1}\n",
                         "    texture: {source: leaf, exemplar: 1}\n    texture_length_cm: true\n", 1)
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(ProtocolError) as ei:
        load_protocol(f)
    assert [(p.line, p.field) for p in ei.value.problems] == [(6, "corridors[0].texture_length_cm")]
    assert text.splitlines()[5] == "    texture_length_cm: true"


def test_booleans_in_driver_parameters_and_the_sim_section_are_refused_at_their_lines(tmp_path: Path) -> None:
    text = (REPO / "config" / "sim.yaml").read_text()
    text = text.replace("    rate_hz: 3.17 ", "    rate_hz: true ").replace("  expertise: 0.8 ", "  expertise: no ")
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as ei:
        load_config(f)
    got = [(p.line, p.field) for p in ei.value.problems]
    assert got == [(_line_of(text, "rate_hz: true"), "drivers.frame_clock.rate_hz"),
                   (_line_of(text, "expertise: no"), "sim.expertise")]
    assert all("boolean is not a number" in p.message for p in ei.value.problems)


def test_the_api_refuses_booleans_as_numbers_too() -> None:
    data = yaml.safe_load(VALID)
    data["corridors"][0]["weight"] = True
    with pytest.raises(ProtocolError, match=r"corridors\[0\]\.weight: should be a valid number"):
        protocol_from_dict(data)
    data["corridors"][0]["weight"] = 2  # an integer is a number
    assert protocol_from_dict(data).corridors[0].weight == 2.0


def _numeric_keys(text: str) -> list[tuple[int, str, str]]:
    """(line, key, number) for every `key: number` written in the text (block or flow style)."""
    import re

    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        for m in re.finditer(r"(\w+): (-?\d+(?:\.\d+)?)(?=[,}\s]|$)", line):
            out.append((i, m.group(1), m.group(0)))
    return out


@pytest.mark.parametrize(("line", "key", "written"), _numeric_keys(VALID))
def test_every_number_in_a_protocol_refuses_a_boolean_at_its_own_line(
    tmp_path: Path, line: int, key: str, written: str
) -> None:
    lines = VALID.splitlines()
    lines[line - 1] = lines[line - 1].replace(written, f"{key}: true", 1)
    f = tmp_path / "p.yaml"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(ProtocolError) as ei:
        load_protocol(f)
    (p,) = ei.value.problems
    assert p.line == line and p.field.split(".")[-1] == key and "boolean is not a number" in p.message
