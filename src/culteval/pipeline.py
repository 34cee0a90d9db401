"""Load the pipeline's artifacts back by their contract paths."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from culteval.io import read_parquet


def load_items(paths: list[str | Path]) -> dict[str, pd.DataFrame]:
    """``data/items/<task>.parquet`` files keyed by task (checked against the items contract)."""
    from culteval.tasks import COLUMNS

    return {Path(p).stem: read_parquet(p, columns=COLUMNS) for p in sorted(paths)}


def raw_key(path: str | Path) -> tuple[str, str, str]:
    """(model, task, strategy) of ``results/raw/<model>/<task>/<strategy>.parquet``."""
    path = Path(path)
    return path.parent.parent.name, path.parent.name, path.stem


def load_raw(paths: list[str | Path], params: dict | None = None) -> dict[tuple[str, str, str], pd.DataFrame]:
    """Raw outputs keyed by (model, task, strategy), checked against the contract and ``params``."""
    from culteval.engine import RAW_COLUMNS

    return {raw_key(p): read_parquet(p, columns=RAW_COLUMNS, params=params) for p in sorted(paths)}
