"""Load the pipeline's artifacts back by their contract paths."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from culteval.io import (
    QUARANTINE,
    DamagedFileError,
    MixedSetError,
    check_set,
    read_json,
    read_parquet,
    reject,
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


#: the record a stage writes beside outputs built from many artifacts (results/metrics/): its
#: ``outputs`` holds the sha256 of each file the stage wrote there
RECORDED = "provenance.json"


def check_recorded(path: str | Path, required: bool = False, cfg: dict | None = None) -> None:
    """Refuse a file its stage did not write as it is (e.g. ``results/metrics/summary.csv`` edited
    by hand): its sha256 must be the one the stage recorded in ``provenance.json`` beside it. A
    file that differs is moved aside (so the stage remakes it, and what was made from it reruns);
    without a record beside it, ``required`` refuses it (moved aside too), else it is taken as is.
    With ``cfg``, a file made under other params than these (the metrics rule's keys) is set
    aside as stale."""
    path = Path(path)
    record = path.parent / RECORDED
    if not record.is_file():
        if required:
            raise reject(path, f"has no record of the stage that made it beside it ({record}); "
                               "rerun the metrics stage (dvc repro metrics, or "
                               "snakemake results/metrics/summary.csv)")
        return
    outputs = read_json(record).get("outputs")
    want = outputs.get(path.name) if isinstance(outputs, dict) else None
    got = sha256_file(path)
    if want is None:
        if required:
            raise reject(path, f"its stage's record {record} names no sha256 for it (made by an older "
                               "culteval); rerun the metrics stage (dvc repro metrics, or "
                               "snakemake results/metrics/summary.csv)")
        return
    if got != want:
        raise reject(path, f"edited after its stage wrote it: sha256 {got}, its record {record} says "
                           f"{want}; not the pipeline's output, rerun the metrics stage (dvc repro "
                           "metrics, or snakemake results/metrics/summary.csv)")
    if cfg is not None:
        import json

        from culteval.dvcgraph import settings

        why = _changed_settings(read_json(record).get("settings"), json.loads(settings("metrics", cfg, {})))
        if why:
            raise reject(path, why)


def _changed_settings(made: dict | None, now: dict) -> str | None:
    """Why params recorded as ``made`` are not ``now`` (None when they are the same)."""
    import json

    if made is None:
        return ("carries no record of the params it was made under (made by an older culteval); "
                "stale")
    changed = sorted(k for k in set(now) | set(made) if now.get(k) != made.get(k))
    if not changed:
        return None
    key = changed[0]
    more = f" (and {len(changed) - 1} more: {', '.join(changed[1:])})" if len(changed) > 1 else ""
    return (f"stale: made under params.{key}={json.dumps(made.get(key), sort_keys=True)}, params now say "
            f"{json.dumps(now.get(key), sort_keys=True)}{more}")


#: the rule that makes each kind of artifact (culteval.dvcgraph's table names its params keys)
_RULE = {"items": "prepare", "translations": "translate", "prompts": "render", "raw": "infer"}


def _made_by_this_run(ident: dict, cfg: dict) -> bool:
    """Whether the params make an artifact of this identity at all (its culture, task, strategy
    and model are in them): one they no longer make is left alone, as Snakemake leaves it."""
    from culteval.config import enabled_tasks

    return (ident.get("culture") in cfg["cultures"]
            and ident.get("task", enabled_tasks(cfg)[0]) in enabled_tasks(cfg)
            and ident.get("strategy", cfg["strategies"][0]) in cfg["strategies"]
            and ident.get("model", next(iter(cfg["models"]))) in cfg["models"])


def stale_settings(path: str | Path, ident: dict, cfg: dict) -> str | None:
    """Why an artifact was made under other params than ``cfg`` (None when it was not): the
    params its rule depends on (culteval.dvcgraph, the same keys Snakemake's params trigger
    hashes), as the writer recorded them in ``settings``, against what ``cfg`` says now."""
    import json

    from culteval.dvcgraph import settings
    from culteval.io import read_provenance

    if ident["kind"] not in _RULE or not _made_by_this_run(ident, cfg):
        return None
    now = json.loads(settings(_RULE[ident["kind"]], cfg, {k: v for k, v in ident.items() if k != "kind"}))
    return _changed_settings((read_provenance(path) or {}).get("settings"), now)


def _source_path(path: Path, ident: dict, key: str) -> Path | None:
    """Where the source ``key`` of an artifact's identity (``items``, ``items/<task>``,
    ``translations``, ``prompts``) lives in the same project layout as the artifact."""
    parts = path.parts
    top = max((i for i, p in enumerate(parts[:-1]) if p in ("data", "results")), default=None)
    if top is None or parts[top + 1] not in ("items", "translations", "prompts", "raw"):
        return None
    root, culture = Path(*parts[:top]) if top else Path("."), ident.get("culture")
    kind, _, task = key.partition("/")
    task = task or ident.get("task")
    where = {"items": ("data", "items", culture, f"{task}.parquet"),
             "translations": ("data", "translations", f"{culture}.parquet"),
             "prompts": ("data", "prompts", culture, task or "", f"{ident.get('strategy')}.parquet"),
             }.get(kind)
    return root.joinpath(*where) if where and culture and (kind == "translations" or task) else None


def stale_sources(path: Path, ident: dict, hashes: dict[Path, str]) -> str | None:
    """Why an artifact was made from other files than those now at its sources' paths (None when
    it was not, or a source is missing: its own stage remakes it). ``hashes`` caches sha256s."""
    from culteval.io import read_provenance

    made = ((read_provenance(path) or {}).get("identity") or {}).get("sources") or {}
    for key, sha in sorted(made.items()):
        src = _source_path(path, ident, key)
        if src is None or not src.is_file():
            continue
        if src not in hashes:
            hashes[src] = sha256_file(src)
        if hashes[src] != sha:
            return f"stale: made from {src} with sha256 {sha}, which now holds {hashes[src]}"
    return None


def validate(paths: list[str | Path], cfg: dict | None = None) -> tuple[int, list[str]]:
    """Read every Parquet artifact under ``paths`` as its stage's reader would (integrity, row
    count, and the identity its contract path names) and, with ``cfg``, check it was made under
    these params (:func:`stale_settings`) from the files now at its sources' paths
    (:func:`stale_sources`); a file its stage recorded in ``provenance.json``
    (the summary, metrics.json) must hold the bytes recorded. A bad or stale one is moved aside.
    Every set of files written together (a ``provenance.json`` with a ``set``) is checked whole.
    Checkpoint folders and the quarantine are skipped. Returns (files checked, problems)."""
    files = []
    for root in map(Path, paths):
        found = [root] if root.is_file() else sorted(root.rglob("*.parquet")) if root.is_dir() else []
        files += [f for f in found if not any(part.endswith(".chunks") for part in f.parts)
                  and QUARANTINE.as_posix() not in f.as_posix()]
    problems, hashes = [], {}
    for f in files:
        try:
            if f.suffix != ".parquet":
                check_recorded(f, cfg=cfg)
                continue
            expect = expected_identity(f)
            read_parquet(f, expect=expect)
            why = None
            current = cfg is not None and expect is not None and expect["kind"] in _RULE
            if current and _made_by_this_run(expect, cfg):
                why = stale_settings(f, expect, cfg) or stale_sources(f, expect, hashes)
            if why:
                raise reject(f, why)
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


def _snakemake_running_in(root: Path) -> int | None:
    """The pid of a Snakemake process on this machine whose working directory is ``root``, if any."""
    import psutil  # Snakemake's own dependency

    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        cmd, cwd = proc.info.get("cmdline") or [], proc.info.get("cwd")
        # `snakemake ...` is `<python> <bin>/snakemake ...` or `python -m snakemake ...`
        if cwd and Path(cwd).resolve() == root and any(Path(c).name == "snakemake" for c in cmd[:3]):
            return proc.info["pid"]
    return None


def release_stale_lock(root: str | Path = ".") -> tuple[list[Path], int | None]:
    """Remove the lock (``.snakemake/locks``) that a Snakemake run killed or interrupted in
    ``root`` left behind, but only when no Snakemake process on this machine works there.
    Returns (lock files removed, pid of the live run that keeps them)."""
    root = Path(root).resolve()
    locks = sorted((root / ".snakemake" / "locks").glob("*.lock"))
    if not locks:
        return [], None
    pid = _snakemake_running_in(root)
    if pid is not None:
        return [], pid
    for lock in locks:
        lock.unlink(missing_ok=True)
    return locks, None
