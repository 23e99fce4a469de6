"""Test support: a scripted experimenter for sessions whose replay is checked."""

from __future__ import annotations

from rig.engine.records import Step
from rig.runner.hooks import LoopHook
from rig.runner.loop import Operator, Runner


class OperatorScript(LoopHook):
    """LoopHook playing operator actions into the runner on given iterations (a scripted experimenter)."""

    def __init__(self, actions: dict[int, list[Operator]]) -> None:
        self.actions = actions
        self.runner: Runner | None = None

    def start(self, runner: Runner) -> None:
        self.runner = runner

    def iteration(self, i: int, t: float, step: Step) -> None:
        assert self.runner is not None
        for op in self.actions.get(i + 1, ()):
            self.runner.operator.put(op)

    def end(self, runner, result) -> None:
        pass
