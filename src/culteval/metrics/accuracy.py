"""Accuracy for the practice tasks: CulturalBench (Chiu et al. 2024) and NormAd (Rao et al. 2024).

From probabilities: the argmax of the model's permutation-averaged distribution.
From sampled answers: the share of trials whose parsed answer is the gold option;
an invalid answer (parsed == -1) counts as wrong and is reported as ``invalid_rate``.
CulturalBench-Hard: per judgement, and per question (correct only if every
judgement of the question is correct); the latter is bootstrapped over questions.
From samples, a question's score is the product of its judgements' correct shares:
the chance that one independent sampled answer per judgement gets all of them right.

Every metric is reported over all items and, with suffix ``_target`` /
``_reference``, over the items whose ``country`` is ``cfg.target.country`` /
``cfg.reference.country`` (the paper reports practice accuracy per country).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from culteval.metrics import gold_index, mean_row, sampled_rows


def _gold(items: pd.DataFrame) -> dict[str, int]:
    """Gold option index per labelled item; ``meta.answer_letter`` (CulturalBench) wins over the
    answer text because some upstream questions repeat an option text."""
    out = {}
    cols = zip(items["item_id"], items["options"], items["answer"], items["meta"], strict=True)
    for iid, opts, ans, meta in cols:
        if not isinstance(ans, str):
            continue
        letter = str(json.loads(meta or "{}").get("answer_letter") or "")
        k = ord(letter) - ord("A") if len(letter) == 1 else -1
        out[iid] = k if 0 <= k < len(opts) and str(opts[k]) == ans else gold_index(opts, ans, iid)
    return out


def prob_correct(items: pd.DataFrame, dists: dict[str, np.ndarray]) -> pd.Series:
    """Per item with a gold label and a distribution: argmax == gold (first maximum wins ties)."""
    gold = _gold(items)
    data = {iid: float(int(np.argmax(dists[iid])) == g) for iid, g in gold.items() if iid in dists}
    return pd.Series(data, dtype=float).sort_index()


def sampled_scores(items: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """Per item: share of its trials correct and share invalid (over all its prompts' trials)."""
    gold = _gold(items)
    s = sampled_rows(raw)
    s = s[s["item_id"].isin(list(gold))]
    if s.empty:
        return pd.DataFrame(columns=["correct", "invalid"], dtype=float)
    parsed = s["parsed"].fillna(-1).astype(int).to_numpy()
    g = s["item_id"].map(gold).to_numpy()
    frame = pd.DataFrame({"item_id": s["item_id"].to_numpy(), "correct": (parsed == g).astype(float),
                          "invalid": (parsed == -1).astype(float)})
    return frame.groupby("item_id", sort=True)[["correct", "invalid"]].mean()


def _pc_sampled_rows(items, dists, raw, cfg, suffix: str, prob_name: str) -> list[dict]:
    rows = []
    pc = prob_correct(items, dists)
    if len(pc):
        rows.append(mean_row(prob_name + suffix, pc.to_numpy(), cfg))
    ss = sampled_scores(items, raw)
    if len(ss):
        rows.append(mean_row("acc_sampled" + suffix, ss["correct"].to_numpy(), cfg))
        rows.append(mean_row("invalid_rate" + suffix, ss["invalid"].to_numpy(), cfg))
    return rows


def country_scopes(items: pd.DataFrame, cfg: dict) -> list[tuple[str, pd.DataFrame]]:
    """(suffix, items): all items, then the target's and the reference's where the country has items."""
    out = [("", items)]
    for role in ("target", "reference"):
        sub = items[items["country"] == cfg[role]["country"]]
        if len(sub):
            out.append((f"_{role}", sub))
    return out


def _suffixed(rows: list[dict], suffix: str) -> list[dict]:
    return [{**r, "metric": r["metric"] + suffix} for r in rows]


def culturalbench_metrics(items: pd.DataFrame, dists: dict, raw: pd.DataFrame, cfg: dict,
                          inputs=None) -> list[dict]:
    """``_culturalbench_rows`` over all items and per country (suffixes ``_target``/``_reference``)."""
    rows = []
    for suffix, sub in country_scopes(items, cfg):
        rows += _suffixed(_culturalbench_rows(sub, dists, raw, cfg), suffix)
    return rows


def _culturalbench_rows(items: pd.DataFrame, dists: dict, raw: pd.DataFrame, cfg: dict) -> list[dict]:
    """Easy: acc_prob, acc_sampled, invalid_rate.

    Hard: acc_judgement, acc_question, and from samples acc_judgement_sampled,
    acc_question_sampled, invalid_rate_hard.
    """
    rows = []
    easy = items[items["subset"] == "easy"]
    if len(easy):
        rows += _pc_sampled_rows(easy, dists, raw, cfg, "", "acc_prob")
    hard = items[items["subset"] == "hard"]
    if len(hard):
        pc = prob_correct(hard, dists)
        if len(pc):
            rows.append(mean_row("acc_judgement", pc.to_numpy(), cfg))
            rows.append(mean_row("acc_question", question_correct(hard, pc).to_numpy(), cfg))
        ss = sampled_scores(hard, raw)
        if len(ss):
            rows.append(mean_row("acc_judgement_sampled", ss["correct"].to_numpy(), cfg))
            q_sampled = question_correct_sampled(hard, ss["correct"])
            rows.append(mean_row("acc_question_sampled", q_sampled.to_numpy(), cfg))
            rows.append(mean_row("invalid_rate_hard", ss["invalid"].to_numpy(), cfg))
    return rows


def question_correct(hard: pd.DataFrame, judgement_correct: pd.Series) -> pd.Series:
    """Per Hard question (group_id): 1 only if all of its judgements are present and correct."""
    groups = hard.groupby("group_id", sort=True)["item_id"].apply(list)
    return pd.Series({gid: float(all(judgement_correct.get(i, 0.0) == 1.0 for i in ids))
                      for gid, ids in groups.items() if any(i in judgement_correct.index for i in ids)},
                     dtype=float)


def question_correct_sampled(hard: pd.DataFrame, judgement_share: pd.Series) -> pd.Series:
    """Per Hard question with sampled judgements: the product of its judgements' correct shares
    (a judgement without samples counts 0, as an absent judgement does for ``question_correct``)."""
    groups = hard.groupby("group_id", sort=True)["item_id"].apply(list)
    return pd.Series({gid: float(np.prod([judgement_share.get(i, 0.0) for i in ids]))
                      for gid, ids in groups.items() if any(i in judgement_share.index for i in ids)},
                     dtype=float)


def normad_metrics(items: pd.DataFrame, dists: dict, raw: pd.DataFrame, cfg: dict, inputs=None) -> list[dict]:
    """Per context (items' ``subset``): acc_prob_<ctx>, acc_sampled_<ctx>, invalid_rate_<ctx>; over all
    stories and per country (``..._<ctx>_target``, ``..._<ctx>_reference``)."""
    rows = []
    for suffix, sub in country_scopes(items, cfg):
        for ctx in sorted(sub["subset"].unique()):
            ctx_items = sub[sub["subset"] == ctx]
            rows += _pc_sampled_rows(ctx_items, dists, raw, cfg, f"_{ctx}{suffix}", "acc_prob")
    return rows


def culturalbench_item_scores(items: pd.DataFrame, dists: dict, cfg: dict,
                              raw: pd.DataFrame | None = None) -> dict[str, dict[str, float]]:
    """Per-question scores behind acc_prob and acc_question (argmax) and, when ``raw`` has sampled
    trials, behind acc_sampled and acc_question_sampled (the same per-question values those rows
    average), over all items and per country."""
    out = {}
    for suffix, sub in country_scopes(items, cfg):
        easy, hard = sub[sub["subset"] == "easy"], sub[sub["subset"] == "hard"]
        out["acc_prob" + suffix] = prob_correct(easy, dists).to_dict()
        out["acc_question" + suffix] = question_correct(hard, prob_correct(hard, dists)).to_dict()
        if raw is not None:
            out["acc_sampled" + suffix] = sampled_scores(easy, raw)["correct"].to_dict()
            judged = sampled_scores(hard, raw)["correct"]
            out["acc_question_sampled" + suffix] = question_correct_sampled(hard, judged).to_dict()
    return {m: v for m, v in out.items() if v}


def normad_item_scores(items: pd.DataFrame, dists: dict, cfg: dict,
                       raw: pd.DataFrame | None = None) -> dict[str, dict[str, float]]:
    """Per-story scores behind acc_prob_<context> and, when ``raw`` has sampled trials,
    acc_sampled_<context>, over all stories and per country."""
    out = {}
    for suffix, sub in country_scopes(items, cfg):
        for ctx in sorted(sub["subset"].unique()):
            ctx_items = sub[sub["subset"] == ctx]
            out[f"acc_prob_{ctx}{suffix}"] = prob_correct(ctx_items, dists).to_dict()
            if raw is not None:
                out[f"acc_sampled_{ctx}{suffix}"] = sampled_scores(ctx_items, raw)["correct"].to_dict()
    return {m: v for m, v in out.items() if v}
