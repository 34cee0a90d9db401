"""BLEnD short answers: items from the annotations, free-text answers scored against annotators."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import default_params

from culteval import tasks
from culteval.config import ROOT, load_params
from culteval.tasks import blend


@pytest.fixture(scope="module")
def cfg() -> dict:
    return default_params()


def _annotated(mirror, region: str) -> dict:
    """Questions with an English question and at least one English annotator answer (read directly)."""
    data = json.loads((mirror / "blend" / f"{region}_data.json").read_text(encoding="utf-8"))
    return {qid: q for qid, q in data.items()
            if q.get("en_question") and any(a.get("en_answers") for a in q.get("annotations", []))}


def test_items_come_from_both_regions_with_upstream_ids(mirror, cfg):
    cfg = json.loads(json.dumps(cfg))
    cfg["tasks"]["blend"].update(limit=None, itemset=None)
    items = blend.load_items(mirror, cfg)
    want = {("India", f"blend/Assam/{q}") for q in _annotated(mirror, "Assam")}
    want |= {("United States", f"blend/US/{q}") for q in _annotated(mirror, "US")}
    assert set(zip(items["country"], items["item_id"], strict=True)) == want
    row = items.set_index("item_id").loc["blend/US/Al-en-01"]
    assert row["question"] == "What is a common snack for preschool kids in US?"
    assert list(row["options"]) == []
    refs = [a for ann in json.loads(row["meta"])["annotations"] for a in ann["en_answers"]]
    assert "fruit" in refs and "PB&J" in refs


def test_limit_counts_questions_per_country(mirror, cfg):
    cfg = json.loads(json.dumps(cfg))
    cfg["tasks"]["blend"].update(limit=50, itemset=None)
    items = blend.load_items(mirror, cfg)
    assert items.groupby("country").size().to_dict() == {"India": 50, "United States": 50}
    assert items["item_id"].tolist() == sorted(items["item_id"])


@pytest.mark.parametrize(("answer", "refs", "expected"), [
    ("Fruit.", ["fruit"], True),
    ("peanut butter and jelly sandwiches", ["PB&J", "peanut butter and jelly"], True),
    ("PB&J", ["pb&j"], True),
    ("grapefruit", ["fruit"], False),          # whole words only
    ("", ["fruit"], False),
    (None, ["fruit"], False),
    ("Rice with milk", ["rice with milk", "snacks"], True),
])
def test_answer_matches_a_reference(answer, refs, expected):
    assert blend.matches(answer, refs) is expected


def test_metrics_per_country_and_invalid_rate():
    cfg = {"target": {"country": "India"}, "reference": {"country": "United States"},
           "metrics": {"bootstrap": 20, "ci": 0.95}, "seed": 1}
    meta = lambda answers: json.dumps({"annotations": [{"en_answers": answers, "count": 2}]})  # noqa: E731
    items = pd.DataFrame({"item_id": ["blend/Assam/1", "blend/US/1", "blend/US/2"],
                          "country": ["India", "United States", "United States"],
                          "meta": [meta(["pitha"]), meta(["fruit"]), meta(["pretzels"])]})
    raw = pd.DataFrame({"item_id": ["blend/Assam/1"] * 2 + ["blend/US/1"] * 2 + ["blend/US/2"] * 2,
                        "trial": [0, 1] * 3,
                        "generated": ["Pitha", "rice", "fruit", "Fruit!", "", "chips"]})
    rows = {r["metric"]: r for r in blend.blend_metrics(items, {}, raw, cfg)}
    assert rows["acc_sampled_target"]["value"] == pytest.approx(0.5)
    assert rows["acc_sampled_target"]["n_items"] == 1
    assert rows["acc_sampled_reference"]["value"] == pytest.approx((1 + 0) / 2)
    assert rows["invalid_rate"]["value"] == pytest.approx((0 + 0 + 0.5) / 3)


def test_declared_as_a_generation_task_in_english_only():
    task = tasks.get("blend")
    assert task.mode == "generate" and task.strategies == ("default", "demographic")
    assert task.metric_function() is blend.blend_metrics


def test_prompts_put_the_question_in_the_user_turn(mirror):
    from culteval.prompts import render

    cfg = load_params(f"{ROOT / 'params.yaml'}:{ROOT / 'tests/data/params.tiny.yaml'}")
    items = blend.load_items(mirror, cfg)
    df = render(items, "demographic", cfg, translations=None, mode="generate")
    assert len(df) == len(items) == 4  # one order: there are no options to permute
    p = df.iloc[0]
    assert p["answer_prefix"] == "Answer:" and p["user"].endswith(items.iloc[0]["question"])
    assert p["text"].startswith("You are a person living in India") and p["text"].endswith("\nAnswer:")
