"""Accuracy for the practice tasks: CulturalBench (Chiu et al. 2024) and NormAd (Rao et al. 2024).

From probabilities: the argmax of the model's permutation-averaged distribution.
From sampled answers: the share of trials whose parsed answer is the gold option;
an invalid answer (parsed == -1) counts as wrong and is reported as ``invalid_rate``.
CulturalBench-Hard: per judgement, and per question (correct only if every
judgement of the question is correct); the latter is bootstrapped over questions.
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


def culturalbench_metrics(items: pd.DataFrame, dists: dict, raw: pd.DataFrame, cfg: dict,
                          inputs=None) -> list[dict]:
    """Easy: acc_prob, acc_sampled, invalid_rate.

    Hard: acc_judgement, acc_question, and from samples acc_judgement_sampled, invalid_rate_hard.
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
            rows.append(mean_row("invalid_rate_hard", ss["invalid"].to_numpy(), cfg))
    return rows


def question_correct(hard: pd.DataFrame, judgement_correct: pd.Series) -> pd.Series:
    """Per Hard question (group_id): 1 only if all of its judgements are present and correct."""
    groups = hard.groupby("group_id", sort=True)["item_id"].apply(list)
    return pd.Series({gid: float(all(judgement_correct.get(i, 0.0) == 1.0 for i in ids))
                      for gid, ids in groups.items() if any(i in judgement_correct.index for i in ids)},
                     dtype=float)


def normad_metrics(items: pd.DataFrame, dists: dict, raw: pd.DataFrame, cfg: dict, inputs=None) -> list[dict]:
    """Per context (items' ``subset``): acc_prob_<ctx>, acc_sampled_<ctx>, invalid_rate_<ctx>."""
    rows = []
    for ctx in sorted(items["subset"].unique()):
        rows += _pc_sampled_rows(items[items["subset"] == ctx], dists, raw, cfg, f"_{ctx}", "acc_prob")
    return rows
