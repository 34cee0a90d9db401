"""Inglehart-Welzel cultural map: published country coordinates and model placement.

Countries come from the IVS aggregates (open-numbers ddf files): x (self-expression)
= -survsagg, y (secular-rational) = tradagg. A model is placed as one respondent:
its expected answer per WVS item (sum of codes x probabilities) is projected
through the official procedure fitted on user-supplied IVS microdata (weighted
correlations, 2-factor PCA, varimax with Kaiser normalisation, regression scores,
TradAgg = 1.61*TradRat5 - 0.10, SurvSAgg = 1.81*SurvSelf + 0.038).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from culteval.metrics import plain_row

MAP_VARS = ("A008", "A165", "E018", "E025", "F063", "F118", "F120", "G006", "Y002", "Y003")
Y003_PARTS = ("Y003_independence", "Y003_determination", "Y003_religious_faith", "Y003_obedience")
NO_MICRODATA = "no IVS microdata supplied: models are not placed; countries shown from published coordinates"
IVS_FILES = {"tradagg": "ddf--datapoints--tradagg--by--geo--year.csv",
             "survsagg": "ddf--datapoints--survsagg--by--geo--year.csv",
             "names": "ddf--entities--geo--country.csv"}


def published_coordinates(ivs_dir: str | Path, target_year: int | None = None) -> pd.DataFrame:
    """One point per country: ``geo, name, year, x, y``, sorted by geo.

    The latest year with both scores per country; with ``target_year`` the year
    closest to it (ties: the later year).
    """
    ivs_dir = Path(ivs_dir)
    for f in IVS_FILES.values():
        if not (ivs_dir / f).is_file():
            raise FileNotFoundError(f"cultural map: {ivs_dir / f} is missing")
    trad = pd.read_csv(ivs_dir / IVS_FILES["tradagg"])
    surv = pd.read_csv(ivs_dir / IVS_FILES["survsagg"])
    names = pd.read_csv(ivs_dir / IVS_FILES["names"]).rename(columns={"country": "geo"})
    df = trad.merge(surv, on=["geo", "year"]).dropna(subset=["tradagg", "survsagg"])
    if target_year is None:
        df = df.sort_values(["geo", "year"]).groupby("geo").tail(1)
    else:
        df = df.assign(_d=(df["year"] - int(target_year)).abs(), _neg=-df["year"])
        df = df.sort_values(["geo", "_d", "_neg"]).groupby("geo").head(1).drop(columns=["_d", "_neg"])
    df = df.merge(names, on="geo", how="left")
    df["name"] = df["name"].fillna(df["geo"])
    out = pd.DataFrame({"geo": df["geo"], "name": df["name"], "year": df["year"].astype(int),
                        "x": -df["survsagg"], "y": df["tradagg"]})
    return out.sort_values("geo").reset_index(drop=True)


def country_point(coords: pd.DataFrame, country: str, cfg: dict) -> tuple[float, float] | None:
    """(x, y) of a canonical country via ``country_aliases.<country>.ivs_map``; None if absent."""
    keys = cfg.get("country_aliases", {}).get(country, {}).get("ivs_map", []) or []
    hit = coords[coords["geo"].isin(keys) | (coords["name"] == country)]
    if hit.empty:
        return None
    r = hit.sort_values("geo").iloc[0]
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
        # Published survsagg is survival-positive, so SurvSelf is the negated self-expression score.
        tradagg = 1.61 * sec - 0.10
        survsagg = 1.81 * (-selfexp) + 0.038
        return {"x": float(-survsagg), "y": float(tradagg), "tradagg": float(tradagg),
                "survsagg": float(survsagg)}


def fit_projection(microdata: pd.DataFrame) -> Projection:
    """Fit the official two-factor map procedure on IVS microdata.

    Columns MAP_VARS, optional ``S017`` (weight). Negative codes (WVS missing) and
    NaN are dropped listwise. Factors are identified by F063 (traditional) and
    F118 (self-expression) and oriented so F118 loads positively on self-expression
    and F063 negatively on secular-rational.
    """
    missing = [v for v in MAP_VARS if v not in microdata.columns]
    if missing:
        raise ValueError(f"cultural map microdata lacks columns {missing}")
    x = microdata[list(MAP_VARS)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    w = (pd.to_numeric(microdata["S017"], errors="coerce").to_numpy(float)
         if "S017" in microdata.columns else np.ones(len(microdata)))
    ok = np.isfinite(x).all(axis=1) & (x >= 0).all(axis=1) & np.isfinite(w) & (w > 0)
    if ok.sum() < 20:
        raise ValueError(f"cultural map microdata: only {int(ok.sum())} complete rows")
    x, w = x[ok], w[ok]
    mean, sd, corr = _weighted_stats(x, w)
    vals, vecs = np.linalg.eigh(corr)
    top = np.argsort(vals)[::-1][:2]
    loadings = varimax(vecs[:, top] * np.sqrt(vals[top]))
    i63, i118 = MAP_VARS.index("F063"), MAP_VARS.index("F118")
    sec_col = int(np.argmax(np.abs(loadings[i63])))
    order = [sec_col, 1 - sec_col]
    loadings = loadings[:, order]
    signs = np.array([-np.sign(loadings[i63, 0]) or 1.0, np.sign(loadings[i118, 1]) or 1.0])
    loadings = loadings * signs
    weights = np.linalg.solve(corr, loadings)
    return Projection(mean=mean, sd=sd, weights=weights, loadings=loadings)


def load_microdata(path: str | Path) -> pd.DataFrame:
    """IVS/WVS microdata from csv or parquet."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cfg cultural_map.microdata: {path} does not exist")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def _local_derive_y002(p1, p2, codes=(1, 2, 3, 4)) -> float:
    """Expected Y002 from first/second-choice distributions ({1,3}->1, {2,4}->3, else 2).

    Choices are treated as independent and a pair naming the same option twice is
    excluded (the two choices must differ), renormalising over the remaining pairs.
    """
    num = den = 0.0
    for i, ci in enumerate(codes):
        for j, cj in enumerate(codes):
            if i == j:
                continue
            pair = {int(ci), int(cj)}
            y = 1.0 if pair == {1, 3} else 3.0 if pair == {2, 4} else 2.0
            num += p1[i] * p2[j] * y
            den += p1[i] * p2[j]
    return num / den if den > 0 else float("nan")


def _local_derive_y003(expected: dict) -> float:
    """Y003 = (faith + obedience) - (independence + determination); 1 mentioned / 2 not."""
    return (expected["Y003_religious_faith"] + expected["Y003_obedience"]
            - expected["Y003_independence"] - expected["Y003_determination"])


def _derivers():
    try:  # the task module's definitions are canonical when present
        from culteval.tasks.cultural_map import derive_y002, derive_y003
        return derive_y002, derive_y003
    except ImportError:
        return _local_derive_y002, _local_derive_y003


def _by_code(p: np.ndarray, codes) -> np.ndarray:
    """Probabilities reindexed so position i holds code i + 1 (Y002 choices are coded 1..4)."""
    out = np.zeros(max(int(c) for c in codes))
    for pi, c in zip(p, codes, strict=True):
        out[int(c) - 1] += pi
    return out


def expected_answers(items: pd.DataFrame, dists: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Expected code per map sub-item (``subset``) and the ten map variables where derivable."""
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
    derive_y002, derive_y003 = _derivers()
    answers = {v: expected[v] for v in MAP_VARS if v in expected}
    if "Y002_1" in probs and "Y002_2" in probs:
        answers["Y002"] = float(derive_y002(*(_by_code(*probs[k]) for k in ("Y002_1", "Y002_2"))))
    if all(k in expected for k in Y003_PARTS):
        answers["Y003"] = float(derive_y003({k: expected[k] for k in Y003_PARTS}))
    return expected, answers


def map_metrics(items: pd.DataFrame, dists: dict, cfg: dict, projection: Projection | None = None,
                coords: pd.DataFrame | None = None) -> list[dict]:
    """``expected_<VAR>`` per sub-item and derived variable; ``map_x``/``map_y`` and the
    Euclidean distances ``map_dist_target``/``map_dist_reference`` when placed."""
    expected, answers = expected_answers(items, dists)
    merged = {**expected, **answers}
    rows = [plain_row(f"expected_{k}", v, 1) for k, v in sorted(merged.items())]
    if projection is None or any(v not in answers for v in MAP_VARS):
        return rows
    pt = projection.project(answers)
    rows += [plain_row("map_x", pt["x"], len(MAP_VARS)), plain_row("map_y", pt["y"], len(MAP_VARS))]
    if coords is not None:
        for role in ("target", "reference"):
            c = country_point(coords, cfg[role]["country"], cfg)
            if c is not None:
                rows.append(plain_row(f"map_dist_{role}", float(np.hypot(pt["x"] - c[0], pt["y"] - c[1])),
                                      len(MAP_VARS)))
    return rows


def map_inputs(cfg: dict, raw_root: str | Path | None) -> tuple[Projection | None, pd.DataFrame | None]:
    """The fitted projection (None without ``cfg.cultural_map.microdata``) and published coordinates."""
    cm = cfg.get("cultural_map") or {}
    coords = None
    if raw_root is not None and (Path(raw_root) / "ivs_map").is_dir():
        coords = published_coordinates(Path(raw_root) / "ivs_map", cm.get("target_year"))
    micro = cm.get("microdata")
    return (fit_projection(load_microdata(micro)) if micro else None), coords


def cultural_map_metrics(items: pd.DataFrame, dists: dict, raw: pd.DataFrame, cfg: dict,
                         inputs=None) -> list[dict]:
    """The task's metrics entry point: :func:`map_metrics` with the run's projection and coordinates."""
    raw_root = getattr(inputs, "raw_root", None)
    projection, coords = (inputs.once("cultural_map", lambda: map_inputs(cfg, raw_root)) if inputs is not None
                          else (None, None))
    return map_metrics(items, dists, cfg, projection, coords)
