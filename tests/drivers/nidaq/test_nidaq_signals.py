"""The NI-DAQ drivers' pure sample processing (no nidaqmx needed)."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.nidaq.signals import DigitalEdges, EdgeCounts, EncoderCounts, Schmitt, TickTimestamps, tone


def test_schmitt_gives_the_same_edges_however_the_buffer_is_split() -> None:
    rng = np.random.default_rng(3)
    v = np.repeat(rng.choice([0.0, 5.0], size=60), 17) + rng.normal(0, 0.3, 60 * 17)
    whole = Schmitt(1.0, 4.0).feed(0, v)
    split, sch, start = [], Schmitt(1.0, 4.0), 0
    for chunk in np.array_split(v, [5, 6, 17, 34, 306, 307, 340, 374, 777]):
        split += sch.feed(start, chunk)
        start += len(chunk)
    assert [c.rising for c in split] == [c.rising for c in whole]
    np.testing.assert_allclose([c.index for c in split], [c.index for c in whole], rtol=0, atol=1e-9)
    assert len(whole) > 10
    assert all(a.rising != b.rising for a, b in zip(whole, whole[1:], strict=False))  # edges alternate


def test_schmitt_ignores_noise_inside_the_band_and_rejects_a_bad_band() -> None:
    assert Schmitt(1.0, 2.0).feed(0, np.array([1.1, 1.9, 1.2, 1.8])) == []
    with pytest.raises(ValueError, match="low < high"):
        Schmitt(2.0, 2.0)


def test_encoder_counts_carry_the_last_position_between_reads() -> None:
    enc = EncoderCounts()
    assert enc.feed(np.array([1.0, 3.0])).tolist() == [1, 2]
    assert enc.feed(np.array([])).tolist() == []
    assert enc.feed(np.array([2.0, -5.0])).tolist() == [-1, -7]


def test_edge_counts_unwrap_the_32_bit_counter() -> None:
    ec = EdgeCounts()
    assert ec.feed(10, np.array([0, 2, 2])).tolist() == [11, 11]
    ec._last = 2**32 - 1  # the counter is about to wrap
    assert ec.feed(100, np.array([2**32 - 1, 0, 1])).tolist() == [101, 102]


def test_tick_timestamps_unwrap_the_32_bit_count_with_the_read_time() -> None:
    hz, wrap = 100e6, 1 << 32  # a wrap every 42.9 s
    edges = np.r_[0.25, 30.0, 42.0, 43.5, 44.0, 130.0, 130.01]  # wraps inside a read and idle gaps of 86 s
    ticks = np.floor(edges * hz) % wrap
    reads = [(0.3, 1), (44.2, 5), (131.0, 7)]  # (device time of the read, edges latched by then)
    ts, got, done = TickTimestamps(hz), [], 0
    for now, upto in reads:
        got += list(ts.feed(ticks[done:upto], now))
        done = upto
    np.testing.assert_allclose(got, edges, atol=1e-8)
    assert ts.feed(np.zeros(0), 200.0).size == 0
    late = TickTimestamps(hz).feed(ticks[:1], 0.25 + wrap / hz + 5.0)  # read more than a wrap late
    assert late[0] == pytest.approx(0.25 + wrap / hz)  # ambiguous by one wrap: the read must come sooner
    with pytest.raises(ValueError, match="bad timestamp settings"):
        TickTimestamps(hz, margin_s=30.0)


def test_digital_edges_start_from_the_idle_level() -> None:
    d = DigitalEdges(initial_high=True)
    got = d.feed(0, np.array([1, 1, 0, 0, 1]))
    assert [(c.index, c.rising) for c in got] == [(2.0, False), (4.0, True)]


def test_tone_has_its_frequency_and_ends_at_zero() -> None:
    w = tone(10_000, 50, 1000, 2.0, 5)
    assert len(w) == 500 and w[0] == 0 and w[-1] == 0 and np.max(np.abs(w)) <= 2.0
    assert np.argmax(np.abs(np.fft.rfft(w))) * 10_000 / 500 == pytest.approx(1000, abs=20)


def test_the_registry_can_import_the_package_without_nidaqmx() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['nidaqmx'] = None\n"  # any `import nidaqmx` now fails
        "from drivers.base import ALL_ROLES\n"
        "from drivers.registry import registry_of\n"
        "reg = registry_of(['drivers.nidaq'])\n"
        "print(sorted(r for r in ALL_ROLES if 'nidaq' in reg.types(r)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "['ball', 'cue', 'frame_clock', 'lick', 'sync', 'valve']"
