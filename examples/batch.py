"""Script a batch: a naive and an expert simulated mouse through train1, then compare rewards.

    python examples/batch.py [--data DIR] [--trials N]
"""

import argparse
from pathlib import Path

from rig import api

REPO = Path(__file__).resolve().parent.parent

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="data/batch")
ap.add_argument("--trials", type=int, default=60)
args = ap.parse_args()

base = api.load_protocol(REPO / "protocols" / "train1_task.yaml")
short = api.modify(base, end={"max_trials": args.trials, "max_duration_s": None})
config = api.load_config(REPO / "config" / "sim.yaml")

for expertise in (0.0, 1.0):
    cfg = config.model_copy(update={"sim": config.sim.model_copy(update={"expertise": expertise})})
    path = api.run(short, cfg, animal=f"sim-{expertise:.0f}", seed=7, fast=True, data_dir=args.data)
    info = api.info(path)
    print(f"expertise {expertise}: {info['trials']} trials, {info['rewards']} rewards, "
          f"{info['water_ul']:.1f} ul -> {path}")
