"""GlobalOpinionQA (Durmus et al. 2023, "Towards Measuring the Representation of
Subjective Global Opinions in Language Models").

Protocol: each survey question (Pew Global Attitudes "GAS" or World Values
Survey "WVS") is asked as a multiple-choice prompt; the model's distribution is
the renormalised next-token probability of the option letters and is compared
with each country's answer shares by 1 - Jensen-Shannon distance.

Items here: one per upstream row that has a distribution for a selected
country, ``global_opinions/<key>``: key = the first 10 hex digits of the sha256
of the question and option texts (``~2``... for verbatim repeats), so a subset
or reordered copy of the file names each question as upstream does.
``distributions`` holds the target and reference countries under their
canonical names (the first alias present wins: India's "Current national
sample" before "Old" before "Non-national"; ``meta.country_keys`` records the
key used), renormalised to sum 1, plus ``__all_mean__``: the mean of every
country's renormalised distribution (one per canonical country: aliases
collapse to the key used), the all-country baseline. A malformed distribution
of a target/reference country raises; one that only feeds ``__all_mean__`` is
skipped and counted in ``meta.all_mean_skipped``. ``meta.answered_options`` (only when the
countries differ): the distinct sets of options (0-based indices) holding mass in some country's
shares, over every country of the row; the pro-score rule reads it to find option lists that join
several questions' options (``metrics.proscore.scale_problem``).
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from culteval.tasks import (
    SAMPLED_SCHEMA,
    Task,
    aliases,
    content_id,
    dumps,
    finish,
    number_repeats,
    parse_answer,
    require_columns,
    require_countries,
    selected_countries,
)

NAME = "global_opinions"
FILE = "global_opinions.csv"
ALL_MEAN = "__all_mean__"
_PREFIX = "defaultdict(<class 'list'>, "



def parse_selections(text: str, row: int) -> dict[str, list]:
    """The ``selections`` cell (``defaultdict(<class 'list'>, {...})``) as a dict, without eval."""
    text = str(text).strip()
    body = text[len(_PREFIX):-1] if text.startswith(_PREFIX) and text.endswith(")") else text
    try:
        value = ast.literal_eval(body)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"{FILE} row {row}: selections is not a dict literal: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{FILE} row {row}: selections is not a dict literal")
    return value


def _option_text(x) -> str:
    # Upstream stores some scale points as floats (1.0): show them as "1".
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def parse_options(text: str, row: int) -> list[str]:
    """The ``options`` cell (a Python list repr) as strings; duplicate texts raise."""
    try:
        value = ast.literal_eval(str(text))
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"{FILE} row {row}: options is not a list literal: {exc}") from None
    if not isinstance(value, list | tuple):
        raise ValueError(f"{FILE} row {row}: options is not a list literal")
    options = [_option_text(x) for x in value]
    if len(set(options)) != len(options):
        raise ValueError(f"{FILE} row {row}: duplicate option texts {options}")
    return options


def _normalise(shares, n_options: int, row: int, country: str) -> list[float]:
    """Shares renormalised to 1; ValueError naming the row and country when unusable."""
    try:
        v = np.asarray([float(s) for s in shares], dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{FILE} row {row}: {country}: non-numeric shares {shares!r}") from None
    if len(v) != n_options:
        raise ValueError(f"{FILE} row {row}: {country}: {len(v)} shares for {n_options} options")
    if not np.all(np.isfinite(v)) or (v < 0).any():
        raise ValueError(f"{FILE} row {row}: {country}: NaN or negative share in {list(shares)}")
    total = float(v.sum())
    if total <= 0 or math.isclose(total, 0.0):
        raise ValueError(f"{FILE} row {row}: {country}: shares sum to zero")
    return (v / total).tolist()


def answered_options(selections: dict[str, list], n_options: int) -> list[list[int]]:
    """The distinct sets of option indices with a positive share in some country, sorted; a
    country whose shares are unusable (wrong length, not numbers) is skipped."""
    out = set()
    for shares in selections.values():
        try:
            v = [float(x) for x in shares]
        except (TypeError, ValueError):
            continue
        if len(v) == n_options:
            out.add(tuple(i for i, x in enumerate(v) if x > 0))
    return [list(t) for t in sorted(out)]


def _row_item(row: int, r, cfg: dict, wanted: list[str] | None, content_key: str) -> dict | None:
    selections = parse_selections(r["selections"], row)
    options = parse_options(r["options"], row)
    named = [cfg["target"]["country"], cfg["reference"]["country"]]
    keys: dict[str, str] = {}
    for canonical in dict.fromkeys(named):
        key = next((a for a in aliases(cfg, canonical, NAME) if a in selections), None)
        if key is not None:
            keys[canonical] = key
    if wanted is not None and not any(c in keys for c in wanted):
        return None
    dists = {c: _normalise(selections[k], len(options), row, c) for c, k in keys.items()}
    # One distribution per country for the mean: alias keys other than the one used are dropped.
    other_alias = {a for c in keys for a in aliases(cfg, c, NAME)} - set(keys.values())
    pool, skipped = [], 0
    for country in sorted(selections):
        if country in other_alias:
            continue
        try:
            pool.append(_normalise(selections[country], len(options), row, country))
        except ValueError:
            skipped += 1
    if pool:
        dists[ALL_MEAN] = np.mean(np.asarray(pool), axis=0).tolist()
    elif wanted is None:
        return None  # "all" countries asked for, but no usable distribution at all
    meta = {"row": row, "key": content_key, "country_keys": keys, "all_mean_n": len(pool),
            "all_mean_skipped": skipped, "source": str(r["source"])}
    # Read from every country of the row (the item keeps only a few): a list joining several
    # questions' options shows in countries answering on disjoint options (metrics/proscore.yaml).
    answered = answered_options(selections, len(options))
    if len(answered) > 1:
        meta["answered_options"] = answered
    return {
        "item_id": f"{NAME}/{content_key}", "task": NAME, "subset": str(r["source"]).strip().lower(),
        "group_id": f"{NAME}/{content_key}", "country": None, "question": str(r["question"]),
        "options": options, "answer": None, "distributions": dumps(dists), "context": dumps({}),
        "meta": dumps(meta),
    }


def load_items(raw_root: Path, cfg: dict) -> pd.DataFrame:
    path = Path(raw_root) / "global_opinions" / FILE
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    require_columns(df, ["question", "selections", "options", "source"], path)
    wanted = selected_countries(cfg, NAME)
    # Ids from the question and option texts, not the row number: the mirror's subset and the full
    # upstream file number their rows differently but must name the same question alike.
    keys = number_repeats(content_id(q, *parse_options(o, i))
                          for i, (q, o) in enumerate(zip(df["question"], df["options"], strict=True)))
    built = (_row_item(i, r, cfg, wanted, keys[i]) for i, (_, r) in enumerate(df.iterrows()))
    rows = [item for item in built if item is not None]
    require_countries((c for r in rows for c in json.loads(r["distributions"])), wanted, NAME, cfg)
    return finish(rows, NAME, cfg)


TASK = Task(name=NAME, datasets=("global_opinions",), mode="distribution", load_items=load_items,
            parse_answer=parse_answer, metrics="culteval.metrics.opinions:global_opinions_metrics",
            ordered_scale=True, baselines="culteval.metrics.opinions:baseline_distributions",
            item_scores="culteval.metrics.opinions:global_opinions_item_scores",
            metric_view="culteval.metrics.opinions:national_only",
            params_schema={"countries": {"$ref": "#/$defs/countries"}, "sampled": SAMPLED_SCHEMA})
