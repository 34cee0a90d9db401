"""Independent recomputation of the headline numbers from the files a run leaves behind.

A seeded synthetic run (contract-conforming items and raw outputs for three models) is
written to parquet, summarised by ``culteval.metrics.summary`` into summary.csv, and the
numbers are recomputed here from the parquet files with numpy/scipy/pandas only (nothing
from ``culteval.metrics``) and compared to the CSV to 1e-9.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import binomtest, spearmanr

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
TOL = 1e-9


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
        go.append(_item("global_opinions", f"global_opinions/{i:04d}", [f"o{j}" for j in range(k)], dists=d,
                        subset="gas"))
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


# ---- independent recomputation (numpy/scipy/pandas on the files) ----

def read_items(root, task) -> pd.DataFrame:
    return pd.read_parquet(root / "data" / "items" / f"{task}.parquet")


def dists_from_file(path) -> dict[str, np.ndarray]:
    raw = pd.read_parquet(path)
    out = {}
    for iid, grp in raw[raw["trial"] == -1].groupby("item_id"):
        p = np.mean(np.vstack([np.asarray(x, float) for x in grp["probs"]]), axis=0)
        out[iid] = p / p.sum()
    return out


def summary_value(root, model, task, strategy, metric) -> tuple[float, int]:
    s = pd.read_csv(root / "results" / "metrics" / "summary.csv")
    key = (s["model"] == model) & (s["task"] == task) & (s["strategy"] == strategy)
    hit = s[key & (s["metric"] == metric)]
    assert len(hit) == 1, (model, task, strategy, metric, len(hit))
    return float(hit["value"].iloc[0]), int(hit["n_items"].iloc[0])


def sim(p, q) -> float:
    return 1.0 - float(jensenshannon(np.asarray(p, float), np.asarray(q, float), base=2))


def opinion_numbers(items: pd.DataFrame, dists: dict) -> dict[str, list[float]]:
    out = {"sim_target": [], "sim_reference": [], "cad": [], "ncad": []}
    for iid, text in zip(items["item_id"], items["distributions"], strict=True):
        d = json.loads(text)
        if iid not in dists:
            continue
        p = dists[iid]
        if T in d:
            out["sim_target"].append(sim(p, d[T]))
        if R in d:
            out["sim_reference"].append(sim(p, d[R]))
        if T in d and R in d:
            cad = sim(p, d[T]) - sim(p, d[R])
            out["cad"].append(cad)
            denom = float(jensenshannon(d[T], d[R], base=2))
            if denom >= 1e-9:
                out["ncad"].append(cad / denom)
    return out


def check(root, model, task, strategy, metric, values) -> None:
    got, n = summary_value(root, model, task, strategy, metric)
    assert n == len(values), (model, task, strategy, metric)
    assert got == pytest.approx(float(np.mean(values)), abs=TOL), (model, task, strategy, metric)


def gold(options, answer) -> int:
    norm = [o.lower() for o in options]
    return norm.index(answer.lower())


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_sim_cad_ncad(run, model, strategy):
    items = read_items(run, "global_opinions")
    d = dists_from_file(run / "results" / "raw" / model / "global_opinions" / f"{strategy}.parquet")
    nums = opinion_numbers(items, d)
    assert len(nums["cad"]) == 6 and len(nums["ncad"]) == 5  # q0 has JSD(T, R) = 0
    for metric, values in nums.items():
        check(run, model, "global_opinions", strategy, metric, values)


def test_baselines(run):
    items = read_items(run, "global_opinions")
    ref = {i: np.asarray(json.loads(t)[R]) for i, t in zip(items["item_id"], items["distributions"],
                                                            strict=True) if R in json.loads(t)}
    uni = {i: np.full(len(o), 1 / len(o)) for i, o in zip(items["item_id"], items["options"], strict=True)}
    for name, d in ((f"baseline:{R}", ref), ("baseline:uniform", uni)):
        for metric, values in opinion_numbers(items, d).items():
            check(run, name, "global_opinions", "none", metric, values)


def test_alignment_spearman(run):
    items = read_items(run, "global_opinions")
    for model in MODELS:
        d = dists_from_file(run / "results" / "raw" / model / "global_opinions" / "default.parquet")
        xs, ys = [], []
        for iid, text in zip(items["item_id"], items["distributions"], strict=True):
            t = json.loads(text).get(T)
            if t is not None:
                k = int(np.argmax(t))
                xs.append(d[iid][k])
                ys.append(t[k])
        got, n = summary_value(run, model, "global_opinions", "default", "alignment")
        assert n == 9 and got == pytest.approx(spearmanr(xs, ys).statistic, abs=TOL)


def run_outputs(run: Path, model: str, task: str, strategy: str) -> tuple[dict, pd.DataFrame]:
    """A run file's per-item distributions and its sampled-trial rows."""
    path = run / "results" / "raw" / model / task / f"{strategy}.parquet"
    raw = pd.read_parquet(path)
    return dists_from_file(path), raw[raw["trial"] >= 0]


@pytest.mark.parametrize("model", MODELS)
def test_culturalbench_accuracy(run, model):
    all_items = read_items(run, "culturalbench").set_index("item_id")
    for strategy in STRATEGIES:
        d, trials = run_outputs(run, model, "culturalbench", strategy)
        for suffix, country in (("", None), ("_target", T), ("_reference", R)):
            items = all_items if country is None else all_items[all_items["country"] == country]
            g = {iid: gold(items.loc[iid, "options"], items.loc[iid, "answer"]) for iid in items.index}
            correct = {iid: float(np.argmax(d[iid]) == g[iid]) for iid in items.index}
            share = {iid: float((trials.loc[trials["item_id"] == iid, "parsed"] == g[iid]).mean())
                     for iid in items.index}
            easy = [correct[i] for i in items.index if items.loc[i, "subset"] == "easy"]
            hard = items[items["subset"] == "hard"]
            judgements = [correct[i] for i in hard.index]
            groups = [grp.index for _, grp in hard.groupby("group_id")]
            questions = [float(all(correct[i] == 1.0 for i in ids)) for ids in groups]
            q_sampled = [float(np.prod([share[i] for i in ids])) for ids in groups]
            check(run, model, "culturalbench", strategy, "acc_prob" + suffix, easy)
            check(run, model, "culturalbench", strategy, "acc_judgement" + suffix, judgements)
            check(run, model, "culturalbench", strategy, "acc_question" + suffix, questions)
            check(run, model, "culturalbench", strategy, "acc_question_sampled" + suffix, q_sampled)
            n = {"": 6, "_target": 3, "_reference": 3}[suffix]
            assert len(easy) == n and len(judgements) == 4 * n and len(questions) == n


@pytest.mark.parametrize("model", MODELS)
def test_normad_accuracy_per_context_and_country(run, model):
    all_items = read_items(run, "normad").set_index("item_id")
    for strategy in STRATEGIES:
        d, trials = run_outputs(run, model, "normad", strategy)
        for suffix, country, n in (("", None, 5), ("_target", T, 3), ("_reference", R, 2)):
            items = all_items if country is None else all_items[all_items["country"] == country]
            for ctx in ("none", "country", "value", "rot"):
                ids = [i for i in items.index if items.loc[i, "subset"] == ctx]
                assert len(ids) == n
                g = {i: gold(items.loc[i, "options"], items.loc[i, "answer"]) for i in ids}
                by_prob = [float(np.argmax(d[i]) == g[i]) for i in ids]
                check(run, model, "normad", strategy, f"acc_prob_{ctx}{suffix}", by_prob)
                sampled = [float((trials.loc[trials["item_id"] == i, "parsed"] == g[i]).mean()) for i in ids]
                invalid = [float((trials.loc[trials["item_id"] == i, "parsed"] == -1).mean()) for i in ids]
                check(run, model, "normad", strategy, f"acc_sampled_{ctx}{suffix}", sampled)
                check(run, model, "normad", strategy, f"invalid_rate_{ctx}{suffix}", invalid)


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


def _cad_per_question(run, model, strategy="default") -> dict[str, float]:
    items = read_items(run, "global_opinions")
    d = dists_from_file(run / "results" / "raw" / model / "global_opinions" / f"{strategy}.parquet")
    out = {}
    for iid, text in zip(items["item_id"], items["distributions"], strict=True):
        dd = json.loads(text)
        if T in dd and R in dd:
            out[iid] = sim(d[iid], dd[T]) - sim(d[iid], dd[R])
    return out


def _paired_ci(d):
    idx = np.random.default_rng(CFG["seed"]).integers(0, d.size, size=(CFG["metrics"]["bootstrap"], d.size))
    return np.percentile(d[idx].mean(axis=1), [2.5, 97.5])


def test_paired_delta_and_group_cis(run):
    s = pd.read_csv(run / "results" / "metrics" / "summary.csv").set_index(["model", "task", "strategy",
                                                                          "metric"])
    cad = {m: _cad_per_question(run, m) for m in MODELS}
    ids = sorted(cad["alpha"])
    sides = {"delta:beta-vs-alpha": (np.array([cad["beta"][i] for i in ids]),
                                     np.array([cad["alpha"][i] for i in ids])),
             "group:global-vs-regional": (np.array([cad["alpha"][i] for i in ids]),
                                          np.array([(cad["beta"][i] + cad["gamma"][i]) / 2 for i in ids]))}
    for name, (x, y) in sides.items():
        d = x - y
        row = s.loc[(name, "global_opinions", "default", "cad")]
        lo, hi = _paired_ci(d)
        assert row["n_items"] == len(ids) == 6
        assert (row["value"], row["ci_low"], row["ci_high"]) == pytest.approx((d.mean(), lo, hi), abs=TOL)
        signs = 1 - 2 * ((np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1)  # exact for 6 items
        p_perm = float((np.abs(signs @ d) >= abs(d.sum()) - 1e-12).mean())
        p_sign = binomtest(int((d > 0).sum()), int((d != 0).sum()), 0.5).pvalue
        key = (name, "global_opinions", "default")
        assert s.loc[(*key, "cad:p_permutation"), "value"] == pytest.approx(p_perm)
        assert s.loc[(*key, "cad:p_sign"), "value"] == pytest.approx(p_sign)
