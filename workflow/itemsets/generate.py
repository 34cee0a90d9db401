"""Regenerate the pinned evaluation sets: the full mirror set and the default sample drawn from it.

Usage: CULTEVAL_DATA_MIRROR=/abs/path/to/mirror python workflow/itemsets/generate.py [--budget-min 12]

1. ``mirror/<task>.txt``: every default item (params.yaml's countries, subsets and contexts) the
   offline data mirror holds, BLEnD's first 50 questions per country: the set
   ``workflow/overlays/full-mirror.yaml`` evaluates.
2. ``costs.csv``: per (model, task, strategy, item group) of that set, the prompts, prompt
   tokens and sampled answers it brings (``culteval.costmodel.group_costs``: the prompts as
   ``culteval render`` renders them, encoded by each default model).
3. ``<task>.txt``: the default run's sample: per (task, stratum) the same seeded share of the
   groups, every map item and every GlobalOpinionQA question with distributions for both
   countries (CAD and nCAD rest on them), the share the largest whose predicted inference wall
   time on ``--cores`` one-thread slots fits ``--budget-min`` (rates fitted on
   ``calibration.csv``). ``plan.csv``: the predicted seconds of every default job.

Bump VERSION when the sets change on purpose: results from different versions are not comparable.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

from culteval import costmodel, tasks
from culteval.acquire import acquire_dataset, resolve_model_file
from culteval.config import ROOT, culture_cfg, culture_keys, data_mirror, load_params
from culteval.io import atomic_path, write_csv

VERSION = "4"
HERE = ROOT / "workflow" / "itemsets"
SEED = 20251205
FULL_BLEND_PER_COUNTRY = 50  # the earlier default's BLEnD share: 50 of 500 questions per country
WHOLE = ("cultural_map",)  # 14 items: all of them, the map needs every one
KEEP = {"global_opinions": ("both",)}  # CAD / nCAD need both countries' distributions


def full_groups(cfg: dict, raw: Path) -> dict[str, pd.DataFrame]:
    """The full mirror set's items per task (BLEnD: its first questions per country)."""
    cfg = {**cfg, "tasks": {**cfg["tasks"], "blend": {**cfg["tasks"]["blend"], "itemset": None,
                                                        "limit": FULL_BLEND_PER_COUNTRY}}}
    items = {}
    for task, df in costmodel.full_items(cfg, raw).items():
        if task == "blend":  # full_items lifts limits: apply BLEnD's here
            keep = sorted({g for _, part in df.groupby("country", sort=True)
                           for g in list(dict.fromkeys(part["group_id"]))[:FULL_BLEND_PER_COUNTRY]})
            df = df[df["group_id"].isin(keep)]
        items[task] = df
    return items


def write_list(path: Path, task: str, groups: list[str], note: str, sample: str | None = None) -> None:
    header = (f"# culteval pinned evaluation set: {task}, version {VERSION}\n"
              f"# {len(groups)} groups (questions / stories / map items), one group_id a line;\n"
              f"# {note} (workflow/itemsets/README.md)\n"
              + (f"{tasks.SAMPLE_NOTE}{sample}\n" if sample else ""))
    with atomic_path(path) as tmp:
        tmp.write_text(header + "".join(k + "\n" for k in sorted(groups)), encoding="utf-8")


def default_plan(costs: pd.DataFrame, budget_min: float, cores: int):
    calibration = pd.read_csv(HERE / "calibration.csv", comment="#")
    rates = costmodel.fit_rates(calibration, seconds=costmodel.CALIBRATION_SECONDS)
    return (*costmodel.plan(costs, rates, budget_s=budget_min * 60, cores=cores, seed=SEED,
                            whole=WHOLE, keep=KEEP), rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-min", type=float, default=12.0,
                    help="predicted inference wall time of the default run, minutes (default 12)")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    mirror = data_mirror()
    if mirror is None:
        sys.exit("set CULTEVAL_DATA_MIRROR to the offline data mirror")
    params = load_params(ROOT / "params.yaml")
    cfg = culture_cfg(params, culture_keys(params)[0])
    with tempfile.TemporaryDirectory() as raw:
        for name, spec in cfg["datasets"].items():
            acquire_dataset(name, spec, Path(raw) / name, mirror)
        items = full_groups(cfg, Path(raw))
        models = {m: resolve_model_file(m, spec) for m, spec in sorted(cfg["models"].items())}
        costs = costmodel.group_costs(cfg, items, models)
    write_csv(costs, HERE / "costs.csv")
    (HERE / "mirror").mkdir(exist_ok=True)
    for task, df in items.items():
        write_list(HERE / "mirror" / f"{task}.txt", task, list(dict.fromkeys(df["group_id"])),
                   "every default item of the offline data mirror (BLEnD: 50 questions per country; "
                   "INDICA: its region-agnostic and region-anchored questions)")
    fraction, groups, jobs, rates = default_plan(costs, args.budget_min, args.cores)
    for task, ids in groups.items():
        n_full = items[task]["group_id"].nunique()
        write_list(HERE / f"{task}.txt", task, ids,
                   f"the default run's sample of mirror/{task}.txt: seed {SEED}, share {fraction:.2f} "
                   f"per stratum, budget {args.budget_min:g} min on {args.cores} cores",
                   sample=None if len(ids) == n_full else
                   f"{len(ids)} of the {n_full} groups of mirror/{task}.txt")
    write_csv(jobs, HERE / "plan.csv")
    full = costmodel.job_seconds(costs, rates)
    print(f"share {fraction:.2f}: default set {sum(map(len, groups.values()))} groups, predicted "
          f"inference {costmodel.makespan(jobs['seconds'], args.cores) / 60:.1f} min on {args.cores} cores; "
          f"full mirror set {costs.groupby('task')['group_id'].nunique().sum()} groups, "
          f"{costmodel.makespan(full['seconds'], args.cores) / 60:.1f} min")


if __name__ == "__main__":
    main()
