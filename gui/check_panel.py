"""Pre-session checks in the window: `rig check --config C --json` in a QProcess (the GUI never waits on
devices), each result listed pass/fail with its message."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from PyQt5 import QtCore, QtGui, QtWidgets

from gui import style
from gui.text import Message

CHECK_SECONDS = 2.0  # how long each input is watched
CHECK_TIMEOUT_MS = 60_000


@dataclass(frozen=True)
class CheckLine:
    name: str
    ok: bool
    message: str


def parse_check_output(stdout: str, stderr: str, exit_code: int) -> tuple[bool, list[CheckLine], str]:
    """(all passed, results, summary) from `rig check --json`'s output. Exit 2 (bad config) has no JSON:
    its stderr says what is wrong and where."""
    text = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    try:
        report = json.loads(text) if text else None
    except json.JSONDecodeError:
        report = None
    if not isinstance(report, dict) or not isinstance(report.get("results"), list):
        why = (stderr.strip() or stdout.strip() or "no output").splitlines()[-5:]
        return False, [], f"rig check failed (exit code {exit_code}): " + " / ".join(why)
    lines = [CheckLine(str(r.get("name", "?")), bool(r.get("ok")), str(r.get("message", "")))
             for r in report["results"]]
    failed = sum(not c.ok for c in lines)
    ok = bool(report.get("ok")) and exit_code == 0
    summary = "all checks passed" if ok else f"{failed} of {len(lines)} check(s) failed"
    return ok, lines, summary


class CheckPanel(QtWidgets.QGroupBox):
    finished = QtCore.pyqtSignal(bool)  # all passed

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Pre-session checks", parent)
        lay = QtWidgets.QVBoxLayout(self)
        row = QtWidgets.QHBoxLayout()
        self.button = QtWidgets.QPushButton("Check rig")
        self.button.setToolTip("rig check: driver self-tests, encoder, lick line, valve, frame clock, cue")
        self.summary = Message(2)
        self.summary.show_text("not checked yet")
        row.addWidget(self.button)
        row.addWidget(self.summary, 1)
        lay.addLayout(row)
        self.list = QtWidgets.QListWidget()
        self.list.setMaximumHeight(96)
        self.list.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        self.list.setWordWrap(True)
        lay.addWidget(self.list)
        self.results: list[CheckLine] = []
        self.ok: bool | None = None
        self._proc: QtCore.QProcess | None = None
        self._config: Path | None = None
        self._deadline = QtCore.QTimer(self)
        self._deadline.setSingleShot(True)
        self._deadline.timeout.connect(self._timed_out)

    @property
    def running(self) -> bool:
        return self._proc is not None

    def reset(self, config: str) -> None:
        """Another config was chosen: the results shown were for the previous one."""
        if self._proc is not None:
            self._deadline.stop()
            proc, self._proc = self._proc, None
            proc.kill()
            proc.deleteLater()
            self.button.setEnabled(True)
        self.list.clear()
        self.results, self.ok = [], None
        self._config = Path(config)
        self.summary.show_text(f"not checked yet for {self._config.name}")

    def run(self, config: Path, seconds: float = CHECK_SECONDS) -> None:
        if self._proc is not None:
            return
        self._config = Path(config)
        self.list.clear()
        self.results, self.ok = [], None
        self.summary.show_text(f"checking {self._config.name}…")
        self.button.setEnabled(False)
        proc = QtCore.QProcess(self)
        proc.finished.connect(self._done)
        proc.errorOccurred.connect(self._error)
        self._proc = proc
        proc.start(sys.executable, ["-m", "rig.cli", "check", "--config", str(self._config), "--json",
                                    "--seconds", f"{seconds:g}"])
        self._deadline.start(CHECK_TIMEOUT_MS)

    def _done(self, exit_code: int, _status: QtCore.QProcess.ExitStatus) -> None:
        proc = self._proc
        if proc is None or proc is not self.sender():
            return
        out = bytes(proc.readAllStandardOutput()).decode(errors="replace")
        err = bytes(proc.readAllStandardError()).decode(errors="replace")
        self._finish(*parse_check_output(out, err, exit_code))

    def _error(self, error: QtCore.QProcess.ProcessError) -> None:
        if error == QtCore.QProcess.FailedToStart and self._proc is not None:
            self._finish(False, [], f"rig check could not start: {self._proc.errorString()}")

    def _timed_out(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._finish(False, [], f"rig check gave no answer within {CHECK_TIMEOUT_MS // 1000} s")

    def _finish(self, ok: bool, lines: list[CheckLine], summary: str) -> None:
        self._deadline.stop()
        if self._proc is not None:
            self._proc.deleteLater()
            self._proc = None
        self.results, self.ok = lines, ok
        for c in lines:
            item = QtWidgets.QListWidgetItem(f"{'✔' if c.ok else '✖'} {c.name}: {c.message}")
            item.setForeground(QtGui.QBrush(QtGui.QColor(style.OK if c.ok else style.FAULT)))
            self.list.addItem(item)
        name = self._config.name if self._config is not None else "?"
        self.summary.show_text(f"{summary} for {name} ({time.strftime('%H:%M:%S')})", ok=ok, error=not ok)
        self.button.setEnabled(True)
        self.finished.emit(ok)
