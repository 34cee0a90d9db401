"""Metrics: raw model outputs (docs/contracts.md) -> the paper's numbers.

Shared helpers live here: a model's per-item distribution (mean over answer-order
permutations), gold indices, and the seeded percentile bootstrap every metric uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# The row builders and the bootstrap are shared with task modules, which may not import this stage.
from culteval.stats import bootstrap_ci, mean_row, plain_row  # noqa: F401


@dataclass
class MetricInputs:
    """Run-wide inputs that some task metrics need beside their own raw outputs.

    ``raw_root``: the acquired data folder (the cultural map reads published
    coordinates there). ``once`` builds a shared value on first use, so that work
    done for one (model, strategy) table is not redone for the next.
    """

    raw_root: Path | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def once(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]


def distribution_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """The distribution rows (trial == -1) of a raw-output table."""
    return raw[raw["trial"] == -1]


def sampled_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """The sampled-trial rows (trial >= 0) of a raw-output table."""
    return raw[raw["trial"] >= 0]


def model_distributions(raw: pd.DataFrame, items: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
    """Per item: mean over permutations of ``probs`` (original option order), renormalised.

    Averaging over permutations cancels position bias to first order; it is the
    model's distribution every opinion and accuracy-from-probabilities metric uses.
    """
    n_opts = None if items is None else dict(zip(items["item_id"], items["options"].map(len), strict=True))
    out: dict[str, np.ndarray] = {}
    for item_id, grp in distribution_rows(raw).groupby("item_id", sort=True):
        mats = []
        for pid, p in zip(grp["prompt_id"], grp["probs"], strict=True):
            if p is None or (isinstance(p, float) and np.isnan(p)):
                raise ValueError(f"raw outputs: distribution row {pid!r} has no probs")
            mats.append(np.asarray(p, dtype=float))
        lens = {len(m) for m in mats}
        if len(lens) != 1 or (n_opts is not None and n_opts.get(item_id, len(mats[0])) != len(mats[0])):
            raise ValueError(f"raw outputs: item {item_id!r} has probs of length {sorted(lens)}, "
                             f"items table says {n_opts.get(item_id) if n_opts else '?'} options")
        mean = np.mean(mats, axis=0)
        total = mean.sum()
        out[str(item_id)] = mean / total if total > 0 else mean
    return out


def gold_index(options, answer, item_id: str = "?") -> int:
    """Index of the gold answer among ``options`` (case-insensitive)."""
    norm = [str(o).strip().lower() for o in options]
    a = str(answer).strip().lower()
    if a not in norm:
        raise ValueError(f"item {item_id!r}: gold answer {answer!r} is not one of its options "
                         f"{list(options)}")
    return norm.index(a)


def load_distributions(text: str) -> dict[str, np.ndarray]:
    """The items table's ``distributions`` JSON as arrays."""
    return {k: np.asarray(v, dtype=float) for k, v in json.loads(text or "{}").items()}
