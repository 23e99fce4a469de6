"""One session per rig and per device: the rig lock, its private directory, and what readers trust."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rig.loading import load_config
from rig.runner.lock import LOCK_DIR_ENV, LockDirError, RigBusy, RigLock, lock_paths, private_dir, read_lock
from tests.support.paths import REPO


@pytest.fixture
def locks(tmp_path: Path) -> Path:
    return private_dir(tmp_path / "locks")


def test_second_lock_is_refused_with_a_clear_message(locks):
    with RigLock.acquire("rigA", locks, animal="M1", protocol="demo"):
        assert read_lock("rigA", locks).animal == "M1"
        with pytest.raises(RigBusy, match=r"rig 'rigA' is already running a session \(pid \d+, animal M1"):
            RigLock.acquire("rigA", locks)
        RigLock.acquire("rigB", locks).release()  # other rigs are independent
    assert read_lock("rigA", locks) is None
    assert not any(p.exists() for p in lock_paths("rigA", locks))


def test_lock_of_a_killed_process_is_stale_and_taken_over(locks):
    code = ("import sys, time; from rig.runner.lock import RigLock; "
            f"RigLock.acquire('rigK', {str(locks)!r}, animal='M9'); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert read_lock("rigK", locks).pid == proc.pid
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert all(p.exists() for p in lock_paths("rigK", locks))  # the files are left behind ...
    assert read_lock("rigK", locks) is None  # ... but nobody holds them
    with RigLock.acquire("rigK", locks, animal="M10") as lock:
        assert lock.info["pid"] == os.getpid()




def test_the_lock_directory_must_be_private(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    with pytest.raises(LockDirError, match="open to other users"):
        RigLock.acquire("rigA", open_dir)
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(LockDirError, match="not a directory"):
        read_lock("rigA", link)
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    os.chown(other, 65534, 65534)  # nobody's (the tests run as root, like CI)
    with pytest.raises(LockDirError, match="belongs to uid 65534"):
        RigLock.acquire("rigA", other)


def test_two_rigs_naming_one_device_cannot_run_at_once(locks: Path) -> None:
    with RigLock.acquire("rigA", locks, ("serial:/dev/ttyACM0",)):
        with pytest.raises(RigBusy, match=r"serial:/dev/ttyACM0 is in use by another session \(rig 'rigA'"):
            RigLock.acquire("rigB", locks, ("nidaq:Dev1", "serial:/dev/ttyACM0"))
        # ... and the failed attempt left nothing held: rigB's own lock and Dev1 are free again
        RigLock.acquire("rigB", locks, ("nidaq:Dev1",)).release()
    RigLock.acquire("rigB", locks, ("serial:/dev/ttyACM0",)).release()


def test_info_naming_a_dead_pid_is_not_trusted(locks: Path) -> None:
    with RigLock.acquire("rigA", locks) as lock:
        lock.update(pid=2**22 + 12345)  # no such process
        with pytest.raises(RigBusy, match="not running"):
            read_lock("rigA", locks)


def test_info_that_is_a_symlink_is_not_trusted(locks: Path, tmp_path: Path) -> None:
    planted = tmp_path / "planted.json"
    planted.write_text('{"rig": "rigA", "pid": 1, "commands": "tcp://10.0.0.1:5555"}')
    with RigLock.acquire("rigA", locks):
        _, info_file = lock_paths("rigA", locks)
        info_file.unlink()
        info_file.symlink_to(planted)
        with pytest.raises(RigBusy, match="not a session info file"):
            read_lock("rigA", locks)



@pytest.mark.parametrize("command", [["check", "--no-imaging", "--seconds", "0.5"], ["prime", "--seconds", "1"],
                                     ["calibrate-valve", "--durations", "20,40,80", "--pulses", "5"]])
def test_every_command_that_opens_the_rigs_devices_waits_for_its_lock(tmp_path: Path, command: list[str]) -> None:
    """A check, a prime or a calibration on a board another rig config's session holds (the serial port
    both name) is refused at once, in one line: nothing is opened, nothing pulsed, nothing recorded."""
    locks = private_dir(tmp_path / "locks")
    config = load_config(REPO / "config" / "board-emulated.yaml")
    assert config.resources()
    with RigLock.acquire("another-rig", locks, config.resources(), animal="M1", protocol="demo"):
        r = subprocess.run([sys.executable, "-m", "rig.cli", *command, "--config", "board-emulated", "--data",
                            str(tmp_path / "d")], capture_output=True, text=True, cwd=REPO, timeout=60, input="",
                           env={**os.environ, LOCK_DIR_ENV: str(locks)})
    assert r.returncode == 3, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "in use by another session" in lines[0] and "another-rig" in lines[0], lines
    assert not (tmp_path / "d").exists()
