"""A self-contained HTML report: notes, a warnings table (low option mass, invalid answers),
each figure beside its table (with n_items), the comparisons, the inputs' sha256 and which
of them are subsets, and the provenance record. All text is escaped."""

from __future__ import annotations

import json
import math
import os
from html import escape
from pathlib import Path

import pandas as pd

from culteval.io import write_text
from culteval.metrics.comparisons import COMPARISON_PREFIXES
from culteval.metrics.cultural_map import NO_MICRODATA

SUBSET_WARNING = ("Some inputs are subsets or derived files (see Inputs): the numbers below are not "
                  "full-benchmark results.")
# Which summary rows sit beside which figure (keyed by the figure file's stem).
SECTIONS = {
    "cultural_map": ("Cultural map", lambda d: d["task"].eq("cultural_map")
                     & d["metric"].str.match(r"^(map_|expected_)")),
    "cad": ("Opinion alignment (GlobalOpinionQA)", lambda d: d["task"].eq("global_opinions")
            & d["metric"].isin(["sim_target", "sim_reference", "cad", "ncad", "ncad_skipped"])),
    "accuracy": ("Accuracy (CulturalBench, NormAd)",
                 lambda d: d["metric"].str.match(r"^(acc_|invalid_rate)")),
    "robustness": ("Robustness", lambda d: d["metric"].str.match(
        r"^(position_bias|self_consistency|low_mass_share|mean_option_mass)")),
}
COMPARISONS = ("Comparisons (group means, fine-tune deltas, Rystrom et al. alignment and mixed model)",
               lambda d: d["model"].str.startswith(COMPARISON_PREFIXES) | d["metric"].eq("alignment"))
WARNING_TEXT = ("Rows where the model put under cfg.metrics.low_mass of its next-token probability on the "
                "answer labels (low_mass_share > 0), or where sampled answers could not be parsed "
                "(invalid_rate > 0): their numbers rest on weakly supported or missing answers.")
CSS = ("body{font-family:sans-serif;max-width:1300px;margin:auto;padding:0 12px}pre{white-space:pre-wrap}"
       "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;"
       "white-space:nowrap}"
       "td.n{text-align:right}td.wrap{white-space:normal}.note{background:#fff3cd;padding:6px}"
       "section{display:flex;gap:16px;align-items:flex-start}"
       "section img{width:480px}section a{flex:0 0 480px}"
       "section div{overflow-x:auto;max-height:600px;overflow-y:auto}.warn{background:#f8d7da}"
       "div.scroll{max-height:420px;overflow-y:auto;display:inline-block}")


def _fmt(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.4g}"


def table_html(df: pd.DataFrame) -> str:
    """Summary rows as an HTML table: value, 95% CI and n_items per row."""
    # n_items before the CI so it stays in view when a wide table scrolls
    cols = ("model", "task", "strategy", "metric", "value", "n_items", "95% CI")
    head = "".join(f"<th>{escape(c)}</th>" for c in cols)
    body = []
    for r in df.sort_values(["model", "task", "strategy", "metric"]).itertuples(index=False):
        ci = f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]" if _fmt(r.ci_low) else ""
        cells = [escape(str(x)) for x in (r.model, r.task, r.strategy, r.metric)]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells)
                    + f'<td class="n">{_fmt(r.value)}</td><td class="n">{int(r.n_items)}</td>'
                    + f'<td>{escape(ci)}</td></tr>')
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def warnings_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (model, task, strategy) with low option mass or invalid sampled answers: the values.

    Columns model, task, strategy, low_mass_share, invalid_rate (the largest of that run's
    ``invalid_rate*`` rows) and which invalid metric it was; sorted.
    """
    keys = ["model", "task", "strategy"]
    cols = [*keys, "low_mass_share", "invalid_rate", "invalid_metric"]
    summary = summary[~summary["model"].str.startswith(COMPARISON_PREFIXES)]  # group means repeat them
    low = summary[summary["metric"].eq("low_mass_share")][[*keys, "value"]].rename(
        columns={"value": "low_mass_share"})
    inv = summary[summary["metric"].str.startswith("invalid_rate")]
    inv = inv.sort_values([*keys, "value", "metric"], ascending=[True] * 3 + [False, True])
    inv = inv.groupby(keys, sort=True).head(1)[[*keys, "value", "metric"]].rename(
        columns={"value": "invalid_rate", "metric": "invalid_metric"})
    df = low.merge(inv, on=keys, how="outer")
    flagged = df["low_mass_share"].fillna(0).gt(0) | df["invalid_rate"].fillna(0).gt(0)
    return df[flagged].reindex(columns=cols).sort_values(keys).reset_index(drop=True)


def warnings_html(summary: pd.DataFrame) -> str:
    """The visible warnings section (a table), or a line saying there is nothing to flag."""
    w = warnings_frame(summary)
    out = "<h2 id='warnings'>Warnings</h2>"
    if w.empty:
        return out + "<p>No run has low option mass or invalid sampled answers.</p>"
    head = "".join(f"<th>{c}</th>" for c in ("model", "task", "strategy", "low_mass_share",
                                              "max invalid rate", "invalid metric"))
    body = []
    for r in w.itertuples(index=False):
        cls = lambda v: ' class="n warn"' if isinstance(v, float) and v > 0 else ' class="n"'  # noqa: E731
        body.append("<tr>" + "".join(f"<td>{escape(str(x))}</td>" for x in (r.model, r.task, r.strategy))
                    + f"<td{cls(r.low_mass_share)}>{_fmt(r.low_mass_share)}</td>"
                    + f"<td{cls(r.invalid_rate)}>{_fmt(r.invalid_rate)}</td>"
                    + f"<td>{escape(str(r.invalid_metric)) if r.invalid_rate > 0 else ''}</td></tr>")
    return (out + f"<p class='note'>{escape(WARNING_TEXT)}</p>"
            + f"<div class='scroll'><table><tr>{head}</tr>{''.join(body)}</table></div>")


def build_report(summary: pd.DataFrame, figures: list[Path], provenance: dict, inputs: list[dict],
                 out_path: str | Path, notes: list[str] = ()) -> Path:
    """Write the report to ``out_path``; figures are linked relative to it."""
    out_path = Path(out_path)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>culteval report</title>"
             f"<style>{CSS}</style></head><body><h1>culteval: cultural alignment report</h1>"]
    if any(i.get("subset") for i in inputs):
        parts.append(f"<p class='note'>{escape(SUBSET_WARNING)}</p>")
    parts += [f"<p class='note'>{escape(n)}</p>" for n in notes]
    parts.append(warnings_html(summary))
    plain = ~COMPARISONS[1](summary)  # comparison rows get their own section
    for fig in figures:
        fig = Path(fig)
        title, select = SECTIONS.get(fig.stem, (fig.stem, lambda d: d["metric"].isna()))
        rows = summary[select(summary) & plain]
        parts.append(f"<h2>{escape(title)}</h2>")
        if fig.stem == "cultural_map" and not summary["metric"].eq("map_x").any():
            parts.append(f"<p class='note'>{escape(NO_MICRODATA)}</p>")
        rel = os.path.relpath(fig.resolve(), out_path.parent.resolve())
        src = escape(Path(rel).as_posix(), quote=True)
        parts.append(f"<section><a href='{src}'><img src='{src}' alt='{escape(title)}'></a>"
                     f"<div>{table_html(rows) if len(rows) else '<p>no rows</p>'}</div></section>")
    comp = summary[COMPARISONS[1](summary)]
    parts.append(f"<h2>{escape(COMPARISONS[0])}</h2>"
                 + (table_html(comp) if len(comp) else "<p>no comparison rows</p>"))
    parts.append("<h2>Inputs</h2><table><tr><th>path</th><th>sha256</th><th>completeness</th></tr>")
    for i in sorted(inputs, key=lambda d: d["path"]):
        completeness = "SUBSET: " + i["subset"] if i.get("subset") else "complete"
        parts.append(f"<tr><td>{escape(str(i['path']))}</td><td><code>{escape(str(i['sha256']))}</code></td>"
                     f"<td class='wrap'>{escape(completeness)}</td></tr>")
    parts.append("</table><h2>All metrics</h2>" + table_html(summary))
    parts.append("<h2>Provenance</h2><pre>" + escape(json.dumps(provenance, sort_keys=True, indent=2,
                                                                 ensure_ascii=False)) + "</pre>")
    parts.append("</body></html>\n")
    write_text("\n".join(parts), out_path)
    return out_path
