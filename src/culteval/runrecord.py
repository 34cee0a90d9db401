"""The record of what determines a run's summary rows: its models and its run-wide settings.

``make publish`` writes the published run's record beside its summary
(``results/published/params.json``); ``culteval verify`` builds the same record for the run being
checked and compares the two, so it can tell rows made under the published settings (held to the
tolerances) from rows of added, removed or re-configured models (listed, not failed).

The record holds, per model, its file's sha256 (not where the file sits: the same bytes from
another path, URL or package are the same model) and its other entries (chat template, GPU
layers, and the labels ``group``, ``family``, ``multilingual``, ``base``, which only pooled rows
use); and, for the run, every other params section with the files it names (itemsets,
translation tables) replaced by their hashes. Settings the results do not depend on are left out
(:data:`NOT_RESULTS`), so changing them is not reported as a change of settings.
"""

from __future__ import annotations

import json
from pathlib import Path

from culteval.config import ROOT
from culteval.io import sha256_file, write_json

FORMAT = 1
#: a model's labels: they feed group means, comparisons and the mixed model, not its own rows
POOLING_LABELS = ("group", "family", "multilingual", "base")
#: where a model's file comes from: replaced by the file's hash when it is known
SOURCE_KEYS = ("path", "url", "hf", "package", "file", "sha256")
#: run settings the numbers do not depend on (params.yaml says so for each; docs/pipeline.md)
NOT_RESULTS = (("inference", "n_threads"), ("inference", "chunk_size"))


def _file_hash(path: str) -> dict:
    """A params-named file as its hash (relative paths resolve against the project root): the same
    bytes at another path are the same setting; a missing file is recorded by its path."""
    p = Path(path)
    p = p if p.is_absolute() else ROOT / p
    return {"sha256": sha256_file(p)} if p.is_file() else {"path": str(path), "sha256": None}


def model_entry(name: str, spec: dict, models_dir: Path) -> dict:
    """One model's record: its file's sha256 (from data/models/<name>.json when the run acquired
    it, else the sha256 params pin), its settings, and its source only when no hash is known."""
    digest = None
    acquired = models_dir / f"{name}.json"
    if acquired.is_file():
        digest = json.loads(acquired.read_text(encoding="utf-8")).get("sha256")
    digest = digest or spec.get("sha256")
    entry = {k: v for k, v in spec.items() if k not in SOURCE_KEYS}
    entry["sha256"] = digest
    if digest is None:
        entry["source"] = {k: spec[k] for k in SOURCE_KEYS if k in spec}
    return entry


def build(cfg: dict, models_dir: str | Path = "data/models") -> dict:
    """The record of a validated config (:func:`culteval.config.load_params`)."""
    models_dir = Path(models_dir)
    run = json.loads(json.dumps({k: v for k, v in cfg.items() if k != "models"}, default=str))
    for section, key in NOT_RESULTS:
        (run.get(section) or {}).pop(key, None)
    if "cultures" in run:  # a one-culture config is also its own view: target, translation.table
        run.pop("target", None)
        (run.get("translation") or {}).pop("table", None)
    for task in (run.get("tasks") or {}).values():
        if isinstance(task, dict) and task.get("itemset"):
            task["itemset"] = _file_hash(task["itemset"])
    for culture in (run.get("cultures") or {}).values():
        if isinstance(culture, dict) and culture.get("translation_table"):
            culture["translation_table"] = _file_hash(culture["translation_table"])
    models = {name: model_entry(name, spec, models_dir) for name, spec in sorted(cfg["models"].items())}
    return {"format": FORMAT, "models": models, "run": run}


def write(record: dict, path: str | Path) -> None:
    write_json(record, path)


def read(path: str | Path) -> dict:
    """A published record; one that does not parse or lacks a part is an error naming the file."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a run record (invalid JSON: {exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path}: not a run record of format {FORMAT} (write it with `make publish`)")
    for key in ("models", "run"):
        if not isinstance(record.get(key), dict):
            raise ValueError(f"{path}: run record lacks {key!r} (a mapping)")
    for name, entry in record["models"].items():
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: run record's model {name!r} is not a mapping")
    return record


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def differences(old, new, prefix: str = "") -> list[str]:
    """Where two records (or parts) differ, one ``key.path: old -> new`` line each, sorted."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"{path}: added ({_short(new[key])})")
            elif key not in new:
                out.append(f"{path}: removed (was {_short(old[key])})")
            else:
                out += differences(old[key], new[key], path)
        return out
    return [] if old == new else [f"{prefix or 'value'}: {_short(old)} -> {_short(new)}"]


def model_changes(published: dict, current: dict) -> dict[str, list[str]]:
    """Models of both records whose own settings differ (labels aside): name -> differences."""
    def own(entry: dict) -> dict:
        return {k: v for k, v in entry.items() if k not in POOLING_LABELS}

    return {name: diff for name in sorted(set(published["models"]) & set(current["models"]))
            if (diff := differences(own(published["models"][name]), own(current["models"][name])))}
