"""Downloads through real HTTP (a local server): resume, retries, 404s, Hub names, trust on first use."""

from __future__ import annotations

import hashlib

import pytest
import yaml

from culteval.acquire import (
    ChecksumError,
    DownloadError,
    acquire_dataset,
    download,
    hf_url,
    read_lock,
    resolve_model_file,
)
from culteval.io import read_json, sidecar_path

BLOB = bytes(range(256)) * 12_000  # 3 MB: several read chunks
SHA = hashlib.sha256(BLOB).hexdigest()


def test_dropped_connection_resumes_with_range(upstream, tmp_path):
    upstream.files["/files/blob.bin"] = BLOB
    upstream.drops["/files/blob.bin"] = 1_000_000
    dest = tmp_path / "blob.bin"
    assert download(upstream.url("/files/blob.bin"), dest, SHA, "model 'x'") == SHA
    assert dest.read_bytes() == BLOB
    assert upstream.ranges("/files/blob.bin") == [None, "bytes=1000000-"]
    assert not (tmp_path / "blob.bin.part").exists()


def test_interrupted_run_resumes_from_part_file(upstream, tmp_path):
    upstream.files["/files/blob.bin"] = BLOB
    (tmp_path / "blob.bin.part").write_bytes(BLOB[:2_000_000])
    download(upstream.url("/files/blob.bin"), tmp_path / "blob.bin", SHA, "model 'x'")
    assert upstream.ranges("/files/blob.bin") == ["bytes=2000000-"]
    assert (tmp_path / "blob.bin").read_bytes() == BLOB


def test_server_ignoring_range_restarts_cleanly(upstream, tmp_path):
    upstream.files["/files/blob.bin"] = BLOB
    upstream.ignore_range = True
    (tmp_path / "blob.bin.part").write_bytes(b"stale bytes")
    download(upstream.url("/files/blob.bin"), tmp_path / "blob.bin", SHA, "model 'x'")
    assert (tmp_path / "blob.bin").read_bytes() == BLOB


def test_404_names_url_and_file(upstream, tmp_path):
    url = upstream.url("/hf/org/repo/resolve/main/missing.gguf")
    with pytest.raises(DownloadError) as err:
        download(url, tmp_path / "missing.gguf", None, "model 'ghost'")
    assert url in str(err.value) and "404" in str(err.value) and "model 'ghost'" in str(err.value)
    assert len(upstream.requests) == 1, "a 404 is final: no retries"


def test_checksum_mismatch_deletes_the_bytes(upstream, tmp_path):
    upstream.files["/files/blob.bin"] = BLOB
    with pytest.raises(ChecksumError, match="f" * 64):
        download(upstream.url("/files/blob.bin"), tmp_path / "blob.bin", "f" * 64, "model 'x'")
    assert list(tmp_path.iterdir()) == []


def test_retries_give_up_naming_the_url(upstream, tmp_path):
    upstream.files["/files/blob.bin"] = BLOB
    upstream.drops = _Always(10)  # retries=3: four attempts, each cut off after 10 bytes
    with pytest.raises(DownloadError, match="after 4 attempts") as err:
        download(upstream.url("/files/blob.bin"), tmp_path / "blob.bin", SHA, "model 'x'")
    assert upstream.url("/files/blob.bin") in str(err.value)
    assert (tmp_path / "blob.bin.part").stat().st_size == 40, "kept bytes for the next run"


class _Always(dict):
    """Drop every response after n bytes."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def pop(self, key, default=None):
        return self.n


def test_hub_model_name_resolves_and_pins_on_first_use(upstream, tmp_path, monkeypatch):
    monkeypatch.setenv("CULTEVAL_MODEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CULTEVAL_SOURCES_LOCK", str(tmp_path / "sources.lock.yaml"))
    hf = {"repo": "org/tiny-GGUF", "file": "tiny-q4_k_m.gguf", "revision": "0123abc"}
    assert hf_url(hf) == "https://huggingface.co/org/tiny-GGUF/resolve/0123abc/tiny-q4_k_m.gguf"
    upstream.files["/hf/org/tiny-GGUF/resolve/0123abc/tiny-q4_k_m.gguf"] = BLOB
    path = resolve_model_file("tiny", {"hf": hf})
    assert path.read_bytes() == BLOB
    assert read_lock()[hf_url(hf)] == {"file": "model tiny", "sha256": SHA}


def _dataset(upstream, body: bytes) -> dict:
    upstream.files["/hf/datasets/org/data/resolve/main/d.csv"] = body
    url = "https://huggingface.co/datasets/org/data/resolve/main/d.csv"
    return {"files": {"d.csv": {"url": url, "sha256": None, "mirror_sha256": None}}, "license": "CC0"}


def test_unpinned_dataset_is_pinned_on_first_use_then_verified(upstream, tmp_path, monkeypatch):
    lock = tmp_path / "sources.lock.yaml"
    monkeypatch.setenv("CULTEVAL_SOURCES_LOCK", str(lock))
    first = b"question,answer\nq1,a\n"
    spec = _dataset(upstream, first)
    manifest = acquire_dataset("toy", spec, tmp_path / "run1", None)
    old = hashlib.sha256(first).hexdigest()
    assert manifest["files"]["d.csv"]["pin"] == "first use"
    # how it was pinned and the URL fetched are the sidecar's, not the tracked manifest's
    tracked = read_json(tmp_path / "run1" / "PROVENANCE.json")["files"]["d.csv"]
    assert sorted(tracked) == ["sha256", "subset", "url"]
    side = read_json(sidecar_path(tmp_path / "run1" / "PROVENANCE.json"))["files"]["d.csv"]
    fetched = upstream.url("/hf/datasets/org/data/resolve/main/d.csv")
    assert side == {"origin": "url", "pin": "first use", "source": fetched}
    url = spec["files"]["d.csv"]["url"]
    assert yaml.safe_load(lock.read_text())["sources"] == {url: {"file": "toy/d.csv", "sha256": old}}
    # same bytes again: verified against the lock
    assert acquire_dataset("toy", spec, tmp_path / "run2", None)["files"]["d.csv"]["pin"] == "lock"
    # upstream changes: the run stops naming the file and both hashes, and places nothing
    changed = b"question,answer\nq1,b\n"
    spec = _dataset(upstream, changed)
    with pytest.raises(ChecksumError) as err:
        acquire_dataset("toy", spec, tmp_path / "run3", None)
    msg = str(err.value)
    assert "d.csv" in msg and old in msg and hashlib.sha256(changed).hexdigest() in msg
    assert not (tmp_path / "run3" / "d.csv").exists()
    assert yaml.safe_load(lock.read_text())["sources"][url]["sha256"] == old, "the lock keeps the first hash"
