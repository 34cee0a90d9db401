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

import pandas as pd

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


def compare(rerun: pd.DataFrame, published: pd.DataFrame,
            tolerances: dict[str, float | None] = TOLERANCES, items: int = ITEMS,
            stats: dict | None = None) -> list[str]:
    """Every difference beyond tolerance, one readable line each (empty: the rerun agrees).

    Rows are matched on ``culture`` too when either summary has it (summaries written before
    runs had several cultures lack the column: both must then lack it)."""
    keys = ["culture", *KEYS] if "culture" in rerun.columns or "culture" in published.columns else KEYS
    for name, df in (("rerun", rerun), ("published", published)):
        missing = [c for c in [*keys, *tolerances] if c not in df.columns]
        if missing:
            raise ValueError(f"{name} summary lacks columns {missing}")
        dup = df.duplicated(keys)
        if dup.any():
            raise ValueError(f"{name} summary repeats rows {df.loc[dup, keys].head(3).to_dict('records')}")
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
