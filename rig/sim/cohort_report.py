"""A cohort's numbers (CSV and JSON) and its learning-curve figure (PNG), from rig.sim.cohort's result.

Files written into the cohort folder:
- cohort.csv: one row per mouse and session day (rig.sim.cohort.CohortRow, without the histogram);
- cohort.json: the curriculum, seed, timing, every row, and per group and task day the mean and SEM
  of the lab's lick responses (rewarded, unrewarded, difference) and the mean first-lick histogram;
- cohort.png: per task day and group, the difference of lick responses (rewarded - unrewarded, the lab's
  learning measure), each group's rewarded and unrewarded responses, and the first-lick distribution
  in the rewarded corridor on the first and the last task day.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np

from rig.sim.cohort import CohortResult, CohortRow, row_dict

CSV_NAME, JSON_NAME, PNG_NAME = "cohort.csv", "cohort.json", "cohort.png"
GROUP_COLOURS = {"natural": "#76003b", "grating": "#808080", "none": "#000000"}  # as the lab's figure
_SPARE = ("#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _mean_sem(values: list[float]) -> tuple[float, float, int]:
    v = np.array([x for x in values if not math.isnan(x)])
    if len(v) == 0:
        return math.nan, math.nan, 0
    sem = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return float(v.mean()), sem, len(v)


def summary(result: CohortResult) -> dict[str, list[dict]]:
    """Per group, one entry per task day: mean/SEM/n of rewarded, unrewarded and delta, the protocol,
    and the mean first-lick histogram of the rewarded corridor."""
    out: dict[str, list[dict]] = {}
    for g in result.curriculum.groups:
        rows = [r for r in result.rows if r.group == g.name and r.task_day > 0]
        days = sorted({r.task_day for r in rows})
        entries = []
        for d in days:
            rs = [r for r in rows if r.task_day == d]
            entry: dict = {"task_day": d, "protocol": rs[0].protocol, "day": rs[0].day}
            for key in ("rewarded", "unrewarded", "delta", "first_lick_median_cm", "first_lick_beyond_200"):
                m, s, n = _mean_sem([getattr(r, key) for r in rs])
                entry[key] = {"mean": m, "sem": s, "n": n}
            hists = np.array([r.first_lick_hist for r in rs], dtype=float)
            entry["first_lick_hist"] = np.nanmean(hists, axis=0).tolist() if len(hists) else []
            entries.append(entry)
        out[g.name] = entries
    return out


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_numbers(result: CohortResult) -> tuple[Path, Path]:
    """cohort.csv and cohort.json in the cohort folder."""
    out = result.out
    fields = [k for k in CohortRow.__dataclass_fields__ if k != "first_lick_hist"]

    def write_csv(f) -> None:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for r in result.rows:
            d = row_dict(r)
            d.pop("first_lick_hist")
            w.writerow(d)

    doc = {
        "curriculum": result.curriculum.model_dump(mode="json"),
        "seed": result.seed, "mice_per_group": result.mice, "jobs": result.jobs,
        "wall_s": result.wall_s, "simulated_s": result.simulated_s,
        "measure": {"zone_cm": list(result.curriculum.score.zone_cm),
                    "first_trials": result.curriculum.score.first_trials,
                    "definition": "fraction of the first trials with at least one lick in the zone, per corridor "
                                  "(rewarded, unrewarded); delta = rewarded - unrewarded (rig.sim.score)"},
        "summary": summary(result),
        "rows": [row_dict(r) for r in result.rows],
    }
    csv_path, json_path = out / CSV_NAME, out / JSON_NAME
    _atomic_write(csv_path, write_csv)
    _atomic_write(json_path, lambda f: f.write(json.dumps(doc, indent=1, sort_keys=True) + "\n"))
    return csv_path, json_path


def _colour(name: str, i: int) -> str:
    return GROUP_COLOURS.get(name, _SPARE[i % len(_SPARE)])


def _day_labels(entries: list[dict]) -> list[str]:
    return [f"{e['task_day']}\n(passive)" if "passive" in e["protocol"] else str(e["task_day"]) for e in entries]


def draw(result: CohortResult, path: Path | None = None) -> Path:
    """The learning-curve figure, written atomically (default: cohort.png in the cohort folder)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    path = path if path is not None else result.out / PNG_NAME
    s = summary(result)
    groups = [g.name for g in result.curriculum.groups]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8), dpi=120, gridspec_kw={"width_ratios": [1.2, 1.2, 1, 1]})
    ax_d, ax_r, ax_f0, ax_f1 = axes
    width = 0.6 / max(len(groups), 1)
    for i, g in enumerate(groups):
        e: list[dict] = s[g]
        if not e:
            continue
        c = _colour(g, i)
        x = np.array([d["task_day"] for d in e], dtype=float)
        off = (i - (len(groups) - 1) / 2) * width
        rows = [r for r in result.rows if r.group == g and r.task_day > 0]
        ax_d.scatter([r.task_day + off for r in rows], [r.delta for r in rows], s=10, color=c, alpha=0.3,
                     edgecolor="none")
        ax_d.errorbar(x + off, [d["delta"]["mean"] for d in e], yerr=[d["delta"]["sem"] for d in e], color=c,
                      marker="o", ms=4, lw=1.2, capsize=2, label=f"{g} (n={result.mice})")
        ax_r.errorbar(x + off, [d["rewarded"]["mean"] for d in e], yerr=[d["rewarded"]["sem"] for d in e],
                      color=c, marker="o", ms=3, lw=1.2, capsize=2, label=f"{g}: rewarded")
        ax_r.errorbar(x + off, [d["unrewarded"]["mean"] for d in e], yerr=[d["unrewarded"]["sem"] for d in e],
                      color=c, marker="s", ms=3, lw=1.2, ls="--", capsize=2, mfc="white", label=f"{g}: unrewarded")
        for ax, entry in ((ax_f0, e[0]), (ax_f1, e[-1])):
            h = np.array(entry["first_lick_hist"], dtype=float)
            if len(h):
                centres = (np.arange(len(h)) + 0.5) * (400.0 / len(h)) / 100.0
                ax.plot(centres, h * 100.0, color=c, lw=1.3, label=g)
    labels = _day_labels(next((s[g] for g in groups if s[g]), []))
    for ax in (ax_d, ax_r):
        ax.set_xticks(range(1, len(labels) + 1), labels)
        ax.set_xlabel("task day")
        ax.set_xlim(0.5, len(labels) + 0.5)
        ax.spines[["top", "right"]].set_visible(False)
    ax_d.axhline(0.0, color="#bbbbbb", lw=0.8, zorder=0)
    ax_d.set_ylim(-0.25, 1.02)
    ax_d.set_ylabel("\u0394 lick response in 2-4 m\n(rewarded - unrewarded)")
    ax_d.set_title("learning (the lab's measure)")
    ax_d.legend(frameon=False, fontsize=8, loc="upper left")
    ax_r.set_ylim(0.0, 1.02)
    ax_r.set_ylabel("lick response in 2-4 m\n(fraction of first 200 trials)")
    ax_r.set_title("rewarded (solid) / unrewarded (dashed)")
    first: dict | None = next((s[g][0] for g in groups if s[g]), None)
    last: dict | None = next((s[g][-1] for g in groups if s[g]), None)
    for ax, shown, name in ((ax_f0, first, "first"), (ax_f1, last, "last")):
        ax.axvspan(2.0, 4.0, color="#cfe0ff", alpha=0.5, lw=0, zorder=0)
        ax.set_xlim(0, 4)
        ax.set_xlabel("first-lick position (m)")
        ax.set_ylabel("first licks (% of trials, 10 cm bins)")
        title = f"rewarded corridor, {name} task day"
        if shown is not None:
            title += f" ({shown['task_day']})"
        ax.set_title(title, fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(frameon=False, fontsize=8)
    n_days = result.curriculum.days
    fig.suptitle(
        f"{result.curriculum.name}: {len(groups)} groups x {result.mice} virtual mice, {n_days} days "
        f"(seed {result.seed}; {result.simulated_s / 3600:.0f} h simulated in {result.wall_s / 60:.1f} min "
        f"on {result.jobs} processes)", fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            fig.savefig(f, format="png")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path
