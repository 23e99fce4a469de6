"""Flood the command channel from an authenticated client and measure what the valve really did.

    python benchmarks/bench_valve_flood.py                # 20 s of flooding a real-time simulated session
    python benchmarks/bench_valve_flood.py --seconds 60 --max-open-ms 1000

A real-time demo session runs with its control server; a client holding the session's credential takes
control and sends manual rewards and flush requests (valve_open for longer than allowed, valve_open at the
limit, valve_close) as fast as the channel answers. The simulated valve records every opening exactly as it
happened; the figures are read from it (and checked against valve.jsonl): the longest continuous opening
against max_open_ms, the shortest closed time between openings against min_closed_ms, operator rewards
accepted against the rate limit, and the water given against the session cap.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from drivers.sim import SimValve
from rig.config import ValveSafety
from rig.control.client import CommandClient
from rig.control.credentials import SessionKeys
from rig.control.server import ControlError, ControlServer
from rig.datalog.reader import Session
from rig.loading import load_config, load_protocol
from rig.runner.hooks import OnStart
from rig.runner.loop import Runner
from rig.runner.session import SessionOptions, run_session

REPO = Path(__file__).resolve().parent.parent


def flood(seconds: float, max_open_ms: float, data: Path, burst: int = 100) -> dict[str, Any]:
    config = load_config(REPO / "config" / "sim.yaml")
    safety = ValveSafety(min_closed_ms=100.0, manual_rewards_per_minute=30, max_session_water_ul=1000.0)
    raw = config.model_dump(mode="json")
    raw["drivers"]["valve"]["max_open_ms"] = max_open_ms
    raw["valve_safety"] = safety.model_dump(mode="json")
    config = type(config).model_validate(raw)
    protocol = load_protocol(REPO / "protocols" / "demo.yaml")
    keys = SessionKeys.generate()
    server = ControlServer(keys)
    valves: list[SimValve] = []

    def grab(runner: Runner) -> None:
        assert isinstance(runner.devices.valve, SimValve)
        valves.append(runner.devices.valve)

    opts = SessionOptions(animal="flood", seed=1, duration_s=seconds + 30, data_dir=data)
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(
        run_session(protocol, config, opts, hooks=(server, OnStart(grab)))))
    thread.start()
    sent = {"manual_reward": 0, "valve_open": 0, "valve_close": 0}
    refused = dict.fromkeys(sent, 0)
    with CommandClient(server.commands_endpoint, keys.client, label="flood") as client:
        deadline = time.monotonic() + 15
        while True:
            try:
                client.request("take_control")
                break
            except ControlError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        end = time.monotonic() + seconds
        plan = [("manual_reward", {"volume_ul": 2.5}), ("valve_open", {"close_after_s": max_open_ms / 1000.0}),
                ("manual_reward", {"volume_ul": 50.0}), ("valve_open", {"close_after_s": 3600.0}),
                ("valve_close", {})]
        pending: dict[str, str] = {}
        k = 0
        while time.monotonic() < end:
            for _ in range(burst):  # pipelined: requests go out without waiting for their replies
                action, params = plan[(k + 1) % len(plan)]
                try:
                    rid = client.send(action, **params)
                except ControlError:  # the socket's queue is full: let the replies catch up
                    break
                k += 1
                sent[action] += 1
                pending[rid] = action
            time.sleep(0.01)
            for reply in client.poll_replies():
                action = pending.pop(str(reply.get("id")), "")
                if action and not reply.get("ok"):
                    refused[action] += 1
        drain = time.monotonic() + 10
        while pending and time.monotonic() < drain:
            for reply in client.poll_replies():
                action = pending.pop(str(reply.get("id")), "")
                if action and not reply.get("ok"):
                    refused[action] += 1
            time.sleep(0.01)
        unanswered = len(pending)
        for _ in range(5):  # the stop may queue behind what is left of the flood
            try:
                client.request("stop", timeout_s=5)
                break
            except ControlError as e:
                print(f"  (stop not answered yet: {e})")
    thread.join(60)
    server.close()
    session = Session.open(result[0].path)
    (valve,) = valves
    spans = sorted((o.t_open, o.t_close) for o in valve.openings)
    merged: list[list[float]] = []
    for a, b in spans:  # overlapping or touching openings are one continuous opening
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    longest_ms = max(((b - a) * 1000 for a, b in merged), default=0.0)
    gaps_ms = [(c - b) * 1000 for (_, b), (c, _) in zip(merged, merged[1:], strict=False)]
    manual_t = sorted(float(r["t"]) for r in session.valve if r.get("kind") == "open"
                      and r.get("source") == "manual" and r.get("outcome") != "refused")
    in_a_minute = max((sum(1 for u in manual_t[k:] if u - t0 < 60.0) for k, t0 in enumerate(manual_t)), default=0)
    return {
        "seconds": seconds, "requests": sum(sent.values()), "requests_per_s": sum(sent.values()) / seconds,
        "sent": sent, "refused": refused, "openings": len(merged), "longest_open_ms": longest_ms,
        "max_open_ms": max_open_ms, "shortest_closed_ms": min(gaps_ms, default=float("nan")),
        "min_closed_ms": safety.min_closed_ms, "manual_accepted": len(manual_t), "manual_in_a_minute": in_a_minute,
        "manual_limit": safety.manual_rewards_per_minute, "unanswered": unanswered,
        "water_ul": float(session.footer["summary"]["water_ul"]) if session.footer else float("nan"),
        "water_cap_ul": safety.max_session_water_ul,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--max-open-ms", type=float, default=1000.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = flood(args.seconds, args.max_open_ms, Path(tmp))
    print(f"flood: {r['requests']} requests in {r['seconds']:g} s ({r['requests_per_s']:.0f}/s) from an "
          f"authenticated controlling client")
    print(f"  sent {r['sent']}, refused {r['refused']}")
    print(f"  valve openings {r['openings']}; longest continuous opening {r['longest_open_ms']:.1f} ms "
          f"(max_open_ms {r['max_open_ms']:g}); shortest closed time {r['shortest_closed_ms']:.1f} ms "
          f"(min_closed_ms {r['min_closed_ms']:g})")
    print(f"  operator rewards accepted {r['manual_accepted']}, at most {r['manual_in_a_minute']} in any minute "
          f"(limit {r['manual_limit']:g}/min); unanswered requests {r['unanswered']}; "
          f"water {r['water_ul']:.1f} µl (cap {r['water_cap_ul']:g} µl)")
    ok = (r["longest_open_ms"] <= r["max_open_ms"] + 1e-6 and r["manual_in_a_minute"] <= r["manual_limit"]
          and r["water_ul"] <= r["water_cap_ul"] + 1e-6
          and (r["openings"] < 2 or r["shortest_closed_ms"] >= r["min_closed_ms"] - 1e-6))
    print("  valve limits held" if ok else "  VALVE LIMITS BROKEN")


if __name__ == "__main__":
    main()
