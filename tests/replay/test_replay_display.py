"""`rig replay --display-config`: a replay drawn by a rig config's VR display driver (real EGL context)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rig.cli import main as cli
from rig.datalog.reader import Session
from rig.loading import load_config, load_protocol
from rig.replay.live import ReplayError, ReplayOptions, replay_session
from rig.runner.hooks import OnStart
from rig.runner.session import SessionOptions, run_session
from rig.vr.display_driver import OffscreenDisplay
from rig.vr.renderer import standalone_context
from tests.support.paths import REPO

SPEED = 10.0
# Events that end the session: a real-clock replay may run out of logged inputs one frame before the
# original's last trial ended, so those may be missing at the very end.
ENDING = {"trial_end", "session_end"}


def open_gl_or_fail() -> None:
    try:
        standalone_context().release()
    except RuntimeError as e:
        pytest.fail(f"these tests need an offscreen EGL OpenGL 3.3 context and could not create one: {e}")


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """Two demo trials on the virtual clock: about 21 s of session time, 2 s at 10x."""
    protocol = load_protocol(REPO / "protocols" / "demo.yaml")
    config = load_config(REPO / "config" / "sim.yaml")
    options = SessionOptions(animal="M3", seed=5, fast=True, max_trials=2, data_dir=tmp_path_factory.mktemp("o"))
    return run_session(protocol, config, options).path


@pytest.fixture(scope="module")
def small_offscreen(tmp_path_factory) -> Path:
    """config/sim-offscreen.yaml with small screens and coarse textures, so software GL keeps up."""
    folder = tmp_path_factory.mktemp("cfg")
    entry = yaml.safe_load((REPO / "config" / "sim-offscreen.yaml").read_text())
    entry["drivers"]["display"]["layout"] = {"screens": [
        {"name": name, "yaw_deg": yaw, "hfov_deg": 90, "width_px": 96, "height_px": 54}
        for name, yaw in (("left", -90), ("centre", 0), ("right", 90))
    ]}
    entry["drivers"]["display"]["textures"] = {"px_per_cm": 2.0, "cache_dir": str(folder / "textures")}
    path = folder / "offscreen.yaml"
    path.write_text(yaml.safe_dump(entry))
    return path


def rig_main(*args: str) -> int:
    return cli.main(list(args))


def comparable(events: list[dict]) -> list[tuple]:
    # Lick and reward times are the logged lick times (inputs); the times of position-driven events
    # depend on the replay's real frame times, so only their order, kind and trial are compared.
    return [(e["kind"], e["trial"], e["t"] if e["kind"] in ("lick", "reward") else None) for e in events]


def per_trial(events: list[tuple], trials: set[int]) -> dict[int, list[tuple]]:
    """The events of each of these trials, as a sorted list (their order within a step aside)."""
    out: dict[int, list[tuple]] = {t: [] for t in trials}
    for e in events:
        if e[1] in out:
            out[e[1]].append(e)
    return {t: sorted(v, key=repr) for t, v in out.items()}


def test_realtime_replay_through_an_offscreen_display_draws_every_iteration_and_matches_the_events(
    original, small_offscreen, tmp_path
):
    open_gl_or_fail()
    displays = []
    options = ReplayOptions(speed=SPEED, data_dir=tmp_path, display_config=load_config(small_offscreen),
                            display_source=str(small_offscreen))
    result = replay_session(original, options, hooks=(OnStart(lambda r: displays.append(r.devices.display)),))
    (display,) = displays
    assert isinstance(display, OffscreenDisplay) and not display.is_open  # closed with the replay
    new, orig = Session.open(result.path), Session.open(original)
    assert result.complete and new.header.fast is False and new.header.replay_of.speed == SPEED
    assert new.header.replay_of.display == f"gl_offscreen ({small_offscreen})"
    assert len(new.frames) == display.frames_shown > 100  # one drawn frame per logged iteration
    assert len(new.timing) == len(new.frames)
    # The same mouse in the same corridors: every logged event again, trial by trial (within a step, a
    # position-driven event such as the cue may fall before or after a lick as the real frame times fall).
    got = comparable([e for e in new.events if e["kind"] != "session_end"])
    want = comparable(orig.events)
    done = {trial for kind, trial, _ in got if kind == "trial_end"}
    assert done and per_trial(got, done) == per_trial(want, done)
    ended = {trial for kind, trial, _ in want if kind == "trial_end"}
    assert done >= ended - {max(ended)}  # every trial ended again (the logged inputs may stop before the last end)
    assert [e["kind"] for e in new.events].count("reward") == [e["kind"] for e in orig.events].count("reward") > 0


def test_cli_display_config_draws_the_replay_and_records_the_driver(original, small_offscreen, tmp_path, capsys):
    open_gl_or_fail()
    assert rig_main("replay", str(original), "--fast", "--display-config", str(small_offscreen),
                    "--data", str(tmp_path), "-q") == 0
    new = Path(capsys.readouterr().out.strip().splitlines()[-1])
    header = json.loads((new / "header.json").read_text())
    assert header["replay_of"]["display"].startswith("gl_offscreen")
    assert header["options"]["display_config"] == str(small_offscreen)
    # On the virtual clock the drawn replay reproduces the log exactly.
    for name in ("frames.bin", "events.jsonl", "commands.jsonl"):
        assert (new / name).read_bytes() == (original / name).read_bytes(), name


def test_cli_display_config_that_does_not_load_is_bad_input(original, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndrivers: {display: {type: no_such_display}}\n")
    assert rig_main("replay", str(original), "--fast", "--display-config", str(bad), "--data", str(tmp_path)) == 2
    assert "bad.yaml" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # no session folder was started


def test_verify_takes_no_display_config(original, small_offscreen, capsys):
    assert rig_main("replay", str(original), "--verify", "--display-config", str(small_offscreen)) == 2
    assert "--display-config" in capsys.readouterr().err


def test_a_display_and_a_display_config_together_are_refused(original, small_offscreen, tmp_path):
    options = ReplayOptions(fast=True, data_dir=tmp_path, display_config=load_config(small_offscreen))
    with pytest.raises(ReplayError, match="not both"):
        replay_session(original, options, display=object())  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
