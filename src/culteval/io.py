"""Atomic, deterministic file I/O shared by every stage.

Every writer goes through a temporary file in the destination folder and an
``os.replace``: a killed process never leaves a partial file under the final
name, so no later stage can read half an artifact as complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PROVENANCE_KEY = b"culteval.provenance"
FLOAT_FORMAT = "%.10g"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp creates 0600; results are meant to be shared
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def dumps_json(obj: Any) -> str:
    """Canonical JSON: sorted keys, UTF-8, stable across runs."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=2) + "\n"


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(dumps_json(obj), encoding="utf-8")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# What varies by commit, machine or checkpointing, not by content: kept out of an artifact's
# bytes (so an unchanged artifact keeps its hash and stops DVC's rerun there) and written
# to a sidecar ``<artifact>.provenance.json`` that .dvcignore hides from hashing.
LOCAL_KEYS = ("git", "culteval_version", "model.path", "engine.system_info", "params.inference.chunk_size")
SIDECAR_SUFFIX = ".provenance.json"


def sidecar_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def split_provenance(record: dict) -> tuple[dict, dict]:
    """(content, local): the record without LOCAL_KEYS and absolute input paths, and those parts."""
    content, local = json.loads(json.dumps(record)), {}
    for dotted in LOCAL_KEYS:
        *parents, last = dotted.split(".")
        node = content
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            local[dotted] = node.pop(last)
    for inp in content.get("inputs", []):
        if Path(inp["path"]).is_absolute():  # e.g. a table in the data mirror: its name and sha256 stay
            local.setdefault("input_paths", {})[Path(inp["path"]).name] = inp["path"]
            inp["path"] = Path(inp["path"]).name
    return content, local


def join_provenance(content: dict, local: dict) -> dict:
    """Inverse of :func:`split_provenance`."""
    record = json.loads(json.dumps(content))
    for dotted, value in local.items():
        if dotted in ("input_paths", "artifact_sha256"):
            continue
        *parents, last = dotted.split(".")
        node = record
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    paths = local.get("input_paths", {})
    for inp in record.get("inputs", []):
        inp["path"] = paths.get(inp["path"], inp["path"])
    return record


def write_parquet(df: pd.DataFrame, path: str | os.PathLike, provenance: dict | None = None) -> None:
    """Write ``df`` (index dropped) with the content part of its provenance record in the file's
    metadata and the commit/machine part in the sidecar (:func:`split_provenance`)."""
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    meta = dict(table.schema.metadata or {})
    local = None
    if provenance is not None:
        content, local = split_provenance(provenance)
        meta[PROVENANCE_KEY] = json.dumps(content, sort_keys=True, ensure_ascii=False).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    if local is not None:  # the artifact's hash tells a stale sidecar (killed in between) from its own
        write_json({**local, "artifact_sha256": sha256_file(path)}, sidecar_path(path))


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def read_provenance(path: str | os.PathLike) -> dict | None:
    """The provenance record of a parquet artifact: embedded content joined with its sidecar, or None.

    A missing sidecar, or one written for other bytes, contributes nothing (``local_record``
    says which).
    """
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(PROVENANCE_KEY)
    if not raw:
        return None
    content = json.loads(raw)
    side = sidecar_path(path)
    local = read_json(side) if side.is_file() else None
    if local is None or local.get("artifact_sha256") != sha256_file(path):
        return {**content, "local_record": "missing" if local is None else "stale"}
    return join_provenance(content, local)


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """CSV with a stable float format and Unix line endings."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
