"""The long summary table (docs/contracts.md: results/metrics/summary.csv) and DVC metrics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from culteval.io import write_csv
from culteval.metrics import model_distributions, plain_row
from culteval.metrics.accuracy import culturalbench_metrics, normad_metrics
from culteval.metrics.comparisons import alignment, comparison_rows
from culteval.metrics.cultural_map import (
    Projection,
    fit_projection,
    fit_quality,
    fit_quality_rows,
    load_microdata,
    map_metrics,
    published_coordinates,
)
from culteval.metrics.flags import flag_column
from culteval.metrics.opinions import baseline_distributions, national_only, opinion_metrics
from culteval.metrics.paired import item_scores, merge, paired_rows
from culteval.metrics.robustness import robustness_metrics

COLUMNS = ["model", "task", "strategy", "metric", "value", "ci_low", "ci_high", "n_items", "flags"]
MAP_FIT_MODEL = "reference:ivs_map_fit"  # how well the fitted projection reproduces published points
SORT = ["model", "task", "strategy", "metric"]


def map_inputs(cfg: dict, raw_root: str | Path | None) -> tuple[Projection | None, pd.DataFrame | None]:
    """The fitted projection (None without ``cfg.cultural_map.microdata``) and published coordinates."""
    return map_fit(cfg, raw_root)[:2]


def map_fit(cfg: dict, raw_root: str | Path | None
            ) -> tuple[Projection | None, pd.DataFrame | None, list[dict]]:
    """``map_inputs`` plus the projection's fit-quality rows against the published points."""
    cm = cfg.get("cultural_map") or {}
    coords = None
    if raw_root is not None and (Path(raw_root) / "ivs_map").is_dir():
        coords = published_coordinates(Path(raw_root) / "ivs_map", cm.get("target_year"))
    micro = cm.get("microdata")
    if not micro:
        return None, coords, []
    data = load_microdata(micro)
    projection = fit_projection(data)
    return projection, coords, fit_quality_rows(fit_quality(projection, data, coords))


def opinion_rows(items: pd.DataFrame, dists: dict, cfg: dict) -> list[dict]:
    """GlobalOpinionQA: Sim/CAD/nCAD plus Rystrom et al.'s ``alignment`` (Spearman, no CI) when defined."""
    rows = opinion_metrics(items, dists, cfg)
    rho, n = alignment(items, dists, cfg["target"]["country"])
    if not math.isnan(rho):
        rows.append(plain_row("alignment", rho, n))
    return rows


def task_metrics(task: str, items: pd.DataFrame, raw: pd.DataFrame, cfg: dict,
                 projection: Projection | None = None, coords: pd.DataFrame | None = None) -> list[dict]:
    """Task-specific rows plus the robustness rows for one (model, task, strategy) raw table."""
    dists = model_distributions(raw, items)
    if task == "global_opinions":
        rows = opinion_rows(items, dists, cfg)
    elif task == "culturalbench":
        rows = culturalbench_metrics(items, dists, raw, cfg)
    elif task == "normad":
        rows = normad_metrics(items, dists, raw, cfg)
    elif task == "cultural_map":
        rows = map_metrics(items, dists, cfg, projection, coords, raw)
    else:
        raise ValueError(f"unknown task {task!r} in raw outputs")
    return rows + robustness_metrics(raw, task, cfg)


def summarize(items: dict[str, pd.DataFrame], raw: dict[tuple[str, str, str], pd.DataFrame], cfg: dict,
              raw_root: str | Path | None = None) -> pd.DataFrame:
    """All metrics in the long format ``model, task, strategy, metric, value, ci_low, ci_high, n_items``.

    ``raw`` maps (model, task, strategy) to raw outputs; ``items`` maps task to its
    items table. GlobalOpinionQA baselines are added as ``baseline:*`` models with
    strategy ``none``; then the comparisons (``metrics.comparisons.comparison_rows``):
    ``group:<group>`` means, ``delta:<model>-vs-<base>`` and ``mixed_effects``.
    ``raw_root`` (the acquired data folder holding ``ivs_map/``)
    enables map distances.
    """
    projection, coords, fit_rows = map_fit(cfg, raw_root) if "cultural_map" in items else (None, None, [])
    rows = [{"model": MAP_FIT_MODEL, "task": "cultural_map", "strategy": "none", **r} for r in fit_rows]
    scores: dict = {}
    if "global_opinions" in items:  # nationally representative target samples unless admitted
        items = {**items, "global_opinions": national_only(items["global_opinions"], cfg)}
    for (model, task, strategy) in sorted(raw):
        if task not in items:
            raise KeyError(f"raw outputs for {model}/{task}/{strategy}: no items table for task {task!r}")
        for r in task_metrics(task, items[task], raw[(model, task, strategy)], cfg, projection, coords):
            rows.append({"model": model, "task": task, "strategy": strategy, **r})
        # per-item scores for the paired (like-for-like) comparisons
        run_dists = model_distributions(raw[(model, task, strategy)], items[task])
        scores[(model, task, strategy)] = item_scores(task, items[task], run_dists, cfg)
    if "global_opinions" in items:
        for name, dists in sorted(baseline_distributions(items["global_opinions"], cfg).items()):
            if dists:
                for r in opinion_rows(items["global_opinions"], dists, cfg):
                    rows.append({"model": name, "task": "global_opinions", "strategy": "none", **r})
    base = pd.DataFrame(rows, columns=COLUMNS)
    df = pd.DataFrame(rows + merge(comparison_rows(base, cfg), paired_rows(scores, cfg)), columns=COLUMNS)
    df["n_items"] = df["n_items"].astype("int64")
    df["flags"] = flag_column(df, cfg, raw_root)  # what each row rests on (metrics/flags.py)
    return df.sort_values(SORT, kind="stable").reset_index(drop=True)


def write_summary(df: pd.DataFrame, path: str | Path) -> None:
    """summary.csv: sorted, ``%.10g`` floats, empty cells for missing CIs and flags."""
    df = df if "flags" in df.columns else df.assign(flags="")
    write_csv(df[COLUMNS].sort_values(SORT, kind="stable"), path)


def metrics_json(df: pd.DataFrame) -> dict:
    """DVC metrics: ``{model: {task: {strategy: {metric: value}}}}`` (NaN -> None)."""
    out: dict = {}
    for r in df.sort_values(SORT).itertuples(index=False):
        v = float(r.value)
        out.setdefault(r.model, {}).setdefault(r.task, {}).setdefault(r.strategy, {})[r.metric] = (
            None if math.isnan(v) else v)
    return out


def read_summary(path: str | Path) -> pd.DataFrame:
    """summary.csv back as a DataFrame with float CIs (empty -> NaN)."""
    df = pd.read_csv(path)
    for c in ("value", "ci_low", "ci_high"):
        df[c] = df[c].astype(float)
    df["n_items"] = df["n_items"].astype(np.int64)
    df["flags"] = df["flags"].fillna("").astype(str) if "flags" in df.columns else ""
    return df
