"""Replay benchmarks: `rig replay --verify` speed on a 60-minute session (goal: >= 1000x real time), and
the speed of a --fast replay through the live runner.

    python benchmarks/bench_replay.py                  # 60-minute session, 3 verify runs
    python benchmarks/bench_replay.py --minutes 10 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rig import api
from rig.replay.live import ReplayOptions, replay_session
from rig.replay.verify import verify_session

REPO = Path(__file__).resolve().parent.parent
GOAL_X = 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0, help="simulated session length")
    ap.add_argument("--repeat", type=int, default=3, help="verify runs (the median is reported)")
    ap.add_argument("--no-live", action="store_true", help="skip the --fast live replay")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        protocol = api.modify(api.load_protocol(REPO / "protocols" / "train1_task.yaml"),
                              end={"max_trials": None, "max_duration_s": args.minutes * 60})
        t0 = time.perf_counter()
        path = api.run(protocol, animal="bench", seed=1, fast=True, data_dir=Path(tmp))
        made = time.perf_counter() - t0
        s = api.open_session(path)
        session_s = float(s.frames["t"][-1])
        print(f"session: {session_s:.0f} s, {len(s.frames)} iterations, {len(s.ball)} ball samples, "
              f"{len(s.events)} events (simulated in {made:.1f} s)")

        walls, cpus = [], []
        for k in range(args.repeat):
            c0 = time.process_time()
            report = verify_session(path)
            cpus.append(time.process_time() - c0)
            if not report.ok:
                raise SystemExit(f"verify failed: {report.first}")
            walls.append(report.elapsed_s)
            # CPU time too: on a shared machine the wall time also measures the other processes.
            print(f"verify run {k + 1}: {report.elapsed_s:.2f} s wall = {report.speed:.0f}x real time "
                  f"({cpus[-1]:.2f} s CPU)")
        median = statistics.median(walls)
        x = session_s / median
        print(f"verify: median {median:.2f} s wall for {session_s / 60:.0f} min = {x:.0f}x real time "
              f"({'meets' if x >= GOAL_X else 'MISSES'} the {GOAL_X:.0f}x goal); "
              f"{median / len(s.frames) * 1e6:.1f} us per iteration; by CPU time "
              f"{session_s / statistics.median(cpus):.0f}x")

        if not args.no_live:
            t0 = time.perf_counter()
            result = replay_session(path, ReplayOptions(fast=True, data_dir=Path(tmp) / "replays"))
            wall = time.perf_counter() - t0
            same = all((result.path / n).read_bytes() == (path / n).read_bytes()
                       for n in ("frames.bin", "events.jsonl", "commands.jsonl"))
            print(f"live --fast replay: {wall:.2f} s = {session_s / wall:.0f}x real time; "
                  f"frames/events/commands identical to the original: {same}")


if __name__ == "__main__":
    main()
