"""An artifact's bytes depend on its content's inputs only; commit and machine go to a sidecar."""

from __future__ import annotations

import pandas as pd

from culteval import io
from culteval.lineage import lineage


def _record(commit: str, machine: str, chunk: int = 64, threads: int = 2) -> dict:
    return {
        "culteval_version": "0.1.0",
        "git": {"commit": commit, "dirty": False},
        "inputs": [{"path": "/mirror/translations/hi.jsonl", "sha256": "ab" * 32},
                   {"path": "data/items/normad.parquet", "sha256": "cd" * 32}],
        "model": {"name": "m", "path": f"/{machine}/m.gguf", "sha256": "ef" * 32},
        "engine": {"n_ctx": 2048, "n_threads": threads, "system_info": machine},
        "params": {"inference": {"n_ctx": 2048, "chunk_size": chunk, "n_threads": threads}, "seed": 1},
        "templates": {},
    }


DF = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})


def test_commit_machine_threads_and_mirror_path_do_not_change_the_bytes(tmp_path):
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    io.write_parquet(DF, one, _record("a" * 40, "avx2", chunk=64, threads=1))
    io.write_parquet(DF, two, _record("b" * 40, "avx512", chunk=4, threads=8))
    assert one.read_bytes() == two.read_bytes()
    assert io.read_json(io.sidecar_path(two))["git"]["commit"] == "b" * 40


def test_content_changes_the_bytes(tmp_path):
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    rec = _record("a" * 40, "avx2")
    io.write_parquet(DF, one, rec)
    rec["params"]["seed"] = 2
    io.write_parquet(DF, two, rec)
    assert one.read_bytes() != two.read_bytes()


def test_read_provenance_joins_the_sidecar(tmp_path):
    path = tmp_path / "x.parquet"
    rec = _record("a" * 40, "avx2")
    io.write_parquet(DF, path, rec)
    assert io.read_provenance(path) == rec


def test_a_missing_or_stale_sidecar_is_named(tmp_path):
    path = tmp_path / "x.parquet"
    io.write_parquet(DF, path, _record("a" * 40, "avx2"))
    side = io.sidecar_path(path).read_text()
    io.write_parquet(DF.iloc[:1], path, _record("a" * 40, "avx2"))
    io.sidecar_path(path).write_text(side)  # the sidecar of other bytes
    assert io.read_provenance(path)["local_record"] == "stale"
    io.sidecar_path(path).unlink()
    rec = io.read_provenance(path)
    assert rec["local_record"] == "missing" and "git" not in rec
    assert "provenance sidecar missing" in lineage(path, root=tmp_path)


def test_lineage_shows_the_commit_from_the_sidecar(tmp_path):
    path = tmp_path / "x.parquet"
    io.write_parquet(DF, path, _record("c" * 40, "avx2"))
    assert "at commit " + "c" * 40 in lineage(path, root=tmp_path)


def test_json_records_of_summaries_figures_and_report_keep_the_commit_beside_them(tmp_path):
    # results/metrics/provenance.json and the figures' records are DVC outputs too: a rerun at
    # a later commit (the one that publishes the run, say) must leave their bytes alone
    one, two = tmp_path / "one" / "provenance.json", tmp_path / "two" / "provenance.json"
    io.write_record(_record("a" * 40, "avx2"), one)
    io.write_record(_record("b" * 40, "avx512", threads=8), two)
    assert one.read_bytes() == two.read_bytes() and b"a" * 40 not in one.read_bytes()
    assert io.read_record(two)["git"]["commit"] == "b" * 40
    io.sidecar_path(two).unlink()
    assert io.read_record(two)["local_record"] == "missing"
