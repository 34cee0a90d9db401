"""Benchmark tasks: one module per task, each ending in a :class:`Task` declaration.

A task module turns its upstream files into the canonical items table
(docs/contracts.md "Items") and declares everything the later stages need to
know about it: datasets, mode, answer labels, answer parser, its own params and
the metrics it contributes. Stages ask :func:`get` instead of naming tasks, so a
new benchmark is one module here plus its template folder (docs/architecture.md).

This package also holds the helpers the modules share: country resolution
through ``params.country_aliases``, the ``limit`` rule, table assembly and the
generic answer parser.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

# Row builders for metric functions a task module defines itself (culteval.stats, below the stages).
from culteval.stats import mean_row, plain_row  # noqa: F401

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


def _key_of(cfg: dict, role: str) -> str:
    """Where params name the target or reference: ``cultures.<key>`` for a culture under test."""
    if role == "target" and "cultures" in cfg:
        from culteval.config import culture_of

        return f"cultures.{culture_of(cfg)}"
    return role


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
                f"params.{_key_of(cfg, role)}.country {name!r}: no {task} items (spellings tried: {tried}); "
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
    """Group ids listed in an item-set file (one a line; ``#`` starts a comment); a relative path
    names a file of the project the run is in (culteval.config.project_file)."""
    from culteval.config import project_file

    path = project_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"item set {path} not found") from None
    return [k for k in (line.split("#", 1)[0].strip() for line in text.splitlines()) if k]


SAMPLE_NOTE = "# sample: "  # an item-set line that says the set is a sample of a larger one


def itemset_sample_note(path: str | Path) -> str | None:
    """What an item-set file says it samples (its ``# sample: ...`` line), or None for a whole set."""
    from culteval.config import project_file

    path = project_file(path)
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(SAMPLE_NOTE):
            return line[len(SAMPLE_NOTE):].strip()
    return None


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


def json_object(value, what: str, item_id: str) -> dict:
    """A JSON-object column of the items table (``context``, ``meta``) as a dict; empty -> {}."""
    if value is None or value == "":
        return {}
    try:
        out = json.loads(value) if isinstance(value, str) else dict(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"item {item_id}: column {what!r} is not a JSON object: {exc}") from None
    if not isinstance(out, dict):
        raise ValueError(f"item {item_id}: column {what!r} is not a JSON object")
    return out


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


# --- sampled answers for distribution tasks -------------------------------------------------------

#: ``params.tasks.<name>.sampled`` for a distribution task (GlobalOpinionQA, the map): trials > 0 adds
#: that many sampled answers per prompt at that temperature (mode ``both``), so self-consistency
#: exists for opinions (Rystrom et al. 2025 sampled at 0.7). 0 trials: distributions only.
SAMPLED_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["trials", "temperature"],
    "properties": {"trials": {"type": "integer", "minimum": 0},
                   "temperature": {"type": "number", "minimum": 0}},
}


def sampling(cfg: dict, task: str) -> dict:
    """The mode, trials and temperature a task's prompts run with.

    A task's own ``sampled`` section (distribution tasks) overrides ``params.sampling`` for it;
    without one (or with 0 trials) the task keeps its declared mode and the run-wide sampling.
    """
    declared = get(task)
    own = (cfg["tasks"].get(task) or {}).get("sampled")
    if own and own["trials"] > 0:
        return {"mode": "both", "trials": int(own["trials"]), "temperature": float(own["temperature"])}
    return {"mode": declared.mode, "trials": int(cfg["sampling"]["trials"]),
            "temperature": float(cfg["sampling"]["temperature"])}


# --- declaration and registry --------------------------------------------------------------------

MODES = ("distribution", "both", "generate")
LABEL_KINDS = ("letters", "words")


@dataclass(frozen=True)
class Task:
    """What every stage needs to know about one benchmark.

    ``mode``: ``distribution`` (logit distribution over the answer labels only),
    ``both`` (plus sampled answers) or ``generate`` (sampled free-text answers only,
    for short-answer tasks without options). ``labels``: ``letters`` (A, B, C ... before
    each option) or ``words`` (the option words are the labels, NormAd's Yes/No/
    Neither). ``metrics`` names the function that turns raw outputs into summary
    rows as ``"module:function"``; it is imported only by the metrics stage, so
    that this earlier stage never imports a later one. ``params_schema``: JSON
    schema of the task's own keys under ``params.tasks.<name>`` (beside the
    common ``enabled``, ``limit``, ``countries``). ``subsets``: the values the
    items' ``subset`` column may take (None: not checked). ``ordered_scale``:
    options form an ordered answer scale (opinion surveys), which enables
    rank-correlation consistency. ``baselines``: ``"module:function"`` giving human
    reference answers as ``{name: {item_id: distribution}}``, scored like a model.
    ``item_scores``: ``"module:function"`` ``(items, dists, cfg, raw=None)`` giving per-unit
    scores ``{metric: {unit: value}}`` for paired (like-for-like) comparisons between models
    (``raw``: the run's raw outputs, for metrics of sampled answers; None for a baseline).
    ``metric_view``: a function ``(items, cfg) -> items`` applied before any metric (e.g.
    national samples only).
    ``reference_rows``: a function ``(items, cfg, inputs) -> rows`` about the run's
    reference data rather than a model (e.g. the map projection's fit quality).
    ``numbered_options``: the templates also list the options by number ("2) No"), so a
    number is a spelling of its label too (chat models answer with it).
    ``strategies``: the prompting strategies the task supports (None: all four).
    ``max_tokens``: sampled-answer length for this task (None: ``params.sampling.max_tokens``).
    """

    name: str
    datasets: tuple[str, ...]
    mode: str
    load_items: Callable[..., pd.DataFrame]
    parse_answer: Callable[[str | None, Sequence[str], Sequence[str]], int | None]
    metrics: str
    labels: str = "letters"
    subsets: frozenset[str] | None = None
    ordered_scale: bool = False
    numbered_options: bool = False
    baselines: str | None = None
    item_scores: str | None = None
    metric_view: str | None = None
    reference_rows: str | None = None
    strategies: tuple[str, ...] | None = None
    max_tokens: int | None = None
    params_schema: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"task {self.name}: mode {self.mode!r} is not one of {MODES}")
        if self.labels not in LABEL_KINDS:
            raise ValueError(f"task {self.name}: labels {self.labels!r} is not one of {LABEL_KINDS}")

    def answer_labels(self, shown: Sequence[str], item_id: str) -> list[str]:
        """The label printed before each shown option and scored by the engine."""
        if self.labels == "words":
            labels = [str(s) for s in shown]
            if len(set(labels)) != len(labels):
                raise ValueError(f"item {item_id}: answer words are not distinct: {labels}")
            return labels
        if len(shown) > len(string.ascii_uppercase):
            raise ValueError(f"item {item_id}: {len(shown)} options exceed the letters A-Z")
        return list(string.ascii_uppercase[: len(shown)])

    def label_spellings(self, labels: Sequence[str]) -> list[list[str]]:
        """Per shown option, every form the prompt offers for its label (the engine sums their mass)."""
        return [[label, *([str(i + 1)] if self.numbered_options else [])] for i, label in enumerate(labels)]

    def function(self, which: str) -> Callable:
        """The function a ``"module:function"`` field names (imported on first use)."""
        module, _, attr = getattr(self, which).partition(":")
        return getattr(importlib.import_module(module), attr)

    def metric_function(self) -> Callable[..., list[dict]]:
        return self.function("metrics")


def _discover() -> dict[str, Task]:
    """Every module of this package that declares ``TASK`` (adding a module adds the task)."""
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        task = getattr(module, "TASK", None)
        if isinstance(task, Task):
            if task.name != info.name:
                raise ValueError(f"module culteval.tasks.{info.name} declares task {task.name!r}: "
                                 "the module and the task must share one name")
            found[task.name] = task
    return found


_REGISTRY: dict[str, Task] = {}


def registry() -> dict[str, Task]:
    """All declared tasks by name, sorted (built on first use)."""
    if not _REGISTRY:
        _REGISTRY.update(_discover())
    return _REGISTRY


def names() -> list[str]:
    return list(registry())


def get(name: str) -> Task:
    """The task called ``name``; KeyError listing the known tasks otherwise."""
    tasks = registry()
    if name not in tasks:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(tasks)}")
    return tasks[name]
