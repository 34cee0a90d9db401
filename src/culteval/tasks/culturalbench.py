"""CulturalBench (Chiu et al. 2024, "CulturalBench: a Robust, Diverse and
Challenging Benchmark on Measuring the (Lack of) Cultural Knowledge of LLMs").

Protocol: Easy = four-option multiple choice, scored by accuracy. Hard = every
option of a question judged True/False on its own; a question counts correct
only when all four judgements are (question accuracy), per-judgement accuracy
is reported beside it.

Items here: easy ``culturalbench/easy/<question_idx>`` with options a..d and the
gold letter mapped to its text; hard one item per judgement,
``culturalbench/hard/<question_idx>/<key>`` (key = 8 hex digits of the sha256 of
the statement and answer; ``meta.judgement`` keeps the position in file order)
in group ``culturalbench/hard/<question_idx>``, question = the upstream
question, the judged statement in ``context.statement``, options True/False.
Countries are canonicalised through ``params.country_aliases``.
``limit`` applies per subset (Easy and Hard are separate benchmarks) and counts
hard *questions*, so a question's judgements stay together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from culteval.tasks import (
    Task,
    aliases,
    canonical_country,
    content_id,
    dumps,
    finish,
    first_occurrence,
    leading_letter,
    number_repeats,
    require_columns,
    require_countries,
    selected_countries,
)
from culteval.tasks import parse_answer as generic_parse

NAME = "culturalbench"
EASY_FILE = "CulturalBench-Easy.csv"
HARD_FILE = "CulturalBench-Hard.csv"
LETTERS = ("A", "B", "C", "D")
# Words a sampled judgement may use for True / False, English and Hindi (with and without nukta).
TRUE_WORDS = ("true", "सही", "सत्य")
FALSE_WORDS = ("false", "गलत", "ग़लत", "असत्य")


def _int(value) -> int | None:
    return int(value) if value not in (None, "") else None


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    # keep_default_na=False: an option reading "None" is text, not a missing value.
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    require_columns(df, columns, path)
    return df


def _country_filter(df: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    wanted = selected_countries(cfg, NAME)
    if wanted is None:
        return df
    names = {a for c in wanted for a in aliases(cfg, c, NAME)}
    return df[df["country"].isin(names)]


def _easy(raw: Path, cfg: dict) -> list[dict]:
    path = raw / EASY_FILE
    cols = ["question_idx", "prompt_question", *[f"prompt_option_{x}" for x in "abcd"], "answer", "country"]
    df = _country_filter(_read(path, cols), cfg)
    rows = []
    for _, r in df.iterrows():
        q = int(r["question_idx"])
        options = [r[f"prompt_option_{x}"] for x in "abcd"]
        letter = r["answer"].strip().upper()
        if letter not in LETTERS:
            raise ValueError(f"{path}: question_idx {q}: answer {r['answer']!r} is not A-D")
        item_id = f"{NAME}/easy/{q:04d}"
        meta = {"question_idx": q, "data_idx": _int(r.get("data_idx")), "answer_letter": letter,
                "raw_country": r["country"]}
        if len(set(options)) < len(options):
            meta["note"] = "duplicate option texts upstream"  # kept as published; answer_letter disambiguates
        rows.append({
            "item_id": item_id, "task": NAME, "subset": "easy", "group_id": item_id,
            "country": canonical_country(cfg, NAME, r["country"]), "question": r["prompt_question"],
            "options": options, "answer": options[LETTERS.index(letter)], "distributions": dumps({}),
            "context": dumps({}), "meta": dumps(meta),
        })
    return rows


def _hard(raw: Path, cfg: dict) -> list[dict]:
    path = raw / HARD_FILE
    cols = ["question_idx", "prompt_question", "prompt_option", "answer", "country"]
    df = _country_filter(_read(path, cols), cfg)
    rows = []
    for q, group in df.groupby(df["question_idx"].astype(int), sort=True):
        group_id = f"{NAME}/hard/{q:04d}"
        # Judgements keyed by statement and answer text, not file position (the derived and the
        # upstream Hard files may order them differently); verbatim repeats get ~2.
        keys = number_repeats(content_id(s, a, length=8)
                              for s, a in zip(group["prompt_option"], group["answer"], strict=True))
        for k, (_, r) in enumerate(group.iterrows()):
            answer = {"true": "True", "false": "False"}.get(r["answer"].strip().lower())
            if answer is None:
                raise ValueError(f"{path}: question_idx {q} judgement {k}: "
                                 f"answer {r['answer']!r} is not True/False")
            meta = {"question_idx": q, "judgement": k, "data_idx": _int(r.get("data_idx")),
                    "raw_country": r["country"]}
            rows.append({
                "item_id": f"{group_id}/{keys[k]}", "task": NAME, "subset": "hard", "group_id": group_id,
                "country": canonical_country(cfg, NAME, r["country"]), "question": r["prompt_question"],
                "options": ["True", "False"], "answer": answer, "distributions": dumps({}),
                "context": dumps({"statement": r["prompt_option"]}), "meta": dumps(meta),
            })
    return rows


def load_items(raw_root: Path, cfg: dict) -> pd.DataFrame:
    raw = Path(raw_root) / "culturalbench"
    subsets = cfg["tasks"][NAME].get("subsets") or ["easy", "hard"]
    rows = (_easy(raw, cfg) if "easy" in subsets else []) + (_hard(raw, cfg) if "hard" in subsets else [])
    require_countries((r["country"] for r in rows), selected_countries(cfg, NAME), NAME, cfg)
    return finish(rows, NAME, cfg, limit_by="subset",
                  itemset_applies=lambda key: key.split("/")[1] in subsets)


def _word_class(label: str) -> tuple[str, ...] | None:
    low = label.strip().casefold()
    for words in (TRUE_WORDS, FALSE_WORDS):
        if low in words:
            return words
    return None


def parse_answer(text: str | None, letters: Sequence[str], shown_options: Sequence[str]) -> int | None:
    """Easy: a leading letter A-D or the option text. Hard: True/False, in English or as shown (Hindi)."""
    classes = {i: _word_class(o) or _word_class(letters[i]) for i, o in enumerate(shown_options)
               if i < len(letters)}
    if not any(classes.values()):
        return generic_parse(text, letters, shown_options)
    if not text or not text.strip():
        return None
    i = leading_letter(text, letters)
    if i is not None:
        return i
    candidates = [(o, k) for k, o in enumerate(shown_options)]
    candidates += [(w, k) for k, words in classes.items() if words for w in words]
    return first_occurrence(re.sub(r"^\s*answer\s*:?", "", text, flags=re.IGNORECASE), candidates)


TASK = Task(name=NAME, datasets=("culturalbench",), mode="both", load_items=load_items,
            parse_answer=parse_answer,
            metrics="culteval.metrics.accuracy:culturalbench_metrics",
            item_scores="culteval.metrics.accuracy:culturalbench_item_scores",
            subsets=frozenset({"easy", "hard"}),
            params_schema={
                "subsets": {"type": "array", "minItems": 1, "uniqueItems": True,
                            "items": {"enum": ["easy", "hard"]}},
                "countries": {"$ref": "#/$defs/countries"}})
