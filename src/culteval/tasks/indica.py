"""INDICA (Madhusudan et al. 2026, "Common to Whom? Regional Cultural Commonsense and LLM Bias in
India", arXiv 2601.15550; upstream Sangmitra-06/INDICA, CC BY 4.0).

Each of 515 questions about everyday life was answered by annotators of five regions of India
(North, South, East, West, Central; "N/A" where a region gave none), with pairwise and universal
agreement flags. Two subsets, both multiple choice over the regions' distinct answers:

- ``region_agnostic`` (the authors' RA-MCQ, ``RAMCQ_creation.py``): "In India, <question>", asked
  only where at least ``min_options`` regions answered, at least ``min_options`` distinct answers
  remain, and at least ``min_disagreement`` of the ten region pairs are flagged as disagreeing.
  Which region the model's choice belongs to is the measurement (metrics/regions.py).
- ``region_anchored`` (the authors' RASA questions, ``RASA_creation.py``, asked here as multiple
  choice over the same merged options instead of short answers): "In East India, <question>" for
  every region with an answer, on every question with at least two distinct answers (one
  distinct answer leaves nothing to choose). Gold: the option that region's annotators gave.

Options as the authors build them: the regional prefix ("In North India, ") is stripped and the
first letter capitalised; answers equal after casefolding, whitespace collapsing and dropping
trailing ``.!?`` merge into one option (the first region's wording, regions in upstream order
North, South, East, West, Central); ``meta.option_regions`` keeps the regions each option stands
for (fractional attribution in the metrics).

Regions are data: ``params.cultures.<key>.regions`` names each region, its display name (the
prefix and the anchored question use it), the demographic persona, and how each dataset spells
it (``aliases.indica``). Another sub-national dataset is a params edit plus a loader.

Only the English strategies (default, demographic) are declared: the run's translation tables do
not cover INDICA's questions and answers, so cross-lingual and native prompts would show English.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from culteval.tasks import Task, dumps, finish, parse_answer

NAME = "indica"
FILE = "dataset.json"
SUBSETS = ("region_agnostic", "region_anchored")
NA = "N/A"


def regions_of(cfg: dict) -> dict[str, dict]:
    """Canonical region -> its params entry (``name``, ``persona``, ``aliases``), in params order,
    for the culture this config is about; a clear error when it declares none for INDICA."""
    from culteval.config import culture_of

    key = culture_of(cfg)
    regions = cfg["cultures"][key].get("regions") or {}
    usable = {r: spec for r, spec in regions.items() if (spec.get("aliases") or {}).get(NAME)}
    if not usable:
        raise ValueError(f"params.cultures.{key}.regions: no region names its INDICA spelling "
                         f"(aliases.{NAME}); INDICA asks about regions of India: declare them, or "
                         f"disable params.tasks.{NAME}")
    return usable


def prefix_pattern(regions: dict[str, dict]) -> re.Pattern:
    """``In <region name>, `` at the start of an answer, for every declared region name."""
    names = sorted((spec["name"] for spec in regions.values()), key=len, reverse=True)
    return re.compile(r"^In\s+(?:" + "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in names)
                      + r"),\s*", re.IGNORECASE)


def strip_prefix(answer: str, pattern: re.Pattern) -> str:
    """The answer without its regional prefix, first letter capitalised (as RAMCQ_creation.py)."""
    text = pattern.sub("", answer).strip()
    return text[0].upper() + text[1:] if text and text[0].islower() else text


def normalise(answer: str) -> str:
    """The authors' duplicate key: casefolded, whitespace collapsed, trailing .!? dropped."""
    text = re.sub(r"\s+", " ", answer.lower().strip())
    return re.sub(r"[.!?]+$", "", text)


def merged_options(q: dict, regions: dict[str, dict], pattern: re.Pattern,
                   where: str) -> tuple[list[str], list[list[str]], dict[str, str]]:
    """(option texts, regions per option, region -> its option text) for one question.

    A region counts when its first answer is not "N/A" (as the authors' code). Regions are visited
    in params order; an option keeps the first region's wording.
    """
    texts: list[str] = []
    owners: list[list[str]] = []
    index: dict[str, int] = {}
    gold: dict[str, str] = {}
    for region, spec in regions.items():
        for alias in spec["aliases"][NAME]:
            if alias in q:
                break
        else:
            raise ValueError(f"{where}: no answer field for region {region!r} "
                             f"(spellings tried: {spec['aliases'][NAME]})")
        answers = (q[alias] or {}).get("answer")
        if not isinstance(answers, list):
            raise ValueError(f"{where}: {alias}.answer is not a list")
        if not answers or answers[0] == NA:
            continue
        text = strip_prefix(str(answers[0]), pattern)
        if not text:
            continue
        key = normalise(text)
        if key not in index:
            index[key] = len(texts)
            texts.append(text)
            owners.append([])
        owners[index[key]].append(region)
        gold[region] = texts[index[key]]
    return texts, owners, gold


def disagreement(q: dict, where: str) -> float:
    """Share of the question's region pairs flagged as disagreeing (0 when none are flagged)."""
    pairs = q.get("pairwise_agreements") or {}
    if not isinstance(pairs, dict):
        raise ValueError(f"{where}: pairwise_agreements is not an object")
    if not pairs:
        return 0.0
    return sum(1 for p in pairs.values() if p.get("agreement") is False) / len(pairs)


def anchored_question(question: str, name: str) -> str:
    """"In <region name>, <question with its first letter lowercased>" (RASA_creation.py); the
    region-agnostic question is the same with the country ("In India, ..."), so the two subsets
    differ in the region named only (the authors' RA-MCQ prompt says "a question about Indian
    cultural practices" instead).

    The authors keep a question that already names India unchanged; none of the 515 does, and an
    anchored question must name its region, so this always prefixes.
    """
    return f"In {name}, {question[:1].lower()}{question[1:]}"


def load_items(raw_root: Path, cfg: dict) -> pd.DataFrame:
    path = Path(raw_root) / NAME / FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"task {NAME}: {path} not found (acquire dataset {NAME!r})") from None
    questions = data.get("questions") if isinstance(data, dict) else None
    if not isinstance(questions, list):
        raise ValueError(f"{path}: expected an object with a 'questions' list")
    own = cfg["tasks"][NAME]
    subsets = own.get("subsets") or list(SUBSETS)
    min_options = int(own.get("min_options", 3))
    min_disagreement = float(own.get("min_disagreement", 0.7))
    regions = regions_of(cfg)
    pattern = prefix_pattern(regions)
    country = cfg["target"]["country"]
    rows = []
    seen: set[str] = set()
    for n, q in enumerate(questions):
        qid = str(q.get("question_id") or "")
        where = f"{path}: question {n} ({qid or 'no question_id'})"
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", qid):
            raise ValueError(f"{where}: question_id {qid!r} is missing or not a plain key")
        if qid in seen:
            raise ValueError(f"{where}: question_id {qid!r} repeats")
        seen.add(qid)
        question = str(q.get("question_text") or "").strip()
        if not question:
            raise ValueError(f"{where}: empty question_text")
        texts, owners, gold = merged_options(q, regions, pattern, where)
        meta = {"question_id": qid, "option_regions": owners,
                "domain": q.get("question_domain"), "subcategory": q.get("question_subcategory"),
                "topic": q.get("question_topic"), "universal_agreement": q.get("universal_agreement")}
        if ("region_agnostic" in subsets and len(gold) >= min_options and len(texts) >= min_options
                and disagreement(q, where) >= min_disagreement):
            item_id = f"{NAME}/region_agnostic/{qid}"
            rows.append({"item_id": item_id, "task": NAME, "subset": "region_agnostic", "group_id": item_id,
                         "country": country, "question": anchored_question(question, country),
                         "options": texts, "answer": None, "distributions": dumps({}),
                         "context": dumps({}), "meta": dumps(meta)})
        if "region_anchored" in subsets and len(texts) >= 2:
            group = f"{NAME}/region_anchored/{qid}"
            for region, answer in gold.items():
                spec = regions[region]
                rows.append({"item_id": f"{group}/{region}", "task": NAME, "subset": "region_anchored",
                             "group_id": group, "country": country,
                             "question": anchored_question(question, spec["name"]), "options": texts,
                             "answer": answer, "distributions": dumps({}),
                             "context": dumps({"persona": spec["persona"]}),
                             "meta": dumps({**meta, "region": region})})
    return finish(rows, NAME, cfg, limit_by="subset",
                  itemset_applies=lambda key: key.split("/")[1] in subsets)


TASK = Task(name=NAME, datasets=(NAME,), mode="both", load_items=load_items,
            parse_answer=parse_answer,
            metrics="culteval.metrics.regions:indica_metrics",
            subsets=frozenset(SUBSETS), strategies=("default", "demographic"),
            params_schema={
                "subsets": {"type": "array", "minItems": 1, "uniqueItems": True,
                            "items": {"enum": list(SUBSETS)}},
                "min_options": {"type": "integer", "minimum": 2, "maximum": 26},
                "min_disagreement": {"type": "number", "minimum": 0, "maximum": 1}})
