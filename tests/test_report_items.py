"""Item pages: from a summary row of the report to the items it rests on, each with the prompt as
the model saw it in each answer order, the options, the countries' answers, the model's option
distribution and its sampled answers, parsed or with the reason they were not."""

from __future__ import annotations

import html as htmllib
import json
import re

import pandas as pd
from test_recompute import synthetic_items, write_items, write_raw

from culteval import cli, provenance
from culteval.config import load_params
from culteval.io import sha256_file, write_parquet
from culteval.prompts import render
from culteval.report.items import TaskArtifacts, invalid_reason, render_items_page

CULTURE, TASK, STRATEGY = "hi", "culturalbench", "default"
# per prompt: the first sampled answer names the gold option's label, then two that do not parse
ANSWERS = ("{label}", "मुझे नहीं पता", "")


def _artifacts(cfg: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Two CulturalBench items, their prompts as the render stage writes them and one model's raw
    outputs for those very prompts."""
    import numpy as np

    items = synthetic_items(np.random.default_rng(0))[TASK]
    items = items[items["item_id"].isin(["culturalbench/easy/0000", "culturalbench/easy/0001"])]
    items = items.assign(question=["Which dish <b>is</b> eaten at Onam?", "Who greets with namaste?"],
                         distributions=['{"India": [0.5, 0.25, 0.125, 0.125]}', "{}"])
    items = items.reset_index(drop=True)
    prompts = render(items, STRATEGY, cfg, translations=None, mode="both")
    rows = []
    for p in prompts.itertuples(index=False):
        gold = list(items.set_index("item_id").loc[p.item_id, "options"]).index(
            items.set_index("item_id").loc[p.item_id, "answer"])
        label = p.labels[list(p.option_order).index(gold)]
        rows.append({"prompt_id": p.prompt_id, "item_id": p.item_id, "permutation": p.permutation,
                     "trial": -1, "probs": [0.625, 0.125, 0.125, 0.125],
                     "option_mass": 0.05 if p.permutation else 0.9, "generated": None, "parsed": None,
                     "n_prompt_tokens": 30})
        for t, text in enumerate(ANSWERS):
            rows.append({"prompt_id": p.prompt_id, "item_id": p.item_id, "permutation": p.permutation,
                         "trial": t, "probs": None, "option_mass": None,
                         "generated": text.format(label=label), "parsed": gold if t == 0 else -1,
                         "n_prompt_tokens": 30})
    return items, prompts, pd.DataFrame(rows).sort_values(["prompt_id", "trial"]).reset_index(drop=True)


def test_item_page_shows_prompts_distributions_and_why_answers_were_not_parsed():
    cfg = load_params("params.yaml")
    items, prompts, raw = _artifacts(cfg)
    art = TaskArtifacts(culture=CULTURE, task=TASK, items=items, prompts={STRATEGY: prompts},
                        raw={("smollm2", STRATEGY): raw}, flags={("smollm2", STRATEGY): "subset"},
                        low_mass=0.1)
    page = render_items_page(art)
    assert page == render_items_page(art)  # same artifacts, same bytes
    text = htmllib.unescape(page)
    # every prompt as the model saw it, in each answer order, escaped
    for p in prompts.itertuples(index=False):
        assert f"<pre>{p.text}</pre>" in text and p.prompt_id in text
    assert "<b>is</b>" not in page and "&lt;b&gt;is&lt;/b&gt;" in page
    assert prompts["permutation"].nunique() == 2  # two answer orders per item
    # the survey's shares per country, the gold option, the model's distribution per order
    assert "<th>India</th>" in page and '<td class="n">0.125</td>' in page and "✓" in page
    assert '<td class="n low">0.05</td>' in page and '<td class="n">0.9</td>' in page
    # sampled answers: the parsed label, and each unparsed one with its text and its reason
    first = prompts.iloc[0]
    invalid = [m for m in re.findall(r'<tr class="invalid">(.*?)</tr>', text, re.S)]
    assert len(invalid) == 2 * len(prompts)
    assert sum("<pre>मुझे नहीं पता</pre>" in row for row in invalid) == len(prompts)
    assert all(invalid_reason("मुझे नहीं पता", list(first.labels), []) in row or "empty answer" in row
               for row in invalid)
    assert "no answer label (A, B, C, D) at its start" in text
    assert "4 sampled answers" not in text and "6 sampled answers, 4 not parsed" in text
    # the run's flags, and the filters the report's links preset; nothing fetched
    assert '<span class="flag">subset</span>' in page and "location.hash" in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)


def test_report_command_links_each_summary_row_to_its_item_page(tmp_path, mirror):
    """`culteval report --items --prompts`: a page per culture x task under items/, and the
    summary rows of that task link to it with their model and strategy selected."""
    cfg = load_params("params.yaml")
    items, prompts, raw = _artifacts(cfg)
    item_path = write_items(items, tmp_path / "data" / "items" / CULTURE / f"{TASK}.parquet", CULTURE,
                            TASK)
    prompt_path = tmp_path / "data" / "prompts" / CULTURE / TASK / f"{STRATEGY}.parquet"
    identity = provenance.identity("prompts", culture=CULTURE, task=TASK, strategy=STRATEGY)
    write_parquet(prompts, prompt_path, {"identity": identity})
    raw_path = tmp_path / "results" / "raw" / CULTURE / "smollm2" / TASK / f"{STRATEGY}.parquet"
    write_raw(raw, raw_path, CULTURE, "smollm2", TASK, STRATEGY, item_path)
    cols = ["culture", "model", "kind", "task", "strategy", "metric", "value", "ci_low", "ci_high", "n_items",
            "flags"]
    summary = pd.DataFrame([
        (CULTURE, "smollm2", "model", TASK, STRATEGY, "acc_sampled", 0.0, 0.0, 0.0, 2, "subset"),
        (CULTURE, "smollm2", "model", TASK, STRATEGY, "invalid_rate", 0.667, 0.5, 0.8, 2, "subset"),
        # the report's language table needs an opinion row (a run without any fails)
        (CULTURE, "smollm2", "model", "global_opinions", STRATEGY, "alignment", 0.2, None, None, 7, "")],
        columns=cols)
    summary.to_csv(tmp_path / "summary.csv", index=False)
    # the metrics stage's record of what it wrote, which the report checks the summary against
    (tmp_path / "provenance.json").write_text(json.dumps(
        {"outputs": {"summary.csv": sha256_file(tmp_path / "summary.csv")}}))
    out = tmp_path / "results"
    assert cli.main(["report", "--summary", str(tmp_path / "summary.csv"), "--raw", str(raw_path),
                     "--items", str(item_path), "--prompts", str(prompt_path), "--raw-root", str(mirror),
                     "--out-dir", str(out)]) == 0
    page = (out / "items" / f"{CULTURE}-{TASK}.html").read_text()
    assert "Which dish &lt;b&gt;is&lt;/b&gt; eaten at Onam?" in page and "मुझे नहीं पता" in page
    report = (out / "report.html").read_text()
    link = f'<a href="items/{CULTURE}-{TASK}.html#model=smollm2&amp;strategy={STRATEGY}">items</a>'
    all_metrics = report.split('<h2 id="all-metrics">')[1]
    assert all_metrics.count(link) == 2  # both rows of the task
