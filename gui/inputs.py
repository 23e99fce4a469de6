"""A number field that says why it refuses a value (no silent clamping, no silent revert).

A QDoubleSpinBox turns 999 into its maximum or drops the keystroke, and reverts 0 to its minimum without a
word. `NumberField` keeps what the operator typed, and while it is not acceptable shows the reason under
it and reports `value() is None`; the buttons that use it are disabled with the same reason as tooltip.
"""

from __future__ import annotations

import math

from PyQt5 import QtCore, QtWidgets

from gui.text import Message


def number_problem(text: str, lo: float, hi: float, unit: str, what: str, lo_inclusive: bool = False,
                   above: str = "") -> str | None:
    """Why `text` is not an acceptable value in (lo, hi] (or [lo, hi]), or None when it is. `above` says
    whose limit `hi` is (default: the rig's for `what`)."""
    s = text.strip().replace(",", ".")
    if not s:
        return f"enter the {what} in {unit}"
    try:
        v = float(s)
    except ValueError:
        return f"{text.strip()[:20]!r} is not a number"
    if not math.isfinite(v):
        return f"{text.strip()[:20]!r} is not a number"
    if v > hi:
        return f"{v:g} {unit} is more than {above or f'the rig allows for the {what}'} ({hi:g} {unit} at most)"
    if v < lo or (v == lo and not lo_inclusive):
        bound = f"at least {lo:g}" if lo_inclusive else f"more than {lo:g}"
        return f"{v:g} {unit}: the {what} must be {bound} {unit}"
    return None


class NumberField(QtWidgets.QWidget):
    changed = QtCore.pyqtSignal()

    def __init__(self, what: str, unit: str, value: float, lo: float, hi: float,
                 parent: QtWidgets.QWidget | None = None, above: str = "") -> None:
        super().__init__(parent)
        self.what, self.unit, self.lo, self.hi, self.above = what, unit, lo, hi, above
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        self.edit = QtWidgets.QLineEdit(f"{value:g}")
        self.edit.setAlignment(QtCore.Qt.AlignRight)
        self.edit.setMaximumWidth(90)
        lay.addWidget(self.edit)
        lay.addWidget(QtWidgets.QLabel(unit))
        self.edit.textChanged.connect(self._check)
        self.problem: str | None = None
        self.message: Message | None = None  # where the reason is shown (set by the owner)

    def set_range(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi
        self._check()

    def set_text(self, text: str) -> None:
        self.edit.setText(text)

    def value(self) -> float | None:
        return None if self.problem is not None else float(self.edit.text().strip().replace(",", "."))

    def _check(self) -> None:
        self.problem = number_problem(self.edit.text(), self.lo, self.hi, self.unit, self.what, above=self.above)
        self.edit.setProperty("invalid", self.problem is not None)
        self.edit.style().unpolish(self.edit)
        self.edit.style().polish(self.edit)
        self.edit.setToolTip(self.problem or f"{self.what}: more than {self.lo:g}, at most {self.hi:g} {self.unit}")
        if self.message is not None:
            if self.problem is not None:
                self.message.show_text(self.problem, error=True)
            else:
                self.message.clear()
        self.changed.emit()
