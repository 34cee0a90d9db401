"""GlobalOpinionQA similarity, CAD and nCAD, and the survey baselines.

Similarity (Durmus et al. 2023): ``Sim_q(m, c) = 1 - JSD(P_m, P_c)`` with the
Jensen-Shannon *distance*, base 2. CAD ("Fluent but Foreign"):
``CAD_q = Sim_q(target) - Sim_q(reference)``, positive = closer to the target.
nCAD (the project's assumption, docs/metrics.md): ``CAD_q / JSD(P_target, P_reference)``, in [-1, 1]
by the triangle inequality; questions whose denominator is below 1e-9 are skipped.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

from culteval.metrics import load_distributions, mean_row, plain_row, sampled_rows

NCAD_EPS = 1e-9
ALL_MEAN = "__all_mean__"
#: the reference country's respondents compared with themselves: values true by construction
#: (Sim = 1, nCAD = -1, alignment = 1), rows of kind ``reference`` without an interval
BY_CONSTRUCTION = ("sim_reference", "ncad", "alignment_reference")
NON_NATIONAL = "non-national"  # GlobalOpinionQA keys such as "India (Non-national sample)"


def _target_key(meta: str, target: str) -> str:
    return str((json.loads(meta or "{}").get("country_keys") or {}).get(target, ""))


def national_only(items: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """Items with the target's distribution removed where it comes from a non-national sample.

    The paper rests on nationally representative surveys; ``cfg.metrics.non_national: true``
    keeps such distributions (every number resting on one is then flagged ``non-national``).
    """
    if (cfg.get("metrics") or {}).get("non_national", False):
        return items
    target = cfg["target"]["country"]
    out = items.copy()
    texts = []
    for text, meta in zip(out["distributions"], out["meta"], strict=True):
        d = json.loads(text or "{}")
        if target in d and NON_NATIONAL in _target_key(meta, target).lower():
            del d[target]
            text = json.dumps(d, sort_keys=True)
        texts.append(text)
    out["distributions"] = texts
    return out


def non_national_count(items: pd.DataFrame, cfg: dict) -> tuple[int, int]:
    """(questions whose target distribution is from a non-national sample, questions with one)."""
    target = cfg["target"]["country"]
    n = hits = 0
    for text, meta in zip(items["distributions"], items["meta"], strict=True):
        if target in json.loads(text or "{}"):
            n += 1
            hits += NON_NATIONAL in _target_key(meta, target).lower()
    return hits, n


def jsd(p, q) -> float:
    """Jensen-Shannon distance, base 2 (in [0, 1])."""
    return float(jensenshannon(np.asarray(p, float), np.asarray(q, float), base=2))


def similarity(p, q) -> float:
    """``1 - JSD(p, q)``: 1 for identical distributions, 0 for disjoint ones."""
    return 1.0 - jsd(p, q)


def per_question(items: pd.DataFrame, dists: dict[str, np.ndarray], target: str,
                 reference: str) -> pd.DataFrame:
    """One row per scored question: sim_target, sim_reference, cad, ncad (NaN where undefined)."""
    rows = []
    for item_id, text in zip(items["item_id"], items["distributions"], strict=True):
        p = dists.get(item_id)
        if p is None:
            continue
        d = load_distributions(text)
        t, r = d.get(target), d.get(reference)
        for name, q in (("target", t), ("reference", r)):
            if q is not None and len(q) != len(p):
                raise ValueError(f"item {item_id!r}: {len(p)} model probabilities vs "
                                 f"{len(q)} shares for {name} country")
        s_t = similarity(p, t) if t is not None else np.nan
        s_r = similarity(p, r) if r is not None else np.nan
        cad = s_t - s_r
        denom = jsd(t, r) if (t is not None and r is not None) else np.nan
        ncad = cad / denom if denom >= NCAD_EPS else np.nan
        rows.append({"item_id": item_id, "sim_target": s_t, "sim_reference": s_r, "cad": cad,
                     "ncad": ncad, "jsd_target_reference": denom})
    cols = ["item_id", "sim_target", "sim_reference", "cad", "ncad", "jsd_target_reference"]
    return pd.DataFrame(rows, columns=cols)


def opinion_metrics(items: pd.DataFrame, dists: dict[str, np.ndarray], cfg: dict) -> list[dict]:
    """Mean Sim to target / reference, CAD, nCAD over the questions each is defined on.

    Each similarity averages over questions that have that country; CAD and
    ``sim_target_shared`` over questions with both; nCAD over those with
    JSD(target, reference) >= 1e-9 (``ncad_skipped`` counts the others).
    ``target_non_national`` counts scored questions whose target distribution is a
    non-national sample (0 unless ``cfg.metrics.non_national`` admits them).
    """
    pq = per_question(items, dists, cfg["target"]["country"], cfg["reference"]["country"])
    rows = []
    for metric in ("sim_target", "sim_reference", "cad", "ncad"):
        vals = pq[metric].dropna().to_numpy()
        if vals.size:
            rows.append(mean_row(metric, vals, cfg))
    both = pq["jsd_target_reference"].notna()
    rows.append(plain_row("ncad_skipped", int((both & pq["ncad"].isna()).sum()), int(both.sum())))
    # like for like: Sim to the target on the questions with both countries (those CAD and the
    # reference-respondent baseline rest on)
    shared = pq.loc[both, "sim_target"].to_numpy()
    if shared.size:
        rows.append(mean_row("sim_target_shared", shared, cfg))
    hits, n = non_national_count(items[items["item_id"].isin(list(dists))], cfg)
    rows.append(plain_row("target_non_national", hits, n))
    return rows


def others_mean(d: dict[str, np.ndarray], meta: str, left_out: list[str]) -> np.ndarray | None:
    """The all-country mean without the countries ``left_out`` (the two compared): the items
    table's ``__all_mean__`` is the mean of ``meta.all_mean_n`` countries' renormalised shares,
    among them each named country's own distribution when it has one, so the others' mean is
    (n * mean - their shares) / (n - their number). None when no other country is left."""
    n = int(json.loads(meta or "{}").get("all_mean_n", 0))
    own = [d[c] for c in dict.fromkeys(left_out) if c in d]
    if ALL_MEAN not in d or n - len(own) < 1:
        return None
    rest = np.clip(n * d[ALL_MEAN] - np.sum(own, axis=0) if own else n * d[ALL_MEAN], 0.0, None)
    total = float(rest.sum())
    return rest / total if total > 0 else None


def baseline_distributions(items: pd.DataFrame, cfg: dict) -> dict[str, dict[str, np.ndarray]]:
    """Survey baselines scored exactly like a model (strategy ``none``).

    ``baseline:<reference>``: the reference country's own distribution (a
    reference respondent as a proxy); ``baseline:uniform``; ``baseline:all-country
    mean``: the mean over every other country's shares, the target and reference
    countries left out (:func:`others_mean`), so it is a third party's view. Each covers
    the items where it is defined.
    """
    ref, target = cfg["reference"]["country"], cfg["target"]["country"]
    out: dict[str, dict[str, np.ndarray]] = {f"baseline:{ref}": {}, "baseline:uniform": {},
                                            "baseline:all-country mean": {}}
    cols = zip(items["item_id"], items["options"], items["distributions"], items["meta"], strict=True)
    for item_id, options, text, meta in cols:
        d = load_distributions(text)
        if not d:
            continue
        out["baseline:uniform"][item_id] = np.full(len(options), 1.0 / len(options))
        if ref in d:
            out[f"baseline:{ref}"][item_id] = d[ref]
        others = others_mean(d, meta, [target, ref])
        if others is not None:
            out["baseline:all-country mean"][item_id] = others
    return out


def global_opinions_metrics(items: pd.DataFrame, dists: dict, raw: pd.DataFrame | None, cfg: dict,
                            inputs=None) -> list[dict]:
    """Sim/CAD/nCAD plus Rystrom et al.'s pro-score measures (``metrics.proscore``) with the
    target country (``alignment*``) and the reference country (``alignment_reference*``):

    - ``alignment`` / ``alignment_reference``: theirs, from the sampled answers (only where the
      run has them): Spearman across responses of each answer's pro-score and its question's
      survey pro-score, percentile bootstrap CI over the responses; n_items = responses.
    - ``alignment_expected`` / ``alignment_reference_expected``: culteval's, from the option
      distributions: Spearman across questions of the expected and the survey pro-score, no CI.
    - ``<metric>_unscored``: the questions with that country's distribution the rule could not
      score; ``proscore_excluded_<reason>``: the questions whose option list is not one question's
      scale, per reason (only reasons that occur).
    """
    from culteval.metrics import proscore

    rows = opinion_metrics(items, dists, cfg)
    scored = items[items["item_id"].isin(list(dists))]
    answers = None
    if raw is not None and len(sampled_rows(raw)):
        answers = proscore.sampled_pro_answers(raw, items)[0]
    for metric, role in (("alignment", "target"), ("alignment_reference", "reference")):
        country = cfg[role]["country"]
        rho, n, unscored = proscore.alignment_expected(items, dists, country)
        if not np.isnan(rho):
            rows.append(plain_row(f"{metric}_expected", rho, n))
        if n + unscored:
            rows.append(plain_row(f"{metric}_unscored", unscored, n + unscored))
        if answers is not None:
            survey = proscore.survey_pro_scores(items, country)[0]
            rho, n_resp, _ = proscore.alignment(answers, survey)
            if not np.isnan(rho):
                x, y = proscore.response_pairs(answers, survey)
                lo, hi = proscore.spearman_bootstrap_ci(x, y, int(cfg["metrics"]["bootstrap"]),
                                                        float(cfg["metrics"].get("ci", 0.95)),
                                                        int(cfg["seed"]))
                rows.append({**plain_row(metric, rho, n_resp), "ci_low": lo, "ci_high": hi})
    for reason, count in sorted(proscore.excluded_counts(scored).items()):
        rows.append(plain_row(proscore.EXCLUDED_METRIC.format(reason), count, len(scored)))
    return rows


OPINION_METRICS = ("sim_target", "sim_reference", "cad", "ncad")


def global_opinions_item_scores(items: pd.DataFrame, dists: dict, cfg: dict,
                                raw: pd.DataFrame | None = None) -> dict[str, dict[str, float]]:
    """Per metric, the per-question values its summary row averages (for paired comparisons);
    ``raw`` (sampled answers) is not used: the opinion metrics rest on the distributions."""
    pq = per_question(items, dists, cfg["target"]["country"], cfg["reference"]["country"])
    return {m: v for m in OPINION_METRICS
            if (v := {i: float(x) for i, x in zip(pq["item_id"], pq[m], strict=True) if not np.isnan(x)})}
