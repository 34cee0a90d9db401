"""Independent recomputation of the headline numbers from the files a run leaves behind.

A seeded synthetic run (contract-conforming items and raw outputs for three models) is
written to parquet, summarised by ``culteval.metrics.summary`` into summary.csv, and the
numbers are recomputed from the parquet files with numpy/scipy/pandas only (nothing from
``culteval.metrics``; ``tests/recompute_lib.py``, which also checks the real end-to-end run
in ``test_workflow.py``) and compared to the CSV to 1e-9.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from recompute_lib import (
    TOL,
    cad_per_question,
    check,
    check_alignment,
    check_consistency,
    check_culturalbench,
    check_normad,
    check_opinions,
    check_paired,
    easy_correct_per_item,
    opinion_numbers,
    read_items,
    respondent_sim_target,
    sampled_correct_per_item,
    sim_target_per_question,
    summary,
    summary_value,
)

from culteval.io import write_parquet
from culteval.metrics.summary import summarize, write_summary
from culteval.pipeline import load_items, load_raw

T, R = "India", "United States"
CFG = {
    "seed": 7,
    "target": {"country": T, "language": "hi"},
    "reference": {"country": R},
    "metrics": {"bootstrap": 50, "ci": 0.95, "low_mass": 0.1},
    "cultural_map": {"microdata": None, "target_year": None},
    "models": {"alpha": {"group": "global", "base": None}, "beta": {"group": "regional", "base": "alpha"},
               "gamma": {"group": "regional", "base": None}},
}
MODELS = sorted(CFG["models"])
STRATEGIES = ("default", "native")
N_PERM, N_TRIALS = 2, 3
BORROWED = "Many of the problems facing our country can be solved by working with other countries"


def _item(task, item_id, options, answer=None, dists=None, subset="all", group_id=None, meta=None,
          country=None):
    return {"item_id": item_id, "task": task, "subset": subset, "group_id": group_id or item_id,
            "country": country, "question": f"q {item_id}", "options": [str(o) for o in options],
            "answer": answer, "distributions": json.dumps(dists or {}, sort_keys=True), "context": "{}",
            "meta": json.dumps(meta or {}, sort_keys=True)}


def _shares(rng, k):
    return (rng.dirichlet(np.ones(k))).round(6).tolist()


def synthetic_items(rng) -> dict[str, pd.DataFrame]:
    go = []
    for i in range(12):
        k = int(rng.integers(2, 5))
        d = {"__all_mean__": _shares(rng, k)}
        if i % 4 != 3:
            d[T] = _shares(rng, k)
        if i % 4 != 2:
            d[R] = _shares(rng, k)
        if i == 0:
            d[R] = d[T]  # JSD(T, R) = 0: nCAD skips it
        options = [f"o{j}" for j in range(k)]
        if i == 5:  # a statement copied from another question: the list is not one question's scale
            options[-1] = BORROWED
        go.append(_item("global_opinions", f"global_opinions/{i:04d}", options, dists=d, subset="gas"))
    cb = []
    for i in range(6):
        opts = [f"c{i}{j}" for j in range(4)]
        g = int(rng.integers(0, 4))
        country = T if i % 2 == 0 else R
        cb.append(_item("culturalbench", f"culturalbench/easy/{i:04d}", opts, opts[g], subset="easy",
                        meta={"answer_letter": "ABCD"[g]}, country=country))
        for j in range(4):
            gid = f"culturalbench/hard/{i:04d}"
            cb.append(_item("culturalbench", f"{gid}/{j}", ["True", "False"], "True" if j == g else "False",
                            subset="hard", group_id=gid, country=country))
    nm = []
    for i in range(5):
        gold = ["Yes", "No", "Neither"][i % 3]  # the loader maps upstream "neutral" to Neither
        for ctx in ("none", "country", "value", "rot"):
            nm.append(_item("normad", f"normad/{i:04d}/{ctx}", ["Yes", "No", "Neither"], gold, subset=ctx,
                            group_id=f"normad/{i:04d}", country=T if i % 3 else R))
    frames = {"global_opinions": go, "culturalbench": cb, "normad": nm}
    return {t: pd.DataFrame(rows).sort_values("item_id").reset_index(drop=True) for t, rows in frames.items()}


def synthetic_raw(rng, items: pd.DataFrame, strategy: str) -> pd.DataFrame:
    rows = []
    for iid, opts in zip(items["item_id"], items["options"], strict=True):
        k = len(opts)
        for p in range(N_PERM):
            pid = f"{iid}#{strategy}#p{p}"
            probs = rng.dirichlet(np.full(k, 0.7))
            rows.append({"prompt_id": pid, "item_id": iid, "permutation": p, "trial": -1,
                         "probs": probs.tolist(), "option_mass": float(rng.uniform(0.02, 1.0)),
                         "generated": None, "parsed": None, "n_prompt_tokens": 30})
            for t in range(N_TRIALS):
                a = int(rng.integers(-1, k))  # -1: an unparseable answer
                rows.append({"prompt_id": pid, "item_id": iid, "permutation": p, "trial": t, "probs": None,
                             "option_mass": None, "generated": "?" if a < 0 else "ABCD"[a], "parsed": a,
                             "n_prompt_tokens": 30})
    return pd.DataFrame(rows).sort_values(["prompt_id", "trial"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run on disk: data/items, results/raw/<model>/<task>/<strategy>.parquet, summary.csv."""
    root = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(20250527)
    items = synthetic_items(rng)
    for task, df in items.items():
        write_parquet(df, root / "data" / "items" / f"{task}.parquet")
    for model in MODELS:
        for task, df in items.items():
            for s in STRATEGIES:
                path = root / "results" / "raw" / model / task / f"{s}.parquet"
                write_parquet(synthetic_raw(rng, df, s), path)
    loaded_items = load_items(sorted((root / "data" / "items").glob("*.parquet")))
    loaded_raw = load_raw(sorted((root / "results" / "raw").glob("*/*/*.parquet")))
    write_summary(summarize(loaded_items, loaded_raw, CFG), root / "results" / "metrics" / "summary.csv")
    return root


# ---- independent recomputation (tests/recompute_lib.py: numpy/scipy/pandas on the files) ----

@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_sim_cad_ncad(run, model, strategy):
    counts = check_opinions(run, CFG, model, strategy)
    assert counts["cad"] == 6 and counts["ncad"] == 5  # q0 has JSD(T, R) = 0


def test_baselines(run):
    items = read_items(run, "global_opinions")
    ref = {i: np.asarray(json.loads(t)[R]) for i, t in zip(items["item_id"], items["distributions"],
                                                            strict=True) if R in json.loads(t)}
    uni = {i: np.full(len(o), 1 / len(o)) for i, o in zip(items["item_id"], items["options"], strict=True)}
    for name, d in ((f"baseline:{R}", ref), ("baseline:uniform", uni)):
        for metric, values in opinion_numbers(items, d, T, R).items():
            check(run, name, "global_opinions", "none", metric, values)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_alignment_is_the_spearman_of_pro_scores(run, model, strategy):
    """Rystrom et al.'s alignment across responses (with its bootstrap CI) and culteval's
    per-question alignment_expected, with the target and the reference country, from the files."""
    counts = check_alignment(run, CFG, model, strategy)
    assert counts["alignment_expected"] == counts["alignment_reference_expected"] == 8
    assert counts["alignment"] >= 8 and counts["alignment_reference"] >= 8  # responses
    # the question with a borrowed option is excluded by reason, out of the 12 scored
    excluded = summary_value(run, model, "global_opinions", strategy, "proscore_excluded_merged_scales")
    assert excluded == (1, 12)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_pairwise_consistency(run, model, strategy):
    """Pairwise self-consistency and the share of invalid sampled answers it leaves out."""
    assert check_consistency(run, CFG, model, strategy) == 11


@pytest.mark.parametrize("model", MODELS)
def test_culturalbench_accuracy(run, model):
    for strategy in STRATEGIES:
        counts = check_culturalbench(run, CFG, model, strategy)
        for suffix, n in (("", 6), ("_target", 3), ("_reference", 3)):
            assert counts["acc_prob" + suffix] == counts["acc_question_sampled" + suffix] == n
            assert counts["acc_judgement" + suffix] == 4 * n


@pytest.mark.parametrize("model", MODELS)
def test_normad_accuracy_per_context_and_country(run, model):
    for strategy in STRATEGIES:
        counts = check_normad(run, CFG, model, strategy)
        for suffix, n in (("", 5), ("_target", 3), ("_reference", 2)):
            for ctx in ("none", "country", "value", "rot"):
                assert counts[f"acc_prob_{ctx}{suffix}"] == counts[f"invalid_rate_{ctx}{suffix}"] == n


def test_group_means_and_deltas(run):
    s = pd.read_csv(run / "results" / "metrics" / "summary.csv").set_index(["model", "task", "strategy",
                                                                          "metric"])
    key = ("global_opinions", "default", "cad")
    v = {m: s.loc[(m, *key), "value"] for m in MODELS}
    assert s.loc[("group:regional", *key), "value"] == pytest.approx((v["beta"] + v["gamma"]) / 2, abs=TOL)
    assert s.loc[("group:regional", *key), "n_items"] == 2
    assert s.loc[("group:global", *key), "value"] == pytest.approx(v["alpha"], abs=TOL)
    assert s.loc[("delta:beta-vs-alpha", *key), "value"] == pytest.approx(v["beta"] - v["alpha"], abs=TOL)
    assert not s.index.get_level_values("model").str.startswith("group:baseline").any()


def test_paired_delta_and_group_cis(run):
    cad = {m: cad_per_question(run, CFG, m, "default") for m in MODELS}
    regional = {i: (cad["beta"][i] + cad["gamma"][i]) / 2 for i in cad["alpha"]}
    assert check_paired(run, CFG, "delta:beta-vs-alpha", "global_opinions", "default", "cad",
                        cad["beta"], cad["alpha"]) == 6
    assert check_paired(run, CFG, "group:global-vs-regional", "global_opinions", "default", "cad",
                        cad["alpha"], regional) == 6
    easy = {m: easy_correct_per_item(run, m, "default", T) for m in MODELS}
    assert check_paired(run, CFG, "delta:beta-vs-alpha", "culturalbench", "default", "acc_prob_target",
                        easy["beta"], easy["alpha"]) == 3


def write_items(df: pd.DataFrame, path: Path, culture: str, task: str) -> Path:
    """An item table with the identity the prepare stage records (what metrics and render check)."""
    from culteval import provenance

    write_parquet(df, path, {"identity": provenance.identity("items", culture=culture, task=task)})
    return path


def write_raw(df: pd.DataFrame, path: Path, culture: str, model: str, task: str, strategy: str,
              items: Path) -> Path:
    """Raw outputs with the identity the infer stage records: made from the item table ``items``."""
    from culteval import provenance

    write_parquet(df, path, {"identity": provenance.identity(
        "raw", culture=culture, model=model, task=task, strategy=strategy,
        sources={"prompts": "0" * 64, "items": items})})
    return path


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_model_vs_the_reference_respondents(run, strategy):
    """delta:<model>-vs-baseline:United States: per question Sim(model, India) minus Sim(US shares,
    India) on the questions with both countries, recomputed from the files."""
    us = respondent_sim_target(run, CFG)
    assert len(us) == 6  # questions with both countries' distributions
    for model in MODELS:
        x = sim_target_per_question(run, CFG, model, strategy)
        assert check_paired(run, CFG, f"delta:{model}-vs-baseline:{R}", "global_opinions", strategy,
                            "sim_target", x, us) == 6


def test_paired_deltas_on_sampled_accuracy(run):
    """Fine-tuned vs base and group vs group on sampled accuracy (the paper's practice protocol) are
    paired like the argmax ones; one global model: the group test keeps the models fixed."""
    cb = {m: sampled_correct_per_item(run, m, "culturalbench", "default", "easy", T) for m in MODELS}
    assert check_paired(run, CFG, "delta:beta-vs-alpha", "culturalbench", "default", "acc_sampled_target",
                        cb["beta"], cb["alpha"]) == 3
    nm = {m: sampled_correct_per_item(run, m, "normad", "native", "rot") for m in MODELS}
    regional = {i: (nm["beta"][i] + nm["gamma"][i]) / 2 for i in nm["alpha"]}
    assert check_paired(run, CFG, "group:global-vs-regional", "normad", "native", "acc_sampled_rot",
                        nm["alpha"], regional) == 5
    assert not summary(run)["metric"].str.endswith(":p_models").any()  # alpha is the only global model
