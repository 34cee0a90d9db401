"""Paired comparisons on synthetic per-item scores where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from culteval.stats import (
    align,
    compare,
    compare_groups,
    group_scores,
    paired_bootstrap_ci,
    paired_permutation_p,
    sign_test_p,
)


def _pair(rng, n, effect, item_sd=1.0, noise=0.3):
    """Per-item scores of two sides sharing item difficulty; true mean difference = ``effect``."""
    item = rng.normal(scale=item_sd, size=n)
    return item + effect + rng.normal(scale=noise, size=n), item + rng.normal(scale=noise, size=n)


def test_exact_small_cases_by_hand():
    # d = (1, 2, 3): of the 8 sign patterns only all-plus and all-minus reach |mean| = 2
    assert paired_permutation_p([1, 2, 3], [0, 0, 0], 0, 0) == pytest.approx(2 / 8)
    assert sign_test_p([1, 2, 3], [0, 0, 0]) == pytest.approx(2 * 0.5 ** 3)
    assert sign_test_p([1, 1], [1, 1]) == 1.0  # no item differs
    # d = (1, -1): every pattern has |mean| 0 or 1 >= 0: p = 1
    assert paired_permutation_p([1, 0], [0, 1], 0, 0) == 1.0


def test_null_gives_roughly_uniform_p_values():
    rng = np.random.default_rng(11)
    perm, sign = [], []
    for rep in range(200):
        x, y = _pair(rng, 40, 0.0)
        perm.append(paired_permutation_p(x, y, 400, rep))
        sign.append(sign_test_p(x, y))
    perm = np.array(perm)
    assert 0.42 < perm.mean() < 0.58
    assert 0.01 <= (perm < 0.05).mean() <= 0.10
    assert 0.2 < np.mean(perm < 0.25) < 0.3
    assert np.mean(sign) > 0.4


def test_strong_effect_gives_small_p_and_ci_excluding_zero():
    x, y = _pair(np.random.default_rng(5), 40, 0.5)
    res = compare(dict(enumerate(x)), dict(enumerate(y)), n_boot=2000, ci=0.95, seed=3)
    assert res.p_permutation < 0.001 and res.p_sign < 0.001
    assert 0 < res.ci_low < res.diff < res.ci_high
    assert res.diff == pytest.approx(float(np.mean(x - y)))
    rev = compare(dict(enumerate(y)), dict(enumerate(x)), n_boot=2000, ci=0.95, seed=3)  # two-sided
    assert rev.diff == pytest.approx(-res.diff) and rev.p_permutation < 0.001 and rev.p_sign < 0.001


def test_paired_ci_covers_truth_at_its_level():
    rng = np.random.default_rng(8)
    covered = []
    for rep in range(200):
        x, y = _pair(rng, 50, 0.2)
        lo, hi = paired_bootstrap_ci(x, y, 400, 0.95, rep)
        covered.append(lo <= 0.2 <= hi)
    assert 0.89 <= np.mean(covered) <= 0.99


def test_same_resample_for_both_sides():
    # item difficulty dominates (sd 1) but the difference is nearly constant: pairing makes the CI
    # narrow; resampling the two sides independently would give a width near 2 * 1.96 * sqrt(2/n) ~ 0.8
    x, y = _pair(np.random.default_rng(2), 50, 0.1, item_sd=1.0, noise=0.02)
    lo, hi = paired_bootstrap_ci(x, y, 1000, 0.95, 0)
    assert hi - lo < 0.05 and lo > 0


def test_alignment_determinism_and_groups():
    a = {"q1": 1.0, "q2": 0.0, "q3": float("nan"), "q4": 1.0}
    b = {"q2": 1.0, "q3": 0.0, "q4": 0.0, "q5": 1.0}
    ids, x, y = align(a, b)
    assert ids == ["q2", "q4"] and x.tolist() == [0.0, 1.0] and y.tolist() == [1.0, 0.0]
    rng = np.random.default_rng(4)
    big_a, big_b = ({f"q{i}": v for i, v in enumerate(s)} for s in _pair(rng, 30, 0.1))
    assert compare(big_a, big_b, 300, 0.95, 9) == compare(big_a, big_b, 300, 0.95, 9)
    assert compare(big_a, big_b, 300, 0.95, 9) != compare(big_a, big_b, 300, 0.95, 10)
    none = compare({"q1": 1.0}, {"q2": 1.0}, 100, 0.95, 0)
    assert none.n_items == 0 and np.isnan(none.diff)
    scores = {"m1": {"q1": 1.0, "q2": 0.0, "q3": 1.0}, "m2": {"q1": 0.0, "q2": 1.0}}
    assert group_scores(scores, ["m1", "m2"]) == {"q1": 0.5, "q2": 0.5}
    with pytest.raises(KeyError, match="m3"):
        group_scores(scores, ["m1", "m3"])


def _models(rng, offsets, n=30):
    """Per model, per-item scores: a shared item difficulty plus the model's own offset."""
    item = rng.normal(size=n)
    return {f"m{k}": {f"q{i:02d}": float(item[i] + off + rng.normal(scale=0.05)) for i in range(n)}
            for k, off in enumerate(offsets)}


def test_group_comparison_with_one_model_keeps_the_models_fixed():
    rng = np.random.default_rng(3)
    a, b = _models(rng, [0.5]), _models(rng, [0.0, 0.1])
    res = compare_groups(a, b, 300, 0.95, 5)
    assert not res.models_resampled and res.p_models is None
    assert res.paired == compare(group_scores(a, sorted(a)), group_scores(b, sorted(b)), 300, 0.95, 5)


def test_group_comparison_resamples_models_when_each_group_has_two():
    # group a: one model far above b, one below; items alone call the difference certain,
    # the models of group a disagree about its sign: resampling them widens the CI over 0
    rng = np.random.default_rng(4)
    both = _models(rng, [1.0, -0.6, 0.0, 0.0])
    a = {m: both[m] for m in ("m0", "m1")}
    b = {m: {i: v + 0.0 for i, v in both[m].items()} for m in ("m2", "m3")}
    items_only = compare(group_scores(a, sorted(a)), group_scores(b, sorted(b)), 500, 0.95, 1)
    assert items_only.ci_low > 0  # conditional on these two models: a is higher
    res = compare_groups(a, b, 500, 0.95, 1)
    assert res.models_resampled and res.paired.diff == pytest.approx(items_only.diff)
    assert res.paired.ci_low < 0 < res.paired.ci_high
    # 2 + 2 models, 6 label assignments: every other split separates m0 (+1) from m1 (-0.6) and
    # differs by 0.8 > the observed 0.2, so the labels tell nothing: p = 1
    assert res.p_models == pytest.approx(1.0)
    # perfectly separated groups reach the smallest p the design allows, 2/6
    far = {m: {i: v + 5 for i, v in both[m].items()} for m in ("m2", "m3")}
    assert compare_groups(far, b, 200, 0.95, 1).p_models == pytest.approx(2 / 6)


def test_hierarchical_ci_covers_a_new_models_mean():
    # many models per group drawn around group means 0.3 apart: the CI should cover 0.3
    rng = np.random.default_rng(9)
    hits = 0
    for rep in range(40):
        offs = rng.normal(scale=0.3, size=8)
        both = _models(rng, [*(offs[:4] + 0.3), *offs[4:]], n=20)
        a = {m: both[m] for m in ("m0", "m1", "m2", "m3")}
        b = {m: both[m] for m in ("m4", "m5", "m6", "m7")}
        r = compare_groups(a, b, 300, 0.95, rep).paired
        hits += r.ci_low <= 0.3 <= r.ci_high
    assert hits >= 30  # items-only CIs (width ~0.05) would miss most of these
