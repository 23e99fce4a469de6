"""--fast sessions log exactly the bytes of the stored baseline (tests/data/fast_bytes.json).

Speed work on the simulated rig and the loop must leave every logged byte unchanged; this runs the cases
of tests.runner.fast_bytes (protocols, seeds, configs, stages, exposure, zone tasks, an operator script,
a sync output, a remembering mouse, a 60-minute session, a small `rig cohort`) and compares each data file's sha256. A
deliberate change of what is logged re-takes the baseline: python -m tests.runner.fast_bytes --write
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runner import fast_bytes as fb

EXPECTED = json.loads(fb.EXPECTED.read_text())


def test_the_baseline_covers_every_case():
    assert sorted(EXPECTED) == sorted(fb.case_names())


@pytest.mark.parametrize("name", fb.case_names())
def test_fast_session_bytes_unchanged(name: str, tmp_path: Path):
    got = fb.run_named(name, tmp_path)
    assert fb.compare({name: got}, EXPECTED) == []


def test_compare_names_a_changed_file():
    # The comparison itself must see a one-file difference (so a passing run means identical bytes).
    name = fb.CASES[0].name
    changed = {name: dict(EXPECTED[name])}
    first = sorted(changed[name])[0]
    changed[name][first] = "0" * 64
    assert fb.compare(changed, EXPECTED) == [f"{name}: {first}: 000000000000 != expected {EXPECTED[name][first][:12]}"]
