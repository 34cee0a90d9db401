"""Paired comparison rows (metrics/paired.py) on synthetic per-item scores."""

from __future__ import annotations

import numpy as np
import pytest

from culteval.metrics.paired import paired_rows, respondent_rows
from culteval.stats import compare, compare_groups

CFG = {"seed": 3, "metrics": {"bootstrap": 200, "ci": 0.95}, "reference": {"country": "United States"}}


def _scores(offsets: dict[str, float], n: int = 15) -> dict:
    rng = np.random.default_rng(1)
    item = rng.normal(size=n)
    return {(m, "normad", "default"): {"acc_sampled_rot": {f"q{i}": float(item[i] + off + rng.normal(0, .1))
                                                           for i in range(n)}}
            for m, off in offsets.items()}


def _by_metric(rows):
    return {(r["model"], r["metric"]): r for r in rows}


@pytest.mark.parametrize("indic", [["i1"], ["i1", "i2"]])
def test_group_rows_resample_models_only_with_two_per_group(indic):
    scores = _scores({"g1": 0.0, "g2": 0.2, **{m: 0.5 for m in indic}})
    cfg = {**CFG, "models": {"g1": {"group": "global"}, "g2": {"group": "global"},
                             **{m: {"group": "regional"} for m in indic}}}
    rows = _by_metric(paired_rows(scores, cfg))
    name = "group:global-vs-regional"
    per = {m: scores[(m, "normad", "default")]["acc_sampled_rot"] for m in ("g1", "g2", *indic)}
    expect = compare_groups({m: per[m] for m in ("g1", "g2")}, {m: per[m] for m in indic}, 200, 0.95, 3)
    row = rows[(name, "acc_sampled_rot")]
    assert (row["value"], row["ci_low"], row["ci_high"]) == pytest.approx(
        (expect.paired.diff, expect.paired.ci_low, expect.paired.ci_high), nan_ok=True)
    assert row["kind"] == "comparison"
    # 2 + 2 models: the label test cannot reach p < 0.05, so the row has no interval
    assert np.isnan(row["ci_low"]) == (len(indic) == 2)
    assert ((name, "acc_sampled_rot:p_models") in rows) == (len(indic) == 2)
    if len(indic) == 2:
        assert rows[(name, "acc_sampled_rot:p_models")]["value"] == pytest.approx(expect.p_models)


def test_respondent_rows_compare_each_model_with_the_reference_baseline():
    model = {("m", "global_opinions", "native"): {"sim_target": {"a": 0.5, "b": 0.6, "c": 0.4},
                                                  "cad": {"a": 0.1}}}
    us = {("baseline:United States", "global_opinions"): {"sim_target": {"a": 0.8, "b": 0.7, "d": 0.9}}}
    rows = _by_metric(respondent_rows(model, us, CFG))
    assert sorted(rows) == [("delta:m-vs-baseline:United States", f"sim_target{s}")
                            for s in ("", ":p_permutation", ":p_sign")]
    row = rows[("delta:m-vs-baseline:United States", "sim_target")]
    assert row["value"] == pytest.approx(-0.2) and row["n_items"] == 2 and row["strategy"] == "native"
    ref = compare({"a": 0.5, "b": 0.6}, {"a": 0.8, "b": 0.7}, 200, 0.95, 3)
    # two questions: the sign-flip p is at least 2/4, so no 95% interval exists and none is shown
    assert np.isnan(ref.ci_low) and np.isnan(row["ci_low"]) and np.isnan(row["ci_high"])
    assert row["kind"] == "comparison"
