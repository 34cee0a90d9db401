"""Compare a rerun's summary.csv with the published one, within stated per-column tolerances.

Byte identity holds on one llama.cpp build only: floating-point results depend on the CPU's
SIMD kernels (option probabilities move by up to ~2e-3 between builds), and a seeded sampled
answer, or the top option of a distribution, can flip when two options are nearly tied, which
moves a number over n items by up to one item's share, 1/n. So a row's tolerance is the
column's absolute tolerance plus ``items`` items' share of it (``items / n_items``; default 2);
``n_items`` must match exactly, since a different count means different data or filtering, not
different arithmetic. On the build that published the summary, a rerun gives the same bytes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pandas as pd

from culteval.metrics.comparisons import MIXED_MODEL

KEYS = ["model", "task", "strategy", "metric"]
# column -> absolute tolerance (None: must be equal)
TOLERANCES: dict[str, float | None] = {"value": 0.02, "ci_low": 0.05, "ci_high": 0.05, "n_items": None}
ITEMS = 2  # items whose answer may flip between llama.cpp builds (see the module docstring)


def read_checked_csv(path, tolerances: dict[str, float | None] = TOLERANCES) -> pd.DataFrame:
    """A summary.csv with its compared columns as numbers; a malformed cell is named (file, line,
    column, value)."""
    from culteval.io import numeric_columns

    return numeric_columns(pd.read_csv(path), path, tolerances)


def tolerance(tol: float | None, n_items, items: int = ITEMS) -> float | None:
    """A row's tolerance: ``tol`` plus ``items`` items' share of a number over ``n_items`` items."""
    if tol is None:
        return None
    n = 0 if pd.isna(n_items) else int(n_items)
    return tol + (items / n if n > 0 else 0.0)


def _close(a, b, tol: float | None) -> bool:
    if pd.isna(a) and pd.isna(b):
        return True
    if pd.isna(a) or pd.isna(b):
        return False
    return a == b if tol is None else math.isclose(float(a), float(b), rel_tol=0.0, abs_tol=tol)


def _validate(rerun: pd.DataFrame, published: pd.DataFrame, tolerances: dict) -> list[str]:
    """The key columns; a summary lacking a column, or repeating a key, is an error naming it."""
    keys = ["culture", *KEYS] if "culture" in rerun.columns or "culture" in published.columns else KEYS
    for name, df in (("rerun", rerun), ("published", published)):
        missing = [c for c in [*keys, *tolerances] if c not in df.columns]
        if missing:
            raise ValueError(f"{name} summary lacks columns {missing}")
        dup = df.duplicated(keys)
        if dup.any():
            raise ValueError(f"{name} summary repeats rows {df.loc[dup, keys].head(3).to_dict('records')}")
    return keys


def compare(rerun: pd.DataFrame, published: pd.DataFrame,
            tolerances: dict[str, float | None] = TOLERANCES, items: int = ITEMS,
            stats: dict | None = None) -> list[str]:
    """Every difference beyond tolerance, one readable line each (empty: the rerun agrees).

    Rows are matched on ``culture`` too when either summary has it (summaries written before
    runs had several cultures lack the column: both must then lack it)."""
    keys = _validate(rerun, published, tolerances)
    merged = rerun.merge(published, on=keys, how="outer", suffixes=("", "_published"), indicator="side")
    lines = []
    for row in merged.sort_values(keys).itertuples(index=False):
        key = "/".join(str(getattr(row, k)) for k in keys)
        if row.side == "left_only":
            lines.append(f"{key}: only in the rerun")
            continue
        if row.side == "right_only":
            lines.append(f"{key}: missing from the rerun")
            continue
        same = True
        for col, tol in tolerances.items():
            a, b = getattr(row, col), getattr(row, f"{col}_published")
            row_tol = tolerance(tol, row.n_items_published, items)
            if not _close(a, b, row_tol):
                bound = "exact" if row_tol is None else f"tolerance {row_tol:.4g}"
                lines.append(f"{key}: {col} {a} vs published {b} ({bound})")
            same = same and _close(a, b, 0.0 if tol is not None else None)
            if stats is not None and tol is not None and not (pd.isna(a) or pd.isna(b)):
                worst = stats.setdefault("max_abs_diff", {})
                worst[col] = max(worst.get(col, 0.0), abs(float(a) - float(b)))
        if stats is not None:
            stats["rows"] = stats.get("rows", 0) + 1
            stats["identical"] = stats.get("identical", 0) + int(same)
    return lines


# --- A rerun against the published run's record (culteval.runrecord): like with like ---------

MODEL, POOLED, FIXED = "model", "pooled", "fixed"
#: a comparison of one model with the reference respondents rests on that model alone
_RESPONDENT = re.compile(r"^delta:(.+)-vs-baseline:.+$")
#: rows over the set of models: group means and group comparisons, fine-tune deltas (two models),
#: the mixed-effects fit and the correlation across models that stands in for it
_POOLED_PREFIXES = ("group:", "delta:", MIXED_MODEL, "correlation:")
_FIXED_PREFIXES = ("baseline:", "reference:")
_KINDS = {"model": MODEL, "baseline": FIXED, "reference": FIXED, "group": POOLED, "fit": POOLED}


def row_scope(model: str, kind: str | None = None) -> tuple[str, str | None]:
    """What a summary row rests on: ``("model", name)`` for one model's own rows (its comparison
    with the reference respondents included), ``("pooled", None)`` for rows over the set of models,
    ``("fixed", None)`` for rows of no model (baselines, reference values).

    The summary's ``kind`` column decides when it is there (model / baseline / group / fit / comparison /
    reference; a comparison is pooled unless it is one model against the respondents); without it,
    or for a kind not listed, the model name's prefix does."""
    name = str(model)
    respondent = _RESPONDENT.match(name)
    kind = kind if isinstance(kind, str) else None
    if kind in _KINDS:
        scope = _KINDS[kind]
        return (scope, name if scope == MODEL else None)
    if kind == "comparison":
        return (MODEL, respondent.group(1)) if respondent else (POOLED, None)
    if respondent:
        return MODEL, respondent.group(1)
    if name.startswith(_FIXED_PREFIXES):
        return FIXED, None
    if name.startswith(_POOLED_PREFIXES):
        return POOLED, None
    return MODEL, name


# categories of a row, in the order they are reported
COMPARED = "compared"
NEW = "new"
REMOVED = "removed"
SETTINGS = "settings changed"
RECOMPUTED = "recomputed over a different set of models"
RUN_SETTINGS = "run settings changed"


@dataclass
class Outcome:
    """What :func:`check` found: rows per category, differences of the compared ones, and why
    rows were not compared (run-wide and per-model setting changes, added and removed models)."""

    rows: dict[str, list[str]] = field(default_factory=dict)
    diffs: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    run_changes: list[str] = field(default_factory=list)
    model_changes: dict[str, list[str]] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    pooled_same: bool = True
    by_model: dict[str, dict[str, list]] = field(default_factory=dict)  # category -> model -> [row, n]


def _category(scope: str, model: str | None, out: Outcome, published_models: set[str]) -> str:
    if out.run_changes:
        return RUN_SETTINGS
    if scope == FIXED:
        return COMPARED
    if scope == POOLED:
        return COMPARED if out.pooled_same else RECOMPUTED
    if model in out.removed:
        return REMOVED
    if model not in published_models:
        return NEW
    return SETTINGS if model in out.model_changes else COMPARED


def check(rerun: pd.DataFrame, published: pd.DataFrame, current: dict, record: dict,
          tolerances: dict[str, float | None] = TOLERANCES, items: int = ITEMS) -> Outcome:
    """Compare like with like: rows of the published models under the published settings (and
    rows of no model) within the tolerances, pooled rows only over the published set of models;
    the rest is sorted into the other categories, not failed. ``current`` and ``record`` are
    run records (culteval.runrecord) of the rerun and of the published run."""
    from culteval import runrecord

    out = Outcome()
    out.run_changes = runrecord.differences(record["run"], current["run"])
    out.model_changes = runrecord.model_changes(record, current)
    out.added = sorted(set(current["models"]) - set(record["models"]))
    out.removed = sorted(set(record["models"]) - set(current["models"]))
    out.pooled_same = not out.run_changes and record["models"] == current["models"]
    published_models = set(record["models"])
    keys = _validate(rerun, published, tolerances)
    for model in sorted(set(published["model"].astype(str))):
        scope, owner = row_scope(model)
        if scope == MODEL and owner not in published_models:
            raise ValueError(f"published summary has rows of model {owner!r}, which its run record "
                             f"does not list (models: {sorted(published_models)}): republish with "
                             "`make publish`")

    def categories(df: pd.DataFrame) -> pd.Series:
        kinds = df["kind"] if "kind" in df.columns else pd.Series([None] * len(df), index=df.index)
        return pd.Series([_category(*row_scope(m, k), out, published_models)
                          for m, k in zip(df["model"], kinds, strict=True)], index=df.index, dtype=object)

    rerun_cat, published_cat = categories(rerun), categories(published)
    # a row keeps the category of its model: a published model's row missing from the rerun is a
    # difference when compared, a removed model's row is listed as removed
    out.diffs = compare(rerun[rerun_cat == COMPARED], published[published_cat == COMPARED],
                        tolerances, items, out.stats)
    for cat in (NEW, REMOVED, SETTINGS, RECOMPUTED, RUN_SETTINGS):
        rows = pd.concat([rerun[rerun_cat == cat][keys], published[published_cat == cat][keys]])
        rows = rows.drop_duplicates().sort_values(keys)
        if len(rows):
            out.rows[cat] = ["/".join(str(v) for v in r) for r in rows.itertuples(index=False)]
            # per model name, in the order of its first row: the report's counts and examples
            first = {}
            for model, key in zip(rows["model"].astype(str), out.rows[cat], strict=True):
                first.setdefault(model, [key, 0])[1] += 1
            out.by_model[cat] = first
    return out


MODELS_SHOWN = 6  # model names counted per category in the report


def report(out: Outcome, examples: int = 3) -> list[str]:
    """One screen: what was compared, and per other category its count, why, and a few rows."""
    lines = []
    if out.run_changes:
        more = len(out.run_changes) - examples
        lines.append(f"run settings differ from the published run's ({len(out.run_changes)}): "
                     + "; ".join(out.run_changes[:examples]) + (f"; and {more} more" if more > 0 else ""))
    if out.added:
        lines.append(f"models added since the published run: {', '.join(out.added)}")
    if out.removed:
        lines.append(f"models of the published run not in this run: {', '.join(out.removed)}")
    for name, diff in out.model_changes.items():
        lines.append(f"model {name}: settings differ from the published run's: " + "; ".join(diff))
    why = {NEW: "rows of models the published run does not have",
           REMOVED: "rows of published models this run does not have",
           SETTINGS: "rows of published models whose settings changed, not compared",
           RECOMPUTED: "rows pooled over models, not compared",
           RUN_SETTINGS: "the run's settings are not the published ones: no row compared"}
    for cat, rows in out.rows.items():
        models = out.by_model[cat]
        counts = ", ".join(f"{m} {n}" for m, (_, n) in list(models.items())[:MODELS_SHOWN])
        more = f", and {len(models) - MODELS_SHOWN} more" if len(models) > MODELS_SHOWN else ""
        lines.append(f"{cat}: {len(rows)} rows, {why[cat]} ({counts}{more})")
        lines.append("  e.g. " + ", ".join(row for row, _ in list(models.values())[:examples]))
    return lines
