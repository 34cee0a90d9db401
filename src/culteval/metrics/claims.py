"""The papers' claims, each tested on this run's summary rows with a verdict.

A pure function of summary.csv rows (:func:`claims`): every claim of "Fluent but Foreign"
(arXiv 2505.21548) and of Rystrom et al. (2025) that a run can test is stated as a sentence, with
the comparison rows that test it (estimate, 95% CI, p-value, items, models) and a verdict:

* ``supported`` / ``contradicted``: the evidence is significant in the claim's direction / against it;
* ``inconclusive``: rows exist but do not decide (p above the level after Holm's correction over the
  claim's rows, or a statistic without an interval);
* ``not testable``: the run lacks what the test needs, said from the data (e.g. no model of the
  regional group, no fine-tuned model with its base, no self-consistency).

Significance: Holm's step-down correction (statsmodels ``multipletests``) over the claim's rows at
``LEVEL``, each row's p its paired sign-flip permutation p (``<metric>:p_permutation``; for a group
comparison that resampled models, ``<metric>:p_models``). Mixed-model coefficients have a Wald CI
and no p: significant when the CI excludes 0. Claims that say "no difference" are supported when
no row is significant against them, which is weaker evidence than a significant difference: the
CIs shown say how large a difference the run could have missed.

Which rows test which claim is declared in the lookup tables below (metric names, group names),
so renamed metrics need one edit here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

LEVEL = 0.05
SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
NOT_TESTABLE = "not testable"

#: group names (``params.models.<name>.group``) counted as regional (Indic) and as global models
REGIONAL_GROUPS = ("regional", "indic")
GLOBAL_GROUPS = ("global",)
#: the opinion metric the proxy and regional claims rest on (per-question Sim to the target country)
OPINION_METRIC = "sim_target"
#: practice accuracy from sampled answers (the paper's protocol, T = 0.3), items about the target
PRACTICE_METRIC = re.compile(r"^acc_(question_)?sampled(_(none|country|value|rot))?_target$")
PRACTICE_TASKS = ("culturalbench", "normad")
#: (model column, metric pattern with the language as group 1, kind) of the rows relating
#: self-consistency to alignment: the mixed model's consistency slope per language, else the
#: per-language rank correlation across models that stands in for it
CONSISTENCY_ALIGNMENT = (
    ("mixed_effects", re.compile(r"^coef:consistency:language\[(?:T\.)?(.+)\]$"), "coefficient"),
    ("correlation:consistency-alignment", re.compile(r"^spearman:(.+)$"), "spearman"),
)
RESPONDENT = re.compile(r"^delta:(.+)-vs-baseline:(.+)$")
GROUP_PAIR = re.compile(r"^group:(.+)-vs-(.+)$")
FINETUNE = re.compile(r"^delta:(.+)-vs-(?!baseline:)(.+)$")


@dataclass
class Claim:
    """One claim: its sentence, source, verdict, why, and the rows it rests on."""

    key: str
    paper: str
    sentence: str
    verdict: str
    reason: str
    evidence: list[dict] = field(default_factory=list)


def _lookup(summary: pd.DataFrame) -> dict:
    return {(r.model, r.task, r.strategy, r.metric): r for r in summary.itertuples(index=False)}


def _value(index, key) -> float:
    r = index.get(key)
    return float(r.value) if r is not None else math.nan


def _evidence(index, row, comparison: str, p: float, p_kind: str, models: str, scope: str,
              sign: float = 1.0) -> dict:
    """An evidence line; ``sign`` -1 flips a difference (and its CI) to the claim's direction."""
    lo, hi = float(row.ci_low) * sign, float(row.ci_high) * sign
    return {"comparison": comparison, "task": str(row.task), "strategy": str(row.strategy),
            "metric": str(row.metric), "estimate": float(row.value) * sign, "ci_low": min(lo, hi),
            "ci_high": max(lo, hi), "p": p, "p_kind": p_kind, "n_items": int(row.n_items),
            "models": models, "scope": scope, "significant": False}


def _holm(lines: list[dict]) -> None:
    """Mark each line ``significant`` (Holm-adjusted p < LEVEL; CI excluding 0 where there is no p)."""
    from statsmodels.stats.multitest import multipletests

    with_p = [ln for ln in lines if not math.isnan(ln["p"])]
    if with_p:
        reject, adjusted, _, _ = multipletests([ln["p"] for ln in with_p], alpha=LEVEL, method="holm")
        for ln, rej, adj in zip(with_p, reject, adjusted, strict=True):
            ln["significant"], ln["p_adjusted"] = bool(rej), float(adj)
    for ln in lines:
        if math.isnan(ln["p"]) and not math.isnan(ln["ci_low"]):
            ln["significant"] = ln["ci_low"] > 0 or ln["ci_high"] < 0


def _groups(summary: pd.DataFrame) -> dict[str, int]:
    """Group name -> number of models, from the ``group:<group>`` mean rows (n_items = models)."""
    g = summary[summary["model"].str.match(r"^group:") & ~summary["model"].str.contains("-vs-", regex=False)]
    return {name[len("group:"):]: int(n) for name, n in g.groupby("model")["n_items"].max().items()}


def respondent_claim(summary: pd.DataFrame, index, countries: dict) -> Claim:
    target, reference = countries.get("target", "the target"), countries.get("reference", "the reference")
    sentence = f"A respondent from {reference} is a closer proxy for {target}'s opinions than any model."
    rows = summary[summary["model"].str.match(RESPONDENT.pattern) & summary["task"].eq("global_opinions")
                   & summary["metric"].eq(OPINION_METRIC)]
    lines = []
    for r in rows.sort_values(["model", "strategy"]).itertuples(index=False):
        model, _ = RESPONDENT.match(r.model).groups()
        p = _value(index, (r.model, r.task, r.strategy, f"{r.metric}:p_permutation"))
        lines.append(_evidence(index, r, f"{model} minus the {reference} respondents", p, "sign-flip",
                               model, "these models"))
    claim = Claim("respondent-proxy", "Fluent but Foreign", sentence, NOT_TESTABLE, "", lines)
    if not lines:
        claim.reason = ("no model has GlobalOpinionQA questions with both countries' answer distributions "
                        "(no delta:<model>-vs-baseline rows)")
        return claim
    _holm(lines)
    closer = [ln for ln in lines if ln["significant"] and ln["estimate"] > 0]
    if closer:
        claim.verdict = CONTRADICTED
        claim.reason = (f"{len(closer)} of {len(lines)} model x strategy runs are significantly closer to "
                        f"{target} than the {reference} respondents")
    elif all(ln["significant"] and ln["estimate"] < 0 for ln in lines):
        claim.verdict = SUPPORTED
        claim.reason = (f"every one of {len(lines)} model x strategy runs is significantly further from "
                        f"{target}")
    else:
        n_sig = sum(ln["significant"] for ln in lines)
        claim.verdict = INCONCLUSIVE
        claim.reason = (f"{n_sig} of {len(lines)} model x strategy runs are significantly further from "
                        f"{target} than the respondents (Holm, level {LEVEL}), the others do not differ "
                        f"significantly{_floor(lines)}")
    return claim


def _floor(lines: list[dict]) -> str:
    """A note when the items are too few for any row to be significant: with n items the exact
    sign-flip test's smallest two-sided p is 2 / 2**n, and Holm's first threshold is LEVEL / rows."""
    n = min((ln["n_items"] for ln in lines if ln["p_kind"] == "sign-flip"), default=0)
    smallest, first = 2.0 / 2 ** n, LEVEL / len(lines) if lines else LEVEL
    if 0 < n and smallest >= first:
        return (f"; with {n} items the sign-flip test cannot give p below {smallest:.3g}, and Holm's "
                f"first threshold over {len(lines)} rows is {first:.3g}: no row could be significant")
    return ""


def _count(group: str, n: int) -> str:
    return f"{group} ({n} model{'' if n == 1 else 's'})"


def regional_claim(summary: pd.DataFrame, index, countries: dict) -> Claim:
    target = countries.get("target", "the target")
    sentence = f"Regional (Indic) models are no closer to {target}'s opinions than global models."
    claim = Claim("regional-no-closer", "Fluent but Foreign", sentence, NOT_TESTABLE, "")
    groups = _groups(summary)
    regional = [g for g in REGIONAL_GROUPS if g in groups]
    glob = [g for g in GLOBAL_GROUPS if g in groups]
    if not regional or not glob:
        missing = " and ".join(n for n, have in (("regional (Indic)", regional), ("global", glob))
                               if not have)
        claim.reason = (f"no {missing} model in this run (groups present: "
                        f"{', '.join(_count(g, n) for g, n in sorted(groups.items())) or 'none'})")
        return claim
    lines = []
    rows = summary[summary["model"].str.match(GROUP_PAIR.pattern) & summary["task"].eq("global_opinions")
                   & summary["metric"].eq(OPINION_METRIC)]
    for r in rows.sort_values(["model", "strategy"]).itertuples(index=False):
        a, b = GROUP_PAIR.match(r.model).groups()
        if {a, b} & set(regional) and {a, b} & set(glob):
            sign = 1.0 if a in regional else -1.0  # regional minus global
            reg, gl = (a, b) if a in regional else (b, a)
            p_models = _value(index, (r.model, r.task, r.strategy, f"{r.metric}:p_models"))
            resampled = not math.isnan(p_models)
            p = p_models if resampled else _value(index, (r.model, r.task, r.strategy,
                                                          f"{r.metric}:p_permutation"))
            lines.append(_evidence(index, r, f"{reg} minus {gl}", p,
                                   "model labels permuted" if resampled else "sign-flip",
                                   f"{groups[reg]} {reg} vs {groups[gl]} {gl}",
                                   "models and items resampled" if resampled else "these models only", sign))
    claim.evidence = lines
    if not lines:
        claim.reason = "no paired group comparison on GlobalOpinionQA (no questions every model scores)"
        return claim
    _holm(lines)
    closer = [ln for ln in lines if ln["significant"] and ln["estimate"] > 0]
    claim.verdict = CONTRADICTED if closer else SUPPORTED
    claim.reason = (f"{len(closer)} of {len(lines)} strategies show the regional models significantly "
                    "closer" if closer else
                    f"no strategy of {len(lines)} shows the regional models significantly closer (no "
                    f"difference detected; see the CIs){_floor(lines)}")
    if any(ln["scope"] == "these models only" for ln in lines):
        claim.reason += "; with < 2 models in a group the comparison speaks for these models only"
    return claim


def finetune_claim(summary: pd.DataFrame, index, countries: dict) -> Claim:
    target = countries.get("target", "the target")
    sentence = (f"Fine-tuning on {target}-specific (Indic) data does not move practice accuracy "
                "(sampled answers, items about the target).")
    claim = Claim("finetune-practice", "Fluent but Foreign", sentence, NOT_TESTABLE, "")
    rows = summary[summary["model"].str.match(FINETUNE.pattern) & summary["task"].isin(PRACTICE_TASKS)
                   & summary["metric"].str.match(PRACTICE_METRIC.pattern) & summary["strategy"].eq("default")]
    lines = []
    for r in rows.sort_values(["model", "task", "metric"]).itertuples(index=False):
        model, base = FINETUNE.match(r.model).groups()
        p = _value(index, (r.model, r.task, r.strategy, f"{r.metric}:p_permutation"))
        lines.append(_evidence(index, r, f"{model} minus its base {base}", p, "sign-flip",
                               f"{model}, {base}", "these models"))
    claim.evidence = lines
    if not lines:
        claim.reason = ("no fine-tuned model with its base in this run "
                        "(params.models.<name>.base names none that was evaluated)")
        return claim
    _holm(lines)
    moved = [ln for ln in lines if ln["significant"]]
    claim.verdict = CONTRADICTED if moved else SUPPORTED
    claim.reason = (f"{len(moved)} of {len(lines)} accuracies moved significantly" if moved
                    else f"none of {len(lines)} accuracies moved significantly (no difference detected; "
                         f"see the CIs){_floor(lines)}")
    return claim


def consistency_claim(summary: pd.DataFrame, index, countries: dict) -> Claim:
    sentence = "A model's self-consistency predicts its cultural alignment (per language)."
    claim = Claim("consistency-alignment", "Rystrom et al. 2025", sentence, NOT_TESTABLE, "")
    lines = []
    for model, pattern, kind in CONSISTENCY_ALIGNMENT:
        rows = summary[summary["model"].eq(model) & summary["metric"].str.match(pattern.pattern)]
        for r in rows.sort_values("metric").itertuples(index=False):
            language = pattern.match(r.metric).group(1)
            if math.isnan(float(r.value)):
                continue
            coef = kind == "coefficient"
            lines.append(_evidence(index, r, f"{kind}, language {language}", math.nan,
                                   "Wald CI" if coef else "none",
                                   f"{int(r.n_items)} rows" if coef else f"{int(r.n_items)} models",
                                   "these models"))
        if lines:  # the mixed model's slopes when fitted; the correlations only stand in for them
            break
    claim.evidence = lines
    if not lines:
        has_rows = summary["model"].isin([m for m, _, _ in CONSISTENCY_ALIGNMENT]).any()
        claim.reason = ("the consistency-alignment correlation is undefined (fewer than 3 models with "
                        "distinct values per language)" if has_rows else
                        "no self-consistency-alignment rows: the run has no sampled opinion answers "
                        "(tasks.global_opinions.sampled) or no model with both measures")
        return claim
    _holm(lines)
    with_ci = [ln for ln in lines if not math.isnan(ln["ci_low"])]
    if not with_ci:
        claim.verdict = INCONCLUSIVE
        claim.reason = ("rank correlations across models without an interval or p-value (the mixed model "
                        "was not fitted)")
    elif any(ln["significant"] and ln["estimate"] < 0 for ln in with_ci):
        claim.verdict, claim.reason = CONTRADICTED, "a consistency slope is significantly negative"
    elif all(ln["significant"] and ln["estimate"] > 0 for ln in with_ci):
        claim.verdict = SUPPORTED
        claim.reason = "every language's consistency slope is significantly positive"
    else:
        claim.verdict, claim.reason = INCONCLUSIVE, "not every language's consistency slope excludes 0"
    return claim


#: INDICA (Madhusudan et al. 2026): the regions models are said to over-select as India's default
OVER_SELECTED_REGIONS = ("Central", "North")


def indica_claim(summary: pd.DataFrame, index, countries: dict) -> Claim:
    """Per model x strategy, ``selection_ratio:<region>`` (selected / expected share, metrics/regions.py)
    minus 1 with its bootstrap CI over questions. A row counts as significant when its CI excludes 0
    and its run rejects "no regional default" (``region_permutation_p``, Holm-corrected over the
    runs): a per-region interval alone, on few questions, is no test. Supported when each region is
    significantly over-selected in some run and under-selected in none."""
    from statsmodels.stats.multitest import multipletests

    sentence = ("Models over-select Central and North India as the default answer to questions about "
                "India (region-agnostic INDICA questions).")
    claim = Claim("indica-default-region", "Madhusudan et al. 2026 (INDICA)", sentence, NOT_TESTABLE, "")
    metrics = [f"selection_ratio:{r}" for r in OVER_SELECTED_REGIONS]
    rows = summary[summary["task"].eq("indica") & summary["metric"].isin(metrics)
                   & ~summary["model"].str.contains(":", regex=False)]
    lines = []
    for r in rows.sort_values(["model", "strategy", "metric"]).itertuples(index=False):
        p = _value(index, (r.model, r.task, r.strategy, "region_permutation_p"))
        line = _evidence(index, r, f"{r.model}: selected / expected share - 1", p,
                         "permutation over questions, whole run", str(r.model), "this model")
        line.update(estimate=float(r.value) - 1, ci_low=float(r.ci_low) - 1, ci_high=float(r.ci_high) - 1)
        lines.append(line)
    claim.evidence = lines
    if not lines:
        claim.reason = "no INDICA region-agnostic rows in this run (params.tasks.indica is off)"
        return claim
    runs = sorted({(ln["strategy"], ln["models"]) for ln in lines if not math.isnan(ln["p"])})
    p_run = {run: next(ln["p"] for ln in lines if (ln["strategy"], ln["models"]) == run) for run in runs}
    rejected = set()
    if runs:
        reject, adjusted, _, _ = multipletests([p_run[k] for k in runs], alpha=LEVEL, method="holm")
        rejected = {k for k, rej in zip(runs, reject, strict=True) if rej}
        adj = dict(zip(runs, adjusted, strict=True))
        for ln in lines:
            if (ln["strategy"], ln["models"]) in adj:
                ln["p_adjusted"] = float(adj[ln["strategy"], ln["models"]])
    for ln in lines:
        outside = ln["ci_low"] > 0 or ln["ci_high"] < 0
        ln["significant"] = bool(outside and (ln["strategy"], ln["models"]) in rejected)
    over = {ln["metric"] for ln in lines if ln["significant"] and ln["estimate"] > 0}
    under = [ln for ln in lines if ln["significant"] and ln["estimate"] < 0]
    if under:
        claim.verdict = CONTRADICTED
        claim.reason = f"{len(under)} of {len(lines)} rows significantly under-select " + ", ".join(
            sorted({ln["metric"].split(":")[1] for ln in under}))
    elif over == set(metrics):
        claim.verdict = SUPPORTED
        claim.reason = "both regions significantly over-selected in some run, under-selected in none"
    else:
        claim.verdict = INCONCLUSIVE
        claim.reason = (f"{len(over)} of 2 regions significantly over-selected in some run, none "
                        f"significantly under-selected ({len(rejected)} of {len(runs)} runs reject "
                        "\"no regional default\")")
    return claim


CLAIMS = (respondent_claim, regional_claim, finetune_claim, consistency_claim, indica_claim)


def claims(summary: pd.DataFrame, countries: dict[str, str] | None = None) -> list[Claim]:
    """Every claim of :data:`CLAIMS` tested on ``summary`` (one culture's rows, plus rows about all
    cultures); ``countries`` names the target and reference for the sentences."""
    summary = summary.assign(model=summary["model"].astype(str), metric=summary["metric"].astype(str))
    index = _lookup(summary)
    return [f(summary, index, countries or {}) for f in CLAIMS]


def _num(v: float) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3g}"


def evidence_text(line: dict) -> str:
    """One evidence line as text: estimate, 95% CI, p, items, models, scope."""
    ci = f" [95% CI {_num(line['ci_low'])}, {_num(line['ci_high'])}]" if _num(line["ci_low"]) else ""
    p = f", p = {_num(line['p'])} ({line['p_kind']})" if _num(line["p"]) else ""
    adj = f", Holm-adjusted {_num(line['p_adjusted'])}" if "p_adjusted" in line else ""
    return (f"{line['comparison']}, {line['task']} {line['strategy']} {line['metric']}: "
            f"{_num(line['estimate'])}{ci}{p}{adj}; n = {line['n_items']} items; models: {line['models']} "
            f"({line['scope']})")
