"""Item pages: every number of the report opened down to the items it rests on.

One self-contained HTML page per culture x task (``results/items/<culture>-<task>.html``), built
from the artifacts the report already reads: the item table (question, options, gold answer,
the survey's or annotators' answers per country), the rendered prompts (the text each strategy
showed, in each answer order) and the raw outputs (each model's option distribution per answer
order and its sampled answers, each with the label it was parsed as, or why it was not). A
summary row links to its task's page with ``#model=<m>&strategy=<s>``; the page's plain script
filters by model, strategy, text and invalid answers, with no network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd

from culteval.report.tables import fmt

TEMPLATE = "items.html.j2"
_ENV = jinja2.Environment(loader=jinja2.PackageLoader("culteval.report"), autoescape=True,
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def page_name(culture: str, task: str) -> str:
    """The item page's file name (``<culture>-<task>.html``; ``<task>.html`` without a culture)."""
    return f"{culture}-{task}.html" if culture else f"{task}.html"


def invalid_reason(text, labels: list[str], shown: list[str]) -> str:
    """Why a sampled answer parsed to no option (the task's parser returned none)."""
    if text is None or not str(text).strip():
        return "empty answer: the model produced no text"
    return (f"no answer label ({', '.join(labels)}) at its start and none of the shown options' texts "
            "(or the task's answer words) in it")


@dataclass
class TaskArtifacts:
    """One culture x task's inputs: items, prompts per strategy, raw outputs per (model, strategy)."""

    culture: str
    task: str
    items: pd.DataFrame
    prompts: dict[str, pd.DataFrame]
    raw: dict[tuple[str, str], pd.DataFrame]
    flags: dict[tuple[str, str], str] | None = None  # (model, strategy) -> the summary's flags
    low_mass: float | None = None  # cfg.metrics.low_mass: an answer order's option mass under it is marked


def _json(text) -> dict:
    if text is None or text == "":
        return {}
    return json.loads(text) if isinstance(text, str) else dict(text)


def _label_of(prompt, original: int) -> str:
    """The label the prompt showed for original option ``original``."""
    order = list(prompt.option_order)
    return str(prompt.labels[order.index(original)]) if original in order else "?"


def _prompt_view(p) -> dict:
    chat = bool(str(p.user))
    return {"permutation": int(p.permutation), "prompt_id": str(p.prompt_id),
            "order": [int(i) for i in p.option_order],
            "shown": [f"{label}: {text}" for label, text in zip(p.labels, p.shown_options, strict=True)],
            "text": str(p.text), "system": str(p.system) if chat else "", "user": str(p.user) if chat else "",
            "answer_prefix": str(p.answer_prefix) if chat else "",
            "machine_translated": bool(p.machine_translated)}


def _run_view(model: str, strategy: str, raw: pd.DataFrame, prompts: dict, options: list[str],
              flags: str, low_mass: float | None) -> dict:
    """A model's answers to one item under one strategy: distribution per order, sampled answers."""
    dist = raw[raw["trial"].eq(-1)].sort_values("permutation")
    per_order = []
    for r in dist.itertuples(index=False):
        probs = list(r.probs) if r.probs is not None else []
        low = low_mass is not None and r.option_mass is not None and float(r.option_mass) < low_mass
        per_order.append({"permutation": int(r.permutation), "mass": fmt(r.option_mass), "low": bool(low),
                          "probs": [fmt(v) for v in probs]})
    mean = [fmt(sum(float(o["probs"][k] or 0) for o in per_order) / len(per_order))
            if per_order and all(len(o["probs"]) == len(options) for o in per_order) else ""
            for k in range(len(options))]
    samples = []
    for r in raw[raw["trial"].ge(0)].sort_values(["permutation", "trial"]).itertuples(index=False):
        p = prompts.get(str(r.prompt_id))
        parsed = None if pd.isna(r.parsed) else int(r.parsed)
        row = {"permutation": int(r.permutation), "trial": int(r.trial), "text": "" if r.generated is None
               else str(r.generated), "label": "", "option": "", "reason": "", "invalid": False}
        if parsed is not None and parsed >= 0:
            row["option"] = options[parsed] if parsed < len(options) else str(parsed)
            row["label"] = _label_of(p, parsed) if p is not None else ""
        elif parsed == -1:
            row["invalid"] = True
            labels = [str(x) for x in p.labels] if p is not None else []
            shown = [str(x) for x in p.shown_options] if p is not None else []
            row["reason"] = invalid_reason(r.generated, labels, shown)
        else:  # no options to parse (short answers): scored against the references at metrics time
            row["reason"] = "short answer: matched against the annotators' answers when scored"
        samples.append(row)
    n_invalid = sum(s["invalid"] for s in samples)
    return {"model": model, "strategy": strategy, "per_order": per_order, "mean": mean, "samples": samples,
            "n_invalid": n_invalid, "flags": flags, "low_mass": any(o["low"] for o in per_order)}


def item_views(art: TaskArtifacts) -> list[dict]:
    """The page's items, sorted by id, each with its prompts and every model's answers."""
    prompts_by_item: dict[str, dict[str, list]] = {}
    prompt_rows: dict[str, dict] = {}
    for strategy, df in sorted(art.prompts.items()):
        for p in df.sort_values(["item_id", "permutation"]).itertuples(index=False):
            prompts_by_item.setdefault(str(p.item_id), {}).setdefault(strategy, []).append(p)
            prompt_rows.setdefault(strategy, {})[str(p.prompt_id)] = p
    raw_by_item = {key: dict(tuple(df.groupby("item_id", sort=True))) for key, df in art.raw.items()}
    out = []
    for it in art.items.sort_values("item_id").itertuples(index=False):
        item_id = str(it.item_id)
        options = [str(o) for o in it.options]
        dists = _json(it.distributions)
        strategies = []
        for strategy, plist in sorted(prompts_by_item.get(item_id, {}).items()):
            runs = [_run_view(model, strategy, raw_by_item[(model, s)][item_id], prompt_rows[strategy],
                              options, (art.flags or {}).get((model, strategy), ""), art.low_mass)
                    for (model, s) in sorted(raw_by_item)
                    if s == strategy and item_id in raw_by_item[(model, s)]]
            strategies.append({"strategy": strategy, "prompts": [_prompt_view(p) for p in plist],
                               "runs": runs})
        out.append({"id": item_id, "anchor": "item-" + item_id.replace("/", "-"), "subset": str(it.subset),
                    "group": str(it.group_id), "country": "" if it.country is None else str(it.country),
                    "question": str(it.question), "answer": "" if it.answer is None else str(it.answer),
                    "options": options, "countries": sorted(dists),
                    "shares": [[fmt(dists[c][k]) if k < len(dists[c]) else "" for c in sorted(dists)]
                               for k in range(len(options))],
                    "context": json.dumps(_json(it.context), ensure_ascii=False, sort_keys=True),
                    "meta": json.dumps(_json(it.meta), ensure_ascii=False, sort_keys=True),
                    "strategies": strategies})
    return out


def render_items_page(art: TaskArtifacts) -> str:
    """One culture x task's item page as a string (same artifacts, same bytes)."""
    items = item_views(art)
    models = sorted({m for m, _ in art.raw})
    strategies = sorted(art.prompts)
    return _ENV.get_template(TEMPLATE).render(culture=art.culture, task=art.task, items=items,
                                              models=models, strategies=strategies)


def write_items_pages(arts: list[TaskArtifacts], out_dir: Path) -> dict[tuple[str, str], str]:
    """Write each culture x task's page into ``out_dir``; returns (culture, task) -> file name."""
    from culteval.io import write_text

    out_dir = Path(out_dir)
    pages = {}
    for art in arts:
        name = page_name(art.culture, art.task)
        write_text(render_items_page(art), out_dir / name)
        pages[(art.culture, art.task)] = name
    return pages


def task_artifacts(culture: str, items: dict[str, pd.DataFrame], prompts: dict[tuple[str, str], pd.DataFrame],
                   raw: dict[tuple[str, str, str], pd.DataFrame], summary: pd.DataFrame,
                   low_mass: float | None) -> list[TaskArtifacts]:
    """One culture's loaded artifacts grouped per task: item tables by task, prompts by (task,
    strategy), raw outputs by (model, task, strategy); the summary gives each run's flags."""
    rows = summary[summary["culture"].astype(str).eq(culture)] if "culture" in summary else summary
    flags: dict[tuple[str, str, str], set] = {}
    for r in rows.itertuples(index=False):
        text = getattr(r, "flags", "")
        if isinstance(text, str) and text:
            flags.setdefault((str(r.model), str(r.task), str(r.strategy)), set()).update(text.split(";"))
    return [TaskArtifacts(culture=culture, task=task, items=df,
                          prompts={s: p for (t, s), p in prompts.items() if t == task},
                          raw={(m, s): r for (m, t, s), r in raw.items() if t == task},
                          flags={(m, s): "; ".join(sorted(f)) for (m, t, s), f in flags.items() if t == task},
                          low_mass=low_mass)
            for task, df in sorted(items.items())]
