"""Rystrom et al. (2025, "Multilingual != Multicultural"): pro-scores, alignment and
self-consistency, as their code (github.com/jhrystrom/multicultural-alignment) computes them.

A *pro-score* is the share of substantive answers that fall on a question's "pro" options
(``proscore.yaml``: the versioned rule, from their ``scripts/process_wvs.py`` ``is_pro_score``).
For the survey it is read from the country's answer shares; for one sampled model answer it is 1
(a pro option) or 0 (a con option). culteval applies the rule to GlobalOpinionQA questions; the
paper used WVS/EVS items.

- ``alignment`` (theirs, ``scripts/analyse_hypotheses.py`` ``polars_sample_and_calculate``):
  Spearman correlation across *responses*, each sampled answer's pro-score paired with its
  question's survey pro-score; percentile bootstrap over the responses.
- ``alignment_expected`` (culteval's, not theirs): Spearman across *questions* of the model's
  expected pro-score (from its option distribution) and the survey's.
- ``self_consistency_pairwise`` (theirs, ``calculate_consistency``): every ordered pair of
  distinct responses to the same question, pooled over questions, one Spearman correlation of the
  pair's two pro-scores, divided by (1 - scoring_noise).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.stats import rankdata, spearmanr

from culteval.metrics import load_distributions, sampled_rows

RULE_FILE = Path(__file__).with_name("proscore.yaml")
MIN_QUESTIONS = 3
PRO, CON, MISSING = 1, 0, -1
#: why a question's option list is not scored (:func:`item_roles`)
TOTAL_ROW, MERGED_SCALES, OUT_OF_RANGE = "total_row", "merged_scales", "points_out_of_range"
EXCLUDED_REASONS = (TOTAL_ROW, MERGED_SCALES, OUT_OF_RANGE)
EXCLUDED_METRIC = "proscore_excluded_{}"


@functools.lru_cache(maxsize=1)
def rule() -> dict:
    """The pro-score rule file, checked for the keys this module reads."""
    text = RULE_FILE.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    need = {"version", "min_points", "max_points", "missing_options", "scoring_noise",
            "total_row_pattern", "merged_min_support", "borrowed_options"}
    missing = sorted(need - set(data or {}))
    if missing:
        raise ValueError(f"{RULE_FILE}: missing key(s) {missing}")
    if not 0 <= float(data["scoring_noise"]) < 1:
        raise ValueError(f"{RULE_FILE}: scoring_noise must be in [0, 1), got {data['scoring_noise']!r}")
    return {**data, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "missing_options": frozenset(str(o).strip().casefold() for o in data["missing_options"]),
            "total_row": re.compile(str(data["total_row_pattern"]), re.IGNORECASE),
            "borrowed_options": tuple(_norm(b) for b in data["borrowed_options"])}


def _norm(text) -> str:
    return re.sub(r"\s+", " ", str(text)).strip().casefold()


def rule_record() -> dict:
    """What outputs record about the rule: file, version, sha256."""
    r = rule()
    return {"file": "culteval/metrics/proscore.yaml", "version": r["version"], "sha256": r["sha256"]}


def is_missing(text) -> bool:
    """True for an option text the rule file lists as a missing answer (not a scale point)."""
    return str(text).strip().casefold() in rule()["missing_options"]


def scale_problem(question: str, options: Sequence[str],
                  answered: Iterable[Iterable[int]] = ()) -> str | None:
    """Why ``options`` are not one question's scale, else None: ``total_row`` (a "Total N=" option)
    or ``merged_scales``: an option is a statement the rule file lists as borrowed from another
    question (and ``question`` is not that question), or two of ``answered`` (per country, the
    indices of the options holding mass: the loader's ``meta.answered_options``) share no
    substantive option while each has at least ``merged_min_support`` of them."""
    r = rule()
    if any(r["total_row"].match(str(o)) for o in options):
        return TOTAL_ROW
    q = _norm(question)
    if any(_norm(o).startswith(b) and b[:40] not in q for o in options for b in r["borrowed_options"]):
        return MERGED_SCALES
    substantive = {i for i, o in enumerate(options) if not is_missing(o)}
    sets = {frozenset(set(map(int, s)) & substantive) for s in answered}
    sets = sorted((s for s in sets if len(s) >= int(r["merged_min_support"])), key=sorted)
    if any(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1:]):
        return MERGED_SCALES
    return None


def option_roles(options) -> np.ndarray | None:
    """Per option (upstream order): PRO, CON or MISSING; None when the rule cannot score the
    question (a "Total N=" option, or its number of substantive options outside
    [min_points, max_points])."""
    return _roles(options)[0]


def _roles(options) -> tuple[np.ndarray | None, str | None]:
    r = rule()
    if any(r["total_row"].match(str(o)) for o in options):
        return None, TOTAL_ROW
    missing = np.array([is_missing(o) for o in options])
    k = int((~missing).sum())
    if not r["min_points"] <= k <= r["max_points"]:
        return None, OUT_OF_RANGE
    points = np.cumsum(~missing)  # 1-based scale point of each substantive option
    if k == 3:
        pro = points == 1
    elif k == 10:
        pro = points > 5
    else:
        pro = points <= k // 2
    return np.where(missing, MISSING, np.where(pro, PRO, CON)), None


def item_roles(options, meta: str | dict | None = None,
               question: str | None = None) -> tuple[np.ndarray | None, str | None]:
    """(roles, None) for a scorable item, else (None, reason): :func:`scale_problem` on its
    question, options and ``meta.answered_options`` first, then :func:`option_roles`."""
    m = json.loads(meta or "{}") if isinstance(meta, str) else (meta or {})
    problem = scale_problem(str(question or ""), [str(o) for o in options], m.get("answered_options") or ())
    if problem:
        return None, problem
    return _roles(options)


def _item_roles_table(items: pd.DataFrame) -> dict[str, tuple[np.ndarray | None, str | None]]:
    n = len(items)
    metas = items["meta"] if "meta" in items.columns else [None] * n
    questions = items["question"] if "question" in items.columns else [None] * n
    return {str(i): item_roles(o, m, q) for i, o, m, q in zip(items["item_id"], items["options"], metas,
                                                               questions, strict=True)}


def excluded_counts(items: pd.DataFrame) -> Counter:
    """Questions of ``items`` the rule excludes, per reason (:data:`EXCLUDED_REASONS`)."""
    return Counter(reason for roles, reason in _item_roles_table(items).values() if roles is None)


def pro_score(shares, roles: np.ndarray) -> float:
    """Share on the pro options among the substantive ones; NaN when they hold no mass."""
    p = np.asarray(shares, float)
    if len(p) != len(roles):
        raise ValueError(f"{len(p)} shares for {len(roles)} options")
    total = p[roles != MISSING].sum()
    return float(p[roles == PRO].sum() / total) if total > 0 else float("nan")


def _spearman(x, y, min_n: int = MIN_QUESTIONS) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < min_n or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")  # a constant side: the correlation is undefined
    return float(spearmanr(x, y).statistic)  # ties get average ranks, as polars' spearman


def survey_pro_scores(items: pd.DataFrame, country: str) -> tuple[dict[str, float], int]:
    """Per scorable question with a ``country`` distribution: the survey's pro-score; plus how many
    questions with a ``country`` distribution the rule could not score (excluded list, or no mass
    on the substantive options)."""
    roles = _item_roles_table(items)
    out, unscored = {}, 0
    for item_id, text in zip(items["item_id"], items["distributions"], strict=True):
        survey = load_distributions(text).get(country)
        if survey is None:
            continue
        r = roles[str(item_id)][0]
        s = pro_score(survey, r) if r is not None else float("nan")
        if np.isnan(s):
            unscored += 1
        else:
            out[str(item_id)] = s
    return out, unscored


def paired_pro_scores(items: pd.DataFrame, dists: dict[str, np.ndarray],
                      country: str) -> tuple[pd.DataFrame, int]:
    """Per question with a ``country`` distribution and a model distribution: the model's expected
    and the survey's pro-scores (columns item_id, model, survey), and how many such questions the
    rule could not score (excluded option list, or no mass on substantive options)."""
    roles = _item_roles_table(items)
    rows, unscored = [], 0
    for item_id, text in zip(items["item_id"], items["distributions"], strict=True):
        survey = load_distributions(text).get(country)
        if survey is None or item_id not in dists:
            continue
        r = roles[str(item_id)][0]
        if r is None:
            unscored += 1
            continue
        m, s = pro_score(dists[item_id], r), pro_score(survey, r)
        if np.isnan(m) or np.isnan(s):
            unscored += 1
            continue
        rows.append({"item_id": item_id, "model": m, "survey": s})
    return pd.DataFrame(rows, columns=["item_id", "model", "survey"]), unscored


def alignment_expected(items: pd.DataFrame, dists: dict[str, np.ndarray],
                       country: str) -> tuple[float, int, int]:
    """(Spearman across questions of the model's expected and the survey's pro-score, questions
    scored, questions excluded by the rule); NaN below 3 questions or with a constant side."""
    pq, unscored = paired_pro_scores(items, dists, country)
    return _spearman(pq["model"], pq["survey"]), len(pq), unscored


def sampled_pro_answers(raw: pd.DataFrame, items: pd.DataFrame) -> tuple[dict[str, np.ndarray], int, int]:
    """Per scorable question: its sampled answers as 1 (pro) / 0 (con), over every answer order and
    trial, in raw-table order; plus (invalid answers, sampled answers) over scorable questions.
    Unparseable answers (parsed == -1) and answers on a missing-answer option have no pro-score
    and are left out (their nulls drop out of the paper's polars correlations the same way)."""
    s = sampled_rows(raw)
    roles = _item_roles_table(items)
    out, invalid, total = {}, 0, 0
    for item_id, grp in s.groupby("item_id", sort=True):
        r = roles.get(str(item_id), (None, None))[0]
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


def response_pairs(answers: dict[str, np.ndarray], survey: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(response pro-scores, their questions' survey pro-scores), one entry per response to a
    question with both, questions in id order."""
    keys = [k for k in sorted(answers) if k in survey and len(answers[k])]
    if not keys:
        return np.empty(0), np.empty(0)
    x = np.concatenate([answers[k] for k in keys])
    y = np.concatenate([np.full(len(answers[k]), survey[k]) for k in keys])
    return x, y


def _row_spearman(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Spearman correlation of each row of ``a`` with the same row of ``b`` (average ranks, as
    scipy's ``spearmanr``); NaN for a row with a constant side."""
    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ra * rb).sum(axis=1) / den
    return np.where(den > 0, np.clip(rho, -1.0, 1.0), np.nan).tolist()


def spearman_bootstrap_ci(x, y, n_boot: int, ci: float, seed: int) -> tuple[float, float]:
    """Percentile interval of the Spearman correlation over ``n_boot`` resamples of the (x, y)
    pairs with replacement (``default_rng(seed)``); resamples with a constant side are skipped, as
    their correlation is undefined. NaN below 2 pairs or with no defined resample."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or n_boot < 1:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))  # one draw per resample, in order
    stats = []
    for rows in np.array_split(idx, max(1, n_boot * len(x) // 2_000_000 + 1)):  # bounded memory
        stats.extend(_row_spearman(x[rows], y[rows]))
    stats = [r for r in stats if not np.isnan(r)]
    if not stats:
        return float("nan"), float("nan")
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.percentile(stats, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def alignment(answers: dict[str, np.ndarray], survey: dict[str, float]) -> tuple[float, int, int]:
    """Rystrom et al.'s alignment: (Spearman across responses of the response's and its question's
    survey pro-score, responses, questions); NaN with responses to fewer than 3 questions or a
    constant side."""
    x, y = response_pairs(answers, survey)
    questions = sum(1 for k in answers if k in survey and len(answers[k]))
    if questions < MIN_QUESTIONS:
        return float("nan"), len(x), questions
    return _spearman(x, y), len(x), questions


def pairwise_consistency(answers: dict[str, np.ndarray], noise: float | None = None) -> tuple[float, int]:
    """Rystrom et al.'s self-consistency (``calculate_consistency``): the responses to each
    question self-joined, every ordered pair (i, j) with i != j (so both orientations), pooled over
    questions; one Spearman correlation of the pairs' first and second pro-scores, divided by
    (1 - scoring_noise). (value, questions with >= 2 responses); NaN below 3 such questions or
    when the pooled pairs are constant."""
    noise = float(rule()["scoring_noise"] if noise is None else noise)
    usable = [np.asarray(v, float) for _, v in sorted(answers.items()) if len(v) >= 2]
    if len(usable) < MIN_QUESTIONS:
        return float("nan"), len(usable)
    first, second = [], []
    for v in usable:
        i, j = np.nonzero(~np.eye(len(v), dtype=bool))  # every ordered pair of distinct responses
        first.append(v[i])
        second.append(v[j])
    rho = _spearman(np.concatenate(first), np.concatenate(second), min_n=2)
    return (rho / (1.0 - noise) if not np.isnan(rho) else float("nan")), len(usable)
