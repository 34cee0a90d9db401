"""Rystrom et al. (2025, "Multilingual != Multicultural"): pro-scores, directional alignment and
split-half self-consistency.

A question's *pro-score* is the share of its substantive answers that fall on the "pro" options
(``proscore.yaml``: the versioned rule, taken from their ``scripts/process_wvs.py``). For the survey
it is read from the country's answer shares, for a model from its option distribution (alignment)
or from its sampled answers (self-consistency). culteval applies the rule to GlobalOpinionQA
questions; the paper used WVS/EVS items.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.stats import spearmanr

from culteval.metrics import load_distributions, sampled_rows

RULE_FILE = Path(__file__).with_name("proscore.yaml")
MIN_QUESTIONS = 3
PRO, CON, MISSING = 1, 0, -1


@functools.lru_cache(maxsize=1)
def rule() -> dict:
    """The pro-score rule file, checked for the keys this module reads."""
    text = RULE_FILE.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    need = {"version", "min_points", "max_points", "missing_options", "scoring_noise", "splits"}
    missing = sorted(need - set(data or {}))
    if missing:
        raise ValueError(f"{RULE_FILE}: missing key(s) {missing}")
    if not 0 <= float(data["scoring_noise"]) < 1:
        raise ValueError(f"{RULE_FILE}: scoring_noise must be in [0, 1), got {data['scoring_noise']!r}")
    return {**data, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "missing_options": frozenset(str(o).strip().casefold() for o in data["missing_options"])}


def rule_record() -> dict:
    """What outputs record about the rule: file, version, sha256."""
    r = rule()
    return {"file": "culteval/metrics/proscore.yaml", "version": r["version"], "sha256": r["sha256"]}


def option_roles(options) -> np.ndarray | None:
    """Per option (upstream order): PRO, CON or MISSING; None when the rule cannot score the
    question (its number of substantive options is outside [min_points, max_points])."""
    r = rule()
    missing = np.array([str(o).strip().casefold() in r["missing_options"] for o in options])
    k = int((~missing).sum())
    if not r["min_points"] <= k <= r["max_points"]:
        return None
    points = np.cumsum(~missing)  # 1-based scale point of each substantive option
    if k == 3:
        pro = points == 1
    elif k == 10:
        pro = points > 5
    else:
        pro = points <= k // 2
    return np.where(missing, MISSING, np.where(pro, PRO, CON))


def pro_score(shares, roles: np.ndarray) -> float:
    """Share on the pro options among the substantive ones; NaN when they hold no mass."""
    p = np.asarray(shares, float)
    if len(p) != len(roles):
        raise ValueError(f"{len(p)} shares for {len(roles)} options")
    total = p[roles != MISSING].sum()
    return float(p[roles == PRO].sum() / total) if total > 0 else float("nan")


def _spearman(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < MIN_QUESTIONS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")  # a constant side: the correlation is undefined
    return float(spearmanr(x, y).statistic)


def paired_pro_scores(items: pd.DataFrame, dists: dict[str, np.ndarray],
                      country: str) -> tuple[pd.DataFrame, int]:
    """Per question with a ``country`` distribution and a model distribution: the model's and the
    survey's pro-scores (columns item_id, model, survey), and how many such questions the rule
    could not score (substantive options out of range, or no mass on substantive options)."""
    rows, unscored = [], 0
    cols = zip(items["item_id"], items["options"], items["distributions"], strict=True)
    for item_id, options, text in cols:
        survey = load_distributions(text).get(country)
        if survey is None or item_id not in dists:
            continue
        roles = option_roles(options)
        if roles is None:
            unscored += 1
            continue
        m, s = pro_score(dists[item_id], roles), pro_score(survey, roles)
        if np.isnan(m) or np.isnan(s):
            unscored += 1
            continue
        rows.append({"item_id": item_id, "model": m, "survey": s})
    return pd.DataFrame(rows, columns=["item_id", "model", "survey"]), unscored


def alignment(items: pd.DataFrame, dists: dict[str, np.ndarray], country: str) -> tuple[float, int, int]:
    """(Spearman across questions of model vs survey pro-score, questions scored, questions
    excluded by the rule); the correlation is NaN below 3 questions or with a constant side."""
    pq, unscored = paired_pro_scores(items, dists, country)
    return _spearman(pq["model"], pq["survey"]), len(pq), unscored


def sampled_pro_answers(raw: pd.DataFrame, items: pd.DataFrame) -> tuple[dict[str, np.ndarray], int, int]:
    """Per scorable question: its sampled answers as 1 (pro) / 0 (con), over every answer order and
    trial; plus (invalid answers, sampled answers) over scorable questions. Unparseable answers
    (parsed == -1) and answers on a missing-answer option are left out: they never agree with
    anything."""
    s = sampled_rows(raw)
    roles = {i: option_roles(o) for i, o in zip(items["item_id"], items["options"], strict=True)}
    out, invalid, total = {}, 0, 0
    for item_id, grp in s.groupby("item_id", sort=True):
        r = roles.get(item_id)
        if r is None:
            continue
        parsed = grp["parsed"].fillna(-1).astype(int).to_numpy()
        total += len(parsed)
        invalid += int((parsed < 0).sum())
        valid = parsed[parsed >= 0]
        if valid.size and valid.max() >= len(r):
            raise ValueError(f"raw outputs: item {item_id!r} has parsed answer {int(valid.max())} "
                             f"but {len(r)} options")
        role = r[valid]
        out[str(item_id)] = (role[role != MISSING] == PRO).astype(float)
    return out, invalid, total


def split_half(answers: dict[str, np.ndarray], seed: int, splits: int | None = None,
               noise: float | None = None) -> tuple[float, int]:
    """Split-half self-consistency: per seeded split, each question's answers (>= 2) are shuffled
    and cut into two halves of equal size (an odd one out is dropped), the two halves' pro-scores
    are Spearman-correlated across questions; the mean over the splits where that is defined,
    divided by (1 - scoring_noise). (nan, questions) when no split is defined."""
    r = rule()
    splits = int(r["splits"] if splits is None else splits)
    noise = float(r["scoring_noise"] if noise is None else noise)
    usable = {k: v for k, v in sorted(answers.items()) if len(v) >= 2}
    if len(usable) < MIN_QUESTIONS:
        return float("nan"), len(usable)
    rng = np.random.default_rng(seed)
    corrs = []
    for _ in range(splits):
        a, b = [], []
        for v in usable.values():
            order = rng.permutation(len(v))
            h = len(v) // 2
            a.append(v[order[:h]].mean())
            b.append(v[order[h:2 * h]].mean())
        rho = _spearman(a, b)
        if not np.isnan(rho):
            corrs.append(rho)
    if not corrs:
        return float("nan"), len(usable)
    return float(np.mean(corrs)) / (1.0 - noise), len(usable)
