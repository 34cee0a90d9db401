"""The mixed model's REML fit (metrics/comparisons.py ``fit_reml``): a random-intercept variance of 0
is a valid estimate at the boundary, fitted and flagged; an interior fit does not depend on which
optimizer found it; when no optimizer converges the fit is refused with each one's reason.

The data are built so that the answer does not hinge on a BLAS kernel's last bits: the boundary
case has no between-model variation at all beyond the fixed effects (each model's residuals sum to
0), the interior one intercepts six times the noise (tests/test_kernels.py runs these under a
second OpenBLAS kernel)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from culteval.metrics import comparisons
from culteval.metrics.comparisons import (
    BOUNDARY,
    CONSISTENCY,
    FORMULA,
    OPTIMIZERS,
    comparison_rows,
    mixed_effects,
    mixed_effects_note,
)
from culteval.metrics.flags import flag_column

FAMILY = {0: "a", 1: "b", 2: "a", 3: "b", 4: "a", 5: "b"}
MULTILINGUAL = {0: 0.2, 1: 0.9, 2: 0.5, 3: 0.7, 4: 0.4, 5: 0.1}
INTERCEPT = [-0.3, 0.25, 0.1, -0.15, 0.35, -0.2]
SLOPE = 0.6


def fit_data(kind: str, seed: int = 1) -> pd.DataFrame:
    """Six models x two languages x three strategies. ``boundary``: no model intercepts and each
    (model, language)'s noise centred, so the REML variance is 0 by a wide margin (its score at 0 is
    about -10); ``interior``: intercepts of sd 0.25 beside noise of sd 0.05."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(6):
        for lang in ("en", "hi"):
            noise = rng.normal(0, 0.05, 3)
            if kind == "boundary":
                noise -= noise.mean()
            for r in range(3):
                cons = rng.uniform(0, 1)
                rows.append({"model": f"m{i}", "language": lang, "strategy": f"s{r}", "family": FAMILY[i],
                             "multilingual": MULTILINGUAL[i] + (0.1 if lang == "hi" else 0.0),
                             "consistency": cons,
                             "alignment": SLOPE * cons + 0.3 * MULTILINGUAL[i] + noise[r]
                             + (INTERCEPT[i] if kind == "interior" else 0.0)})
    return pd.DataFrame(rows)


def as_summary(data: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The fit's data as the summary rows and params mixed_effects_data reads them from: English
    rows as the ``default`` prompt's alignment_reference, Hindi ones as native prompts' alignment
    (one strategy per row: the three replicates become three cultures' worth of prompts)."""
    cfg = {"target": {"country": "India", "language": "hi"}, "reference": {"country": "United States"},
           "models": {}}
    rows = []
    for r in data.itertuples(index=False):
        spec = cfg["models"].setdefault(r.model, {"group": "g", "family": r.family, "base": None,
                                                  "multilingual": {}})
        spec["multilingual"][r.language] = r.multilingual
        english = r.language == "en"
        strategy, metric = ("default", "alignment_reference") if english else ("native", "alignment")
        culture = r.strategy  # s0, s1, s2: one row per (model, culture, strategy)
        for m, v in ((metric, r.alignment), (CONSISTENCY, r.consistency)):
            rows.append({"culture": culture, "model": r.model, "task": "global_opinions",
                         "strategy": strategy, "metric": m, "value": v, "ci_low": np.nan,
                         "ci_high": np.nan, "n_items": 20})
    return pd.DataFrame(rows), cfg


def ols(data: pd.DataFrame) -> pd.Series:
    """Least squares on the fixed-effect design (numpy), the fit's answer at variance 0."""
    from patsy import dmatrices

    y, x = dmatrices(FORMULA, data.sort_values(["model", "language"]), return_type="dataframe")
    beta, *_ = np.linalg.lstsq(x.to_numpy(), y.to_numpy().ravel(), rcond=None)
    return pd.Series(beta, index=x.columns)


def test_a_boundary_fit_is_accepted_with_its_variance_0_and_flagged():
    data = fit_data("boundary")
    res = mixed_effects(data)
    assert res["ok"], res["message"]
    assert res["boundary"] and res["params"]["model Var"] == 0.0
    expected = ols(data)
    for term, value in expected.items():
        assert res["params"][term] == pytest.approx(value, abs=1e-10), term
        lo, hi = res["ci"][term]
        assert lo < value < hi
    assert res["params"]["consistency:language[en]"] == pytest.approx(SLOPE, abs=0.05)
    summary, cfg = as_summary(data)
    rows = pd.DataFrame(comparison_rows(summary, cfg))
    fit = rows[rows["model"] == "mixed_effects"].set_index("metric")
    assert fit.loc["var:model_intercept", "value"] == 0.0 and len(fit) == len(expected) + 1
    assert fit["flags"].eq(BOUNDARY).all()  # every row of the fit rests on the boundary estimate
    # the summary's flags column keeps the fit's own flag beside the pooled ones
    flags = flag_column(rows.assign(culture="all"), cfg)
    assert all(BOUNDARY in f.split(";") for f in flags[rows["model"] == "mixed_effects"])
    note = mixed_effects_note(summary, cfg)
    assert note.startswith(f"mixed-effects model fitted at the boundary (rows flagged {BOUNDARY}): the REML "
                           "estimate of the random-intercept variance is 0")


def test_an_interior_fit_is_the_same_whichever_optimizer_finds_it(monkeypatch):
    """Each optimizer alone stops at its own point (they differ in the 4th digit); the fit is the
    score's root from there, the same to 12 digits, and statsmodels' own fit agrees to its tolerance."""
    import statsmodels.formula.api as smf

    data = fit_data("interior")
    fits = {}
    for method in OPTIMIZERS:
        monkeypatch.setattr(comparisons, "OPTIMIZERS", (method,))
        res = mixed_effects(data)
        assert res["ok"] and not res["boundary"] and res["optimizer"] == method, res
        fits[method] = res
    first = fits[OPTIMIZERS[0]]
    for method, res in fits.items():
        for term, value in first["params"].items():
            assert res["params"][term] == pytest.approx(value, rel=1e-12), (method, term)
    assert first["params"]["model Var"] > 0.01
    own = smf.mixedlm(FORMULA, data.sort_values(["model", "language"]), groups="model").fit(reml=True)
    for term, value in own.params.items():
        assert first["params"][term] == pytest.approx(value, rel=1e-3, abs=1e-6), term
    assert first["params"]["consistency:language[hi]"] == pytest.approx(SLOPE, abs=0.05)
    summary, cfg = as_summary(data)
    rows = pd.DataFrame(comparison_rows(summary, cfg))
    fit = rows[rows["model"] == "mixed_effects"].set_index("metric")
    assert fit.loc["var:model_intercept", "value"] == pytest.approx(first["params"]["model Var"])
    assert fit["flags"].eq("").all()
    assert mixed_effects_note(summary, cfg) is None


def test_when_no_optimizer_converges_the_refusal_names_each_one(monkeypatch):
    from statsmodels.regression.mixed_linear_model import MixedLM

    fit = MixedLM.fit
    monkeypatch.setattr(MixedLM, "fit", lambda self, *a, **k: fit(self, *a, **{**k, "maxiter": 1}))
    res = mixed_effects(fit_data("interior"))
    assert not res["ok"]
    assert res["message"].startswith("mixed-effects model not fitted: no optimizer's REML fit converged "
                                     "(lbfgs: converged=False, |score| = ")
    for method in OPTIMIZERS:
        assert f"{method}: converged=False, |score| = " in res["message"]
    summary, cfg = as_summary(fit_data("interior"))
    rows = pd.DataFrame(comparison_rows(summary, cfg))
    assert not rows["model"].eq("mixed_effects").any()  # the per-language correlations stand in
    assert rows["model"].eq("correlation:consistency-alignment").any()


def test_a_run_over_several_cultures_keeps_the_fits_flag(tmp_path, monkeypatch):
    """summarize_cultures fits the mixed model once over every culture (culture ``all``): the
    rows it adds keep the fit's own flag beside the pooled data flags."""
    from test_cultures import RYSTROM, _pipeline_run

    from culteval.config import load_params
    from culteval.metrics import summary

    boundary_rows = comparisons.mixed_rows(*as_summary(fit_data("boundary")))
    monkeypatch.setattr(summary, "mixed_rows", lambda df, cfg: boundary_rows)
    cfg = load_params(RYSTROM)
    cfg["cultures"].pop("pt")
    cfg["metrics"]["bootstrap"] = 20
    df = summary.summarize_cultures(_pipeline_run(tmp_path, {"da": "Denmark", "nl": "Netherlands"},
                                                  tasks={"global_opinions"}), cfg)
    fit = df[df["model"].eq("mixed_effects")]
    assert len(fit) == len(boundary_rows) and fit["culture"].eq("all").all()
    assert all(BOUNDARY in f.split(";") and "machine_translated" in f.split(";") for f in fit["flags"])
