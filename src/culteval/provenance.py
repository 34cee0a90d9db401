"""The provenance record every artifact carries: what data, model, prompts, params and code made it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from culteval import __version__
from culteval.config import ROOT
from culteval.io import read_json, sha256_file


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


def input_record(path: str | Path) -> dict:
    """sha256 and origin of an input file; raw data files inherit their manifest's origin."""
    path = Path(path)
    rec = {"path": path.as_posix(), "sha256": sha256_file(path)}
    manifest = path.parent / "PROVENANCE.json"
    if manifest.is_file() and path.name != manifest.name:
        entry = read_json(manifest)["files"].get(path.name)
        if entry:
            rec.update(origin=entry["origin"], url=entry["url"], subset=entry["subset"])
    return rec


def record(*, inputs: list[str | Path] = (), model: dict | None = None, templates: dict | None = None,
           params: dict | None = None, engine: dict | None = None) -> dict:
    """Assemble a provenance record. No timestamps: same inputs, same bytes."""
    return {
        "culteval_version": __version__,
        "git": git_info(),
        "inputs": [input_record(p) for p in sorted({Path(p).as_posix() for p in inputs})],
        "model": model,
        "templates": templates or {},
        "params": params or {},
        "engine": engine,
    }
