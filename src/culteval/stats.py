"""Statistics shared by every metric (numpy/scipy only): the seeded bootstrap and the
summary-row builders, and paired uncertainty for comparisons over the same items.

Two sides (a model and its base, or the per-item mean of one group of models and
of another) are compared like for like on the intersection of their items. The
items are the random units: a bootstrap resample draws items with replacement
and applies the same draw to both sides; the permutation test flips the sign of
each item's difference at random (exchangeable under "no difference"); the sign
test counts items where one side wins. Every draw comes from
``numpy.random.default_rng(seed)`` created afresh per call: same inputs, same
numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

EXACT_MAX_ITEMS = 12  # up to 2**12 sign patterns the permutation test enumerates them all


@dataclass(frozen=True)
class Paired:
    """A paired comparison: ``diff`` = mean(a) - mean(b) over ``n_items`` shared items."""

    diff: float
    ci_low: float
    ci_high: float
    p_permutation: float
    p_sign: float
    n_items: int


def align(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The sorted items both sides score (finite values only) and the two aligned value arrays."""
    ids = sorted(k for k in set(a) & set(b) if np.isfinite(a[k]) and np.isfinite(b[k]))
    return ids, np.array([a[k] for k in ids], dtype=float), np.array([b[k] for k in ids], dtype=float)


def group_scores(scores: Mapping[str, Mapping[str, float]], models: Sequence[str]) -> dict[str, float]:
    """Per item, the mean over ``models`` of their per-item scores, on the items every one of them has."""
    missing = [m for m in models if m not in scores]
    if missing or not models:
        raise KeyError(f"group_scores: no per-item scores for models {missing or '(none given)'}")
    common = set.intersection(*(
        {k for k, v in scores[m].items() if np.isfinite(v)} for m in models))
    return {k: float(np.mean([scores[m][k] for m in models])) for k in sorted(common)}


def paired_bootstrap_ci(x, y, n_boot: int, ci: float, seed: int) -> tuple[float, float]:
    """Percentile CI of mean(x) - mean(y), resampling item indices (the same draw for both sides).

    NaN for fewer than two items or ``n_boot < 1``.
    """
    d = np.asarray(x, float) - np.asarray(y, float)
    if d.size < 2 or n_boot < 1:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
    stats = d[idx].mean(axis=1)  # mean(x[idx]) - mean(y[idx]) with the one shared idx
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.percentile(stats, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def paired_permutation_p(x, y, n_perm: int, seed: int) -> float:
    """Two-sided sign-flip permutation p-value for mean(x - y) == 0.

    Exact (all 2**n sign patterns) for n <= ``EXACT_MAX_ITEMS``; otherwise ``n_perm`` random
    patterns with p = (1 + hits) / (1 + n_perm), which is never 0. NaN without items.
    """
    d = np.asarray(x, float) - np.asarray(y, float)
    if d.size == 0:
        return float("nan")
    observed = abs(d.mean())
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))  # equal statistics must count as hits
    if d.size <= EXACT_MAX_ITEMS:
        signs = 1 - 2 * ((np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1)
        return float((np.abs(signs @ d / d.size) >= observed - tol).mean())
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_perm, d.size))
    hits = int((np.abs(signs @ d / d.size) >= observed - tol).sum())
    return (1 + hits) / (1 + n_perm)


def sign_test_p(x, y) -> float:
    """Two-sided exact sign test (binomial, p = 0.5) on the items where the sides differ; 1.0 if none."""
    d = np.asarray(x, float) - np.asarray(y, float)
    pos, neg = int((d > 0).sum()), int((d < 0).sum())
    return 1.0 if pos + neg == 0 else float(binomtest(pos, pos + neg, 0.5).pvalue)


def compare(a: Mapping[str, float], b: Mapping[str, float], n_boot: int, ci: float, seed: int,
            n_perm: int | None = None) -> Paired:
    """Paired comparison of per-item scores ``a`` vs ``b`` on their shared items.

    ``n_perm`` defaults to ``n_boot``. Without shared items every field is NaN and ``n_items`` 0.
    """
    _, x, y = align(a, b)
    if x.size == 0:
        nan = float("nan")
        return Paired(nan, nan, nan, nan, nan, 0)
    lo, hi = paired_bootstrap_ci(x, y, n_boot, ci, seed)
    return Paired(diff=float(x.mean() - y.mean()), ci_low=lo, ci_high=hi,
                  p_permutation=paired_permutation_p(x, y, n_boot if n_perm is None else n_perm, seed),
                  p_sign=sign_test_p(x, y), n_items=int(x.size))


# --- groups of models: models resampled within groups as well as items -----------------------

MIN_GROUP_MODELS = 2  # fewer models in a group: its models are fixed, the comparison speaks for them only
EXACT_MAX_RELABELLINGS = 10000  # up to this many group assignments the label test enumerates them all


@dataclass(frozen=True)
class GroupPaired:
    """A group comparison: ``paired`` as :func:`compare` on the groups' per-item means (CI resampling
    models within groups and items when ``models_resampled``), and ``p_models``, the two-sided
    permutation p of the models' group labels (None unless ``models_resampled``)."""

    paired: Paired
    p_models: float | None
    models_resampled: bool


def _matrix(scores: Mapping[str, Mapping[str, float]], models: Sequence[str], ids: list[str]) -> np.ndarray:
    return np.array([[scores[m][i] for i in ids] for m in models], dtype=float)


def hierarchical_bootstrap_ci(a: np.ndarray, b: np.ndarray, n_boot: int, ci: float,
                              seed: int) -> tuple[float, float]:
    """Percentile CI of mean(a) - mean(b) for (models x items) score matrices over the same items:
    each resample draws models with replacement within each group and items with replacement (one
    item draw for both groups), so the interval covers other models of the same kind as well as
    other items. NaN for fewer than two items or ``n_boot < 1``."""
    if a.shape[1] < 2 or n_boot < 1:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n = a.shape[1]
    stats = np.empty(n_boot)
    for k in range(n_boot):
        ia = rng.integers(0, a.shape[0], a.shape[0])
        ib = rng.integers(0, b.shape[0], b.shape[0])
        it = rng.integers(0, n, n)
        stats[k] = a[np.ix_(ia, it)].mean() - b[np.ix_(ib, it)].mean()
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.percentile(stats, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def model_label_p(a: np.ndarray, b: np.ndarray, n_perm: int, seed: int) -> float:
    """Two-sided permutation p for "the groups do not differ": the models' group labels are
    exchangeable, the statistic is the difference of the groups' mean per-model scores (each
    model's mean over the shared items). Exact over every assignment up to
    ``EXACT_MAX_RELABELLINGS`` (so with 2 + 2 models p is never below 2/6), else ``n_perm``
    random ones with p = (1 + hits) / (1 + n_perm)."""
    from itertools import combinations
    from math import comb

    per_model = np.concatenate([a.mean(axis=1), b.mean(axis=1)])
    na, total = a.shape[0], per_model.size
    observed = abs(per_model[:na].mean() - per_model[na:].mean())
    tol = 1e-12 * max(1.0, float(np.abs(per_model).max()))

    def stat(members) -> float:
        mask = np.zeros(total, bool)
        mask[list(members)] = True
        return abs(per_model[mask].mean() - per_model[~mask].mean())

    if comb(total, na) <= EXACT_MAX_RELABELLINGS:
        hits = [stat(c) >= observed - tol for c in combinations(range(total), na)]
        return float(np.mean(hits))
    rng = np.random.default_rng(seed)
    hits = sum(stat(rng.permutation(total)[:na]) >= observed - tol for _ in range(n_perm))
    return (1 + hits) / (1 + n_perm)


def compare_groups(a: Mapping[str, Mapping[str, float]], b: Mapping[str, Mapping[str, float]],
                   n_boot: int, ci: float, seed: int) -> GroupPaired:
    """Group ``a`` vs group ``b`` (per model, its per-item scores) on the items every model has.

    The difference is that of the groups' per-item means. With >= ``MIN_GROUP_MODELS`` models in
    each group the CI resamples models within groups as well as items
    (:func:`hierarchical_bootstrap_ci`) and ``p_models`` permutes the models' group labels; with
    fewer the models are fixed (the CI resamples items only): the result speaks for these models
    only. ``p_permutation`` and ``p_sign`` are always the item-level tests on the groups' means.
    """
    models_a, models_b = sorted(a), sorted(b)
    sa, sb = group_scores(a, models_a), group_scores(b, models_b)
    res = compare(sa, sb, n_boot, ci, seed)
    resampled = min(len(models_a), len(models_b)) >= MIN_GROUP_MODELS
    if not resampled or not res.n_items:
        return GroupPaired(res, None, False)
    ids, _, _ = align(sa, sb)
    ma, mb = _matrix(a, models_a, ids), _matrix(b, models_b, ids)
    lo, hi = hierarchical_bootstrap_ci(ma, mb, n_boot, ci, seed)
    res = Paired(res.diff, lo, hi, res.p_permutation, res.p_sign, res.n_items)
    return GroupPaired(res, model_label_p(ma, mb, n_boot, seed), True)


# --- unpaired: one metric over its units ---------------------------------------------------------

def bootstrap_ci(values, cfg: dict, stat=np.mean) -> tuple[float, float]:
    """Percentile bootstrap CI over the units in ``values`` (items or groups).

    ``cfg["metrics"]["bootstrap"]`` resamples, level ``cfg["metrics"]["ci"]``,
    ``numpy.random.default_rng(cfg["seed"])`` fresh per call: same inputs, same CI.
    NaN for fewer than two units.
    """
    v = np.asarray(values, dtype=float)
    n_boot = int(cfg["metrics"]["bootstrap"])
    if v.size < 2 or n_boot < 1:
        return float("nan"), float("nan")
    rng = np.random.default_rng(cfg["seed"])
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    stats = stat(v[idx], axis=1)
    alpha = (1.0 - float(cfg["metrics"].get("ci", 0.95))) / 2.0
    lo, hi = np.percentile(stats, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def mean_row(metric: str, values, cfg: dict) -> dict:
    """A metric row: the mean of per-unit ``values`` with its bootstrap CI."""
    v = np.asarray(values, dtype=float)
    lo, hi = bootstrap_ci(v, cfg)
    value = float(v.mean()) if v.size else float("nan")
    return {"metric": metric, "value": value, "ci_low": lo, "ci_high": hi, "n_items": int(v.size)}


def plain_row(metric: str, value: float, n_items: int) -> dict:
    """A metric row without a CI (counts, single-item values)."""
    return {"metric": metric, "value": float(value), "ci_low": float("nan"), "ci_high": float("nan"),
            "n_items": int(n_items)}
