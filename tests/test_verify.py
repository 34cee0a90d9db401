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
    diffs = compare(rerun.iloc[:1], pd.DataFrame(ROWS))
    assert any("m/normad/default/acc: value" in d for d in diffs)
    assert any(d.startswith("m/normad/default/acc: n_items 9") and d.endswith("(exact)") for d in diffs)
    assert "m/normad/default/ece: missing from the rerun" in diffs


def test_cli_exit_status(tmp_path, capsys):
    pub, rerun = tmp_path / "pub.csv", tmp_path / "rerun.csv"
    pd.DataFrame(ROWS).to_csv(pub, index=False)
    df = pd.DataFrame(ROWS)
    df.loc[0, "value"] = 0.9
    df.to_csv(rerun, index=False)
    assert main(["verify", "--summary", str(rerun), "--published", str(pub)]) == 1
    assert "value 0.9 vs published 0.5" in capsys.readouterr().out
    assert main(["verify", "--summary", str(rerun), "--published", str(pub), "--tol", "value=0.5"]) == 0
    assert main(["verify", "--summary", str(tmp_path / "none.csv"), "--published", str(pub)]) == 1


def test_rows_of_several_cultures_are_matched_by_culture():
    two = pd.DataFrame([{**r, "culture": c} for c in ("da", "nl") for r in ROWS])
    rerun = two.copy()
    rerun.loc[(rerun["culture"] == "nl") & (rerun["metric"] == "acc"), "value"] += 0.03
    assert compare(rerun, two) == ["nl/m/normad/default/acc: value 0.53 vs published 0.5 (tolerance 0.02)"]
    with pytest.raises(ValueError, match=r"published summary lacks columns \['culture'\]"):
        compare(two, pd.DataFrame(ROWS))
