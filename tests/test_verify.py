"""culteval verify: a rerun's summary against the published one, with per-column tolerances."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from culteval.cli import main
from culteval.config import ROOT
from culteval.verify import check, compare, report, row_scope

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


# --- like with like: a rerun against the published run's record (culteval.runrecord) ----------


def _rows(model: str, value: float = 0.5, metrics=("acc", "ece")) -> list[dict]:
    return [{"culture": "hi", "model": model, "task": "normad", "strategy": s, "metric": m,
             "value": value, "ci_low": value - 0.1, "ci_high": value + 0.1, "n_items": 10}
            for s in ("default", "native") for m in metrics]


def _summary(models: list[str], group_value: float = 0.5, **values) -> pd.DataFrame:
    rows = _rows("baseline:United States", 0.3)
    for m in models:
        rows += _rows(m, values.get(m, 0.5)) + _rows(f"delta:{m}-vs-baseline:United States", 0.2)
    rows += _rows("group:global", group_value)
    rows += [{"culture": "hi", "model": "mixed_effects", "task": "global_opinions", "strategy": "all",
              "metric": "coef:consistency:language[en]", "value": 0.1, "ci_low": -0.2, "ci_high": 0.4,
              "n_items": 2 * len(models)}]
    return pd.DataFrame(rows)


def _record(models: dict, **run) -> dict:
    return {"format": 1, "models": models, "run": {"seed": 20250527, "inference": {"n_ctx": 2048}, **run}}


GEMMA = {"sha256": "a" * 64, "group": "global", "chat_template": "auto", "n_gpu_layers": 0}
SMOL = {"sha256": "b" * 64, "group": "global", "chat_template": "auto", "n_gpu_layers": 0}
PUBLISHED = _record({"gemma": GEMMA, "smol": SMOL})


def test_row_scope_reads_kind_and_falls_back_to_the_model_name():
    # before the summary had a kind column: the name's prefix
    assert row_scope("gemma") == ("model", "gemma")
    assert row_scope("delta:gemma-vs-baseline:United States") == ("model", "gemma")
    assert row_scope("baseline:uniform") == ("fixed", None)
    assert row_scope("reference:ivs_map_fit") == ("fixed", None)
    for pooled in ("group:global", "group:global-vs-regional", "delta:ft-vs-gemma", "mixed_effects",
                   "correlation:consistency-alignment"):
        assert row_scope(pooled) == ("pooled", None), pooled
    # with it: the kind decides (a comparison of one model with the respondents stays that model's)
    assert row_scope("group:global", "group") == ("pooled", None)
    assert row_scope("delta:gemma-vs-baseline:United States", "comparison") == ("model", "gemma")
    assert row_scope("delta:ft-vs-gemma", "comparison") == ("pooled", None)
    assert row_scope("mixed_effects", "fit") == ("pooled", None)
    assert row_scope("baseline:uniform", "baseline") == ("fixed", None)
    assert row_scope("weird-name", "reference") == ("fixed", None)
    assert row_scope("group:x", float("nan")) == ("pooled", None)  # an empty cell: the name decides


def test_an_added_model_is_new_and_pooled_rows_are_recomputed():
    current = _record({"gemma": GEMMA, "smol": SMOL, "second": {**GEMMA, "group": "regional"}})
    rerun = _summary(["gemma", "smol", "second"], group_value=0.9)
    out = check(rerun, _summary(["gemma", "smol"]), current, PUBLISHED)
    assert out.diffs == []
    assert out.added == ["second"] and out.removed == [] and not out.pooled_same
    second = ("second", "delta:second-vs-baseline:United States")
    assert out.rows["new"] == sorted(f"hi/{m}/normad/{s}/{x}" for m in second
                                     for s in ("default", "native") for x in ("acc", "ece"))
    recomputed = out.rows["recomputed over a different set of models"]
    assert "hi/group:global/normad/native/acc" in recomputed
    assert "hi/mixed_effects/global_opinions/all/coef:consistency:language[en]" in recomputed
    # the published models' rows, their comparisons with the respondents and the baseline's are compared
    assert out.stats["rows"] == 5 * 4 and out.stats["identical"] == 20
    report_lines = report(out)
    text = "\n".join(report_lines)
    assert "models added since the published run: second" in text
    assert "new: 8 rows" in text and "recomputed over a different set of models: 5 rows" in text
    assert len(report_lines) < 10


def test_a_removed_model_is_listed_and_pooled_rows_not_compared():
    out = check(_summary(["gemma"], group_value=0.1), _summary(["gemma", "smol"]),
                _record({"gemma": GEMMA}), PUBLISHED)
    assert out.diffs == [] and out.removed == ["smol"]
    assert "hi/smol/normad/default/acc" in out.rows["removed"]
    assert "hi/group:global/normad/default/acc" in out.rows["recomputed over a different set of models"]


def test_a_real_difference_in_a_shared_models_row_still_fails():
    current = _record({"gemma": GEMMA, "smol": SMOL, "second": GEMMA})
    out = check(_summary(["gemma", "smol", "second"], smol=0.9), _summary(["gemma", "smol"]),
                current, PUBLISHED)
    assert "hi/smol/normad/default/acc: value 0.9 vs published 0.5 (tolerance 0.22)" in out.diffs
    # the same models and settings: pooled rows are held to the tolerances too
    both = _summary(["gemma", "smol"])
    out = check(_summary(["gemma", "smol"], group_value=0.9), both, PUBLISHED, PUBLISHED)
    assert "hi/group:global/normad/default/acc: value 0.9 vs published 0.5 (tolerance 0.22)" in out.diffs
    # a published model's row missing from the rerun is a difference, not a removal
    rerun = _summary(["gemma", "smol"])
    out = check(rerun[rerun["metric"] != "ece"], _summary(["gemma", "smol"]), PUBLISHED, PUBLISHED)
    assert "hi/smol/normad/native/ece: missing from the rerun" in out.diffs


def test_changed_settings_are_reported_not_failed():
    current = _record({"gemma": GEMMA, "smol": {**SMOL, "sha256": "c" * 64, "n_gpu_layers": -1}})
    out = check(_summary(["gemma", "smol"], smol=0.9, group_value=0.7), _summary(["gemma", "smol"]),
                current, PUBLISHED)
    assert out.diffs == []
    assert list(out.model_changes) == ["smol"]
    assert out.model_changes["smol"][0] == "n_gpu_layers: 0 -> -1"
    assert out.model_changes["smol"][1].startswith('sha256: "bbbb')
    assert "hi/smol/normad/default/acc" in out.rows["settings changed"]
    assert "hi/group:global/normad/default/acc" in out.rows["recomputed over a different set of models"]
    # a relabelled model (its group): its own rows are compared, pooled rows are not
    out = check(_summary(["gemma", "smol"], group_value=0.7), _summary(["gemma", "smol"]),
                _record({"gemma": GEMMA, "smol": {**SMOL, "group": "regional"}}), PUBLISHED)
    assert out.diffs == [] and out.model_changes == {} and out.stats["rows"] == 20
    # a run-wide setting: nothing is under the published settings
    out = check(_summary(["gemma", "smol"], smol=0.9), _summary(["gemma", "smol"]),
                _record({"gemma": GEMMA, "smol": SMOL}, inference={"n_ctx": 4096}), PUBLISHED)
    assert out.diffs == [] and out.run_changes == ["inference.n_ctx: 2048 -> 4096"]
    assert out.stats.get("rows", 0) == 0 and len(out.rows["run settings changed"]) == 25


def test_published_rows_of_a_model_the_record_lacks_are_an_error():
    with pytest.raises(ValueError, match="published summary has rows of model 'smol'.*make publish"):
        check(_summary(["gemma"]), _summary(["gemma", "smol"]), _record({"gemma": GEMMA}),
              _record({"gemma": GEMMA}))


def _params_with(tmp_path, name: str, **models) -> str:
    cfg = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    cfg["models"].update(models)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return str(path)


def test_cli_after_adding_a_model_exits_0_and_says_what_is_new(tmp_path, capsys):
    pub_dir = tmp_path / "published"
    pub_dir.mkdir()
    published = _params_with(tmp_path, "published.yaml")
    assert main(["--params", published, "run-record", "--out", str(pub_dir / "params.json"),
                 "--models-dir", str(tmp_path / "none")]) == 0
    record = json.loads((pub_dir / "params.json").read_text())
    assert set(record["models"]) == {"gemma-3-270m", "smollm2-135m-instruct"}
    assert record["run"]["tasks"]["normad"]["itemset"]["sha256"]  # the itemset by its bytes
    assert "n_threads" not in record["run"]["inference"]  # results do not depend on it
    names = ["gemma-3-270m", "smollm2-135m-instruct"]
    _summary(names).to_csv(pub_dir / "summary.csv", index=False)
    gemma = yaml.safe_load((ROOT / "params.yaml").read_text())["models"]["gemma-3-270m"]
    added = _params_with(tmp_path, "added.yaml", **{"second-gemma": {**gemma, "group": "regional"}})
    rerun = tmp_path / "rerun.csv"
    _summary([*names, "second-gemma"], group_value=0.8).to_csv(rerun, index=False)
    argv = ["--params", added, "verify", "--summary", str(rerun), "--published", str(pub_dir / "summary.csv"),
            "--models-dir", str(tmp_path / "none")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "models added since the published run: second-gemma" in out
    assert "new: 8 rows" in out and "recomputed over a different set of models: 5 rows" in out
    assert "agrees within tolerance" in out
    # the project's own check (make test) asks for the published run's models and settings
    assert main([*argv, "--strict"]) == 1
    assert "--strict asks for the published run's models and settings" in capsys.readouterr().err
    same = ["--params", published, *argv[2:], "--summary", str(pub_dir / "summary.csv"), "--strict"]
    assert main(same) == 0
    assert "rows pooled over the same models): 25 rows in both, 25 identical" in capsys.readouterr().out
    # a real difference in a published model's row still fails
    _summary([*names, "second-gemma"], **{"smollm2-135m-instruct": 0.9}).to_csv(rerun, index=False)
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "hi/smollm2-135m-instruct/normad/default/acc: value 0.9 vs published 0.5" in out
    # a damaged record is named
    (pub_dir / "params.json").write_text("{")
    assert main(argv) == 1
    assert "params.json: not a run record" in capsys.readouterr().err


def test_cli_without_a_record_compares_every_row_with_a_note(tmp_path, capsys):
    pub, rerun = tmp_path / "pub.csv", tmp_path / "rerun.csv"
    _summary(["gemma"]).to_csv(pub, index=False)
    _summary(["gemma", "smol"], group_value=0.9).to_csv(rerun, index=False)
    assert main(["verify", "--summary", str(rerun), "--published", str(pub)]) == 1
    out = capsys.readouterr().out
    assert "note: no record of the published run's params" in out
    assert "hi/smol/normad/default/acc: only in the rerun" in out
    assert "... and 1 more (--all lists every one)" in out  # 21 differences, 20 shown


def test_malformed_summaries_are_named_before_rows_are_sorted():
    rerun = _summary(["gemma", "smol", "second"])
    current = _record({"gemma": GEMMA, "smol": SMOL, "second": GEMMA})
    twice = pd.concat([rerun, rerun[rerun["model"] == "second"].head(1)])  # a new model's row, twice
    with pytest.raises(ValueError, match="rerun summary repeats rows .*'second'"):
        check(twice, _summary(["gemma", "smol"]), current, PUBLISHED)
    with pytest.raises(ValueError, match=r"published summary lacks columns \['culture'\]"):
        check(rerun, _summary(["gemma", "smol"]).drop(columns="culture"), current, PUBLISHED)
