"""culteval verify: a rerun's summary against the published one, with per-column tolerances."""

from __future__ import annotations

import pandas as pd
import pytest

from culteval.cli import main
from culteval.verify import compare

ROWS = [
    {"model": "m", "task": "normad", "strategy": "default", "metric": "acc", "value": 0.5,
     "ci_low": 0.4, "ci_high": 0.6, "n_items": 10},
    {"model": "m", "task": "normad", "strategy": "default", "metric": "ece", "value": float("nan"),
     "ci_low": float("nan"), "ci_high": float("nan"), "n_items": 0},
]


def test_within_tolerance_agrees():
    rerun = pd.DataFrame(ROWS)
    rerun.loc[0, "value"] += 0.019
    assert compare(rerun, pd.DataFrame(ROWS)) == []


def test_beyond_tolerance_and_missing_rows_are_named():
    rerun = pd.DataFrame(ROWS)
    rerun.loc[0, "value"] += 0.03
    rerun.loc[0, "n_items"] = 9
    diffs = compare(rerun.iloc[:1], pd.DataFrame(ROWS), items=0)
    assert any("m/normad/default/acc: value" in d for d in diffs)
    assert any(d.startswith("m/normad/default/acc: n_items 9") and d.endswith("(exact)") for d in diffs)
    assert "m/normad/default/ece: missing from the rerun" in diffs


def test_tolerance_grows_by_the_share_of_items_that_may_flip():
    # another build may flip a near-tied answer: on 10 items one flip moves an accuracy by 0.1
    rerun = pd.DataFrame(ROWS)
    rerun.loc[0, "value"] += 0.15
    assert compare(rerun, pd.DataFrame(ROWS), items=2) == []  # 0.02 + 2/10
    assert compare(rerun, pd.DataFrame(ROWS), items=1) == [
        "m/normad/default/acc: value 0.65 vs published 0.5 (tolerance 0.12)"]
    # the published count sets the allowance: fewer items in the rerun is a difference of its own
    stats: dict = {}
    compare(pd.DataFrame(ROWS), pd.DataFrame(ROWS), stats=stats)
    assert stats == {"rows": 2, "identical": 2, "max_abs_diff": {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}}


def test_cli_exit_status(tmp_path, capsys):
    pub, rerun = tmp_path / "pub.csv", tmp_path / "rerun.csv"
    pd.DataFrame(ROWS).to_csv(pub, index=False)
    df = pd.DataFrame(ROWS)
    df.loc[0, "value"] = 0.9
    df.to_csv(rerun, index=False)
    assert main(["verify", "--summary", str(rerun), "--published", str(pub)]) == 1
    out = capsys.readouterr().out
    assert "value 0.9 vs published 0.5 (tolerance 0.22)" in out
    assert "2 rows in both, 1 identical; largest differences: ci_high 0, ci_low 0, value 0.4" in out
    assert main(["verify", "--summary", str(rerun), "--published", str(pub), "--tol", "value=0.5"]) == 0
    assert main(["verify", "--summary", str(tmp_path / "none.csv"), "--published", str(pub)]) == 1


def test_rows_of_several_cultures_are_matched_by_culture():
    two = pd.DataFrame([{**r, "culture": c} for c in ("da", "nl") for r in ROWS])
    rerun = two.copy()
    rerun.loc[(rerun["culture"] == "nl") & (rerun["metric"] == "acc"), "value"] += 0.03
    assert compare(rerun, two, items=0) == [
        "nl/m/normad/default/acc: value 0.53 vs published 0.5 (tolerance 0.02)"]
    with pytest.raises(ValueError, match=r"published summary lacks columns \['culture'\]"):
        compare(two, pd.DataFrame(ROWS))
