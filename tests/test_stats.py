"""Paired comparisons on synthetic per-item scores where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from culteval.stats import (
    align,
    compare,
    compare_groups,
    group_scores,
    label_floor,
    model_label_ci,
    model_label_p,
    paired_permutation_p,
    sign_flip_ci,
    sign_flip_floor,
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
        lo, hi = sign_flip_ci(x, y, 400, 0.95, rep)
        covered.append(lo <= 0.2 <= hi)
    assert 0.91 <= np.mean(covered) <= 0.99


def test_same_items_for_both_sides():
    # item difficulty dominates (sd 1) but the difference is nearly constant: pairing makes the CI
    # narrow; comparing the two sides unpaired would give a width near 2 * 1.96 * sqrt(2/n) ~ 0.8
    x, y = _pair(np.random.default_rng(2), 50, 0.1, item_sd=1.0, noise=0.02)
    lo, hi = sign_flip_ci(x, y, 1000, 0.95, 0)
    assert hi - lo < 0.05 and lo > 0


def _coverage_items(rng, n, reps, draw, truth):
    hits = []
    for rep in range(reps):
        x, y = draw(rng, n)
        res = compare(dict(enumerate(x)), dict(enumerate(y)), 200, 0.95, rep)
        hits.append(res.ci_low <= truth <= res.ci_high)
    return float(np.mean(hits))


def _coverage_models(rng, k, reps, shift=0.3, model_sd=0.3, n_items=20):
    """Share of the group CIs (k + k models) that cover the true group difference ``shift``, and
    how many comparisons had no interval at all."""
    hits, none = [], 0
    for rep in range(reps):
        offsets = rng.normal(scale=model_sd, size=2 * k)
        both = _models(rng, [*(offsets[:k] + shift), *offsets[k:]], n=n_items)
        a = {f"m{i}": both[f"m{i}"] for i in range(k)}
        b = {f"m{i}": both[f"m{i}"] for i in range(k, 2 * k)}
        r = compare_groups(a, b, 200, 0.95, rep).paired
        if np.isnan(r.ci_low):
            none += 1
            continue
        hits.append(r.ci_low <= shift <= r.ci_high)
    return (float(np.mean(hits)) if hits else float("nan")), none


def test_intervals_cover_at_the_sizes_runs_have():
    """Simulated coverage of the nominal 95% intervals, held to >= 93%: paired items at 7 items (a
    percentile bootstrap covered ~86% there), group comparisons at 3 + 3 and 4 + 4 models (a
    bootstrap over models and items covered ~86% at 3 + 3). At 3 + 3 models no exact 95% interval
    exists (the label test's p is never below 2/20), so none may be shown."""
    rng = np.random.default_rng(2026)
    normal = _coverage_items(rng, 7, 300, lambda r, n: _pair(r, n, 0.3, noise=0.5), 0.3)
    def accuracy(r, n):  # right/wrong per item, as the practice tasks score
        return r.binomial(1, 0.7, n) * 1.0, r.binomial(1, 0.4, n) * 1.0

    binary = _coverage_items(rng, 7, 300, accuracy, 0.3)
    assert normal >= 0.93 and binary >= 0.93, (normal, binary)
    three, none3 = _coverage_models(rng, 3, 150)
    assert label_floor(3, 3) >= 0.05 and none3 == 150 and np.isnan(three)  # honest: no interval at all
    four, none4 = _coverage_models(rng, 4, 150)
    assert none4 == 0 and four >= 0.93, four


def test_ci_and_p_of_the_same_test_agree():
    """A CI excludes 0 exactly when the p of the test it inverts is below 0.05: items (sign-flip) and
    models (group-label permutation), over effects that straddle the threshold."""
    rng = np.random.default_rng(77)
    for rep in range(120):
        x, y = _pair(rng, int(rng.integers(6, 16)), float(rng.uniform(0, 0.8)), noise=0.5)
        res = compare(dict(enumerate(x)), dict(enumerate(y)), 300, 0.95, rep)
        assert (res.p_permutation < 0.05) == (res.ci_low > 0 or res.ci_high < 0), (rep, res)
    # right/wrong items: differences in {-1, 0, 1} put 0 on a point where the p jumps (ties count)
    for rep in range(150):
        n = int(rng.integers(6, 13))
        x, y = rng.integers(0, 2, n) * 1.0, rng.integers(0, 2, n) * 1.0
        res = compare(dict(enumerate(x)), dict(enumerate(y)), 300, 0.95, rep)
        assert (res.p_permutation < 0.05) == (res.ci_low > 0 or res.ci_high < 0), (rep, res)
    for rep in range(40):
        offsets = rng.normal(scale=0.3, size=8)
        both = _models(rng, [*(offsets[:4] + rng.uniform(0, 0.8)), *offsets[4:]])
        ma = np.array([list(both[f"m{i}"].values()) for i in range(4)])
        mb = np.array([list(both[f"m{i}"].values()) for i in range(4, 8)])
        lo, hi = model_label_ci(ma, mb, 300, 0.95, rep)
        assert (model_label_p(ma, mb, 300, rep) < 0.05) == (lo > 0 or hi < 0), rep


def test_no_interval_where_the_test_cannot_reach_the_level():
    # 5 items: the sign-flip p is at least 2/32 > 0.05, so no 95% interval exists; 6 items: 2/64
    assert sign_flip_floor(5) == pytest.approx(2 / 32) and sign_flip_floor(6) == pytest.approx(2 / 64)
    assert np.isnan(sign_flip_ci([1, 2, 3, 4, 5], [0] * 5, 100, 0.95, 0)[0])
    lo, hi = sign_flip_ci([1, 2, 3, 4, 5, 6], [0] * 6, 100, 0.95, 0)
    assert 0 < lo < 3.5 < hi
    # 2 + 2 models: C(4, 2) = 6 assignments, a split and its mirror tie: p >= 2/6
    assert label_floor(2, 2) == pytest.approx(2 / 6) and label_floor(3, 4) == pytest.approx(1 / 35)
    assert label_floor(4, 4) == pytest.approx(2 / 70)


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
    # the models are the units: with 2 + 2 of them no 95% interval exists (see below), none is shown
    assert np.isnan(res.paired.ci_low) and np.isnan(res.paired.ci_high)
    # 2 + 2 models, 6 label assignments: every other split separates m0 (+1) from m1 (-0.6) and
    # differs by 0.8 > the observed 0.2, so the labels tell nothing: p = 1
    assert res.p_models == pytest.approx(1.0)
    # perfectly separated groups reach the smallest p the design allows, 2/6
    far = {m: {i: v + 5 for i, v in both[m].items()} for m in ("m2", "m3")}
    assert compare_groups(far, b, 200, 0.95, 1).p_models == pytest.approx(2 / 6)


def test_group_ci_covers_a_new_models_mean():
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
    assert hits >= 36  # items-only CIs (width ~0.05) would miss most of these
