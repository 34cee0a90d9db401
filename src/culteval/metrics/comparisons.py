"""Model comparisons: group means, fine-tuned vs base, and Rystrom et al. (2025)
("Multilingual != Multicultural"): per-question alignment and the mixed-effects model.

``comparison_rows`` turns a summary's model rows into extra summary rows:
``group:<group>`` (mean over the group's models), ``delta:<model>-vs-<base>`` and,
when every term is identified, ``mixed_effects`` coefficients. Baselines are never included.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from culteval.config import STRATEGIES, TRANSLATED_STRATEGIES
from culteval.metrics import load_distributions

MIN_MODELS = 4
MIN_QUESTIONS = 3
FORMULA = "alignment ~ 0 + consistency:language + multilingual:family:language"
# the strategies that show the question in English (the others use the target language)
ENGLISH_STRATEGIES = tuple(s for s in STRATEGIES if s not in TRANSLATED_STRATEGIES)
MIXED_MODEL = "mixed_effects"
CORRELATION = "correlation:consistency-alignment"
COMPARISON_PREFIXES = ("group:", "delta:", MIXED_MODEL, "reference:", "correlation:")
# preferred first: the chance-corrected value where the run has it
CONSISTENCY_METRICS = ("self_consistency_corr_corrected", "self_consistency_corr")


def is_model(name: str) -> bool:
    """True for an evaluated model (not a baseline, group mean, delta, mixed-effects or reference row)."""
    return not (name.startswith("baseline:") or name.startswith(COMPARISON_PREFIXES))


def _real_models(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["model"].map(is_model)]


def alignment(items: pd.DataFrame, dists: dict[str, np.ndarray], target: str) -> tuple[float, int]:
    """Spearman correlation across questions between the model's probability of each question's
    modal target-country option and the target country's share of that option.

    Questions: those with a target distribution and a model distribution. (nan, n) when fewer
    than 3 questions or either side is constant (the correlation is undefined).
    """
    xs, ys = [], []
    for item_id, text in zip(items["item_id"], items["distributions"], strict=True):
        t = load_distributions(text).get(target)
        if t is None or item_id not in dists:
            continue
        k = int(np.argmax(t))  # first maximum on ties
        xs.append(float(dists[item_id][k]))
        ys.append(float(t[k]))
    n = len(xs)
    if n < MIN_QUESTIONS or len(set(xs)) < 2 or len(set(ys)) < 2:
        return float("nan"), n
    return float(spearmanr(xs, ys).statistic), n


def group_means(summary: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """Mean value per (group, task, strategy, metric), group = ``cfg.models.<name>.group``."""
    df = _real_models(summary).copy()
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


def mixed_effects_data(summary: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """One row per model x strategy (x culture) with GlobalOpinionQA alignment and consistency.

    As Rystrom et al. compare each language's answers with that language's country: English
    prompts (default/demographic) give language ``en`` and their ``alignment_reference`` (with
    the reference country, the United States by default); prompts in a culture's language
    (cross_lingual/native) give that culture's language (``cfg.cultures.<key>.language``, else
    ``cfg.target.language``) and their ``alignment`` with the culture's country.
    consistency = ``self_consistency_corr_corrected`` (Rystrom et al.'s correlation between
    repeated responses, corrected for chance; culteval.metrics.robustness) where the run has
    it, else the uncorrected ``self_consistency_corr``. family = ``cfg.models.<name>.family``
    (default: its ``group``); multilingual = ``cfg.models.<name>.multilingual`` (a 0/1 flag or a
    score; default 1, which makes the last term a family x language intercept). A summary with
    a ``culture`` column gives a row per culture too (rows of culture ``all`` are left out).
    """
    go = _real_models(summary)
    go = go[go["task"] == "global_opinions"]
    by_culture = "culture" in go.columns
    if by_culture:
        go = go[go["culture"].astype(str) != "all"]
    keys = ["culture", "model", "strategy"] if by_culture else ["model", "strategy"]
    wide = go.pivot_table(index=keys, columns="metric", values="value", aggfunc="first")
    cols = ["model", *(["culture"] if by_culture else []), "strategy", "language", "alignment",
            "consistency", "multilingual", "family"]
    consistency = next((c for c in CONSISTENCY_METRICS if c in wide.columns), None)
    if consistency is None or not {"alignment", "alignment_reference"} & set(wide.columns):
        return pd.DataFrame(columns=cols)
    wide = wide.reindex(columns=["alignment", "alignment_reference", consistency]).reset_index()
    english = wide["strategy"].isin(ENGLISH_STRATEGIES)
    wide["aligned"] = wide["alignment_reference"].where(english, wide["alignment"])
    wide = wide.dropna(subset=["aligned", consistency]).reset_index(drop=True)
    english = wide["strategy"].isin(ENGLISH_STRATEGIES)
    models = cfg.get("models", {})

    def spec(m: str, key: str, default):
        value = (models.get(m) or {}).get(key)
        return default if value is None else value

    cultures = wide["culture"] if by_culture else [None] * len(wide)
    out = pd.DataFrame({
        "model": wide["model"], "strategy": wide["strategy"],
        "language": ["en" if e else _language(cfg, c) for e, c in zip(english, cultures, strict=True)],
        "alignment": wide["aligned"].astype(float),
        "consistency": wide[consistency].astype(float),
        "multilingual": [float(spec(m, "multilingual", 1.0)) for m in wide["model"]],
        "family": [str(spec(m, "family", spec(m, "group", "ungrouped"))) for m in wide["model"]]})
    if by_culture:
        out["culture"] = wide["culture"].astype(str)
    order = [c for c in ("model", "culture", "strategy") if c in cols]
    return out[cols].sort_values(order).reset_index(drop=True)


LANGUAGE_TABLE = ("alignment", "self_consistency_corr", "self_consistency_corr_null",
                  "self_consistency_corr_corrected")
LANGUAGE_N = ("n_alignment", "n_consistency")  # questions behind alignment, prompts behind consistency


def language_table(summary: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """The report's view of the mixed model's inputs: per model x culture x strategy, its language,
    the alignment it is paired with (``alignment_reference`` for English prompts, else ``alignment``),
    and self-consistency beside its chance level and the chance-corrected value (NaN where the run
    has no sampled opinion answers), with the questions (``n_alignment``) and prompts
    (``n_consistency``) they rest on."""
    go = _real_models(summary)
    go = go[go["task"].eq("global_opinions")]
    if "culture" not in go.columns:
        go = go.assign(culture="")
    go = go[go["culture"].astype(str) != "all"]
    keys = ["model", "culture", "strategy"]
    both = go.pivot_table(index=keys, columns="metric", values=["value", "n_items"], aggfunc="first")
    cols = ["alignment", "alignment_reference", *LANGUAGE_TABLE[1:]]
    wide = both["value"].reindex(columns=cols).reset_index()
    n = both["n_items"].reindex(columns=cols).reset_index()  # the items each number rests on
    english = wide["strategy"].isin(ENGLISH_STRATEGIES)
    wide["alignment"] = wide["alignment_reference"].where(english, wide["alignment"])
    wide["n_alignment"] = n["alignment_reference"].where(english, n["alignment"])  # questions
    wide["n_consistency"] = n["self_consistency_corr"]  # prompts with >= 2 parsed sampled answers
    wide.insert(3, "language", ["en" if e else _language(cfg, c or None)
                                for e, c in zip(english, wide["culture"], strict=True)])
    return wide[[*keys, "language", *LANGUAGE_TABLE, *LANGUAGE_N]].sort_values(keys).reset_index(drop=True)


def unidentified(data: pd.DataFrame) -> list[str]:
    """Why the mixed model cannot be fitted on ``data``, one reason a term; [] when it can.

    The random intercept needs >= ``MIN_MODELS`` models; each fixed-effect column of the
    formula's design must vary and not be a linear combination of the others (patsy design,
    numerical rank), and there must be more rows than columns.
    """
    if data.empty:
        return ["no model x strategy has both GlobalOpinionQA alignment and a self-consistency value "
                "(consistency needs sampled opinion answers: params.tasks.global_opinions.sampled.trials "
                "> 0)"]
    reasons = []
    n = int(data["model"].nunique())
    if n < MIN_MODELS:
        reasons.append(f"random intercept per model: need >= {MIN_MODELS} models, have {n}")
    from patsy import dmatrix

    design = dmatrix(FORMULA.split("~", 1)[1], data.sort_values(["model", "language"]),
                     return_type="dataframe")
    x = design.to_numpy()
    rank = np.linalg.matrix_rank(x)
    for j, name in enumerate(design.columns):
        col = x[:, j]
        if not np.any(col):
            reasons.append(f"{name}: no rows (the column is all zero)")
        elif name.startswith("consistency") and np.ptp(col[col != 0]) == 0:
            reasons.append(f"{name}: consistency does not vary within this language")
        elif np.linalg.matrix_rank(np.delete(x, j, axis=1)) == rank:
            reasons.append(f"{name}: collinear with the other terms")
    if len(x) <= x.shape[1]:
        reasons.append(f"{len(x)} model x strategy rows for {x.shape[1]} fixed-effect columns")
    if data.groupby("family")["multilingual"].nunique().le(1).all() and data["multilingual"].nunique() == 1:
        reasons.append("multilingual is the same for every model: the multilingual:family:language term "
                       "cannot separate multilingual ability from family x language")
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


def mixed_effects(data: pd.DataFrame) -> dict:
    """``alignment ~ 0 + consistency:language + multilingual:family:language``, random intercept per model.

    ``data``: one row per (model, language[, question set]) with columns model, alignment,
    consistency, language, multilingual (flag or score), family. REML (statsmodels ``mixedlm``).
    Fitted only when every term is identified (:func:`unidentified`); otherwise returns
    ``{"ok": False, "message": <the reasons>}``.
    """
    reasons = unidentified(data)
    if reasons:
        return {"ok": False, "message": "mixed-effects model not fitted: " + "; ".join(reasons)}
    import statsmodels.formula.api as smf

    n = int(data["model"].nunique())
    fit = smf.mixedlm(FORMULA, data.sort_values(["model", "language"]), groups="model").fit(reml=True)
    return {"ok": True, "formula": FORMULA, "n_models": n, "params": fit.params.to_dict(),
            "bse": fit.bse.to_dict(), "pvalues": fit.pvalues.to_dict(), "message": ""}


def mixed_effects_note(summary: pd.DataFrame, cfg: dict) -> str | None:
    """The report's line when the mixed-effects model was not fitted; None when it was."""
    if summary["model"].eq(MIXED_MODEL).any():
        return None
    data = mixed_effects_data(summary, cfg)
    msg = mixed_effects(data)["message"]
    if not msg:
        return None
    evaluated = int(_real_models(summary)["model"].nunique())
    if len(data) and evaluated != data["model"].nunique():  # say why models were left out
        msg += (f"; {evaluated} model(s) evaluated, {data['model'].nunique()} with both GlobalOpinionQA "
                f"alignment (>= {MIN_QUESTIONS} questions with a target distribution) and self-consistency")
    if len(data):
        msg += f"; the per-language consistency-alignment correlations ({CORRELATION} rows) stand in"
        few = sorted(lang for lang, grp in data.groupby("language") if grp["model"].nunique() < MIN_QUESTIONS)
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
        for term in sorted(res["params"]):
            est, se = res["params"][term], res["bse"].get(term, math.nan)
            if term.endswith(" Var"):  # "model Var": the random intercept's variance: no Wald interval
                rows.append(_row(MIXED_MODEL, "global_opinions", "all", "var:model_intercept", est,
                                 len(data)))
            else:
                rows.append(_row(MIXED_MODEL, "global_opinions", "all", f"coef:{term}", est, len(data),
                                 est - 1.96 * se, est + 1.96 * se))
    return rows


def comparison_rows(summary: pd.DataFrame, cfg: dict, *, mixed: bool = True) -> list[dict]:
    """Summary rows for group means, fine-tune deltas and the mixed-effects fit (when identified;
    otherwise the per-language consistency-alignment correlations, model
    ``correlation:consistency-alignment``, metric ``spearman:<language>``, n = models).

    Group means: n_items = models in the group, no CI. Deltas: no CI. Mixed effects: model
    ``mixed_effects``, task global_opinions, strategy ``all``, metric ``coef:<term>``, CI =
    estimate +- 1.96 SE (Wald), plus ``var:model_intercept`` (random-intercept variance, no CI);
    n_items = model x strategy rows fitted. ``mixed=False`` leaves the mixed model out (fitted
    over several cultures at once by ``summary.summarize_cultures``).
    """
    rows = []
    for r in group_means(summary, cfg).itertuples(index=False):
        rows.append(_row(f"group:{r.group}", r.task, r.strategy, r.metric, r.value, r.n_models))
    for r in finetune_deltas(summary, cfg).itertuples(index=False):
        rows.append(_row(f"delta:{r.model}-vs-{r.base}", r.task, r.strategy, r.metric, r.delta, r.n_items))
    return rows + (mixed_rows(summary, cfg) if mixed else [])
