"""Inglehart-Welzel cultural map items (Inglehart & Welzel 2005, "Modernization,
Cultural Change, and Democracy"; WVS-7 questionnaire wording).

Protocol: a model answers the ten map items as one respondent; its answers are
projected through the factor solution fitted on survey microdata (see
``culteval.metrics.cultural_map``). Eight items are asked directly (A008, A165,
E018, E025, F063, F118, F120, G006); two are indices built from sub-questions:

* Y002 (post-materialism) from the first (Q154) and second (Q155) most
  important national aims (1 order, 2 more say, 3 prices, 4 free speech):
  {1,3} -> 1 materialist, {2,4} -> 3 post-materialist, any other pair -> 2.
  ``derive_y002`` takes the model's first- and second-choice distributions,
  treats them as independent and drops same-aim pairs (a respondent cannot name
  one aim twice) by renormalising the joint over distinct pairs, then returns
  the expected Y002. (Assumption: the paper does not say how to combine model
  distributions; this is the project's choice.)
* Y003 (autonomy) = (religious faith + obedience) - (independence +
  determination), each child quality coded 1 mentioned / 2 not mentioned, as in
  the WVS syntax, so Y003 runs from -2 (faith and obedience mentioned, autonomy
  qualities not) to 2. ``derive_y003`` applies it to the expected codes.
  ``Y003_PARTS`` (the sub-item subsets) is the one definition both this module
  and ``culteval.metrics.cultural_map`` use.

Items here: ``cultural_map/<var>``; wording from ``question_metadata.json``
where present, else built from the codebook; options are the substantive
codebook choices (codes >= 1; G006's "I am not [nationality]" dropped), 1-10
scales labelled "1 - <low label>", "2", ..., "10 - <high label>";
``meta.codes`` aligns the WVS codes with the options.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from culteval.tasks import SAMPLED_SCHEMA, Task, dumps, finish, parse_answer

NAME = "cultural_map"
CODEBOOK = "codebook.json"
METADATA = "question_metadata.json"

# WVS/IVS variable -> WVS-7 question number.
ITEMS = {
    "A008": "Q46", "A165": "Q57", "E018": "Q45", "E025": "Q209", "F063": "Q164", "F118": "Q182",
    "F120": "Q184", "G006": "Q254", "Y002_1": "Q154", "Y002_2": "Q155", "Y003_independence": "Q8",
    "Y003_determination": "Q14", "Y003_religious_faith": "Q15", "Y003_obedience": "Q17",
}
DROP_CODES = {"G006": {5}}  # "I am not [nationality]" is not on the pride scale
_AIMS = ("People sometimes talk about what the aims of this country should be for the next ten years. "
         "If you had to choose, which one of the things on this list would you say is most important?")
BUILT_QUESTIONS = {"Q154": _AIMS, "Q155": _AIMS + " And which would be the next most important?"}
# Y003 sub-items (item subsets): autonomy qualities first, then the traditional ones.
Y003_PARTS = ("Y003_independence", "Y003_determination", "Y003_religious_faith", "Y003_obedience")


def _options(var: str, q: str, choices: Mapping[str, str]) -> tuple[list[str], list[int]]:
    codes = sorted(int(c) for c in choices if int(c) >= 1 and int(c) not in DROP_CODES.get(var, set()))
    if not codes:
        raise ValueError(f"{CODEBOOK}: {q} ({var}) has no substantive answer codes")
    labels = [str(choices[str(c)]).strip() for c in codes]
    middle = zip(codes[1:-1], labels[1:-1], strict=True)
    if len(codes) > 2 and all(lab == str(c) for c, lab in middle):
        # 1-10 scales: only the end points are labelled upstream; keep the numbers visible at both ends.
        labels[0] = f"{codes[0]} - {labels[0]}"
        labels[-1] = f"{codes[-1]} - {labels[-1]}"
    return labels, codes


def load_items(raw_root: Path, cfg: dict) -> pd.DataFrame:
    raw = Path(raw_root) / "wvs7"
    with open(raw / CODEBOOK, encoding="utf-8") as f:
        codebook = json.load(f)
    with open(raw / METADATA, encoding="utf-8") as f:
        metadata = json.load(f)
    rows = []
    for var, q in ITEMS.items():
        entry = codebook.get(q)
        if not entry or "choices" not in entry:
            raise ValueError(f"{raw / CODEBOOK}: no answer choices for {q} ({var})")
        question = (metadata.get(q) or {}).get("question") or BUILT_QUESTIONS.get(q)
        if not question:
            raise ValueError(f"{raw / METADATA}: no question text for {q} ({var}) and none built in")
        options, codes = _options(var, q, entry["choices"])
        item_id = f"{NAME}/{var}"
        rows.append({
            "item_id": item_id, "task": NAME, "subset": var, "group_id": item_id, "country": None,
            "question": question, "options": options, "answer": None, "distributions": dumps({}),
            "context": dumps({"scale": f"{codes[0]}-{codes[-1]}"}),
            "meta": dumps({"wvs_var": var, "wvs7_q": q, "codes": codes,
                           "codebook_title": entry.get("question"),
                           "question_source": "question_metadata" if q in metadata else "built"}),
        })
    return finish(rows, NAME, cfg)


def derive_y002(p1: Sequence[float], p2: Sequence[float]) -> float:
    """Expected Y002 from first- and second-choice distributions over aims 1..4 (see module doc)."""
    a, b = np.asarray(p1, dtype=float), np.asarray(p2, dtype=float)
    if a.shape != (4,) or b.shape != (4,):
        raise ValueError(f"derive_y002: need two distributions over 4 aims, got {a.shape} and {b.shape}")
    joint = np.outer(a, b)
    np.fill_diagonal(joint, 0.0)  # the same aim cannot be first and second choice
    total = joint.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError("derive_y002: no probability on two distinct aims")
    joint /= total
    value = np.full((4, 4), 2.0)
    for i, j in ((0, 2), (2, 0)):  # {order, prices}: materialist
        value[i, j] = 1.0
    for i, j in ((1, 3), (3, 1)):  # {more say, free speech}: post-materialist
        value[i, j] = 3.0
    return float((joint * value).sum())


def derive_y003(expected_codes: Mapping[str, float]) -> float:
    """Y003 = (faith + obedience) - (independence + determination) on expected codes (1 mentioned, 2 not).

    Keys are the ``Y003_PARTS`` subsets (``Y003_obedience``, ...); the result lies in [-2, 2].
    """
    missing = [p for p in Y003_PARTS if p not in expected_codes]
    if missing:
        raise KeyError(f"derive_y003: missing expected code for {missing}")
    indep, determ, faith, obed = (float(expected_codes[p]) for p in Y003_PARTS)
    return faith + obed - indep - determ


TASK = Task(name=NAME, datasets=("wvs7",), mode="distribution", load_items=load_items,
            parse_answer=parse_answer,
            metrics="culteval.metrics.cultural_map:cultural_map_metrics", ordered_scale=True,
            reference_rows="culteval.metrics.cultural_map:map_reference_rows",
            params_schema={"sampled": SAMPLED_SCHEMA})
