"""What each summary row rests on: the ``flags`` column of summary.csv.

Flags (sorted, joined by ``;``, empty when none):

* ``subset``: the task's data are a subset: a ``tasks.<task>.limit`` is set, its item set
  is a sample (a ``# sample:`` line, as the default run's sets have), or an acquired file's
  ``PROVENANCE.json`` under ``raw_root`` carries a subset note.
* ``ncad-assumption``: nCAD's normalisation is the project's assumption.
* ``y002-independence``: the value uses Y002 derived from two choice distributions
  treated as independent (``expected_Y002``/``sampled_Y002`` and every placement).
* ``translated``: the prompt was shown in the target language (strategies other than
  default/demographic); the translations table records whether each string is a
  reviewed or a machine translation.
* ``non-national``: a GlobalOpinionQA number that rests on at least one target
  distribution from a non-national sample (admitted by ``metrics.non_national``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from culteval.metrics.comparisons import ENGLISH_STRATEGIES

TARGET_METRICS = ("sim_target", "sim_target_shared", "cad", "ncad", "alignment")


def subset_tasks(tasks, cfg: dict, raw_root: str | Path | None) -> set[str]:
    """The tasks whose items are a subset (a limit, or a subset note in an acquired file's provenance)."""
    from culteval import tasks as registry

    out = set()
    for task in tasks:
        spec = (cfg.get("tasks") or {}).get(task) or {}
        if spec.get("limit") is not None:
            out.add(task)
        if spec.get("itemset") and registry.itemset_sample_note(spec["itemset"]):
            out.add(task)
        for ds in registry.get(task).datasets if task in registry.registry() else ():
            prov = Path(raw_root) / ds / "PROVENANCE.json" if raw_root is not None else None
            if prov is not None and prov.is_file():
                files = json.loads(prov.read_text(encoding="utf-8")).get("files", {})
                if any((f or {}).get("subset") for f in files.values()):
                    out.add(task)
    return out


def _metric_flags(task: str, strategy: str, metric: str) -> list[str]:
    base = metric.split(":")[0]  # "<metric>:p_sign" rests on what <metric> rests on
    out = []
    if base == "ncad":
        out.append("ncad-assumption")
    if task == "cultural_map" and (base.endswith("Y002") or (base.startswith("map_")
                                                            and base != "map_dist_target_reference")):
        out.append("y002-independence")
    if strategy not in (*ENGLISH_STRATEGIES, "none", "all"):
        out.append("translated")
    return out


def flag_column(df: pd.DataFrame, cfg: dict, raw_root: str | Path | None = None) -> pd.Series:
    """One flags string per row of a long summary table (see the module doc)."""
    subset = subset_tasks(sorted(set(df["task"])), cfg, raw_root)
    go = df[(df["task"] == "global_opinions") & (df["metric"] == "target_non_national") & (df["value"] > 0)]
    non_national = set(zip(go["model"], go["strategy"], strict=True))
    comparisons_nn = bool(len(go))  # group/delta rows pool runs, one of which rests on such a sample
    flags = []
    cols = zip(df["model"], df["task"], df["strategy"], df["metric"], strict=True)
    for model, task, strategy, metric in cols:
        f = _metric_flags(task, strategy, metric)
        if task in subset:
            f.append("subset")
        pooled = comparisons_nn and model.startswith(("group:", "delta:"))
        rests = (model, strategy) in non_national or pooled
        if task == "global_opinions" and rests and metric.split(":")[0] in TARGET_METRICS:
            f.append("non-national")
        flags.append(";".join(sorted(f)))
    return pd.Series(flags, index=df.index, dtype=object)
