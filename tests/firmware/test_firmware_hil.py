"""The real firmware (Arduino AVR core, avr-gcc) on a simulated 16 MHz ATmega2560/328P (simavr), talking to the
project's own role drivers over a pty, judged against the ground truth the harness drove and recorded.

Tolerances (board time vs the true edge, from the harness's cycle counts):
- input stamps: -4 .. +30 us: micros() ticks every 4 us, and the interrupt may wait behind one other
  handler (UART, Timer0) or a short atomic section of the loop;
- valve: pin-high time within half a timer tick of the command (0.5 us below 32 ms, 4 us below 262 ms,
  16 us below 1.05 s, 64 us above) plus the compare interrupt's latency (+20 us).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pytest

from drivers.registry import DriverContext
from drivers.serial_board import hil
from drivers.serial_board import protocol as P
from drivers.serial_board.connection import BoardConnection
from drivers.serial_board.driver import SerialBall, SerialFrameClock, SerialLick, SerialValve
from tests.support.waiting import MonoClock, wait_until

STAMP_MIN_US, STAMP_MAX_US = -4.0, 30.0
VALVE_LATENCY_US = 20.0
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mega() -> hil.Build:
    return hil.build("mega")


@pytest.fixture(autouse=True)
def _pool_empty() -> Iterator[None]:
    yield
    assert BoardConnection.open_ports() == []


@contextmanager
def roles(path: str, **frame_kw: object) -> Iterator[tuple[SerialBall, SerialLick, SerialFrameClock, SerialValve]]:
    ctx = DriverContext(clock=MonoClock())
    hb = 2.0  # a simulated board on a loaded machine can stall longer than a real one (see hil.py)
    made = (
        SerialBall(SerialBall.Params(port=path, counts_per_cm=100.0, heartbeat_timeout_s=hb), ctx),
        SerialLick(SerialLick.Params(port=path, heartbeat_timeout_s=hb), ctx),
        SerialFrameClock(SerialFrameClock.Params(port=path, heartbeat_timeout_s=hb, **frame_kw), ctx),
        SerialValve(SerialValve.Params(port=path, max_open_ms=250, heartbeat_timeout_s=hb), ctx),
    )
    with ExitStack() as stack:
        for r in made:
            stack.enter_context(r)
        yield made


def script_us(truth: hil.Truth, t_s: float) -> float:
    """Board time of a script instant (seconds after the trigger)."""
    return truth.board_us(truth.trigger + hil.us(t_s))


def tick_us(duration_us: float) -> float:
    for tick, top in ((0.5, 32_767), (4.0, 262_140), (16.0, 1_048_560)):
        if duration_us < top:
            return tick
    return 64.0


def assert_stamps(got_us: np.ndarray, true_us: np.ndarray, what: str) -> None:
    assert len(got_us) == len(true_us), f"{what}: {len(got_us)} received, {len(true_us)} true"
    err = got_us - true_us
    assert err.min() >= STAMP_MIN_US and err.max() <= STAMP_MAX_US, f"{what}: stamp errors {err.min()}..{err.max()} us"


def test_every_count_lick_and_frame_edge_arrives_with_its_true_time(mega: hil.Build, tmp_path: Path) -> None:
    sc = hil.Script(delay_s=0.3)
    phase = sc.quadrature(0.05, 4000.0, 4000)  # 1 s forward at 4000 steps/s
    sc.quadrature(1.1, -2500.0, 1500, phase)  # then backwards
    licks: list[tuple[float, bool]] = []
    for k in range(8):
        t = 0.1 + 0.2 * k
        # Contact bounce at the onset and the release: the lick is stamped at its first edge.
        sc.lick(t, 0.05, bounce_s=(0.0001, 0.00025), release_bounce_s=(0.00008, 0.0002))
        licks += [(t, True), (t + 0.05, False)]
        sc.glitch(t + 0.12, 0.0003)  # a 0.3 ms glitch between licks: not a lick, and no lick loses its onset
    frame_starts = sc.frames(0.102, 60.0, 100)
    with hil.HilBoard(mega, sc, tmp_path) as board, roles(board.path) as (ball, lick, fc, valve):
        samples: list[tuple[float, int]] = []
        edges: list = []
        frames: list[float] = []

        def all_in() -> bool:
            s = ball.read()
            samples.extend(zip(s.t.tolist(), s.counts.tolist(), strict=True))
            edges.extend(lick.read())
            frames.extend(fc.read().tolist())
            return len(frames) >= 100 and len(edges) >= 16 and sum(c for _, c in samples) == 4000 - 1500

        wait_until(all_in, 15, "every frame, lick and count")
        time.sleep(0.3)  # anything extra would show up now
        all_in()
        h = valve.health()
    truth = board.result()
    assert truth.encoder_total() == 2500 and sum(c for _, c in samples) == 2500
    # Every sample's running total equals the true count at its board time (an edge within the stamp
    # tolerance of the sample may fall either side).
    steps = sorted([c for c, _ in truth.inputs["enc_a"][1:]] + [c for c, _ in truth.inputs["enc_b"][1:]])
    step_us = np.array([truth.board_us(c) for c in steps])
    sign = np.where(step_us < script_us(truth, 1.1), 1, -1)
    running = np.cumsum([c for _, c in samples])
    for (t, _), total in zip(samples, running, strict=True):
        lo = sign[step_us < t * 1e6 - STAMP_MAX_US].sum()
        hi = sign[step_us <= t * 1e6 - STAMP_MIN_US].sum()
        assert min(lo, hi) <= total <= max(lo, hi)
    assert [e.onset for e in edges] == [on for _, on in licks]
    assert_stamps(np.array([e.t for e in edges]) * 1e6, np.array([script_us(truth, t) for t, _ in licks]), "licks")
    assert_stamps(np.array(frames) * 1e6, np.array([script_us(truth, t) for t in frame_starts]), "frames")
    c = h.counters
    assert c["device_lick_glitches"] >= 8  # the glitches were seen and rejected on the board
    assert c["packets_lost"] == c["events_lost"] == c["device_events_dropped"] == c["device_enc_errors"] == 0
    assert not h.faults, h.faults


def test_valve_pulses_are_timed_to_the_tick_and_never_pass_max_open(mega: hil.Build, tmp_path: Path) -> None:
    sc = hil.Script(delay_s=0.2)
    sc.quadrature(0.0, 3000.0, 9000)  # the ball turns all the while: a busy link
    commands = [5.0, 12.345, 40.0, 100.0, 249.9]
    with hil.HilBoard(mega, sc, tmp_path) as board, roles(board.path) as (_, _, _, valve):
        conn = valve.connection
        events: list = []

        def wait_events(n: int, what: str) -> None:
            wait_until(lambda: events.extend(valve.events()) or len(events) >= n, 2, what)

        for i, ms in enumerate(commands):
            ack = conn.wait_ack(valve.pulse(ms), 1.0)
            assert ack is not None and ack.status == P.AckStatus.OK
            wait_events(2 * i + 2, f"{ms} ms pulse")
        # Longer than max_open_ms (250): cut by the firmware, acknowledged as clamped.
        ack = conn.wait_ack(valve.pulse(1000.0), 1.0)
        assert (ack.status, ack.value) == (P.AckStatus.CLAMPED, 250)
        wait_events(12, "clamped pulse")
        # A flush is cut at max_open_ms too; the host never sends the close.
        valve.open_valve()
        wait_events(14, "flush")
        # Overlapping pulses: the later close wins (a short pulse inside a long one does not cut it),
        # and never past max_open_ms from the opening.
        valve.pulse(100.0)
        time.sleep(0.02)
        valve.pulse(10.0)
        wait_events(16, "overlapping pulses")
        valve.pulse(200.0)
        time.sleep(0.1)
        ack = conn.wait_ack(valve.pulse(200.0), 1.0)
        assert ack.status == P.AckStatus.CLAMPED
        wait_events(18, "capped overlap")
        h = valve.health()
    truth = board.result()
    pulses = truth.pulses("valve")
    assert len(pulses) == 9
    high_us = np.array([(b - a) / hil.CYCLES_PER_US for a, b in pulses])
    for want_ms, got in zip([*commands, 250.0, 250.0], high_us, strict=False):
        want = want_ms * 1000
        assert -tick_us(want) / 2 - 1 <= got - want <= tick_us(want) / 2 + VALVE_LATENCY_US, (want_ms, got - want)
    # Overlap: the 100 ms pulse is not cut by the 10 ms one; capped: 250 ms from the first opening.
    assert abs(high_us[7] - 100_000) <= tick_us(100_000) / 2 + VALVE_LATENCY_US
    assert abs(high_us[8] - 250_000) <= tick_us(250_000) / 2 + VALVE_LATENCY_US
    assert high_us.max() <= 250_000 + tick_us(250_000) / 2 + VALVE_LATENCY_US
    # The board's own report: stamped at the pin write, closes at the scheduled instant.
    opens = [e for e in events if e[1]]
    closes = [e for e in events if not e[1]]
    for (rise, fall), (t_open, _, _), (t_close, _, _) in zip(pulses, opens, closes, strict=True):
        assert STAMP_MIN_US <= t_open * 1e6 - truth.board_us(rise) <= 8.0
        assert abs((t_close - t_open) * 1e6 - (fall - rise) / hil.CYCLES_PER_US) <= tick_us(250_000) + VALVE_LATENCY_US
    assert [e[2] for e in closes] == [P.ValveReason.PULSE_DONE] * 5 + [P.ValveReason.MAX_OPEN] * 2 + [
        P.ValveReason.PULSE_DONE, P.ValveReason.MAX_OPEN,
    ]  # fmt: skip
    assert h.counters["packets_lost"] == 0 and not [f for f in h.faults if f.kind != "clamped"]


KILLER = r"""
import os, signal, sys, time
from drivers.registry import DriverContext
from drivers.serial_board.driver import SerialValve
class C:
    def now(self): return time.monotonic()
v = SerialValve(SerialValve.Params(port=sys.argv[1], max_open_ms=300), DriverContext(clock=C()))
v.open()
getattr(v, sys.argv[2])(*[float(a) for a in sys.argv[3:]])
deadline = time.monotonic() + 2
while time.monotonic() < deadline:
    if any(e[1] for e in v.events()):
        print("open", flush=True)
        time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGKILL)  # the host dies mid-pulse: no close, no cleanup
    time.sleep(0.005)
"""


@pytest.mark.parametrize(("call", "expect_ms"), [("open_valve", 300.0), ("pulse", 120.0)])
def test_host_killed_mid_pulse_the_firmware_closes_the_valve(call: str, expect_ms: float, mega: hil.Build,
                                                             tmp_path: Path) -> None:
    args = [] if call == "open_valve" else [str(expect_ms)]
    with hil.HilBoard(mega, hil.Script(delay_s=0.1), tmp_path) as board:
        r = subprocess.run([sys.executable, "-c", KILLER, board.path, call, *args], capture_output=True, text=True,
                           timeout=30, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
        assert r.returncode == -signal.SIGKILL and "open" in r.stdout, r.stderr
        board.wait_line("out valve 1", timeout=5)
        board.wait_line("out valve 0", timeout=5)  # nobody is left to send a close: the firmware's doing
    truth = board.result()
    (rise, fall), = truth.pulses("valve")
    want = expect_ms * 1000
    assert abs((fall - rise) / hil.CYCLES_PER_US - want) <= tick_us(want) / 2 + VALVE_LATENCY_US


def test_a_board_already_streaming_fast_is_synchronised_without_a_fault(mega: hil.Build, tmp_path: Path) -> None:
    # The ball turns at 20,000 steps/s and frames come at 200 Hz from power-up, before any host: the
    # handshake (HELLO, 51 bytes) still gets through, and joining mid-packet is not a fault.
    sc = hil.Script(trigger="boot", delay_s=0.01)
    sc.quadrature(0.0, 20_000.0, 60_000)
    sc.frames(0.01, 200.0, 600)
    with hil.HilBoard(mega, sc, tmp_path) as board:
        time.sleep(0.7)
        with roles(board.path) as (ball, _, fc, valve):
            samples = []
            frames: list[float] = []
            t_end = time.monotonic() + 1.0
            while time.monotonic() < t_end:
                s = ball.read()
                samples.extend(zip(s.t.tolist(), s.counts.tolist(), strict=True))
                frames.extend(fc.read().tolist())
                time.sleep(0.02)
            h = valve.health()
            hello_total = valve.connection.hello.encoder_total
    truth = board.result()
    assert h.connected and not h.faults, h.faults
    assert h.counters["handshakes"] >= 1 and h.counters["skipped_bytes"] >= 0
    assert h.counters["packets_lost"] == 0 and h.counters["device_events_dropped"] == 0
    # Counts after the handshake: the HELLO's total plus every sample equals the true count at the last stamp.
    steps = np.array(sorted(truth.board_us(c) for c in [*truth.edges("enc_a", 0), *truth.edges("enc_a", 1),
                                                          *truth.edges("enc_b", 0), *truth.edges("enc_b", 1)]))
    t_last = samples[-1][0] * 1e6
    total = hello_total + sum(c for _, c in samples)
    assert (steps < t_last - STAMP_MAX_US).sum() <= total <= (steps <= t_last - STAMP_MIN_US).sum()
    true_frames = np.array([truth.board_us(c) for c in truth.edges("frame", 0)])
    inside = true_frames[(true_frames >= frames[0] * 1e6 - 50) & (true_frames <= frames[-1] * 1e6 + 50)]
    assert_stamps(np.array(frames) * 1e6, inside, "frames while streaming")


def test_frame_clock_polarity_is_configurable(mega: hil.Build, tmp_path: Path) -> None:
    sc = hil.Script(delay_s=0.3)
    sc.frames(0.05, 50.0, 20, width_s=0.003)  # 3 ms high, falling at the frame start
    with hil.HilBoard(mega, sc, tmp_path) as board, roles(board.path, edge="rising") as (_, _, fc, _):
        frames: list[float] = []
        wait_until(lambda: frames.extend(fc.read().tolist()) or len(frames) >= 20, 5, "20 rising edges")
        time.sleep(0.1)
        frames.extend(fc.read().tolist())
    truth = board.result()
    assert_stamps(np.array(frames) * 1e6, np.array([truth.board_us(c) for c in truth.edges("frame", 1)]), "rising")


def test_the_clock_wraps_without_a_jump(tmp_path: Path) -> None:
    # A test build whose micros() starts 1.2 s before the 32-bit wrap (2**32 us = 71.6 min).
    start = f"-DCB_TEST_START_US={(1 << 32) - 1_200_000}ULL"
    fw = hil.build("mega", build_dir=hil.HIL_DIR / "build-rollover", defines=start)
    sc = hil.Script(trigger="boot", delay_s=0.01)
    starts = sc.frames(0.3, 200.0, 400)  # 0.3 .. 2.3 s: across the wrap at about 1.2 s
    with hil.HilBoard(fw, sc, tmp_path) as board, roles(board.path) as (_, _, fc, valve):
        frames: list[float] = []
        wait_until(lambda: frames.extend(fc.read().tolist()) or len(frames) >= 400, 6, "400 frames across the wrap")
        h = valve.health()
    truth = board.result()
    assert len(frames) == len(starts) == 400 and frames[0] < P.U32 / 1e6 < frames[-1]
    # Against the truth, every stamp has the same offset (the build's start value) to within the stamp
    # tolerance: no jump of 71.6 minutes, no sample moved.
    offsets = np.array(frames) * 1e6 - np.array([truth.board_us(c) for c in truth.edges("frame", 0)])
    assert offsets.max() - offsets.min() <= STAMP_MAX_US - STAMP_MIN_US
    assert abs(np.median(offsets) - ((1 << 32) - 1_200_000)) < 20_000  # set a few Timer0 overflows after start
    assert h.counters["bad_time"] == 0 and not h.faults, h.faults


def test_uno_pin_change_inputs_and_valve(tmp_path: Path) -> None:
    uno = hil.build("uno")
    sc = hil.Script(delay_s=0.3)
    sc.quadrature(0.0, 3000.0, 1500)
    licks = []
    for k in range(4):
        sc.lick(0.05 + 0.1 * k, 0.03, bounce_s=(0.0001, 0.0002))
        licks += [0.05 + 0.1 * k, 0.08 + 0.1 * k]
    starts = sc.frames(0.02, 100.0, 40)
    with hil.HilBoard(uno, sc, tmp_path) as board, roles(board.path) as (ball, lick, fc, valve):
        assert valve.health().mcu == "atmega328p"
        counts, edges, frames = 0, [], []

        def all_in() -> bool:
            nonlocal counts
            counts += int(ball.read().counts.sum())
            edges.extend(lick.read())
            frames.extend(fc.read().tolist())
            return counts == 1500 and len(edges) == 8 and len(frames) == 40

        wait_until(all_in, 6, "Uno inputs")
        valve.connection.wait_ack(valve.pulse(30.0), 1.0)
        time.sleep(0.1)
        h = valve.health()
    truth = board.result()
    assert_stamps(np.array([e.t for e in edges]) * 1e6, np.array([script_us(truth, t) for t in licks]), "Uno licks")
    assert_stamps(np.array(frames) * 1e6, np.array([script_us(truth, t) for t in starts]), "Uno frames")
    (rise, fall), = truth.pulses("valve")
    assert abs((fall - rise) / hil.CYCLES_PER_US - 30_000) <= 0.25 + VALVE_LATENCY_US
    assert not h.faults, h.faults
