"""A self-contained HTML report: each figure beside its table (with n_items), the inputs'
sha256 and which of them are subsets, and the provenance record. All text is escaped."""

from __future__ import annotations

import json
import math
import os
from html import escape
from pathlib import Path

import pandas as pd

from culteval.io import write_text
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
CSS = ("body{font-family:sans-serif;max-width:1100px;margin:auto}"
       "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
       "td.n{text-align:right}.note{background:#fff3cd;padding:6px}"
       "section{display:flex;gap:16px;align-items:flex-start}img{max-width:560px}")


def _fmt(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.4g}"


def table_html(df: pd.DataFrame) -> str:
    """Summary rows as an HTML table: value, 95% CI and n_items per row."""
    head = "".join(f"<th>{escape(c)}</th>" for c in ("model", "task", "strategy", "metric", "value", "95% CI",
                                                     "n_items"))
    body = []
    for r in df.sort_values(["model", "task", "strategy", "metric"]).itertuples(index=False):
        ci = f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]" if _fmt(r.ci_low) else ""
        cells = [escape(str(x)) for x in (r.model, r.task, r.strategy, r.metric)]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells)
                    + f'<td class="n">{_fmt(r.value)}</td><td>{escape(ci)}</td>'
                    + f'<td class="n">{int(r.n_items)}</td></tr>')
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def inputs_from_provenance(provenance: dict, cfg: dict) -> list[dict]:
    """Input records ``{path, sha256, subset}``; ``subset`` is ``datasets.<name>.subset_in_mirror``
    when the file came from the offline mirror, else None."""
    out = []
    for inp in provenance.get("inputs", []):
        name, note = Path(inp["path"]).name, None
        if "mirror" in str(inp.get("origin", "")):
            for ds in (cfg.get("datasets") or {}).values():
                if name in (ds.get("files") or {}):
                    note = ds.get("subset_in_mirror")
        out.append({"path": inp["path"], "sha256": inp["sha256"], "subset": note})
    return sorted(out, key=lambda d: d["path"])


def build_report(summary: pd.DataFrame, figures: list[Path], provenance: dict, inputs: list[dict],
                 out_path: str | Path, notes: list[str] = ()) -> Path:
    """Write the report to ``out_path``; figures are linked relative to it."""
    out_path = Path(out_path)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>culteval report</title>"
             f"<style>{CSS}</style></head><body><h1>culteval: cultural alignment report</h1>"]
    if any(i.get("subset") for i in inputs):
        parts.append(f"<p class='note'>{escape(SUBSET_WARNING)}</p>")
    parts += [f"<p class='note'>{escape(n)}</p>" for n in notes]
    for fig in figures:
        fig = Path(fig)
        title, select = SECTIONS.get(fig.stem, (fig.stem, lambda d: d["metric"].isna()))
        rows = summary[select(summary)]
        parts.append(f"<h2>{escape(title)}</h2>")
        if fig.stem == "cultural_map" and not summary["metric"].eq("map_x").any():
            parts.append(f"<p class='note'>{escape(NO_MICRODATA)}</p>")
        rel = os.path.relpath(fig.resolve(), out_path.parent.resolve())
        parts.append(f"<section><img src='{escape(Path(rel).as_posix(), quote=True)}' alt='{escape(title)}'>"
                     f"<div>{table_html(rows) if len(rows) else '<p>no rows</p>'}</div></section>")
    parts.append("<h2>Inputs</h2><table><tr><th>path</th><th>sha256</th><th>completeness</th></tr>")
    for i in sorted(inputs, key=lambda d: d["path"]):
        parts.append(f"<tr><td>{escape(str(i['path']))}</td><td><code>{escape(str(i['sha256']))}</code></td>"
                     f"<td>{escape('SUBSET: ' + i['subset'] if i.get('subset') else 'complete')}</td></tr>")
    parts.append("</table><h2>All metrics</h2>" + table_html(summary))
    parts.append("<h2>Provenance</h2><pre>" + escape(json.dumps(provenance, sort_keys=True, indent=2,
                                                                 ensure_ascii=False)) + "</pre>")
    parts.append("</body></html>\n")
    write_text("\n".join(parts), out_path)
    return out_path
