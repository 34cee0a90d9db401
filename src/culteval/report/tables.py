"""The report's tables in the paper's layout, built from the long ``summary.csv``.

* opinions: GlobalOpinionQA similarity to each country, CAD and nCAD, one row per
  model (and the reference-country respondent baseline) x strategy;
* practices: one table per practice task, accuracy by model x strategy, columns
  grouped by measure and split by country (target, reference, both);
* the map: each model's placement and distances and the target-reference distance;
  the projection's fit to the published country points when microdata are supplied;
* logit-generation agreement per model x task x strategy;
* comparisons: group differences, fine-tuned-vs-base deltas and each model vs the reference
  respondents with their 95% CI, paired p-values and what they speak for on one row.

Every cell carries its value, the number of items it rests on and its flags (the
``flags`` column of the summary), shown as letters beside the number and spelled out
in the table's caption.
"""

from __future__ import annotations

import math
import re

import pandas as pd

from culteval.metrics.kinds import COMPARISON, MODEL, TABLED, require_kind

# One letter per flag (culteval.metrics.flags), with the caption's explanation.
FLAGS = {
    "subset": ("S", "the task's data are a subset of the benchmark (a limit, a sampled item set, or a "
                    "subset file; rows pooling strategies or cultures: any pooled run's)"),
    "machine_translated": ("T", "the prompts show strings machine-translated (a translator model, or a "
                                "translation-table entry not marked reviewed); for rows pooling "
                                "strategies or cultures, at least one pooled run's prompts do"),
    "non-national": ("N", "rests on a target distribution from a non-national sample"),
    "ncad-assumption": ("A", "nCAD's normalisation is this project's documented choice"),
    "y002-independence": ("Y", "Y002 derived from two choice distributions treated as independent"),
    "no-ci": ("C", "no 95% interval: the exact test behind this comparison cannot reach p < 0.05 with so "
                   "few items (sign-flip: under 6) or models (group-label permutation: e.g. 3 + 3)"),
    "boundary": ("B", "a mixed-effects fit at the boundary: its REML random-intercept variance is 0, so "
                      "its coefficients are those without random intercepts (OLS)"),
}
COUNTRY_SUFFIXES = (("_target", "target"), ("_reference", "reference"))
OPINION_METRICS = {"sim_target": "Sim (target)", "sim_reference": "Sim (reference)",
                   "sim_target_shared": "Sim (target, shared questions)", "cad": "CAD", "ncad": "nCAD"}
PRACTICE_TASKS = ("culturalbench", "normad", "blend")
MAP_METRICS = ("map_x", "map_y", "map_dist_target", "map_dist_reference", "map_x_sampled", "map_y_sampled",
               "map_dist_target_sampled", "map_dist_reference_sampled", "map_invalid_rate_sampled",
               "map_dist_target_reference")
P_VALUES = ("p_permutation", "p_sign", "p_models")
AGREEMENT_METRICS = {"logit_gen_agreement": "sampled answer = logit argmax",
                     "logit_gen_tv": "TV(sampled frequencies, option distribution)"}
# practice measures (docs/metrics.md) in the paper's order; "logits": argmax of the answer distribution
PRACTICE_MEASURES = {
    "acc_prob": "Easy (logits)", "acc_sampled": "Easy / answers (sampled)",
    "acc_question": "Hard, per question (logits)", "acc_question_sampled": "Hard, per question (sampled)",
    "acc_judgement": "Hard, per judgement (logits)", "acc_judgement_sampled": "Hard, per judgement (sampled)",
}
NORMAD_CONTEXTS = {"none": "no context", "country": "country context", "value": "value context",
                   "rot": "rule-of-thumb context"}


def fmt(v) -> str:
    """Four significant digits; empty for a missing value."""
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.4g}"


def flag_list(text) -> list[str]:
    """The flags of a summary row (``;``-joined, possibly empty or missing)."""
    if not isinstance(text, str) or not text:
        return []
    return sorted(f for f in text.split(";") if f)


def cell(row) -> dict:
    """A table cell: value, n_items, 95% CI and flag letters of one summary row (None: empty cell)."""
    if row is None:
        return {"value": "", "n": "", "ci": "", "marks": "", "flags": ""}
    flags = flag_list(getattr(row, "flags", ""))
    lo, hi = fmt(row.ci_low), fmt(row.ci_high)
    return {"value": fmt(row.value), "n": int(row.n_items), "ci": f"[{lo}, {hi}]" if lo and hi else "",
            "marks": " ".join(FLAGS[f][0] if f in FLAGS else f for f in flags), "flags": "; ".join(flags)}


def legend(flags: set[str]) -> list[dict]:
    """Caption entries for the flags that appear, in the order of ``FLAGS``."""
    known = [f for f in FLAGS if f in flags]
    return ([{"mark": FLAGS[f][0], "flag": f, "text": FLAGS[f][1]} for f in known]
            + [{"mark": f, "flag": f, "text": "see docs/metrics.md"} for f in sorted(flags - set(FLAGS))])


def split_country(metric: str) -> tuple[str, str]:
    """``acc_prob_rot_target`` -> (``acc_prob_rot``, ``target``); no suffix -> (metric, ``all``)."""
    for suffix, country in COUNTRY_SUFFIXES:
        if metric.endswith(suffix):
            return metric[: -len(suffix)], country
    return metric, "all"


def _head(label: str, span: int = 1, metric: str = "") -> dict:
    """A header cell; ``metric`` (the summary's name) is shown under a reader's label."""
    return {"label": label, "span": span, "metric": metric}


def _table(title: str, df: pd.DataFrame, columns: list[tuple], header: list[list[dict]], note: str = "",
           key=("model", "strategy")) -> dict:
    """Rows keyed by ``key`` (sorted), one cell per column; a column is (metric, country) or a metric."""
    index = {}
    for r in df.itertuples(index=False):
        index[(*(getattr(r, k) for k in key), r.metric)] = r
    rows, seen = [], set()
    for k in sorted({tuple(getattr(r, c) for c in key) for r in df.itertuples(index=False)}):
        cells = []
        for col in columns:
            r = index.get((*k, col["metric"]))
            cells.append(cell(r))
            if r is not None:
                seen.update(flag_list(getattr(r, "flags", "")))
        if any(c["value"] for c in cells):
            rows.append({"key": [str(x) for x in k], "cells": cells})
    return {"title": title, "key": list(key), "header": header, "rows": rows, "legend": legend(seen),
            "note": note}


def opinions_table(summary: pd.DataFrame) -> dict:
    """GlobalOpinionQA: Sim, CAD, nCAD per model x strategy, baselines included."""
    df = summary[summary["task"].eq("global_opinions") & summary["metric"].isin(OPINION_METRICS)
                 & summary["kind"].isin(TABLED)]  # a comparison is never a model's similarity
    present = set(df["metric"])
    cols = [{"metric": m} for m in OPINION_METRICS if m in present]
    return _table("Opinions (GlobalOpinionQA)", df, cols,
                  [[_head(OPINION_METRICS[c["metric"]], metric=c["metric"]) for c in cols]],
                  note="Sim: 1 - Jensen-Shannon distance to the country's answer distribution; CAD and "
                       "nCAD: cultural alignment difference (target minus reference); baseline rows are "
                       "the reference country's respondents answering for the target (their Sim to their "
                       "own country, 1, and nCAD, -1, hold by construction: reference values, no "
                       "interval) and the mean over every other country (the two compared left out).")


def practice_label(measure: str) -> tuple[int, str]:
    """(rank, heading) of a practice measure: the paper's order, named for a reader of the paper."""
    if measure in PRACTICE_MEASURES:
        return list(PRACTICE_MEASURES).index(measure), PRACTICE_MEASURES[measure]
    m = re.fullmatch(r"acc_(prob|sampled)_(none|country|value|rot)", measure)
    if m:  # NormAd: context, then logits before sampled answers
        context = list(NORMAD_CONTEXTS).index(m.group(2))
        rank = len(PRACTICE_MEASURES) + 2 * context + (m.group(1) == "sampled")
        return rank, f"{NORMAD_CONTEXTS[m.group(2)]} ({'logits' if m.group(1) == 'prob' else 'sampled'})"
    return 1000, measure


def _practice_columns(metrics: list[str]) -> tuple[list[dict], list[list[dict]]]:
    order = {"target": 0, "reference": 1, "all": 2}
    parts = sorted({split_country(m) for m in metrics},
                   key=lambda bc: (practice_label(bc[0])[0], bc[0], order[bc[1]]))
    cols = [{"metric": m if c == "all" else f"{m}_{c}", "country": c} for m, c in parts]
    groups: list[dict] = []
    for m, _ in parts:
        if groups and groups[-1]["metric"] == m:
            groups[-1]["span"] += 1
        else:
            groups.append(_head(practice_label(m)[1], metric=m))
    return cols, [groups, [_head(c["country"]) for c in cols]]


def practice_tables(summary: pd.DataFrame, countries: dict[str, str]) -> list[dict]:
    """Accuracy by model x strategy x country, one table per practice task present."""
    out = []
    for task in PRACTICE_TASKS:
        df = summary[summary["task"].eq(task) & summary["metric"].str.startswith("acc_")
                     & ~summary["metric"].str.contains(":", regex=False) & summary["kind"].isin(TABLED)]
        if df.empty:
            continue
        cols, header = _practice_columns(sorted(set(df["metric"])))
        header[1] = [_head(countries.get(c["country"], "both countries" if c["country"] == "all"
                                         else c["country"])) for c in cols]
        out.append(_table(f"Practices: {task}", df, cols, header,
                          note="Accuracy; columns: the measure (docs/metrics.md), then the country the "
                               "items are about."))
    return out


def map_tables(summary: pd.DataFrame) -> list[dict]:
    """Placements and distances on the Inglehart-Welzel map; the projection's fit, when fitted."""
    maps = summary[summary["task"].eq("cultural_map") & summary["kind"].isin(TABLED)]
    df = maps[maps["metric"].str.startswith("map_")]
    metrics = sorted(set(df["metric"]), key=lambda m: (MAP_METRICS.index(m) if m in MAP_METRICS
                                                       else len(MAP_METRICS), m))
    out = [_table("Cultural map (Inglehart-Welzel)", df, [{"metric": m} for m in metrics],
                  [[_head(m) for m in metrics]],
                  note="x: survival (-) to self-expression (+); y: traditional (-) to secular-rational "
                       "(+); _sampled: placed from sampled answers, otherwise from expected values. "
                       "map_dist_target_reference (row reference:ivs_map, once per run) is the distance "
                       "between the two countries' published points, the yardstick for the models' "
                       "distances.")]
    fit = maps[maps["metric"].str.startswith("fit_")]
    if not fit.empty:
        out.append(map_fit_table(fit))
    return out


def agreement_table(summary: pd.DataFrame) -> dict:
    """Logit-generation agreement per model x task x strategy (metrics/agreement.py)."""
    df = summary[summary["metric"].isin(AGREEMENT_METRICS) & summary["kind"].eq(MODEL)]
    cols = [{"metric": m} for m in AGREEMENT_METRICS if m in set(df["metric"])]
    return _table("Logit-generation agreement", df, cols,
                  [[_head(AGREEMENT_METRICS[c["metric"]], metric=c["metric"]) for c in cols]],
                  note="Per prompt with both a logit distribution and sampled answers: the share of its "
                       "sampled answers equal to the distribution's argmax (invalid answers disagree), and "
                       "the total-variation distance between the answers' frequencies (invalid answers a "
                       "category of their own) and the distribution; mean over items. Trials are sampled "
                       "at the run's temperature and few per prompt, so TV > 0 even for a faithful sampler.",
                  key=("model", "task", "strategy"))


def scope(model: str, has_p_models: bool) -> str:
    """What a comparison row speaks for: group rows without a models-resampled test are about these
    models only (docs/metrics.md)."""
    if model.startswith("group:"):
        return "models and items resampled" if has_p_models else "these models only"
    return "these models (items resampled)"


def map_fit_table(fit: pd.DataFrame) -> dict:
    """The projection's fit, one row per microdata country-wave (``fit_dist``, items not asked)
    and one row ``all`` (counts of waves, RMSE, correlations)."""
    parts = fit["metric"].str.split(":")
    per_wave = parts.str.len() > 1
    df = fit.assign(wave=["all" if len(p) == 1 else f"{p[1]} {p[2]}" for p in parts],
                    metric=[p[0] if len(p) < 4 else f"{p[0]}:{p[3]}" for p in parts])
    wave_metrics = sorted(set(df.loc[per_wave, "metric"]), key=lambda m: (m != "fit_dist", m))
    metrics = wave_metrics + sorted(set(df.loc[~per_wave, "metric"]))
    return _table("Map projection vs the published country points", df, [{"metric": m} for m in metrics],
                  [[_head(m) for m in metrics]], key=("wave",),
                  note="The projection fitted on the supplied microdata, applied to each country-wave's "
                       "complete respondents: distance to the published point of that wave (n = "
                       "respondents); fit_not_asked:<item> marks a wave where no respondent has a "
                       "valid answer to that item (not placed; n = its respondents); row all: counts "
                       "of country-waves (placed, items not asked, no published point that year), "
                       "RMSE and correlations over the placed ones (n = waves).")


def comparisons_table(summary: pd.DataFrame) -> dict:
    """Group differences and fine-tuned-vs-base deltas: value with CI, and paired p-values."""
    # differences only: delta:<m>-vs-<base> and group:<a>-vs-<b> (plain group means sit in the tables above)
    comp = summary[summary["kind"].eq(COMPARISON)]
    base = comp[~comp["metric"].str.contains(":", regex=False)]
    pv = comp[comp["metric"].str.contains(":", regex=False)]
    pvals = {(r.model, r.task, r.strategy, *r.metric.split(":", 1)): r for r in pv.itertuples(index=False)}
    rows, seen = [], set()
    for r in base.sort_values(["model", "task", "strategy", "metric"]).itertuples(index=False):
        c = cell(r)
        seen.update(flag_list(getattr(r, "flags", "")))
        ps = [fmt(pvals[(r.model, r.task, r.strategy, r.metric, p)].value)
              if (r.model, r.task, r.strategy, r.metric, p) in pvals else "" for p in P_VALUES]
        rows.append({"key": [str(r.model), str(r.task), str(r.strategy), str(r.metric)], "cell": c,
                     "p": ps, "scope": scope(str(r.model), bool(ps[P_VALUES.index("p_models")]))})
    return {"title": "Comparisons", "rows": rows, "legend": legend(seen),
            "note": "group:<a>-vs-<b>, delta:<model>-vs-<base> and delta:<model>-vs-baseline:<reference> "
                    "(the model minus the reference country's respondents) rows are paired on shared items "
                    "(n = shared items); the CI inverts the sign-flip test (p permutation), so it excludes "
                    "0 exactly when that p is below 0.05, and is left empty (flag no-ci) where the items "
                    "are too few for a 95% interval. A group comparison with >= 2 models in each group "
                    "takes the models as units: its CI inverts the permutation of their group labels "
                    "(p models), none where the models are too few for that test to reach p < 0.05 (e.g. "
                    "3 + 3); otherwise it speaks for these models only. The "
                    "group:<group> rows of the tables above are plain means over the group's models "
                    "(n = models)."}


REGION_SHARE_MEASURES = {"selection_share": "selection share", "expected_share": "expected share",
                         "selection_ratio": "selected / expected",
                         "selection_share_sampled": "selection share (sampled)",
                         "selection_ratio_sampled": "selected / expected (sampled)",
                         "region_permutation_p": "p (this region, permutation)"}
REGION_ACC_MEASURES = {"acc_prob": "accuracy (logits)", "chance": "chance (1/options)",
                       "acc_sampled": "accuracy (sampled)"}
REGIONS_NOTE = ("INDICA is asked under the default and demographic strategies only: its questions and "
                "answers have no translation in the culture's table, so the task declares cross-lingual "
                "and native unsupported (docs/metrics.md \"Regions of India\"). CC BY 4.0; "
                "Madhusudan et al. 2026, \"Common to Whom? Regional Cultural Commonsense and LLM Bias "
                "in India\", arXiv 2601.15550.")


def _by_region(df: pd.DataFrame, sep: str = ":") -> pd.DataFrame:
    """``<measure>:<region>`` rows as (region, measure) rows; ``confusion:<asked>><s>`` as (asked, "> s")."""
    parts = df["metric"].str.split(":", n=1, expand=True)
    region, measure = parts[1], parts[0]
    conf = measure.eq("confusion")
    pair = region[conf].str.split(">", n=1, expand=True)
    if len(pair):
        region, measure = region.copy(), measure.copy()
        region[conf], measure[conf] = pair[0], "picked " + pair[1]
    return df.assign(region=region, metric=measure)


def regions_tables(summary: pd.DataFrame) -> list[dict]:
    """INDICA: selection share per region (region-agnostic) and accuracy and confusion per asked
    region (region-anchored), one row per model x strategy x region; none without INDICA rows."""
    df = summary[summary["task"].eq("indica") & summary["metric"].str.contains(":", regex=False)
                 & ~summary["model"].str.contains(":", regex=False)]
    if df.empty:
        return []
    df = _by_region(df)
    key = ("model", "strategy", "region")
    out = []
    share = df[df["metric"].isin(REGION_SHARE_MEASURES)]
    if len(share):
        cols = [{"metric": m} for m in REGION_SHARE_MEASURES if m in set(share["metric"])]
        header = [[_head(REGION_SHARE_MEASURES[c["metric"]], metric=c["metric"]) for c in cols]]
        out.append(_table("Regions of India (INDICA): whose answer is picked, region-agnostic questions",
                          share, cols, header, key=key,
                          note="Share of the model's answers credited to each region (an option several "
                               "regions gave is split among them) beside the share a pick without regional "
                               "preference gets; 95% CI over questions (a percentile bootstrap: on few "
                               "questions it covers less than 95%, so the INDICA claim rests on the "
                               "region's permutation p instead, Holm-corrected). " + REGIONS_NOTE))
    acc = df[df["metric"].isin(REGION_ACC_MEASURES) | df["metric"].str.startswith("picked ")]
    if len(acc):
        picked = sorted({m for m in acc["metric"] if m.startswith("picked ")})
        cols = [{"metric": m} for m in [*REGION_ACC_MEASURES, *picked] if m in set(acc["metric"])]
        header = [[_head(REGION_ACC_MEASURES.get(c["metric"], c["metric"] + "'s answer")) for c in cols]]
        out.append(_table("Regions of India (INDICA): region-anchored questions, accuracy and confusion",
                          acc, cols, header, key=key,
                          note="Row: the region the question asks about; \"picked <s>'s answer\": share of "
                               "those questions whose most likely option is region s's answer (an answer "
                               "several regions gave counts for each). " + REGIONS_NOTE))
    return out


def paper_tables(summary: pd.DataFrame, countries: dict[str, str] | None = None) -> dict:
    """All the paper-layout tables: ``opinions``, ``practices`` (list), ``map``, ``comparisons``."""
    countries = countries or {}
    require_kind(summary, "the report's summary")
    if "flags" not in summary.columns:
        summary = summary.assign(flags="")
    return {"opinions": opinions_table(summary), "practices": practice_tables(summary, countries),
            "map": map_tables(summary), "agreement": agreement_table(summary),
            "comparisons": comparisons_table(summary), "regions": regions_tables(summary)}
