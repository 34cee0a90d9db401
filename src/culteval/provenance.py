"""The provenance record every artifact carries: what data, model, prompts, params and code made it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from culteval import __version__
from culteval.config import ROOT
from culteval.io import read_json, sha256_file, sidecar_path

MANIFEST = "PROVENANCE.json"  # beside each raw dataset's files (culteval.acquire.acquire_dataset)


def git_info(root: Path = ROOT) -> dict:
    """Commit and dirty flag of the project checkout (None outside git)."""
    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError):
            return None
        return out.stdout.strip()

    commit = run("rev-parse", "HEAD")
    # dvc.lock is rewritten by `dvc repro` itself, mid-run; counting it would mark every
    # stage after the first as built from modified code.
    status = run("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)dvc.lock")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def input_record(path: str | Path, sha256: str | None = None) -> dict:
    """sha256 of an input file; a raw data file adds its manifest's URL and subset note.

    ``sha256``: the hash the stage took of the bytes it used (culteval.inputs), recorded as it is;
    without it the file is hashed now. Content facts only: where the file came from (mirror path,
    download host) lives in the manifest's sidecar (culteval.acquire.dataset_provenance), so an
    artifact's bytes do not depend on it.
    """
    path = Path(path)
    rec = {"path": path.as_posix(), "sha256": sha256 or sha256_file(path)}
    manifest = path.parent / MANIFEST
    if manifest.is_file() and path.name != manifest.name:
        entry = read_json(manifest)["files"].get(path.name)
        if entry:
            rec.update(url=entry["url"], subset=entry.get("subset"))
    return rec


def dataset_provenance(manifest: str | Path) -> dict:
    """A raw dataset's PROVENANCE.json joined with its sidecar's ``origin``, ``source`` and ``pin``
    per file; a missing sidecar, or one written for other manifest bytes, joins nothing and
    ``local_record`` says ``missing`` or ``stale``."""
    manifest = Path(manifest)
    content = read_json(manifest, keys=("files",))
    side = sidecar_path(manifest)
    local = read_json(side) if side.is_file() else None
    if local is None or local.get("artifact_sha256") != sha256_file(manifest):
        return {**content, "local_record": "missing" if local is None else "stale"}
    extra = local.get("files") or {}
    return {**content, "files": {f: {**e, **extra.get(f, {})} for f, e in content["files"].items()}}


def raw_origin(path: str | Path) -> dict | None:
    """Where a raw data file came from (``origin`` mirror|url, ``source``, ``pin``), from its
    manifest's sidecar; None without a manifest entry or a current sidecar."""
    path = Path(path)
    manifest = path.parent / MANIFEST
    if not manifest.is_file() or path.name == MANIFEST:
        return None
    prov = dataset_provenance(manifest)
    entry = prov["files"].get(path.name)
    if prov.get("local_record") or not entry:
        return None
    return {k: entry[k] for k in ("origin", "source", "pin") if k in entry}


def identity(kind: str, *, sources: dict[str, str | Path] | None = None, **fields) -> dict:
    """What an artifact is, for its readers to check before use (``culteval.io.read_parquet``'s
    ``expect``): its ``kind`` (items, translations, prompts, raw, chunk), the fields that name
    it (culture, task, strategy, model; None fields are left out) and ``sources``, the sha256
    of the artifacts it was made from (a path is hashed; a string is taken as a hash)."""
    src = {k: v if isinstance(v, str) else sha256_file(v) for k, v in (sources or {}).items()}
    return {"kind": kind, **{k: v for k, v in fields.items() if v is not None},
            "sources": dict(sorted(src.items()))}


def record(*, inputs: list[str | Path] = (), model: dict | None = None, templates: dict | None = None,
           params: dict | None = None, engine: dict | None = None, identity: dict | None = None,
           hashes: dict[str, str] | None = None) -> dict:
    """Assemble a provenance record. No timestamps: same inputs, same bytes.

    ``hashes``: input path (posix) -> the sha256 the stage took of the bytes it used, for the
    inputs it checked at use (culteval.inputs); other inputs are hashed here."""
    hashes = hashes or {}
    return {
        **({"identity": identity} if identity is not None else {}),
        "culteval_version": __version__,
        "git": git_info(),
        "inputs": [input_record(p, hashes.get(p)) for p in sorted({Path(p).as_posix() for p in inputs})],
        "model": model,
        "templates": templates or {},
        "params": params or {},
        "engine": engine,
    }
