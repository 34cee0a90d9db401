"""Robustness: position bias, self-consistency and option mass.

``position_bias``: per item, the mean pairwise Jensen-Shannon distance (base 2)
between the model's distributions under different answer orders (all in original
option order), averaged over items with >= 2 permutations. 0 = order-invariant.
``self_consistency``: per prompt, the share of pairs of sampled trials giving the
same parsed answer (an invalid answer is its own category), averaged over prompts.
``self_consistency_corr`` (Rystrom et al. 2025: correlation between repeated
responses): for opinion tasks with ordered answer scales, the mean over trial
pairs (a, b) of the Spearman correlation across prompts of the parsed option
indices (both valid). Indices of questions with more options are larger in every answer
set, so two independent random answer sets already correlate: ``self_consistency_corr_null``
is the mean of that correlation for uniformly random answers on the same prompts (each
prompt's own number of options, ``NULL_DRAWS`` seeded draws; CI: their 2.5-97.5th
percentiles), and ``self_consistency_corr_corrected`` = (observed - null) / (1 - null): 0 at
chance, 1 for identical trials. ``low_mass_share``: share of distribution rows whose
option_mass is below ``cfg.metrics.low_mass``; ``mean_option_mass`` their mean.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from culteval.metrics import distribution_rows, mean_row, plain_row, sampled_rows
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
        if len(answers) >= 2:
            out[pid] = float(np.mean([a == b for a, b in combinations(answers, 2)]))
    return pd.Series(out, dtype=float)


NULL_DRAWS = 200


def _trial_pairs(raw: pd.DataFrame):
    """(prompt ids, answers of trial a, answers of trial b) per trial pair with >= 3 prompts both valid."""
    s = sampled_rows(raw)
    if s.empty:
        return
    wide = s.pivot_table(index="prompt_id", columns="trial", values="parsed", aggfunc="first")
    for a, b in combinations(sorted(wide.columns), 2):
        pair = wide[[a, b]].dropna()
        pair = pair[(pair[a] >= 0) & (pair[b] >= 0)]
        if len(pair) >= 3:
            yield pair.index.tolist(), pair[a].to_numpy(), pair[b].to_numpy()


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(set(x.tolist())) < 2 or len(set(y.tolist())) < 2:
        return None  # a constant side: the correlation is undefined
    return float(spearmanr(x, y).statistic)


def consistency_corr(raw: pd.DataFrame) -> tuple[float, int]:
    """Mean Spearman correlation across prompts between trial pairs; (nan, 0) if undefined."""
    corrs, n = [], 0
    for ids, a, b in _trial_pairs(raw):
        r = _spearman(a, b)
        if r is not None:
            corrs.append(r)
            n = max(n, len(ids))
    return (float(np.mean(corrs)), n) if corrs else (float("nan"), 0)


def consistency_corr_null(raw: pd.DataFrame, seed: int,
                          draws: int = NULL_DRAWS) -> tuple[float, float, float]:
    """``consistency_corr`` of uniformly random answers on the same prompts and trial pairs:
    (mean, 2.5th, 97.5th percentile over ``draws`` seeded draws); nans if undefined."""
    dist = distribution_rows(raw)
    n_opts = {pid: len(p) for pid, p in zip(dist["prompt_id"], dist["probs"], strict=True)}
    pairs = [ids for ids, _, _ in _trial_pairs(raw)]
    if not pairs or any(pid not in n_opts for ids in pairs for pid in ids):
        return float("nan"), float("nan"), float("nan")  # option counts unknown (no distribution rows)
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(draws):
        corrs = []
        for ids in pairs:
            k = np.array([n_opts[pid] for pid in ids])
            r = _spearman(rng.integers(0, k), rng.integers(0, k))
            if r is not None:
                corrs.append(r)
        if corrs:
            means.append(float(np.mean(corrs)))
    if not means:
        return float("nan"), float("nan"), float("nan")
    return float(np.mean(means)), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def chance_corrected(observed: float, null: float) -> float:
    """(observed - null) / (1 - null): 0 at chance, 1 at perfect agreement."""
    return (observed - null) / (1.0 - null) if null < 1 else float("nan")


def robustness_metrics(raw: pd.DataFrame, cfg: dict, *, ordered_scale: bool = False) -> list[dict]:
    """position_bias, self_consistency, low_mass_share, mean_option_mass for one raw table;
    ``self_consistency_corr`` too for an ordered answer scale (the task declares it)."""
    rows = []
    pb = position_bias_per_item(raw)
    if len(pb):
        rows.append(mean_row("position_bias", pb.to_numpy(), cfg))
    sc = consistency_per_prompt(raw)
    if len(sc):
        rows.append(mean_row("self_consistency", sc.to_numpy(), cfg))
    if ordered_scale:
        corr, n = consistency_corr(raw)
        if n:
            rows.append(plain_row("self_consistency_corr", corr, n))
            null, lo, hi = consistency_corr_null(raw, int(cfg.get("seed", 0)))
            if not np.isnan(null):
                rows.append({**plain_row("self_consistency_corr_null", null, n), "ci_low": lo, "ci_high": hi})
                rows.append(plain_row("self_consistency_corr_corrected", chance_corrected(corr, null), n))
    mass = distribution_rows(raw)["option_mass"].dropna().astype(float).to_numpy()
    if mass.size:
        thr = float(cfg["metrics"]["low_mass"])
        rows.append(plain_row("low_mass_share", float((mass < thr).mean()), mass.size))
        rows.append(mean_row("mean_option_mass", mass, cfg))
    return rows
