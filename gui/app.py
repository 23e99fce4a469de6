"""`rig gui`: the control app (main window), or the replay viewer for one session folder."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from PyQt5 import QtWidgets

from gui import style
from gui.launcher import Spawner, lower_gui_priority

if TYPE_CHECKING:
    from gui.main_window import MainWindow

log = logging.getLogger("gui")


def _keep_running(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """An exception escaping a Qt slot would make PyQt abort the app (and leave the operator blind while the
    session runs on): log it, with its traceback, and carry on."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    log.error("unexpected error in the app (it keeps running): %s",
              "".join(traceback.format_exception(kind, value, tb)))


def make_app(argv: Sequence[str] = ()) -> QtWidgets.QApplication:
    existing = QtWidgets.QApplication.instance()
    app = existing if isinstance(existing, QtWidgets.QApplication) else QtWidgets.QApplication(
        ["corridor-rig", *argv])
    app.setApplicationName("corridor-rig")
    style.apply(app)
    return app


def open_main_window(config: Path, data_dir: Path | None = None, lock_dir: Path | None = None,
                     spawner: Spawner | None = None) -> MainWindow:
    from gui.main_window import MainWindow
    from gui.replay_viewer import ReplayWindow
    from rig.datalog.reader import SessionError

    win = MainWindow(config, data_dir, lock_dir, spawner=spawner)
    replays: list[ReplayWindow] = []

    def open_replay() -> None:
        start = str(win.session_path or win.setup_panel.data_dir or ".")
        path = QtWidgets.QFileDialog.getExistingDirectory(win, "Session folder (DATA/ANIMAL/DATE/NNN)", start)
        if path:
            r = ReplayWindow()
            try:
                r.open(Path(path))
            except (SessionError, OSError) as e:
                QtWidgets.QMessageBox.warning(win, "Cannot replay", f"{path}: {e}")
                return
            replays.append(r)
            r.resize(1400, 900)
            r.show()

    menu = win.menuBar().addMenu("&Session")
    menu.addAction("Open session for &replay…", open_replay)
    menu.addAction("&Quit (the session keeps running)", lambda: None if win.close() else None)
    screen = QtWidgets.QApplication.primaryScreen()
    avail = screen.availableGeometry() if screen is not None else None
    win.resize(min(1600, avail.width()) if avail else 1600, min(1000, avail.height()) if avail else 1000)
    return win


def main(argv: Sequence[str] | None = None) -> int:
    from rig.loading import default_config_path

    p = argparse.ArgumentParser(prog="rig gui", description=__doc__)
    p.add_argument("--config", type=Path, help="rig config YAML (default: config/sim.yaml)")
    p.add_argument("--data", type=Path, help="data directory (default: the config's data_dir)")
    p.add_argument("--lock-dir", type=Path, help="where rig locks live (default: $RIG_LOCK_DIR or the temp dir)")
    p.add_argument("--replay", type=Path, metavar="SESSION", help="open this session folder in the replay viewer")
    args = p.parse_args(argv)
    return run(args.config or default_config_path(),
               args.data, args.lock_dir, args.replay)


def run(config: Path, data_dir: Path | None, lock_dir: Path | None, replay: Path | None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.excepthook = _keep_running
    spawner = Spawner()  # before the GUI thread yields: runners keep the priority the app was started with
    niceness = lower_gui_priority()
    if niceness is not None:
        log.info("the app runs at niceness %d below its runners", niceness)
    app = make_app()
    if replay is not None:
        from gui.replay_viewer import ReplayWindow
        from rig.datalog.reader import SessionError

        try:
            replay_win = ReplayWindow(replay)
        except SessionError as e:
            print(f"rig gui: {e}", file=sys.stderr)
            return 2
        replay_win.resize(1400, 900)
        replay_win.show()
    else:
        win = open_main_window(config, data_dir, lock_dir, spawner)
        win.show()
    try:
        return app.exec_()
    finally:
        spawner.close()


if __name__ == "__main__":
    sys.exit(main())
