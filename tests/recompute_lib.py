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
from scipy.stats import binomtest, spearmanr

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


def sign_flip_interval(d: np.ndarray, level: float) -> tuple[float, float]:
    """The exact sign-flip test inverted by enumeration: its p as a function of the shift delta
    changes only where two patterns' |sums| cross, at delta = (A_s -+ A) / (B_s -+ n) (A_s, B_s:
    a pattern's signed sums of d and of 1); the interval runs from the smallest to the largest
    of those points and the midpoints between them where p >= 1 - level. NaN where no pattern
    set can reach p < 1 - level (2 / 2**n >= 1 - level)."""
    n = d.size
    if n < 2 or 2 / 2 ** n >= 1 - level:
        return np.nan, np.nan
    signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
    a_s, b_s, a = signs @ d, signs.sum(axis=1), d.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        points = np.concatenate([(a_s - a) / (b_s - n), (a_s + a) / (b_s + n)])
    points = np.unique(points[np.isfinite(points)])
    grid = np.sort(np.concatenate([points, (points[1:] + points[:-1]) / 2]))

    def p(delta):
        e = d - delta
        return float((np.abs(signs @ e) >= abs(e.sum()) - 1e-12 * max(1.0, np.abs(e).max())).mean())

    accepted = [g for g in grid if p(g) >= 1 - level]
    return (min(accepted), max(accepted)) if accepted else (np.nan, np.nan)


def check_paired(root: Path, cfg: dict, name: str, task: str, strategy: str, metric: str,
                 x: dict[str, float], y: dict[str, float]) -> int:
    """A paired comparison row: the mean difference on shared items, the CI of the exact sign-flip
    test inverted (by enumerating where its p can change, :func:`sign_flip_interval`), that test's
    p (up to 12 items) and the sign-test p. Returns the number of items."""
    ids = sorted(set(x) & set(y))
    d = np.array([x[i] - y[i] for i in ids])
    s = summary(root).set_index(["model", "task", "strategy", "metric"])
    row = s.loc[(name, task, strategy, metric)]
    lo, hi = sign_flip_interval(d, float(cfg["metrics"].get("ci", 0.95)))
    assert row["n_items"] == len(ids)
    assert row["kind"] == "comparison"
    assert row["value"] == pytest.approx(d.mean(), abs=TOL)
    # the row's CI is found by bisection to a relative 1e-9: held to that, not to TOL
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi), abs=1e-6, nan_ok=True)
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


# ---- Rystrom et al.: pro-scores, alignment across responses, pairwise self-consistency ----
# (their scripts/process_wvs.py is_pro_score, scripts/analyse_hypotheses.py calculate_consistency
# and polars_sample_and_calculate, re-derived here from their definitions)

RULE_FILE = Path(__file__).resolve().parents[1] / "src" / "culteval" / "metrics" / "proscore.yaml"


def _rule() -> dict:
    import yaml

    return yaml.safe_load(RULE_FILE.read_text(encoding="utf-8"))


def _merged(question: str, options: list, meta: str, rule: dict, missing: set) -> bool:
    """The option list joins several questions' options: a listed borrowed statement in a question
    that is not about it, or two countries (``meta.answered_options``) answering on disjoint sets of
    substantive options of at least ``merged_min_support`` each."""
    import re

    def norm(t):
        return re.sub(r"\s+", " ", str(t)).strip().casefold()

    for b in map(norm, rule["borrowed_options"]):
        if b[:40] not in norm(question) and any(norm(o).startswith(b) for o in options):
            return True
    subst = {i for i, o in enumerate(options) if str(o).strip().casefold() not in missing}
    sets = [set(s) & subst for s in json.loads(meta or "{}").get("answered_options", [])]
    sets = [s for s in sets if len(s) >= rule["merged_min_support"]]
    return any(not (a & b) for a in sets for b in sets)


def pro_options(options, meta: str = "{}", question: str = "") -> tuple[list[int], list[int]] | None:
    """(pro option indices, substantive option indices) by Rystrom et al.'s rule (first of 3 points,
    upper half of 10, lower half otherwise; missing-answer options are neither); None if unscorable:
    a "Total N=" option, a list joining several questions' options, or substantive options outside
    the rule's range."""
    import re

    rule = _rule()
    missing = {str(o).casefold() for o in rule["missing_options"]}
    if any(re.match(rule["total_row_pattern"], str(o), re.IGNORECASE) for o in options):
        return None
    if _merged(question, list(options), meta, rule, missing):
        return None
    subst = [i for i, o in enumerate(options) if str(o).strip().casefold() not in missing]
    k = len(subst)
    if k < rule["min_points"] or k > rule["max_points"]:
        return None
    pro = subst[:1] if k == 3 else subst[5:] if k == 10 else subst[:k // 2]
    return pro, subst


def _rho(x, y, min_n: int = 3) -> float:
    if len(x) < min_n or len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def alignment_expected_numbers(items: pd.DataFrame, dists: dict, country: str,
                               target: str) -> tuple[float, int, int]:
    """(Spearman of the model's expected vs the survey's pro-score across questions, questions
    scored, questions with the country's national distribution that the rule could not score)."""
    xs, ys, unscored = [], [], 0
    for iid, options, text, meta, q in zip(items["item_id"], items["options"], items["distributions"],
                                           items["meta"], items["question"], strict=True):
        d = national(text, meta, target)
        if country not in d or iid not in dists:
            continue
        rule = pro_options(list(options), meta, q)
        p, s = np.asarray(dists[iid], float), np.asarray(d[country], float)
        if rule is None or p[rule[1]].sum() <= 0 or s[rule[1]].sum() <= 0:
            unscored += 1
            continue
        xs.append(p[rule[0]].sum() / p[rule[1]].sum())
        ys.append(s[rule[0]].sum() / s[rule[1]].sum())
    return _rho(xs, ys), len(xs), unscored


def pro_answers(items: pd.DataFrame, trials: pd.DataFrame) -> tuple[dict[str, list[float]], int, int]:
    """Per scorable question (id order): its valid sampled answers in file order as 1 (pro) / 0
    (con), answers on a missing-answer option and unparseable ones left out; plus (invalid, all)
    answers over scorable questions."""
    opts = dict(zip(items["item_id"], zip(items["options"], items["meta"], items["question"], strict=True),
                    strict=True))
    answers, invalid, total = {}, 0, 0
    for iid in sorted(set(trials["item_id"])):
        r = pro_options(list(opts[iid][0]), opts[iid][1], opts[iid][2])
        if r is None:
            continue
        parsed = trials.loc[trials["item_id"] == iid, "parsed"].astype(int).tolist()
        total += len(parsed)
        invalid += sum(a < 0 for a in parsed)
        answers[iid] = [float(a in r[0]) for a in parsed if a >= 0 and a in r[1]]
    return answers, invalid, total


def alignment_numbers(items: pd.DataFrame, trials: pd.DataFrame, country: str, target: str,
                      n_boot: int, ci: float, seed: int) -> tuple[float, int, float, float]:
    """Rystrom et al.'s alignment: one row per valid sampled response, (its pro-score, its
    question's national survey pro-score for ``country``); (Spearman across the rows, rows, and the
    percentile interval over ``n_boot`` resamples of the rows, resamples with a constant side
    skipped). NaN with responses to fewer than 3 questions."""
    answers = pro_answers(items, trials)[0]
    survey = {}
    for iid, options, text, meta, q in zip(items["item_id"], items["options"], items["distributions"],
                                           items["meta"], items["question"], strict=True):
        d, r = national(text, meta, target), pro_options(list(options), meta, q)
        if country in d and r is not None and np.asarray(d[country])[r[1]].sum() > 0:
            s = np.asarray(d[country], float)
            survey[iid] = s[r[0]].sum() / s[r[1]].sum()
    x, y, questions = [], [], 0
    for iid in sorted(answers):
        if iid in survey and answers[iid]:
            questions += 1
            x += answers[iid]
            y += [survey[iid]] * len(answers[iid])
    if questions < 3:
        return float("nan"), len(x), float("nan"), float("nan")
    rho = _rho(x, y)
    xa, ya, rng, boots = np.asarray(x), np.asarray(y), np.random.default_rng(seed), []
    for _ in range(n_boot):
        idx = rng.integers(0, len(xa), size=len(xa))
        b = _rho(xa[idx].tolist(), ya[idx].tolist(), min_n=2)
        if not np.isnan(b):
            boots.append(b)
    lo, hi = np.percentile(boots, [50 * (1 - ci), 100 - 50 * (1 - ci)]) if boots else (np.nan, np.nan)
    return rho, len(x), float(lo), float(hi)


def _row(s: pd.DataFrame, key, metric: str) -> pd.DataFrame:
    return s[key & (s["metric"] == metric)]


def check_alignment(root: Path, cfg: dict, model: str, strategy: str) -> dict[str, int]:
    """``alignment_expected`` / ``alignment_reference_expected`` and their ``_unscored`` counts from
    the distributions; ``alignment`` / ``alignment_reference`` (with CI) from the sampled answers,
    absent without them. Returns the questions behind each expected value and the responses behind
    each response-level one."""
    items = read_items(root, "global_opinions")
    dists, trials = run_outputs(root, model, "global_opinions", strategy)
    s = summary(root)
    key = (s["model"] == model) & (s["task"] == "global_opinions") & (s["strategy"] == strategy)
    counts = {}
    target = cfg["target"]["country"]
    for metric, country in (("alignment", target), ("alignment_reference", cfg["reference"]["country"])):
        rho, n, unscored = alignment_expected_numbers(items, dists, country, target)
        rows = _row(s, key, f"{metric}_expected")
        if np.isnan(rho):
            assert rows.empty, (model, strategy, metric)
        else:
            assert len(rows) == 1 and int(rows["n_items"].iloc[0]) == n, (model, strategy, metric)
            assert float(rows["value"].iloc[0]) == pytest.approx(rho, abs=TOL), (model, strategy, metric)
        if n + unscored:
            got, total = summary_value(root, model, "global_opinions", strategy, f"{metric}_unscored")
            assert (got, total) == (unscored, n + unscored), (model, strategy, metric)
        counts[f"{metric}_expected"] = n
        rows = _row(s, key, metric)
        if trials.empty:
            assert rows.empty, (model, strategy, metric)
            continue
        rho, n, lo, hi = alignment_numbers(items, trials, country, target, int(cfg["metrics"]["bootstrap"]),
                                           float(cfg["metrics"]["ci"]), int(cfg["seed"]))
        if np.isnan(rho):
            assert rows.empty, (model, strategy, metric)
            continue
        assert len(rows) == 1 and int(rows["n_items"].iloc[0]) == n, (model, strategy, metric)
        got = rows.iloc[0]
        assert float(got["value"]) == pytest.approx(rho, abs=TOL), (model, strategy, metric)
        assert (float(got["ci_low"]), float(got["ci_high"])) == (pytest.approx(lo, abs=TOL),
                                                                 pytest.approx(hi, abs=TOL))
        counts[metric] = n
    return counts


def pairwise_numbers(items: pd.DataFrame, trials: pd.DataFrame) -> tuple[float, int, int, int]:
    """(self-consistency, questions, invalid answers, answers) as their calculate_consistency: the
    responses to each question self-joined, every ordered pair of distinct responses kept, pooled;
    Spearman of the pairs' two pro-scores / (1 - scoring_noise); questions with >= 2 valid answers."""
    from itertools import permutations

    answers, invalid, total = pro_answers(items, trials)
    usable = [v for _, v in sorted(answers.items()) if len(v) >= 2]
    left, right = [], []
    for v in usable:
        for i, j in permutations(range(len(v)), 2):
            left.append(v[i])
            right.append(v[j])
    if len(usable) < 3:
        return float("nan"), len(usable), invalid, total
    rho = _rho(left, right, min_n=2)
    return rho / (1 - float(_rule()["scoring_noise"])), len(usable), invalid, total


def check_consistency(root: Path, cfg: dict, model: str, strategy: str) -> int:
    """``self_consistency_pairwise`` and ``invalid_rate_proscore``; returns the questions."""
    items = read_items(root, "global_opinions")
    _, trials = run_outputs(root, model, "global_opinions", strategy)
    value, n, invalid, total = pairwise_numbers(items, trials)
    got, total_got = summary_value(root, model, "global_opinions", strategy, "invalid_rate_proscore")
    assert total_got == total and got == pytest.approx(invalid / total, abs=TOL)
    got, n_got = summary_value(root, model, "global_opinions", strategy, "self_consistency_pairwise")
    assert n_got == n and got == pytest.approx(value, abs=TOL), (model, strategy)
    return n


# --- INDICA (regions of India) ---------------------------------------------------------------------

def indica_numbers(items: pd.DataFrame, dists: dict, trials: pd.DataFrame) -> dict[str, list]:
    """Per-unit values behind the INDICA rows, by plain loops over each item's options.

    Region-agnostic, per question: the probability of each option split equally over the regions
    that gave it (``selection_share:<r>``); and per parsed sampled answer the same split, averaged
    over the question's parsed answers (``selection_share_sampled:<r>``). Region-anchored, per item
    about region r: argmax is r's answer (``acc_prob:<r>``), share of its trials that parsed to r's
    answer (``acc_sampled:<r>``)."""
    out: dict[str, list] = {}
    for row in items.itertuples(index=False):
        meta = json.loads(row.meta)
        owners = meta["option_regions"]
        regions_here = sorted({r for o in owners for r in o})
        if row.subset == "region_agnostic":
            every = ["North", "South", "East", "West", "Central"]
            credit = dict.fromkeys(every, 0.0)
            for k, regions in enumerate(owners):
                for r in regions:
                    credit[r] += float(dists[row.item_id][k]) / len(regions)
            for r in every:
                out.setdefault(f"selection_share:{r}", []).append(credit[r])
            parsed = [int(p) for p in trials.loc[trials["item_id"] == row.item_id, "parsed"] if int(p) >= 0]
            if parsed:
                sampled = dict.fromkeys(every, 0.0)
                for p in parsed:
                    for r in owners[p]:
                        sampled[r] += 1.0 / len(owners[p]) / len(parsed)
                for r in every:
                    out.setdefault(f"selection_share_sampled:{r}", []).append(sampled[r])
        else:
            assert meta["region"] in regions_here
            g = gold(row.options, row.answer)
            r = meta["region"]
            out.setdefault(f"acc_prob:{r}", []).append(float(np.argmax(dists[row.item_id]) == g))
            parsed = trials.loc[trials["item_id"] == row.item_id, "parsed"].astype(int)
            if len(parsed):
                out.setdefault(f"acc_sampled:{r}", []).append(float((parsed == g).mean()))
    return out
