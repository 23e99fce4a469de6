"""Screenshots for the docs, under a private Xvfb: `python -m gui.screenshots [--out docs/screenshots]`.

main_window.png: the control app during a real-time simulated session (a real runner process), after a
manual reward. replay_viewer.png: a longer simulated session (run on the virtual clock) in the replay
viewer, seeked near its end.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PyQt5 import QtWidgets

from gui.testing import qt_display

REPO = Path(__file__).resolve().parent.parent


def _spin(app: QtWidgets.QApplication, seconds: float, until: Callable[[], bool] | None = None) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        if until is not None and until():
            return
        time.sleep(0.01)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    p.add_argument("--live-seconds", type=float, default=75.0, help="how long the live session runs before the shot")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with qt_display(1920, 1200), tempfile.TemporaryDirectory() as tmp:
        from rig import api

        data, locks = Path(tmp) / "data", Path(tmp) / "locks"
        # Some history for the animal, so the setup panel shows it.
        for k in range(3):
            api.run(REPO / "protocols" / "train1_task.yaml", fast=True, max_trials=30 + 10 * k, data_dir=data,
                    animal="M042", seed=k + 1)
        replay_session = api.run(REPO / "protocols" / "train1_task.yaml", fast=True, max_trials=80, data_dir=data,
                                 animal="M017", seed=7)

        from gui.app import make_app, open_main_window
        from gui.replay_viewer import ReplayWindow

        app = make_app()
        win = open_main_window(REPO / "config" / "sim.yaml", data, locks)
        win.resize(1800, 1100)
        win.show()
        sp = win.setup_panel
        sp.animal.setEditText("M042")
        sp.set_protocol(REPO / "protocols" / "demo.yaml")
        sp.experimenter.setText("A. Researcher")
        sp.notes.setPlainText("screenshot session (simulated rig)")
        _spin(app, 0.5)
        win.check_rig()
        _spin(app, 30, until=lambda: not win.checks.running)
        win.start_session()
        _spin(app, 30, until=lambda: win.link is not None and win.link.live is not None)
        _spin(app, args.live_seconds / 2)
        win.controls.reward.click()
        _spin(app, args.live_seconds / 2)
        win.grab().save(str(args.out / "main_window.png"))
        win.controls.stop.click()
        win.controls.stop.click()
        _spin(app, 10, until=lambda: win.link is not None and win.link.finished is not None)
        _spin(app, 2)
        win.close()

        rw = ReplayWindow(replay_session)
        rw.resize(1800, 1100)
        rw.show()
        rw.set_speed(5.0)
        rw.seek(rw.t_end - 45.0)
        rw.play(True)
        _spin(app, 2.0)
        rw.play(False)
        _spin(app, 0.3)
        rw.grab().save(str(args.out / "replay_viewer.png"))
        rw.close()
    print(args.out / "main_window.png")
    print(args.out / "replay_viewer.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
