"""Start, pause, stop, rewards and the valve flush, and who controls the session.

Every row has a fixed height (messages are gui.text.Message lines), so no button moves when a message
or a fault appears. Values are typed into gui.inputs.NumberField, which says why it refuses one; the
limits are the rig's (set_limits, from the runner or the session's rig config).
"""

from __future__ import annotations

import time

from PyQt5 import QtCore, QtWidgets

from gui.inputs import NumberField
from gui.text import Message
from gui.wire import Limits

LOG_LINES = 200


class ControlPanel(QtWidgets.QGroupBox):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Control", parent)
        grid = QtWidgets.QGridLayout(self)
        grid.setVerticalSpacing(3)
        grid.setContentsMargins(6, 4, 6, 4)
        self.start = QtWidgets.QPushButton("▶  Start session")
        self.start.setObjectName("start")
        self.start.setFixedHeight(30)
        self.pause = QtWidgets.QPushButton("❚❚  Pause")
        self.stop = QtWidgets.QPushButton("■  Stop")
        self.stop.setObjectName("stop")
        for b in (self.pause, self.stop):
            b.setFixedHeight(28)
        grid.addWidget(self.start, 0, 0, 1, 4)
        grid.addWidget(self.pause, 1, 0, 1, 2)
        grid.addWidget(self.stop, 1, 2, 1, 2)

        limits = Limits()
        self.reward_ul = NumberField("manual reward", "µl", 2.5, 0.0, limits.manual_reward_ul_max)
        self.reward = QtWidgets.QPushButton("Manual reward")
        self.reward.setObjectName("reward")
        grid.addWidget(self.reward_ul, 2, 0, 1, 2)
        grid.addWidget(self.reward, 2, 2, 1, 2)
        self.flush_s = NumberField("flush", "s", 1.0, 0.0, limits.flush_s_max)
        self.valve_open = QtWidgets.QPushButton("Flush: open")
        self.valve_close = QtWidgets.QPushButton("close")
        grid.addWidget(self.flush_s, 3, 0, 1, 2)
        grid.addWidget(self.valve_open, 3, 2)
        grid.addWidget(self.valve_close, 3, 3)
        self.input_msg = Message(1)  # why a typed value is refused
        grid.addWidget(self.input_msg, 4, 0, 1, 4)
        self.reward_ul.message = self.input_msg
        self.flush_s.message = self.input_msg

        self.control_line = Message(1)
        self.take_control = QtWidgets.QPushButton("Take control")
        self.take_control.setEnabled(False)
        grid.addWidget(self.control_line, 5, 0, 1, 3)
        grid.addWidget(self.take_control, 5, 3)
        self.message = Message(2)
        grid.addWidget(self.message, 6, 0, 1, 4)
        self.log = QtWidgets.QListWidget()
        self.log.setFixedHeight(54)
        self.log.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        self.log.setTextElideMode(QtCore.Qt.ElideRight)
        grid.addWidget(self.log, 7, 0, 1, 4)
        self._session = False
        self._controller = True
        self.reward_ul.changed.connect(self._update)
        self.flush_s.changed.connect(self._update)
        self.set_limits(limits, "the runner's defaults")
        self._update()

    def set_limits(self, limits: Limits, source: str) -> None:
        self.reward_ul.set_range(0.0, limits.manual_reward_ul_max)
        self.flush_s.set_range(0.0, limits.flush_s_max)
        self.flush_s.edit.setToolTip(
            f"the valve closes by itself after this time; at most {limits.flush_s_max:g} s ({source}): "
            "longer flushes are the rig's prime mode, outside sessions")
        self._update()

    def session_controls(self, session: bool, controller: bool = True) -> None:
        """session: a live session is attached; controller: this window may command it."""
        self._session, self._controller = session, controller
        self._update()

    def _update(self) -> None:
        on = self._session and self._controller
        for b in (self.pause, self.stop, self.valve_close):
            b.setEnabled(on)
        self.reward.setEnabled(on and self.reward_ul.value() is not None)
        self.valve_open.setEnabled(on and self.flush_s.value() is not None)
        self.reward.setToolTip(self.reward_ul.problem or "")
        self.valve_open.setToolTip(self.flush_s.problem or "")

    def show_control(self, session: bool, controller: bool, controlled_by: str | None) -> None:
        if not session:
            self.control_line.show_text("")
            self.take_control.setEnabled(False)
        elif controller:
            self.control_line.show_text("this window controls the session", ok=True)
            self.take_control.setEnabled(False)
        else:
            who = controlled_by or "another window"
            self.control_line.show_text(f"view only: the session is controlled by {who}", warn=True)
            self.take_control.setEnabled(True)
        self.session_controls(session, controller)

    def add_log(self, text: str) -> None:
        self.log.insertItem(0, f"{time.strftime('%H:%M:%S')} {text}")
        while self.log.count() > LOG_LINES:
            self.log.takeItem(self.log.count() - 1)
