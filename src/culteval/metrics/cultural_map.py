"""Inglehart-Welzel cultural map: published country coordinates and model placement.

Countries come from the IVS aggregates (open-numbers ddf files): x (self-expression)
= -survsagg, y (secular-rational) = tradagg. A model is placed as one respondent,
twice: from its expected answers (sum of codes x probabilities) and from its
sampled answers (the paper's protocol), each projected through the official
procedure fitted on user-supplied IVS microdata (weighted correlations, 2-factor
PCA, varimax with Kaiser normalisation, regression scores, TradAgg = 1.61*TradRat5
- 0.10, SurvSAgg = 1.81*SurvSelf + 0.038). ``fit_quality`` says how well a fitted
projection reproduces the published country points.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from culteval.metrics import plain_row, sampled_rows
from culteval.tasks.cultural_map import Y003_PARTS, derive_y002, derive_y003

MAP_VARS = ("A008", "A165", "E018", "E025", "F063", "F118", "F120", "G006", "Y002", "Y003")
# Valid range of the derived autonomy index: WVS missing codes (-1 .. -5) are negative on
# the raw items, but Y003 itself runs from -2 to 2, so only values outside it are missing.
Y003_RANGE = (-2.0, 2.0)
NO_MICRODATA = "no IVS microdata supplied: models are not placed; countries shown from published coordinates"
IVS_FILES = {"tradagg": "ddf--datapoints--tradagg--by--geo--year.csv",
             "survsagg": "ddf--datapoints--survsagg--by--geo--year.csv",
             "names": "ddf--entities--geo--country.csv"}


def published_points(ivs_dir: str | Path) -> pd.DataFrame:
    """Every published country-wave: ``geo, name, year, x, y``, sorted by geo and year."""
    ivs_dir = Path(ivs_dir)
    for f in IVS_FILES.values():
        if not (ivs_dir / f).is_file():
            raise FileNotFoundError(f"cultural map: {ivs_dir / f} is missing")
    trad = pd.read_csv(ivs_dir / IVS_FILES["tradagg"])
    surv = pd.read_csv(ivs_dir / IVS_FILES["survsagg"])
    names = pd.read_csv(ivs_dir / IVS_FILES["names"]).rename(columns={"country": "geo"})
    df = trad.merge(surv, on=["geo", "year"]).dropna(subset=["tradagg", "survsagg"])
    df = df.merge(names, on="geo", how="left")
    df["name"] = df["name"].fillna(df["geo"])
    out = pd.DataFrame({"geo": df["geo"], "name": df["name"], "year": df["year"].astype(int),
                        "x": -df["survsagg"], "y": df["tradagg"]})
    return out.sort_values(["geo", "year"]).reset_index(drop=True)


def published_coordinates(ivs_dir: str | Path, target_year: int | None = None) -> pd.DataFrame:
    """One point per country: ``geo, name, year, x, y``, sorted by geo.

    The latest year with both scores per country; with ``target_year`` the year
    closest to it (ties: the later year).
    """
    df = published_points(ivs_dir)
    if target_year is None:
        df = df.groupby("geo").tail(1)
    else:
        df = df.assign(_d=(df["year"] - int(target_year)).abs(), _neg=-df["year"])
        df = df.sort_values(["geo", "_d", "_neg"]).groupby("geo").head(1).drop(columns=["_d", "_neg"])
    return df.sort_values("geo").reset_index(drop=True)


def country_rows(coords: pd.DataFrame, country: str, cfg: dict) -> pd.DataFrame:
    """Published rows of a canonical country: ``geo`` in ``country_aliases.<country>.ivs_map`` or
    ``name == country``, sorted by geo (the one alias lookup for the map)."""
    keys = cfg.get("country_aliases", {}).get(country, {}).get("ivs_map", []) or []
    return coords[coords["geo"].isin(keys) | (coords["name"] == country)].sort_values("geo")


def country_point(coords: pd.DataFrame, country: str, cfg: dict) -> tuple[float, float] | None:
    """(x, y) of a canonical country (first alias hit); None if absent."""
    hit = country_rows(coords, country, cfg)
    if hit.empty:
        return None
    r = hit.iloc[0]
    return float(r["x"]), float(r["y"])


def varimax(loadings: np.ndarray) -> np.ndarray:
    """Varimax rotation with Kaiser normalisation (rows scaled to unit communality).

    The rotation itself is statsmodels' ``rotate_factors(..., "varimax")``; the
    Kaiser normalisation (as in SPSS, which the official syntax uses) is done here.
    """
    from statsmodels.multivariate.factor_rotation import rotate_factors

    h = np.sqrt((loadings ** 2).sum(axis=1, keepdims=True))
    rotated, _ = rotate_factors(loadings / h, "varimax")
    return rotated * h


def _weighted_stats(x: np.ndarray, w: np.ndarray):
    w = w / w.sum()
    mean = w @ x
    xc = x - mean
    cov = (xc * w[:, None]).T @ xc
    sd = np.sqrt(np.diag(cov))
    return mean, sd, cov / np.outer(sd, sd)


def to_map(sec, selfexp) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) map coordinates from (secular, self-expression) factor scores (official formulas).

    Published survsagg is survival-positive, so SurvSelf is the negated self-expression score.
    """
    tradagg = 1.61 * np.asarray(sec, float) - 0.10
    survsagg = 1.81 * (-np.asarray(selfexp, float)) + 0.038
    return -survsagg, tradagg


@dataclass(frozen=True)
class Projection:
    """A fitted map projection; ``project`` places one respondent's answers."""

    mean: np.ndarray
    sd: np.ndarray
    weights: np.ndarray       # regression factor-score weights, columns (secular, self-expression)
    loadings: np.ndarray      # rotated, oriented loadings, rows MAP_VARS

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Standardised (secular, self-expression) factor scores for rows of ``x`` (MAP_VARS order)."""
        return ((np.atleast_2d(x) - self.mean) / self.sd) @ self.weights

    def project(self, answers: dict) -> dict:
        """``{"x", "y", "tradagg", "survsagg"}`` for one respondent ``{var: value}``."""
        missing = [v for v in MAP_VARS if v not in answers or answers[v] is None]
        if missing:
            raise ValueError(f"cultural map: answers lack {missing}")
        sec, selfexp = self.scores(np.array([float(answers[v]) for v in MAP_VARS]))[0]
        x, y = to_map(sec, selfexp)
        return {"x": float(x), "y": float(y), "tradagg": float(y), "survsagg": float(-x)}


def valid_values(x: np.ndarray) -> np.ndarray:
    """Per cell of ``x`` (MAP_VARS columns): the value is present: finite, a raw item >= 0
    (negative = WVS missing code), Y003 within ``Y003_RANGE``."""
    ok = np.isfinite(x)
    with np.errstate(invalid="ignore"):
        for i, v in enumerate(MAP_VARS):
            lo, hi = Y003_RANGE if v == "Y003" else (0.0, np.inf)
            ok[:, i] &= (x[:, i] >= lo) & (x[:, i] <= hi)
    return ok


def valid_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (MAP_VARS columns) with every value present (:func:`valid_values`)."""
    return valid_values(x).all(axis=1)


def _matrix(microdata: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """MAP_VARS values and S017 weights (1 when absent) of the valid, positively weighted rows' mask."""
    missing = [v for v in MAP_VARS if v not in microdata.columns]
    if missing:
        raise ValueError(f"cultural map microdata lacks columns {missing}")
    x = microdata[list(MAP_VARS)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    w = (pd.to_numeric(microdata["S017"], errors="coerce").to_numpy(float)
         if "S017" in microdata.columns else np.ones(len(microdata)))
    return x, w


def projection_from_moments(mean: np.ndarray, sd: np.ndarray, corr: np.ndarray) -> Projection:
    """The official factor solution from (weighted) means, SDs and the correlation matrix.

    Factors are identified by F063 (traditional) and F118 (self-expression) and oriented so
    F118 loads positively on self-expression and F063 negatively on secular-rational.
    """
    vals, vecs = np.linalg.eigh(corr)
    top = np.argsort(vals)[::-1][:2]
    loadings = varimax(vecs[:, top] * np.sqrt(vals[top]))
    i63, i118 = MAP_VARS.index("F063"), MAP_VARS.index("F118")
    sec_col = int(np.argmax(np.abs(loadings[i63])))
    loadings = loadings[:, [sec_col, 1 - sec_col]]
    signs = np.array([-np.sign(loadings[i63, 0]) or 1.0, np.sign(loadings[i118, 1]) or 1.0])
    loadings = loadings * signs
    weights = np.linalg.solve(corr, loadings)
    return Projection(mean=np.asarray(mean, float), sd=np.asarray(sd, float), weights=weights,
                      loadings=loadings)


def fit_projection(microdata: pd.DataFrame) -> Projection:
    """Fit the official two-factor map procedure on IVS microdata.

    Columns MAP_VARS, optional ``S017`` (weight). Rows with a missing value
    (``valid_rows``: NaN, a negative raw-item code, Y003 outside [-2, 2]) or a
    non-positive weight are dropped listwise.
    """
    x, w = _matrix(microdata)
    ok = valid_rows(x) & np.isfinite(w) & (w > 0)
    if ok.sum() < 20:
        raise ValueError(f"cultural map microdata: only {int(ok.sum())} complete rows")
    return projection_from_moments(*_weighted_stats(x[ok], w[ok]))


#: microdata columns holding the survey year of each respondent (IVS: S020), in order of preference
YEAR_COLUMNS = ("year", "S020")
FIT_COLUMNS = ["geo", "name", "year", "status", "n_total", "n", "x", "y", "x_pub", "y_pub", "dist",
               "not_asked"]
PLACED, NOT_ASKED, UNPUBLISHED = "placed", "items not asked", "no published point"


def year_column(microdata: pd.DataFrame) -> str:
    """The microdata's survey-year column (``YEAR_COLUMNS``); an error naming them when absent."""
    for c in YEAR_COLUMNS:
        if c in microdata.columns:
            return c
    raise ValueError(f"cultural map microdata: fit quality needs each respondent's survey year (a column "
                     f"{' or '.join(YEAR_COLUMNS)}) to compare each country-wave with its published point; "
                     f"columns are {sorted(map(str, microdata.columns))[:20]}")


def fit_quality(projection: Projection, microdata: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """Per microdata country-wave (country x survey year) matched to a published country: its
    placement against the published point of *that* year (:func:`published_points`).

    Country-wave placement = the S017-weighted mean of its complete respondents' map
    coordinates (the aggregates are country means of individual scores).
    ``microdata["country"]`` holds a published ``geo`` key or country ``name``
    (case-insensitive); the year comes from :func:`year_column`. ``status``: ``placed``;
    ``items not asked`` (``not_asked`` names the MAP_VARS no respondent of that wave has a
    valid value for, ``;``-joined: listwise deletion would drop the whole wave, so it is named
    and not placed); ``no published point`` (the country has none for that year).
    ``n_total``: respondents with a positive weight; ``n``: complete ones. Columns
    ``FIT_COLUMNS``, sorted by geo and year; countries matching no published one are left out.
    """
    if "country" not in microdata.columns or points is None or points.empty:
        return pd.DataFrame(columns=FIT_COLUMNS)
    year = pd.to_numeric(microdata[year_column(microdata)], errors="coerce").to_numpy(float)
    x, w = _matrix(microdata)
    weighted = np.isfinite(w) & (w > 0) & np.isfinite(year)
    cells = valid_values(x) & weighted[:, None]
    ok = cells.all(axis=1)
    sc = projection.scores(np.where(ok[:, None], x, 0.0))
    mx, my = to_map(sc[:, 0], sc[:, 1])
    geo_of = {str(g).lower(): g for g in points["geo"]}
    geo_of.update({str(n).lower(): g for g, n in zip(points["geo"], points["name"], strict=True)})
    pub = {(r.geo, int(r.year)): r for r in points.itertuples()}
    names = dict(zip(points["geo"], points["name"], strict=True))
    country = microdata["country"].astype(str).str.lower().to_numpy()
    rows = []
    for key, yr in sorted({(c, int(y)) for c, y in zip(country[weighted], year[weighted], strict=True)}):
        geo = geo_of.get(key)
        if geo is None:
            continue
        m = weighted & (country == key) & (year == yr)
        not_asked = [v for i, v in enumerate(MAP_VARS) if not cells[m, i].any()]
        row = {"geo": geo, "name": names[geo], "year": yr, "n_total": int(m.sum()), "n": int((m & ok).sum()),
               "x": np.nan, "y": np.nan, "x_pub": np.nan, "y_pub": np.nan, "dist": np.nan,
               "not_asked": ";".join(not_asked)}
        p = pub.get((geo, yr))
        if p is not None:
            row.update(x_pub=float(p.x), y_pub=float(p.y))
        if not_asked:
            row["status"] = NOT_ASKED
        elif p is None:
            row["status"] = UNPUBLISHED
        else:
            m &= ok
            px, py = float(np.average(mx[m], weights=w[m])), float(np.average(my[m], weights=w[m]))
            row.update(status=PLACED, x=px, y=py, dist=float(np.hypot(px - p.x, py - p.y)))
        rows.append(row)
    return pd.DataFrame(rows, columns=FIT_COLUMNS).sort_values(["geo", "year"]).reset_index(drop=True)


def fit_quality_rows(quality: pd.DataFrame) -> list[dict]:
    """Summary rows of :func:`fit_quality` (docs/metrics.md "Cultural map").

    ``fit_dist:<geo>:<year>`` per placed country-wave (n = complete respondents);
    ``fit_not_asked:<geo>:<year>:<VAR>`` per item a country-wave lacks (value 1 = the share of
    its respondents without a valid answer; n = its respondents); counts of country-waves
    ``fit_waves`` (all matched to a published country), ``fit_waves_placed``,
    ``fit_waves_not_asked``, ``fit_waves_unpublished`` (n = all matched waves); over the placed
    waves ``fit_rmse`` and, with >= 3, ``fit_corr_x``/``fit_corr_y`` (Pearson, fitted vs published).
    """
    if quality.empty:
        return []
    placed = quality[quality["status"] == PLACED]
    rows = [plain_row(f"fit_dist:{g}:{y}", d, int(k))
            for g, y, d, k in zip(placed["geo"], placed["year"], placed["dist"], placed["n"], strict=True)]
    for r in quality[quality["status"] == NOT_ASKED].itertuples():
        rows += [plain_row(f"fit_not_asked:{r.geo}:{r.year}:{v}", 1.0, int(r.n_total))
                 for v in r.not_asked.split(";")]
    total = len(quality)
    rows.append(plain_row("fit_waves", float(total), total))
    for name, status in (("placed", PLACED), ("not_asked", NOT_ASKED), ("unpublished", UNPUBLISHED)):
        rows.append(plain_row(f"fit_waves_{name}", float((quality["status"] == status).sum()), total))
    n = len(placed)
    if n:
        rows.append(plain_row("fit_rmse", float(np.sqrt(np.mean(placed["dist"] ** 2))), n))
    if n >= 3:
        for axis in ("x", "y"):
            r = np.corrcoef(placed[axis], placed[f"{axis}_pub"])[0, 1]
            rows.append(plain_row(f"fit_corr_{axis}", float(r), n))
    return rows


def load_microdata(path: str | Path) -> pd.DataFrame:
    """IVS/WVS microdata from csv or parquet (a relative path: in the project, as every path in params)."""
    from culteval.config import project_file

    path = project_file(path)
    if not path.is_file():
        raise FileNotFoundError(f"cfg cultural_map.microdata: {path} does not exist")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def _by_code(p: np.ndarray, codes) -> np.ndarray:
    """Probabilities reindexed so position i holds code i + 1 (Y002 choices are coded 1..4)."""
    out = np.zeros(max(int(c) for c in codes))
    for pi, c in zip(p, codes, strict=True):
        out[int(c) - 1] += pi
    return out


def sampled_distributions(items: pd.DataFrame, raw: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per item: the share of its valid sampled answers on each option (original order).

    Invalid answers (parsed == -1) are left out; items without a valid trial are absent.
    """
    n_opts = dict(zip(items["item_id"], items["options"].map(len), strict=True))
    s = sampled_rows(raw)
    out = {}
    for iid, grp in s[s["item_id"].isin(list(n_opts))].groupby("item_id", sort=True):
        parsed = grp["parsed"].fillna(-1).astype(int).to_numpy()
        parsed = parsed[(parsed >= 0) & (parsed < n_opts[iid])]
        if parsed.size:
            out[str(iid)] = np.bincount(parsed, minlength=n_opts[iid]) / parsed.size
    return out


def sampled_invalid(items: pd.DataFrame, raw: pd.DataFrame) -> tuple[int, int]:
    """(invalid, all) sampled trials on the map items: invalid = unparsed (-1, missing) or out of
    range, the answers :func:`sampled_distributions` leaves out of the placement."""
    n_opts = dict(zip(items["item_id"], items["options"].map(len), strict=True))
    s = sampled_rows(raw)
    s = s[s["item_id"].isin(list(n_opts))]
    parsed = s["parsed"].fillna(-1).astype(int).to_numpy()
    size = s["item_id"].map(n_opts).to_numpy()
    return int(((parsed < 0) | (parsed >= size)).sum()), len(s)


def expected_answers(items: pd.DataFrame, dists: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Expected code per map sub-item (``subset``) and the ten map variables where derivable.

    Y002 is left out when the two choice distributions put no mass on two distinct aims.
    """
    expected, probs = {}, {}
    for iid, subset, meta in zip(items["item_id"], items["subset"], items["meta"], strict=True):
        if iid not in dists:
            continue
        codes = json.loads(meta or "{}").get("codes")
        if codes is None or len(codes) != len(dists[iid]):
            raise ValueError(f"item {iid!r}: meta 'codes' {codes} does not match its "
                             f"{len(dists[iid])} options")
        expected[subset] = float(np.dot(np.asarray(codes, float), dists[iid]))
        probs[subset] = (dists[iid], codes)
    answers = {v: expected[v] for v in MAP_VARS if v in expected}
    if "Y002_1" in probs and "Y002_2" in probs:
        p1, p2 = (_by_code(*probs[k]) for k in ("Y002_1", "Y002_2"))
        if (np.outer(p1, p2).sum() - np.dot(p1, p2)) > 0:  # e.g. sampled: always the same aim
            answers["Y002"] = float(derive_y002(p1, p2))
    if all(k in expected for k in Y003_PARTS):
        answers["Y003"] = float(derive_y003(expected))
    return expected, answers


def _placement_rows(answers: dict, projection: Projection, coords, cfg: dict, suffix: str) -> list[dict]:
    pt = projection.project(answers)
    n = len(MAP_VARS)
    rows = [plain_row(f"map_x{suffix}", pt["x"], n), plain_row(f"map_y{suffix}", pt["y"], n)]
    if coords is not None:
        for role in ("target", "reference"):
            c = country_point(coords, cfg[role]["country"], cfg)
            if c is not None:
                rows.append(plain_row(f"map_dist_{role}{suffix}",
                                      float(np.hypot(pt["x"] - c[0], pt["y"] - c[1])), n))
    return rows


def target_reference_distance(coords: pd.DataFrame | None, cfg: dict) -> float | None:
    """Euclidean map distance between the published target and reference points; None if either lacks one."""
    if coords is None:
        return None
    t, r = (country_point(coords, cfg[role]["country"], cfg) for role in ("target", "reference"))
    return None if t is None or r is None else float(np.hypot(t[0] - r[0], t[1] - r[1]))


def map_metrics(items: pd.DataFrame, dists: dict, cfg: dict, projection: Projection | None = None,
                coords: pd.DataFrame | None = None, raw: pd.DataFrame | None = None) -> list[dict]:
    """Rows for one model x strategy.

    ``expected_<VAR>`` per sub-item and derived variable; with a projection,
    ``map_x``/``map_y``/``map_dist_target``/``map_dist_reference``
    from expected answers and the same with suffix ``_sampled`` from the sampled answers of
    ``raw`` (plus ``sampled_<VAR>``), each when all ten variables are available, and
    ``map_invalid_rate_sampled`` (share of sampled map answers left out as invalid; n = trials)
    whenever ``raw`` has sampled trials.
    """
    expected, answers = expected_answers(items, dists)
    rows = [plain_row(f"expected_{k}", v, 1) for k, v in sorted({**expected, **answers}.items())]
    if projection is None:
        return rows
    if all(v in answers for v in MAP_VARS):
        rows += _placement_rows(answers, projection, coords, cfg, "")
    if raw is not None:
        _, sampled = expected_answers(items, sampled_distributions(items, raw))
        bad, trials = sampled_invalid(items, raw)
        if trials:  # beside the sampled placement: the share of answers it leaves out
            rows.append(plain_row("map_invalid_rate_sampled", bad / trials, trials))
        rows += [plain_row(f"sampled_{v}", sampled[v], 1) for v in MAP_VARS if v in sampled]
        if all(v in sampled for v in MAP_VARS):
            rows += _placement_rows(sampled, projection, coords, cfg, "_sampled")
    return rows


MAP_FIT_MODEL = "reference:ivs_map_fit"  # how well the fitted projection reproduces published points
#: the published map itself: the target-reference distance the models' distances are read against
MAP_MODEL = "reference:ivs_map"


def map_fit(cfg: dict, raw_root: str | Path | None
            ) -> tuple[Projection | None, pd.DataFrame | None, list[dict]]:
    """The fitted projection (None without ``cfg.cultural_map.microdata``), the published
    coordinates (one point per country), and the projection's fit-quality rows against the
    published point of each microdata country-wave."""
    cm = cfg.get("cultural_map") or {}
    coords, points = None, None
    if raw_root is not None and (Path(raw_root) / "ivs_map").is_dir():
        coords = published_coordinates(Path(raw_root) / "ivs_map", cm.get("target_year"))
        points = published_points(Path(raw_root) / "ivs_map")
    micro = cm.get("microdata")
    if not micro:
        return None, coords, []
    data = load_microdata(micro)
    projection = fit_projection(data)
    return projection, coords, fit_quality_rows(fit_quality(projection, data, points))


def map_inputs(cfg: dict, raw_root: str | Path | None) -> tuple[Projection | None, pd.DataFrame | None]:
    """The fitted projection and the published coordinates (see :func:`map_fit`)."""
    return map_fit(cfg, raw_root)[:2]


def _run_fit(cfg: dict, inputs) -> tuple[Projection | None, pd.DataFrame | None, list[dict]]:
    if inputs is None:
        return None, None, []
    return inputs.once("cultural_map", lambda: map_fit(cfg, inputs.raw_root))  # fitted once per run


def cultural_map_metrics(items: pd.DataFrame, dists: dict, raw: pd.DataFrame, cfg: dict,
                         inputs=None) -> list[dict]:
    """The task's metrics entry point: :func:`map_metrics` with the run's projection and coordinates."""
    projection, coords, _ = _run_fit(cfg, inputs)
    return map_metrics(items, dists, cfg, projection, coords, raw)


def map_reference_rows(items: pd.DataFrame, cfg: dict, inputs) -> list[dict]:
    """Summary rows about the published map, not about any model (strategy ``none``): the
    distance between the target's and the reference's published points (model
    ``reference:ivs_map``, metric ``map_dist_target_reference``, n = 2 points) when both exist,
    once per run; and the projection's fit quality (model ``reference:ivs_map_fit``)."""
    _, coords, fit = _run_fit(cfg, inputs)
    d_tr = target_reference_distance(coords, cfg)
    rows = [] if d_tr is None else [{"model": MAP_MODEL, "task": "cultural_map", "strategy": "none",
                                     **plain_row("map_dist_target_reference", d_tr, 2)}]
    return rows + [{"model": MAP_FIT_MODEL, "task": "cultural_map", "strategy": "none", **r} for r in fit]
