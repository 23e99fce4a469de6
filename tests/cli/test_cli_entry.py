"""The `rig` entry point's own answers: a missing optional extra is one line naming the extra, and the
app's runner process refuses a remote endpoint for a replay as for a live session (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

# Runs `rig` with the named modules unimportable, as on a machine without that extra installed.
WITHOUT = "import sys; [sys.modules.__setitem__(m, None) for m in sys.argv[1].split(',')]; " \
          "sys.argv = ['rig', *sys.argv[2:]]; from rig.cli.main import main; sys.exit(main())"


@pytest.mark.parametrize(("modules", "argv", "extra"), [
    ("moderngl", ["render", "demo", "--corridor", "leaf1", "--position", "10", "-o", "x.png"], "vr"),
    ("PyQt5,pyqtgraph", ["gui"], "gui"),
])
def test_a_missing_extra_is_one_line_that_names_it(tmp_path: Path, modules: str, argv: list[str],
                                                    extra: str) -> None:
    r = subprocess.run([sys.executable, "-c", WITHOUT, modules, *argv], capture_output=True, text=True, cwd=tmp_path,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=60)
    out = (r.stdout + r.stderr).strip().splitlines()
    assert r.returncode == 2, out
    assert len(out) == 1 and f"pip install 'corridor-rig[{extra}]'" in out[0] and "Traceback" not in r.stderr


def test_a_replay_refuses_a_remote_endpoint_as_bad_input(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "rig.cli", "run", "demo", "--fast", "--duration", "3", "--data",
                          str(tmp_path / "d"), "-q"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr
    session = run.stdout.strip().splitlines()[-1]
    r = subprocess.run([sys.executable, "-m", "rig.cli.runner_process", "--replay", session, "--commands",
                        "tcp://0.0.0.0:*", "--lock-dir", str(tmp_path / "locks"), "--data", str(tmp_path / "r")],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 2 and "beyond loopback" in r.stderr and "Traceback" not in r.stderr
