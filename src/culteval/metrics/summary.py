"""The long summary table (docs/contracts.md: results/metrics/summary.csv) and DVC metrics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from culteval import tasks
from culteval.io import FLOAT_FORMAT, numeric_columns, write_csv
from culteval.metrics import MetricInputs, model_distributions
from culteval.metrics.agreement import agreement_metrics
from culteval.metrics.comparisons import comparison_rows, mixed_rows
from culteval.metrics.flags import flag_column, with_pooled
from culteval.metrics.kinds import BASELINE, FIT, KINDS, MODEL, REFERENCE, with_kind
from culteval.metrics.opinions import BY_CONSTRUCTION
from culteval.metrics.paired import merge, paired_rows, reference_baseline, respondent_rows
from culteval.metrics.robustness import robustness_metrics

COLUMNS = ["culture", "model", "kind", "task", "strategy", "metric", "value", "ci_low", "ci_high", "n_items",
           "flags"]
FLOATS = ("value", "ci_low", "ci_high")
#: the precision of every float the metrics stage writes (docs/contracts.md), summary.csv's
#: ``culteval.io.FLOAT_FORMAT``: enough for any metric, and few enough that the last bits a BLAS
#: kernel or SIMD path rounds differently never reach the bytes
SIGNIFICANT_DIGITS = 10
SORT = ["culture", "model", "task", "strategy", "metric"]
#: the culture of rows about every culture at once (the mixed model across languages)
ALL_CULTURES = "all"


def round_significant(value: float) -> float:
    """``value`` at :data:`SIGNIFICANT_DIGITS` significant digits (NaN and infinities as they are):
    the float summary.csv writes, so a CSV cell, a JSON number and a figure carry the same number."""
    return float(FLOAT_FORMAT % value)


def round_columns(df: pd.DataFrame, columns) -> pd.DataFrame:
    """A copy of ``df`` with the float ``columns`` rounded by :func:`round_significant`."""
    df = df.copy()
    for c in columns:
        df[c] = [round_significant(v) for v in df[c].to_numpy(float)]
    return df


def task_metrics(task: str, items: pd.DataFrame, raw: pd.DataFrame, cfg: dict,
                 inputs: MetricInputs | None = None) -> list[dict]:
    """The rows a task declares (``Task.metrics``) plus robustness and logit-generation agreement
    for one (model, task, strategy) table."""
    declared = tasks.get(task)
    compute = declared.metric_function()
    rows = compute(items, model_distributions(raw, items), raw, cfg, inputs or MetricInputs())
    return (rows + robustness_metrics(raw, cfg, ordered_scale=declared.ordered_scale, items=items)
            + agreement_metrics(raw, cfg))


def metric_items(items: dict[str, pd.DataFrame], cfg: dict) -> dict[str, pd.DataFrame]:
    """Each task's items as its metrics see them (``Task.metric_view``, e.g. national samples only)."""
    out = {}
    for task, table in items.items():
        view = tasks.get(task).metric_view
        out[task] = tasks.get(task).function("metric_view")(table, cfg) if view else table
    return out


def culture_key(cfg: dict) -> str:
    """The culture a one-culture config (or culture view) is about: its ``cultures`` key, else
    the target's language code (hand-made configs without ``cultures``)."""
    if "cultures" in cfg:
        from culteval.config import culture_of

        return culture_of(cfg)
    return str(cfg["target"].get("language") or "target")


def summarize_cultures(per_culture: dict[str, tuple[dict, dict]], cfg: dict,
                       raw_root: str | Path | None = None,
                       machine: dict[str, dict[tuple[str, str], bool]] | None = None) -> pd.DataFrame:
    """The summary of a run over ``cfg.cultures``: ``per_culture`` maps each culture key to its
    (items, raw) as :func:`summarize` takes them; each culture is summarised in its own view of
    the params (``culture_cfg``), its rows keyed by column ``culture``. With several cultures the
    mixed model (and its per-language fallback) is fitted once over all of them (culture
    ``all``), each culture's target-language prompts as their own language. ``machine``: per
    culture, :func:`culteval.pipeline.load_machine_translated` of its prompts (the flags).
    """
    from culteval.config import culture_cfg

    several = len(per_culture) > 1
    frames = [summarize(items, raw, culture_cfg(cfg, key), raw_root, mixed=not several,
                        machine=None if machine is None else machine.get(key, {}))
              for key, (items, raw) in sorted(per_culture.items())]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    if several:
        extra = pd.DataFrame(with_kind(mixed_rows(df, cfg), FIT), columns=COLUMNS[1:]).assign(
            culture=ALL_CULTURES)
        extra["flags"] = [f if isinstance(f, str) else "" for f in extra["flags"]]  # the fit's own (boundary)
        df = pd.concat([df, extra[COLUMNS]], ignore_index=True)
        df["flags"] = with_pooled(df, df["flags"])  # rows about every culture: their inputs' flags
    df["n_items"] = df["n_items"].astype("int64")
    # every number at the precision it is written with (SIGNIFICANT_DIGITS), here at
    # the source: summary.csv, metrics.json, the figures and the report then carry the same values,
    # and no BLAS kernel's last bits reach them
    df = round_columns(df, FLOATS)
    return df.sort_values(SORT, kind="stable").reset_index(drop=True)


def _baseline_row(row: dict, cfg: dict) -> dict:
    """A baseline's row with its kind: the reference respondents' values that hold by construction
    (``opinions.BY_CONSTRUCTION``: compared with themselves) are ``reference`` rows without an
    interval, every other one a ``baseline`` row."""
    if row["model"] == reference_baseline(cfg) and row["metric"] in BY_CONSTRUCTION:
        return {**row, "kind": REFERENCE, "ci_low": float("nan"), "ci_high": float("nan")}
    return {**row, "kind": BASELINE}


def summarize(items: dict[str, pd.DataFrame], raw: dict[tuple[str, str, str], pd.DataFrame], cfg: dict,
              raw_root: str | Path | None = None, *, mixed: bool = True,
              machine: dict[tuple[str, str], bool] | None = None) -> pd.DataFrame:
    """One culture's metrics in the long format ``culture, model, kind, task, strategy, metric, value,
    ci_low, ci_high, n_items, flags`` (``kind``: what the row is, metrics/kinds.py; ``cfg``: a
    one-culture config or culture view).

    ``raw`` maps (model, task, strategy) to raw outputs; ``items`` maps task to its
    items table. Human baselines a task declares (``Task.baselines``; GlobalOpinionQA's
    respondents) are added as ``baseline:*`` models with strategy ``none``; then the
    comparisons (``metrics.comparisons.comparison_rows``): ``group:<group>`` means,
    ``delta:<model>-vs-<base>`` and ``mixed_effects``. ``raw_root`` (the acquired data
    folder holding ``ivs_map/``) enables map distances. ``mixed``: fit the mixed model here
    (False when :func:`summarize_cultures` fits it over several cultures). ``machine``: per
    (task, strategy), whether its prompts show a machine-made translation (metrics/flags.py).
    """
    inputs = MetricInputs(raw_root=Path(raw_root) if raw_root is not None else None)
    items = metric_items(items, cfg)
    rows, scores, baseline_scores = [], {}, {}
    for task in sorted(items):  # rows about the run's reference data (e.g. the map's fit quality)
        if tasks.get(task).reference_rows:
            rows += with_kind(tasks.get(task).function("reference_rows")(items[task], cfg, inputs), REFERENCE)
    for (model, task, strategy) in sorted(raw):
        if task not in items:
            raise KeyError(f"raw outputs for {model}/{task}/{strategy}: no items table for task {task!r}")
        for r in task_metrics(task, items[task], raw[(model, task, strategy)], cfg, inputs):
            rows.append({"model": model, "kind": MODEL, "task": task, "strategy": strategy, **r})
        # per-item scores for the paired (like-for-like) comparisons
        declared = tasks.get(task)
        if declared.item_scores:
            run_dists = model_distributions(raw[(model, task, strategy)], items[task])
            scores[(model, task, strategy)] = declared.function("item_scores")(
                items[task], run_dists, cfg, raw=raw[(model, task, strategy)])
    for task in sorted(items):
        declared = tasks.get(task)
        if declared.baselines is None:
            continue
        for name, dists in sorted(declared.function("baselines")(items[task], cfg).items()):
            if dists:
                for r in declared.metric_function()(items[task], dists, None, cfg, inputs):
                    rows.append(_baseline_row({"model": name, "task": task, "strategy": "none", **r}, cfg))
                if declared.item_scores and name == reference_baseline(cfg):  # models vs respondents
                    baseline_scores[(name, task)] = declared.function("item_scores")(items[task], dists, cfg)
    cols = COLUMNS[1:]
    base = pd.DataFrame(rows, columns=cols)
    paired = paired_rows(scores, cfg) + respondent_rows(scores, baseline_scores, cfg)
    df = pd.DataFrame(rows + merge(comparison_rows(base, cfg, mixed=mixed), paired), columns=cols)
    df["n_items"] = df["n_items"].astype("int64")
    df["flags"] = flag_column(df, cfg, raw_root, machine)  # what each row rests on (metrics/flags.py)
    df.insert(0, "culture", culture_key(cfg))
    return df.sort_values(SORT, kind="stable").reset_index(drop=True)


def write_summary(df: pd.DataFrame, path: str | Path) -> None:
    """summary.csv: sorted, floats at ``SIGNIFICANT_DIGITS`` significant digits
    (``%.10g``), empty cells for missing CIs and flags."""
    df = df if "flags" in df.columns else df.assign(flags="")
    if "culture" not in df.columns:
        raise ValueError(f"{path}: summary rows lack the culture column (summarize adds it)")
    bad = sorted(set(df["kind"].astype(str)) - set(KINDS)) if "kind" in df.columns else ["(no kind column)"]
    if bad:
        raise ValueError(f"{path}: summary rows of unknown kind {bad}; kinds: {KINDS} (metrics/kinds.py)")
    write_csv(df[COLUMNS].sort_values(SORT, kind="stable"), path)


def metrics_json(df: pd.DataFrame) -> dict:
    """DVC metrics: ``{culture: {model: {task: {strategy: {metric: value}}}}}`` (NaN -> None), each
    value at ``SIGNIFICANT_DIGITS`` significant digits, as summary.csv writes it."""
    out: dict = {}
    for r in df.sort_values(SORT).itertuples(index=False):
        v = round_significant(float(r.value))
        (out.setdefault(r.culture, {}).setdefault(r.model, {}).setdefault(r.task, {})
         .setdefault(r.strategy, {}))[r.metric] = None if math.isnan(v) else v
    return out


def read_summary(path: str | Path) -> pd.DataFrame:
    """summary.csv back as a DataFrame with float CIs (empty -> NaN)."""
    df = numeric_columns(pd.read_csv(path), path, ("value", "ci_low", "ci_high", "n_items"))
    for c in ("value", "ci_low", "ci_high"):
        df[c] = df[c].astype(float)
    df["n_items"] = df["n_items"].astype(np.int64)
    df["flags"] = df["flags"].fillna("").astype(str) if "flags" in df.columns else ""
    if "kind" in df.columns:  # summaries written before rows had kinds lack it (verify reads those)
        df["kind"] = df["kind"].astype(str)
    df["culture"] = df["culture"].astype(str)
    return df
