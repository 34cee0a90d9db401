"""Model comparisons: group means, fine-tuned vs base, and Rystrom et al. (2025)
("Multilingual != Multicultural"): the mixed-effects model on their alignment and
self-consistency.

``comparison_rows`` turns a summary's model rows into extra summary rows:
``group:<group>`` (mean over the group's models), ``delta:<model>-vs-<base>`` and,
when every term is identified, ``mixed_effects`` coefficients. Baselines are never included.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from culteval.config import TRANSLATED_STRATEGIES
from culteval.metrics.kinds import COMPARISON, FIT, GROUP, with_kind

# a rule of thumb for a stable random-intercept variance, not an identification condition: fewer
# models are fitted and the report says so
RULE_OF_THUMB_MODELS = 4
MIN_QUESTIONS = 3
FORMULA = "alignment ~ 0 + consistency:language + multilingual:family:language"
# English prompts enter the mixed model only as the plain English question (``default``): the
# ``demographic`` prompt asks in English as a person of the target culture, so comparing it with
# the reference country (the US) would score a persona against the wrong country.
ENGLISH_STRATEGIES = ("default",)
MIXED_STRATEGIES = (*ENGLISH_STRATEGIES, *TRANSLATED_STRATEGIES)
MIXED_MODEL = "mixed_effects"
CORRELATION = "correlation:consistency-alignment"
COMPARISON_PREFIXES = ("group:", "delta:", MIXED_MODEL, "reference:", "correlation:")
CONSISTENCY = "self_consistency_pairwise"


def is_model(name: str) -> bool:
    """True for an evaluated model (not a baseline, group mean, delta, mixed-effects or reference row)."""
    return not (name.startswith("baseline:") or name.startswith(COMPARISON_PREFIXES))


def _real_models(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["model"].map(is_model)]


#: a model's own test results (a statistic and its p-value, e.g. INDICA's ``region_chi2`` and
#: ``region_permutation_p``, ``region_permutation_p:<region>`` and the smallest p such a test can
#: give, ``region_permutation_floor:<region>``): a mean of them over a group's models is no test, so
#: none is made
NOT_AVERAGED = re.compile(r"(?:_p$|_p_|_p:|_floor|chi2)")


def group_means(summary: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """Mean value per (group, task, strategy, metric), group = ``cfg.models.<name>.group``; test
    statistics and p-values (:data:`NOT_AVERAGED`) are left out."""
    df = _real_models(summary)
    df = df[~df["metric"].astype(str).str.contains(NOT_AVERAGED)].copy()
    models = cfg.get("models", {})
    df["group"] = df["model"].map(lambda m: (models.get(m) or {}).get("group") or "ungrouped")
    out = (df.groupby(["group", "task", "strategy", "metric"], sort=True)
           .agg(value=("value", "mean"), n_models=("model", "nunique")).reset_index())
    return out


def finetune_deltas(summary: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """value(model) - value(base) for each model whose ``cfg.models.<name>.base`` was also evaluated.

    ``n_items`` is the smaller of the two rows' counts.
    """
    df = _real_models(summary)
    keys = ["task", "strategy", "metric"]
    frames = []
    for name, spec in sorted(cfg.get("models", {}).items()):
        base = (spec or {}).get("base")
        if not base:
            continue
        m, b = df[df["model"] == name], df[df["model"] == base]
        if m.empty or b.empty:
            continue
        j = m[keys + ["value", "n_items"]].merge(b[keys + ["value", "n_items"]], on=keys,
                                                 suffixes=("", "_base"))
        j.insert(0, "base", base)
        j.insert(0, "model", name)
        j["delta"] = j["value"] - j["value_base"]
        j["n_items"] = np.minimum(j["n_items"], j["n_items_base"])
        frames.append(j.drop(columns="n_items_base"))
    cols = ["model", "base", *keys, "value", "value_base", "delta", "n_items"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def _language(cfg: dict, culture: str | None) -> str:
    """The target language of a culture (``cfg.cultures``), else of the config's own target."""
    cultures = cfg.get("cultures") or {}
    if culture is not None and culture in cultures:
        return str(cultures[culture]["language"])
    return str((cfg.get("target") or {}).get("language") or "target")


def multilingual_of(cfg: dict, model: str, language: str) -> float:
    """``cfg.models.<model>.multilingual.<language>`` (a declared score in [0, 1] per language);
    NaN when the model or the language has none (the mixed model then names it)."""
    value = ((cfg.get("models", {}).get(model) or {}).get("multilingual") or {}).get(language)
    return math.nan if value is None else float(value)


def mixed_effects_data(summary: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """One row per model x strategy (x culture) with GlobalOpinionQA alignment and consistency.

    Each language's answers are compared with one country's survey answers (Rystrom et al.'s
    per-country variant, ``gt_type="country"``; their English ground truth pools respondents by
    interview language, which GlobalOpinionQA's country shares cannot give): the English
    ``default`` prompt gives language ``en`` and its ``alignment_reference`` (with culteval's
    reference country, the United States by default; the India-persona ``demographic`` prompt is
    left out);
    prompts in a culture's language (cross_lingual/native) give that culture's language
    (``cfg.cultures.<key>.language``, else ``cfg.target.language``) and their ``alignment`` with the
    culture's country; both are Rystrom et al.'s response-level alignment from sampled answers.
    consistency = ``self_consistency_pairwise`` (their ``calculate_consistency``;
    culteval.metrics.proscore). family = ``cfg.models.<name>.family``
    (default: its ``group``); multilingual = ``cfg.models.<name>.multilingual.<language>`` (NaN where
    not declared). A summary with a ``culture`` column gives a row per culture too (rows of culture
    ``all`` are left out).
    """
    go = _real_models(summary)
    go = go[go["task"].eq("global_opinions") & go["strategy"].isin(MIXED_STRATEGIES)]
    by_culture = "culture" in go.columns
    if by_culture:
        go = go[go["culture"].astype(str) != "all"]
    keys = ["culture", "model", "strategy"] if by_culture else ["model", "strategy"]
    wide = go.pivot_table(index=keys, columns="metric", values="value", aggfunc="first")
    cols = ["model", *(["culture"] if by_culture else []), "strategy", "language", "alignment",
            "consistency", "multilingual", "family"]
    if CONSISTENCY not in wide.columns or not {"alignment", "alignment_reference"} & set(wide.columns):
        return pd.DataFrame(columns=cols)
    wide = wide.reindex(columns=["alignment", "alignment_reference", CONSISTENCY]).reset_index()
    english = wide["strategy"].isin(ENGLISH_STRATEGIES)
    wide["aligned"] = wide["alignment_reference"].where(english, wide["alignment"])
    wide = wide.dropna(subset=["aligned", CONSISTENCY]).reset_index(drop=True)
    english = wide["strategy"].isin(ENGLISH_STRATEGIES)
    models = cfg.get("models", {})

    def family(m: str) -> str:
        spec = models.get(m) or {}
        return str(spec.get("family") or spec.get("group") or "ungrouped")

    cultures = wide["culture"] if by_culture else [None] * len(wide)
    languages = ["en" if e else _language(cfg, c) for e, c in zip(english, cultures, strict=True)]
    out = pd.DataFrame({
        "model": wide["model"], "strategy": wide["strategy"], "language": languages,
        "alignment": wide["aligned"].astype(float),
        "consistency": wide[CONSISTENCY].astype(float),
        "multilingual": [multilingual_of(cfg, m, lang)
                         for m, lang in zip(wide["model"], languages, strict=True)],
        "family": [family(m) for m in wide["model"]]})
    if by_culture:
        out["culture"] = wide["culture"].astype(str)
    order = [c for c in ("model", "culture", "strategy") if c in cols]
    return out[cols].sort_values(order).reset_index(drop=True)


LANGUAGE_TABLE = ("alignment", CONSISTENCY, "invalid_rate_proscore")
LANGUAGE_N = ("n_alignment", "n_consistency")  # responses behind alignment, questions behind consistency


def language_table(summary: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """The report's view of the mixed model's inputs: per model x culture x strategy (English
    ``default`` and the culture-language strategies), its language, the alignment it is paired with
    (``alignment_reference`` for English, else ``alignment``: Rystrom et al.'s response-level
    alignment), their pairwise self-consistency and
    the share of sampled answers it left out as unparseable, with what each rests on
    (``n_alignment``: responses, ``n_consistency``: questions). All three need sampled opinion
    answers: a row without any is left out (a run without them has an empty table)."""
    go = _real_models(summary)
    go = go[go["task"].eq("global_opinions") & go["strategy"].isin(MIXED_STRATEGIES)]
    if "culture" not in go.columns:
        go = go.assign(culture="")
    go = go[go["culture"].astype(str) != "all"]
    keys = ["model", "culture", "strategy"]
    if go.empty:  # no opinion rows under these strategies (a run without GlobalOpinionQA): no table
        return pd.DataFrame(columns=[*keys, "language", *LANGUAGE_TABLE, *LANGUAGE_N])
    both = go.pivot_table(index=keys, columns="metric", values=["value", "n_items"], aggfunc="first")
    cols = ["alignment", "alignment_reference", *LANGUAGE_TABLE[1:]]
    wide = both["value"].reindex(columns=cols).reset_index()
    n = both["n_items"].reindex(columns=cols).reset_index()  # the items each number rests on
    english = wide["strategy"].isin(ENGLISH_STRATEGIES)
    wide["alignment"] = wide["alignment_reference"].where(english, wide["alignment"])
    wide["n_alignment"] = n["alignment_reference"].where(english, n["alignment"])  # responses
    wide["n_consistency"] = n[CONSISTENCY]  # questions with >= 2 valid sampled answers
    wide.insert(3, "language", ["en" if e else _language(cfg, c or None)
                                for e, c in zip(english, wide["culture"], strict=True)])
    wide = wide.dropna(subset=list(LANGUAGE_TABLE), how="all")  # no sampled answers: nothing of theirs
    return wide[[*keys, "language", *LANGUAGE_TABLE, *LANGUAGE_N]].sort_values(keys).reset_index(drop=True)


def not_estimable(design: pd.DataFrame, tol: float = 1e-9) -> list[str]:
    """The fixed-effect columns of ``design`` that are not estimable: each column with a non-zero
    loading on a null-space vector of the design (the rank deficiency's own terms), [] at full rank."""
    x = design.to_numpy(float)
    if x.size == 0:
        return []
    _, sing, vt = np.linalg.svd(x, full_matrices=True)
    rank = int((sing > tol * max(x.shape) * (sing[0] if sing.size else 0)).sum())
    null = vt[rank:]
    if not len(null):
        return []
    return [name for j, name in enumerate(design.columns) if np.abs(null[:, j]).max() > 1e-8]


def unidentified(data: pd.DataFrame) -> list[str]:
    """Why the mixed model cannot be fitted on ``data``, one reason a term; [] when it can.

    Every row needs a declared multilingual score for its (model, language); the random intercept
    needs >= 2 models; the fixed-effect design (patsy, of :data:`FORMULA`) must have full column
    rank (the terms in its null space are named) and more rows than columns; and each
    multilingual:family:language term must vary within its family and language (else it is a
    family x language intercept, not an effect of multilingual ability).
    """
    if data.empty:
        return ["no model x strategy has both GlobalOpinionQA alignment and a self-consistency value "
                "(consistency needs sampled opinion answers: params.tasks.global_opinions.sampled.trials "
                "> 0)"]
    reasons = []
    missing = data[data["multilingual"].isna()][["model", "language"]].drop_duplicates()
    for r in missing.sort_values(["model", "language"]).itertuples(index=False):
        reasons.append(f"params.models.{r.model}.multilingual.{r.language}: not declared (a score in "
                       "[0, 1] for each language the model is fitted in)")
    if reasons:
        return reasons
    n = int(data["model"].nunique())
    if n < 2:
        reasons.append(f"random intercept per model: need >= 2 models, have {n}")
    from patsy import dmatrix

    design = dmatrix(FORMULA.split("~", 1)[1], data.sort_values(["model", "language"]),
                     return_type="dataframe")
    x = design.to_numpy()
    for j, name in enumerate(design.columns):
        if not np.any(x[:, j]):
            reasons.append(f"{name}: the column is all zero (no rows, or 0 on every row)")
    bad = [c for c in not_estimable(design) if np.any(design[c].to_numpy())]
    if bad:
        reasons.append(f"design rank {np.linalg.matrix_rank(x)} < {x.shape[1]} columns: not estimable "
                       f"(a linear combination of each other): {', '.join(bad)}")
    if len(x) <= x.shape[1]:
        reasons.append(f"{len(x)} model x strategy rows for {x.shape[1]} fixed-effect columns")
    constant = [f"multilingual:family[{fam}]:language[{lang}] ({grp['multilingual'].iloc[0]:g})"
                for (fam, lang), grp in data.groupby(["family", "language"], sort=True)
                if grp["multilingual"].nunique() == 1 and grp["multilingual"].iloc[0] != 0]
    if constant:  # all-zero columns are named above
        reasons.append("multilingual is the same for every model of the family in the language, so each "
                       "of these terms is a family x language intercept, not an effect of multilingual "
                       "ability: " + ", ".join(constant))
    return reasons


def consistency_alignment_correlations(data: pd.DataFrame) -> list[dict]:
    """Per language: Spearman correlation across models of consistency and alignment (each model's
    mean over its strategies in that language); the fallback when the mixed model is not fitted."""
    rows = []
    for language, grp in data.groupby("language", sort=True):
        per_model = grp.groupby("model")[["consistency", "alignment"]].mean()
        n = len(per_model)
        ok = n >= MIN_QUESTIONS and per_model.nunique().min() > 1
        rho = float(spearmanr(per_model["consistency"], per_model["alignment"]).statistic) if ok else math.nan
        rows.append(_row(CORRELATION, "global_opinions", "all", f"spearman:{language}", rho, n))
    return rows


#: statsmodels' optimizers for the REML fit, tried one at a time in this order, each from statsmodels'
#: own start: the first whose result is accepted (:func:`_accepted`) is used
OPTIMIZERS = ("lbfgs", "bfgs", "cg", "powell", "nm")
#: an optimizer's result that statsmodels does not call converged is accepted when the profile REML
#: score (w.r.t. statsmodels' square-root parameter) is at most this large: near the boundary the
#: optimizers crawl towards a variance of 0 and stop on their iteration limit, not on failure
SCORE_TOL = 1e-4
#: random-intercept variance / residual variance: the smallest ratio statsmodels evaluates correctly
#: (it treats a covariance below 1e-10 as singular and then profiles the fixed effects as if the
#: intercepts were free), and the ratio below which a fit is taken to the boundary when the REML
#: likelihood falls as the variance leaves 0
RATIO_FLOOR = 1e-8
BOUNDARY_RATIO = 1e-4
#: the flag of every row of a fit whose random-intercept variance is 0 (metrics/flags.py)
BOUNDARY = "boundary"


def _ratio_score(model, ratio: float) -> float:
    """d(profile REML log-likelihood) / d(variance ratio) at ``ratio`` > 0 (statsmodels' score is
    with respect to the ratio's square root)."""
    root = math.sqrt(ratio)
    return float(model.score(np.array([root]))[0]) / (2 * root)


def _accepted(model, fit, ratio: float) -> str:
    """'' when an optimizer's fit is accepted, else why not: statsmodels calls it converged, or its
    score is small, or it stopped near the boundary (``ratio`` <= :data:`BOUNDARY_RATIO`) where the
    REML likelihood falls as the variance leaves 0 (there the optimum is the boundary itself, which
    the optimizers, working on the variance's square root, approach ever more slowly)."""
    score = float(np.abs(model.score(fit.params_object.get_packed(use_sqrt=True, has_fe=False))).max())
    if fit.converged or score <= SCORE_TOL:
        return ""
    if ratio <= BOUNDARY_RATIO and _ratio_score(model, RATIO_FLOOR) <= 0:
        return ""
    return f"converged=False, |score| = {score:.3g}"


def _polish(model, ratio: float) -> float | None:
    """The variance ratio where the REML score is 0, in the basin of an optimizer's ``ratio``:
    found from the score (brentq, to the last bits), not from the likelihood, so the estimate does
    not depend on the optimizer's stopping rule or a BLAS kernel's rounding. 0.0 at the boundary
    (the score is negative from ``ratio`` down to :data:`RATIO_FLOOR`: the likelihood falls as the
    variance leaves 0); None when the score does not change sign."""
    lo = hi = max(ratio, RATIO_FLOOR)
    for _ in range(80):  # a bracket: the score rises below the maximum and falls above it
        if _ratio_score(model, lo) > 0 or lo <= RATIO_FLOOR:
            break
        lo = max(lo / 2, RATIO_FLOOR)
    for _ in range(80):
        if _ratio_score(model, hi) < 0:
            break
        hi *= 2
    if not (_ratio_score(model, lo) > 0 > _ratio_score(model, hi)):
        return 0.0 if lo <= RATIO_FLOOR and _ratio_score(model, lo) <= 0 else None
    from scipy.optimize import brentq

    return float(brentq(lambda r: _ratio_score(model, r), lo, hi, xtol=lo * 1e-15, maxiter=500))


def _boundary_fit(model) -> dict:
    """The REML fit at a random-intercept variance of 0: the fixed effects are then ordinary least
    squares (statsmodels OLS; its residual variance is REML's), with normal-theory Wald intervals as
    statsmodels' mixed model reports them; the variance is exactly 0."""
    import statsmodels.api as sm

    ols = sm.OLS(model.endog, model.exog).fit(use_t=False)
    names = list(model.exog_names)
    params = dict(zip(names, np.asarray(ols.params, float), strict=True))
    bse = dict(zip(names, np.asarray(ols.bse, float), strict=True))
    ci = {t: (float(lo), float(hi)) for t, (lo, hi) in zip(names, np.asarray(ols.conf_int()), strict=True)}
    return {"params": {**params, "model Var": 0.0}, "bse": bse,
            "pvalues": dict(zip(names, np.asarray(ols.pvalues, float), strict=True)), "ci": ci}


def _fit_at(model, ratio: float) -> dict:
    """statsmodels' REML results at the variance ratio ``ratio`` (its score is 0 there, so the
    optimizer, started there, stops at once)."""
    fit = model.fit(reml=True, method=["lbfgs"], start_params=np.array([math.sqrt(ratio)]))
    got = float(np.asarray(fit.cov_re_unscaled, float).ravel()[0])
    if not math.isclose(got, ratio, rel_tol=1e-9):
        raise ValueError(f"statsmodels moved off the REML score's root (ratio {ratio:.6g} -> {got:.6g})")
    ci = fit.conf_int()
    return {"params": {k: float(v) for k, v in fit.params.items()},
            "bse": {k: float(v) for k, v in fit.bse.items()},
            "pvalues": {k: float(v) for k, v in fit.pvalues.items()},
            "ci": {t: (float(ci.loc[t, 0]), float(ci.loc[t, 1])) for t in ci.index}}


def fit_reml(data: pd.DataFrame) -> dict:
    """The REML fit of :data:`FORMULA` with a random intercept per model: each of
    :data:`OPTIMIZERS` in turn until one's result is accepted, its variance then pinned down from
    the score (:func:`_polish`); at the boundary (variance 0, a valid REML estimate) the fixed
    effects of :func:`_boundary_fit`. ``{"ok": False, "message": ...}`` with every optimizer's
    reason when none is accepted."""
    import warnings

    import statsmodels.formula.api as smf

    tried = []
    for method in OPTIMIZERS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = smf.mixedlm(FORMULA, data.sort_values(["model", "language"]), groups="model")
            try:
                fit = model.fit(reml=True, method=[method])
                found = float(np.asarray(fit.cov_re_unscaled, float).ravel()[0])
                why = _accepted(model, fit, found)
                ratio = None if why else _polish(model, found)
                if not why and ratio is None:
                    why = "the REML score does not change sign near its optimum"
                if not why:
                    out = _boundary_fit(model) if ratio == 0 else _fit_at(model, ratio)
            except (np.linalg.LinAlgError, ValueError) as err:
                why = f"statsmodels failed: {err}"
        if why:
            tried.append(f"{method}: {why}")
            continue
        notes = sorted({str(w.message).splitlines()[0] for w in caught})
        return {"ok": True, "optimizer": method, "boundary": ratio == 0, "warnings": notes, **out}
    return {"ok": False, "message": "no optimizer's REML fit converged (" + "; ".join(tried) + ")"}


def mixed_effects(data: pd.DataFrame) -> dict:
    """``alignment ~ 0 + consistency:language + multilingual:family:language``, random intercept per model.

    ``data``: one row per (model, language[, strategy, culture]) with columns model, alignment,
    consistency, language, multilingual, family. REML (statsmodels ``mixedlm``, :func:`fit_reml`):
    a random-intercept variance of 0 is a valid estimate, returned with ``boundary`` True. Refused,
    as ``{"ok": False, "message": <the reasons>}``, when a term is not identified
    (:func:`unidentified`) or when no optimizer converges. A fit on fewer than
    ``RULE_OF_THUMB_MODELS`` models is returned with a ``caution``.
    """
    reasons = unidentified(data)
    if reasons:
        return {"ok": False, "message": "mixed-effects model not fitted: " + "; ".join(reasons)}
    n = int(data["model"].nunique())
    res = fit_reml(data)
    if not res["ok"]:
        return {"ok": False, "message": "mixed-effects model not fitted: " + res["message"]}
    caution = (f"{n} models: fewer than {RULE_OF_THUMB_MODELS}, a rule of thumb for a stable "
               "random-intercept variance" if n < RULE_OF_THUMB_MODELS else "")
    return {**res, "formula": FORMULA, "n_models": n, "caution": caution, "message": ""}


def mixed_effects_note(summary: pd.DataFrame, cfg: dict) -> str | None:
    """The report's line when the mixed-effects model was not fitted (its exact reasons), or was
    fitted on fewer models than the rule of thumb, or at the boundary; None otherwise."""
    data = mixed_effects_data(summary, cfg)
    res = mixed_effects(data)
    if res["ok"]:
        said = [f"on {res['caution']}"] if res["caution"] else []
        if res["boundary"]:
            said.append(f"at the boundary (rows flagged {BOUNDARY}): the REML estimate of the "
                        "random-intercept variance is 0, so the coefficients are those of the model "
                        "without random intercepts (OLS), their intervals conditional on that variance")
        return "mixed-effects model fitted " + "; ".join(said) if said else None
    msg = res["message"]
    evaluated = int(_real_models(summary)["model"].nunique())
    if len(data) and evaluated != data["model"].nunique():  # say why models were left out
        msg += (f"; {evaluated} model(s) evaluated, {data['model'].nunique()} with both GlobalOpinionQA "
                f"alignment (>= {MIN_QUESTIONS} questions with a target distribution) and self-consistency")
    if len(data):
        msg += f"; the per-language consistency-alignment correlations ({CORRELATION} rows) stand in"
        few = sorted(lang for lang, grp in data.groupby("language")
                     if grp["model"].nunique() < MIN_QUESTIONS)
        if few:  # a rank correlation over fewer models is +-1 by construction: left empty
            msg += (f", each over >= {MIN_QUESTIONS} models with distinct values (empty for "
                    f"{', '.join(few)}: fewer models)")
    return msg


def _row(model, task, strategy, metric, value, n, lo=math.nan, hi=math.nan) -> dict:
    return {"model": model, "task": task, "strategy": strategy, "metric": metric, "value": float(value),
            "ci_low": float(lo), "ci_high": float(hi), "n_items": int(n)}


def mixed_rows(summary: pd.DataFrame, cfg: dict) -> list[dict]:
    """The mixed-effects fit's rows when every term is identified, else the per-language
    consistency-alignment correlations (none without any consistency-alignment data)."""
    rows = []
    data = mixed_effects_data(summary, cfg)
    res = mixed_effects(data)
    if not res["ok"] and len(data):
        rows += consistency_alignment_correlations(data)
    if res["ok"]:
        flags = BOUNDARY if res["boundary"] else ""  # every row of the fit rests on it
        for term in sorted(res["params"]):
            est, se = res["params"][term], res["bse"].get(term, math.nan)
            if term.endswith(" Var"):  # "model Var": the random intercept's variance: no Wald interval
                rows.append({**_row(MIXED_MODEL, "global_opinions", "all", "var:model_intercept", est,
                                    len(data)), "flags": flags})
            else:
                lo, hi = res["ci"].get(term, (est - 1.96 * se, est + 1.96 * se))
                rows.append({**_row(MIXED_MODEL, "global_opinions", "all", f"coef:{term}", est, len(data),
                                    lo, hi), "flags": flags})
    return rows


def comparison_rows(summary: pd.DataFrame, cfg: dict, *, mixed: bool = True) -> list[dict]:
    """Summary rows for group means, fine-tune deltas and the mixed-effects fit (when identified;
    otherwise the per-language consistency-alignment correlations, model
    ``correlation:consistency-alignment``, metric ``spearman:<language>``, n = models).

    Group means: n_items = models in the group, no CI. Deltas: no CI. Mixed effects: model
    ``mixed_effects``, task global_opinions, strategy ``all``, metric ``coef:<term>``, CI =
    estimate +- 1.96 SE (Wald), plus ``var:model_intercept`` (random-intercept variance, no CI);
    n_items = model x strategy rows fitted. Each row carries its ``kind`` (metrics/kinds.py: group,
    comparison, fit). ``mixed=False`` leaves the mixed model out (fitted
    over several cultures at once by ``summary.summarize_cultures``).
    """
    groups = [_row(f"group:{r.group}", r.task, r.strategy, r.metric, r.value, r.n_models)
              for r in group_means(summary, cfg).itertuples(index=False)]
    deltas = [_row(f"delta:{r.model}-vs-{r.base}", r.task, r.strategy, r.metric, r.delta, r.n_items)
              for r in finetune_deltas(summary, cfg).itertuples(index=False)]
    return (with_kind(groups, GROUP) + with_kind(deltas, COMPARISON)
            + (with_kind(mixed_rows(summary, cfg), FIT) if mixed else []))
