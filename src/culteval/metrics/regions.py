"""Regions of India (INDICA, Madhusudan et al. 2026): whose answer a model picks.

Region-agnostic questions ("In India, ...?", options = the regions' distinct answers): an option
shared by n regions credits each with 1/n of its mass (the authors' fractional attribution). Per
question q and region r:

- selection ``s[q, r]``: the model's permutation-averaged probability mass credited to r;
- expected ``e[q, r]``: the same credit under a uniform pick among q's options (``ChiSquareTest.py``:
  1/k per option, split over its regions), so a region offered on few questions, or sharing its
  answer with others, is expected less often; not a flat 1/5.

Rows (``:<region>`` in the metric name, docs/contracts.md): ``selection_share`` (mean of s over
questions, bootstrap CI over questions), ``expected_share`` (mean of e), ``selection_ratio``
(sum s / sum e: above 1 over-selected; CI from the same bootstrap, over the questions offering r,
which are its ``n_items``); ``region_chi2``/``region_chi2_p`` (the authors' goodness of fit of the
summed selection against the summed expectation, one answer's worth per question); and
``region_permutation_p``: per question the model's option masses are shuffled among that question's
options (the region labels become arbitrary, the model's own certainty per question is kept), so the
test needs no independent draws; ``region_permutation_p:<region>`` the same draws' two-sided test of
one region (|S_r - E_r|), and ``region_permutation_floor:<region>`` the smallest p that test can give
with these questions and draws (the INDICA claim is "not decidable" when no row can pass Holm).
From sampled answers (mode both): ``selection_share_sampled``,
``selection_ratio_sampled``, ``region_chi2_sampled``/``_p`` (the authors' protocol: one count per
parsed answer) and ``invalid_rate_agnostic``.

Region-anchored questions ("In East India, ...?", same options, gold = East's answer): ``acc_prob``
(argmax of the distribution is the asked region's option) and ``acc_sampled`` per asked region and
over all (``acc_prob_anchored``), ``chance`` (mean 1/k, what a uniform pick scores), and the
confusion ``confusion:<asked>><answer of>``: the share of questions about the asked region whose
argmax option is the answer region's answer (an option several regions gave counts for each of them,
so the diagonal equals ``acc_prob:<asked>``).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from scipy.stats import chisquare

from culteval.metrics import gold_index, mean_row, plain_row, sampled_rows
from culteval.stats import bootstrap_ci

AGNOSTIC, ANCHORED = "region_agnostic", "region_anchored"


def _meta(items: pd.DataFrame) -> dict[str, dict]:
    return {iid: json.loads(m or "{}") for iid, m in zip(items["item_id"], items["meta"], strict=True)}


def region_order(items: pd.DataFrame, cfg: dict) -> list[str]:
    """The regions the items name: in params order (``cultures.<key>.regions``) where declared,
    others after them sorted."""
    seen = {r for m in _meta(items).values() for owners in m.get("option_regions", []) for r in owners}
    declared = []
    for culture in (cfg.get("cultures") or {}).values():
        declared += [r for r in (culture.get("regions") or {}) if r not in declared]
    return [r for r in declared if r in seen] + sorted(seen - set(declared))


def credit_matrix(owners: list[list[str]], regions: list[str]) -> np.ndarray:
    """(options x regions): 1/n for each of the n regions an option stands for."""
    a = np.zeros((len(owners), len(regions)))
    for o, rs in enumerate(owners):
        for r in rs:
            a[o, regions.index(r)] = 1.0 / len(rs)
    return a


def _agnostic_arrays(items, dists, regions):
    """(question ids, credit matrices, selection s, expected e) over the questions with a distribution."""
    meta = _meta(items)
    ids = [i for i in sorted(items["item_id"]) if i in dists]
    mats = [credit_matrix(meta[i]["option_regions"], regions) for i in ids]
    for i, a in zip(ids, mats, strict=True):
        if len(dists[i]) != a.shape[0]:
            raise ValueError(f"item {i!r}: distribution over {len(dists[i])} options, "
                             f"meta.option_regions names {a.shape[0]}")
    s = np.array([dists[i] @ a for i, a in zip(ids, mats, strict=True)]).reshape(len(ids), len(regions))
    e = np.array([a.mean(axis=0) for a in mats]).reshape(len(ids), len(regions))
    return ids, mats, s, e


def ratio_ci(s: np.ndarray, e: np.ndarray, cfg: dict) -> tuple[float, float]:
    """Bootstrap CI of sum(s) / sum(e) over the questions offering the region (e > 0, the row's
    ``n_items``; the project's seeded percentile bootstrap). A question that does not offer it adds
    nothing to either sum; resampling it too would leave some draws without any question that does
    (0 / 0), and one such draw made the whole interval NaN."""
    offered = e > 0
    s, e = s[offered], e[offered]

    def stat(idx, axis):
        idx = idx.astype(int)
        return s[idx].sum(axis=axis) / e[idx].sum(axis=axis)
    return bootstrap_ci(np.arange(s.size, dtype=float), cfg, stat=stat)


def chi2_rows(name: str, observed: np.ndarray, expected: np.ndarray, n: int) -> list[dict]:
    """The authors' chi-square (scipy), over the regions with a positive expectation, the expected
    counts scaled to the observed total."""
    keep = expected > 0
    if keep.sum() < 2 or observed.sum() <= 0:
        return []
    exp = expected[keep] * observed[keep].sum() / expected[keep].sum()
    res = chisquare(observed[keep], exp)
    return [plain_row(name, res.statistic, n), plain_row(name + "_p", res.pvalue, n)]


def permutation_test(dist_list: list[np.ndarray], mats: list[np.ndarray], n_perm: int,
                     seed: int) -> tuple[float, np.ndarray]:
    """p of "no regional default": per question its option masses are shuffled among its options.

    Whole run: statistic sum over regions of (S_r - E_r)^2 / E_r, S and E summed over questions.
    Per region r (two-sided): |S_r - E_r|, from the same draws; under the shuffle S_r has mean E_r
    exactly, so this is the test of "r is picked as often as a uniform pick would". Each p is
    (1 + hits) / (1 + n_perm); a region no question offers gets NaN.
    """
    exp = sum(a.mean(axis=0) for a in mats)
    keep = exp > 0

    def stat(sel):
        return (((sel - exp)[..., keep]) ** 2 / exp[keep]).sum(axis=-1)

    selected = sum(p @ a for p, a in zip(dist_list, mats, strict=True))
    observed = stat(selected)
    rng = np.random.default_rng(seed)
    null = np.zeros((n_perm, exp.size))
    for p, a in zip(dist_list, mats, strict=True):
        null += rng.permuted(np.tile(p, (n_perm, 1)), axis=1) @ a
    tol = 1e-12 * max(1.0, float(observed))
    p_all = (1 + int((stat(null) >= observed - tol).sum())) / (1 + n_perm)
    dev, null_dev = np.abs(selected - exp), np.abs(null - exp)
    hits = (null_dev >= dev - 1e-12 * np.maximum(1.0, dev)).sum(axis=0)
    p_region = np.where(keep, (1 + hits) / (1 + n_perm), np.nan)
    return p_all, p_region


def permutation_floor(mats: list[np.ndarray], n_perm: int) -> np.ndarray:
    """Per region, the smallest p :func:`permutation_test` can give with these questions, whatever the
    model answers: 1 / (1 + n_perm) (the Monte Carlo p's own floor), and no less than the chance that
    every question's shuffle puts the region's option(s) where the model put them (product over the
    questions offering r of 1 / C(k, m): k options, m of them crediting r). Below Holm's threshold
    or not, this says whether a verdict resting on the test can change with the data."""
    from math import comb, log

    # per question, C(k, m) ways to place the m options crediting r among k (m = 0: one way)
    log_exact = -sum(np.array([log(comb(a.shape[0], int(m))) for m in (a > 0).sum(axis=0)]) for a in mats)
    return np.maximum(np.exp(log_exact), 1.0 / (1 + n_perm))


def _agnostic_rows(items, dists, raw, cfg, regions) -> list[dict]:
    ids, mats, s, e = _agnostic_arrays(items, dists, regions)
    rows = []
    if not ids:
        return rows
    n = len(ids)
    n_perm = int(cfg["metrics"]["bootstrap"])
    p_all, p_region = permutation_test([dists[i] for i in ids], mats, n_perm, int(cfg["seed"]))
    floor = permutation_floor(mats, n_perm)
    for k, r in enumerate(regions):
        offered = int((e[:, k] > 0).sum())
        rows.append(mean_row(f"selection_share:{r}", s[:, k], cfg))
        rows.append(plain_row(f"expected_share:{r}", e[:, k].mean(), n))
        if offered:
            lo, hi = ratio_ci(s[:, k], e[:, k], cfg)
            rows.append({"metric": f"selection_ratio:{r}", "value": float(s[:, k].sum() / e[:, k].sum()),
                         "ci_low": lo, "ci_high": hi, "n_items": offered})
            rows.append(plain_row(f"region_permutation_p:{r}", float(p_region[k]), offered))
            rows.append(plain_row(f"region_permutation_floor:{r}", float(floor[k]), offered))
    rows += chi2_rows("region_chi2", s.sum(axis=0), e.sum(axis=0), n)
    rows.append(plain_row("region_permutation_p", p_all, n))
    rows += _agnostic_sampled_rows(items, raw, cfg, regions)
    return rows


def _trials(items: pd.DataFrame, raw) -> pd.DataFrame:
    """The sampled trials of these items: item_id and parsed option (-1 invalid)."""
    if raw is None:
        return pd.DataFrame(columns=["item_id", "parsed"])
    t = sampled_rows(raw)
    t = t[t["item_id"].isin(set(items["item_id"]))]
    return pd.DataFrame({"item_id": t["item_id"].to_numpy(),
                         "parsed": t["parsed"].fillna(-1).astype(int).to_numpy()})


def _agnostic_sampled_rows(items, raw, cfg, regions) -> list[dict]:
    t = _trials(items, raw)
    if t.empty:
        return []
    meta = _meta(items)
    s, e, obs, exp = [], [], np.zeros(len(regions)), np.zeros(len(regions))
    invalid = t.groupby("item_id", sort=True)["parsed"].apply(lambda p: float((p < 0).mean()))
    for iid, grp in t.groupby("item_id", sort=True):
        a = credit_matrix(meta[iid]["option_regions"], regions)
        valid = grp["parsed"][grp["parsed"] >= 0].to_numpy()
        if valid.size == 0:
            continue  # no parsed answer: nothing to attribute (counted in invalid_rate_agnostic)
        credit = a[valid]  # one row per parsed answer
        s.append(credit.mean(axis=0))
        e.append(a.mean(axis=0))
        obs += credit.sum(axis=0)
        exp += a.mean(axis=0) * valid.size
    rows = [mean_row("invalid_rate_agnostic", invalid.to_numpy(), cfg)]
    if not s:
        return rows
    s, e = np.array(s), np.array(e)
    for k, r in enumerate(regions):
        rows.append(mean_row(f"selection_share_sampled:{r}", s[:, k], cfg))
        if (e[:, k] > 0).any():
            lo, hi = ratio_ci(s[:, k], e[:, k], cfg)
            rows.append({"metric": f"selection_ratio_sampled:{r}",
                         "value": float(s[:, k].sum() / e[:, k].sum()),
                         "ci_low": lo, "ci_high": hi, "n_items": int((e[:, k] > 0).sum())})
    rows += chi2_rows("region_chi2_sampled", obs, exp, len(s))
    return rows


def anchored_choices(items: pd.DataFrame, dists: dict) -> pd.DataFrame:
    """Per region-anchored item with a distribution: asked region, gold and argmax option, the
    regions whose answer the argmax option is, and 1/k."""
    meta = _meta(items)
    out = []
    for iid, opts, ans in zip(items["item_id"], items["options"], items["answer"], strict=True):
        if iid not in dists:
            continue
        m = meta[iid]
        choice = int(np.argmax(dists[iid]))
        out.append({"item_id": iid, "region": m["region"], "gold": gold_index(opts, ans, iid),
                    "choice": choice, "chosen_regions": list(m["option_regions"][choice]),
                    "chance": 1.0 / len(opts)})
    return pd.DataFrame(out, columns=["item_id", "region", "gold", "choice", "chosen_regions", "chance"])


def _anchored_rows(items, dists, raw, cfg, regions) -> list[dict]:
    rows = []
    ch = anchored_choices(items, dists)
    if not ch.empty:
        correct = (ch["choice"] == ch["gold"]).astype(float)
        rows.append(mean_row("acc_prob_anchored", correct.to_numpy(), cfg))
        rows.append(plain_row("chance_anchored", ch["chance"].mean(), len(ch)))
        for r in regions:
            mask = (ch["region"] == r).to_numpy()
            if not mask.any():
                continue
            rows.append(mean_row(f"acc_prob:{r}", correct[mask].to_numpy(), cfg))
            rows.append(plain_row(f"chance:{r}", ch["chance"][mask].mean(), int(mask.sum())))
            for s in regions:
                hit = ch["chosen_regions"][mask].map(lambda owners, s=s: float(s in owners))
                rows.append(mean_row(f"confusion:{r}>{s}", hit.to_numpy(), cfg))
    t = _trials(items, raw)
    if not t.empty:
        gold = {iid: gold_index(o, a, iid) for iid, o, a in
                zip(items["item_id"], items["options"], items["answer"], strict=True)}
        region = {iid: m["region"] for iid, m in _meta(items).items()}
        t = t.assign(correct=(t["parsed"] == t["item_id"].map(gold)).astype(float),
                     invalid=(t["parsed"] < 0).astype(float))
        per = t.groupby("item_id", sort=True)[["correct", "invalid"]].mean()
        rows.append(mean_row("acc_sampled_anchored", per["correct"].to_numpy(), cfg))
        rows.append(mean_row("invalid_rate_anchored", per["invalid"].to_numpy(), cfg))
        per_region = per.index.map(region)
        for r in regions:
            sub = per[per_region == r]
            if len(sub):
                rows.append(mean_row(f"acc_sampled:{r}", sub["correct"].to_numpy(), cfg))
    return rows


def indica_metrics(items: pd.DataFrame, dists: dict, raw: pd.DataFrame | None, cfg: dict,
                   inputs=None) -> list[dict]:
    """Selection shares (region-agnostic) and per-region accuracy and confusion (region-anchored)."""
    regions = region_order(items, cfg)
    agnostic = items[items["subset"] == AGNOSTIC]
    anchored = items[items["subset"] == ANCHORED]
    return (_agnostic_rows(agnostic, dists, raw, cfg, regions)
            + _anchored_rows(anchored, dists, raw, cfg, regions))
