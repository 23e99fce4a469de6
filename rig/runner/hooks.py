"""Things that ride along with the loop: the hook base, and the hooks every front end uses.

A hook overrides what it needs of `start`, `iteration` and `end`; the defaults do nothing. Hooks are
called in the order they were given, from the loop's own thread. `start` runs after the drivers are
open and before the first engine step; raising there refuses the session (nothing has been run, the
folder is closed incomplete). `iteration` runs after each iteration has been logged and must never
block. `end` runs once, whatever ended the loop, before the folder is closed.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from rig.engine.records import EventKind, Step

if TYPE_CHECKING:
    from rig.runner.loop import Runner, RunResult


class LoopHook:
    """Base of every hook: no-op methods."""

    def start(self, runner: Runner) -> None:
        """Before the first engine step; raise to refuse the session."""

    def iteration(self, i: int, t: float, step: Step) -> None:
        """After iteration i (session time t) has been logged; must not block."""

    def end(self, runner: Runner, result: RunResult | None) -> None:
        """Once, whatever ended the loop (result is None when it raised)."""

    def health(self) -> list[str]:
        """What is wrong with the inputs this hook looks after (a dead receiver thread, ...), as messages;
        empty when healthy. Polled twice a second and after end(): any problem makes the session incomplete."""
        return []


class OnStart(LoopHook):
    """Calls a function with the runner before the first step (to wire a GUI, keep a handle in a test)."""

    def __init__(self, fn: Callable[[Runner], None]) -> None:
        self._fn = fn

    def start(self, runner: Runner) -> None:
        self._fn(runner)


class ProgressBar(Protocol):
    def update(self, n: int = 1) -> Any: ...

    def set_postfix(self, *args: Any, refresh: bool = ..., **kwargs: Any) -> Any: ...


class ProgressHook(LoopHook):
    """Advances a progress bar (tqdm) by one per finished trial, showing the rewards so far."""

    def __init__(self, bar: ProgressBar) -> None:
        self.bar = bar
        self.rewards = 0

    def iteration(self, i: int, t: float, step: Step) -> None:
        for ev in step.events:
            if ev.kind == EventKind.REWARD:
                self.rewards += 1
            elif ev.kind == EventKind.TRIAL_END:
                self.bar.update(1)
                self.bar.set_postfix(rewards=self.rewards, refresh=False)


class SignalStop(LoopHook):
    """SIGINT/SIGTERM ask the loop to end cleanly instead of killing it mid-write.

    Installed with `installed()` around the whole session, so a signal that arrives while the drivers
    are still opening is kept and stops the loop as soon as it starts. `received` lists the signals.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self._runner: Runner | None = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002 - handler signature
        self.received.append(signum)
        if self._runner is not None:
            self._runner.request_stop()

    @contextmanager
    def installed(self) -> Iterator[SignalStop]:
        old = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def start(self, runner: Runner) -> None:
        self._runner = runner
        if self.received:
            runner.request_stop()

    def end(self, runner: Runner, result: RunResult | None) -> None:
        self._runner = None
