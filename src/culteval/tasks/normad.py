"""NormAd-Eti (Rao et al. 2024, "NormAd: A Framework for Measuring the Cultural
Adaptability of Large Language Models").

Protocol: a short story asks whether a character's action is socially
acceptable; the model answers Yes / No / Neither (gold labels yes / no /
neutral) given one of several contexts: nothing, the country, the country plus
its value, or the rule-of-thumb. Scored by accuracy over sampled answers.

Items here: one per (story, context) for the contexts in
``params.tasks.normad.contexts``: ``normad/<ID>/<context>`` in group
``normad/<ID>`` (``limit`` counts stories). ``context`` always carries the
canonical country, the value and the rule-of-thumb; the templates decide what
to show from ``subset`` (the context name).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from culteval.tasks import (
    Task,
    aliases,
    canonical_country,
    dumps,
    finish,
    first_occurrence,
    leading_letter,
    require_columns,
    require_countries,
    selected_countries,
)

NAME = "normad"
FILE = "normad_etiquette_final_data.csv"
CONTEXTS = ("none", "country", "value", "rot")
OPTIONS = ["Yes", "No", "Neither"]
LABELS = {"yes": "Yes", "no": "No", "neutral": "Neither"}
COLUMNS = ["ID", "Country", "Value", "Rule-of-Thumb", "Story", "Gold Label"]
# The official parse reads yes / no / neither; Hindi forms let a Hindi-option prompt map back too.
WORDS = {"Yes": ("yes", "हाँ", "हां"), "No": ("no", "नहीं"),
         "Neither": ("neither", "दोनों में से कोई नहीं", "इनमें से कोई नहीं", "कोई नहीं")}


def load_items(raw_root: Path, cfg: dict) -> pd.DataFrame:
    path = Path(raw_root) / "normad" / FILE
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    require_columns(df, COLUMNS, path)
    contexts = cfg["tasks"][NAME].get("contexts") or list(CONTEXTS)
    wanted = selected_countries(cfg, NAME)
    if wanted is not None:
        df = df[df["Country"].isin({a for c in wanted for a in aliases(cfg, c, NAME)})]
    rows = []
    for _, r in df.iterrows():
        story = int(r["ID"])
        label = LABELS.get(r["Gold Label"].strip().lower())
        if label is None:
            raise ValueError(f"{path}: ID {story}: unknown Gold Label {r['Gold Label']!r}")
        country = canonical_country(cfg, NAME, r["Country"])
        context = dumps({"country": country, "value": r["Value"], "rot": r["Rule-of-Thumb"]})
        meta = dumps({"id": story, "raw_country": r["Country"], "gold_label": r["Gold Label"],
                      "axis": r.get("Axis"), "subaxis": r.get("Subaxis")})
        for ctx in contexts:
            rows.append({
                "item_id": f"{NAME}/{story:04d}/{ctx}", "task": NAME, "subset": ctx,
                "group_id": f"{NAME}/{story:04d}", "country": country, "question": r["Story"],
                "options": list(OPTIONS), "answer": label, "distributions": dumps({}), "context": context,
                "meta": meta,
            })
    require_countries((r["country"] for r in rows), wanted, NAME, cfg)
    return finish(rows, NAME, cfg)


def parse_answer(text: str | None, letters: Sequence[str], shown_options: Sequence[str]) -> int | None:
    """Official NormAd parse: the first yes / no / neither, shown option text or its number 1-3; else None."""
    if not text or not text.strip():
        return None
    candidates: list[tuple[str, int]] = []
    for k, shown in enumerate(shown_options):
        candidates += [(shown, k), (str(k + 1), k)]
        label = letters[k] if k < len(letters) else ""
        if len(label) > 1:
            candidates.append((label, k))
        for words in WORDS.values():
            if shown.strip().casefold() in words or label.strip().casefold() in words:
                candidates += [(w, k) for w in words]
    if any(len(x) == 1 for x in letters):
        i = leading_letter(text, letters)
        if i is not None:
            return i
    return first_occurrence(text, candidates)


TASK = Task(name=NAME, datasets=("normad",), mode="both", load_items=load_items, parse_answer=parse_answer,
            metrics="culteval.metrics.accuracy:normad_metrics",
            item_scores="culteval.metrics.accuracy:normad_item_scores",
            labels="words", numbered_options=True, subsets=frozenset(CONTEXTS),
            params_schema={
                "contexts": {"type": "array", "minItems": 1, "uniqueItems": True,
                             "items": {"enum": list(CONTEXTS)}},
                "countries": {"$ref": "#/$defs/countries"}})
