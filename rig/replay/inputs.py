"""A session's logged engine inputs, grouped per loop iteration the way the runner consumed them.

The runner (rig.runner.loop) builds each iteration's `Inputs` from what its drivers returned: the ball
displacement is `float(cm.sum())` over that iteration's samples (numpy's sum of a contiguous float64
array, whose pairwise summation order depends on the length), the lick onsets are taken in logged
order, and operator actions are applied in logged order. Replay must reproduce those floats bit for
bit, so the per-iteration ball sums are computed here with the same numpy reduction: all iterations
with the same number of samples are gathered into one contiguous 2-D array and summed along its rows,
which runs numpy's same inner loop per row (np.add.reduceat does not: it adds in a different order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rig.runner.operator import OPERATOR_ACTIONS, Operator


class InputError(ValueError):
    """A logged input stream is malformed (out of order, bad value); `iteration`/`row` say where."""

    def __init__(self, file: str, row: int, iteration: int | None, message: str) -> None:
        super().__init__(f"{file} row {row}: {message}")
        self.file = file
        self.row = row
        self.iteration = iteration
        self.message = message


@dataclass(frozen=True, kw_only=True)
class OperatorAction(Operator):
    """An operator request as logged: the Operator the runner acted on, and where it was logged.
    `volume_ul` is as logged (the runner handed the engine exactly this value)."""

    iteration: int
    t: float


@dataclass
class IterationInputs:
    """Inputs for iterations 1..n (index 0 unused, so list[i] is iteration i)."""

    n: int
    ball_cm: list[float]  # per iteration: the runner's float(cm.sum()), 0.0 when no samples
    licks: list[tuple[float, ...]]  # per iteration: lick onset times in logged order
    # per iteration, OperatorAction records (typed as the Operator lists that rig.runner's apply_operator takes)
    operator: dict[int, list[Operator]] = field(default_factory=dict)
    ignored_operator: list[str] = field(default_factory=list)  # actions the engine never sees


def group_sums(iteration: np.ndarray, values: np.ndarray, n: int, steps: np.ndarray | None = None) -> np.ndarray:
    """Per-iteration `float(values[rows].sum())` for iterations 0..n, summed exactly as numpy sums a
    contiguous 1-D float64 array of that length. Rows must be sorted by iteration; rows with an
    iteration outside 0..n are ignored. `steps` may pass np.diff(iteration) when the caller has it."""
    out = np.zeros(n + 1)
    if not len(iteration):
        return out
    values = np.ascontiguousarray(values, dtype=np.float64)
    if iteration[0] < 0 or iteration[-1] > n:  # sorted: the ends tell whether any row is out of range
        keep = (iteration >= 0) & (iteration <= n)
        iteration, values, steps = iteration[keep], values[keep], None
        if not len(iteration):
            return out
    if steps is None:
        steps = np.diff(iteration)
    starts = np.concatenate(([0], np.flatnonzero(steps) + 1))
    lengths = np.diff(np.append(starts, len(iteration)))
    owners = iteration[starts]
    for length in np.unique(lengths):
        sel = lengths == length
        first = starts[sel]
        block = values[first[:, None] + np.arange(length)]  # contiguous (k, length) copy
        out[owners[sel]] = block.sum(axis=1)
    return out


def first_decrease(iteration: np.ndarray, steps: np.ndarray | None = None) -> int | None:
    """Index of the first row whose iteration is below the previous row's, or None."""
    if len(iteration) < 2:
        return None
    bad = np.flatnonzero((np.diff(iteration) if steps is None else steps) < 0)
    return int(bad[0]) + 1 if len(bad) else None


def group_inputs(ball: np.ndarray, licks: np.ndarray, operator: list[dict[str, Any]], n: int) -> IterationInputs:
    """Group ball.bin, licks.bin and operator.jsonl records into per-iteration engine inputs for
    iterations 1..n. Raises InputError when a stream is out of iteration order or holds a bad value."""
    bi = np.asarray(ball["i"], dtype=np.int64)
    steps = np.diff(bi)
    row = first_decrease(bi, steps)
    if row is not None:
        raise InputError("ball.bin", row, int(bi[row]), f"iteration {bi[row]} after {bi[row - 1]}: out of order")
    ball_cm = group_sums(bi, ball["cm"], n, steps).tolist()

    li = np.asarray(licks["i"], dtype=np.int64)
    row = first_decrease(li)
    if row is not None:
        raise InputError("licks.bin", row, int(li[row]), f"iteration {li[row]} after {li[row - 1]}: out of order")
    onset = np.asarray(licks["onset"])
    bad = np.flatnonzero(onset > 1)
    if len(bad):
        r = int(bad[0])
        raise InputError("licks.bin", r, int(li[r]), f"onset flag {onset[r]} is neither 0 nor 1")
    lick_lists: list[tuple[float, ...]] = [()] * (n + 1)
    on = np.flatnonzero((onset == 1) & (li >= 0) & (li <= n))
    if len(on):
        its, ts = li[on], np.asarray(licks["t"])[on].tolist()
        starts = np.concatenate(([0], np.flatnonzero(np.diff(its)) + 1, [len(its)]))
        for a, b in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
            lick_lists[int(its[a])] = tuple(ts[a:b])

    ops: dict[int, list[Operator]] = {}
    ignored: list[str] = []
    last = -1
    for k, rec in enumerate(operator):
        i, t, action = rec.get("i"), rec.get("t"), rec.get("action")
        if not isinstance(i, int) or isinstance(i, bool) or not isinstance(t, int | float):
            raise InputError("operator.jsonl", k, None, f"line {k + 1} has no integer 'i' and number 't': {rec!r}")
        if i < last:
            raise InputError("operator.jsonl", k, i, f"line {k + 1}: iteration {i} after {last}: out of order")
        last = i
        if i > n:
            continue
        if action not in OPERATOR_ACTIONS:
            ignored.append(f"operator.jsonl line {k + 1}: {action!r} at iteration {i} (not an engine input)")
            continue
        volume: float = 0.0
        if action == "manual_reward":
            data = rec.get("data")
            logged = data.get("volume_ul") if isinstance(data, dict) else None
            if not isinstance(logged, int | float) or isinstance(logged, bool):
                raise InputError("operator.jsonl", k, i, f"line {k + 1}: manual_reward without a volume_ul number")
            volume = logged  # not float(): an int stays an int, as the live runner passed it on
        ops.setdefault(i, []).append(OperatorAction(action=action, volume_ul=volume, iteration=i, t=t))
    return IterationInputs(n, ball_cm, lick_lists, ops, ignored)
