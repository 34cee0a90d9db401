"""Report: figures rebuild byte-identically; the HTML shows n_items, sha256 and subsets, escaped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from culteval.metrics.cultural_map import NO_MICRODATA, published_coordinates
from culteval.report.figures import render_all
from culteval.report.html import build_report, inputs_from_provenance

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
    inputs = inputs_from_provenance(prov, CFG)
    assert [i["subset"] for i in inputs] == [None, "71 India and United States stories of 2,633"]
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
