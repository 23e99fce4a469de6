"""Trial order: pseudorandom runs and weights, block composition, fixed sequences, probes, determinism."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest

from rig.engine.trialorder import TrialOrder
from rig.protocol import Corridor, Order


def corridors(*specs: tuple[str, float, bool]) -> list[Corridor]:
    return [Corridor(name=n, texture={"source": "leaf"}, weight=w, probe=p) for n, w, p in specs]


ABC = corridors(("a", 1.0, False), ("b", 1.0, False), ("c", 2.0, False))
WITH_PROBES = corridors(("a", 1.0, False), ("b", 1.0, False), ("p1", 1.0, True), ("p2", 1.0, True))


def draw(order: Order, cs: list[Corridor], n: int, seed: int = 0) -> list[int]:
    return list(itertools.islice(TrialOrder(order, cs, np.random.default_rng(seed)), n))


def longest_run(seq: list[int]) -> int:
    return max(len(list(g)) for _, g in itertools.groupby(seq))


def within_sigmas(count: int, n: int, p: float, k: float = 5.0) -> bool:
    return abs(count - n * p) <= k * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("max_repeat", [1, 2, 3])
def test_pseudorandom_never_exceeds_max_repeat(max_repeat):
    seq = draw(Order(max_repeat=max_repeat), ABC, 20_000, seed=max_repeat)
    assert longest_run(seq) <= max_repeat
    assert longest_run(seq) == max_repeat  # and the limit is reached, so the check means something


def test_pseudorandom_follows_weights_without_repeat_limit():
    seq = draw(Order(max_repeat=None), ABC, 20_000, seed=5)
    counts = Counter(seq)
    assert within_sigmas(counts[0], 20_000, 0.25) and within_sigmas(counts[2], 20_000, 0.5)
    assert longest_run(seq) > 3


def test_pseudorandom_with_one_ordinary_corridor_repeats_it():
    cs = corridors(("only", 1.0, False), ("p", 1.0, True))
    assert set(draw(Order(max_repeat=2), cs, 100)) == {0}


def test_blocks_hold_corridors_in_proportion_to_weight_shuffled():
    seq = draw(Order(mode="blocks", block_size=8), ABC, 8 * 500, seed=2)
    blocks = [tuple(seq[i : i + 8]) for i in range(0, len(seq), 8)]
    assert all(Counter(b) == {0: 2, 1: 2, 2: 4} for b in blocks)
    assert len(set(blocks)) > 100  # shuffled differently from block to block


def test_blocks_with_uneven_split_stay_within_one_of_exact_share_and_are_unbiased():
    n_blocks = 4000
    seq = draw(Order(mode="blocks", block_size=5), ABC, 5 * n_blocks, seed=3)
    for i in range(0, len(seq), 5):
        c = Counter(seq[i : i + 5])
        assert sum(c.values()) == 5
        assert c[0] in (1, 2) and c[1] in (1, 2) and c[2] in (2, 3)  # exact shares 1.25, 1.25, 2.5
    # over many blocks each corridor gets its exact share on average
    counts = Counter(seq)
    for k, share in ((0, 0.25), (1, 0.25), (2, 0.5)):
        assert abs(counts[k] / n_blocks - 5 * share) < 0.05, (k, counts[k] / n_blocks)


def test_fixed_order_repeats_the_sequence():
    order = Order(mode="fixed", sequence=("c", "a", "a", "b"))
    assert draw(order, ABC, 10) == [2, 0, 0, 1, 2, 0, 0, 1, 2, 0]


def test_probes_are_inserted_without_disturbing_a_fixed_sequence():
    order = Order(mode="fixed", sequence=("a", "b"), probe_fraction=0.3)
    seq = draw(order, WITH_PROBES, 2000, seed=4)
    ordinary = [i for i in seq if i < 2]
    assert ordinary == ([0, 1] * len(seq))[: len(ordinary)]
    assert within_sigmas(len(seq) - len(ordinary), len(seq), 0.3)


def test_probe_fraction_start_and_uniform_choice():
    order = Order(probe_fraction=0.2, probe_start=100)
    seq = draw(order, WITH_PROBES, 20_100, seed=6)
    assert all(i < 2 for i in seq[:100])
    later = seq[100:]
    probes = [i for i in later if i >= 2]
    assert within_sigmas(len(probes), 20_000, 0.2)
    assert within_sigmas(probes.count(2), len(probes), 0.5)
    ordinary = [i for i in later if i < 2]
    assert longest_run(ordinary) <= 3  # runs count ordinary trials only: probes do not break them


def test_same_seed_same_order_and_different_seed_different_order():
    order = Order(probe_fraction=0.1)
    assert draw(order, WITH_PROBES, 500, seed=9) == draw(order, WITH_PROBES, 500, seed=9)
    assert draw(order, WITH_PROBES, 500, seed=9) != draw(order, WITH_PROBES, 500, seed=10)


def test_inconsistent_orders_are_rejected_with_a_reason():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="sequence"):
        TrialOrder(Order(mode="fixed"), ABC, rng)
    with pytest.raises(ValueError, match="undefined corridors"):
        TrialOrder(Order(mode="fixed", sequence=("a", "zz")), ABC, rng)
    with pytest.raises(ValueError, match="block_size"):
        TrialOrder(Order(mode="blocks"), ABC, rng)
    with pytest.raises(ValueError, match="no corridor has probe"):
        TrialOrder(Order(probe_fraction=0.1), ABC, rng)
    with pytest.raises(ValueError, match="every corridor is a probe"):
        TrialOrder(Order(), corridors(("p", 1.0, True)), rng)
