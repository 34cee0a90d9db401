"""The report in a real browser (Debian Chromium via playwright): opened from file:// with the
network blocked, it shows every section, the n_items column and decoded figures, and asks for
nothing outside itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_report import CFG, summary_frame

from culteval.metrics.cultural_map import published_coordinates
from culteval.report.figures import render_all
from culteval.report.html import SECTIONS, build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# a quiet, offline browser: no GPU, no sandbox (tests may run as root), no background fetches
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
HEADINGS = ["Warnings", "Tables (the paper's layout)", *(title for title, _ in SECTIONS.values()),
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
            first = page.locator("img").first
            widths = [first.bounding_box()["width"]]
            first.click()  # a click shows the figure at full size
            widths.append(first.bounding_box()["width"])
        finally:
            browser.close()
    assert [i["alt"] for i in images] == [title for title, _ in SECTIONS.values()]
    # decoded, whole and not blank (the PNGs are 800 px wide, 500 or 1000 high)
    assert all(i["w"] == 800 and i["h"] in (500, 1000) for i in images), images
    assert all(i["transparent"] == 0 and i["ink"] > 0.02 * i["w"] * i["h"] for i in images), images
    assert visible == dict.fromkeys(HEADINGS, True)
    assert n_items == [True] * len(SECTIONS)
    assert widths == [480, 800]
    assert external == []
    # the page itself and nothing else (data: URIs are decoded in place, not fetched)
    assert [u for u in requested if not u.startswith("data:")] == [report.as_uri()]
