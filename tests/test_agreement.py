"""Logit-generation agreement (metrics/agreement.py) on raw outputs with hand-computed answers."""

from __future__ import annotations

import pandas as pd
import pytest

from culteval.metrics.agreement import agreement_metrics, per_prompt

CFG = {"seed": 0, "metrics": {"bootstrap": 100, "ci": 0.95}}


def _raw(prompts: dict[str, tuple[str, list[float] | None, list[int]]]) -> pd.DataFrame:
    rows = []
    for pid, (item, probs, parsed) in prompts.items():
        rows.append({"prompt_id": pid, "item_id": item, "permutation": 0, "trial": -1, "probs": probs,
                     "option_mass": 0.9, "generated": None, "parsed": None, "n_prompt_tokens": 10})
        for t, a in enumerate(parsed):
            rows.append({"prompt_id": pid, "item_id": item, "permutation": 0, "trial": t, "probs": None,
                         "option_mass": None, "generated": "x", "parsed": a, "n_prompt_tokens": 10})
    return pd.DataFrame(rows)


def test_agreement_and_total_variation_by_hand():
    raw = _raw({"q1#default#p0": ("q1", [0.7, 0.2, 0.1], [0, 0, 1, -1]),
                "q1#default#p1": ("q1", [0.1, 0.2, 0.7], [2, 2, 2, 2]),
                "q2#default#p0": ("q2", [0.5, 0.5], [1, 1, 1, 1])})
    pp = per_prompt(raw).set_index("prompt_id")
    # argmax 0: two of four trials agree; frequencies (.5, .25, 0) and .25 invalid
    assert pp.loc["q1#default#p0", "agreement"] == pytest.approx(0.5)
    assert pp.loc["q1#default#p0", "tv"] == pytest.approx(0.5 * (0.2 + 0.05 + 0.1 + 0.25))
    assert pp.loc["q1#default#p1", "agreement"] == 1.0  # argmax in original order: option 2
    assert pp.loc["q1#default#p1", "tv"] == pytest.approx(0.3)
    assert pp.loc["q2#default#p0", "agreement"] == 0.0  # a tie goes to the first maximum
    rows = {r["metric"]: r for r in agreement_metrics(raw, CFG)}
    # per item the mean over its prompts, then the mean over items
    assert rows["logit_gen_agreement"]["value"] == pytest.approx(((0.5 + 1.0) / 2 + 0.0) / 2)
    assert rows["logit_gen_tv"]["value"] == pytest.approx(((0.3 + 0.3) / 2 + 0.5) / 2)
    assert rows["logit_gen_agreement"]["n_items"] == 2


def test_no_rows_without_both_distributions_and_parsed_answers():
    dist_only = _raw({"q1#p0": ("q1", [0.6, 0.4], [])})
    assert agreement_metrics(dist_only, CFG) == []
    free_text = _raw({"q1#p0": ("q1", None, [])})
    free_text = pd.concat([free_text[free_text["trial"] >= 0], pd.DataFrame([
        {"prompt_id": "q1#p0", "item_id": "q1", "permutation": 0, "trial": 0, "probs": None,
         "option_mass": None, "generated": "rice", "parsed": None, "n_prompt_tokens": 10}])])
    assert agreement_metrics(free_text, CFG) == []


def test_a_parsed_answer_outside_the_options_is_named():
    with pytest.raises(ValueError, match=r"prompt 'q1#p0' has a parsed answer 3 outside its 2 options"):
        per_prompt(_raw({"q1#p0": ("q1", [0.6, 0.4], [0, 3])}))
