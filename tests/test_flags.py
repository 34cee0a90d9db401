"""Nationally representative samples by default, like-for-like Sim, and the summary's flags column."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from culteval.metrics.flags import flag_column
from culteval.metrics.summary import read_summary, summarize, write_summary

T, R = "India", "United States"
CFG = {"seed": 3, "target": {"country": T}, "reference": {"country": R},
       "metrics": {"bootstrap": 50, "ci": 0.95, "low_mass": 0.1},
       "cultural_map": {"microdata": None, "target_year": None},
       "models": {"m1": {"group": "global", "base": None}}}
KEYS = {"national": "India (Current national sample)", "non": "India (Non-national sample)"}


def _go_items():
    rows = []
    spec = [("national", True), ("non", True), ("non", False), ("national", False)]  # (T sample, has R)
    for i, (kind, has_r) in enumerate(spec):
        d = {T: [0.7, 0.3], **({R: [0.2, 0.8]} if has_r else {})}
        keys = {T: KEYS[kind], **({R: R} if has_r else {})}
        rows.append({"item_id": f"global_opinions/{i:04d}", "task": "global_opinions", "subset": "gas",
                     "group_id": f"global_opinions/{i:04d}", "country": None, "question": f"q{i}",
                     "options": ["a", "b"], "answer": None, "distributions": json.dumps(d, sort_keys=True),
                     "context": "{}", "meta": json.dumps({"country_keys": keys})})
    return pd.DataFrame(rows)


def _raw(items, strategy="default"):
    rows = []
    for k, iid in enumerate(items["item_id"]):
        p = [0.6, 0.4] if k % 2 else [0.3, 0.7]
        rows.append({"prompt_id": f"{iid}#{strategy}#p0", "item_id": iid, "permutation": 0, "trial": -1,
                     "probs": p, "option_mass": 0.9, "generated": None, "parsed": None, "n_prompt_tokens": 9})
    return pd.DataFrame(rows)


def _rows(df, model="m1", strategy="default"):
    return df[(df["model"] == model) & (df["strategy"] == strategy)].set_index("metric")


def test_non_national_target_samples_are_dropped_unless_admitted():
    items = _go_items()
    runs = {("m1", "global_opinions", "default"): _raw(items)}
    national = _rows(summarize({"global_opinions": items}, runs, CFG))
    assert national.loc["sim_target", "n_items"] == 2  # questions 0 and 3
    assert national.loc["cad", "n_items"] == 1 and national.loc["sim_reference", "n_items"] == 2
    assert national.loc["target_non_national", "value"] == 0
    assert not national["flags"].str.contains("non-national").any()
    admitted = {**CFG, "metrics": {**CFG["metrics"], "non_national": True}}
    df = summarize({"global_opinions": items}, runs, admitted)
    m = _rows(df)
    assert m.loc["sim_target", "n_items"] == 4 and m.loc["cad", "n_items"] == 2
    assert (m.loc["target_non_national", "value"], m.loc["target_non_national", "n_items"]) == (2, 4)
    for metric in ("sim_target", "sim_target_shared", "cad", "ncad"):
        assert "non-national" in m.loc[metric, "flags"].split(";")
    assert "non-national" not in m.loc["sim_reference", "flags"]
    # the baseline rests on the same admitted samples
    assert "non-national" in _rows(df, f"baseline:{R}", "none").loc["sim_target", "flags"]


def test_sim_target_shared_is_like_for_like_with_the_reference_baseline():
    items = _go_items()
    df = summarize({"global_opinions": items}, {("m1", "global_opinions", "default"): _raw(items)}, CFG)
    m, base = _rows(df), _rows(df, f"baseline:{R}", "none")
    assert m.loc["sim_target_shared", "n_items"] == base.loc["sim_target", "n_items"] == 1
    sim = 1 - float(np.sqrt(0.5 * sum(a * np.log2(a / ((a + b) / 2)) + b * np.log2(b / ((a + b) / 2))
                                      for a, b in zip([0.3, 0.7], [0.7, 0.3], strict=True))))
    assert m.loc["sim_target_shared", "value"] == pytest.approx(sim)


def test_flags_per_row(tmp_path):
    go, cm = "global_opinions", "cultural_map"
    df = pd.DataFrame({"model": ["m1"] * 6 + ["delta:m2-vs-m1"],
                       "task": [go, go, cm, cm, "normad", "culturalbench", go],
                       "strategy": ["default", "native"] + ["default"] * 5,
                       "metric": ["ncad", "sim_target", "map_x_sampled", "map_dist_target_reference",
                                  "acc_prob_none", "acc_prob", "ncad:p_sign"],
                       "value": 0.0})
    (tmp_path / "normad").mkdir()
    (tmp_path / "normad" / "PROVENANCE.json").write_text(json.dumps(
        {"files": {"normad.csv": {"subset": "71 stories"}}}))
    (tmp_path / "culturalbench").mkdir()
    complete = {"files": {"a.csv": {"subset": None}}}
    (tmp_path / "culturalbench" / "PROVENANCE.json").write_text(json.dumps(complete))
    f = flag_column(df, CFG, tmp_path).tolist()
    assert f == ["ncad-assumption", "machine_translated", "y002-independence", "", "subset", "",
                 "ncad-assumption"]
    limited = {**CFG, "tasks": {"culturalbench": {"limit": 5}}}
    assert flag_column(df, limited, None).tolist()[5] == "subset"


def test_flags_survive_the_csv(tmp_path):
    items = _go_items()
    runs = {("m1", "global_opinions", "native"): _raw(items, "native")}
    df = summarize({"global_opinions": items}, runs, CFG)
    write_summary(df, tmp_path / "s.csv")
    back = read_summary(tmp_path / "s.csv")
    assert back["flags"].tolist() == df["flags"].tolist()
    ncad = back.set_index(["model", "metric"]).loc[("m1", "ncad"), "flags"]
    assert ncad == "machine_translated;ncad-assumption"


def test_a_sampled_item_set_flags_its_task_as_a_subset(tmp_path):
    df = pd.DataFrame([{"model": "m1", "task": t, "strategy": "default", "metric": "acc", "value": 0.5}
                       for t in ("normad", "cultural_map")])
    sampled, whole = tmp_path / "normad.txt", tmp_path / "map.txt"
    sampled.write_text("# pinned\n# sample: 1 of the 71 groups of mirror/normad.txt\nnormad/0001\n")
    whole.write_text("# pinned, every item\ncultural_map/A008\n")
    cfg = {"tasks": {"normad": {"itemset": str(sampled), "limit": None},
                     "cultural_map": {"itemset": str(whole), "limit": None}}}
    assert flag_column(df, cfg).tolist() == ["subset", ""]


def test_machine_translated_comes_from_the_prompts_not_the_strategy_name():
    df = pd.DataFrame({"model": ["m1"] * 3, "task": ["normad"] * 3,
                       "strategy": ["default", "cross_lingual", "native"], "metric": "acc_prob_none",
                       "value": 0.5})
    # cross_lingual prompts show only reviewed strings, native ones a machine-made one
    machine = {("normad", "default"): False, ("normad", "cross_lingual"): False, ("normad", "native"): True}
    assert flag_column(df, CFG, None, machine).tolist() == ["", "", "machine_translated"]
    # without the prompts' origins every translated strategy is assumed machine-made
    assert flag_column(df, CFG, None).tolist() == ["", "machine_translated", "machine_translated"]


def test_rows_pooling_strategies_or_cultures_carry_their_inputs_flags():
    from culteval.metrics.flags import with_pooled

    go = "global_opinions"
    df = pd.DataFrame({"culture": ["hi", "hi", "hi", "da", "da", "all"],
                       "model": ["m1", "m1", "mixed_effects", "m1", "baseline:Denmark", "mixed_effects"],
                       "task": [go] * 6, "strategy": ["default", "native", "all", "native", "none", "all"],
                       "metric": ["alignment", "alignment", "coef:consistency", "alignment", "sim_target",
                                  "coef:consistency"], "value": 0.5})
    flags = pd.Series(["subset", "machine_translated;subset", "", "non-national", "ncad-assumption", ""])
    got = with_pooled(df, flags).tolist()
    # the culture-all row: every culture's evaluated runs (not the baseline's metric flag)
    assert got[5] == "machine_translated;non-national;subset"
    # the culture's own strategy-all row: its culture's runs only (not Danish non-national)
    assert got[2] == "machine_translated;subset"
    # through flag_column: a strategy-all row of a subset task is no longer bare
    one = pd.DataFrame({"model": ["m1", "mixed_effects"], "task": ["normad"] * 2,
                        "strategy": ["native", "all"], "metric": ["acc_prob_none", "coef:x"], "value": 0.5})
    limited = {**CFG, "tasks": {"normad": {"limit": 5}}}
    assert flag_column(one, limited, None, {("normad", "native"): True}).tolist() == [
        "machine_translated;subset", "machine_translated;subset"]


def test_the_metrics_stage_reads_machine_translated_from_the_prompt_files(tmp_path):
    from culteval.io import write_parquet
    from culteval.pipeline import by_culture, load_machine_translated
    from culteval.provenance import identity

    paths = []
    for strategy, marks in (("native", [False, True]), ("cross_lingual", [False, False])):
        path = tmp_path / "data" / "prompts" / "hi" / "normad" / f"{strategy}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        df = pd.DataFrame({"task": "normad", "strategy": strategy, "machine_translated": marks})
        made = identity("prompts", culture="hi", task="normad", strategy=strategy)
        write_parquet(df, path, {"identity": made})
        paths.append(str(path))
    grouped = by_culture(paths, "prompts", {"cultures": {"hi": {}}})
    assert load_machine_translated(grouped["hi"]) == {("normad", "native"): True,
                                                      ("normad", "cross_lingual"): False}
