"""A self-contained HTML report, one file a reviewer can be mailed: notes, a warnings table
(low option mass, invalid answers), the paper-layout tables (``culteval.report.tables``), each
figure (embedded as a PNG data URI, shown at its natural size) above its table
(with n_items), the comparisons, the inputs' sha256 and which of them are subsets, and the
provenance record. The page is the Jinja2 template ``templates/report.html.j2`` (autoescape on);
this module only prepares its rows."""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import jinja2
import pandas as pd

from culteval.io import current, write_text
from culteval.metrics.claims import claims, evidence_text
from culteval.metrics.comparisons import LANGUAGE_N, LANGUAGE_TABLE
from culteval.metrics.cultural_map import NO_MICRODATA
from culteval.metrics.kinds import BASELINE, COMPARISON, FIT, GROUP, MODEL, require_kind
from culteval.report.figures import MIN_FONT_KEY
from culteval.report.tables import flag_list, fmt, legend, paper_tables

SUBSET_WARNING = ("Some inputs are subsets or derived files (see Inputs): the numbers below are not "
                  "full-benchmark results.")
# Which summary rows sit beside which figure (keyed by the figure file's stem).
SECTIONS = {
    "cultural_map": ("Cultural map", lambda d: d["task"].eq("cultural_map")
                     & d["metric"].str.match(r"^(map_|expected_)")),
    "cad": ("Opinion alignment (GlobalOpinionQA)", lambda d: d["task"].eq("global_opinions")
            & d["metric"].isin(["sim_target", "sim_reference", "cad", "ncad", "ncad_skipped"])),
    "accuracy": ("Accuracy (CulturalBench, NormAd, BLEnD)",
                 lambda d: d["metric"].str.match(r"^(acc_|invalid_rate)") & ~d["task"].eq("indica")),
    "robustness": ("Robustness", lambda d: d["metric"].str.match(
        r"^(position_bias|self_consistency|low_mass_share|mean_option_mass)")),
    "regions": ("Regions of India (INDICA; CC BY 4.0; Madhusudan et al. 2026, arXiv 2601.15550)",
                lambda d: d["task"].eq("indica") & d["metric"].str.match(
                    r"^(selection_share|expected_share|selection_ratio|region_)")),
}
COMPARISONS = ("Comparisons (group means, fine-tune deltas, pro-score alignment and Rystrom et al.'s "
               "mixed model)",
               lambda d: d["kind"].isin((GROUP, COMPARISON, FIT))
               | d["metric"].isin(["alignment", "alignment_expected"]))
TEMPLATE = "report.html.j2"
WARNING_TEXT = ("Rows where the model put under cfg.metrics.low_mass of its next-token probability on the "
                "answer labels (low_mass_share > 0), or where sampled answers could not be parsed "
                "(invalid_rate > 0): their numbers rest on weakly supported or missing answers.")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PackageLoader finds the template in an installed package as well as in the source tree
_ENV = jinja2.Environment(loader=jinja2.PackageLoader("culteval.report"), autoescape=True,
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def table_rows(df: pd.DataFrame, pages: dict[tuple[str, str], str] | None = None) -> list[dict]:
    """Summary rows for a table, sorted: formatted value, n_items, the 95% CI and the flags; with
    ``pages`` ((culture, task) -> item page href), the link to the row's items, its model and
    strategy selected."""
    rows = []
    keys = [k for k in ("culture", "model", "task", "strategy", "metric") if k in df.columns]
    for r in df.sort_values(keys).itertuples(index=False):
        ci = f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}]" if fmt(r.ci_low) else ""
        culture = str(getattr(r, "culture", ""))
        page = (pages or {}).get((culture, str(r.task)), "")
        rows.append({"culture": culture, "model": str(r.model), "task": str(r.task),
                     "strategy": str(r.strategy),
                     "metric": str(r.metric), "value": fmt(r.value), "n_items": int(r.n_items), "ci": ci,
                     "flags": "; ".join(flag_list(getattr(r, "flags", ""))),
                     "items": page and f"{page}#{urlencode({'model': r.model, 'strategy': r.strategy})}"})
    return rows


def _flags_of(df: pd.DataFrame) -> set[str]:
    return {f for text in df.get("flags", pd.Series(dtype=object)) for f in flag_list(text)}


def png_text(data: bytes) -> dict[str, str]:
    """The PNG's ``tEXt`` chunks (keyword -> text), read by walking its chunks."""
    out, pos = {}, 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"tEXt":
            key, _, text = data[pos + 8:pos + 8 + length].partition(b"\0")
            out[key.decode("latin-1")] = text.decode("latin-1")
        pos += 12 + length  # length, type, data, CRC
    return out


def embed_png(path: Path) -> dict:
    """A PNG as a ``data:`` URI with its pixel size and, for the project's figures, the height in
    pixels of its smallest text (``figures.MIN_FONT_KEY``; empty if not recorded), so the page
    needs no other file and a browser can tell how large that text is shown."""
    data = current(path).read_bytes()  # inside the report's file set, the figure just written
    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValueError(f"{path}: not a PNG file; the report embeds PNG figures only")
    width, height = struct.unpack(">II", data[16:24])
    return {"src": "data:image/png;base64," + base64.b64encode(data).decode("ascii"),
            "width": width, "height": height, "min_font_px": png_text(data).get(MIN_FONT_KEY, "")}


def warnings_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (model, task, strategy) with low option mass or invalid sampled answers: the values.

    Columns model, task, strategy, low_mass_share, invalid_rate (the largest of that run's
    ``invalid_rate*`` rows) and which invalid metric it was; sorted.
    """
    keys = ["model", "task", "strategy"]
    cols = [*keys, "low_mass_share", "invalid_rate", "invalid_metric"]
    summary = summary[require_kind(summary)["kind"].isin((MODEL, BASELINE))]  # group means repeat them
    low = summary[summary["metric"].eq("low_mass_share")][[*keys, "value"]].rename(
        columns={"value": "low_mass_share"})
    inv = summary[summary["metric"].str.startswith("invalid_rate")]
    inv = inv.sort_values([*keys, "value", "metric"], ascending=[True] * 3 + [False, True])
    inv = inv.groupby(keys, sort=True).head(1)[[*keys, "value", "metric"]].rename(
        columns={"value": "invalid_rate", "metric": "invalid_metric"})
    df = low.merge(inv, on=keys, how="outer")
    flagged = df["low_mass_share"].fillna(0).gt(0) | df["invalid_rate"].fillna(0).gt(0)
    return df[flagged].reindex(columns=cols).sort_values(keys).reset_index(drop=True)


def warnings_rows(summary: pd.DataFrame) -> list[dict]:
    """The warnings table's rows, formatted; flags mark the cells to highlight."""
    return [{"model": str(r.model), "task": str(r.task), "strategy": str(r.strategy),
             "low_mass_share": fmt(r.low_mass_share), "low_flag": bool(r.low_mass_share > 0),
             "invalid_rate": fmt(r.invalid_rate), "invalid_flag": bool(r.invalid_rate > 0),
             "invalid_metric": str(r.invalid_metric) if r.invalid_rate > 0 else ""}
            for r in warnings_frame(summary).itertuples(index=False)]


@dataclass
class CultureSection:
    """One culture's part of the report: its summary rows, figures and country names."""

    key: str
    title: str
    summary: pd.DataFrame
    figures: list[Path]
    countries: dict[str, str] | None = None


def claim_rows(summary: pd.DataFrame, countries: dict[str, str] | None,
               groups: dict[str, str] | None = None) -> list[dict]:
    """The papers' claims tested on ``summary`` (metrics/claims.py), as the template shows them;
    ``groups``: each model's group (which models are regional)."""
    return [{"key": c.key, "paper": c.paper, "sentence": c.sentence, "verdict": c.verdict, "reason": c.reason,
             "evidence": [evidence_text(e) for e in c.evidence]} for c in claims(summary, countries, groups)]


def model_groups(provenance: dict) -> dict[str, str]:
    """Each model's ``group`` from the run's params as its provenance records them."""
    models = (provenance.get("params") or {}).get("models") or {}
    return {str(m): str(spec["group"]) for m, spec in models.items()
            if isinstance(spec, dict) and spec.get("group")}


def _culture_context(section: CultureSection, prefix: str, title: str,
                     across: pd.DataFrame | None = None, groups: dict[str, str] | None = None,
                     pages: dict | None = None) -> dict:
    """The template variables of one culture's section (element ids start with ``prefix``);
    ``across``: the rows about every culture at once, which its claims read too."""
    summary = section.summary
    plain = ~COMPARISONS[1](summary)  # comparison rows get their own section
    figures = []
    for fig in section.figures:
        fig = Path(fig)
        name, select = SECTIONS.get(fig.stem, (fig.stem, lambda d: d["metric"].isna()))
        no_map = fig.stem == "cultural_map" and not summary["metric"].eq("map_x").any()
        shown = summary[select(summary) & plain]
        figures.append({"id": prefix + fig.stem, "title": name, "note": NO_MICRODATA if no_map else "",
                        "rows": table_rows(shown, pages), "legend": legend(_flags_of(shown)),
                        **embed_png(fig)})
    evidence = summary if across is None else pd.concat([summary, across], ignore_index=True)
    return {"prefix": prefix, "title": title, "warnings": warnings_rows(summary), "figures": figures,
            "claims": claim_rows(evidence, section.countries, groups),
            "tables": paper_tables(summary, section.countries),
            "comparisons": table_rows(summary[COMPARISONS[1](summary)])}


def render_report(summary: pd.DataFrame, figures: list, provenance: dict, inputs: list[dict],
                  notes: list[str] = (), countries: dict[str, str] | None = None,
                  languages: pd.DataFrame | None = None, item_pages: dict | None = None) -> str:
    """The report page as one string, every figure embedded (see ``build_report``).

    ``figures``: the figure files of a one-culture run, or one :class:`CultureSection` per
    culture; with several, each gets its own titled section (element ids ``<key>-...``) and the
    rows about every culture at once (the mixed model, culture ``all``) a section of their own.
    ``languages``: ``metrics.comparisons.language_table`` (Rystrom et al.'s alignment and pairwise
    self-consistency per model x language), shown when it has rows. ``item_pages``: (culture,
    task) -> the href of that task's item page (``report.items``): each summary row of a task with
    a page links to it.
    """
    if figures and all(isinstance(f, CultureSection) for f in figures):
        parts = list(figures)
    else:
        parts = [CultureSection(key="", title="", summary=summary, figures=list(figures),
                                countries=countries)]
    several = len(parts) > 1
    across = summary[summary["culture"].astype(str).eq("all")] if several and "culture" in summary else None
    cultures = [_culture_context(p, f"{p.key}-" if several else "", p.title if several else "", across,
                                 model_groups(provenance), item_pages) for p in parts]
    languages = [] if languages is None else [
        {"model": str(r.model), "culture": str(r.culture), "strategy": str(r.strategy),
         "language": str(r.language), "values": [fmt(getattr(r, m)) for m in LANGUAGE_TABLE],
         "n": ["" if pd.isna(getattr(r, m)) else str(int(getattr(r, m))) for m in LANGUAGE_N]}
        for r in languages.itertuples(index=False)]
    return _ENV.get_template(TEMPLATE).render(
        subset_warning=SUBSET_WARNING if any(i.get("subset") for i in inputs) else "",
        notes=list(notes), warning_text=WARNING_TEXT, cultures=cultures, comparisons_title=COMPARISONS[0],
        across=table_rows(across) if across is not None else None, languages=languages,
        language_columns=(*LANGUAGE_TABLE, *LANGUAGE_N),
        inputs=[{"path": str(i["path"]), "sha256": str(i["sha256"]),
                 "completeness": "SUBSET: " + i["subset"] if i.get("subset") else "complete"}
                for i in sorted(inputs, key=lambda d: d["path"])],
        all_rows=table_rows(summary, item_pages), item_links=bool(item_pages),
        provenance=json.dumps(provenance, sort_keys=True, indent=2, ensure_ascii=False))


def build_report(summary: pd.DataFrame, figures: list, provenance: dict, inputs: list[dict],
                 out_path: str | Path, notes: list[str] = (),
                 countries: dict[str, str] | None = None, languages: pd.DataFrame | None = None,
                 item_pages: dict | None = None) -> Path:
    """Write the report to ``out_path`` (atomically): one file, figures embedded as data URIs.

    ``figures``: a one-culture run's figure files, or one :class:`CultureSection` per culture.
    ``countries`` maps ``target``/``reference`` to the names the practice tables' headers show
    (default: ``provenance["params"]``'s target and reference countries; a CultureSection
    carries its own).
    """
    out_path = Path(out_path)
    if countries is None:  # the run's own params, as its provenance records them
        params = provenance.get("params") or {}
        countries = {role: params[role]["country"] for role in ("target", "reference")
                     if isinstance(params.get(role), dict) and params[role].get("country")}
    write_text(render_report(summary, figures, provenance, inputs, notes, countries, languages, item_pages),
               out_path)
    return out_path
