"""`rig validate` as a user runs it: exit codes and FILE:LINE: field: message lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO

BROKEN = REPO / "tests" / "data" / "broken"


def rig(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rig.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def test_all_shipped_protocols_and_configs_validate():
    files = sorted(str(p) for p in (REPO / "protocols").glob("*.yaml")) + sorted(
        str(p) for p in (REPO / "config").glob("*.yaml"))
    r = rig("validate", *files)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def test_every_broken_file_exits_2_with_its_own_file_and_a_line():
    for path in sorted(BROKEN.glob("*.yaml")):
        r = rig("validate", str(path))
        assert r.returncode == 2, path.name
        lines = r.stderr.strip().splitlines()
        assert lines, path.name
        for line in lines:
            file_part, line_no, rest = line.split(":", 2)
            assert file_part == str(path), line
            assert line_no.isdigit() and int(line_no) >= 1, line
            assert rest.strip(), line


def test_unknown_key_names_line_and_field(tmp_path: Path):
    text = (REPO / "protocols" / "demo.yaml").read_text().splitlines()
    idx = next(i for i, ln in enumerate(text) if ln.startswith("movement:"))
    text.insert(idx + 1, "  sped_cm_s: 60")
    bad = tmp_path / "typo.yaml"
    bad.write_text("\n".join(text) + "\n")
    r = rig("validate", str(bad))
    assert r.returncode == 2
    assert f"{bad}:{idx + 2}: movement.sped_cm_s:" in r.stderr
    assert "unknown key" in r.stderr


def test_mixed_good_and_bad_files_report_only_the_bad_one():
    good = str(REPO / "protocols" / "demo.yaml")
    bad = str(BROKEN / "negative_length.yaml")
    r = rig("validate", good, bad)
    assert r.returncode == 2
    assert good not in r.stderr and bad in r.stderr


def test_example_batch_script_runs(tmp_path: Path):
    r = subprocess.run([sys.executable, str(REPO / "examples" / "batch.py"), "--data", str(tmp_path),
                        "--trials", "12"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("expertise")]
    assert len(lines) == 2
    assert all(str(tmp_path) in ln for ln in lines)
