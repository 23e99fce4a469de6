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
    """A plain-text label of `lines` lines, whatever it is given. It wraps the text itself (a word-wrapping
    QLabel has a height-for-width, which would make the layouts around it grow with its text)."""

    def __init__(self, lines: int = 2, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(QtCore.Qt.PlainText)
        self.setWordWrap(False)
        self.setAlignment(QtCore.Qt.AlignLeft | QtCore.Qt.AlignTop)
        self.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.lines = lines
        self.full_text = ""
        self.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Fixed)
        self.setMinimumWidth(40)
        self.setFixedHeight(self.fontMetrics().lineSpacing() * lines + 4)
        self.setProperty("tone", "")

    def show_text(self, text: str, error: bool = False, ok: bool = False, warn: bool = False) -> None:
        tone = "error" if error else "ok" if ok else "warn" if warn else ""
        if text == self.full_text and tone == self.property("tone"):
            return  # unchanged (status lines are set several times a second)
        self.full_text = text
        if self.property("tone") != tone:
            self.setProperty("tone", tone)
            self.style().unpolish(self)
            self.style().polish(self)
        self.setToolTip(text)
        self._fit()

    def clear(self) -> None:
        self.show_text("")

    def _fit(self) -> None:
        super().setText("\n".join(wrap(self.full_text, self.fontMetrics(), max(self.width() - 6, 40), self.lines)))

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit()


def wrap(text: str, fm: QtGui.QFontMetrics, width: int, lines: int) -> list[str]:
    """Greedy word wrap into at most `lines` lines of `width` pixels; the last one ends in "…" when the
    text does not fit. A text of more lines than fit is joined into one paragraph first."""
    if text.count("\n") >= lines:
        text = one_paragraph(text)
    out: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            candidate = f"{line} {word}" if line else word
            if fm.horizontalAdvance(candidate) <= width or not line:
                line = candidate
            else:
                out.append(line)
                line = word
        out.append(line)
    if len(out) > lines:
        out = out[: lines - 1] + [" ".join(out[lines - 1:])]
    out = [fm.elidedText(x, QtCore.Qt.ElideRight, width) if fm.horizontalAdvance(x) > width else x for x in out]
    return out
