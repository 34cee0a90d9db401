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


def _sign_patterns(n: int, n_perm: int, seed: int) -> tuple[np.ndarray, bool]:
    """The sign patterns of the sign-flip test: all 2**n for n <= ``EXACT_MAX_ITEMS`` (exact),
    else ``n_perm`` seeded random ones; and whether they are exact."""
    if n <= EXACT_MAX_ITEMS:
        return 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1), True
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=(max(int(n_perm), 1), n)), False


def _flip_p(d: np.ndarray, signs: np.ndarray, exact: bool) -> float:
    """Two-sided sign-flip p of mean(d) == 0 over the patterns ``signs``."""
    observed = abs(d.mean())
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))  # equal statistics must count as hits
    hits = np.abs(signs @ d / d.size) >= observed - tol
    return float(hits.mean()) if exact else (1 + int(hits.sum())) / (1 + len(signs))


def sign_flip_floor(n: int, n_perm: int | None = None) -> float:
    """The smallest two-sided p the sign-flip test can give with ``n`` items: 2 / 2**n when exact
    (only the all-plus and all-minus patterns reach the largest |mean|), 1 / (1 + n_perm) when
    sampled; 1.0 without items."""
    if n < 1:
        return 1.0
    if n <= EXACT_MAX_ITEMS or n_perm is None:
        return 2.0 / 2 ** n
    return 1.0 / (1 + int(n_perm))


def label_floor(k: int, m: int, n_perm: int | None = None) -> float:
    """The smallest two-sided p the model-label permutation test can give with ``k`` + ``m`` models:
    1 / C(k+m, k), doubled when k == m (a split and its mirror give the same |difference|);
    1 / (1 + n_perm) when the assignments are sampled."""
    from math import comb

    if min(k, m) < 1:
        return 1.0
    total = comb(k + m, k)
    if total > EXACT_MAX_RELABELLINGS and n_perm is not None:
        return 1.0 / (1 + int(n_perm))
    return (2.0 if k == m else 1.0) / total


def invert_test(p_of, estimate: float, low: float, high: float, alpha: float,
                rel_tol: float = 1e-9) -> tuple[float, float]:
    """The confidence interval {delta: p_of(delta) >= alpha} of a shift-test ``p_of``, found by
    bisection between ``low``/``high`` (where p < alpha) and ``estimate`` (p = 1) on each side.

    Each side first tests delta = 0 when 0 lies in its bracket, so the interval excludes 0 exactly
    when p_of(0) < alpha: the CI and the test's p at 0 never disagree. NaN when p_of cannot go
    below ``alpha`` at the brackets (the test has too few units for an interval at this level).
    """
    if not (p_of(low) < alpha and p_of(high) < alpha):
        return float("nan"), float("nan")
    scale = max(1.0, abs(low), abs(high)) * rel_tol
    ends = []
    for rejected, accepted in ((low, estimate), (high, estimate)):
        if min(rejected, accepted) < 0 < max(rejected, accepted):
            if p_of(0.0) < alpha:
                rejected = 0.0
            else:
                accepted = 0.0
        while abs(accepted - rejected) > scale:
            mid = (rejected + accepted) / 2
            if p_of(mid) < alpha:
                rejected = mid
            else:
                accepted = mid
        ends.append(accepted)
    return float(ends[0]), float(ends[1])


def sign_flip_ci(x, y, n_perm: int, ci: float, seed: int) -> tuple[float, float]:
    """CI of mean(x - y) by inverting the sign-flip test (:func:`paired_permutation_p`): every shift
    delta whose test of (x - y - delta) gives p >= 1 - ``ci``. Exact under a symmetric spread of
    the item differences around their mean; coverage checked by simulation in tests/test_stats.py.
    NaN (no interval) when the test cannot reach p < 1 - ci: with n items exactly, 2 / 2**n, so
    fewer than 6 items at 95% (:func:`sign_flip_floor`)."""
    d = np.asarray(x, float) - np.asarray(y, float)
    alpha = 1.0 - ci
    if d.size < 2 or sign_flip_floor(d.size, n_perm) >= alpha:
        return float("nan"), float("nan")
    signs, exact = _sign_patterns(d.size, n_perm, seed)
    span = max(float(d.max() - d.min()), 1e-9)
    return invert_test(lambda delta: _flip_p(d - delta, signs, exact), float(d.mean()),
                       float(d.min()) - span, float(d.max()) + span, alpha)


def paired_permutation_p(x, y, n_perm: int, seed: int) -> float:
    """Two-sided sign-flip permutation p-value for mean(x - y) == 0.

    Exact (all 2**n sign patterns) for n <= ``EXACT_MAX_ITEMS``; otherwise ``n_perm`` random
    patterns with p = (1 + hits) / (1 + n_perm), which is never 0. NaN without items.
    """
    d = np.asarray(x, float) - np.asarray(y, float)
    if d.size == 0:
        return float("nan")
    signs, exact = _sign_patterns(d.size, n_perm, seed)
    return _flip_p(d, signs, exact)


def sign_test_p(x, y) -> float:
    """Two-sided exact sign test (binomial, p = 0.5) on the items where the sides differ; 1.0 if none."""
    d = np.asarray(x, float) - np.asarray(y, float)
    pos, neg = int((d > 0).sum()), int((d < 0).sum())
    return 1.0 if pos + neg == 0 else float(binomtest(pos, pos + neg, 0.5).pvalue)


def compare(a: Mapping[str, float], b: Mapping[str, float], n_boot: int, ci: float, seed: int,
            n_perm: int | None = None) -> Paired:
    """Paired comparison of per-item scores ``a`` vs ``b`` on their shared items: the difference,
    its CI inverted from the sign-flip test (:func:`sign_flip_ci`, NaN where the items are too few
    for one), the sign-flip p of the same test and the sign test's p.

    ``n_perm`` (random sign patterns above ``EXACT_MAX_ITEMS`` items) defaults to ``n_boot``.
    Without shared items every field is NaN and ``n_items`` 0.
    """
    _, x, y = align(a, b)
    if x.size == 0:
        nan = float("nan")
        return Paired(nan, nan, nan, nan, nan, 0)
    n_perm = n_boot if n_perm is None else n_perm
    lo, hi = sign_flip_ci(x, y, n_perm, ci, seed)
    return Paired(diff=float(x.mean() - y.mean()), ci_low=lo, ci_high=hi,
                  p_permutation=paired_permutation_p(x, y, n_perm, seed),
                  p_sign=sign_test_p(x, y), n_items=int(x.size))


# --- groups of models: the models are the units ------------------------------------------------

MIN_GROUP_MODELS = 2  # fewer models in a group: its models are fixed, the comparison speaks for them only
EXACT_MAX_RELABELLINGS = 10000  # up to this many group assignments the label test enumerates them all


@dataclass(frozen=True)
class GroupPaired:
    """A group comparison: ``paired`` as :func:`compare` on the groups' per-item means, and
    ``p_models``, the two-sided permutation p of the models' group labels (None unless
    ``models_resampled``). With ``models_resampled`` the CI of ``paired`` is the label test's
    inverted (:func:`model_label_ci`), so it agrees with ``p_models``; otherwise with its
    ``p_permutation`` (items only)."""

    paired: Paired
    p_models: float | None
    models_resampled: bool


def _matrix(scores: Mapping[str, Mapping[str, float]], models: Sequence[str], ids: list[str]) -> np.ndarray:
    return np.array([[scores[m][i] for i in ids] for m in models], dtype=float)


def _assignments(k: int, m: int, n_perm: int, seed: int) -> tuple[np.ndarray, bool]:
    """Boolean (assignments x models) masks of group a's members: every one of the C(k+m, k) when
    at most ``EXACT_MAX_RELABELLINGS``, else ``n_perm`` seeded random ones; and whether exact."""
    from itertools import combinations
    from math import comb

    total = k + m
    if comb(total, k) <= EXACT_MAX_RELABELLINGS:
        masks = np.zeros((comb(total, k), total), bool)
        for row, members in enumerate(combinations(range(total), k)):
            masks[row, list(members)] = True
        return masks, True
    rng = np.random.default_rng(seed)
    masks = np.zeros((max(int(n_perm), 1), total), bool)
    for row in range(len(masks)):
        masks[row, rng.permutation(total)[:k]] = True
    return masks, False


def _label_p(per_model: np.ndarray, k: int, masks: np.ndarray, exact: bool) -> float:
    """Two-sided p of the difference of group means, group a = the first ``k`` of ``per_model``."""
    m = per_model.size - k
    observed = abs(per_model[:k].mean() - per_model[k:].mean())
    tol = 1e-12 * max(1.0, float(np.abs(per_model).max()))
    stats = np.abs(masks @ per_model / k - (~masks) @ per_model / m)
    hits = stats >= observed - tol
    return float(hits.mean()) if exact else (1 + int(hits.sum())) / (1 + len(masks))


def model_label_p(a: np.ndarray, b: np.ndarray, n_perm: int, seed: int) -> float:
    """Two-sided permutation p for "the groups do not differ": the models' group labels are
    exchangeable, the statistic is the difference of the groups' mean per-model scores (each
    model's mean over the shared items). Exact over every assignment up to
    ``EXACT_MAX_RELABELLINGS`` (so with 2 + 2 models p is never below 2/6: :func:`label_floor`),
    else ``n_perm`` random ones with p = (1 + hits) / (1 + n_perm)."""
    per_model = np.concatenate([a.mean(axis=1), b.mean(axis=1)])
    masks, exact = _assignments(a.shape[0], b.shape[0], n_perm, seed)
    return _label_p(per_model, a.shape[0], masks, exact)


def model_label_ci(a: np.ndarray, b: np.ndarray, n_perm: int, ci: float, seed: int) -> tuple[float, float]:
    """CI of the groups' difference by inverting :func:`model_label_p`: every shift delta for which
    the label test of (group a - delta) vs group b gives p >= 1 - ``ci``. Exact when the two groups'
    models differ by a shift; it covers other models of the same kinds as well as other items'
    noise within each model's mean. NaN when the label test cannot go below 1 - ci
    (:func:`label_floor`: 2 + 2, 2 + 3 and 3 + 3 models at 95%)."""
    k, m = a.shape[0], b.shape[0]
    alpha = 1.0 - ci
    masks, exact = _assignments(k, m, n_perm, seed)
    if label_floor(k, m, None if exact else len(masks)) >= alpha:
        return float("nan"), float("nan")
    per_a, per_b = a.mean(axis=1), b.mean(axis=1)
    span = max(float(max(per_a.max(), per_b.max()) - min(per_a.min(), per_b.min())), 1e-9)
    low, high = float(per_a.min() - per_b.max()) - span, float(per_a.max() - per_b.min()) + span
    estimate = float(per_a.mean() - per_b.mean())
    return invert_test(lambda delta: _label_p(np.concatenate([per_a - delta, per_b]), k, masks, exact),
                       estimate, low, high, alpha)


def compare_groups(a: Mapping[str, Mapping[str, float]], b: Mapping[str, Mapping[str, float]],
                   n_boot: int, ci: float, seed: int) -> GroupPaired:
    """Group ``a`` vs group ``b`` (per model, its per-item scores) on the items every model has.

    The difference is that of the groups' per-item means. With >= ``MIN_GROUP_MODELS`` models in
    each group the models are the units: ``p_models`` permutes the models' group labels and the
    CI inverts that test (:func:`model_label_ci`; none where the models are too few for a 95%
    interval). With fewer the models are fixed (CI and p of the sign-flip test over items): the
    result speaks for these models only. ``p_permutation`` and ``p_sign`` are always the
    item-level tests on the groups' means.
    """
    models_a, models_b = sorted(a), sorted(b)
    sa, sb = group_scores(a, models_a), group_scores(b, models_b)
    res = compare(sa, sb, n_boot, ci, seed)
    resampled = min(len(models_a), len(models_b)) >= MIN_GROUP_MODELS
    if not resampled or not res.n_items:
        return GroupPaired(res, None, False)
    ids, _, _ = align(sa, sb)
    ma, mb = _matrix(a, models_a, ids), _matrix(b, models_b, ids)
    lo, hi = model_label_ci(ma, mb, n_boot, ci, seed)
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
