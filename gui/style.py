"""Look of the app: a calm dark theme (easy on the eyes in a dim imaging room), one colour per corridor."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PyQt5.QtWidgets import QApplication

BACKGROUND = "#1b1d21"
PANEL = "#24272d"
TEXT = "#d7dae0"
MUTED = "#8a919c"
ACCENT = "#4fa3f7"
OK = "#5cc98b"
WARN = "#f0b44c"
FAULT = "#ef5f5f"
CORRIDOR_COLOURS = ("#5cc98b", "#e58fd1", "#f0b44c", "#7fb8ff", "#c9a0ff", "#ff9466")
CUE = "#f0b44c"
REWARD = "#4fa3f7"
LICK = "#d7dae0"

STYLESHEET = f"""
QWidget {{ background: {BACKGROUND}; color: {TEXT}; font-size: 10pt; }}
QGroupBox {{ background: {PANEL}; border: 1px solid #33373f; border-radius: 6px; margin-top: 14px;
            padding: 8px 6px 6px 6px; font-weight: bold; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {MUTED}; }}
QLabel {{ background: transparent; }}
QLineEdit, QComboBox, QSpinBox, QDoubleSpinBox, QPlainTextEdit, QListWidget {{
    background: #15171a; border: 1px solid #3a3f48; border-radius: 4px; padding: 3px; }}
QComboBox QAbstractItemView {{ background: #15171a; selection-background-color: {ACCENT}; }}
QPushButton {{ background: #323742; border: 1px solid #434955; border-radius: 5px; padding: 5px 10px; }}
QPushButton:hover {{ background: #3b414e; }}
QPushButton:disabled {{ color: #5d636d; background: #2a2d33; border-color: #33373f; }}
QPushButton#start {{ background: #2f7d4f; border-color: #3c9a63; font-weight: bold; }}
QPushButton#start:disabled {{ background: #2a2d33; }}
QPushButton#stop {{ background: #8a3434; border-color: #a84444; font-weight: bold; }}
QPushButton#stop:disabled {{ background: #2a2d33; }}
QPushButton#reward {{ background: #2c5f8f; border-color: #3a78b0; }}
QPushButton#reward:disabled {{ background: #2a2d33; }}
QLabel#big {{ font-size: 18pt; font-weight: bold; }}
QLabel#bigcaption {{ color: {MUTED}; font-size: 8pt; }}
QLabel#muted {{ color: {MUTED}; }}
QLabel[tone="ok"] {{ color: {OK}; }}
QLabel[tone="warn"] {{ color: {WARN}; }}
QLabel[tone="error"] {{ color: {FAULT}; }}
QLabel#banner {{ color: {MUTED}; padding: 2px 4px; border-radius: 4px; }}
QLabel#banner[tone="error"] {{ background: {FAULT}; color: white; }}
QLineEdit[invalid="true"] {{ border: 1px solid {FAULT}; }}
QTabWidget::pane {{ border: 1px solid #33373f; }}
QTabBar::tab {{ background: #2a2d33; padding: 4px 10px; border: 1px solid #33373f; }}
QTabBar::tab:selected {{ background: {PANEL}; color: {TEXT}; }}
QLabel#state {{ font-size: 11pt; font-weight: bold; padding: 4px 6px; border-radius: 4px; }}
QSlider::groove:horizontal {{ height: 6px; background: #3a3f48; border-radius: 3px; }}
QSlider::handle:horizontal {{ background: {ACCENT}; width: 14px; margin: -5px 0; border-radius: 7px; }}
QStatusBar {{ color: {MUTED}; }}
"""


def corridor_colour(k: int) -> str:
    return CORRIDOR_COLOURS[k % len(CORRIDOR_COLOURS)]


def setup_pyqtgraph() -> None:
    import pyqtgraph as pg

    pg.setConfigOptions(background=BACKGROUND, foreground=TEXT, antialias=False)


def apply(app: QApplication) -> None:
    """Theme a QApplication."""
    app.setStyle("Fusion")
    app.setStyleSheet(STYLESHEET)
    setup_pyqtgraph()
