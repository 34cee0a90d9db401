"""Benchmark tasks: upstream files -> canonical item tables (docs/contracts.md "Items").

Every task module exposes ``NAME``, ``DATASETS``, ``MODE``,
``load_items(raw_root, cfg) -> DataFrame`` and
``parse_answer(text, letters, shown_options) -> int | None``.
This package also holds the helpers they share: country resolution through
``params.country_aliases``, the ``limit`` rule, table assembly and the generic
answer parser.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType

import pandas as pd

COLUMNS = ("item_id", "task", "subset", "group_id", "country", "question", "options", "answer",
           "distributions", "context", "meta")


def dumps(obj) -> str:
    """Compact canonical JSON for the string columns (sorted keys, UTF-8 kept)."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


# --- countries -------------------------------------------------------------------------------------

def aliases(cfg: dict, canonical: str, dataset: str) -> list[str]:
    """Upstream spellings of ``canonical`` in ``dataset`` (preference order); the name itself if none."""
    return list(cfg.get("country_aliases", {}).get(canonical, {}).get(dataset) or [canonical])


def canonical_country(cfg: dict, dataset: str, upstream: str) -> str:
    """Canonical name for an upstream spelling; unknown countries keep their upstream name."""
    for canonical, per_dataset in cfg.get("country_aliases", {}).items():
        if upstream in (per_dataset.get(dataset) or []):
            return canonical
    return upstream


def selected_countries(cfg: dict, task: str) -> list[str] | None:
    """Canonical countries named by ``params.tasks.<task>.countries``; None means all countries."""
    wanted = cfg["tasks"][task].get("countries") or ["target", "reference"]
    out: list[str] = []
    for key in wanted:
        if key == "all":
            return None
        if key not in ("target", "reference"):
            raise ValueError(f"params.tasks.{task}.countries: unknown entry {key!r} "
                             "(target, reference or all)")
        name = cfg[key]["country"]
        if name not in out:
            out.append(name)
    return out


def require_countries(present: Iterable[str], wanted: list[str] | None, task: str, cfg: dict) -> None:
    """Fail early when the target or reference country has no items in ``task`` (before ``limit``).

    A misspelt or unsupported country would otherwise pass silently with the other
    country's items only, and surface much later as empty or NaN metrics.
    """
    if wanted is None:
        return
    present = set(present)
    for role in ("target", "reference"):
        name = cfg[role]["country"]
        if name in wanted and name not in present:
            tried = aliases(cfg, name, task)
            raise ValueError(
                f"params.{role}.country {name!r}: no {task} items (spellings tried: {tried}); "
                f"add params.country_aliases.{name}.{task}, or disable or refilter params.tasks.{task}")


# --- item identity and the pinned evaluation set ----------------------------------------------

def content_id(*parts: str, length: int = 10) -> str:
    """Short key of an item's text: the same item gets the same id in any copy, subset or row order."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:length]


def number_repeats(keys: Iterable[str]) -> list[str]:
    """Keys with verbatim repeats (duplicate rows upstream) get ``~2``, ``~3``... in file order."""
    seen: Counter[str] = Counter()
    out = []
    for key in keys:
        seen[key] += 1
        out.append(key if seen[key] == 1 else f"{key}~{seen[key]}")
    return out


def read_itemset(path: str | Path) -> list[str]:
    """Group ids listed in an item-set file (one a line; ``#`` starts a comment)."""
    from culteval.config import ROOT

    path = Path(path) if Path(path).is_absolute() else ROOT / path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"item set {path} not found") from None
    return [k for k in (line.split("#", 1)[0].strip() for line in text.splitlines()) if k]


def select_itemset(df: pd.DataFrame, task: str, cfg: dict, applies=None) -> pd.DataFrame:
    """Keep the groups listed in ``params.tasks.<task>.itemset``; a listed group that is absent raises.

    ``applies(key)`` tells which listed keys the task's other params select (culturalbench:
    keys of the subsets asked for), so switching a subset off is not a missing item.
    """
    spec = cfg["tasks"][task].get("itemset")
    if not spec:
        return df
    keys = [k for k in read_itemset(spec) if applies is None or applies(k)]
    present = set(df["group_id"])
    missing = [k for k in keys if k not in present]
    if missing:
        raise ValueError(
            f"task {task}: {len(missing)} item(s) of the pinned evaluation set {spec} are not in the data, "
            f"e.g. {missing[0]!r} (a different or truncated upstream file, or other countries/subsets "
            f"in params.tasks.{task}; params.tasks.{task}.itemset: null evaluates whatever is there)")
    return df[df["group_id"].isin(set(keys))]


# --- table assembly --------------------------------------------------------------------------------

def finish(rows: Iterable[dict], task: str, cfg: dict, *, limit_by: str | None = None,
           itemset_applies=None) -> pd.DataFrame:
    """Rows -> contract table sorted by item_id, restricted to ``params.tasks.<task>.itemset``
    (when set), with ``params.tasks.<task>.limit`` applied.

    ``limit`` keeps the first N *groups* in item_id order (a group is never split;
    ungrouped items are their own group). ``limit_by`` names a column within
    which the limit applies separately (culturalbench: per subset).
    """
    df = pd.DataFrame(list(rows), columns=list(COLUMNS))
    df = df.sort_values("item_id", kind="stable").reset_index(drop=True)
    if df["item_id"].duplicated().any():
        dup = df.loc[df["item_id"].duplicated(), "item_id"].iloc[0]
        raise ValueError(f"task {task}: duplicate item_id {dup!r}")
    df = select_itemset(df, task, cfg, itemset_applies)
    limit = cfg["tasks"][task].get("limit")
    if limit is not None and len(df):
        keep = []
        parts = [df] if limit_by is None else [g for _, g in df.groupby(limit_by, sort=True)]
        for part in parts:
            groups = list(dict.fromkeys(part["group_id"]))[: int(limit)]
            keep.append(part[part["group_id"].isin(groups)])
        df = pd.concat(keep).sort_values("item_id", kind="stable").reset_index(drop=True)
    df["country"] = df["country"].astype(object).where(df["country"].notna(), None)
    df["answer"] = df["answer"].astype(object).where(df["answer"].notna(), None)
    return df


def require_columns(df: pd.DataFrame, columns: Sequence[str], path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")


# --- answer parsing --------------------------------------------------------------------------------

# Devanagari vowel signs are not \w in Python's re, so word boundaries are spelled out.
_WORD = r"[\w\u0900-\u097F]"
_PREFIX = re.compile(r"^\s*\**\s*(?:(?:the\s+)?(?:correct\s+)?answer(?:\s+is)?\s*[:\-]?\s*\**)?\s*[(\[]?\s*",
                     re.IGNORECASE)


def _bounded(alias: str) -> str:
    return rf"(?<!{_WORD}){re.escape(alias)}(?!{_WORD})"


def leading_letter(text: str, letters: Sequence[str]) -> int | None:
    """Index of the answer label the text starts with: "B", " B.", "(B)", "Answer: B", "**B**"."""
    rest = text[_PREFIX.match(text).end():]
    for i in sorted(range(len(letters)), key=lambda k: -len(letters[k])):
        letter = letters[i]
        # single letters must match case (an article "a" is not option A); words need not
        flags = 0 if len(letter) == 1 else re.IGNORECASE
        if letter and re.match(rf"{re.escape(letter)}(?!{_WORD})", rest, flags):
            return i
    return None


def first_occurrence(text: str, candidates: Sequence[tuple[str, int]]) -> int | None:
    """Index attached to the alias found earliest in ``text`` (longest wins a tie), case-insensitive."""
    best: tuple[int, int, int] | None = None  # (start, -length, index)
    folded = text.casefold()
    for alias, index in candidates:
        alias = alias.strip().casefold()
        if not alias:
            continue
        m = re.search(_bounded(alias), folded)
        if m and (best is None or (m.start(), -len(alias)) < best[:2]):
            best = (m.start(), -len(alias), index)
    return None if best is None else best[2]


def parse_answer(text: str | None, letters: Sequence[str], shown_options: Sequence[str]) -> int | None:
    """Generic parse: a leading answer label first, then the earliest shown option text; else None."""
    if not text or not text.strip():
        return None
    i = leading_letter(text, letters)
    if i is not None:
        return i
    body = text[_PREFIX.match(text).end():]
    return first_occurrence(body, [(o, k) for k, o in enumerate(shown_options)])


# --- registry --------------------------------------------------------------------------------------

def _modules() -> dict[str, ModuleType]:
    from culteval.tasks import cultural_map, culturalbench, global_opinions, normad

    return {m.NAME: m for m in (cultural_map, global_opinions, culturalbench, normad)}


def get(name: str) -> ModuleType:
    """The task module called ``name``; KeyError listing the known tasks otherwise."""
    tasks = _modules()
    if name not in tasks:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(tasks))}")
    return tasks[name]


def __getattr__(attr: str):
    # TASKS is built lazily so that importing one task module does not import the others first.
    if attr == "TASKS":
        return _modules()
    raise AttributeError(attr)
