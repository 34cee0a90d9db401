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
import shutil

import numpy as np
import pandas as pd
import pytest

from culteval.metrics.cultural_map import (
    IVS_FILES,
    MAP_VARS,
    fit_projection,
    fit_quality,
    fit_quality_rows,
    map_metrics,
    projection_from_moments,
    published_points,
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
    df["year"] = 2020
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
    assert list(q["geo"]) == COUNTRIES and set(q["status"]) == {"placed"}
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
    assert rows["fit_dist:c3:2020"]["value"] == pytest.approx(1.0, abs=0.05)
    assert rows["fit_dist:c0:2020"]["value"] < 0.05 and rows["fit_dist:c0:2020"]["n_items"] > 4000
    assert rows["fit_waves"]["value"] == rows["fit_waves_placed"]["value"] == len(COUNTRIES)
    assert rows["fit_rmse"]["value"] == pytest.approx(np.sqrt(1 / len(COUNTRIES)), abs=0.03)
    assert rows["fit_corr_x"]["n_items"] == len(COUNTRIES) and rows["fit_corr_x"]["value"] > 0.99
    # names match too, case-insensitively; unknown countries are skipped
    by_name = micro.assign(country=micro["country"].str.upper().replace({"C7": "nowhere"}))
    assert list(fit_quality(fit_projection(micro), by_name, known)["geo"]) == COUNTRIES[:-1]


def test_each_country_wave_is_compared_with_its_own_published_point(micro):
    """c0 surveyed twice: its 2010 respondents are c1's, so its 2010 point is c1's; pooling both
    waves against one published year would miss both points. A wave without a published point
    (c2 in 2019) is named, not compared with another year's point."""
    known = known_points()
    two = micro.assign(country=micro["country"].replace({"c1": "c0"}),
                       year=np.where(micro["country"] == "c1", 2010, np.where(micro["country"] == "c2", 2019,
                                                                              2020)))
    pts = pd.concat([known, known[known["geo"] == "c1"].assign(geo="c0", name="C0", year=2010)],
                    ignore_index=True)
    q = fit_quality(fit_projection(micro), two, pts).set_index(["geo", "year"])
    assert q.loc[("c0", 2010), "status"] == q.loc[("c0", 2020), "status"] == "placed"
    assert q.loc[("c0", 2010), "dist"] < 0.05 and q.loc[("c0", 2020), "dist"] < 0.05
    assert q.loc[("c2", 2019), "status"] == "no published point" and np.isnan(q.loc[("c2", 2019), "dist"])
    rows = {r["metric"]: r["value"] for r in fit_quality_rows(q.reset_index())}
    assert rows["fit_waves_unpublished"] == 1 and rows["fit_waves_placed"] == len(COUNTRIES) - 1
    with pytest.raises(ValueError, match="survey year"):
        fit_quality(fit_projection(micro), micro.drop(columns="year"), pts)


def test_a_wave_that_did_not_ask_an_item_is_named_not_dropped(micro):
    lacking = micro.assign(E025=micro["E025"].mask(micro["country"] == "c5", -4.0))
    q = fit_quality(fit_projection(micro), lacking, known_points()).set_index("geo")
    assert q.loc["c5", "status"] == "items not asked" and q.loc["c5", "not_asked"] == "E025"
    assert q.loc["c5", "n_total"] == (micro["country"] == "c5").sum() and q.loc["c5", "n"] == 0
    rows = {r["metric"]: r for r in fit_quality_rows(q.reset_index())}
    assert rows["fit_not_asked:c5:2020:E025"]["n_items"] == (micro["country"] == "c5").sum()
    assert "fit_dist:c5:2020" not in rows and rows["fit_waves_not_asked"]["value"] == 1


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
    # beside the sampled placement: the share of sampled answers it left out (11 of 39 trials)
    rows = {r["metric"]: r for r in map_metrics(items, dists, cfg, proj, coords, raw)}
    inv = rows["map_invalid_rate_sampled"]
    assert (inv["value"], inv["n_items"]) == (pytest.approx(11 / 39), 39)
    assert m["expected_Y003"] == 0.0 and m["expected_A008"] == 5.0
    exp_pt = proj.project({v: m[f"expected_{v}"] for v in MAP_VARS})
    smp_pt = proj.project({v: m[f"sampled_{v}"] for v in MAP_VARS})
    assert (m["map_x"], m["map_y"]) == pytest.approx((exp_pt["x"], exp_pt["y"]))
    assert (m["map_x_sampled"], m["map_y_sampled"]) == pytest.approx((smp_pt["x"], smp_pt["y"]))
    assert abs(m["map_y_sampled"] - m["map_y"]) > 0.1
    assert {"map_dist_target", "map_dist_reference", "map_dist_target_sampled",
            "map_dist_reference_sampled"} <= set(m)
    # the published India-US distance is not a model's number: it is one reference row per run
    assert "map_dist_target_reference" not in m
    from culteval.metrics import MetricInputs
    from culteval.metrics.cultural_map import MAP_MODEL, map_reference_rows

    (ref,) = map_reference_rows(items, cfg, MetricInputs(raw_root=mirror))
    assert (ref["model"], ref["strategy"], ref["metric"]) == (MAP_MODEL, "none", "map_dist_target_reference")
    assert ref["value"] == pytest.approx(np.hypot(-0.438 - 1.206, -0.569 - 0.298), abs=2e-3)
    assert np.isnan(ref["ci_low"]) and ref["n_items"] == 2
    # without a projection: no placement
    bare = {r["metric"] for r in map_metrics(items, dists, cfg, None, coords, raw)}
    assert "map_x" not in bare


def test_summary_reports_fit_quality_before_placing(tmp_path, micro, mirror):
    from culteval.metrics.comparisons import is_model
    from culteval.metrics.cultural_map import MAP_FIT_MODEL
    from culteval.metrics.summary import summarize

    geo = dict(zip(COUNTRIES, ["india", "united_states", "japan", "sweden", "nigeria", "brazil", "china",
                               "germany"], strict=True))
    path = tmp_path / "ivs.csv"
    # every published country has a 2020 point here; Sweden's wave did not ask F063 and Y002
    sweden = micro["country"].eq("c3")
    micro.assign(country=micro["country"].map(geo),
                 F063=micro["F063"].mask(sweden, -4.0), Y002=micro["Y002"].mask(sweden, np.nan)
                 ).to_csv(path, index=False)
    pts = published_points(mirror / "ivs_map")
    pts = pts.assign(year=np.where(pts["geo"].isin(list(geo.values())), 2020, pts["year"]))
    raw_root = tmp_path / "raw"
    (raw_root / "ivs_map").mkdir(parents=True)
    for which, col in (("tradagg", "y"), ("survsagg", "x")):
        vals = pts[col] if which == "tradagg" else -pts[col]
        pd.DataFrame({"geo": pts["geo"], "year": pts["year"], which: vals}).drop_duplicates(
            ["geo", "year"]).to_csv(raw_root / "ivs_map" / IVS_FILES[which], index=False)
    shutil.copy(mirror / "ivs_map" / IVS_FILES["names"], raw_root / "ivs_map" / IVS_FILES["names"])
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
    df = summarize({"cultural_map": items}, {("m1", "cultural_map", "default"): raw}, cfg, raw_root=raw_root)
    fit = df[df["model"] == MAP_FIT_MODEL].set_index("metric")
    expected = ({f"fit_dist:{g}:2020" for g in geo.values() if g != "sweden"}
                | {f"fit_not_asked:sweden:2020:{v}" for v in ("F063", "Y002")}
                | {"fit_rmse", "fit_corr_x", "fit_corr_y", "fit_waves", "fit_waves_placed",
                   "fit_waves_not_asked", "fit_waves_unpublished"})
    assert expected == set(fit.index)
    assert fit.loc["fit_corr_x", "n_items"] == 7 and not is_model(MAP_FIT_MODEL)
    assert fit.loc["fit_waves_not_asked", "value"] == 1 and fit.loc["fit_waves", "value"] == 8
    assert fit.loc["fit_not_asked:sweden:2020:F063", "n_items"] == (micro["country"] == "c3").sum()
    # synthetic respondents are nowhere near the real published points: the fit says so
    assert fit.loc["fit_rmse", "value"] > 0.3
    assert "map_x" in set(df.loc[df["model"] == "m1", "metric"])
    assert set(df.loc[df["model"] == "m1", "kind"]) == {"model"} and set(fit["kind"]) == {"reference"}
    # the report: one row per country-wave, Sweden's named with the items it lacks
    from culteval.report.tables import map_tables

    table = {tuple(r["key"]): r["cells"] for r in map_tables(df.assign(flags=""))[1]["rows"]}
    heads = [c["label"] for c in map_tables(df.assign(flags=""))[1]["header"][0]]
    assert len(table) == 9 and ("all",) in table
    sweden = dict(zip(heads, table[("sweden 2020",)], strict=True))
    assert sweden["fit_dist"]["value"] == "" and sweden["fit_not_asked:F063"]["value"] == "1"
