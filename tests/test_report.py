"""Report: figures rebuild byte-identically and show what they plot; the HTML is one file with
every figure embedded, and shows n_items, sha256 and subsets, escaped."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from culteval.metrics.cultural_map import NO_MICRODATA, published_coordinates
from culteval.report.figures import MIN_FONT_KEY, render_all
from culteval.report.html import build_report, png_text

# matplotlib's tab:orange / tab:blue, the colours of the target and reference points
ORANGE, BLUE = (255, 127, 14), (31, 119, 180)

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
    df = pd.DataFrame(rows, columns=["model", "task", "strategy", "metric", "value", "ci_low", "ci_high",
                                     "n_items"])
    # what each row is, as summarize sets it where it makes the row (metrics/kinds.py)
    df.insert(1, "kind", np.where(df["model"].eq("baseline:United States"), "baseline", "model"))
    return df


def pixels(data: bytes) -> np.ndarray:
    """A PNG decoded to an RGB array (height x width x 3)."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def ink(img: np.ndarray) -> float:
    """Share of pixels that are not white."""
    return float((img.min(axis=2) < 250).mean())


def colour_mask(img: np.ndarray, rgb) -> np.ndarray:
    return (np.abs(img.astype(int) - np.array(rgb)).max(axis=2) <= 12)


def embedded_images(html: str) -> list[bytes]:
    found = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    return [base64.b64decode(m) for m in found]


def test_figures_rebuild_byte_identically(tmp_path, mirror):
    coords = published_coordinates(mirror / "ivs_map")
    s = summary_frame(with_map=True)
    a = render_all(s, coords, CFG, tmp_path / "a")
    b = render_all(s.sample(frac=1, random_state=0), coords, CFG, tmp_path / "b")  # row order must not matter
    assert [p.name for p in a] == ["cultural_map.png", "cad.png", "accuracy.png", "robustness.png"]
    for pa, pb in zip(a, b, strict=True):
        data = pa.read_bytes()
        img = pixels(data)
        assert img.shape[1] == 1100 and img.shape[0] >= 150, pa.name  # drawn for the report's width
        assert 0.02 < ink(img) < 0.9, pa.name  # something is drawn, and not a solid block
        assert data == pb.read_bytes(), pa.name
        assert b"Software" not in data and b"matplotlib" not in data
        # the smallest text is 9 pt at 100 dpi, recorded for the report
        assert png_text(data) == {MIN_FONT_KEY: "12.50"}, pa.name
    c = render_all(summary_frame(with_map=False), coords, CFG, tmp_path / "c")
    assert c[0].read_bytes() != a[0].read_bytes()  # model placement changes the map


def test_figures_record_their_smallest_text(tmp_path):
    """The recorded size is the smallest visible text's, whichever artist carries it."""
    from culteval.report.figures import _figure, _save

    fig = _figure(3.0)
    ax = fig.add_subplot()
    ax.set_title("large", fontsize=14)
    ax.annotate("small", (0.5, 0.5), fontsize=6)
    ax.annotate("hidden", (0.2, 0.2), fontsize=3).set_visible(False)
    assert png_text(_save(fig, tmp_path / "f.png").read_bytes()) == {MIN_FONT_KEY: "8.33"}  # 6 pt at 100 dpi


def test_accuracy_chart_places_each_country_by_its_value(tmp_path):
    """A dot per country on the accuracy axis: the target's (orange) left of the reference's (blue)."""
    cols = ["model", "kind", "task", "strategy", "metric", "value", "ci_low", "ci_high", "n_items"]
    s = pd.DataFrame([("m", "model", "culturalbench", "default", "acc_prob_target", 0.1, 0.05, 0.15, 46),
                      ("m", "model", "culturalbench", "default", "acc_prob_reference", 0.9, 0.85, 0.95, 20)],
                     columns=cols)
    img = pixels(render_all(s, None, CFG, tmp_path)[2].read_bytes())
    orange, blue = np.argwhere(colour_mask(img, ORANGE)), np.argwhere(colour_mask(img, BLUE))
    body = img.shape[0] * 0.25  # below the legend, which shows both colours at the top
    orange, blue = orange[orange[:, 0] > body], blue[blue[:, 0] > body]
    assert len(orange) > 10 and len(blue) > 10
    assert orange[:, 1].mean() < blue[:, 1].mean() - 100  # 0.1 vs 0.9 on a ~250 px wide panel


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
    # one file: every figure embedded, byte for byte, in report order; nothing linked
    assert embedded_images(html) == [f.read_bytes() for f in figs]
    assert "figures/" not in html and "href=" not in html
    assert not re.search(r"""(src|url)\(?=?["']?(https?:|//)""", html)
    assert not re.search(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d", html)  # no timestamp
    # the page opens with the claims, before the notes and warnings; each claim with its verdict
    # (here from the data: no respondent comparison, one group, no base, no consistency rows)
    claims = html.split('<h2 id="claims">')[1].split('<p class="note">')[0]
    assert html.index('<h2 id="claims">') < html.index("a &lt;note&gt;") < html.index('<h2 id="warnings">')
    assert claims.count('<span class="verdict not-testable">not testable</span>') == 5
    assert "no INDICA region-agnostic rows in this run" in claims
    assert "no regional (Indic) and global model in this run (groups present: none)" in claims
    # same inputs, same bytes
    again = build_report(s, figs, prov, inputs, tmp_path / "report2.html", notes=["a <note> & more"])
    assert again.read_bytes() == out.read_bytes()


def test_html_map_placed_has_no_microdata_notice(tmp_path):
    s = summary_frame(with_map=True)
    figs = render_all(s, None, CFG, tmp_path)
    html = build_report(s, figs, {}, [], tmp_path / "r.html").read_text()
    assert NO_MICRODATA not in html and "not full-benchmark" not in html
    assert "map_x" in html


def test_cultural_map_shows_target_and_reference(tmp_path):
    # four corners: India top right, the United States bottom left
    coords = pd.DataFrame({"geo": ["a", "india", "united_states", "z"], "name": ["A", "India", "USA", "Z"],
                           "year": 2022, "x": [-2.0, 2.0, -2.0, 2.0], "y": [2.0, 2.0, -2.0, -2.0]})
    s = summary_frame(with_map=False)
    img = pixels(render_all(s, coords, CFG, tmp_path / "a")[0].read_bytes())
    h, w = img.shape[:2]
    orange, blue = np.argwhere(colour_mask(img, ORANGE)), np.argwhere(colour_mask(img, BLUE))
    assert len(orange) > 20 and len(blue) > 20  # each point is a filled disc, not a stray pixel
    assert orange[:, 0].mean() < h / 2 < blue[:, 0].mean()  # rows: India above the US
    assert blue[:, 1].mean() < w / 2 < orange[:, 1].mean()  # columns: India right of the US
    # a target the published map does not know is not drawn
    cfg = {**CFG, "target": {"country": "Atlantis"}}
    img = pixels(render_all(s, coords, cfg, tmp_path / "b")[0].read_bytes())
    assert colour_mask(img, ORANGE).sum() == 0 and colour_mask(img, BLUE).sum() > 20


@pytest.mark.parametrize(("metrics", "index"), [(["cad", "ncad"], 1), (["acc_prob", "acc_prob_value"], 2)])
def test_empty_sections_render(tmp_path, metrics, index):
    full = render_all(summary_frame(with_map=False), None, CFG, tmp_path / "full")
    s = summary_frame(with_map=False)
    s = s[~s["metric"].isin(metrics)]
    figs = render_all(s, None, CFG, tmp_path / "empty")
    img, before = pixels(figs[index].read_bytes()), pixels(full[index].read_bytes())
    assert img.shape[1] == before.shape[1]
    # only a one-line message remains where dots and intervals were drawn
    assert 0 < ink(img) < 0.02 < ink(before), (ink(img), ink(before))


def test_html_warnings_and_comparisons(tmp_path):
    from culteval.report.html import warnings_frame

    s = summary_frame(with_map=False)
    extra = [("m<1>", "model", "normad", "default", "low_mass_share", 0.25, np.nan, np.nan, 284),
             ("m<1>", "model", "normad", "native", "low_mass_share", 0.0, np.nan, np.nan, 284),
             ("m<1>", "model", "normad", "native", "invalid_rate_rot", 0.125, 0.0, 0.3, 71),
             ("m<1>", "model", "normad", "native", "invalid_rate_none", 0.0, 0.0, 0.0, 71),
             ("group:global", "group", "normad", "default", "low_mass_share", 0.25, np.nan, np.nan, 1),
             ("group:global", "group", "global_opinions", "default", "cad", 0.1, np.nan, np.nan, 1),
             ("delta:m2-vs-m<1>", "comparison", "global_opinions", "default", "cad", -0.05, np.nan, np.nan,
              23)]
    s = pd.concat([s, pd.DataFrame(extra, columns=s.columns)], ignore_index=True)
    w = warnings_frame(s)
    assert w[["model", "strategy"]].values.tolist() == [["m<1>", "default"], ["m<1>", "native"]]
    assert w["low_mass_share"].tolist() == [0.25, 0.0]
    assert w["invalid_rate"].fillna(-1).tolist() == [-1, 0.125]
    assert w["invalid_metric"].iloc[1] == "invalid_rate_rot"
    figs = render_all(s, None, CFG, tmp_path / "figures")
    note = "not enough models for the mixed-effects model (need >= 4, have 1)"
    html = build_report(s, figs, {}, [], tmp_path / "r.html", notes=[note]).read_text()
    assert html.index('<h2 id="warnings">') < html.index('<h2 id="cultural_map">Cultural map')
    assert '<td class="n warn">0.125</td>' in html and '<td class="n warn">0.25</td>' in html
    assert "not enough models for the mixed-effects model (need &gt;= 4, have 1)" in html
    comp = html.split('<h2 id="comparisons">')[1].split("<h2")[0]
    opinion = html.split('<h2 id="cad">')[1].split("<h2")[0]
    assert "delta:m2-vs-m&lt;1&gt;" in comp and "group:global" in comp
    assert "group:global" not in opinion and "delta:" not in opinion and "m&lt;1&gt;" in opinion
    # comparison rows are tabled, not plotted: the figures do not change
    plain = render_all(summary_frame(with_map=False), None, CFG, tmp_path / "plain")
    assert figs[1].read_bytes() == plain[1].read_bytes()


def test_report_refuses_a_figure_it_cannot_embed(tmp_path):
    s = summary_frame(with_map=False)
    bad = tmp_path / "cad.png"
    bad.write_text("<svg/>")  # not a PNG, whatever its name says
    with pytest.raises(ValueError, match=r"cad\.png: not a PNG file"):
        build_report(s, [bad], {}, [], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_paper_tables_place_each_number_with_its_items_and_flags(tmp_path):
    """Practices by model x strategy x country, opinions with baselines, comparisons with p-values:
    each number in its column, with n and its flag letters, the letters spelled out in the caption."""
    from culteval.report.tables import paper_tables

    cols = ["model", "task", "strategy", "metric", "value", "ci_low", "ci_high", "n_items", "flags", "kind"]
    rows = [("m", "culturalbench", "default", "acc_prob_target", 0.61, 0.5, 0.7, 46, "subset", "model"),
            ("m", "culturalbench", "default", "acc_prob_reference", 0.72, 0.6, 0.8, 20, "subset", "model"),
            ("m", "culturalbench", "default", "acc_prob", 0.64, 0.55, 0.73, 66, "subset", "model"),
            ("m", "culturalbench", "native", "acc_prob_target", 0.41, 0.3, 0.5, 46,
             "subset;machine_translated", "model"),
            ("m", "culturalbench", "default", "acc_question_reference", 0.25, 0.1, 0.4, 20, "subset",
             "model"),
            ("m", "culturalbench", "default", "invalid_rate", 0.0, 0.0, 0.0, 66, "subset", "model"),
            ("m", "global_opinions", "default", "sim_target", 0.8, 0.7, 0.9, 67, "", "model"),
            ("m", "global_opinions", "default", "ncad", 0.3, 0.1, 0.5, 7, "ncad-assumption", "model"),
            ("baseline:United States", "global_opinions", "none", "sim_target", 0.9, 0.8, 1.0, 7, "",
             "baseline"),
            # true by construction: the respondents compared with themselves, no interval
            ("baseline:United States", "global_opinions", "none", "sim_reference", 1.0, np.nan, np.nan, 7, "",
             "reference"),
            # a comparison of Sim is not a model's Sim: never in the opinions table
            ("delta:m-vs-baseline:United States", "global_opinions", "default", "sim_target", -0.1, -0.2,
             -0.01, 7, "", "comparison"),
            ("delta:m-vs-b", "culturalbench", "default", "acc_prob", 0.05, -0.01, 0.11, 66, "subset",
             "comparison"),
            ("delta:m-vs-b", "culturalbench", "default", "acc_prob:p_permutation", 0.031, np.nan, np.nan, 66,
             "subset", "comparison"),
            ("delta:m-vs-b", "culturalbench", "default", "acc_prob:p_sign", 0.2, np.nan, np.nan, 66,
             "subset", "comparison"),
            ("group:global", "culturalbench", "default", "acc_prob", 0.64, np.nan, np.nan, 1, "subset",
             "group")]
    s = pd.DataFrame(rows, columns=cols)
    t = paper_tables(s, {"target": "India", "reference": "United States"})
    (cb,) = t["practices"]
    assert [h["metric"] for h in cb["header"][0]] == ["acc_prob", "acc_question"]  # Easy before Hard
    assert [h["label"] for h in cb["header"][1]] == ["India", "United States", "both countries",
                                                     "United States"]
    by_key = {tuple(r["key"]): r["cells"] for r in cb["rows"]}
    assert [c["value"] for c in by_key[("m", "default")]] == ["0.61", "0.72", "0.64", "0.25"]
    assert [c["n"] for c in by_key[("m", "default")]] == [46, 20, 66, 20]
    native = by_key[("m", "native")][0]
    assert (native["value"], native["marks"]) == ("0.41", "T S")
    assert native["flags"] == "machine_translated; subset"
    assert [e["flag"] for e in cb["legend"]] == ["subset", "machine_translated"]
    op = {tuple(r["key"]): r["cells"] for r in t["opinions"]["rows"]}
    assert op[("baseline:United States", "none")][0]["n"] == 7
    assert op[("m", "default")][2]["marks"] == "A"  # nCAD rests on the documented assumption
    assert sorted(op) == [("baseline:United States", "none"), ("m", "default")]  # no delta row
    ref = op[("baseline:United States", "none")][1]
    assert (ref["value"], ref["ci"]) == ("1", "")  # a reference value: no interval
    # differences only: the plain group mean is not a comparison
    comp = {tuple(r["key"]): r for r in t["comparisons"]["rows"]}
    assert sorted(comp) == [("delta:m-vs-b", "culturalbench", "default", "acc_prob"),
                            ("delta:m-vs-baseline:United States", "global_opinions", "default", "sim_target")]
    comp = comp[("delta:m-vs-b", "culturalbench", "default", "acc_prob")]
    assert comp["cell"]["ci"] == "[-0.01, 0.11]" and comp["p"] == ["0.031", "0.2", ""]  # no p (models)
    assert comp["scope"] == "these models (items resampled)"
    figs = render_all(s, None, CFG, tmp_path / "figures")
    prov = {"params": {"target": {"country": "India"}, "reference": {"country": "United States"}}}
    html = build_report(s, figs, prov, [], tmp_path / "r.html").read_text()
    tables = html.split('<h2 id="tables">')[1].split('<h2 id="cultural_map">')[0]
    flagged = ('0.41<sup class="flag" title="machine_translated; subset">T S</sup>'
               '<span class="items"> n=46</span>')
    assert flagged in tables
    assert "<b>T</b> machine_translated: the prompts show strings machine-translated" in tables
    assert "<th colspan=\"1\">United States</th>" in tables  # the run's countries head the columns
    assert "<td>delta:m-vs-b</td>" in tables and '<td class="n">0.031</td>' in tables
    # the figures' captions and the long tables carry the flags too
    assert "<figcaption>Accuracy (CulturalBench, NormAd, BLEnD): the numbers in the table below it. Flags: " \
           "<b>S</b> subset" in html
    assert "<td>machine_translated; subset</td>" in html.split('<h2 id="all-metrics">')[1]
