"""A fresh clone with a network and no mirror: the hosts are a local HTTP server on 127.0.0.1.

The project tree is copied as a clone would have it (tracked and unignored files only),
CULTEVAL_DATA_MIRROR is unset, and the hosts' base URLs point at the server, which
serves the mirror's files under their upstream paths.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import clone

from culteval import tasks
from culteval.config import ROOT, enabled_tasks, load_params
from culteval.io import read_parquet


def pinned(cfg: dict) -> list[str]:
    """The enabled tasks whose params name a pinned evaluation set."""
    return [t for t in enabled_tasks(cfg) if cfg["tasks"][t].get("itemset")]


def snakemake(repo: Path, upstream, *targets: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CULTEVAL_DATA_MIRROR"}
    env.update(PYTHONPATH=str(repo / "src"), DVC_NO_ANALYTICS="1",
               CULTEVAL_PARAMS=f"{repo / 'params.yaml'}:{repo / 'tests/data/params.tiny.yaml'}",
               CULTEVAL_HF_ENDPOINT=upstream.base + "/hf", CULTEVAL_GITHUB_RAW_ENDPOINT=upstream.base + "/gh",
               CULTEVAL_DOWNLOAD_BACKOFF="0")
    env.pop("CULTEVAL_SOURCES_LOCK", None)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(repo),
           "--cores", "2", *targets]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        logs = "".join(p.read_text() for p in sorted((repo / "logs").rglob("*.log")))
        raise AssertionError(f"snakemake failed:\n{proc.stderr[-4000:]}\n{logs[-4000:]}")
    return proc


@pytest.fixture()
def served(upstream, mirror):
    from upstream_server import serve_mirror

    serve_mirror(upstream, load_params(ROOT / "params.yaml"), mirror)
    return upstream


def test_fresh_clone_acquires_over_http_and_prepares_the_pinned_set(served, mirror, tmp_path):
    repo = clone(tmp_path / "clone")
    assert yaml.safe_load((repo / "sources.lock.yaml").read_text())["sources"] == {}
    snakemake(repo, served, "all_items", "data/translations/hi.parquet")
    # every dataset file came over HTTP, and the unpinned ones are now pinned on first use
    fetched = {path for path, _ in served.requests}
    assert fetched <= set(served.files)  # no 404s
    assert {p.rsplit("/", 1)[1] for p in fetched} == {  # the files of the tasks' datasets
        "global_opinions.csv", "CulturalBench-Easy.csv", "CulturalBench-Hard.csv",
        "normad_etiquette_final_data.csv", "codebook.json", "question_metadata.json",
        "Assam_data.json", "US_data.json", "dataset.json"}
    locked = yaml.safe_load((repo / "sources.lock.yaml").read_text())["sources"]
    assert sorted(v["file"] for v in locked.values()) == [
        "blend/Assam_data.json", "blend/US_data.json",
        "culturalbench/CulturalBench-Hard.csv", "global_opinions/global_opinions.csv",
        "normad/normad_etiquette_final_data.csv"]
    # the same item ids as the mirror gives for the same params
    cfg = load_params(f"{ROOT / 'params.yaml'}:{ROOT / 'tests/data/params.tiny.yaml'}")
    for name in pinned(cfg):
        via_http = read_parquet(repo / "data" / "items" / "hi" / f"{name}.parquet")["item_id"].tolist()
        assert via_http == tasks.get(name).load_items(mirror, cfg)["item_id"].tolist(), name
    # the translate stage read the project's own table
    assert (repo / "data" / "translations" / "hi.parquet").is_file()


def test_changed_upstream_file_stops_the_next_clone(served, tmp_path):
    repo = clone(tmp_path / "clone")
    snakemake(repo, served, "data/raw/normad/PROVENANCE.json")
    path = next(p for p in served.files if p.endswith("normad_etiquette_final_data.csv"))
    old = yaml.safe_load((repo / "sources.lock.yaml").read_text())["sources"]
    served.files[path] = served.files[path].replace(b"india", b"India", 1)
    shutil.rmtree(repo / "data" / "raw" / "normad")
    with pytest.raises(AssertionError) as err:
        snakemake(repo, served, "data/raw/normad/PROVENANCE.json")
    (recorded,) = [v["sha256"] for v in old.values()]
    new = hashlib.sha256(served.files[path]).hexdigest()
    msg = str(err.value)
    assert recorded in msg and new in msg and "normad_etiquette_final_data.csv" in msg


# A fresh clone's whole tiny run over HTTP, to the report, is the "download" run of
# tests/test_origin_independence.py::test_tiny_pipeline_is_byte_identical_from_any_mirror_path_or_download,
# which also requires its tracked files to equal a mirror run's byte for byte.
