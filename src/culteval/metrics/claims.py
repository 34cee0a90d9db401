"""The papers' claims, each tested on this run's summary rows with a verdict.

A pure function of summary.csv rows (:func:`claims`): every claim of "Fluent but Foreign"
(arXiv 2505.21548) and of Rystrom et al. (2025) that a run can test is stated as a sentence, with
the comparison rows that test it (estimate, 95% CI, p-value, items, models) and a verdict:

* ``supported`` / ``contradicted``: the evidence is significant in the claim's direction / against it;
  a claim that two sides do not differ (or that one is no better) is supported only by an
  equivalence test: every row's 95% CI on the claim's side of the margin in ``margins.yaml``;
* ``inconclusive``: rows exist but do not decide (p above the level after Holm's correction over the
  claim's rows, a CI reaching past the margin, or a statistic without an interval);
* ``not decidable with this run``: the test cannot give a p-value small enough with this run's
  items or models, whatever the data say (an exact sign-flip test over n items cannot go below
  2 / 2**n, an exact model-label permutation over k + m models below 1 / C(k+m, k), twice that for
  k = m); the reason says how many items or models would make it decidable;
* ``not testable``: the run lacks what the test needs, said from the data (e.g. no model of the
  regional group, no fine-tuned model with its base, no self-consistency).

Significance: Holm's step-down correction (statsmodels ``multipletests``) over the claim's
deciding rows at ``LEVEL``, each row's p its paired sign-flip permutation p
(``<metric>:p_permutation``; for a group comparison that permuted model labels, ``<metric>:p_models``).
The rows' CIs invert the same tests (culteval.stats), so a CI excludes 0 exactly when its p is
below 0.05. Mixed-model coefficients have a Wald CI and no p: significant when the CI excludes 0.

Which rows test which claim is declared in the lookup tables below (metric names, group names),
so renamed metrics need one edit here.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from culteval.metrics.kinds import MODEL
from culteval.stats import MIN_GROUP_MODELS, label_floor, sign_flip_floor

LEVEL = 0.05
SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
NOT_TESTABLE, NOT_DECIDABLE = "not testable", "not decidable with this run"
MARGINS_FILE = Path(__file__).with_name("margins.yaml")

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
Groups = Mapping[str, str] | None  # model -> its params.models.<name>.group
MAX_MODELS = 60  # the search for "how many models would make it decidable" stops here


@dataclass
class Claim:
    """One claim: its sentence, source, verdict, why, and the rows it rests on."""

    key: str
    paper: str
    sentence: str
    verdict: str
    reason: str
    evidence: list[dict] = field(default_factory=list)


@cache
def margins() -> dict:
    """``margins.yaml``: ``{"version": int, "margins": {pattern: margin}}``, checked."""
    import yaml

    data = yaml.safe_load(MARGINS_FILE.read_text(encoding="utf-8")) or {}
    table = data.get("margins")
    if not isinstance(data.get("version"), int) or not isinstance(table, dict) or not table:
        raise ValueError(f"{MARGINS_FILE}: needs an integer 'version' and a non-empty 'margins' mapping")
    for pattern, value in table.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
            raise ValueError(f"{MARGINS_FILE}: margin of {pattern!r} must be a positive number, "
                             f"got {value!r}")
    return {"version": data["version"], "margins": {str(k): float(v) for k, v in table.items()}}


def margin_of(metric: str) -> float | None:
    """The equivalence margin of ``metric`` (first matching pattern of ``margins.yaml``), else None."""
    return next((m for pat, m in margins()["margins"].items() if fnmatch.fnmatchcase(metric, pat)), None)


def _margin_note(metric: str) -> str:
    m = margin_of(metric)
    return (f"margin {m:g} for {metric} (culteval/metrics/margins.yaml, version {margins()['version']})"
            if m is not None else f"no margin for {metric} in culteval/metrics/margins.yaml")


def _lookup(summary: pd.DataFrame) -> dict:
    return {(r.model, r.task, r.strategy, r.metric): r for r in summary.itertuples(index=False)}


def _value(index, key) -> float:
    r = index.get(key)
    return float(r.value) if r is not None else math.nan


def _evidence(index, row, comparison: str, p: float, p_kind: str, models: str, scope: str,
              sign: float = 1.0, floor: float = math.nan, decides: bool = True) -> dict:
    """An evidence line; ``sign`` -1 flips a difference (and its CI) to the claim's direction;
    ``floor``: the smallest p its test can give; ``decides``: counted in the verdict (else shown
    beside it)."""
    lo, hi = float(row.ci_low) * sign, float(row.ci_high) * sign
    return {"comparison": comparison, "task": str(row.task), "strategy": str(row.strategy),
            "metric": str(row.metric), "estimate": float(row.value) * sign, "ci_low": min(lo, hi),
            "ci_high": max(lo, hi), "p": p, "p_kind": p_kind, "n_items": int(row.n_items),
            "models": models, "scope": scope, "significant": False, "floor": floor, "decides": decides}


def _holm(lines: list[dict]) -> None:
    """Mark each deciding line ``significant`` (Holm-adjusted p < LEVEL; CI excluding 0 where there is
    no p)."""
    from statsmodels.stats.multitest import multipletests

    lines = [ln for ln in lines if ln["decides"]]
    with_p = [ln for ln in lines if not math.isnan(ln["p"])]
    if with_p:
        reject, adjusted, _, _ = multipletests([ln["p"] for ln in with_p], alpha=LEVEL, method="holm")
        for ln, rej, adj in zip(with_p, reject, adjusted, strict=True):
            ln["significant"], ln["p_adjusted"] = bool(rej), float(adj)
    for ln in lines:
        if math.isnan(ln["p"]) and not math.isnan(ln["ci_low"]):
            ln["significant"] = ln["ci_low"] > 0 or ln["ci_high"] < 0


def _threshold(lines: list[dict]) -> float:
    """Holm's first (smallest) threshold over the deciding lines."""
    return LEVEL / max(1, sum(ln["decides"] for ln in lines))


def items_needed(rows: int) -> int:
    """The fewest items for which the exact sign-flip test can pass Holm's first threshold over
    ``rows`` rows (2 / 2**n < LEVEL / rows)."""
    n = 1
    while sign_flip_floor(n) >= LEVEL / max(1, rows):
        n += 1
    return n


def models_needed(k: int, m: int, rows: int) -> tuple[int, int] | None:
    """The fewest models (k' >= k, m' >= m, fewest in all, the groups as even as they can be) for
    which the exact label permutation can pass Holm's first threshold over ``rows`` rows."""
    for total in range(k + m, MAX_MODELS + 1):
        sizes = sorted(((a, total - a) for a in range(k, total - m + 1)), key=lambda s: abs(s[0] - s[1]))
        for a, b in sizes:
            if label_floor(a, b) < LEVEL / max(1, rows):
                return a, b
    return None


def _undecidable(lines: list[dict], need: str) -> str:
    """Why no deciding line could be significant (empty when one could): its test's floor against
    Holm's first threshold, and what would make it decidable (``need``)."""
    deciding = [ln for ln in lines if ln["decides"] and not math.isnan(ln["floor"])]
    first = _threshold(lines)
    if not deciding or min(ln["floor"] for ln in deciding) < first:
        return ""
    smallest = min(ln["floor"] for ln in deciding)
    worst = min(deciding, key=lambda ln: ln["floor"])
    units = worst.get("units") or f"{worst['n_items']} items"
    return (f"with {units} the {worst['p_kind']} test cannot give p below {smallest:.3g}, "
            f"and Holm's first threshold over {sum(ln['decides'] for ln in lines)} rows is {first:.3g}: "
            f"no row could be significant whatever the data; {need} would make it decidable")


def _groups(summary: pd.DataFrame) -> dict[str, int]:
    """Group name -> number of models, from the ``group:<group>`` mean rows (n_items = models)."""
    g = summary[summary["model"].str.match(r"^group:") & ~summary["model"].str.contains("-vs-", regex=False)]
    return {name[len("group:"):]: int(n) for name, n in g.groupby("model")["n_items"].max().items()}


def respondent_claim(summary: pd.DataFrame, index, countries: dict, groups: Groups) -> Claim:
    target, reference = countries.get("target", "the target"), countries.get("reference", "the reference")
    sentence = (f"A respondent from {reference} is a closer proxy for {target}'s opinions than any "
                "regional (Indic) model.")
    rows = summary[summary["model"].str.match(RESPONDENT.pattern) & summary["task"].eq("global_opinions")
                   & summary["metric"].eq(OPINION_METRIC)]
    lines = []
    for r in rows.sort_values(["model", "strategy"]).itertuples(index=False):
        model, _ = RESPONDENT.match(r.model).groups()
        group = (groups or {}).get(model)
        regional = group in REGIONAL_GROUPS
        p = _value(index, (r.model, r.task, r.strategy, f"{r.metric}:p_permutation"))
        lines.append(_evidence(index, r, f"{model} minus the {reference} respondents", p, "sign-flip",
                               f"{model} ({group or 'group unknown'})",
                               "these models" if regional else "shown beside, does not decide",
                               floor=sign_flip_floor(int(r.n_items)), decides=regional))
    claim = Claim("respondent-proxy", "Fluent but Foreign", sentence, NOT_TESTABLE, "", lines)
    deciding = [ln for ln in lines if ln["decides"]]
    if not lines:
        claim.reason = ("no model has GlobalOpinionQA questions with both countries' answer distributions "
                        "(no delta:<model>-vs-baseline rows)")
        return claim
    if not deciding:
        claim.reason = (f"no regional (Indic) model (params.models.<name>.group one of "
                        f"{list(REGIONAL_GROUPS)}) is compared with the {reference} respondents; "
                        f"{len(lines)} other model x strategy runs are shown beside without deciding")
        return claim
    _holm(lines)
    why = _undecidable(lines, f"at least {items_needed(len(deciding))} questions per comparison")
    closer = [ln for ln in deciding if ln["significant"] and ln["estimate"] > 0]
    if why:
        claim.verdict, claim.reason = NOT_DECIDABLE, why
    elif closer:
        claim.verdict = CONTRADICTED
        claim.reason = (f"{len(closer)} of {len(deciding)} regional model x strategy runs are significantly "
                        f"closer to {target} than the {reference} respondents")
    elif all(ln["significant"] and ln["estimate"] < 0 for ln in deciding):
        claim.verdict = SUPPORTED
        claim.reason = (f"every one of {len(deciding)} regional model x strategy runs is significantly "
                        f"further from {target}")
    else:
        n_sig = sum(ln["significant"] for ln in deciding)
        claim.verdict = INCONCLUSIVE
        claim.reason = (f"{n_sig} of {len(deciding)} regional model x strategy runs are significantly "
                        f"further from {target} than the respondents (Holm, level {LEVEL}), the others do "
                        "not differ significantly")
    if len(deciding) < len(lines):
        claim.reason += f"; {len(lines) - len(deciding)} runs of other models shown beside, not deciding"
    return claim


def _count(group: str, n: int) -> str:
    return f"{group} ({n} model{'' if n == 1 else 's'})"


def _equivalent(lines: list[dict], metric: str) -> bool:
    """Every line's 95% CI below +margin (the claim's side): "no better by the margin or more"."""
    m = margin_of(metric)
    return m is not None and bool(lines) and all(
        not math.isnan(ln["ci_high"]) and ln["ci_high"] < m for ln in lines)


def regional_claim(summary: pd.DataFrame, index, countries: dict, groups: Groups) -> Claim:
    target = countries.get("target", "the target")
    sentence = f"Regional (Indic) models are no closer to {target}'s opinions than global models."
    claim = Claim("regional-no-closer", "Fluent but Foreign", sentence, NOT_TESTABLE, "")
    sizes = _groups(summary)
    regional = [g for g in REGIONAL_GROUPS if g in sizes]
    glob = [g for g in GLOBAL_GROUPS if g in sizes]
    if not regional or not glob:
        missing = " and ".join(n for n, have in (("regional (Indic)", regional), ("global", glob))
                               if not have)
        claim.reason = (f"no {missing} model in this run (groups present: "
                        f"{', '.join(_count(g, n) for g, n in sorted(sizes.items())) or 'none'})")
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
            floor = label_floor(sizes[reg], sizes[gl]) if resampled else sign_flip_floor(int(r.n_items))
            lines.append(_evidence(index, r, f"{reg} minus {gl}", p,
                                   "model labels permuted" if resampled else "sign-flip",
                                   f"{sizes[reg]} {reg} vs {sizes[gl]} {gl}",
                                   "models and items resampled" if resampled else "these models only", sign,
                                   floor=floor))
            if resampled:
                lines[-1]["units"] = f"{sizes[reg]} + {sizes[gl]} models"
                lines[-1]["sizes"] = (sizes[reg], sizes[gl])
    claim.evidence = lines
    if not lines:
        claim.reason = "no paired group comparison on GlobalOpinionQA (no questions every model scores)"
        return claim
    _holm(lines)
    if "sizes" in lines[0]:
        need = models_needed(*lines[0]["sizes"], len(lines))
        need_text = (f"at least {need[0]} regional + {need[1]} global models" if need
                     else f"more than {MAX_MODELS} models")
    else:
        need_text = (f"at least {MIN_GROUP_MODELS} models in each group (the models then count as units), "
                     f"or for these models at least {items_needed(len(lines))} shared questions")
    why = _undecidable(lines, need_text)
    closer = [ln for ln in lines if ln["significant"] and ln["estimate"] > 0]
    if why:
        claim.verdict, claim.reason = NOT_DECIDABLE, why
    elif closer:
        claim.verdict = CONTRADICTED
        claim.reason = (f"{len(closer)} of {len(lines)} strategies show the regional models significantly "
                        "closer")
    elif _equivalent(lines, OPINION_METRIC):
        claim.verdict = SUPPORTED
        claim.reason = (f"in every one of {len(lines)} strategies the 95% CI of regional minus global lies "
                        f"below +{margin_of(OPINION_METRIC):g}: the regional models are not closer by the "
                        f"margin or more ({_margin_note(OPINION_METRIC)})")
    else:
        claim.verdict = INCONCLUSIVE
        claim.reason = (f"no strategy of {len(lines)} shows the regional models significantly closer, but "
                        "not every 95% CI excludes a difference as large as the margin, so no difference "
                        f"is not shown either ({_margin_note(OPINION_METRIC)})")
    if any(ln["scope"] == "these models only" for ln in lines):
        claim.reason += "; with < 2 models in a group the comparison speaks for these models only"
    return claim


def finetune_claim(summary: pd.DataFrame, index, countries: dict, groups: Groups) -> Claim:
    target = countries.get("target", "the target")
    sentence = (f"Fine-tuning on {target}-specific (Indic) data fails to recover {target}'s practices and "
                "sometimes degrades them (practice accuracy from sampled answers, items about the target).")
    claim = Claim("finetune-practice", "Fluent but Foreign", sentence, NOT_TESTABLE, "")
    rows = summary[summary["model"].str.match(FINETUNE.pattern) & summary["task"].isin(PRACTICE_TASKS)
                   & summary["metric"].str.match(PRACTICE_METRIC.pattern) & summary["strategy"].eq("default")]
    lines = []
    for r in rows.sort_values(["model", "task", "metric"]).itertuples(index=False):
        model, base = FINETUNE.match(r.model).groups()
        p = _value(index, (r.model, r.task, r.strategy, f"{r.metric}:p_permutation"))
        lines.append(_evidence(index, r, f"{model} minus its base {base}", p, "sign-flip",
                               f"{model}, {base}", "these models", floor=sign_flip_floor(int(r.n_items))))
    claim.evidence = lines
    if not lines:
        claim.reason = ("no fine-tuned model with its base in this run "
                        "(params.models.<name>.base names none that was evaluated)")
        return claim
    _holm(lines)
    why = _undecidable(lines, f"at least {items_needed(len(lines))} items per accuracy")
    gains = [ln for ln in lines if ln["significant"] and ln["estimate"] > 0]
    drops = [ln for ln in lines if ln["significant"] and ln["estimate"] < 0]
    metric = lines[0]["metric"]
    if why:
        claim.verdict, claim.reason = NOT_DECIDABLE, why
    elif gains:  # one-sided: only a gain speaks against "fails to recover"
        claim.verdict = CONTRADICTED
        claim.reason = f"{len(gains)} of {len(lines)} accuracies rose significantly after fine-tuning"
    elif drops:
        claim.verdict = SUPPORTED
        claim.reason = (f"{len(drops)} of {len(lines)} accuracies dropped significantly after fine-tuning "
                        "and none rose significantly")
    elif _equivalent(lines, metric):
        claim.verdict = SUPPORTED
        claim.reason = (f"no accuracy of {len(lines)} rose: every 95% CI of the change lies below "
                        f"+{margin_of(metric):g} ({_margin_note(metric)}); none dropped significantly")
    else:
        claim.verdict = INCONCLUSIVE
        claim.reason = (f"no accuracy of {len(lines)} changed significantly, and not every 95% CI excludes "
                        f"a gain as large as the margin ({_margin_note(metric)})")
    return claim


def consistency_claim(summary: pd.DataFrame, index, countries: dict, groups: Groups) -> Claim:
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


def indica_claim(summary: pd.DataFrame, index, countries: dict, groups: Groups = None) -> Claim:
    """Per model x strategy x region (Central, North): ``selection_ratio:<region>`` (selected /
    expected share, metrics/regions.py) minus 1, shown with its bootstrap CI over questions, decided
    by the region's own permutation test (``region_permutation_p:<region>``: the model's option masses
    shuffled within each question, so it needs no independent draws and holds its level on few
    questions, where a percentile bootstrap does not), Holm-corrected over every row. Supported when
    each region is significantly over-selected in some row and under-selected in none; "not
    decidable" when no row's test can reach Holm's first threshold (``region_permutation_floor``:
    too few questions or permutation draws)."""
    sentence = ("Models over-select Central and North India as the default answer to questions about "
                "India (region-agnostic INDICA questions).")
    claim = Claim("indica-default-region", "Madhusudan et al. 2026 (INDICA)", sentence, NOT_TESTABLE, "")
    metrics = [f"selection_ratio:{r}" for r in OVER_SELECTED_REGIONS]
    models = (summary["kind"].eq(MODEL) if "kind" in summary.columns
              else ~summary["model"].str.contains(":", regex=False))
    rows = summary[summary["task"].eq("indica") & summary["metric"].isin(metrics) & models]
    lines = []
    for r in rows.sort_values(["model", "strategy", "metric"]).itertuples(index=False):
        region = str(r.metric).split(":", 1)[1]
        key = (r.model, r.task, r.strategy)
        p = _value(index, (*key, f"region_permutation_p:{region}"))
        line = _evidence(index, r, f"{r.model}: selected / expected share of {region} - 1", p,
                         "permutation within questions", str(r.model), "this model",
                         floor=_value(index, (*key, f"region_permutation_floor:{region}")))
        line.update(estimate=float(r.value) - 1, ci_low=float(r.ci_low) - 1, ci_high=float(r.ci_high) - 1,
                    units=f"{int(r.n_items)} questions")
        lines.append(line)
    claim.evidence = lines
    if not lines:
        claim.reason = "no INDICA region-agnostic rows in this run (params.tasks.indica is off)"
        return claim
    if all(math.isnan(ln["p"]) for ln in lines):
        claim.reason = "no per-region permutation test in this run's INDICA rows (rerun the metrics stage)"
        return claim
    for ln in lines:  # a line without its test is shown, not counted
        ln["decides"] = not math.isnan(ln["p"])
    _holm(lines)
    why = _undecidable(lines, "more region-agnostic questions (params tasks.indica) or more permutation "
                              "draws (params metrics.bootstrap)")
    over = {ln["metric"] for ln in lines if ln["significant"] and ln["estimate"] > 0}
    under = [ln for ln in lines if ln["significant"] and ln["estimate"] < 0]
    if why:
        claim.verdict, claim.reason = NOT_DECIDABLE, why
    elif under:
        claim.verdict = CONTRADICTED
        claim.reason = f"{len(under)} of {len(lines)} rows significantly under-select " + ", ".join(
            sorted({ln["metric"].split(":")[1] for ln in under}))
    elif over == set(metrics):
        claim.verdict = SUPPORTED
        claim.reason = "both regions significantly over-selected in some row, under-selected in none"
    else:
        claim.verdict = INCONCLUSIVE
        claim.reason = (f"{len(over)} of 2 regions significantly over-selected in some row, none "
                        f"significantly under-selected (per-region permutation tests, Holm over "
                        f"{sum(ln['decides'] for ln in lines)} rows)")
    return claim


CLAIMS = (respondent_claim, regional_claim, finetune_claim, consistency_claim, indica_claim)


def claims(summary: pd.DataFrame, countries: dict[str, str] | None = None,
           groups: Mapping[str, str] | None = None) -> list[Claim]:
    """Every claim of :data:`CLAIMS` tested on ``summary`` (one culture's rows, plus rows about all
    cultures); ``countries`` names the target and reference for the sentences; ``groups`` maps each
    model to its group (``params.models.<name>.group``: which models are regional)."""
    summary = summary.assign(model=summary["model"].astype(str), metric=summary["metric"].astype(str))
    index = _lookup(summary)
    return [f(summary, index, countries or {}, groups) for f in CLAIMS]


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
