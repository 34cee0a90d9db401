"""The report in a real browser (Debian Chromium via playwright): opened from file:// with the
network blocked, it shows every section, the n_items column and decoded figures, and asks for
nothing outside itself; at 1280 px no figure's text is shown smaller than the page's small print
and nothing runs off the page (wide tables scroll inside their section).

``CULTEVAL_REPORT_HTML=<report.html>`` checks that report's layout instead of the one built here
(e.g. a published report)."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report import CFG, summary_frame

from culteval.metrics.cultural_map import published_coordinates
from culteval.report.figures import render_all
from culteval.report.html import SECTIONS, build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# a quiet, offline browser: no GPU, no sandbox (tests may run as root), no background fetches
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
# the synthetic summary has no INDICA rows, so no "Regions of India" figure (it is drawn only with them)
SHOWN = {key: section for key, section in SECTIONS.items() if key != "regions"}
HEADINGS = ["Warnings", "Tables (the paper's layout)", *(title for title, _ in SHOWN.values()),
            "Comparisons", "Inputs",
            "All metrics", "Provenance"]

# Per <img>: its natural size and, drawn onto a canvas, how many pixels are transparent (rows a
# truncated PNG never delivered; a matplotlib figure is opaque) and how many are not white.
DECODE = """async () => Promise.all(Array.from(document.images, async i => {
    await i.decode().catch(() => null);
    const c = document.createElement("canvas");
    c.width = i.naturalWidth; c.height = i.naturalHeight;
    let transparent = -1, ink = 0;
    if (c.width > 0) {
        const ctx = c.getContext("2d");
        ctx.drawImage(i, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        transparent = 0;
        for (let k = 0; k < d.length; k += 4) {
            if (d[k + 3] < 255) transparent++;
            else if (Math.min(d[k], d[k + 1], d[k + 2]) < 250) ink++;
        }
    }
    return {alt: i.alt, w: i.naturalWidth, h: i.naturalHeight, transparent, ink};
}))"""

VIEWPORT = {"width": 1280, "height": 900}
MIN_TEXT_PX = 11  # the page's small print (captions, n=): no figure text is shown smaller
# At the page's width: how wide the page is, every element whose right edge passes the viewport
# outside a scrolling container that itself fits (a wide table scrolls inside its section), and
# per <img> its natural and shown width and the smallest text's height its figure recorded.
LAYOUT = """() => {
    const vw = document.documentElement.clientWidth;
    const contained = el => {
        for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
            const o = getComputedStyle(a).overflowX;
            if (["auto", "scroll", "hidden"].includes(o)) return a.getBoundingClientRect().right <= vw + 0.5;
        }
        return false;
    };
    const overflow = [];
    for (const el of document.body.querySelectorAll("*")) {
        const r = el.getBoundingClientRect();
        if (r.width > 0 && r.right > vw + 0.5 && !contained(el))
            overflow.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} "${
                (el.textContent || "").trim().slice(0, 40)}" ends at ${Math.round(r.right)} px`);
    }
    const figures = Array.from(document.images, i => ({alt: i.alt, natural: i.naturalWidth,
        shown: i.getBoundingClientRect().width, minFontPx: i.dataset.minFontPx ?? null}));
    return {scrollWidth: document.documentElement.scrollWidth, clientWidth: vw, overflow, figures};
}"""

pytestmark = [pytest.mark.slow,  # starting a browser takes seconds
              pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: `make chromium` installs it")]


@pytest.fixture(scope="module")
def report(tmp_path_factory, mirror) -> Path:
    """A report built from a synthetic summary, alone in its folder (its figures deleted)."""
    tmp = tmp_path_factory.mktemp("browser")
    s = summary_frame(with_map=True)
    figs = render_all(s, published_coordinates(mirror / "ivs_map"), CFG, tmp / "figures")
    inputs = [{"path": "data/raw/normad/x.csv", "sha256": "ab" * 32, "subset": "71 of 2,633"}]
    out = build_report(s, figs, {"culteval_version": "0"}, inputs, tmp / "mail" / "report.html")
    shutil.rmtree(tmp / "figures")  # a mailed report has nothing beside it
    return out


MODELS = ("gemma-3-270m", "smollm2-135m-instruct-with-a-long-name")
STRATEGIES = ("cross_lingual", "default", "demographic", "native")
PRACTICE = {"culturalbench": ("acc_prob", "acc_sampled", "acc_question", "acc_question_sampled",
                              "acc_judgement", "acc_judgement_sampled"),
            "normad": tuple(f"acc_{m}_{c}" for c in ("none", "country", "value", "rot")
                            for m in ("prob", "sampled"))}


def wide_summary() -> pd.DataFrame:
    """A run's worth of rows: every practice measure x country for two models x four strategies
    (the widest tables), comparison rows with long names, flags on every row."""
    base = summary_frame(with_map=True)
    rng = np.random.default_rng(0)
    rows = []
    for model, strategy in itertools.product(MODELS, STRATEGIES):
        for task, measures in PRACTICE.items():
            for measure, country in itertools.product(measures, ("_target", "_reference", "")):
                v = rng.uniform(0.1, 0.9)
                rows.append((model, "model", task, strategy, measure + country, v, v - 0.1, v + 0.1, 40))
            rows += [(model, "model", task, strategy, "position_bias", 0.2, 0.1, 0.3, 40),
                     (model, "model", task, strategy, "self_consistency", 0.8, 0.7, 0.9, 40)]
        rows.append((model, "model", "global_opinions", strategy, "cad", 0.1, -0.05, 0.2, 7))
        rows.append((f"delta:{model}-vs-baseline:United States", "comparison", "global_opinions", strategy,
                     "cad", 0.3, 0.1, 0.5, 7))
    extra = pd.DataFrame(rows, columns=base.columns)
    flags = "machine_translated;ncad-assumption;subset"
    return pd.concat([base, extra], ignore_index=True).assign(flags=flags)


def layout_problems(report: Path, screenshot: Path) -> list[str]:
    """What a reader of ``report`` at 1280 px cannot read or cannot see (empty: none); a full-page
    screenshot goes to ``screenshot``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # scrollbars as a reader sees them: the page's own takes its width from the window
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS,
                                    ignore_default_args=["--hide-scrollbars"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.route("http://**/*", lambda route: route.abort())
            page.route("https://**/*", lambda route: route.abort())
            page.goto(report.as_uri(), wait_until="load")
            page.evaluate("Promise.all(Array.from(document.images, i => i.decode().catch(() => null)))")
            layout = page.evaluate(LAYOUT)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    problems = []
    if layout["scrollWidth"] > layout["clientWidth"]:
        problems.append(f"the page is {layout['scrollWidth']} px wide in a {layout['clientWidth']} px window")
    if layout["overflow"]:
        problems.append(f"{len(layout['overflow'])} elements run off the page, e.g. "
                        + "; ".join(layout["overflow"][:3]))
    for f in layout["figures"]:
        if f["minFontPx"] is None:
            problems.append(f"figure {f['alt']!r} does not record its smallest text (data-min-font-px)")
            continue
        shown = float(f["minFontPx"]) * f["shown"] / f["natural"]
        if shown < MIN_TEXT_PX:
            problems.append(f"figure {f['alt']!r}: its smallest text is shown {shown:.1f} px high "
                            f"(< {MIN_TEXT_PX} px; {f['natural']} px wide, shown at {f['shown']:.0f} px)")
    return problems


@pytest.fixture(scope="module")
def wide_report(tmp_path_factory, mirror) -> Path:
    """A report as wide as a real run's (``CULTEVAL_REPORT_HTML``: that report instead)."""
    if os.environ.get("CULTEVAL_REPORT_HTML"):
        return Path(os.environ["CULTEVAL_REPORT_HTML"]).resolve()
    tmp = tmp_path_factory.mktemp("wide")
    s = wide_summary()
    figs = render_all(s, published_coordinates(mirror / "ivs_map"), CFG, tmp / "figures")
    inputs = [{"path": f"data/raw/normad/{'long-' * 12}x.csv", "sha256": "ab" * 32, "subset": "71 of 2,633"}]
    prov = {"params": {"target": {"country": "India"}, "reference": {"country": "United States"}},
            "inputs": [{"path": "data/raw/" + "x" * 300, "sha256": "cd" * 32}]}  # a long unbroken line
    return build_report(s, figs, prov, inputs, tmp / "report.html")


def test_report_reads_at_1280_px(wide_report, tmp_path_factory):
    """Every figure's text at least the page's small print, nothing past the page's right edge."""
    shot = tmp_path_factory.mktemp("screenshots") / "report-1280.png"
    problems = layout_problems(wide_report, shot)
    print(f"screenshot of {wide_report} at 1280 px: {shot}")
    assert problems == [], "\n".join(problems)


def test_report_in_chromium(report):
    from playwright.sync_api import sync_playwright

    external, requested = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: requested.append(r.url))

            def block(route):
                external.append(route.request.url)
                route.abort()

            page.route("http://**/*", block)
            page.route("https://**/*", block)
            page.goto(report.as_uri(), wait_until="load")
            images = page.evaluate(DECODE)
            visible = {h: page.get_by_role("heading", name=h).first.is_visible() for h in HEADINGS}
            sections = page.locator("section")
            n_items = [sections.nth(k).locator("th", has_text="n_items").first.is_visible()
                       for k in range(sections.count())]
            widths = [b["width"] for b in (page.locator("img").nth(k).bounding_box()
                                          for k in range(len(images)))]
        finally:
            browser.close()
    assert [i["alt"] for i in images] == [title for title, _ in SHOWN.values()]
    # decoded, whole and not blank (the PNGs are drawn 1100 px wide for the page)
    assert all(i["w"] == 1100 and i["h"] >= 150 for i in images), images
    assert all(i["transparent"] == 0 and i["ink"] > 0.02 * i["w"] * i["h"] for i in images), images
    assert visible == dict.fromkeys(HEADINGS, True)
    assert n_items == [True] * len(SHOWN)
    assert widths == [1100] * len(images)  # shown at their natural size in the default window
    assert external == []
    # the page itself and nothing else (data: URIs are decoded in place, not fetched)
    assert [u for u in requested if not u.startswith("data:")] == [report.as_uri()]


def test_item_page_filters_by_the_links_model_and_strategy(tmp_path):
    """An item page opened from a report link (#model=..&strategy=..) shows that run's answers only;
    the "not parsed" filter keeps the runs with invalid answers; nothing is fetched."""
    from playwright.sync_api import sync_playwright
    from test_report_items import STRATEGY, TASK, _artifacts

    from culteval.config import load_params
    from culteval.report.items import TaskArtifacts, write_items_pages

    items, prompts, raw = _artifacts(load_params("params.yaml"))
    clean = raw.assign(parsed=raw["parsed"].where(raw["trial"] < 1, None))  # gemma: no sampled answers kept
    clean = clean[clean["trial"] < 1]
    art = TaskArtifacts(culture="hi", task=TASK, items=items, prompts={STRATEGY: prompts},
                        raw={("smollm2", STRATEGY): raw, ("gemma", STRATEGY): clean})
    (name,) = write_items_pages([art], tmp_path).values()
    page_path = tmp_path / name
    requested = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.on("request", lambda r: requested.append(r.url))
            page.goto(page_path.as_uri(), wait_until="load")
            runs = "Array.from(document.querySelectorAll('details.run'), d => [d.dataset.model, !d.hidden])"
            every = page.evaluate(runs)
            page.goto(page_path.as_uri() + "#model=smollm2&strategy=" + STRATEGY, wait_until="load")
            page.reload(wait_until="load")  # a hash change alone does not reload the page
            linked = page.evaluate(runs)
            page.select_option("#model", "")
            page.check("#invalid")
            invalid = page.evaluate(runs)
            count = page.inner_text("#count")
        finally:
            browser.close()
    assert sorted({m for m, shown in every if shown}) == ["gemma", "smollm2"]
    assert {m for m, shown in linked if shown} == {"smollm2"} and any(s for m, s in linked if m == "smollm2")
    assert {m for m, shown in invalid if shown} == {"smollm2"}  # gemma's answers all parsed
    assert count == f"{len(items)} items shown"
    assert {u.split("#")[0] for u in requested} == {page_path.as_uri()}  # the page and nothing else
