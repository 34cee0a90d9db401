"""Deterministic matplotlib figures (Agg, fixed width and dpi, sorted data, no timestamps).

Same summary in, same PNG bytes out: the PNG carries no ``Software`` or date metadata and
every plotted sequence is sorted first. Each figure is drawn for the report's width (``WIDTH``
inches at ``DPI``, shown at its natural size) with no text under ``MIN_FONT_PT``; the PNG
records its smallest text's height in pixels under ``MIN_FONT_KEY`` so the report (and its
browser test) can tell how large that text is on screen.

Values are dots with their 95% interval as a line, one row per model x strategy (x task),
read against a labelled axis: a reader finds a row by its label, not by a colour scale.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from culteval.io import atomic_path  # noqa: E402
from culteval.metrics.cultural_map import country_rows  # noqa: E402
from culteval.metrics.kinds import BASELINE, MODEL, REFERENCE, require_kind  # noqa: E402
from culteval.report.tables import PRACTICE_TASKS, practice_label, split_country  # noqa: E402

DPI = 100
WIDTH = 11.0  # inches: 1100 px, shown 1:1 in the report's 1280 px page
MIN_FONT_PT = 9  # 12.5 px at 100 dpi, above the page's 11 px small print
MIN_FONT_KEY = "culteval:min-font-px"  # PNG tEXt keyword: the smallest text's height in pixels
RC = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": MIN_FONT_PT,
      "ytick.labelsize": MIN_FONT_PT, "legend.fontsize": MIN_FONT_PT, "figure.titlesize": 12}
ROW_IN = 0.3  # inches per model x strategy row of a dot chart
PANELS_PER_ROW = 4  # accuracy measures side by side
OPINION_METRICS = ("cad", "ncad")
ROBUSTNESS_METRICS = ("position_bias", "self_consistency")
COUNTRY_STYLE = {"target": ("tab:orange", "o"), "reference": ("tab:blue", "s"), "all": ("0.25", "D")}


def min_font_px(fig) -> float:
    """Height in pixels (at ``DPI``) of the smallest visible, non-empty text in ``fig``."""
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return min(sizes) * DPI / 72 if sizes else 0.0


def _save(fig, path: Path) -> Path:
    path = Path(path)
    meta = {"Software": None, MIN_FONT_KEY: f"{min_font_px(fig):.2f}"}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", metadata=meta)
    plt.close(fig)
    return path


def _figure(height: float, **kw):
    with plt.rc_context(RC):
        return plt.figure(figsize=(WIDTH, height), layout="constrained", **kw)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_axis_off()


def _interval(v: pd.Series, lo: pd.Series, hi: pd.Series) -> list:
    """Error-bar lengths below and above each value; a missing bound draws no line."""
    return [(v - lo).clip(lower=0).fillna(0).to_numpy(float),
            (hi - v).clip(lower=0).fillna(0).to_numpy(float)]


def _dots(ax, df: pd.DataFrame, rows: list[str], series: list[tuple[str, str, str, str]]) -> None:
    """One horizontal row per label in ``rows`` (top to bottom); per row a dot and 95% interval for
    each series present. ``df``: columns row, series, value, ci_low, ci_high; ``series``:
    (key, legend label, colour, marker)."""
    y = {r: i for i, r in enumerate(rows)}
    step = 0.6 / max(len(series), 1)
    for k, (key, label, colour, marker) in enumerate(series):
        sub = df[df["series"].eq(key)].sort_values("row")
        if sub.empty:
            continue
        ys = [y[r] + (k - (len(series) - 1) / 2) * step for r in sub["row"]]
        v = sub["value"].astype(float)
        ax.errorbar(v, ys, xerr=_interval(v, sub["ci_low"].astype(float), sub["ci_high"].astype(float)),
                    fmt=marker, color=colour, markersize=4, elinewidth=1.2, capsize=0, label=label)
    for i in range(0, len(rows), 2):  # bands guide the eye along a row
        ax.axhspan(i - 0.5, i + 0.5, color="0.95", zorder=0, linewidth=0)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", color="0.85", linewidth=0.6)
    ax.set_axisbelow(True)


def _row_label(df: pd.DataFrame, keys: tuple[str, ...]) -> pd.Series:
    """A row's label, e.g. ``model / strategy`` (an empty frame gets an empty column)."""
    return pd.Series([" / ".join(map(str, t)) for t in df[list(keys)].itertuples(index=False)],
                     index=df.index, dtype=object)


def _dot_figure(df: pd.DataFrame, metrics, keys: tuple[str, ...], path: Path, title: str,
                xlabel: dict | None = None) -> Path:
    """One panel per metric, rows ``keys`` joined (shared across panels), one dot per row."""
    df = df[df["metric"].isin(metrics)]
    if df.empty:
        fig = _figure(3.0)
        _empty(fig.add_subplot(), f"no {', '.join(metrics)} values")
        return _save(fig, path)
    df = df.assign(row=_row_label(df, keys), series="value")
    rows = sorted(set(df["row"]))
    present = [m for m in metrics if m in set(df["metric"])]
    fig = _figure(1.3 + ROW_IN * len(rows))
    with plt.rc_context(RC):
        axes = fig.subplots(1, len(present), sharey=True, squeeze=False)[0]
        for ax, metric in zip(axes, present, strict=True):
            _dots(ax, df[df["metric"].eq(metric)], rows, [("value", metric, "tab:blue", "o")])
            ax.axvline(0, color="black", linewidth=0.6)
            ax.set_title(metric)
            ax.set_xlabel((xlabel or {}).get(metric, "value (dot) and 95% CI (line)"))
        for ax in axes[1:]:
            ax.tick_params(axis="y", labelleft=False)
        fig.suptitle(title)
    return _save(fig, path)


def cultural_map_figure(coords: pd.DataFrame | None, summary: pd.DataFrame, cfg: dict, path: Path) -> Path:
    """Countries as grey points, target and reference labelled, models placed where available."""
    fig = _figure(6.5)
    with plt.rc_context(RC):
        ax = fig.add_subplot()
        if coords is None or coords.empty:
            _empty(ax, "no published map coordinates supplied")
            return _save(fig, path)
        c = coords.sort_values("geo")
        ax.scatter(c["x"], c["y"], s=12, color="0.75", zorder=1, label="IVS countries (published)")
        for role, colour in (("target", "tab:orange"), ("reference", "tab:blue")):
            name = cfg[role]["country"]
            for r in country_rows(c, name, cfg).itertuples():
                ax.scatter([r.x], [r.y], s=40, color=colour, zorder=3)
                ax.annotate(f"{name} ({r.year})", (r.x, r.y), textcoords="offset points", xytext=(5, 5))
        placed = summary[summary["task"].eq("cultural_map") & summary["metric"].isin(["map_x", "map_y"])]
        if not placed.empty:
            wide = placed.pivot_table(index=["model", "strategy"], columns="metric",
                                      values="value").sort_index()
            for (model, strategy), r in wide.iterrows():
                ax.scatter([r["map_x"]], [r["map_y"]], marker="x", color="black", zorder=4)
                ax.annotate(f"{model}/{strategy}", (r["map_x"], r["map_y"]), textcoords="offset points",
                            xytext=(4, -10), fontsize=MIN_FONT_PT)
        ax.set_xlabel("survival (-) vs self-expression (+)")
        ax.set_ylabel("traditional (-) vs secular-rational (+)")
        ax.axhline(0, color="0.9", zorder=0)
        ax.axvline(0, color="0.9", zorder=0)
        ax.set_title("Inglehart-Welzel cultural map")
    return _save(fig, path)


def cad_figure(summary: pd.DataFrame, path: Path) -> Path:
    """CAD and nCAD (GlobalOpinionQA) per model x strategy with 95% bootstrap CIs."""
    return _dot_figure(summary[summary["task"] == "global_opinions"], OPINION_METRICS, ("model", "strategy"),
                       path, "Cultural alignment difference (positive = closer to target)",
                       {m: f"{m} (0 = as close to target as to reference)" for m in OPINION_METRICS})


def _accuracy_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """Accuracy rows with their measure and country (target / reference / all) split out."""
    metric = summary["metric"]
    acc = summary[metric.str.startswith("acc_") & ~metric.str.contains(":", regex=False)]
    parts = [split_country(m) for m in acc["metric"]]
    return acc.assign(measure=[p[0] for p in parts], series=[p[1] for p in parts],
                      row=_row_label(acc, ("model", "strategy")))


def accuracy_figure(summary: pd.DataFrame, cfg: dict, path: Path) -> Path:
    """Accuracy per task: a block of panels per task (one per measure, the paper's order), a row per
    model x strategy, a dot and 95% interval per country (target, reference, both)."""
    acc = _accuracy_frame(summary)
    if acc.empty:
        fig = _figure(3.0)
        _empty(fig.add_subplot(), "no accuracy metrics")
        return _save(fig, path)
    tasks = sorted(set(acc["task"]), key=lambda t: (PRACTICE_TASKS.index(t) if t in PRACTICE_TASKS
                                                    else len(PRACTICE_TASKS), t))
    blocks = []  # (task, measures, rows, height in inches)
    for task in tasks:
        sub = acc[acc["task"].eq(task)]
        measures = sorted(set(sub["measure"]), key=lambda m: (practice_label(m)[0], m))
        rows = sorted(set(sub["row"]))
        grid = math.ceil(len(measures) / PANELS_PER_ROW)
        blocks.append((task, measures, rows, 0.5 + grid * (0.9 + ROW_IN * len(rows))))
    names = {c: cfg.get(c, {}).get("country", c) for c in ("target", "reference")}
    series = [(c, names.get(c, "both countries"), *COUNTRY_STYLE[c]) for c in ("target", "reference", "all")]
    fig = _figure(0.5 + sum(b[3] for b in blocks))
    with plt.rc_context(RC):
        subfigs = fig.subfigures(len(blocks), 1, height_ratios=[b[3] for b in blocks], squeeze=False)[:, 0]
        for sf, (task, measures, rows, _) in zip(subfigs, blocks, strict=True):
            grid = math.ceil(len(measures) / PANELS_PER_ROW)
            ncols = PANELS_PER_ROW  # panels keep their width when a task has fewer measures
            axes = sf.subplots(grid, ncols, sharex=True, sharey=True, squeeze=False)
            sub = acc[acc["task"].eq(task)]
            for k, ax in enumerate(axes.flat):
                if k >= len(measures):
                    ax.set_axis_off()
                    continue
                _dots(ax, sub[sub["measure"].eq(measures[k])], rows, series)
                ax.set_xlim(-0.03, 1.03)
                ax.set_xticks([0, 0.25, 0.5, 0.75, 1])
                ax.set_xticklabels(["0", ".25", ".5", ".75", "1"])
                # a measure's name wraps to stay within its panel's width
                ax.set_title(textwrap.fill(practice_label(measures[k])[1], 24) + f"\n{measures[k]}")
                ax.tick_params(axis="x", labelbottom=True)
                if k % ncols:
                    ax.tick_params(axis="y", labelleft=False)
            sf.suptitle(f"{task}: accuracy (dot) and 95% CI (line)", fontweight="bold")
        handles = [plt.Line2D([], [], color=c, marker=m, linestyle="-", markersize=5, label=label)
                   for key, label, c, m in series if key in set(acc["series"])]
        fig.legend(handles=handles, loc="outside upper center", ncols=len(handles), frameon=False)
    return _save(fig, path)


def robustness_figure(summary: pd.DataFrame, path: Path) -> Path:
    """Position bias (JSD across answer orders) and self-consistency per model x task x strategy."""
    return _dot_figure(summary, ROBUSTNESS_METRICS, ("model", "task", "strategy"), path,
                       "Robustness: position bias (0 = order does not matter) and self-consistency",
                       {"position_bias": "JSD across answer orders",
                        "self_consistency": "agreement of samples"})


def regions_figure(summary: pd.DataFrame, path: Path) -> Path:
    """INDICA: per region, each model x strategy's selection share (bar, 95% bootstrap CI over
    questions) and the share expected without a regional preference (black tick on the bar)."""
    df = summary[summary["task"].eq("indica")]
    share = df[df["metric"].str.startswith("selection_share:")]
    expected = df[df["metric"].str.startswith("expected_share:")]
    fig, ax = plt.subplots(figsize=(WIDTH, 5.0))
    if share.empty:
        _empty(ax, "no INDICA region-agnostic rows")
        return _save(fig, path)
    regions = sorted({m.split(":", 1)[1] for m in share["metric"]})
    runs = sorted(set(zip(share["model"], share["strategy"], strict=True)))
    width = 0.8 / len(runs)
    for k, (model, strategy) in enumerate(runs):
        mine = share[share["model"].eq(model) & share["strategy"].eq(strategy)].set_index("metric")
        exp = expected[expected["model"].eq(model) & expected["strategy"].eq(strategy)].set_index("metric")
        x = np.arange(len(regions)) - 0.4 + width * (k + 0.5)
        v = np.array([mine["value"].get(f"selection_share:{r}", np.nan) for r in regions], float)
        lo = np.array([mine["ci_low"].get(f"selection_share:{r}", np.nan) for r in regions], float)
        hi = np.array([mine["ci_high"].get(f"selection_share:{r}", np.nan) for r in regions], float)
        err = np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)])
        ax.bar(x, v, width, yerr=err, capsize=2, label=f"{model}/{strategy}")
        e = np.array([exp["value"].get(f"expected_share:{r}", np.nan) for r in regions], float)
        ax.scatter(x, e, marker="_", s=200, color="black", zorder=3,
                   label="expected (no regional preference)" if k == 0 else None)
    ax.set_xticks(range(len(regions)))
    ax.set_xticklabels(regions)
    ax.set_ylabel("share of answers (fractional attribution)")
    ax.legend(fontsize=MIN_FONT_PT)
    ax.set_title("Regions of India (INDICA): whose answer is picked, region-agnostic questions")
    fig.tight_layout()
    return _save(fig, path)


FIGURES = ("cultural_map.png", "cad.png", "accuracy.png", "robustness.png")  # what render_all writes
REGIONS_FIGURE = "regions.png"  # written as well when the summary has INDICA rows (off by default)


def render_all(summary: pd.DataFrame, coords: pd.DataFrame | None, cfg: dict, out_dir: Path) -> list[Path]:
    """All report figures into ``out_dir``, in report order (models and baselines; the comparison
    rows ``group:``/``delta:``/``mixed_effects`` are tabled in the report, not plotted)."""
    out_dir = Path(out_dir)
    summary = require_kind(summary, "the figures' summary")
    summary = summary[summary["kind"].isin((MODEL, BASELINE, REFERENCE))]
    map_png, cad_png, accuracy_png, robustness_png = (out_dir / name for name in FIGURES)
    out = [cultural_map_figure(coords, summary, cfg, map_png), cad_figure(summary, cad_png),
           accuracy_figure(summary, cfg, accuracy_png), robustness_figure(summary, robustness_png)]
    if summary["task"].eq("indica").any():
        out.append(regions_figure(summary, out_dir / REGIONS_FIGURE))
    return out
