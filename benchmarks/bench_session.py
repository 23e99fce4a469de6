"""Core benchmarks: simulated speed-up of --fast sessions, and the real-time loop's per-iteration work.

    python benchmarks/bench_session.py                 # 60-minute fast session + 10-minute real-time run
    python benchmarks/bench_session.py --realtime-s 60 # a shorter real-time run
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from rig import api

REPO = Path(__file__).resolve().parent.parent


def fast_speedup(minutes: float, data: Path) -> dict:
    protocol = api.modify(api.load_protocol(REPO / "protocols" / "train1_task.yaml"),
                          end={"max_trials": None, "max_duration_s": minutes * 60})
    t0 = time.perf_counter()
    path = api.run(protocol, animal="bench", seed=1, fast=True, data_dir=data)
    wall = time.perf_counter() - t0
    info = api.info(path)
    return {"simulated_s": info["duration_s"], "wall_s": wall, "speedup": info["duration_s"] / wall,
            "trials": info["trials"], "iterations": len(api.open_session(path).frames)}


def realtime_loop(seconds: float, data: Path, priority: str) -> dict:
    config = api.load_config(REPO / "config" / "sim.yaml").model_copy(update={"loop_priority": priority})
    path = api.run(REPO / "protocols" / "train1_task.yaml", config, animal="bench", seed=2, fast=False,
                   duration_s=seconds, max_trials=100_000, data_dir=data)
    s = api.open_session(path)
    work_ms = s.timing["work_s"] * 1e3
    t = s.frames["t"]
    gaps = np.diff(t)
    period = 1 / s.header.frame_rate_hz
    return {
        "priority": (s.footer or {}).get("summary", {}).get("loop_priority"),
        "seconds": seconds,
        "iterations": len(t),
        "work_ms_p50": float(np.percentile(work_ms, 50)),
        "work_ms_p99": float(np.percentile(work_ms, 99)),
        "work_ms_max": float(work_ms.max()),
        "missed_iterations": int(np.sum(np.round(gaps / period) - 1)),
        "interval_ms_p99": float(np.percentile(gaps, 99) * 1e3),
        "interval_ms_max": float(gaps.max() * 1e3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=60.0, help="simulated length of the fast session")
    ap.add_argument("--realtime-s", type=float, default=600.0, help="length of the real-time run (0: skip)")
    ap.add_argument("--priority", choices=("normal", "high", "realtime"), default="normal",
                    help="the real-time run's loop_priority (high/realtime need root or CAP_SYS_NICE)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = fast_speedup(args.minutes, Path(tmp) / "fast")
        print(f"fast: {r['simulated_s']:.0f} s simulated ({r['iterations']} iterations, {r['trials']} trials) "
              f"in {r['wall_s']:.2f} s wall = {r['speedup']:.0f}x real time")
        if args.realtime_s > 0:
            r = realtime_loop(args.realtime_s, Path(tmp) / "rt", args.priority)
            print(f"real-time ({r['priority']}): {r['iterations']} iterations in {r['seconds']:.0f} s; "
                  "work per iteration "
                  f"p50 {r['work_ms_p50']:.3f} ms, p99 {r['work_ms_p99']:.3f} ms, max {r['work_ms_max']:.2f} ms; "
                  f"frame interval p99 {r['interval_ms_p99']:.2f} ms, max {r['interval_ms_max']:.2f} ms; "
                  f"missed iterations {r['missed_iterations']}")


if __name__ == "__main__":
    main()
