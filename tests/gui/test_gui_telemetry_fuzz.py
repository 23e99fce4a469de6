"""The app survives any telemetry: each hostile message of issue 11 is refused by the decoder with a reason, and a
hypothesis fuzz publishes arbitrary messages on a real ZeroMQ PUB socket to a main window attached to it; the
window drops and counts the bad ones and keeps showing the good ones (under a private Xvfb)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gui.wire import WireError, decode_json, decode_reply, decode_state, decode_status, decode_telemetry
from tests.gui.fake_runner import FakeRunner
from tests.support.fuzz_tally import FuzzTallies
from tests.support.paths import REPO

CORRIDORS = ["leaf1", "circle1"]


def state(n: int = 3, i0: int = 0) -> dict:
    return {"i": list(range(i0, i0 + n)), "t": [k / 60 for k in range(i0, i0 + n)], "pos": [1.0] * n,
            "speed": [20.0] * n, "trial": [0] * n, "corridor": [0] * n, "grey": [0] * n}


# ---- the decoder, case by case (the messages that aborted the app) ----------------------------------------


@pytest.mark.parametrize("body, why", [
    ({k: v for k, v in state().items() if k != "pos"}, "state.pos is missing"),
    (state() | {"speed": [1.0, 2.0]}, "state.speed has 2 values, state.i has 3"),
    (state() | {"pos": ["a", "b", "c"]}, "state.pos holds str"),
    (state() | {"grey": [True, False, True]}, "state.grey holds bool"),
    (state() | {"corridor": [0, 7, 0]}, "state.corridor outside 0..1"),
    (state() | {"i": [3, 2, 1]}, "state.i must be non-negative and increasing"),
    (state() | {"trial": [0.5, 0, 0]}, "state.trial holds float"),
])
def test_bad_state_batches_are_refused_with_the_reason(body, why):
    with pytest.raises(WireError, match=why.replace(".", r"\.")):
        decode_telemetry([b"state", json.dumps(body).encode()], n_corridors=2)


@pytest.mark.parametrize("topic", [b"event", b"status", b"fault", b"end", b"state"])
@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"3", b"null", b"true"])
def test_a_message_that_is_not_an_object_is_refused(topic, body):
    with pytest.raises(WireError, match="not a JSON object"):
        decode_telemetry([topic, body])


@pytest.mark.parametrize("body, why", [
    (b"[" * 100_000, "nested too deeply|not JSON"),
    (b'{"a": ' + b"9" * 5000 + b"}", "integer of 5000 digits"),
    (b'{"t": NaN}', "NaN is not a number"),
    (b'{"t": 1e999}', "not finite"),
    (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper than 32"),
    (b"\xff\xfe", "not JSON"),
    (b" " * (2 << 20), "limit"),
])
def test_hostile_json_is_refused_without_harm(body, why):
    with pytest.raises(WireError, match=why):
        decode_json(body)


def test_typed_fields_never_take_booleans_for_numbers_or_text_for_flags():
    with pytest.raises(WireError, match="status.missed_frames must be an integer"):
        decode_status({"missed_frames": True})
    with pytest.raises(WireError, match="status.paused must be true or false"):
        decode_status({"paused": 1})
    with pytest.raises(WireError, match="status.drivers must be an object"):
        decode_status({"drivers": ["ball"]})
    with pytest.raises(WireError, match="reply.ok is missing"):
        decode_reply({"id": "1"})
    assert decode_status({"paused": True, "missed_frames": 3}).missed_frames == 3
    assert len(decode_state(state(5))) == 5


# ---- the window, fuzzed over a real PUB socket ---------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from rig import api

    return api.run(REPO / "protocols" / "demo.yaml", fast=True, max_trials=3,
                   data_dir=tmp_path_factory.mktemp("fuzz"), animal="F1", seed=1)


@pytest.fixture(scope="module")
def runner(folder):
    r = FakeRunner(folder, CORRIDORS)
    yield r
    r.close()


@pytest.fixture(scope="module")
def window(qapp, runner, tmp_path_factory):
    from gui import style
    from gui.main_window import MainWindow

    style.apply(qapp)
    base = tmp_path_factory.mktemp("fuzzwin")
    w = MainWindow(REPO / "config" / "sim.yaml", base / "data", base / "locks", lab_factory=None)
    w.confirm_quit = lambda: True
    w.show()
    w.attach(runner.info, reattached=False)
    end = time.monotonic() + 10
    while (w.link is None or w.link.live is None) and time.monotonic() < end:
        runner.publish("status", {"i": 0})
        pump(qapp, w, 0.05)
    assert w.link is not None and w.link.live is not None
    yield w
    w.close()


def pump(qapp, w, seconds: float, until=None) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        qapp.processEvents()
        w.link.poll()
        if until is not None and until():
            return
        time.sleep(0.002)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)
state_keys = st.sampled_from(["i", "t", "pos", "speed", "trial", "corridor", "grey"])


@st.composite
def mangled_state(draw: st.DrawFn) -> bytes:
    body: dict = state(draw(st.integers(0, 6)), draw(st.integers(-3, 10**6)))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(state_keys)
        how = draw(st.sampled_from(["drop", "ragged", "element", "replace"]))
        if how == "drop":
            body.pop(key, None)
        elif how == "ragged":  # a column one longer (a column already replaced by a non-list starts again)
            col = body.get(key)
            body[key] = (list(col) if isinstance(col, list) else []) + [0]
        elif how == "element" and isinstance(body.get(key), list) and body[key]:
            body[key][draw(st.integers(0, len(body[key]) - 1))] = draw(json_values)
        else:
            body[key] = draw(json_values)
    return json.dumps(body, allow_nan=True).encode()


@st.composite
def mangled_object(draw: st.DrawFn) -> bytes:
    keys = ["running", "paused", "valve_open", "i", "t", "missed_frames", "free_disk_mb", "period_ms_p50",
            "drivers", "mesoscope", "stage", "stage_index", "criterion", "level", "message", "source", "wall",
            "complete", "reason", "kind", "data", "corridors", "rewarded", "limits", "controller", "n_stages",
            "loop_period_ms", "loop_period_max_ms"]
    body = draw(st.dictionaries(st.sampled_from(keys), json_values, max_size=6))
    return json.dumps(body, allow_nan=True).encode()


CRITERION_KEYS = ["trials_in_stage", "after_trials", "pending", "measure", "threshold", "min_trials", "window",
                  "n_rewarded", "n_unrewarded", "rewarded_fraction", "unrewarded_fraction", "value", "learned",
                  "anticipatory_fraction", "fraction_now", "rewarded_in_window"]


@st.composite
def mangled_criterion(draw: st.DrawFn) -> bytes:
    """A status whose stage fields are right and whose criterion object holds any values (the stage panel's
    decoder must refuse, never crash, and the panel show only what decoded)."""
    crit = draw(st.dictionaries(st.sampled_from(CRITERION_KEYS), json_values | st.sampled_from(
        ["difference", "dprime", "trials", "criterion", None, 0.5, 3]), max_size=8))
    body = {"i": 1, "running": True, "stage": draw(st.text(max_size=20)), "stage_index": draw(st.integers(-2, 20)),
            "n_stages": draw(st.integers(-1, 20)), "criterion": crit}
    return json.dumps(body, allow_nan=True).encode()


bodies = st.one_of(
    mangled_state(), mangled_object(), mangled_criterion(),
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.binary(max_size=300), st.integers(1, 5000).map(lambda n: b"[" * n),
    st.integers(20, 6000).map(lambda n: b'{"i": ' + b"7" * n + b"}"),
)
topics = st.sampled_from([b"state", b"event", b"status", b"fault", b"end", b"hello"]) | st.binary(max_size=12)
messages = st.one_of(
    st.tuples(topics, bodies).map(list),
    st.lists(st.binary(max_size=40), min_size=1, max_size=4),  # a wrong number of parts
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=messages)
def test_the_window_survives_any_telemetry_message_and_keeps_working(qapp, window, runner, fuzz_tally: FuzzTallies,
                                                                       frames):
    tally = fuzz_tally("GUI: telemetry (SUB)", "messages")
    w = window
    link = w.link
    sentinel = link.last_status.i + 1 if link.last_status is not None else 1
    bad_before = link.bad_messages
    if frames[:1] == [b"end"]:  # a valid end would end the session view; it is tested on its own
        tally.other["not sent (end)"] += 1
    else:
        runner.publish_raw(frames)
        tally.tried += 1
    runner.publish("status", {"i": sentinel, "running": True})
    try:
        pump(qapp, w, 3.0, until=lambda: link.last_status is not None and link.last_status.i >= sentinel)
        arrived = link.last_status is not None and link.last_status.i >= sentinel
        tally.hangs += not arrived  # the sentinel, sent after the message, did not arrive within the bound
        assert arrived, "telemetry stopped reaching the window"
        w.refresh()  # draws whatever was accepted
    except AssertionError:
        raise
    except Exception:
        tally.crashes += 1  # an exception out of the event loop or a redraw: the app would abort
        raise
    tally.refused += link.bad_messages - bad_before  # dropped as bad, by the window's own count
    if not (w.link is link and link.result is None):
        tally.crashes += 1  # the window let go of the session
    assert w.link is link and link.result is None
    assert tally.crashes == tally.hangs == 0


def test_after_the_fuzz_good_telemetry_still_gets_through(qapp, window, runner):
    w = window
    link = w.link
    before = len(link.live.frames)
    i0 = link.live.last_i + 1
    runner.publish("state", state(30, i0))
    runner.publish("status", {"i": 10**9, "running": True, "missed_frames": 0})
    pump(qapp, w, 3.0, until=lambda: len(link.live.frames) >= before + 30)
    assert len(link.live.frames) == before + 30 and link.live.last_i == i0 + 29
    assert link.bad_messages > 0 and link.last_bad  # what was dropped is counted, with the last reason
    w.refresh()
    assert "bad messages dropped" in w.status_panel.link.text()
    xs, _ = w.plots.speed_curve.getData()
    assert xs is not None and np.isfinite(xs).sum() > 0
