"""Metrics on synthetic tables that follow docs/contracts.md exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from culteval.metrics import bootstrap_ci, gold_index, model_distributions
from culteval.metrics.accuracy import culturalbench_metrics, normad_metrics
from culteval.metrics.comparisons import finetune_deltas, group_means, mixed_effects
from culteval.metrics.cultural_map import (
    MAP_VARS,
    country_point,
    expected_answers,
    fit_projection,
    map_metrics,
    published_coordinates,
    varimax,
)
from culteval.metrics.opinions import baseline_distributions, opinion_metrics, per_question, similarity
from culteval.metrics.robustness import robustness_metrics
from culteval.metrics.summary import COLUMNS, metrics_json, read_summary, summarize, write_summary

CFG = {
    "seed": 20250527,
    "target": {"country": "India"},
    "reference": {"country": "United States"},
    "country_aliases": {"India": {"ivs_map": ["india"]}, "United States": {"ivs_map": ["united_states"]}},
    "metrics": {"bootstrap": 200, "ci": 0.95, "low_mass": 0.1},
    "cultural_map": {"microdata": None, "target_year": None},
    "models": {"m1": {"group": "global", "base": None}, "m2": {"group": "regional", "base": "m1"}},
}


def hand_jsd(p, q):
    """Jensen-Shannon distance base 2, written out (independent of scipy)."""
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    kl = lambda x, y: sum(a * math.log2(a / b) for a, b in zip(x, y, strict=True) if a > 0)  # noqa: E731
    return math.sqrt(0.5 * kl(p, m) + 0.5 * kl(q, m))


def item(task, item_id, options, answer=None, dists=None, subset="all", group_id=None, meta=None):
    return {"item_id": item_id, "task": task, "subset": subset, "group_id": group_id or item_id,
            "country": None, "question": f"question {item_id}", "options": list(options), "answer": answer,
            "distributions": json.dumps(dists or {}, sort_keys=True), "context": "{}",
            "meta": json.dumps(meta or {}, sort_keys=True)}


def raw_table(probs: dict, trials: dict | None = None, strategy="default", mass=0.9) -> pd.DataFrame:
    """probs: item_id -> [probs per permutation]; trials: item_id -> parsed answers (on p0)."""
    rows = []
    for iid, perms in probs.items():
        for k, p in enumerate(perms):
            pid = f"{iid}#{strategy}#p{k}"
            rows.append({"prompt_id": pid, "item_id": iid, "permutation": k, "trial": -1, "probs": list(p),
                         "option_mass": mass, "generated": None, "parsed": None, "n_prompt_tokens": 10})
    for iid, answers in (trials or {}).items():
        for t, a in enumerate(answers):
            rows.append({"prompt_id": f"{iid}#{strategy}#p0", "item_id": iid, "permutation": 0, "trial": t,
                         "probs": None, "option_mass": None, "generated": str(a), "parsed": a,
                         "n_prompt_tokens": 10})
    return pd.DataFrame(rows).sort_values(["prompt_id", "trial"]).reset_index(drop=True)


IN, US = [0.8, 0.2], [0.2, 0.8]


@pytest.fixture
def go_items():
    return pd.DataFrame([
        item("global_opinions", "global_opinions/0000", ["a", "b"],
             dists={"India": IN, "United States": US, "__all_mean__": [0.5, 0.5]}, meta={"all_mean_n": 3}),
        # five countries: India, the US and three others whose shares sum to (1, 1, 1)
        item("global_opinions", "global_opinions/0001", ["a", "b", "c"],
             dists={"India": [1, 0, 0], "United States": [1, 0, 0], "__all_mean__": [0.6, 0.2, 0.2]},
             meta={"all_mean_n": 5}),
        item("global_opinions", "global_opinions/0002", ["a", "b"], dists={"India": [0.6, 0.4]}),
    ])


@pytest.fixture
def go_raw():
    return raw_table({"global_opinions/0000": [[0.7, 0.3], [0.9, 0.1]],
                      "global_opinions/0001": [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]],
                      "global_opinions/0002": [[0.6, 0.4], [0.6, 0.4]]})


def rows_by_metric(rows):
    return {r["metric"]: r for r in rows}


def test_similarity_hand_computed():
    d = hand_jsd(IN, US)
    assert d == pytest.approx(0.5273252, abs=1e-6)
    assert similarity(IN, US) == pytest.approx(1 - d, abs=1e-12)
    assert similarity(IN, IN) == pytest.approx(1.0)
    assert similarity([1, 0], [0, 1]) == pytest.approx(0.0)


def test_model_distribution_is_mean_over_permutations(go_raw):
    d = model_distributions(go_raw)
    np.testing.assert_allclose(d["global_opinions/0000"], [0.8, 0.2])


def test_sim_cad_ncad(go_items, go_raw):
    dists = model_distributions(go_raw, go_items)
    pq = per_question(go_items, dists, "India", "United States").set_index("item_id")
    d = hand_jsd(IN, US)
    # q0: the model equals India exactly: CAD = JSD(India, US), nCAD = 1
    assert pq.loc["global_opinions/0000", "sim_target"] == pytest.approx(1.0)
    assert pq.loc["global_opinions/0000", "sim_reference"] == pytest.approx(1 - d)
    assert pq.loc["global_opinions/0000", "cad"] == pytest.approx(d)
    assert pq.loc["global_opinions/0000", "ncad"] == pytest.approx(1.0)
    # q1: identical country distributions -> CAD 0 and nCAD skipped
    assert pq.loc["global_opinions/0001", "cad"] == pytest.approx(0.0)
    assert math.isnan(pq.loc["global_opinions/0001", "ncad"])
    m = rows_by_metric(opinion_metrics(go_items, dists, CFG))
    s1 = 1 - hand_jsd([0.5, 0.5, 0.0], [1, 0, 0])
    assert m["sim_target"]["value"] == pytest.approx((1 + s1 + 1) / 3)
    assert m["sim_target"]["n_items"] == 3
    assert m["sim_reference"]["value"] == pytest.approx((1 - d + s1) / 2)
    assert m["sim_reference"]["n_items"] == 2
    assert m["cad"]["value"] == pytest.approx(d / 2)
    assert m["ncad"]["value"] == pytest.approx(1.0) and m["ncad"]["n_items"] == 1
    assert m["ncad_skipped"]["value"] == 1 and m["ncad_skipped"]["n_items"] == 2


def test_ncad_bounded():
    rng = np.random.default_rng(0)
    recs, dists = [], {}
    for i in range(200):
        t, r, p = (rng.dirichlet(np.ones(4) * 0.5) for _ in range(3))
        iid = f"global_opinions/{i:04d}"
        recs.append(item("global_opinions", iid, list("abcd"),
                         dists={"India": t.tolist(), "United States": r.tolist()}))
        dists[iid] = p
    pq = per_question(pd.DataFrame(recs), dists, "India", "United States")
    assert pq["ncad"].notna().all()
    assert pq["ncad"].between(-1 - 1e-12, 1 + 1e-12).all()
    assert pq["ncad"].abs().max() > 0.5  # the bound is not met trivially


def test_baselines(go_items):
    b = baseline_distributions(go_items, CFG)
    assert set(b) == {"baseline:United States", "baseline:uniform", "baseline:all-country mean"}
    ref = rows_by_metric(opinion_metrics(go_items, b["baseline:United States"], CFG))
    assert ref["sim_reference"]["value"] == pytest.approx(1.0)
    assert ref["sim_target"]["n_items"] == 2  # only questions where the reference exists
    uni = per_question(go_items, b["baseline:uniform"], "India", "United States").set_index("item_id")
    assert uni.loc["global_opinions/0000", "sim_target"] == pytest.approx(1 - hand_jsd([0.5, 0.5], IN))
    assert uni.loc["global_opinions/0000", "cad"] == pytest.approx(0.0)  # uniform is equidistant here
    # the all-country mean leaves out the two countries compared: (5 * mean - India - US) / 3
    np.testing.assert_allclose(b["baseline:all-country mean"]["global_opinions/0001"], [1 / 3] * 3)
    # item 0000: the one other country is (0.5, 0.5) * 3 - IN - US = (0.5, 0.5)
    np.testing.assert_allclose(b["baseline:all-country mean"]["global_opinions/0000"], [0.5, 0.5])


def test_bootstrap_contains_value_and_is_deterministic():
    v = np.random.default_rng(1).normal(size=50)
    lo, hi = bootstrap_ci(v, CFG)
    assert lo < v.mean() < hi
    assert (lo, hi) == bootstrap_ci(v, CFG)
    assert (lo, hi) != bootstrap_ci(v, {**CFG, "seed": 1})
    assert all(math.isnan(x) for x in bootstrap_ci([0.3], CFG))


def cb_items():
    recs = [item("culturalbench", "culturalbench/easy/0000", list("wxyz"), "x", subset="easy"),
            item("culturalbench", "culturalbench/easy/0001", list("wxyz"), "w", subset="easy")]
    for q, golds in ((0, ["True", "False", "False", "False"]), (1, ["False", "True", "False", "False"])):
        for j, g in enumerate(golds):
            recs.append(item("culturalbench", f"culturalbench/hard/{q:04d}/{j}", ["True", "False"], g,
                             subset="hard", group_id=f"culturalbench/hard/{q:04d}"))
    return pd.DataFrame(recs)


def test_culturalbench_accuracy_and_hard_rule():
    items = cb_items()
    t, f = [0.9, 0.1], [0.2, 0.8]
    probs = {"culturalbench/easy/0000": [[0.1, 0.6, 0.2, 0.1]],
             "culturalbench/easy/0001": [[0.1, 0.6, 0.2, 0.1]]}
    # question 0: all four right; question 1: judgement 3 wrong
    for j, p in enumerate([t, f, f, f]):
        probs[f"culturalbench/hard/0000/{j}"] = [p]
    for j, p in enumerate([f, t, f, t]):
        probs[f"culturalbench/hard/0001/{j}"] = [p]
    trials = {"culturalbench/easy/0000": [1, 1, -1], "culturalbench/easy/0001": [0, 2, -1]}
    raw = raw_table(probs, trials)
    m = rows_by_metric(culturalbench_metrics(items, model_distributions(raw, items), raw, CFG))
    assert m["acc_prob"]["value"] == pytest.approx(0.5) and m["acc_prob"]["n_items"] == 2
    assert m["acc_sampled"]["value"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert m["invalid_rate"]["value"] == pytest.approx(1 / 3)
    assert m["acc_judgement"]["value"] == pytest.approx(7 / 8) and m["acc_judgement"]["n_items"] == 8
    assert m["acc_question"]["value"] == pytest.approx(1 / 2) and m["acc_question"]["n_items"] == 2


def test_normad_per_context_and_neither():
    opts = ["Yes", "No", "Neither"]
    items = pd.DataFrame([item("normad", "normad/0001/none", opts, "Yes", subset="none",
                               group_id="normad/0001"),
                          item("normad", "normad/0002/none", opts, "Neither", subset="none",
                               group_id="normad/0002"),
                          item("normad", "normad/0001/value", opts, "Neither", subset="value",
                               group_id="normad/0001")])
    raw = raw_table({"normad/0001/none": [[0.5, 0.3, 0.2]], "normad/0002/none": [[0.5, 0.3, 0.2]],
                     "normad/0001/value": [[0.1, 0.2, 0.7]]},
                    {"normad/0001/none": [0, 0], "normad/0002/none": [2, -1], "normad/0001/value": [1, 2]})
    m = rows_by_metric(normad_metrics(items, model_distributions(raw, items), raw, CFG))
    assert m["acc_prob_none"]["value"] == pytest.approx(0.5)
    assert m["acc_prob_value"]["value"] == pytest.approx(1.0)
    assert m["acc_sampled_none"]["value"] == pytest.approx((1 + 0.5) / 2)
    assert m["invalid_rate_none"]["value"] == pytest.approx(0.25)
    assert m["acc_sampled_value"]["value"] == pytest.approx(0.5)
    assert gold_index(opts, "NEITHER") == 2
    with pytest.raises(ValueError, match="normad/9"):
        gold_index(opts, "maybe", "normad/9")


def test_robustness(go_raw):
    raw = pd.concat([go_raw, raw_table({}, {"global_opinions/0000": [0, 0, 1]})], ignore_index=True)
    m = rows_by_metric(robustness_metrics(raw, CFG, ordered_scale=True))
    assert m["position_bias"]["value"] == pytest.approx(hand_jsd([0.7, 0.3], [0.9, 0.1]) / 3)
    assert m["position_bias"]["n_items"] == 3
    assert m["self_consistency"]["value"] == pytest.approx(1 / 3)
    assert m["low_mass_share"]["value"] == 0.0 and m["mean_option_mass"]["value"] == pytest.approx(0.9)
    low = rows_by_metric(robustness_metrics(raw_table({"x": [[1.0]]}, mass=0.05), CFG))
    assert low["low_mass_share"]["value"] == 1.0


def test_summary_long_format_and_independent_recompute(go_items, go_raw, tmp_path):
    raw = {("m1", "global_opinions", "default"): go_raw}
    df = summarize({"global_opinions": go_items}, raw, CFG)
    assert list(df.columns) == COLUMNS
    assert df.equals(df.sort_values(["model", "task", "strategy", "metric"]).reset_index(drop=True))
    assert set(df["model"]) == {"m1", "baseline:United States", "baseline:uniform",
                                "baseline:all-country mean", "group:global",
                                "delta:m1-vs-baseline:United States"}  # the model vs the US respondents
    assert set(df.loc[df["model"].str.startswith("baseline:"), "strategy"]) == {"none"}
    # recompute Sim(target) from the raw rows by hand
    sims = []
    for iid, text in zip(go_items["item_id"], go_items["distributions"], strict=True):
        rows = go_raw[(go_raw["item_id"] == iid) & (go_raw["trial"] == -1)]
        p = np.mean(np.stack(rows["probs"].map(np.asarray).tolist()), axis=0)
        sims.append(1 - hand_jsd(p.tolist(), json.loads(text)["India"]))
    got = df[(df["model"] == "m1") & (df["metric"] == "sim_target")].iloc[0]
    assert got["value"] == pytest.approx(np.mean(sims)) and got["n_items"] == 3
    assert got["ci_low"] <= got["value"] <= got["ci_high"]
    path = tmp_path / "summary.csv"
    write_summary(df, path)
    text = path.read_text()
    assert text.splitlines()[0] == ",".join(COLUMNS)
    # culture first (the hand-made CFG has no language: "target"); empty CI and flags cells
    assert "target,m1,model,global_opinions,default,ncad_skipped,1,,,2," in text.splitlines()
    back = read_summary(path)
    np.testing.assert_allclose(back["value"], df["value"], rtol=1e-9)
    skipped = back[(back["model"] == "m1") & (back["metric"] == "ncad_skipped")].iloc[0]
    assert math.isnan(skipped["ci_low"])
    j = metrics_json(df)
    assert j["target"]["m1"]["global_opinions"]["default"]["sim_target"] == pytest.approx(np.mean(sims))
    assert j["target"]["baseline:United States"]["global_opinions"]["none"]["sim_reference"] == pytest.approx(
        1.0)


def test_summary_rows_say_what_they_are(go_items, go_raw):
    """Each row's kind is set where it is made; values true by construction are reference rows
    without an interval (they carried a bootstrap CI of [1, 1] before)."""
    df = summarize({"global_opinions": go_items}, {("m1", "global_opinions", "default"): go_raw}, CFG)
    kinds = df.groupby("model")["kind"].agg(lambda k: sorted(set(k))).to_dict()
    assert kinds == {"m1": ["model"], "baseline:uniform": ["baseline"],
                     "baseline:all-country mean": ["baseline"],
                     "baseline:United States": ["baseline", "reference"], "group:global": ["group"],
                     "delta:m1-vs-baseline:United States": ["comparison"]}
    us = df[df["model"].eq("baseline:United States")].set_index("metric")
    ref = us[us["kind"].eq("reference")]
    assert set(ref.index) == {"sim_reference", "ncad", "alignment_reference"} & set(us.index)
    assert {"sim_reference", "ncad"} <= set(ref.index)
    assert ref.loc["sim_reference", "value"] == pytest.approx(1.0)
    assert ref.loc["ncad", "value"] == pytest.approx(-1.0)
    assert ref["ci_low"].isna().all() and ref["ci_high"].isna().all()
    assert us.loc["sim_target", "kind"] == "baseline" and not math.isnan(us.loc["sim_target", "ci_low"])


def test_summary_unknown_task_is_named(go_raw):
    with pytest.raises(KeyError, match="normad"):
        summarize({}, {("m1", "normad", "default"): go_raw}, CFG)


def synthetic_microdata(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    secular, selfexp = rng.normal(size=n), rng.normal(size=n)
    # signed loadings: trad items on "secular", survival items on "self-expression"
    trad = {"F063": -0.85, "Y003": -0.8, "F120": 0.8, "G006": -0.75, "E018": -0.75}
    surv = {"Y002": 0.8, "A008": -0.75, "F118": 0.85, "E025": -0.8, "A165": -0.75}
    data = {}
    for v, lam in trad.items():
        data[v] = lam * secular + 0.5 * rng.normal(size=n)
    for v, lam in surv.items():
        data[v] = lam * selfexp + 0.5 * rng.normal(size=n)
    df = pd.DataFrame({v: 5 + 2 * data[v] for v in MAP_VARS})  # raw scales: nonnegative codes
    df["S017"] = rng.uniform(0.5, 1.5, size=n)
    df["country"] = "synthetic"
    df["year"] = 2020
    return df, secular, selfexp


def test_varimax_recovers_simple_structure():
    true = np.array([[0.8, 0.0], [0.7, 0.0], [0.0, 0.8], [0.0, 0.7]])
    c, s = np.cos(0.6), np.sin(0.6)
    rotated = varimax(true @ np.array([[c, -s], [s, c]]))
    np.testing.assert_allclose(np.sort(np.abs(rotated), axis=None), np.sort(np.abs(true), axis=None),
                               atol=1e-5)


def test_projection_on_synthetic_microdata():
    df, secular, selfexp = synthetic_microdata()
    proj = fit_projection(df)
    sc = proj.scores(df[list(MAP_VARS)].to_numpy(float))
    assert np.corrcoef(sc[:, 0], secular)[0, 1] > 0.9
    assert np.corrcoef(sc[:, 1], selfexp)[0, 1] > 0.9
    assert proj.loadings[MAP_VARS.index("F118"), 1] > 0
    assert proj.loadings[MAP_VARS.index("F063"), 0] < 0
    # project: a respondent at the mean lands at the intercepts of the official formulas
    mean_answers = dict(zip(MAP_VARS, proj.mean, strict=True))
    pt = proj.project(mean_answers)
    assert pt["y"] == pytest.approx(-0.10) and pt["x"] == pytest.approx(-0.038)
    high = dict(mean_answers, F118=mean_answers["F118"] + 4)
    assert proj.project(high)["x"] > pt["x"]
    with pytest.raises(ValueError, match="F118"):
        fit_projection(df.drop(columns=["F118"]))


def test_published_coordinates(mirror):
    coords = published_coordinates(mirror / "ivs_map")
    x, y = country_point(coords, "India", CFG)
    assert (round(x, 3), round(y, 3)) == (-0.438, -0.569)
    assert country_point(coords, "United States", CFG) == pytest.approx((1.206, 0.298), abs=1e-3)
    assert coords.loc[coords["geo"] == "india", "year"].item() == 2023
    old = published_coordinates(mirror / "ivs_map", target_year=2000)
    assert old.loc[old["geo"] == "india", "year"].item() == 2001
    assert old.loc[old["geo"] == "united_states", "year"].item() == 1999


def map_items_and_raw():
    recs, probs = [], {}
    for v in ("A008", "A165", "E018", "E025", "F063", "F118", "F120", "G006"):
        recs.append(item("cultural_map", f"cultural_map/{v}", ["lo", "hi"], subset=v, meta={"codes": [1, 4]}))
        probs[f"cultural_map/{v}"] = [[0.5, 0.5]]
    for v, p in (("Y002_1", [1, 0, 0, 0]), ("Y002_2", [0, 0, 1, 0])):
        recs.append(item("cultural_map", f"cultural_map/{v}", list("abcd"), subset=v,
                         meta={"codes": [1, 2, 3, 4]}))
        probs[f"cultural_map/{v}"] = [p]
    for v, p in (("Y003_independence", [1, 0]), ("Y003_determination", [1, 0]),
                 ("Y003_religious_faith", [0, 1]), ("Y003_obedience", [0.5, 0.5])):
        recs.append(item("cultural_map", f"cultural_map/{v}", ["mentioned", "not"], subset=v,
                         meta={"codes": [1, 2]}))
        probs[f"cultural_map/{v}"] = [p]
    return pd.DataFrame(recs), raw_table(probs)


def test_expected_answers_and_map_placement(mirror):
    items, raw = map_items_and_raw()
    expected, answers = expected_answers(items, model_distributions(raw, items))
    assert expected["A008"] == pytest.approx(2.5)
    assert answers["Y002"] == pytest.approx(1.0)  # first = order (1), second = prices (3) -> materialist
    assert answers["Y003"] == pytest.approx((2 + 1.5) - (1 + 1))
    assert set(answers) == set(MAP_VARS)
    dists = model_distributions(raw, items)
    no_micro = rows_by_metric(map_metrics(items, dists, CFG))
    assert "map_x" not in no_micro and no_micro["expected_Y003"]["value"] == pytest.approx(1.5)
    coords = published_coordinates(mirror / "ivs_map")
    placed = rows_by_metric(map_metrics(items, dists, CFG, fit_projection(synthetic_microdata()[0]), coords))
    xi, yi = country_point(coords, "India", CFG)
    assert placed["map_dist_target"]["value"] == pytest.approx(
        math.hypot(placed["map_x"]["value"] - xi, placed["map_y"]["value"] - yi))


def test_comparisons():
    s = pd.DataFrame({"model": ["m1", "m2", "baseline:uniform"], "task": ["normad"] * 3,
                      "strategy": ["default"] * 3, "metric": ["acc_prob_none"] * 3, "value": [0.5, 0.7, 0.33],
                      "ci_low": np.nan, "ci_high": np.nan, "n_items": [10] * 3})
    g = group_means(s, CFG).set_index("group")["value"]
    assert g.to_dict() == {"global": 0.5, "regional": 0.7}
    d = finetune_deltas(s, CFG)
    assert d["delta"].tolist() == pytest.approx([0.2]) and d["base"].tolist() == ["m1"]
    data = pd.DataFrame({"model": ["m1", "m2"], "language": "en", "alignment": [0.1, 0.2],
                         "consistency": [0.3, 0.5], "multilingual": [0.0, 1.0], "family": "f"})
    res = mixed_effects(data)
    msg = "mixed-effects model not fitted: 2 model x strategy rows for 2 fixed-effect columns"
    assert res == {"ok": False, "message": msg}


def test_mixed_effects_fits_with_enough_models():
    rng = np.random.default_rng(3)
    rows, intercept = [], rng.normal(scale=0.2, size=6)
    for i in range(6):
        for lang in ("en", "hi"):
            for _rep in range(4):
                cons = rng.uniform(0, 1)
                rows.append({"model": f"m{i}", "language": lang, "family": "fa" if i % 2 else "fb",
                             "multilingual": i % 3 == 0, "consistency": cons,
                             "alignment": 0.5 * cons + 0.05 * rng.normal() + intercept[i]})
    res = mixed_effects(pd.DataFrame(rows))
    assert res["ok"] and res["n_models"] == 6
    assert res["params"]["consistency:language[en]"] == pytest.approx(0.5, abs=0.2)


def test_summary_places_models_with_microdata(tmp_path, mirror):
    items, raw = map_items_and_raw()
    micro = tmp_path / "ivs.csv"
    synthetic_microdata(n=500)[0].to_csv(micro, index=False)
    cfg = {**CFG, "cultural_map": {"microdata": str(micro), "target_year": None}}
    runs = {("m1", "cultural_map", "default"): raw}
    placed = summarize({"cultural_map": items}, runs, cfg, raw_root=mirror)
    metrics = set(placed["metric"])
    assert {"map_x", "map_y", "map_dist_target", "map_dist_reference", "expected_Y002"} <= metrics
    bare = summarize({"cultural_map": items}, runs, CFG, raw_root=mirror)
    assert "map_x" not in set(bare["metric"]) and "expected_A008" in set(bare["metric"])


def test_gold_prefers_answer_letter_for_duplicate_options():
    items = pd.DataFrame([item("culturalbench", "culturalbench/easy/0009", ["same", "same", "c", "d"], "same",
                               subset="easy", meta={"answer_letter": "B"})])
    raw = raw_table({"culturalbench/easy/0009": [[0.1, 0.7, 0.1, 0.1]]})
    m = rows_by_metric(culturalbench_metrics(items, model_distributions(raw, items), raw, CFG))
    assert m["acc_prob"]["value"] == 1.0


def test_y002_uses_codes_not_option_positions():
    from culteval.metrics.cultural_map import _by_code

    np.testing.assert_allclose(_by_code(np.array([0.1, 0.2, 0.3, 0.4]), [3, 1, 4, 2]), [0.2, 0.4, 0.1, 0.3])


def test_probs_length_mismatch_is_named(go_items):
    bad = raw_table({"global_opinions/0000": [[0.5, 0.3, 0.2]]})
    with pytest.raises(ValueError, match="global_opinions/0000"):
        model_distributions(bad, go_items)


def test_summary_comparison_rows(go_items):
    t = {f"global_opinions/{i:04d}": [0.9 - 0.1 * i, 0.1 + 0.1 * i] for i in range(5)}
    items = pd.DataFrame([item("global_opinions", k, ["a", "b"], dists={"India": v}) for k, v in t.items()])
    m1 = raw_table({k: [[0.5 + 0.05 * i, 0.5 - 0.05 * i]] for i, k in enumerate(t)})
    m2 = raw_table({k: [[0.9 - 0.05 * i, 0.1 + 0.05 * i]] for i, k in enumerate(t)})
    cfg = {**CFG, "models": {**CFG["models"], "m3": {"group": "regional", "base": None}}}
    raw = {("m1", "global_opinions", "default"): m1, ("m2", "global_opinions", "default"): m2,
           ("m3", "global_opinions", "default"): m2}
    df = summarize({"global_opinions": items}, raw, cfg).set_index(["model", "metric"])
    sim = {m: df.loc[(m, "sim_target"), "value"] for m in ("m1", "m2", "m3")}
    # modal India option is a; P_m1(a) rises while India's share falls -> -1; m2 follows it -> +1
    # (the per-question alignment_expected: these runs have no sampled answers, so no alignment)
    assert df.loc[("m1", "alignment_expected"), "value"] == pytest.approx(-1.0)
    assert df.loc[("m2", "alignment_expected"), "value"] == pytest.approx(1.0)
    assert df.loc[("m2", "alignment_expected"), "n_items"] == 5
    assert ("m2", "alignment") not in df.index
    assert df.loc[("group:regional", "sim_target"), "value"] == pytest.approx((sim["m2"] + sim["m3"]) / 2)
    assert df.loc[("group:regional", "sim_target"), "n_items"] == 2
    assert df.loc[("group:global", "sim_target"), "n_items"] == 1
    assert df.loc[("delta:m2-vs-m1", "sim_target"), "value"] == pytest.approx(sim["m2"] - sim["m1"])
    assert df.loc[("delta:m2-vs-m1", "alignment_expected"), "value"] == pytest.approx(2.0)
    assert not any(m.startswith("group:baseline") for m in df.index.get_level_values(0))
    assert "mixed_effects" not in df.index.get_level_values(0)  # 3 models, no self-consistency
    assert math.isnan(df.loc[("group:regional", "sim_target"), "ci_low"])


def test_mixed_effects_rows_and_note():
    from culteval.metrics.comparisons import comparison_rows, mixed_effects_data, mixed_effects_note

    rng = np.random.default_rng(5)
    rows, cfg = [], {**CFG, "target": {"country": "India", "language": "hi"}, "models": {}}
    # each model's own intercept, large beside the noise: the REML variance is well inside its range,
    # so the fit does not hinge on an optimizer's last steps (nor on a BLAS kernel's rounding)
    intercepts = [-0.3, 0.25, 0.1, -0.15, 0.35]
    for i in range(5):
        cfg["models"][f"m{i}"] = {"group": "global" if i % 2 else "regional", "base": None,
                                  "multilingual": {"en": [0.9, 1.0, 0.8, 0.95, 0.7][i],
                                                   "hi": [0.2, 0.9, 0.5, 0.7, 0.4][i]}}
        for s in ("default", "demographic", "cross_lingual", "native"):
            cons = rng.uniform(0, 1)
            align = 0.6 * cons + intercepts[i] + 0.05 * rng.normal()
            # the English default prompt is paired with the reference country (alignment_reference),
            # the Hindi ones with the target; a decoy on the other side must not be read, nor the
            # India-persona demographic prompt (item 4 of issue 28)
            english = s in ("default", "demographic")
            decoy = rng.uniform(-1, 1)
            aligned = (("alignment_reference", align), ("alignment", decoy)) if english else (
                ("alignment", align), ("alignment_reference", decoy))
            for metric, v in (*aligned, ("self_consistency_pairwise", cons)):
                rows.append({"model": f"m{i}", "task": "global_opinions", "strategy": s, "metric": metric,
                             "value": v, "ci_low": np.nan, "ci_high": np.nan, "n_items": 20})
    summary = pd.DataFrame(rows)
    data = mixed_effects_data(summary, cfg)
    assert len(data) == 15 and set(data["language"]) == {"en", "hi"}
    assert "demographic" not in set(data["strategy"])
    assert data.loc[data["strategy"] == "default", "multilingual"].tolist() == [0.9, 1.0, 0.8, 0.95, 0.7]
    assert data.loc[data["strategy"] == "native", "language"].eq("hi").all()
    out = pd.DataFrame(comparison_rows(summary, cfg))
    fit = out[out["model"] == "mixed_effects"].set_index("metric")
    var = fit.loc["var:model_intercept"]
    assert var["value"] > 0 and math.isnan(var["ci_low"]) and fit["flags"].eq("").all()
    coef = fit[fit.index.str.startswith("coef:")]
    assert coef.loc["coef:consistency:language[hi]", "value"] == pytest.approx(0.6, abs=0.2)
    assert coef.loc["coef:consistency:language[en]", "n_items"] == 15
    assert (coef["ci_low"] <= coef["value"]).all() and (coef["value"] <= coef["ci_high"]).all()
    full = pd.concat([summary, out], ignore_index=True)
    assert mixed_effects_note(full, cfg) is None
    few = summary[summary["model"].isin(["m0", "m1", "m2"])]
    note = mixed_effects_note(few, cfg)  # m1 is the only model of its family: the term is an intercept
    assert note.startswith("mixed-effects model not fitted: multilingual is the same for every model of the "
                           "family in the language, so each of these terms is a family x language "
                           "intercept, not an effect of multilingual ability: "
                           "multilingual:family[global]:language[en] (1), "
                           "multilingual:family[global]:language[hi] (0.9);")
    assert note.endswith("the per-language consistency-alignment correlations "
                         "(correlation:consistency-alignment rows) stand in")
    fallback = pd.DataFrame(comparison_rows(few, cfg)).set_index("metric")
    assert fallback.loc["spearman:hi", "model"] == "correlation:consistency-alignment"
    assert fallback.loc["spearman:hi", "n_items"] == 3  # models
    wide = few[few["strategy"].isin(["cross_lingual", "native"])].pivot_table(
        index="model", columns="metric", values="value")  # per model: mean over its Hindi strategies
    rho = spearmanr(wide["self_consistency_pairwise"], wide["alignment"]).statistic
    assert fallback.loc["spearman:hi", "value"] == pytest.approx(rho)
    # two models: a rank correlation is +-1 by construction, so it is left empty and the note says why
    two = summary[summary["model"].isin(["m0", "m1"])]
    assert math.isnan(pd.DataFrame(comparison_rows(two, cfg)).set_index("metric").loc["spearman:hi", "value"])
    assert mixed_effects_note(two, cfg).endswith("stand in, each over >= 3 models with distinct values "
                                                 "(empty for en, hi: fewer models)")


def test_mixed_effects_names_each_unidentified_term():
    """One model, consistency constant within a language (so its column is a multiple of that
    language's multilingual column), multilingual the same within a family: each is named from the
    design, nothing is fitted; a run without sampled opinions says so, not 'too few models'."""
    from culteval.metrics.comparisons import mixed_effects, mixed_effects_note, unidentified

    rows = []
    for i in range(3):
        for lang, cons in (("en", 0.1 * i), ("hi", 0.5)):
            rows.append({"model": "m0", "language": lang, "alignment": 0.2 * i, "consistency": cons,
                         "multilingual": 1.0, "family": "f"})
    reasons = unidentified(pd.DataFrame(rows))
    assert reasons[0] == "random intercept per model: need >= 2 models, have 1"
    assert reasons[1] == ("design rank 3 < 4 columns: not estimable (a linear combination of each other): "
                          "consistency:language[hi], multilingual:family[f]:language[hi]")
    assert reasons[-1].endswith("ability: multilingual:family[f]:language[en] (1), "
                                "multilingual:family[f]:language[hi] (1)")
    assert not mixed_effects(pd.DataFrame(rows))["ok"]
    go = pd.DataFrame([{"model": "m", "task": "global_opinions", "strategy": "default", "metric": "alignment",
                        "value": 0.3, "ci_low": np.nan, "ci_high": np.nan, "n_items": 67}])
    assert mixed_effects_note(go, {**CFG, "models": {"m": {}}}) == (
        "mixed-effects model not fitted: no model x strategy has both GlobalOpinionQA alignment and a "
        "self-consistency value (consistency needs sampled opinion answers: "
        "params.tasks.global_opinions.sampled.trials > 0)")


def test_mixed_effects_recovers_known_consistency_coefficients():
    """Synthetic models in four languages with known consistency:language slopes (of both signs)
    and multilingual:family:language effects: the fit recovers each slope's sign and size."""
    from culteval.metrics.comparisons import mixed_effects

    rng = np.random.default_rng(11)
    slopes = {"en": 0.6, "da": 0.3, "nl": -0.4, "pt": 0.0}
    family_effect = {"a": 0.2, "b": -0.1, "c": 0.05}
    rows = []
    for i in range(24):
        family, multilingual, intercept = "abc"[i % 3], rng.uniform(0, 1), rng.normal(0, 0.05)
        for lang, slope in slopes.items():
            cons = rng.uniform(0, 1)
            align = slope * cons + family_effect[family] * multilingual + intercept + rng.normal(0, 0.03)
            rows.append({"model": f"m{i:02d}", "language": lang, "alignment": align, "consistency": cons,
                         "multilingual": multilingual, "family": family})
    res = mixed_effects(pd.DataFrame(rows))
    assert res["ok"], res["message"]
    for lang, slope in slopes.items():
        est, se = res["params"][f"consistency:language[{lang}]"], res["bse"][f"consistency:language[{lang}]"]
        assert est == pytest.approx(slope, abs=0.08), (lang, est)
        assert abs(est - slope) < 3 * se  # the interval covers the truth
        if slope:
            assert np.sign(est) == np.sign(slope) and res["pvalues"][f"consistency:language[{lang}]"] < 0.01


def test_mixed_effects_recovers_per_culture_languages_through_the_summary():
    """The same recovery through the summary a run over several cultures writes: each culture's
    native prompts carry its own language (cfg.cultures.<key>.language) and are paired with its
    country (alignment), English prompts with the reference country (alignment_reference); the
    other alignment row is a decoy that must not be read."""
    from culteval.metrics.comparisons import mixed_effects, mixed_effects_data

    rng = np.random.default_rng(11)
    slopes = {"en": 0.6, "da": 0.3, "nl": -0.4, "pt": 0.0}
    family_effect = {"a": 0.2, "b": -0.1, "c": 0.05}
    cfg = {"cultures": {c: {"language": c} for c in ("da", "nl", "pt")}, "models": {}}
    rows = []
    for i in range(24):
        model, family, multilingual = f"m{i:02d}", "abc"[i % 3], float(rng.uniform(0, 1))
        cfg["models"][model] = {"family": family, "group": "g",
                                "multilingual": {lang: multilingual for lang in slopes}}
        intercept = rng.normal(0, 0.05)
        for culture in ("da", "nl", "pt"):
            for strategy, lang in (("default", "en"), ("native", culture)):
                cons = rng.uniform(0, 1)
                align = (slopes[lang] * cons + family_effect[family] * multilingual + intercept
                         + rng.normal(0, 0.03))
                used, decoy = ("alignment_reference", "alignment") if lang == "en" else (
                    "alignment", "alignment_reference")
                for metric, v in ((used, align), (decoy, rng.uniform(-1, 1)),
                                  ("self_consistency_pairwise", cons)):
                    rows.append({"culture": culture, "model": model, "task": "global_opinions",
                                 "strategy": strategy, "metric": metric, "value": v, "ci_low": np.nan,
                                 "ci_high": np.nan, "n_items": 20})
    data = mixed_effects_data(pd.DataFrame(rows), cfg)
    assert len(data) == 24 * 6 and sorted(set(data["language"])) == ["da", "en", "nl", "pt"]
    res = mixed_effects(data)
    assert res["ok"], res["message"]
    for lang, slope in slopes.items():
        est, se = res["params"][f"consistency:language[{lang}]"], res["bse"][f"consistency:language[{lang}]"]
        assert est == pytest.approx(slope, abs=0.08), (lang, est)
        assert abs(est - slope) < 3 * se
        if slope:
            assert np.sign(est) == np.sign(slope) and res["pvalues"][f"consistency:language[{lang}]"] < 0.01
