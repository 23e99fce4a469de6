"""Mesoscope link benchmark: frame-message latency and frame-time alignment against the emulator's truth.

The emulator runs in its own process on 127.0.0.1 with timing jitter, a clock offset, lost frame messages
and lost TTL edges. Per rate it reports:
- latency: rig receipt - frame edge (both on this host's perf_counter), p50 / p99 / max, in ms;
- alignment: the frame table's time for each frame vs the emulator's true edge time, in ms: frames seen on
  at least one path, those whose TTL edge was lost (time from the clock fit), and those lost on both paths
  (time interpolated, so off by the frame jitter); frames given the wrong number or missing.
Goal (issue 5): alignment error below 1 ms with no frame misassigned, at 3 Hz and at 60 Hz.
Then (issue 11) the bounded decoders' cost per message, valid and worst-case hostile, in microseconds.

    python benchmarks/bench_mesoscope.py                   # 3 Hz for 30 s and 60 Hz for 30 s
    python benchmarks/bench_mesoscope.py --seconds 10
"""

from __future__ import annotations

import argparse
import json
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rig.mesoscope.link import MesoscopeLink, frames_to_array
from rig.mesoscope.messages import MAX_MESSAGE_BYTES, FrameMsg, MessageError, decode_stream, encode
from rig.sync.reconcile import reconcile, sync_report

CLOCK_OFFSET_S = -1000.0  # mesoscope clock = host clock + this


def start_emulator(truth: Path, rate: float, frames: int, jitter_ms: float) -> tuple[subprocess.Popen[str], dict]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig.mesoscope.emulator", "--cmd", "tcp://127.0.0.1:0", "--frames",
         "tcp://127.0.0.1:0", "--truth", str(truth), "--rate", str(rate), "--max-frames", str(frames),
         "--jitter-ms", str(jitter_ms), "--drop-every", "11", "--ttl-drop-every", "7",
         "--clock-offset", str(CLOCK_OFFSET_S), "--seed", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout=20):
        proc.kill()
        raise RuntimeError("emulator did not start within 20 s")
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"emulator said {line!r}: {proc.stderr.read()}")
    return proc, json.loads(line[6:])


def run_rate(rate: float, seconds: float, workdir: Path) -> dict:
    n = max(10, int(rate * seconds))
    jitter_ms = min(0.5, 1e3 / rate / 7)
    truth_file = workdir / f"truth-{rate:g}.jsonl"
    proc, ready = start_emulator(truth_file, rate, n, jitter_ms)
    try:
        with MesoscopeLink(ready["cmd"], ready["frames"], ping_interval_s=1.0) as link:
            link.start("bench_2024-01-01_001")
            link.wait_for_frames(3, rate, timeout_s=10 + 3 / rate)
            frames: list[FrameMsg] = []
            deadline = time.perf_counter() + n / rate + 10
            while time.perf_counter() < deadline:
                frames += link.poll()  # also pings every second, as in a session
                stop = link.acquisition_stop
                if stop is not None:
                    break
                time.sleep(0.002)
            time.sleep(0.1)
            frames += link.poll()
            ping_fit = link.clock_fit()
    finally:
        proc.terminate()
        proc.wait(10)
    truth = [json.loads(x) for x in truth_file.read_text().splitlines()]
    t_true = {(r["acq"], r["frame"]): r["t"] for r in truth}
    ttl = np.array([r["t"] for r in truth if r["ttl"]])

    latency = np.array([f.t_receive - (f.t_meso - CLOCK_OFFSET_S) for f in frames]) * 1e3
    t0 = time.perf_counter()
    table = reconcile(ttl, frames_to_array(frames), prior=ping_fit)
    reconcile_ms = (time.perf_counter() - t0) * 1e3
    rows = table.rows
    err_seen, err_no_ttl, err_both, wrong = [], [], [], 0
    for r in rows:
        key = (int(r["bridge_acquisition"]), int(r["scanimage_frame"]))
        if key not in t_true:
            wrong += 1
            continue
        e = abs(float(r["time"]) - t_true[key]) * 1e3
        if r["missing_ttl"] and r["missing_msg"]:
            err_both.append(e)  # no data at all on this frame: its time is interpolated from its neighbours
            continue
        err_seen.append(e)
        if r["missing_ttl"]:
            err_no_ttl.append(e)
        elif e > 1e-6:
            wrong += 1  # a TTL edge given to a frame it does not belong to
    report = sync_report(table, ping_fit)
    return {
        "rate_hz": rate, "frames_emulated": len(truth), "frames_in_table": len(rows),
        "frames_missing_from_table": len(set(t_true) - {(int(r["bridge_acquisition"]), int(r["scanimage_frame"]))
                                                          for r in rows}),
        "frames_misassigned": wrong, "messages_received": len(frames),
        "ttl_lost": sum(not r["ttl"] for r in truth), "messages_lost": sum(r["msgs"] == 0 for r in truth),
        "latency_ms": {"p50": float(np.percentile(latency, 50)), "p99": float(np.percentile(latency, 99)),
                       "max": float(latency.max())},
        "alignment_error_ms": {
            "max_seen_on_a_path": max(err_seen, default=0.0),
            "max_ttl_lost_msg_seen": max(err_no_ttl, default=0.0),
            "max_lost_on_both_paths": max(err_both, default=0.0), "n_lost_on_both_paths": len(err_both)},
        "jitter_ms": jitter_ms, "clock_fit": table.fits[1].as_dict(), "ping_fit": ping_fit.as_dict(),
        "flag_counts": report["flag_counts"], "reconcile_ms": reconcile_ms,
    }


def decoder_costs(repeat: int = 200) -> dict:
    """Microseconds per decode_stream call (median of `repeat`): a valid frame, and the worst refusals."""
    frame = FrameMsg(instance="abc", seq=1, t_bridge=1.0, acquisition=1, frame=1, plane=0, volume=0, t_meso=2.0)
    good = encode(frame)
    cases = {
        "valid frame": good,
        "64 KiB of [": b"[" * (MAX_MESSAGE_BYTES - 1),
        "64 KiB string": b'{"v": 1, "type": "frame", "x": "' + b"a" * (MAX_MESSAGE_BYTES - 40) + b'"}',
        "5000-digit int": good.replace(b'"frame":1', b'"frame":' + b"9" * 5000),
        "NaN time": good.replace(b'"t_meso":2.0', b'"t_meso":NaN'),
        "over 64 KiB": b" " * (MAX_MESSAGE_BYTES + 1),
    }
    out = {}
    for name, data in cases.items():
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            try:
                decode_stream(data)
            except MessageError:
                pass
            times.append(time.perf_counter() - t0)
        out[name] = round(float(np.median(times)) * 1e6, 1)
    return {"decode_us": out}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="acquisition length per rate")
    p.add_argument("--rates", type=float, nargs="+", default=[3.0, 60.0])
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        for rate in a.rates:
            print(json.dumps(run_rate(rate, a.seconds, Path(d))), flush=True)
    print(json.dumps(decoder_costs()), flush=True)


if __name__ == "__main__":
    main()
