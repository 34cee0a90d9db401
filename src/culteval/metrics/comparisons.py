"""Model comparisons: group means, fine-tuned vs base, and Rystrom et al. (2025)
("Multilingual != Multicultural"): per-question alignment and the mixed-effects model.

``comparison_rows`` turns a summary's model rows into extra summary rows:
``group:<group>`` (mean over the group's models), ``delta:<model>-vs-<base>`` and,
with >= 4 models, ``mixed_effects`` coefficients. Baselines are never included.
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
COMPARISON_PREFIXES = ("group:", "delta:", MIXED_MODEL, "reference:")


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


def mixed_effects_data(summary: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """One row per model x strategy with GlobalOpinionQA ``alignment`` and a consistency value.

    consistency = ``self_consistency_corr`` (Rystrom et al.'s correlation between repeated
    responses). language = ``en`` for default/demographic prompts, else ``cfg.target.language``.
    family = ``cfg.models.<name>.group``; multilingual = 1 for every model (the config does not
    record it), so the last term reduces to family x language.
    """
    go = _real_models(summary)
    go = go[go["task"] == "global_opinions"]
    wide = go.pivot_table(index=["model", "strategy"], columns="metric", values="value", aggfunc="first")
    cols = ["model", "strategy", "language", "alignment", "consistency", "multilingual", "family"]
    if not {"alignment", "self_consistency_corr"} <= set(wide.columns):
        return pd.DataFrame(columns=cols)
    wide = wide[["alignment", "self_consistency_corr"]].dropna().reset_index()
    models = cfg.get("models", {})
    lang = str((cfg.get("target") or {}).get("language") or "target")
    out = pd.DataFrame({
        "model": wide["model"], "strategy": wide["strategy"],
        "language": ["en" if s in ENGLISH_STRATEGIES else lang for s in wide["strategy"]],
        "alignment": wide["alignment"].astype(float),
        "consistency": wide["self_consistency_corr"].astype(float),
        "multilingual": 1.0,
        "family": [(models.get(m) or {}).get("group") or "ungrouped" for m in wide["model"]]})
    return out[cols].sort_values(["model", "strategy"]).reset_index(drop=True)


def mixed_effects(data: pd.DataFrame) -> dict:
    """``alignment ~ 0 + consistency:language + multilingual:family:language``, random intercept per model.

    ``data``: one row per (model, language[, question set]) with columns model, alignment,
    consistency, language, multilingual (0/1), family. REML (statsmodels ``mixedlm``).
    Needs >= 4 models; otherwise returns ``{"ok": False, "message": ...}``.
    """
    n = int(data["model"].nunique()) if "model" in data else 0
    if n < MIN_MODELS:
        return {"ok": False, "message": f"not enough models for the mixed-effects model "
                                        f"(need >= {MIN_MODELS}, have {n})"}
    import statsmodels.formula.api as smf

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
    if evaluated != data["model"].nunique():  # say why models were left out
        msg += (f"; {evaluated} model(s) evaluated, {data['model'].nunique()} with both GlobalOpinionQA "
                f"alignment (>= {MIN_QUESTIONS} questions with a target distribution) and "
                "self_consistency_corr")
    return msg


def _row(model, task, strategy, metric, value, n, lo=math.nan, hi=math.nan) -> dict:
    return {"model": model, "task": task, "strategy": strategy, "metric": metric, "value": float(value),
            "ci_low": float(lo), "ci_high": float(hi), "n_items": int(n)}


def comparison_rows(summary: pd.DataFrame, cfg: dict) -> list[dict]:
    """Summary rows for group means, fine-tune deltas and (>= 4 models) the mixed-effects fit.

    Group means: n_items = models in the group, no CI. Deltas: no CI. Mixed effects: model
    ``mixed_effects``, task global_opinions, strategy ``all``, metric ``coef:<term>``, CI =
    estimate +- 1.96 SE (Wald), plus ``var:model_intercept`` (random-intercept variance, no CI);
    n_items = model x strategy rows fitted.
    """
    rows = []
    for r in group_means(summary, cfg).itertuples(index=False):
        rows.append(_row(f"group:{r.group}", r.task, r.strategy, r.metric, r.value, r.n_models))
    for r in finetune_deltas(summary, cfg).itertuples(index=False):
        rows.append(_row(f"delta:{r.model}-vs-{r.base}", r.task, r.strategy, r.metric, r.delta, r.n_items))
    data = mixed_effects_data(summary, cfg)
    res = mixed_effects(data)
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
