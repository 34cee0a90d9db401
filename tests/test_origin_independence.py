"""Tracked artifacts do not depend on where the input data came from.

A published dvc.lock must hold for a reviewer whose data mirror sits at another absolute path,
whose venv (and so the packaged model files) sits elsewhere, or who downloads from upstream:
every file DVC tracks holds content facts only, and where a file came from or sits goes to a
``*.provenance.json`` sidecar, which .dvcignore hides from DVC's hashes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import clone

from culteval.acquire import acquire_dataset, resolve_model_file
from culteval.config import ROOT, load_params
from culteval.io import SIDECAR_SUFFIX, read_json, sidecar_path
from culteval.provenance import dataset_provenance, input_record

SUBSET_DATASETS = ("culturalbench", "normad")  # a complete (pinned) file and mirror subsets


@pytest.fixture(scope="module")
def cfg():
    return load_params(ROOT / "params.yaml")


def _copy_mirror(mirror: Path, dest: Path) -> Path:
    shutil.copytree(mirror, dest, ignore=shutil.ignore_patterns("README.md"))
    return dest


def test_mirror_path_changes_no_tracked_byte(cfg, mirror, tmp_path):
    manifests, sidecars = [], []
    for run in ("a", "b"):
        here = _copy_mirror(mirror, tmp_path / f"mirror-{run}" / "nested" / run)
        for name in SUBSET_DATASETS:
            acquire_dataset(name, cfg["datasets"][name], tmp_path / f"run-{run}" / name, here)
        manifests.append({n: (tmp_path / f"run-{run}" / n / "PROVENANCE.json").read_bytes()
                          for n in SUBSET_DATASETS})
        sidecars.append(read_json(sidecar_path(tmp_path / f"run-{run}" / "normad" / "PROVENANCE.json")))
    assert manifests[0] == manifests[1], "PROVENANCE.json depends on the mirror's path"
    # where the files came from is kept, beside the tracked file
    sources = [s["files"]["normad_etiquette_final_data.csv"]["source"] for s in sidecars]
    assert sources[0] != sources[1] and all(s.startswith(str(tmp_path)) for s in sources)
    assert str(tmp_path) not in manifests[0]["normad"].decode()
    # an artifact's record of a raw input holds content facts only
    rec = input_record(tmp_path / "run-a" / "normad" / "normad_etiquette_final_data.csv")
    assert set(rec) == {"path", "sha256", "url", "subset"}
    joined = dataset_provenance(tmp_path / "run-b" / "normad" / "PROVENANCE.json")
    assert joined["files"]["normad_etiquette_final_data.csv"]["origin"] == "mirror"


def test_download_of_the_mirror_files_gives_the_same_manifest(cfg, mirror, upstream, tmp_path, monkeypatch):
    from upstream_server import serve_mirror

    monkeypatch.setenv("CULTEVAL_SOURCES_LOCK", str(tmp_path / "sources.lock.yaml"))
    serve_mirror(upstream, cfg, _copy_mirror(mirror, tmp_path / "served"))
    for name in SUBSET_DATASETS:
        acquire_dataset(name, cfg["datasets"][name], tmp_path / "mirror" / name, mirror)
        fetched = acquire_dataset(name, cfg["datasets"][name], tmp_path / "http" / name, None)
        assert {e["origin"] for e in fetched["files"].values()} == {"url"}
        same = (tmp_path / "mirror" / name / "PROVENANCE.json").read_bytes()
        assert (tmp_path / "http" / name / "PROVENANCE.json").read_bytes() == same, name
    files = read_json(tmp_path / "http" / "culturalbench" / "PROVENANCE.json")["files"]
    assert files["CulturalBench-Easy.csv"]["subset"] is None  # the mirror's copy is the upstream file
    assert files["CulturalBench-Hard.csv"]["subset"] == cfg["datasets"]["culturalbench"]["subset_in_mirror"]
    side = read_json(sidecar_path(tmp_path / "http" / "culturalbench" / "PROVENANCE.json"))
    assert side["files"]["CulturalBench-Hard.csv"]["source"].startswith(upstream.base)


def test_subset_note_follows_the_content(upstream, tmp_path, monkeypatch):
    monkeypatch.setenv("CULTEVAL_SOURCES_LOCK", str(tmp_path / "sources.lock.yaml"))
    part, full = b"q\n1\n", b"q\n1\n2\n"
    sha = {k: hashlib.sha256(v).hexdigest() for k, v in (("part", part), ("full", full))}
    url = "https://huggingface.co/datasets/org/toy/resolve/main/t.csv"

    def fetch(body: bytes, pinned: str | None, run: str) -> str | None:
        upstream.files["/hf/datasets/org/toy/resolve/main/t.csv"] = body
        spec = {"license": "CC0", "subset_in_mirror": "1 of 2 rows",
                "files": {"t.csv": {"url": url, "sha256": pinned, "mirror_sha256": sha["part"]}}}
        return acquire_dataset("toy", spec, tmp_path / run, None)["files"]["t.csv"]["subset"]

    assert fetch(full, sha["full"], "pinned-full") is None  # the complete upstream file
    assert fetch(part, None, "unpinned-part") == "1 of 2 rows"  # the mirror's subset, from a server
    monkeypatch.setenv("CULTEVAL_SOURCES_LOCK", str(tmp_path / "other.lock.yaml"))
    assert fetch(full, None, "unpinned-full") is None  # other bytes than the mirror's


def test_lineage_shows_where_raw_files_came_from(cfg, mirror, tmp_path, monkeypatch):
    from culteval import provenance
    from culteval.io import write_parquet
    from culteval.lineage import data_inputs, lineage

    monkeypatch.chdir(tmp_path)
    acquire_dataset("normad", cfg["datasets"]["normad"], Path("data/raw/normad"), mirror)
    raw = Path("data/raw/normad/normad_etiquette_final_data.csv")
    write_parquet(pd.DataFrame({"x": [1]}), "items.parquet", provenance.record(inputs=[raw]))
    source = str(mirror / "normad" / raw.name)
    out = lineage(Path("items.parquet"), root=tmp_path)
    assert f"from mirror {source} (pinned by params)" in out and "SUBSET: 71 India" in out, out
    assert [i["path"] for i in data_inputs(["items.parquet"])] == [raw.as_posix()]
    sidecar_path(raw.parent / "PROVENANCE.json").unlink()  # e.g. after dvc pull: the content stays
    assert "from an unknown origin" in lineage(Path("items.parquet"), root=tmp_path)


# --- the tiny pipeline, three ways -------------------------------------------------------------

def _params(repo: Path) -> str:
    """The tiny run with two strategies (params.origin.yaml): where the data came from reaches every
    stage through the same code whatever the strategy, so three full tiny runs would add time only."""
    return ":".join(str(repo / f) for f in ("params.yaml", "tests/data/params.tiny.yaml",
                                            "tests/data/params.origin.yaml"))


def _run(repo: Path, cache: Path, **env_vars: str) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CULTEVAL_DATA_MIRROR", "CULTEVAL_SOURCES_LOCK", "CULTEVAL_PARAMS")}
    env.update(PYTHONPATH=str(repo / "src"), DVC_NO_ANALYTICS="1", CULTEVAL_MODEL_CACHE=str(cache),
               CULTEVAL_PARAMS=_params(repo), **env_vars)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(repo), "--cores", "2"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        logs = "".join(p.read_text() for p in sorted((repo / "logs").rglob("*.log")))
        raise AssertionError(f"snakemake failed in {repo}:\n{proc.stderr[-4000:]}\n{logs[-4000:]}")


def _tracked(repo: Path) -> dict[str, bytes]:
    """Every file DVC tracks: data/ and results/, less the provenance sidecars .dvcignore hides."""
    return {p.relative_to(repo).as_posix(): p.read_bytes()
            for top in ("data", "results") for p in sorted((repo / top).rglob("*"))
            if p.is_file() and not p.name.endswith(SIDECAR_SUFFIX)}


@pytest.mark.slow
def test_tiny_pipeline_is_byte_identical_from_any_mirror_path_or_download(cfg, mirror, upstream, tmp_path):
    from upstream_server import serve_mirror

    assert f"*{SIDECAR_SUFFIX}" in (ROOT / ".dvcignore").read_text().splitlines()
    base = clone(tmp_path / "base")  # one snapshot of the code for all three runs
    gemma = cfg["models"]["gemma-3-270m"]
    packaged = resolve_model_file("gemma-3-270m", gemma)  # assembled once in the default cache
    serve_mirror(upstream, cfg, _copy_mirror(mirror, tmp_path / "served-mirror"))
    endpoints = {"CULTEVAL_HF_ENDPOINT": upstream.base + "/hf",
                 "CULTEVAL_GITHUB_RAW_ENDPOINT": upstream.base + "/gh", "CULTEVAL_DOWNLOAD_BACKOFF": "0"}
    runs = {
        "mirror-1": {"CULTEVAL_DATA_MIRROR": str(_copy_mirror(mirror, tmp_path / "m1" / "data"))},
        "mirror-2": {"CULTEVAL_DATA_MIRROR": str(_copy_mirror(mirror, tmp_path / "elsewhere" / "m2"))},
        "download": endpoints,
    }
    outputs, times = {}, {}
    for name, env_vars in runs.items():
        repo = tmp_path / name / "project"
        shutil.copytree(base, repo)
        cache = tmp_path / name / "model-cache"  # the model file at another path in each run
        (cache / gemma["package"]).mkdir(parents=True)
        (cache / gemma["package"] / gemma["file"]).symlink_to(packaged)
        start = time.monotonic()
        _run(repo, cache, **env_vars)
        times[name] = round(time.monotonic() - start)
        outputs[name] = _tracked(repo)
    print(f"snakemake wall time per run (s): {times}")
    # the runs did take their inputs from different places, which only the sidecars record
    origin = {n: read_json(sidecar_path(tmp_path / n / "project" / "data/raw/normad/PROVENANCE.json"))
              ["files"]["normad_etiquette_final_data.csv"]["source"] for n in runs}
    assert len(set(origin.values())) == 3, origin
    model_paths = {read_json(sidecar_path(tmp_path / n / "project" / "data/models/gemma-3-270m.json"))["path"]
                   for n in runs}
    assert len(model_paths) == 3, model_paths
    # lineage still tells them apart, from the sidecars
    for name in ("mirror-2", "download"):
        repo = tmp_path / name / "project"
        cmd = [sys.executable, "-m", "culteval.cli", "lineage", "results/figures/hi/cad.png"]
        env = {**os.environ, "PYTHONPATH": str(repo / "src"), "CULTEVAL_PARAMS": _params(repo)}
        out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, check=True).stdout
        assert f"from {'mirror' if name == 'mirror-2' else 'url'} {origin[name]} " in out, out[-3000:]
    first = outputs["mirror-1"]
    # the download run is a fresh clone's whole run over HTTP: it got as far as the report
    assert "results/report.html" in first and "results/metrics/summary.csv" in first
    assert any(k.startswith("results/raw/hi/") and k.endswith("/native.parquet") for k in first)
    for name, files in outputs.items():
        assert sorted(files) == sorted(first), f"{name}: other files than mirror-1"
        differ = [rel for rel in first if files[rel] != first[rel]]
        assert not differ, f"{name} differs from mirror-1 in {len(differ)} tracked files: {differ}"
