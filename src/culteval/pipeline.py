"""Load the pipeline's artifacts back by their contract paths."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from culteval.io import (
    QUARANTINE,
    DamagedFileError,
    MixedSetError,
    check_set,
    read_parquet,
    require_rows,
    sha256_file,
)

# what to check when a table the metrics stage reads is empty (culteval.io.require_rows)
ITEMS_CHECK = "params.tasks.<task> (filters, limit, itemset) and the raw data, then rerun culteval prepare"
RAW_CHECK = "the prompts table it was run on, then rerun culteval infer"
PROMPTS_CHECK = "the item table it was rendered from, then rerun culteval render"


def load_items(paths: list[str | Path], culture: str | None = None) -> dict[str, pd.DataFrame]:
    """One culture's ``data/items/<culture>/<task>.parquet`` files keyed by task (checked against
    the items contract, and with ``culture`` against the identity each file records)."""
    from culteval.tasks import COLUMNS

    return {Path(p).stem: require_rows(read_parquet(p, columns=COLUMNS, expect=None if culture is None else {
        "kind": "items", "culture": culture, "task": Path(p).stem}), p, "item", ITEMS_CHECK)
        for p in sorted(paths)}


def raw_key(path: str | Path) -> tuple[str, str, str]:
    """(model, task, strategy) of ``results/raw/<culture>/<model>/<task>/<strategy>.parquet``."""
    path = Path(path)
    return path.parent.parent.name, path.parent.name, path.stem


def load_raw(paths: list[str | Path], params: dict | None = None, culture: str | None = None,
             items: list[str | Path] = ()) -> dict[tuple[str, str, str], pd.DataFrame]:
    """Raw outputs keyed by (model, task, strategy), checked against the contract and ``params``;
    with ``culture``, also against the identity each file records: the culture, model, task and
    strategy its path names and, where the task's item table is among ``items``, that table's
    sha256 (a raw output of older items would be scored against these items' answers)."""
    from culteval.engine import RAW_COLUMNS

    items_sha = {Path(p).stem: sha256_file(p) for p in items}
    out = {}
    for p in sorted(paths):
        model, task, strategy = raw_key(p)
        expect = None
        if culture is not None:
            expect = {"kind": "raw", "culture": culture, "model": model, "task": task, "strategy": strategy}
            if task in items_sha:
                expect["sources.items"] = items_sha[task]
        out[(model, task, strategy)] = require_rows(
            read_parquet(p, columns=RAW_COLUMNS, params=params, expect=expect), p, "raw output", RAW_CHECK)
    return out


def load_machine_translated(paths: list[str | Path]) -> dict[tuple[str, str], bool]:
    """One culture's ``data/prompts/<culture>/<task>/<strategy>.parquet`` files: per (task,
    strategy), whether any rendered prompt shows a machine-made translation (its
    ``machine_translated`` column, decided from the strings' origins at render time)."""
    out = {}
    for p in sorted(paths, key=str):
        df = require_rows(read_parquet(p, columns=["task", "strategy", "machine_translated"],
                                       expect=expected_identity(p)), p, "prompts", PROMPTS_CHECK)
        out[(Path(p).parent.name, Path(p).stem)] = bool(df["machine_translated"].any())
    return out


# where the culture's key sits in each artifact's path (counted from the file's folder upwards)
_CULTURE_LEVEL = {"items": 0, "raw": 2, "prompts": 1}


def culture_of_path(path: str | Path, kind: str) -> str:
    """The culture key of ``data/items/<culture>/<task>.parquet`` (kind ``items``),
    ``data/prompts/<culture>/<task>/<strategy>.parquet`` (kind ``prompts``) or
    ``results/raw/<culture>/<model>/<task>/<strategy>.parquet`` (kind ``raw``)."""
    return Path(path).parents[_CULTURE_LEVEL[kind]].name


def by_culture(paths: list[str | Path], kind: str, cfg: dict) -> dict[str, list[str | Path]]:
    """Artifact paths grouped by culture key; a key params do not name is an error naming the file."""
    out: dict[str, list[str | Path]] = {}
    for p in sorted(paths, key=str):
        key = culture_of_path(p, kind)
        if key not in cfg["cultures"]:
            raise ValueError(f"{p}: culture {key!r} is not in params.cultures "
                             f"({', '.join(sorted(cfg['cultures']))})")
        out.setdefault(key, []).append(p)
    return out


# contract folders and the identity fields their path levels name (docs/contracts.md)
_LAYOUT = {
    ("data", "items"): ("items", ("culture", "task")),
    ("data", "translations"): ("translations", ("culture",)),
    ("data", "prompts"): ("prompts", ("culture", "task", "strategy")),
    ("results", "raw"): ("raw", ("culture", "model", "task", "strategy")),
}


def expected_identity(path: str | Path) -> dict | None:
    """What an artifact at a contract path must be (e.g. ``data/prompts/hi/normad/native.parquet``:
    kind prompts, culture hi, task normad, strategy native); None outside the contract layout."""
    parts = Path(path).with_suffix("").parts
    for i in range(len(parts) - 1):
        spec = _LAYOUT.get(parts[i:i + 2])
        if spec and len(parts) - (i + 2) == len(spec[1]):
            return {"kind": spec[0], **dict(zip(spec[1], parts[i + 2:], strict=True))}
    return None


def validate(paths: list[str | Path]) -> tuple[int, list[str]]:
    """Read every Parquet artifact under ``paths`` as its stage's reader would (integrity, row
    count, and the identity its contract path names); a bad one is moved aside. Every set of
    files written together (a ``provenance.json`` with a ``set``) is checked whole. Checkpoint
    folders and the quarantine are skipped. Returns (files checked, problems)."""
    files = []
    for root in map(Path, paths):
        found = [root] if root.is_file() else sorted(root.rglob("*.parquet")) if root.is_dir() else []
        files += [f for f in found if not any(part.endswith(".chunks") for part in f.parts)
                  and QUARANTINE.as_posix() not in f.as_posix()]
    problems = []
    for f in files:
        try:
            read_parquet(f, expect=expected_identity(f))
        except DamagedFileError as exc:
            problems.append(str(exc))
    # files written as one set (metrics, report): each set's record names its members' bytes; a
    # mixed set is named, not moved aside (no member alone is damaged)
    records = [r for root in map(Path, paths) if root.is_dir() for r in sorted(root.rglob("provenance.json"))
               if QUARANTINE.as_posix() not in r.as_posix()]
    for record in records:
        try:
            check_set(record)
        except MixedSetError as exc:
            problems.append(str(exc))
    return len(files) + len(records), problems
