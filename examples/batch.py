"""Script a batch: a naive and an expert simulated mouse through train1, then compare rewards.

Run from the repository root:  python examples/batch.py
"""

from rig import api

base = api.load_protocol("protocols/train1_task.yaml")
short = api.modify(base, end={"max_trials": 60, "max_duration_s": None})
config = api.load_config("config/sim.yaml")

for expertise in (0.0, 1.0):
    cfg = config.model_copy(update={"sim": config.sim.model_copy(update={"expertise": expertise})})
    path = api.run(short, cfg, animal=f"sim-{expertise:.0f}", seed=7, fast=True, data_dir="data/batch")
    info = api.info(path)
    print(f"expertise {expertise}: {info['trials']} trials, {info['rewards']} rewards, "
          f"{info['water_ul']:.1f} ul -> {path}")
