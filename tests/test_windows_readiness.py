"""Windows readiness: the paths a Windows rig runs (the mesoscope bridge and its emulator, `rig run` with a
serial board or an NI-DAQ config, the app, the exports) import and start with the POSIX-only modules made
unavailable.

Each path runs in a child Python in which fcntl, termios, tty, pty, resource, grp and pwd cannot be imported,
as on Windows. Third-party packages and the standard library's own modules are imported first: on Windows they
take their own Windows branches (pyserial's serialwin32, ...), which a Linux machine cannot run; what is tested
is that the rig's code never reaches for a POSIX-only module itself. Windows' own file-lock module is given
as a small stand-in with msvcrt's `locking` API (an in-process table of held files: every lock in these
children lives in one process), so the rig lock takes its Windows branch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.paths import REPO

POSIX_ONLY = ("fcntl", "termios", "tty", "pty", "resource", "grp", "pwd")

PRELUDE = textwrap.dedent(f"""
    import os, sys, types
    import asyncio, subprocess, shutil, getpass, tempfile, serial, serial.tools.list_ports, zmq, zmq.auth.thread
    import numpy, pydantic, yaml, matplotlib, matplotlib.pyplot, pynwb, hdmf, PyQt5.QtWidgets, pyqtgraph
    for name in {POSIX_ONLY!r}:
        sys.modules[name] = None  # `import fcntl` now raises ImportError, as on Windows
    _held = {{}}
    msvcrt = types.ModuleType("msvcrt")
    msvcrt.LK_NBLCK, msvcrt.LK_UNLCK = 2, 0
    def _locking(fd, mode, nbytes):
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        if mode == msvcrt.LK_NBLCK:
            if key in _held and _held[key] != fd:
                raise OSError(36, "Resource deadlock avoided")  # what msvcrt raises for a held region
            _held[key] = fd
        elif _held.get(key) == fd:
            del _held[key]
    msvcrt.locking = _locking
    sys.modules["msvcrt"] = msvcrt
""")


def run_child(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})


def test_the_prelude_really_hides_the_posix_modules() -> None:
    r = run_child("import fcntl")
    assert r.returncode != 0 and "import of fcntl halted" in r.stderr


def test_rig_run_with_a_serial_board_on_a_socket(tmp_path: Path) -> None:
    """The board emulator on a TCP socket (no pty), `rig run` through it, the rig lock on the Windows branch."""
    r = run_child("""
        import json, sys, threading, yaml
        from pathlib import Path
        from drivers.serial_board.emulator import BoardEmulator, EmulatorConfig
        from rig.cli.main import main
        tmp = Path(sys.argv[1])
        emu = BoardEmulator(EmulatorConfig(speed_counts_s=2000.0, lick_rate_hz=2.0, frame_rate_hz=30.0,
                                           transport="socket", record=False))
        url = emu.start()
        try:
            cfg = yaml.safe_load(open("config/board-emulated.yaml"))
            for role, entry in cfg["drivers"].items():
                if entry.get("type") == "serial_board":
                    entry["port"] = url
            (tmp / "rig.yaml").write_text(yaml.safe_dump(cfg))
            code = main(["run", "demo", "--config", str(tmp / "rig.yaml"), "--animal", "W1", "--duration", "3",
                         "--data", str(tmp / "data"), "-q"])
        finally:
            emu.close()
        print("EXIT", code)
        """, str(tmp_path))
    assert "EXIT 0" in r.stdout, r.stdout + r.stderr
    folder = r.stdout.strip().splitlines()[-2]
    info = json.loads(subprocess.run([sys.executable, "-m", "rig.cli", "info", folder, "--json"], cwd=REPO,
                                     capture_output=True, text=True, timeout=60).stdout)
    assert info["complete"] and info["frames"] > 30 and info["iterations"] > 100


def test_nidaq_drivers_open_and_read_on_the_fake(tmp_path: Path) -> None:
    r = run_child("""
        from drivers.nidaq.fake import FakeNidaqmx, ManualClock
        from drivers.registry import DriverContext
        from rig.config import driver_registry
        from rig.loading import load_config
        cfg = load_config("config/nidaq-example.yaml")
        clock = ManualClock()
        reg = driver_registry()
        with FakeNidaqmx(clock).installed():
            roles = {role: reg.create(role, e.type, cfg.driver_params(role), DriverContext(clock=clock))
                     for role, e in cfg.drivers.items() if e.type == "nidaq"}
            for d in roles.values():
                d.open()
            clock.advance(0.5)
            roles["ball"].read(); roles["lick"].read(); roles["frame_clock"].read()
            roles["valve"].pulse(10.0)
            for d in roles.values():
                d.close()
        print("NIDAQ OK", sorted(roles), cfg.resources())
        """)
    assert "NIDAQ OK" in r.stdout, r.stdout + r.stderr


def test_the_mesoscope_emulator_and_bridge_run_and_stream(tmp_path: Path) -> None:
    """The bridge (inside the emulator process) and the rig's link, each in a child without POSIX modules."""
    emu = subprocess.Popen([sys.executable, "-c", PRELUDE + textwrap.dedent("""
        import sys
        from rig.mesoscope.emulator import main
        sys.exit(main(["--cmd", "tcp://127.0.0.1:0", "--frames", "tcp://127.0.0.1:0", "--rate", "60"]))
        """)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = emu.stdout.readline() if emu.stdout else ""
        assert line.startswith("READY "), line + (emu.stderr.read() if emu.stderr else "")
        ready = json.loads(line[6:])
        r = run_child("""
            import sys
            from rig.mesoscope.link import MesoscopeLink
            with MesoscopeLink(sys.argv[1], sys.argv[2]) as link:
                link.start("w1_001")
                link.wait_for_frames(20, 60.0, timeout_s=10)
                link.stop()
                print("FRAMES", link.frames_received())
            """, ready["cmd"], ready["frames"], timeout=60)
        assert "FRAMES" in r.stdout and int(r.stdout.split()[-1]) >= 20, r.stdout + r.stderr
    finally:
        emu.terminate()
        emu.wait(10)
    assert emu.returncode == 0, emu.stderr.read() if emu.stderr else ""


def test_the_app_and_the_exports_import_and_start(tmp_path: Path) -> None:
    session = subprocess.run([sys.executable, "-m", "rig.cli", "run", "train1_task", "--fast", "--max-trials", "10",
                              "--seed", "1", "--data", str(tmp_path / "d"), "-q"], capture_output=True, text=True,
                             cwd=REPO, timeout=120).stdout.strip().splitlines()[-1]
    r = run_child("""
        import sys
        from pathlib import Path
        from rig.cli.main import main
        s, out = sys.argv[1], Path(sys.argv[2])
        assert main(["export", s, "--mouseland", str(out / "Beh_x.npy")]) == 0
        assert main(["frames", s, "-o", str(out / "frames.npy")]) == 0
        from PyQt5 import QtWidgets
        app = QtWidgets.QApplication([])
        import gui.app, gui.main_window, gui.replay_viewer  # the app's modules import without POSIX modules
        print("APP OK")
        """, session, str(tmp_path))
    assert "APP OK" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("module", ["rig.runner.lock", "rig.runner.filelock", "rig.runner.priority",
                                    "drivers.serial_board.connection", "drivers.serial_board.driver",
                                    "drivers.nidaq", "rig.mesoscope.bridge", "rig.control.server",
                                    "rig.export.nwb", "rig.export.mouseland"])
def test_module_imports_without_posix_modules(module: str) -> None:
    r = run_child(f"import {module}; print('OK')")
    assert "OK" in r.stdout, r.stderr


def test_the_lock_works_on_the_windows_branch(tmp_path: Path) -> None:
    r = run_child("""
        import json, sys
        from rig.runner import filelock
        assert filelock.fcntl is None  # the Windows branch
        from rig.runner.lock import RigBusy, RigLock, read_lock
        d = sys.argv[1]
        with RigLock.acquire("w", d, ("serial:COM3",), animal="A"):
            assert read_lock("w", d).animal == "A"
            try:
                RigLock.acquire("w2", d, ("serial:COM3",))
                print("NOT REFUSED")
            except RigBusy as e:
                print("REFUSED", e)
        print(json.dumps(read_lock("w", d)))
        """, str(tmp_path / "locks"))
    assert "REFUSED serial:COM3 is in use" in r.stdout and r.stdout.strip().endswith("null"), r.stdout + r.stderr
