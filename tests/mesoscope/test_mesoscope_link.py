"""The mesoscope link over real TCP on 127.0.0.1, with the emulator in a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rig.mesoscope.keys import client_keys, generate_keypair
from rig.mesoscope.link import (
    FrameRateMismatch,
    LinkTimeout,
    MesoscopeLink,
    MesoscopeNotStarted,
    frames_to_array,
)
from rig.mesoscope.messages import FrameMsg
from rig.sync.reconcile import reconcile
from tests.support.mesoscope import Emulator, emulator

RATE = 60.0  # fast frames keep the tests short; the protocol does not care


def acquire(link: MesoscopeLink, until_s: float = 10.0) -> list[FrameMsg]:
    """Start, check the rate, then poll like the runner until the emulator stops by itself."""
    link.start("m1_2024-01-01_001", {"animal": "m1"})
    link.wait_for_frames(5, RATE, timeout_s=5)
    frames: list[FrameMsg] = []
    deadline = time.monotonic() + until_s
    while time.monotonic() < deadline:
        frames += link.poll()
        stop = link.acquisition_stop
        if stop is not None and stop.reason == "max_frames reached":
            break
        time.sleep(0.005)
    else:
        raise AssertionError(f"acquisition did not end within {until_s} s: {link.events()}")
    return frames + link.poll()


def table_for(emu: Emulator, frames: list[FrameMsg]) -> np.ndarray:
    return reconcile(emu.ttl(), frames_to_array(frames)).rows


def frames_flagged(rows: np.ndarray, flag: str) -> list[tuple[int, int]]:
    return [(int(r["acquisition"]), int(r["scanimage_frame"])) for r in rows if r[flag]]


def test_clean_acquisition_frame_count_matches_the_emulator(tmp_path: Path) -> None:
    with (
        emulator(
            tmp_path, "--rate", str(RATE), "--max-frames", "90", "--jitter-ms", "1", "--clock-offset", "-500"
        ) as emu,
        MesoscopeLink(emu.cmd, emu.frames) as link,
    ):
        frames = acquire(link)
        truth = emu.records()
        rows = table_for(emu, frames)
    assert len(truth) == 90 and len(frames) == 90
    assert [f.frame for f in frames] == list(range(1, 91))  # nothing lost to a slow joiner
    assert len(rows) == 90 and not any(rows[f].any() for f in ("missing_ttl", "missing_msg", "gap"))
    np.testing.assert_array_equal(rows["ttl_time"], [r["t"] for r in truth])
    assert link.counters.seq_gaps == 0 and link.counters.malformed == 0


@pytest.mark.parametrize(
    ("args", "flag", "expected"),
    [
        (("--drop-every", "7"), "missing_msg", [(1, k) for k in range(7, 61, 7)]),
        (("--duplicate-every", "9"), "duplicate_msg", [(1, k) for k in range(9, 61, 9)]),
        (("--ttl-drop-every", "8"), "missing_ttl", [(1, k) for k in range(8, 61, 8)]),
        (("--stall-at", "25", "--stall-s", "0.3"), "gap", [(1, 26)]),
        (("--restart-at", "30"), "restart", [(2, 1)]),
    ],
    ids=["drops", "duplicates", "ttl-drops", "stall", "restart"],
)
def test_injected_fault_is_flagged_exactly(
    tmp_path: Path, args: tuple[str, ...], flag: str, expected: list[tuple[int, int]]
) -> None:
    with (
        emulator(tmp_path, "--rate", str(RATE), "--max-frames", "60", *args) as emu,
        MesoscopeLink(emu.cmd, emu.frames) as link,
    ):
        frames = acquire(link)
        rows = table_for(emu, frames)
        truth = emu.records()
    assert frames_flagged(rows, flag) == expected
    others = {"missing_msg", "duplicate_msg", "missing_ttl", "gap", "restart"} - {flag}
    if flag == "restart":
        others -= {"gap"}  # the pause between acquisitions is a gap too
    assert all(frames_flagged(rows, f) == [] for f in others), {f: frames_flagged(rows, f) for f in others}
    assert sorted(zip(rows["acquisition"].tolist(), rows["scanimage_frame"].tolist(), strict=True)) == sorted(
        (r["acq"], r["frame"]) for r in truth
    )


def test_mesoscope_never_starting_is_a_clear_error_within_the_timeout(tmp_path: Path) -> None:
    with emulator(tmp_path, "--ignore-start") as emu, MesoscopeLink(emu.cmd, emu.frames) as link:
        link.start("stem_001")
        t0 = time.monotonic()
        with pytest.raises(MesoscopeNotStarted, match=r"0 of 5 frames .* within 0.5 s .*start message not seen"):
            link.wait_for_frames(5, RATE, timeout_s=0.5)
        assert time.monotonic() - t0 < 2.0


def test_no_bridge_at_all_times_out_with_a_clear_error() -> None:
    with MesoscopeLink("tcp://127.0.0.1:1", "tcp://127.0.0.1:2", timeout_s=0.3) as link:
        with pytest.raises(LinkTimeout, match="could not reach the mesoscope bridge at tcp://127.0.0.1:1"):
            link.start("stem_001")
        with pytest.raises(LinkTimeout):
            link.status()
        assert link.poll() == []


def test_wrong_frame_rate_is_refused(tmp_path: Path) -> None:
    with emulator(tmp_path, "--rate", "30") as emu, MesoscopeLink(emu.cmd, emu.frames) as link:
        link.start("stem_001")
        with pytest.raises(FrameRateMismatch, match="declares 30.000 Hz, the rig expects 60.000 Hz"):
            link.wait_for_frames(5, RATE, timeout_s=3)


def test_mesoscope_dying_mid_session_is_reported_without_a_hang(tmp_path: Path) -> None:
    with (
        emulator(tmp_path, "--rate", str(RATE), "--die-at", "30") as emu,
        MesoscopeLink(emu.cmd, emu.frames, timeout_s=0.5, silence_s=0.4) as link,
    ):
        link.start("stem_001")
        link.wait_for_frames(5, RATE, timeout_s=5)
        frames: list[FrameMsg] = []
        deadline = time.monotonic() + 5
        while link.alive and time.monotonic() < deadline:
            frames += link.poll()  # the runner's loop keeps going
            time.sleep(0.01)
        assert not link.alive
        assert any("silent" in e for e in link.events())
        assert emu.proc.wait(5) == 3
        with pytest.raises(LinkTimeout):
            link.stop()
        frames += link.poll()
        rows = table_for(emu, frames)
    assert len(frames) == 30 and len(rows) == 30 and not rows["missing_msg"].any()


def test_pings_give_the_clock_offset_of_the_mesoscope(tmp_path: Path) -> None:
    with (
        emulator(tmp_path, "--rate", str(RATE), "--max-frames", "40", "--clock-offset", "-321.0") as emu,
        MesoscopeLink(emu.cmd, emu.frames, ping_interval_s=0.05) as link,
    ):
        for _ in range(5):
            link.ping()
        frames = acquire(link)
        fit = link.clock_fit()
        rows = reconcile(emu.ttl(), frames_to_array(frames), prior=fit).rows
    assert fit.offset == pytest.approx(321.0, abs=0.005)  # rig = mesoscope + 321 s
    assert len(link.pings) > 5  # poll() pinged in the background too
    assert len(rows) == 40 and not rows["missing_msg"].any()


@pytest.fixture
def curve_keys(tmp_path: Path) -> dict[str, Path]:
    keydir, trusted = tmp_path / "keys", tmp_path / "trusted"
    trusted.mkdir()
    for name in ("bridge", "impostor", "rig", "stranger"):
        generate_keypair(keydir, name)
    (trusted / "rig.key").write_bytes((keydir / "rig.key").read_bytes())
    return {"dir": keydir, "trusted": trusted}


def test_curve_trusted_key_works_and_untrusted_peers_get_nothing(tmp_path: Path, curve_keys: dict) -> None:
    k = curve_keys["dir"]
    with emulator(
        tmp_path,
        "--rate",
        str(RATE),
        "--max-frames",
        "30",
        "--server-secret",
        str(k / "bridge.key_secret"),
        "--trusted-dir",
        str(curve_keys["trusted"]),
    ) as emu:
        stranger = client_keys(k / "stranger.key_secret", k / "bridge.key")
        with MesoscopeLink(emu.cmd, emu.frames, keys=stranger, timeout_s=0.5) as link:
            with pytest.raises(LinkTimeout):
                link.start("stem_001")
            time.sleep(0.2)
            assert link.poll() == [] and link.counters.stream_messages == 0  # cannot even listen
        # A rig that trusts the wrong server key refuses the real bridge (no frames can be injected).
        wrong_server = client_keys(k / "rig.key_secret", k / "impostor.key")
        with MesoscopeLink(emu.cmd, emu.frames, keys=wrong_server, timeout_s=0.5) as link:
            with pytest.raises(LinkTimeout):
                link.status()
            assert link.counters.stream_messages == 0
        trusted = client_keys(k / "rig.key_secret", k / "bridge.key")
        with MesoscopeLink(emu.cmd, emu.frames, keys=trusted) as link:
            assert link.status().state == "idle"  # the stranger's start never reached the bridge
            frames = acquire(link)
    assert len(frames) == 30


def test_remote_endpoint_without_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="not loopback; remote mesoscope links need CURVE keys"):
        MesoscopeLink("tcp://192.0.2.1:5570", "tcp://192.0.2.1:5571")


def test_emulator_rejects_bad_options() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "rig.mesoscope.emulator", "--rate", "-1"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ},
    )
    assert r.returncode == 2 and "rate_hz=-1.0: must be in (0, 10000]" in r.stderr
