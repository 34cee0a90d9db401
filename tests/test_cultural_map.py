"""Map maths on synthetic IVS-like microdata generated from known loadings.

Respondents of eight synthetic countries have two latent factors (secular,
self-expression) whose country means are known; each item is a known linear
function of one factor plus noise. Y003 is centred on 0, so about half the
respondents have a negative autonomy index (as in real data, where faith and
obedience are mentioned). The "known" placement of a country is the official
procedure applied to the exact population moments of that generating model;
the fit on a sample must recover it within 0.05 on both axes.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from culteval.metrics.cultural_map import (
    MAP_VARS,
    fit_projection,
    fit_quality,
    fit_quality_rows,
    map_metrics,
    projection_from_moments,
    sampled_distributions,
    to_map,
)

# item -> (factor 0 = secular / 1 = self-expression, loading, centre, scale)
GEN = {"F063": (0, -0.85, 6.0, 1.0), "Y003": (0, -0.8, 0.0, 0.4), "F120": (0, 0.8, 6.0, 1.0),
       "G006": (0, -0.75, 6.0, 1.0), "E018": (0, -0.75, 6.0, 1.0), "Y002": (1, 0.8, 6.0, 1.0),
       "A008": (1, -0.75, 6.0, 1.0), "F118": (1, 0.85, 6.0, 1.0), "E025": (1, -0.8, 6.0, 1.0),
       "A165": (1, -0.75, 6.0, 1.0)}
NOISE = 0.5
COUNTRY_MEANS = np.array([[-1.0, -0.8], [-0.6, 0.4], [-0.2, -0.3], [0.0, 0.9], [0.3, -1.0], [0.5, 0.2],
                          [0.8, 0.7], [1.0, -0.2]])
COUNTRIES = [f"c{i}" for i in range(len(COUNTRY_MEANS))]


def _lam_mu_scale():
    lam = np.zeros((len(MAP_VARS), 2))
    mu, scale = np.zeros(len(MAP_VARS)), np.zeros(len(MAP_VARS))
    for i, v in enumerate(MAP_VARS):
        f, load, centre, s = GEN[v]
        lam[i, f], mu[i], scale[i] = load, centre, s
    return lam, mu, scale


def synthetic_microdata(per_country=5000, seed=1, missing=0.01):
    rng = np.random.default_rng(seed)
    lam, mu, scale = _lam_mu_scale()
    f = np.repeat(COUNTRY_MEANS, per_country, axis=0) + rng.normal(size=(per_country * len(COUNTRIES), 2))
    x = mu + scale * (f @ lam.T + NOISE * rng.normal(size=(len(f), len(MAP_VARS))))
    df = pd.DataFrame(x, columns=list(MAP_VARS))
    df["S017"] = rng.uniform(0.5, 1.5, size=len(df))
    df["country"] = np.repeat(COUNTRIES, per_country)
    # WVS missing codes: -5 on Y003 (outside its range), -1/-2 on raw items; these rows must be dropped
    k = int(missing * len(df))
    rows = rng.choice(len(df), size=2 * k, replace=False)
    df.loc[rows[:k], "Y003"] = -5.0
    df.loc[rows[k:], "A008"] = rng.choice([-1.0, -2.0], size=k)
    return df


def population_projection():
    """The official procedure on the generating model's exact moments (equal-size countries)."""
    lam, mu, scale = _lam_mu_scale()
    m = COUNTRY_MEANS.mean(axis=0)
    sigma_f = np.eye(2) + np.cov(COUNTRY_MEANS.T, bias=True)
    cov = np.outer(scale, scale) * (lam @ sigma_f @ lam.T + NOISE ** 2 * np.eye(len(MAP_VARS)))
    sd = np.sqrt(np.diag(cov))
    return projection_from_moments(mu + scale * (lam @ m), sd, cov / np.outer(sd, sd))


def known_points() -> pd.DataFrame:
    """Known country placements: the population projection of each country's mean answers."""
    lam, mu, scale = _lam_mu_scale()
    proj = population_projection()
    sc = proj.scores(mu + scale * (COUNTRY_MEANS @ lam.T))
    x, y = to_map(sc[:, 0], sc[:, 1])
    names = [c.upper() for c in COUNTRIES]
    return pd.DataFrame({"geo": COUNTRIES, "name": names, "year": 2020, "x": x, "y": y})


@pytest.fixture(scope="module")
def micro():
    return synthetic_microdata()


def test_synthetic_microdata_has_negative_y003_and_missing_codes(micro):
    y3 = micro["Y003"]
    assert ((y3 < 0) & (y3 >= -2)).mean() > 0.4
    assert (y3 == -5).sum() > 0 and (micro["A008"] < 0).sum() > 0


def test_fit_recovers_known_placements_with_negative_y003(micro):
    known = known_points()
    q = fit_quality(fit_projection(micro), micro, known)
    assert list(q["geo"]) == COUNTRIES
    # every respondent counts except those carrying a missing code (negative Y003 is not one)
    complete = micro[(micro["Y003"] != -5) & (micro["A008"] >= 0)].groupby("country").size()
    assert q["n"].tolist() == complete.loc[COUNTRIES].tolist()
    np.testing.assert_allclose(q["x"], known["x"], atol=0.05)
    np.testing.assert_allclose(q["y"], known["y"], atol=0.05)
    assert q["dist"].max() < 0.05
    # the known points are spread well beyond the tolerance: the test can tell countries apart
    assert np.ptp(known["x"]) > 1 and np.ptp(known["y"]) > 1
    # the ordering of the true factor means survives the projection
    assert np.corrcoef(known["y"], COUNTRY_MEANS[:, 0])[0, 1] > 0.99
    assert np.corrcoef(known["x"], COUNTRY_MEANS[:, 1])[0, 1] > 0.99


def test_fit_quality_rows_report_a_misplaced_published_point(micro):
    known = known_points()
    shifted = known.assign(y=np.where(known["geo"] == "c3", known["y"] + 1.0, known["y"]))
    rows = {r["metric"]: r for r in fit_quality_rows(fit_quality(fit_projection(micro), micro, shifted))}
    assert rows["fit_dist:c3"]["value"] == pytest.approx(1.0, abs=0.05)
    assert rows["fit_dist:c0"]["value"] < 0.05 and rows["fit_dist:c0"]["n_items"] > 4000
    assert rows["fit_rmse"]["value"] == pytest.approx(np.sqrt(1 / len(COUNTRIES)), abs=0.03)
    assert rows["fit_corr_x"]["n_items"] == len(COUNTRIES) and rows["fit_corr_x"]["value"] > 0.99
    # names match too, case-insensitively; unknown countries are skipped
    by_name = micro.assign(country=micro["country"].str.upper().replace({"C7": "nowhere"}))
    assert list(fit_quality(fit_projection(micro), by_name, known)["geo"]) == COUNTRIES[:-1]


def _map_items():
    recs = []
    for v in MAP_VARS:
        if v in ("Y002", "Y003"):
            continue
        recs.append({"item_id": f"cultural_map/{v}", "subset": v, "options": ["a", "b", "c"],
                     "meta": json.dumps({"codes": [1, 5, 9]})})
    for v in ("Y002_1", "Y002_2"):
        recs.append({"item_id": f"cultural_map/{v}", "subset": v, "options": list("abcd"),
                     "meta": json.dumps({"codes": [1, 2, 3, 4]})})
    for v in ("Y003_independence", "Y003_determination", "Y003_religious_faith", "Y003_obedience"):
        recs.append({"item_id": f"cultural_map/{v}", "subset": v, "options": ["mentioned", "not"],
                     "meta": json.dumps({"codes": [1, 2]})})
    return pd.DataFrame(recs)


def _raw(answers: dict) -> pd.DataFrame:
    rows = []
    for iid, parsed in answers.items():
        for t, p in enumerate(parsed):
            rows.append({"item_id": iid, "prompt_id": f"{iid}#default#p0", "trial": t, "parsed": p})
    return pd.DataFrame(rows)


def test_placement_from_samples_and_expected_values_named_apart(micro, mirror):
    from culteval.metrics.cultural_map import published_coordinates

    items = _map_items()
    # expected values: uniform; samples: always the first option, first/second aims 1 then 3,
    # faith and obedience mentioned, autonomy not (Y003 = -2, the traditional end)
    dists = {iid: np.full(len(o), 1 / len(o))
             for iid, o in zip(items["item_id"], items["options"], strict=True)}
    first = {iid: [0, 0, -1] for iid in items["item_id"]}
    first.update({"cultural_map/Y002_2": [2, 2], "cultural_map/Y003_independence": [1, 1],
                  "cultural_map/Y003_determination": [1, 1]})
    raw = _raw(first)
    sd = sampled_distributions(items, raw)
    assert sd["cultural_map/A008"].tolist() == [1.0, 0.0, 0.0]  # the invalid trial is left out
    aliases = {"India": {"ivs_map": ["india"]}, "United States": {"ivs_map": ["united_states"]}}
    cfg = {"target": {"country": "India"}, "reference": {"country": "United States"},
           "country_aliases": aliases}
    coords = published_coordinates(mirror / "ivs_map")
    proj = fit_projection(micro)
    m = {r["metric"]: r["value"] for r in map_metrics(items, dists, cfg, proj, coords, raw)}
    assert m["sampled_Y003"] == -2.0 and m["sampled_Y002"] == 1.0 and m["sampled_A008"] == 1.0
    assert m["expected_Y003"] == 0.0 and m["expected_A008"] == 5.0
    exp_pt = proj.project({v: m[f"expected_{v}"] for v in MAP_VARS})
    smp_pt = proj.project({v: m[f"sampled_{v}"] for v in MAP_VARS})
    assert (m["map_x"], m["map_y"]) == pytest.approx((exp_pt["x"], exp_pt["y"]))
    assert (m["map_x_sampled"], m["map_y_sampled"]) == pytest.approx((smp_pt["x"], smp_pt["y"]))
    assert abs(m["map_y_sampled"] - m["map_y"]) > 0.1
    # the published India-US distance sits next to the model's distances
    assert m["map_dist_target_reference"] == pytest.approx(np.hypot(-0.438 - 1.206, -0.569 - 0.298), abs=2e-3)
    assert {"map_dist_target", "map_dist_reference", "map_dist_target_sampled",
            "map_dist_reference_sampled"} <= set(m)
    # without a projection: no placement, but the reference distance is still reported
    bare = {r["metric"] for r in map_metrics(items, dists, cfg, None, coords, raw)}
    assert "map_x" not in bare and "map_dist_target_reference" in bare


def test_summary_reports_fit_quality_before_placing(tmp_path, micro, mirror):
    from culteval.metrics.comparisons import is_model
    from culteval.metrics.cultural_map import MAP_FIT_MODEL
    from culteval.metrics.summary import summarize

    geo = dict(zip(COUNTRIES, ["india", "united_states", "japan", "sweden", "nigeria", "brazil", "china",
                               "germany"], strict=True))
    path = tmp_path / "ivs.csv"
    micro.assign(country=micro["country"].map(geo)).to_csv(path, index=False)
    items = _map_items()
    dists = {iid: np.full(len(o), 1 / len(o))
             for iid, o in zip(items["item_id"], items["options"], strict=True)}
    raw = pd.DataFrame([{"prompt_id": f"{iid}#default#p0", "item_id": iid, "permutation": 0, "trial": -1,
                         "probs": p.tolist(), "option_mass": 1.0, "generated": None, "parsed": None,
                         "n_prompt_tokens": 5} for iid, p in dists.items()])
    aliases = {"India": {"ivs_map": ["india"]}, "United States": {"ivs_map": ["united_states"]}}
    cfg = {"seed": 1, "target": {"country": "India"}, "reference": {"country": "United States"},
           "country_aliases": aliases,
           "metrics": {"bootstrap": 10, "ci": 0.95, "low_mass": 0.1},
           "cultural_map": {"microdata": str(path), "target_year": None}, "models": {"m1": {"group": "g"}}}
    df = summarize({"cultural_map": items}, {("m1", "cultural_map", "default"): raw}, cfg, raw_root=mirror)
    fit = df[df["model"] == MAP_FIT_MODEL].set_index("metric")
    expected = {f"fit_dist:{g}" for g in geo.values()} | {"fit_rmse", "fit_corr_x", "fit_corr_y"}
    assert expected == set(fit.index)
    assert fit.loc["fit_corr_x", "n_items"] == 8 and not is_model(MAP_FIT_MODEL)
    # synthetic respondents are nowhere near the real published points: the fit says so
    assert fit.loc["fit_rmse", "value"] > 0.3
    assert "map_x" in set(df.loc[df["model"] == "m1", "metric"])
