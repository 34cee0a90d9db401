"""Model comparisons: groups, fine-tuned vs base, and the Rystrom et al. (2025) mixed model."""

from __future__ import annotations

import pandas as pd

MIN_MODELS = 4
FORMULA = "alignment ~ 0 + consistency:language + multilingual:family:language"


def _real_models(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[~summary["model"].str.startswith("baseline:")]


def group_means(summary: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """Mean value per (group, task, strategy, metric), group = ``cfg.models.<name>.group``."""
    df = _real_models(summary).copy()
    models = cfg.get("models", {})
    df["group"] = df["model"].map(lambda m: (models.get(m) or {}).get("group") or "ungrouped")
    out = (df.groupby(["group", "task", "strategy", "metric"], sort=True)
           .agg(value=("value", "mean"), n_models=("model", "nunique")).reset_index())
    return out


def finetune_deltas(summary: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """value(model) - value(base) for each model whose ``cfg.models.<name>.base`` was also evaluated."""
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
        j = m[keys + ["value"]].merge(b[keys + ["value"]], on=keys, suffixes=("", "_base"))
        j.insert(0, "base", base)
        j.insert(0, "model", name)
        j["delta"] = j["value"] - j["value_base"]
        frames.append(j)
    cols = ["model", "base", *keys, "value", "value_base", "delta"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


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
