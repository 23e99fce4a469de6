"""Plain-text message lines of a fixed height.

Messages carry text from outside (file paths, YAML errors naming `<yaml>`, runner replies): they are shown
as plain text, never interpreted as HTML. A message line has a fixed number of lines, so a long or
multi-line message never pushes the widgets below it (clicks land where they were aimed); what does not
fit is cut with "…" and the whole text is in the tooltip.
"""

from __future__ import annotations

from PyQt5 import QtCore, QtGui, QtWidgets

TONES = ("", "ok", "warn", "error")


def one_paragraph(text: str) -> str:
    return " · ".join(line.strip() for line in text.splitlines() if line.strip())


class Message(QtWidgets.QLabel):
    """A plain-text label of `lines` lines, whatever it is given."""

    def __init__(self, lines: int = 2, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(QtCore.Qt.PlainText)
        self.setWordWrap(True)
        self.setAlignment(QtCore.Qt.AlignLeft | QtCore.Qt.AlignTop)
        self.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.lines = lines
        self.full_text = ""
        self.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Fixed)
        self.setFixedHeight(self.fontMetrics().lineSpacing() * lines + 6)
        self.setProperty("tone", "")

    def show_text(self, text: str, error: bool = False, ok: bool = False, warn: bool = False) -> None:
        self.full_text = text
        tone = "error" if error else "ok" if ok else "warn" if warn else ""
        if self.property("tone") != tone:
            self.setProperty("tone", tone)
            self.style().unpolish(self)
            self.style().polish(self)
        self.setToolTip(text)
        self._fit()

    def clear(self) -> None:
        self.show_text("")

    def _fit(self) -> None:
        text = one_paragraph(self.full_text) if self.lines == 1 or "\n" in self.full_text else self.full_text
        width = max(self.width() - 8, 40)
        fm = self.fontMetrics()
        room = width * self.lines - fm.averageCharWidth() * 3 * self.lines  # wrapping wastes line ends
        if fm.horizontalAdvance(text) > room or text.count("\n") >= self.lines:
            text = fm.elidedText(text.replace("\n", " · "), QtCore.Qt.ElideRight, int(room))
        super().setText(text)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit()
