"""Deterministic matplotlib figures (Agg, fixed size and dpi, sorted data, no timestamps).

Same summary in, same PNG bytes out: the PNG carries no ``Software`` or date
metadata and every plotted sequence is sorted first.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from culteval.io import atomic_path  # noqa: E402
from culteval.metrics.comparisons import COMPARISON_PREFIXES  # noqa: E402
from culteval.metrics.cultural_map import country_rows  # noqa: E402

DPI = 100
FIGSIZE = (8.0, 5.0)
OPINION_METRICS = ("cad", "ncad")
ROBUSTNESS_METRICS = ("position_bias", "self_consistency")


def _save(fig, path: Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_axis_off()


def cultural_map_figure(coords: pd.DataFrame | None, summary: pd.DataFrame, cfg: dict, path: Path) -> Path:
    """Countries as grey points, target and reference labelled, models placed where available."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
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
        wide = placed.pivot_table(index=["model", "strategy"], columns="metric", values="value").sort_index()
        for (model, strategy), r in wide.iterrows():
            ax.scatter([r["map_x"]], [r["map_y"]], marker="x", color="black", zorder=4)
            ax.annotate(f"{model}/{strategy}", (r["map_x"], r["map_y"]), textcoords="offset points",
                        xytext=(4, -10), fontsize=7)
    ax.set_xlabel("survival (-) vs self-expression (+)")
    ax.set_ylabel("traditional (-) vs secular-rational (+)")
    ax.axhline(0, color="0.9", zorder=0)
    ax.axvline(0, color="0.9", zorder=0)
    ax.set_title("Inglehart-Welzel cultural map")
    return _save(fig, path)


def _bars(ax, df: pd.DataFrame, metrics, title: str) -> None:
    """Grouped bars: one group per model/strategy, one bar per metric, with CI whiskers."""
    df = df[df["metric"].isin(metrics)].sort_values(["model", "strategy", "metric"])
    if df.empty:
        _empty(ax, f"no {', '.join(metrics)} values")
        return
    labels = sorted({f"{m}/{s}" for m, s in zip(df["model"], df["strategy"], strict=True)})
    pos = {label: i for i, label in enumerate(labels)}
    width = 0.8 / len(metrics)
    for k, metric in enumerate(metrics):
        sub = df[df["metric"] == metric]
        keys = zip(sub["model"], sub["strategy"], strict=True)
        x = np.array([pos[f"{m}/{s}"] for m, s in keys]) + k * width
        v = sub["value"].to_numpy(float)
        lo = np.where(np.isnan(sub["ci_low"].to_numpy(float)), v, sub["ci_low"].to_numpy(float))
        hi = np.where(np.isnan(sub["ci_high"].to_numpy(float)), v, sub["ci_high"].to_numpy(float))
        ax.bar(x, v, width, yerr=[np.maximum(v - lo, 0), np.maximum(hi - v, 0)], capsize=2, label=metric)
    ax.set_xticks(np.arange(len(labels)) + width * (len(metrics) - 1) / 2)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend(fontsize=7)
    ax.set_title(title)


def cad_figure(summary: pd.DataFrame, path: Path) -> Path:
    """CAD and nCAD (GlobalOpinionQA) by model x strategy, 95% bootstrap CIs."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    _bars(ax, summary[summary["task"] == "global_opinions"], OPINION_METRICS,
          "Cultural alignment difference (positive = closer to target)")
    fig.tight_layout()
    return _save(fig, path)


def accuracy_heatmap(summary: pd.DataFrame, path: Path) -> Path:
    """Rows model x strategy, columns task:metric (accuracy metrics), annotated values."""
    acc = summary[summary["metric"].str.startswith("acc_")]
    fig, ax = plt.subplots(figsize=FIGSIZE)
    if acc.empty:
        _empty(ax, "no accuracy metrics")
        return _save(fig, path)
    acc = acc.assign(row=acc["model"] + "/" + acc["strategy"], col=acc["task"] + ":" + acc["metric"])
    wide = acc.pivot_table(index="row", columns="col", values="value").sort_index().sort_index(axis=1)
    im = ax.imshow(wide.to_numpy(float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(wide.shape[1]))
    ax.set_xticklabels(wide.columns, rotation=45, ha="right", fontsize=6)
    ax.set_yticks(range(wide.shape[0]))
    ax.set_yticklabels(wide.index, fontsize=7)
    for (i, j), v in np.ndenumerate(wide.to_numpy(float)):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if v < 0.5 else "black")
    fig.colorbar(im, ax=ax)
    ax.set_title("Accuracy")
    fig.tight_layout()
    return _save(fig, path)


def robustness_figure(summary: pd.DataFrame, path: Path) -> Path:
    """Position bias (JSD across answer orders) and self-consistency per model/strategy, all tasks."""
    # stacked, full width: one bar per model x task x strategy needs room for its label
    fig, axes = plt.subplots(2, 1, figsize=(FIGSIZE[0], 2 * FIGSIZE[1]))
    df = summary.assign(strategy=summary["task"] + ":" + summary["strategy"])
    for ax, metric in zip(axes, ROBUSTNESS_METRICS, strict=True):
        _bars(ax, df, (metric,), metric)
    fig.tight_layout()
    return _save(fig, path)


def regions_figure(summary: pd.DataFrame, path: Path) -> Path:
    """INDICA: per region, each model x strategy's selection share (bar, 95% bootstrap CI over
    questions) and the share expected without a regional preference (black tick on the bar)."""
    df = summary[summary["task"].eq("indica")]
    share = df[df["metric"].str.startswith("selection_share:")]
    expected = df[df["metric"].str.startswith("expected_share:")]
    fig, ax = plt.subplots(figsize=FIGSIZE)
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
    ax.legend(fontsize=7)
    ax.set_title("Regions of India (INDICA): whose answer is picked, region-agnostic questions")
    fig.tight_layout()
    return _save(fig, path)


FIGURES = ("cultural_map.png", "cad.png", "accuracy.png", "robustness.png")  # what render_all writes
REGIONS_FIGURE = "regions.png"  # written as well when the summary has INDICA rows (off by default)


def render_all(summary: pd.DataFrame, coords: pd.DataFrame | None, cfg: dict, out_dir: Path) -> list[Path]:
    """All report figures into ``out_dir``, in report order (models and baselines; the comparison
    rows ``group:``/``delta:``/``mixed_effects`` are tabled in the report, not plotted)."""
    out_dir = Path(out_dir)
    summary = summary[~summary["model"].str.startswith(COMPARISON_PREFIXES)]
    map_png, cad_png, accuracy_png, robustness_png = (out_dir / name for name in FIGURES)
    out = [cultural_map_figure(coords, summary, cfg, map_png), cad_figure(summary, cad_png),
           accuracy_heatmap(summary, accuracy_png), robustness_figure(summary, robustness_png)]
    if summary["task"].eq("indica").any():
        out.append(regions_figure(summary, out_dir / REGIONS_FIGURE))
    return out
