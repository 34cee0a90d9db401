"""Robustness: position bias, self-consistency and option mass.

``position_bias``: per item, the mean pairwise Jensen-Shannon distance (base 2)
between the model's distributions under different answer orders (all in original
option order), averaged over items with >= 2 permutations. 0 = order-invariant.
``self_consistency``: per prompt, the share of pairs of sampled trials giving the
same parsed answer, averaged over prompts; an unparseable answer agrees with nothing (not even
another unparseable one), so a prompt whose trials are all invalid scores 0.
``self_consistency_pairwise`` (Rystrom et al. 2025, their ``calculate_consistency``): for tasks
on ordered answer scales, the Spearman correlation of the pro-scores of every ordered pair of
distinct sampled answers to the same question, pooled over questions, divided by (1 - 0.045)
(``metrics.proscore.pairwise_consistency``), with ``invalid_rate_proscore``, the share of sampled
answers it left out as unparseable.
``low_mass_share``: share of distribution rows whose option_mass is below ``cfg.metrics.low_mass``;
``mean_option_mass`` their mean.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from culteval.metrics import distribution_rows, mean_row, plain_row, proscore, sampled_rows
from culteval.metrics.opinions import jsd


def position_bias_per_item(raw: pd.DataFrame) -> pd.Series:
    """Mean pairwise JSD across permutations, per item with >= 2 permutations."""
    out = {}
    for iid, grp in distribution_rows(raw).groupby("item_id", sort=True):
        ps = [np.asarray(p, float) for p in grp.sort_values("permutation")["probs"]]
        if len(ps) >= 2:
            out[iid] = float(np.mean([jsd(a, b) for a, b in combinations(ps, 2)]))
    return pd.Series(out, dtype=float)


def consistency_per_prompt(raw: pd.DataFrame) -> pd.Series:
    """Share of agreeing trial pairs per prompt with >= 2 trials."""
    out = {}
    for pid, grp in sampled_rows(raw).groupby("prompt_id", sort=True):
        if grp["parsed"].isna().all():  # free-text answers: agreement of the normalised text
            answers = grp["generated"].fillna("").str.strip().str.casefold().tolist()
        else:
            answers = grp["parsed"].fillna(-1).astype(int).tolist()
        if len(answers) >= 2:  # -1 (invalid) agrees with nothing
            out[pid] = float(np.mean([a == b and a != -1 for a, b in combinations(answers, 2)]))
    return pd.Series(out, dtype=float)


def robustness_metrics(raw: pd.DataFrame, cfg: dict, *, ordered_scale: bool = False,
                       items: pd.DataFrame | None = None) -> list[dict]:
    """position_bias, self_consistency, low_mass_share, mean_option_mass for one raw table;
    for an ordered answer scale (the task declares it) with sampled answers and its ``items``,
    ``self_consistency_pairwise`` and ``invalid_rate_proscore`` too."""
    rows = []
    pb = position_bias_per_item(raw)
    if len(pb):
        rows.append(mean_row("position_bias", pb.to_numpy(), cfg))
    sc = consistency_per_prompt(raw)
    if len(sc):
        rows.append(mean_row("self_consistency", sc.to_numpy(), cfg))
    if ordered_scale and items is not None and len(sampled_rows(raw)):
        answers, invalid, total = proscore.sampled_pro_answers(raw, items)
        if total:
            rows.append(plain_row("invalid_rate_proscore", invalid / total, total))
        value, n = proscore.pairwise_consistency(answers)
        if not np.isnan(value):
            rows.append(plain_row("self_consistency_pairwise", value, n))
    mass = distribution_rows(raw)["option_mass"].dropna().astype(float).to_numpy()
    if mass.size:
        thr = float(cfg["metrics"]["low_mass"])
        rows.append(plain_row("low_mass_share", float((mass < thr).mean()), mass.size))
        rows.append(mean_row("mean_option_mass", mass, cfg))
    return rows
