"""BLEnD short answers (Myung et al. 2024, "BLEnD: A Benchmark for LLMs on Everyday
Knowledge in Diverse Cultures and Languages").

Protocol: a short question about everyday life in a region ("What is a common
snack for preschool kids in Assam?") is answered in free text; an answer counts as
correct when it contains one of the answers the region's annotators gave. Here the
English questions (``en_question``) and English annotator answers (``en_answers``)
are used; the model's sampled answers (``params.sampling``) are scored one by one.

Matching (the paper lemmatises; this project's documented choice, docs/metrics.md):
answer and references are casefolded, punctuation becomes space, whitespace is
collapsed; correct = some reference occurs in the answer as whole words. An empty
answer is invalid.

Items here: ``blend/<region>/<upstream ID>`` (the upstream question ID, stable across
files), one per question with at least one annotated answer, ``country`` the
canonical country the region stands for (``params.country_aliases.<c>.blend``
names the region files), options empty, the annotations in ``meta``. ``limit``
counts questions per country. Only the English strategies (default, demographic)
are declared: BLEnD's own translations are into the regions' languages (Assamese),
not the run's target language.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from culteval.tasks import Task, aliases, dumps, finish, mean_row, require_countries, selected_countries

NAME = "blend"


def load_items(raw_root: Path, cfg: dict) -> pd.DataFrame:
    wanted = selected_countries(cfg, NAME) or [cfg["target"]["country"], cfg["reference"]["country"]]
    rows = []
    for country in wanted:
        for region in aliases(cfg, country, NAME):
            path = Path(raw_root) / NAME / f"{region}_data.json"
            if not path.is_file():
                continue
            for qid, q in sorted(json.loads(path.read_text(encoding="utf-8")).items()):
                answers = [{"en_answers": a["en_answers"], "count": int(a["count"])}
                           for a in q.get("annotations", []) if a.get("en_answers")]
                if not answers or not q.get("en_question"):
                    continue
                rows.append({
                    "item_id": f"{NAME}/{region}/{qid}", "task": NAME, "subset": "short_answer",
                    "group_id": f"{NAME}/{region}/{qid}", "country": country, "question": q["en_question"],
                    "options": [], "answer": None, "distributions": dumps({}), "context": dumps({}),
                    "meta": dumps({"region": region, "id": qid, "annotations": answers,
                                   "idks": q.get("idks", {})}),
                })
    require_countries((r["country"] for r in rows), wanted, NAME, cfg)
    return finish(rows, NAME, cfg, limit_by="country")  # ``limit`` counts questions per country


def parse_answer(text, labels, shown_options):
    """Short answers have no options to parse; they are matched against references at metrics time."""
    return None


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split())


def matches(answer: str | None, references: list[str]) -> bool:
    """Whether a normalised reference occurs in the normalised answer as whole words."""
    a = f" {_norm(answer or '')} "
    return any(f" {r} " in a for r in map(_norm, references) if r)


def blend_metrics(items: pd.DataFrame, dists: dict, raw: pd.DataFrame, cfg: dict, inputs=None) -> list[dict]:
    """``acc_sampled_<role>`` (target / reference country) and ``invalid_rate``: means over questions
    of the per-question share of sampled answers that match / are empty."""
    sampled = raw[raw["trial"] >= 0]
    refs = {r.item_id: [a for ann in json.loads(r.meta)["annotations"] for a in ann["en_answers"]]
            for r in items.itertuples(index=False)}
    country = dict(zip(items["item_id"], items["country"], strict=True))
    per_item = sampled.groupby("item_id", sort=True)["generated"].apply(list)
    rows = []
    for role in ("target", "reference"):
        name = cfg[role]["country"]
        scores = [np.mean([matches(g, refs[i]) for g in gen])
                  for i, gen in per_item.items() if country[i] == name]
        if scores:
            rows.append(mean_row(f"acc_sampled_{role}", scores, cfg))
    empty = [np.mean([not (g or "").strip() for g in gen]) for gen in per_item]
    if empty:
        rows.append(mean_row("invalid_rate", empty, cfg))
    return rows


TASK = Task(name=NAME, datasets=(NAME,), mode="generate", load_items=load_items, parse_answer=parse_answer,
            metrics=f"culteval.tasks.{NAME}:blend_metrics", strategies=("default", "demographic"),
            max_tokens=16,
            params_schema={"countries": {"$ref": "#/$defs/countries"}})
