"""Report: figures rebuild byte-identically; the HTML shows n_items, sha256 and subsets, escaped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from culteval.metrics.cultural_map import NO_MICRODATA, published_coordinates
from culteval.report.figures import render_all
from culteval.report.html import build_report

CFG = {
    "target": {"country": "India"}, "reference": {"country": "United States"},
    "country_aliases": {"India": {"ivs_map": ["india"]}, "United States": {"ivs_map": ["united_states"]}},
    "datasets": {"normad": {"files": {"normad_etiquette_final_data.csv": {}},
                            "subset_in_mirror": "71 India and United States stories of 2,633"},
                 "ivs_map": {"files": {"ddf--entities--geo--country.csv": {}}, "subset_in_mirror": None}},
}


def summary_frame(with_map: bool) -> pd.DataFrame:
    rows = []
    for model in ("m<1>", "baseline:United States"):
        strategies = ("none",) if model.startswith("baseline") else ("default", "native")
        for k, s in enumerate(strategies):
            rows += [(model, "global_opinions", s, "cad", 0.1 * (k + 1), 0.1 * k + 0.05, 0.1 * k + 0.15, 23),
                     (model, "global_opinions", s, "ncad", 0.2, 0.1, 0.3, 21)]
            if not model.startswith("baseline"):
                rows += [(model, "culturalbench", s, "acc_prob", 0.6, 0.5, 0.7, 46),
                         (model, "normad", s, "acc_prob_value", 0.4, 0.3, 0.5, 71),
                         (model, "normad", s, "position_bias", 0.05, 0.04, 0.06, 71),
                         (model, "normad", s, "self_consistency", 0.9, 0.85, 0.95, 71),
                         (model, "cultural_map", s, "expected_A008", 2.0, np.nan, np.nan, 1)]
                if with_map:
                    rows += [(model, "cultural_map", s, "map_x", 0.3 * k, np.nan, np.nan, 10),
                             (model, "cultural_map", s, "map_y", -0.2, np.nan, np.nan, 10)]
    return pd.DataFrame(rows, columns=["model", "task", "strategy", "metric", "value", "ci_low", "ci_high",
                                       "n_items"])


def test_figures_rebuild_byte_identically(tmp_path, mirror):
    coords = published_coordinates(mirror / "ivs_map")
    s = summary_frame(with_map=True)
    a = render_all(s, coords, CFG, tmp_path / "a")
    b = render_all(s.sample(frac=1, random_state=0), coords, CFG, tmp_path / "b")  # row order must not matter
    assert [p.name for p in a] == ["cultural_map.png", "cad.png", "accuracy.png", "robustness.png"]
    for pa, pb in zip(a, b, strict=True):
        data = pa.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        assert data == pb.read_bytes(), pa.name
        assert b"Software" not in data and b"matplotlib" not in data
    c = render_all(summary_frame(with_map=False), coords, CFG, tmp_path / "c")
    assert c[0].read_bytes() != a[0].read_bytes()  # model placement changes the map


def test_html_report(tmp_path):
    s = summary_frame(with_map=False)
    figs = render_all(s, None, CFG, tmp_path / "figures")
    prov = {"culteval_version": "0.1.0", "inputs": [
        {"path": "data/raw/normad/normad_etiquette_final_data.csv", "sha256": "c5620a99" + "0" * 56,
         "origin": "mirror"},
        {"path": "data/raw/ivs_map/ddf--entities--geo--country.csv", "sha256": "dc27b460" + "1" * 56,
         "origin": "mirror"}]}
    # the records culteval.lineage.data_inputs passes on: acquisition set each file's subset note
    inputs = [{"path": i["path"], "sha256": i["sha256"], "origin": "mirror",
               "subset": "71 India and United States stories of 2,633" if "normad" in i["path"] else None}
              for i in prov["inputs"]]
    out = build_report(s, figs, prov, inputs, tmp_path / "report.html", notes=["a <note> & more"])
    html = out.read_text()
    assert "c5620a99" + "0" * 56 in html and "dc27b460" + "1" * 56 in html
    assert "SUBSET: 71 India and United States stories of 2,633" in html
    assert "n_items" in html and '<td class="n">71</td>' in html and '<td class="n">23</td>' in html
    assert NO_MICRODATA in html
    assert "m&lt;1&gt;" in html and "m<1>" not in html and "a &lt;note&gt; &amp; more" in html
    assert "src='figures/cad.png'" in html
    # same inputs, same bytes
    again = build_report(s, figs, prov, inputs, tmp_path / "report2.html", notes=["a <note> & more"])
    assert again.read_bytes() == out.read_bytes()


def test_html_map_placed_has_no_microdata_notice(tmp_path):
    s = summary_frame(with_map=True)
    figs = render_all(s, None, CFG, tmp_path)
    html = build_report(s, figs, {}, [], tmp_path / "r.html").read_text()
    assert NO_MICRODATA not in html and "not full-benchmark" not in html
    assert "map_x" in html


@pytest.mark.parametrize("metric", ["cad", "acc_prob"])
def test_empty_sections_render(tmp_path, metric):
    s = summary_frame(with_map=False)
    s = s[s["metric"] != metric]
    figs = render_all(s, None, CFG, tmp_path)
    assert all(p.stat().st_size > 1000 for p in figs)


def test_html_warnings_and_comparisons(tmp_path):
    from culteval.report.html import warnings_frame

    s = summary_frame(with_map=False)
    extra = [("m<1>", "normad", "default", "low_mass_share", 0.25, np.nan, np.nan, 284),
             ("m<1>", "normad", "native", "low_mass_share", 0.0, np.nan, np.nan, 284),
             ("m<1>", "normad", "native", "invalid_rate_rot", 0.125, 0.0, 0.3, 71),
             ("m<1>", "normad", "native", "invalid_rate_none", 0.0, 0.0, 0.0, 71),
             ("group:global", "normad", "default", "low_mass_share", 0.25, np.nan, np.nan, 1),
             ("group:global", "global_opinions", "default", "cad", 0.1, np.nan, np.nan, 1),
             ("delta:m2-vs-m<1>", "global_opinions", "default", "cad", -0.05, np.nan, np.nan, 23)]
    s = pd.concat([s, pd.DataFrame(extra, columns=s.columns)], ignore_index=True)
    w = warnings_frame(s)
    assert w[["model", "strategy"]].values.tolist() == [["m<1>", "default"], ["m<1>", "native"]]
    assert w["low_mass_share"].tolist() == [0.25, 0.0]
    assert w["invalid_rate"].fillna(-1).tolist() == [-1, 0.125]
    assert w["invalid_metric"].iloc[1] == "invalid_rate_rot"
    figs = render_all(s, None, CFG, tmp_path / "figures")
    note = "not enough models for the mixed-effects model (need >= 4, have 1)"
    html = build_report(s, figs, {}, [], tmp_path / "r.html", notes=[note]).read_text()
    assert html.index("id='warnings'") < html.index("<h2>Cultural map")
    assert '<td class="n warn">0.125</td>' in html and '<td class="n warn">0.25</td>' in html
    assert "not enough models for the mixed-effects model (need &gt;= 4, have 1)" in html
    comp = html.split("<h2>Comparisons")[1].split("<h2>")[0]
    opinion = html.split("<h2>Opinion alignment")[1].split("<h2>")[0]
    assert "delta:m2-vs-m&lt;1&gt;" in comp and "group:global" in comp
    assert "group:global" not in opinion and "delta:" not in opinion and "m&lt;1&gt;" in opinion
    # comparison rows are tabled, not plotted: the figures do not change
    plain = render_all(summary_frame(with_map=False), None, CFG, tmp_path / "plain")
    assert figs[1].read_bytes() == plain[1].read_bytes()
