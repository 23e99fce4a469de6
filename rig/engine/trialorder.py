"""Which corridor each trial shows: a lazy, seeded sequence (sessions may have any number of trials).

Only ``rng.random()`` (one uniform float in [0, 1)) is ever drawn, so the sequence depends on the
generator's basic stream alone and not on how numpy implements choice/shuffle in a given release.

Per trial the draws are, in this order:
1. when probes are possible (probe_fraction > 0, trial index >= probe_start): one draw deciding
   whether the trial is a probe, and, if it is, one draw picking the probe corridor (uniformly);
2. otherwise the ordinary draw of the mode:
   - pseudorandom: one draw, weighted by corridor weight, excluding a corridor that has just been
     shown max_repeat times in a row (run lengths count non-probe trials only, so probes neither
     break nor extend a run);
   - blocks: at the start of each block, one draw placing the slots left over when the shares are
     not whole numbers, then block_size - 1 draws for a Fisher-Yates shuffle; no draw for the other
     trials of a block;
   - fixed: no draw.
Probe trials are inserted: they do not consume a block slot or a position in a fixed sequence.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from rig.protocol import Corridor, Order


class TrialOrder(Iterator[int]):
    """``next(order)`` gives the index (into ``corridors``) of the next trial's corridor."""

    __slots__ = (
        "_rng", "_mode", "_main", "_main_w", "_probes", "_probe_fraction", "_probe_start",
        "_max_repeat", "_block_size", "_sequence", "_trial", "_run_corridor", "_run_length",
        "_block", "_block_pos", "_seq_pos",
    )

    def __init__(self, order: Order, corridors: Sequence[Corridor], rng: np.random.Generator) -> None:
        if not corridors:
            raise ValueError("trial order: no corridors")
        self._rng = rng
        self._mode = order.mode
        self._main = [i for i, c in enumerate(corridors) if not c.probe]
        self._main_w = [corridors[i].weight for i in self._main]
        self._probes = [i for i, c in enumerate(corridors) if c.probe]
        if not self._main:
            raise ValueError("trial order: every corridor is a probe; at least one must not be")
        self._probe_fraction = order.probe_fraction
        if self._probe_fraction > 0 and not self._probes:
            raise ValueError("trial order: probe_fraction > 0 but no corridor has probe: true")
        self._probe_start = order.probe_start
        self._max_repeat = order.max_repeat
        self._block_size = order.block_size or 0
        if self._mode == "blocks" and self._block_size < 1:
            raise ValueError("trial order: mode 'blocks' needs block_size >= 1")
        names = {c.name: i for i, c in enumerate(corridors)}
        self._sequence: list[int] = []
        if self._mode == "fixed":
            if not order.sequence:
                raise ValueError("trial order: mode 'fixed' needs a sequence")
            unknown = [n for n in order.sequence if n not in names]
            if unknown:
                raise ValueError(f"trial order: sequence names undefined corridors {unknown}")
            self._sequence = [names[n] for n in order.sequence]
        self._trial = 0
        self._run_corridor = -1
        self._run_length = 0
        self._block: list[int] = []
        self._block_pos = 0
        self._seq_pos = 0

    def __iter__(self) -> TrialOrder:
        return self

    def __next__(self) -> int:
        k = self._trial
        self._trial = k + 1
        if self._probe_fraction > 0 and k >= self._probe_start:
            if self._rng.random() < self._probe_fraction:
                return self._probes[self._pick_index(len(self._probes))]
        if self._mode == "pseudorandom":
            return self._next_pseudorandom()
        if self._mode == "blocks":
            return self._next_block()
        idx = self._sequence[self._seq_pos % len(self._sequence)]
        self._seq_pos += 1
        return idx

    def _pick_index(self, n: int) -> int:
        # min() guards the (measure-zero) float edge where u * n rounds up to n
        return min(int(self._rng.random() * n), n - 1)

    def _next_pseudorandom(self) -> int:
        cands, weights = self._main, self._main_w
        if self._max_repeat is not None and self._run_length >= self._max_repeat and len(cands) > 1:
            keep = [j for j, i in enumerate(cands) if i != self._run_corridor]
            cands = [cands[j] for j in keep]
            weights = [weights[j] for j in keep]
        u = self._rng.random() * math.fsum(weights)
        chosen = cands[-1]
        acc = 0.0
        for i, w in zip(cands, weights, strict=True):
            acc += w
            if u < acc:
                chosen = i
                break
        if chosen == self._run_corridor:
            self._run_length += 1
        else:
            self._run_corridor, self._run_length = chosen, 1
        return chosen

    def _next_block(self) -> int:
        if self._block_pos >= len(self._block):
            self._block = self._make_block()
            self._block_pos = 0
        idx = self._block[self._block_pos]
        self._block_pos += 1
        return idx

    def _make_block(self) -> list[int]:
        """Counts proportional to weight, then shuffled.

        Each corridor gets the whole part of its exact share; the spare slots are placed by systematic
        sampling over the fractional parts (one draw), so every corridor's expected count per block
        equals its exact share and no count is more than one away from it.
        """
        size = self._block_size
        total = math.fsum(self._main_w)
        exact = [size * w / total for w in self._main_w]
        counts = [math.floor(x + 1e-9) for x in exact]
        spare = size - sum(counts)
        if spare > 0:
            fracs = [max(0.0, x - n) for x, n in zip(exact, counts, strict=True)]
            step = math.fsum(fracs) / spare
            point = self._rng.random() * step
            acc = 0.0
            for j, f in enumerate(fracs):
                acc += f
                while spare > 0 and point < acc:
                    counts[j] += 1
                    spare -= 1
                    point += step
            counts[-1] += spare  # only float slack can leave a slot over
        block = [i for i, n in zip(self._main, counts, strict=True) for _ in range(n)]
        for k in range(len(block) - 1, 0, -1):  # Fisher-Yates
            j = self._pick_index(k + 1)
            block[k], block[j] = block[j], block[k]
        return block
