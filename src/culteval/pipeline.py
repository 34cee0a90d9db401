"""Load the pipeline's artifacts back by their contract paths."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from culteval.io import read_parquet


def load_items(paths: list[str | Path]) -> dict[str, pd.DataFrame]:
    """One culture's ``data/items/<culture>/<task>.parquet`` files keyed by task (checked against
    the items contract)."""
    from culteval.tasks import COLUMNS

    return {Path(p).stem: read_parquet(p, columns=COLUMNS) for p in sorted(paths)}


def raw_key(path: str | Path) -> tuple[str, str, str]:
    """(model, task, strategy) of ``results/raw/<culture>/<model>/<task>/<strategy>.parquet``."""
    path = Path(path)
    return path.parent.parent.name, path.parent.name, path.stem


def load_raw(paths: list[str | Path], params: dict | None = None) -> dict[tuple[str, str, str], pd.DataFrame]:
    """Raw outputs keyed by (model, task, strategy), checked against the contract and ``params``."""
    from culteval.engine import RAW_COLUMNS

    return {raw_key(p): read_parquet(p, columns=RAW_COLUMNS, params=params) for p in sorted(paths)}


def load_machine_translated(paths: list[str | Path]) -> dict[tuple[str, str], bool]:
    """One culture's ``data/prompts/<culture>/<task>/<strategy>.parquet`` files: per (task,
    strategy), whether any rendered prompt shows a machine-made translation (its
    ``machine_translated`` column, decided from the strings' origins at render time)."""
    out = {}
    for p in sorted(paths, key=str):
        df = read_parquet(p, columns=["task", "strategy", "machine_translated"])
        out[(Path(p).parent.name, Path(p).stem)] = bool(df["machine_translated"].any())
    return out


# where the culture's key sits in each artifact's path (counted from the file's folder upwards)
_CULTURE_LEVEL = {"items": 0, "raw": 2, "prompts": 1}


def culture_of_path(path: str | Path, kind: str) -> str:
    """The culture key of ``data/items/<culture>/<task>.parquet`` (kind ``items``),
    ``data/prompts/<culture>/<task>/<strategy>.parquet`` (kind ``prompts``) or
    ``results/raw/<culture>/<model>/<task>/<strategy>.parquet`` (kind ``raw``)."""
    return Path(path).parents[_CULTURE_LEVEL[kind]].name


def by_culture(paths: list[str | Path], kind: str, cfg: dict) -> dict[str, list[str | Path]]:
    """Artifact paths grouped by culture key; a key params do not name is an error naming the file."""
    out: dict[str, list[str | Path]] = {}
    for p in sorted(paths, key=str):
        key = culture_of_path(p, kind)
        if key not in cfg["cultures"]:
            raise ValueError(f"{p}: culture {key!r} is not in params.cultures "
                             f"({', '.join(sorted(cfg['cultures']))})")
        out.setdefault(key, []).append(p)
    return out
