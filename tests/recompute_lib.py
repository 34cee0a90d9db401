"""Independent recomputation of summary.csv from the files a run leaves behind.

numpy/scipy/pandas on ``data/items/[<culture>/]<task>.parquet`` and
``results/raw/[<culture>/]<model>/<task>/<strategy>.parquet`` only (nothing from ``culteval.metrics``),
compared with ``results/metrics/summary.csv``. Used on a synthetic run
(``test_recompute.py``) and on the real end-to-end run (``test_workflow.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import binomtest

TOL = 1e-9


def _culture(root: Path) -> str:
    """The one culture folder of a run (pipeline layout), or "" for a flat synthetic run."""
    folders = sorted(p.name for p in (root / "data" / "items").iterdir() if p.is_dir())
    assert len(folders) <= 1, f"{root}: several cultures {folders}: recompute one at a time"
    return folders[0] if folders else ""


def read_items(root: Path, task: str) -> pd.DataFrame:
    return pd.read_parquet(root / "data" / "items" / _culture(root) / f"{task}.parquet")


def raw_path(root: Path, model: str, task: str, strategy: str) -> Path:
    return root / "results" / "raw" / _culture(root) / model / task / f"{strategy}.parquet"


def dists_from_file(path: Path) -> dict[str, np.ndarray]:
    """Per item: the mean over answer orders of the distribution rows, renormalised."""
    raw = pd.read_parquet(path)
    out = {}
    for iid, grp in raw[raw["trial"] == -1].groupby("item_id"):
        p = np.mean(np.vstack([np.asarray(x, float) for x in grp["probs"]]), axis=0)
        out[iid] = p / p.sum()
    return out


def run_outputs(root: Path, model: str, task: str, strategy: str) -> tuple[dict, pd.DataFrame]:
    """A run file's per-item distributions and its sampled-trial rows."""
    path = raw_path(root, model, task, strategy)
    raw = pd.read_parquet(path)
    return dists_from_file(path), raw[raw["trial"] >= 0]


def summary(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "results" / "metrics" / "summary.csv")


def summary_value(root: Path, model, task, strategy, metric) -> tuple[float, int]:
    s = summary(root)
    key = (s["model"] == model) & (s["task"] == task) & (s["strategy"] == strategy)
    hit = s[key & (s["metric"] == metric)]
    assert len(hit) == 1, (model, task, strategy, metric, len(hit))
    return float(hit["value"].iloc[0]), int(hit["n_items"].iloc[0])


def check(root: Path, model, task, strategy, metric, values) -> None:
    """The summary row is the mean of ``values`` and rests on ``len(values)`` items."""
    got, n = summary_value(root, model, task, strategy, metric)
    assert n == len(values), (model, task, strategy, metric, n, len(values))
    assert got == pytest.approx(float(np.mean(values)), abs=TOL), (model, task, strategy, metric)


def sim(p, q) -> float:
    return 1.0 - float(jensenshannon(np.asarray(p, float), np.asarray(q, float), base=2))


def gold(options, answer) -> int:
    return [str(o).lower() for o in options].index(str(answer).lower())


def national(text: str, meta: str, target: str) -> dict:
    """A question's distributions without the target's when its upstream key names a non-national
    sample (e.g. "India (Non-national sample)"), as the default run scores them."""
    d = json.loads(text or "{}")
    key = str((json.loads(meta or "{}").get("country_keys") or {}).get(target, ""))
    if "non-national" in key.lower():
        d.pop(target, None)
    return d


def opinion_per_question(items: pd.DataFrame, dists: dict, target: str, reference: str) -> dict[str, dict]:
    """Per question: Sim to each country, CAD and nCAD (skipped where the countries agree), national
    target samples only."""
    out = {"sim_target": {}, "sim_reference": {}, "cad": {}, "ncad": {}}
    for iid, text, meta in zip(items["item_id"], items["distributions"], items["meta"], strict=True):
        d = national(text, meta, target)
        if iid not in dists:
            continue
        p = dists[iid]
        if target in d:
            out["sim_target"][iid] = sim(p, d[target])
        if reference in d:
            out["sim_reference"][iid] = sim(p, d[reference])
        if target in d and reference in d:
            cad = sim(p, d[target]) - sim(p, d[reference])
            out["cad"][iid] = cad
            denom = float(jensenshannon(d[target], d[reference], base=2))
            if denom >= 1e-9:
                out["ncad"][iid] = cad / denom
    return out


def opinion_numbers(items: pd.DataFrame, dists: dict, target: str, reference: str) -> dict[str, list]:
    """:func:`opinion_per_question` as lists of values, in the items' order."""
    return {m: list(v.values()) for m, v in opinion_per_question(items, dists, target, reference).items()}


def country_parts(items: pd.DataFrame, target: str, reference: str):
    """(metric suffix, the items) for all items and for each country that has items."""
    yield "", items
    for suffix, country in (("_target", target), ("_reference", reference)):
        part = items[items["country"] == country]
        if len(part):
            yield suffix, part


def culturalbench_numbers(items: pd.DataFrame, dists: dict, trials: pd.DataFrame) -> dict[str, list]:
    """Easy accuracy (argmax and sampled), Hard per judgement and per question (all judgements
    right; sampled: the product of the judgements' sampled correct shares)."""
    items = items.set_index("item_id")
    g = {iid: gold(items.loc[iid, "options"], items.loc[iid, "answer"]) for iid in items.index}
    correct = {iid: float(np.argmax(dists[iid]) == g[iid]) for iid in items.index}
    share = {iid: float((trials.loc[trials["item_id"] == iid, "parsed"] == g[iid]).mean())
             for iid in items.index}
    easy = [i for i in items.index if items.loc[i, "subset"] == "easy"]
    hard = items[items["subset"] == "hard"]
    groups = [list(grp.index) for _, grp in hard.groupby("group_id", sort=True)]
    out = {"acc_prob": [correct[i] for i in easy], "acc_sampled": [share[i] for i in easy],
           "acc_judgement": [correct[i] for i in hard.index],
           "acc_judgement_sampled": [share[i] for i in hard.index],
           "acc_question": [float(all(correct[i] == 1.0 for i in ids)) for ids in groups],
           "acc_question_sampled": [float(np.prod([share[i] for i in ids])) for ids in groups]}
    return {k: v for k, v in out.items() if v}


def check_culturalbench(root: Path, cfg: dict, model: str, strategy: str) -> dict[str, int]:
    """Every CulturalBench accuracy row, for all items and per country; returns the item counts."""
    target, reference = cfg["target"]["country"], cfg["reference"]["country"]
    d, trials = run_outputs(root, model, "culturalbench", strategy)
    counts = {}
    for suffix, part in country_parts(read_items(root, "culturalbench"), target, reference):
        for metric, values in culturalbench_numbers(part, d, trials).items():
            check(root, model, "culturalbench", strategy, metric + suffix, values)
            counts[metric + suffix] = len(values)
    return counts


def check_normad(root: Path, cfg: dict, model: str, strategy: str) -> dict[str, int]:
    """NormAd accuracy (argmax, sampled) and invalid rate per context, for all stories and per country."""
    target, reference = cfg["target"]["country"], cfg["reference"]["country"]
    d, trials = run_outputs(root, model, "normad", strategy)
    counts = {}
    for suffix, part in country_parts(read_items(root, "normad"), target, reference):
        part = part.set_index("item_id")
        for ctx in sorted(set(part["subset"])):
            ids = [i for i in part.index if part.loc[i, "subset"] == ctx]
            g = {i: gold(part.loc[i, "options"], part.loc[i, "answer"]) for i in ids}
            parsed = {i: trials.loc[trials["item_id"] == i, "parsed"] for i in ids}
            for metric, values in (
                    (f"acc_prob_{ctx}", [float(np.argmax(d[i]) == g[i]) for i in ids]),
                    (f"acc_sampled_{ctx}", [float((parsed[i] == g[i]).mean()) for i in ids]),
                    (f"invalid_rate_{ctx}", [float((parsed[i] == -1).mean()) for i in ids])):
                check(root, model, "normad", strategy, metric + suffix, values)
                counts[metric + suffix] = len(values)
    return counts


def _opinions(root: Path, cfg: dict, model: str, strategy: str) -> dict[str, dict]:
    items = read_items(root, "global_opinions")
    d, _ = run_outputs(root, model, "global_opinions", strategy)
    return opinion_per_question(items, d, cfg["target"]["country"], cfg["reference"]["country"])


def check_opinions(root: Path, cfg: dict, model: str, strategy: str) -> dict[str, int]:
    counts = {}
    for metric, per_question in _opinions(root, cfg, model, strategy).items():
        if per_question:
            check(root, model, "global_opinions", strategy, metric, list(per_question.values()))
            counts[metric] = len(per_question)
    return counts


def cad_per_question(root: Path, cfg: dict, model: str, strategy: str) -> dict[str, float]:
    return _opinions(root, cfg, model, strategy)["cad"]


def easy_correct_per_item(root: Path, model: str, strategy: str, country: str | None = None) -> dict:
    """CulturalBench-Easy: 1.0 where the argmax is the gold option, per item (of ``country``)."""
    items = read_items(root, "culturalbench")
    items = items[(items["subset"] == "easy") & ((items["country"] == country) if country else True)]
    d, _ = run_outputs(root, model, "culturalbench", strategy)
    return {i: float(np.argmax(d[i]) == gold(o, a))
            for i, o, a in zip(items["item_id"], items["options"], items["answer"], strict=True)}


def check_paired(root: Path, cfg: dict, name: str, task: str, strategy: str, metric: str,
                 x: dict[str, float], y: dict[str, float]) -> int:
    """A paired comparison row: the mean difference on shared items, the bootstrap CI (one item
    resample for both sides, seeded as params say), the exact sign-flip permutation p (up to 12
    items) and the sign-test p. Returns the number of items."""
    ids = sorted(set(x) & set(y))
    d = np.array([x[i] - y[i] for i in ids])
    s = summary(root).set_index(["model", "task", "strategy", "metric"])
    row = s.loc[(name, task, strategy, metric)]
    n_boot, seed = int(cfg["metrics"]["bootstrap"]), int(cfg["seed"])
    alpha = 100 * (1 - float(cfg["metrics"].get("ci", 0.95))) / 2
    if d.size >= 2:
        idx = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
        lo, hi = np.percentile(d[idx].mean(axis=1), [alpha, 100 - alpha])
    else:  # one item: no interval
        lo = hi = np.nan
    assert row["n_items"] == len(ids)
    assert (row["value"], row["ci_low"], row["ci_high"]) == pytest.approx((d.mean(), lo, hi), abs=TOL,
                                                                          nan_ok=True)
    assert d.size <= 12  # the exact permutation distribution below
    signs = 1 - 2 * ((np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1)
    p_perm = float((np.abs(signs @ d) >= abs(d.sum()) - 1e-12).mean())
    nonzero = int((d != 0).sum())
    p_sign = binomtest(int((d > 0).sum()), nonzero, 0.5).pvalue if nonzero else 1.0
    assert s.loc[(name, task, strategy, f"{metric}:p_permutation"), "value"] == pytest.approx(p_perm)
    assert s.loc[(name, task, strategy, f"{metric}:p_sign"), "value"] == pytest.approx(p_sign)
    return len(ids)


def sim_target_per_question(root: Path, cfg: dict, model: str, strategy: str) -> dict[str, float]:
    """Sim(model, target) per question with a (national) target distribution."""
    return _opinions(root, cfg, model, strategy)["sim_target"]


def respondent_sim_target(root: Path, cfg: dict) -> dict[str, float]:
    """Sim(reference respondents, target) per question with both countries' (national) shares: the
    reference country's answer distribution standing in as a model answering for the target."""
    target, reference = cfg["target"]["country"], cfg["reference"]["country"]
    items = read_items(root, "global_opinions")
    out = {}
    for iid, text, meta in zip(items["item_id"], items["distributions"], items["meta"], strict=True):
        d = national(text, meta, target)
        if target in d and reference in d:
            out[iid] = sim(d[reference], d[target])
    return out


def sampled_correct_per_item(root: Path, model: str, task: str, strategy: str, subset: str,
                             country: str | None = None) -> dict[str, float]:
    """Per item of ``subset`` (of ``country``): the share of its sampled trials (all prompts) whose
    parsed answer is the gold option; an invalid answer (-1) counts as wrong."""
    items = read_items(root, task)
    items = items[(items["subset"] == subset) & ((items["country"] == country) if country else True)]
    _, trials = run_outputs(root, model, task, strategy)
    out = {}
    for iid, opts, ans in zip(items["item_id"], items["options"], items["answer"], strict=True):
        parsed = trials.loc[trials["item_id"] == iid, "parsed"]
        if len(parsed):
            out[iid] = float((parsed == gold(opts, ans)).mean())
    return out
