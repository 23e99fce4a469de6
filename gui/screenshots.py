"""Screenshots for the docs, under a private Xvfb: `python -m gui.screenshots [--out docs/screenshots]` (about 3 min).

All from real runner processes (sim rig, real time) started by the app:
- animals_day.png: the animal's day at the start of a session: weight against baseline, water today (rig +
  supplement) against the target, a note typed during the session;
- stage_advance.png: a live stage advance (a no-cue protocol whose first stage hands over after 2 trials);
- main_window.png: the same session after a manual reward (the orange diamond in the raster);
- end_of_session.png: the end-of-session summary when it reached its end (FINISHED), with a note after it;
- crashed_runner.png: the next session's runner killed with SIGKILL: CRASHED, the folder's counts, a fault
  that stays until acknowledged, Start ready;
- replay_viewer.png: a longer simulated session (virtual clock) in the replay viewer, near its end.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from gui.testing import qt_display

if TYPE_CHECKING:
    from PyQt5 import QtWidgets

    from gui.main_window import MainWindow

REPO = Path(__file__).resolve().parent.parent
ANIMAL = "M042"


def _spin(app: QtWidgets.QApplication, seconds: float, until: Callable[[], bool] | None = None) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        if until is not None and until():
            return
        time.sleep(0.01)


def _shot(win: MainWindow, out: Path, name: str) -> None:
    win.grab().save(str(out / name))
    print(out / name)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    p.add_argument("--size", default="1600x1000", help="window size WxH")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.size.split("x"))
    with qt_display(1920, 1200), tempfile.TemporaryDirectory() as tmp:
        from rig import api

        data, locks = Path(tmp) / "data", Path(tmp) / "locks"
        for k in range(2):  # earlier sessions of the animal, for its history and today's water
            api.run(REPO / "examples" / "staged_zone_task.yaml", fast=True, max_trials=20 + 10 * k, data_dir=data,
                    animal=ANIMAL, seed=k + 1)
        from rig.lab.subjects import Subject, create_subject

        create_subject(data, Subject(id=ANIMAL, sex="F", strain="C57BL/6J", restricted=True,
                                     water_restriction_start=date.today(), baseline_weight_g=25.0,
                                     daily_water_target_ml=1.0))
        replay_session = api.run(REPO / "protocols" / "train1_task.yaml", fast=True, max_trials=80, data_dir=data,
                                 animal="M017", seed=7)
        protocol = Path(tmp) / "nocue_quick_advance.yaml"
        doc = yaml.safe_load((REPO / "examples" / "staged_zone_task.yaml").read_text())
        # passive hands over after 2 trials; active then shows the learning criterion live; a last stage follows
        passive, active = doc["stages"]
        passive["advance"] = {"after_trials": 2}
        active["advance"] = {"criterion": {"window": 20, "min_trials": 10}}
        doc["stages"] = [passive, active, {"name": "active_on", "reward": active["reward"]}]
        doc["end"]["max_trials"] = 4
        protocol.write_text(yaml.safe_dump(doc, sort_keys=False))

        from gui.app import make_app
        from gui.launcher import Spawner
        from gui.main_window import MainWindow
        from gui.replay_viewer import ReplayWindow
        from gui.session_state import Phase

        app = make_app()
        spawner = Spawner()
        win = MainWindow(REPO / "config" / "sim.yaml", data, locks, spawner=spawner)
        win.confirm_quit = lambda: True
        win.resize(width, height)
        win.show()
        sp = win.setup_panel
        sp.animal.setEditText(ANIMAL)
        sp.set_protocol(protocol)
        sp.experimenter.setText("A. Researcher")
        sp.notes.setPlainText("screenshot session (simulated rig)")
        day = win.day
        lab = day.lab
        assert lab is not None
        lab.add_supplement(ANIMAL, 250.0, datetime.now().replace(hour=8, minute=5))
        day.weight_field.set_text("23.6")
        day.record_weight.click()
        _spin(app, 0.5)

        win.start_session()
        _spin(app, 40, until=lambda: win.link is not None and win.link.live is not None)
        win.tabs.setCurrentWidget(win.tabs.widget(2))
        day.note_edit.setText("drinks well; licking the spout before the zone")
        day.add_note.click()
        _spin(app, 3)
        _shot(win, args.out, "animals_day.png")

        live = win.link.live if win.link is not None else None
        assert live is not None
        _spin(app, 90, until=lambda: bool(live.stages.advances))
        _spin(app, 2.5)
        win.tabs.setCurrentIndex(0)
        _shot(win, args.out, "stage_advance.png")
        win.controls.reward.click()
        _spin(app, 4)
        _shot(win, args.out, "main_window.png")

        _spin(app, 120, until=lambda: win.phase.final)
        _spin(app, 1.0)
        win.summary.note_edit.setText("finished all 4 trials; supplement after weighing")
        win.summary.add_note.click()
        _spin(app, 1.0)
        _shot(win, args.out, "end_of_session.png")

        _spin(app, 10, until=lambda: win.rig_name is not None and not win.attached and win.proc is None)
        sp.set_protocol(REPO / "protocols" / "demo.yaml")
        win.start_session()
        _spin(app, 40, until=lambda: win.link is not None and win.link.live is not None)
        win.controls.reward.click()
        _spin(app, 8)
        assert win.link is not None
        os.kill(int(win.link.info["pid"]), signal.SIGKILL)
        _spin(app, 10, until=lambda: win.phase is Phase.CRASHED)
        _spin(app, 1.0)
        win.tabs.setCurrentIndex(0)
        _shot(win, args.out, "crashed_runner.png")
        win.close()
        spawner.close()

        rw = ReplayWindow(replay_session)
        rw.resize(width, height)
        rw.show()
        rw.set_speed(5.0)
        rw.seek(rw.t_end - 45.0)
        rw.play(True)
        _spin(app, 2.0)
        rw.play(False)
        _spin(app, 0.3)
        rw.grab().save(str(args.out / "replay_viewer.png"))
        print(args.out / "replay_viewer.png")
        rw.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
