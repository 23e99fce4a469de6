"""Cost of the control app during a live session, and what it does to the runner.

    python benchmarks/bench_gui.py [--minutes 10] [--size 1600x1000] [--no-vr] [--json FILE] [--profile FILE]
    python benchmarks/bench_gui.py --no-app [--minutes 10]   # the same runner alone, for comparison

Starts the app (main window, under a private Xvfb) and, from it, a real runner process: sim rig, 60 Hz
display loop, real time, normal priority, demo protocol (trials and time limits lifted), telemetry at the
runner's defaults (frames batched at 25 Hz, status at 2 Hz). While the app attaches and plots:

- event-loop latency: a 10 ms QTimer measures its own lateness (how long the Qt loop was busy elsewhere);
- CPU of the app and of the runner (utime + stime from /proc), as % of one core;
- the runner's own record from the session folder (`rig info`: missed display frames, period, work);
- the machine's other load over the run (CPU time of every other process, in cores, from /proc/stat),
  so a figure can be read against what else ran: other agents share this machine.

`--no-app` runs the same runner process without the app, so the runner's missed frames can be told apart
from what the machine's other load costs it.

Goals (issue 15): app under 15 % of one core; 0 missed runner frames over 10 minutes; latency p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PROBE_MS = 10


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds spent by all processes on all cores (everything but idle and iowait), from /proc/stat."""
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in cpu[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--size", default="1600x1000", help="window size WxH (default 1600x1000)")
    p.add_argument("--no-vr", action="store_true", help="without the VR preview (to see its share)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--profile", type=Path, help="write a cProfile of the app's process here")
    p.add_argument("--no-app", action="store_true", help="run the runner alone (no app attached)")
    p.add_argument("--gui-nice", type=int, default=None,
                   help="added to the GUI thread's niceness, as `rig gui` does (default: gui.launcher.GUI_NICENESS)")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.no_app:
        return runner_alone(args.minutes, args.json)

    from gui.testing import qt_display

    with qt_display(1920, 1200), tempfile.TemporaryDirectory() as tmp:
        from PyQt5 import QtCore

        from gui.app import make_app
        from gui.launcher import GUI_NICENESS, Spawner, lower_gui_priority
        from gui.main_window import MainWindow
        from rig.datalog.info import session_info
        from rig.datalog.reader import Session

        spawner = Spawner()  # as `rig gui`: the runner keeps the priority this process started with
        gui_nice = lower_gui_priority(GUI_NICENESS if args.gui_nice is None else args.gui_nice)
        app = make_app()
        win = MainWindow(REPO / "config" / "sim.yaml", Path(tmp) / "data", Path(tmp) / "locks", spawner=spawner)
        win.confirm_quit = lambda: True
        win.resize(width, height)
        win.show()
        if args.no_vr:
            win.vr.set_protocol = lambda protocol: None  # type: ignore[method-assign]
        sp = win.setup_panel
        sp.animal.setEditText("bench")
        sp.set_protocol(REPO / "protocols" / "demo.yaml")
        sp.max_trials.setValue(100000)
        sp.duration.setValue(args.minutes * 60 + 120)  # outlives the measurement; stopped below
        win.start_session()
        t_attach = time.monotonic()
        while win.link is None or win.link.live is None:
            app.processEvents()
            time.sleep(0.005)
            if time.monotonic() - t_attach > 60:
                raise SystemExit(f"the session did not start: {win.controls.message.full_text}")
        runner_pid = int(win.link.info["pid"])
        runner_nice = int(Path(f"/proc/{runner_pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
        for _ in range(200):  # let the preview's textures and the first draws settle
            app.processEvents()
            time.sleep(0.01)

        lateness: list[float] = []
        expected = [time.monotonic() + PROBE_MS / 1000]

        def probe() -> None:
            now = time.monotonic()
            lateness.append(now - expected[0])
            expected[0] = now + PROBE_MS / 1000

        timer = QtCore.QTimer()
        timer.setTimerType(QtCore.Qt.PreciseTimer)
        timer.timeout.connect(probe)
        timer.start(PROBE_MS)
        draws0, events0, vr0 = win.plots.draws, win.plots.event_draws, win.vr.renders
        cpu_app0, cpu_run0, busy0, wall0 = sum(os.times()[:2]), proc_cpu_s(runner_pid), machine_busy_s(), \
            time.monotonic()
        load0 = os.getloadavg()
        done = QtCore.QTimer()
        done.setSingleShot(True)
        done.timeout.connect(app.quit)
        done.start(int(args.minutes * 60 * 1000))
        def report() -> None:
            elapsed = time.monotonic() - wall0
            app_pct = 100 * (sum(os.times()[:2]) - cpu_app0) / elapsed
            missed = win.link.counts.missed_display_frames if win.link and win.link.counts else "-"
            print(f"  {elapsed:6.0f} s, app {app_pct:.1f} %, missed frames {missed}, load {os.getloadavg()[0]:.1f}",
                  file=sys.stderr)

        progress = QtCore.QTimer()
        progress.timeout.connect(report)
        progress.start(30_000)
        prof = cProfile.Profile() if args.profile else None
        if prof is not None:
            prof.enable()
        app.exec_()
        if prof is not None:
            prof.disable()
            prof.dump_stats(str(args.profile))
        wall = time.monotonic() - wall0
        cpu_app, cpu_run = sum(os.times()[:2]) - cpu_app0, proc_cpu_s(runner_pid) - cpu_run0
        busy = machine_busy_s() - busy0
        load1 = os.getloadavg()
        timer.stop()
        draws, event_draws, vr_renders = (win.plots.draws - draws0, win.plots.event_draws - events0,
                                          win.vr.renders - vr0)
        session_path = win.session_path
        win.controls.stop.click()
        win.controls.stop.click()
        end = time.monotonic() + 20
        while win.link is not None and win.link.result is None and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)
        win.close()
        assert session_path is not None
        session = Session.open(session_path)
        info = session_info(session)
        t_wall = session.timing["t_wall"]

    lat_ms = np.asarray(lateness) * 1e3
    period_ms = np.diff(t_wall) * 1e3
    others = max(busy - cpu_app - cpu_run, 0.0)
    result = {
        "minutes": args.minutes,
        "window": f"{width}x{height}",
        "vr_preview": not args.no_vr,
        "gui_thread_niceness": gui_nice,
        "runner_niceness": runner_nice,
        "event_loop_latency_ms": {q: round(float(np.percentile(lat_ms, v)), 2)
                                  for q, v in (("p50", 50), ("p99", 99), ("p99.9", 99.9))}
        | {"max": round(float(lat_ms.max()), 2), "samples": len(lat_ms)},
        "app_cpu_percent_of_one_core": round(100 * cpu_app / wall, 1),
        "runner_cpu_percent_of_one_core": round(100 * cpu_run / wall, 1),
        "plot_redraws_per_s": round(draws / wall, 1),
        "event_plot_redraws_per_s": round(event_draws / wall, 2),
        "vr_preview_renders_per_s": round(vr_renders / wall, 2),
        "runner": {
            "missed_display_frames": info.get("missed_display_frames"),
            "iterations": info.get("iterations"),
            "period_ms_p50": round(float(np.percentile(period_ms, 50)), 3),
            "period_ms_p99": round(float(np.percentile(period_ms, 99)), 3),
            "period_ms_max": round(float(period_ms.max()), 3),
            "work_ms_p99": info.get("work_ms_p99"),
        },
        "machine": {
            "cores": os.cpu_count(),
            "other_processes_cores": round(others / wall, 2),  # CPU of everything but the app and the runner
            "loadavg_start": [round(x, 2) for x in load0],
            "loadavg_end": [round(x, 2) for x in load1],
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


def runner_alone(minutes: float, out: Path | None) -> int:
    import subprocess

    from rig.datalog.info import session_info
    from rig.datalog.reader import Session

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "rig.cli.runner_process", "--protocol", str(REPO / "protocols" / "demo.yaml"),
               "--config", str(REPO / "config" / "sim.yaml"), "--animal", "bench", "--data", str(Path(tmp) / "data"),
               "--max-trials", "100000", "--duration", f"{minutes * 60:g}", "--lock-dir", str(Path(tmp) / "locks")]
        busy0, wall0, load0 = machine_busy_s(), time.monotonic(), os.getloadavg()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        wall, busy, load1 = time.monotonic() - wall0, machine_busy_s() - busy0, os.getloadavg()
        folder = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        if proc.returncode != 0 or not folder:
            raise SystemExit(f"the runner failed ({proc.returncode}): {proc.stderr[-2000:]}")
        session = Session.open(folder)
        info = session_info(session)
        runner_cpu = float(session.timing["work_s"].sum())  # its loop work; the process also sleeps and logs
        period_ms = np.diff(session.timing["t_wall"]) * 1e3
    result = {
        "minutes": minutes, "app": False,
        "runner": {"missed_display_frames": info.get("missed_display_frames"), "iterations": info.get("iterations"),
                   "period_ms_p50": round(float(np.percentile(period_ms, 50)), 3),
                   "period_ms_p99": round(float(np.percentile(period_ms, 99)), 3),
                   "period_ms_max": round(float(period_ms.max()), 3), "work_ms_p99": info.get("work_ms_p99")},
        "machine": {"cores": os.cpu_count(), "busy_cores": round(busy / wall, 2),
                    "loop_work_cores": round(runner_cpu / wall, 3),
                    "loadavg_start": [round(x, 2) for x in load0], "loadavg_end": [round(x, 2) for x in load1]},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
