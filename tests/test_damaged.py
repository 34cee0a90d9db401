"""Files a later stage reads are checked before use; damaged ones are named, set aside and recomputed."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_engine import first_letter, prompts_table

from culteval import cli, io
from culteval.config import ROOT
from culteval.engine import Engine, score_prompts
from culteval.engine import scoring as engine_mod

TINY = f"{ROOT / 'params.yaml'}:{ROOT / 'tests' / 'data' / 'params.tiny.yaml'}"


def frame(n: int = 50) -> pd.DataFrame:
    return pd.DataFrame({"a": [f"row {i}" for i in range(n)], "b": [float(i) for i in range(n)]})


def test_truncated_parquet_is_named_and_set_aside(tmp_path):
    path = tmp_path / "t.parquet"
    io.write_parquet(frame(), path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(io.DamagedFileError, match=rf"^{path}: damaged or not a Parquet file \(.*\); "
                                                  r"moved to t\.parquet\.damaged, rerun to recompute it$"):
        io.read_parquet(path)
    assert not path.exists() and (tmp_path / "t.parquet.damaged").stat().st_size == 300


def test_flipped_bytes_in_data_are_caught_by_page_checksums(tmp_path):
    path = tmp_path / "t.parquet"
    df = frame()
    io.write_parquet(df, path)
    good = path.read_bytes()
    col = pq.ParquetFile(path).metadata.row_group(0).column(0)
    start = col.dictionary_page_offset or col.data_page_offset
    silent_plain = silent_ours = 0
    for off in range(start, start + col.total_compressed_size):
        bad = bytearray(good)
        bad[off] ^= 1
        path.write_bytes(bad)
        try:
            silent_plain += not pq.read_table(path).to_pandas().equals(df)
        except Exception:  # noqa: BLE001, S112 - pyarrow noticed by itself
            pass
        try:
            silent_ours += not io.read_parquet(path).equals(df)
        except io.DamagedFileError:
            pass
    assert silent_plain > 0  # without checksums some flips are read as other data
    assert silent_ours == 0


def test_missing_columns_rows_and_params_are_checked(tmp_path):
    path = tmp_path / "t.parquet"
    io.write_parquet(frame(10), path, {"params": {"seed": 1, "target": {"country": "India"}}})
    assert io.read_parquet(path, columns=["a", "b"], params={"seed": 1, "other": 3}).equals(frame(10))
    with pytest.raises(io.DamagedFileError, match=r"t\.parquet: missing columns \['c'\]; moved to"):
        io.read_parquet(path, columns=["a", "c"])

    io.write_parquet(frame(10), path, {"params": {"seed": 1}})
    with pytest.raises(io.DamagedFileError, match=r"t\.parquet: made with params\.seed=1, params now say 2;"):
        io.read_parquet(path, params={"seed": 2})

    io.write_parquet(frame(10), path)
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 7), path)  # a hand edit that keeps the metadata
    with pytest.raises(io.DamagedFileError, match=r"t\.parquet: 7 rows, its writer recorded 10; "):
        io.read_parquet(path)

    foreign = tmp_path / "foreign.parquet"
    frame(3).to_parquet(foreign)  # no culteval record: only schema and integrity can be checked
    assert len(io.read_parquet(foreign, columns=["a"], params={"seed": 2})) == 3


def test_damaged_json_is_named(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"name": "x", "pa')
    with pytest.raises(io.DamagedFileError, match=r"m\.json: not valid JSON \(.*\); moved to m\.json\.dam"):
        io.read_json(path)
    path.write_text('{"name": "x"}')
    with pytest.raises(io.DamagedFileError, match=r"m\.json: lacks keys \['path'\]; moved to"):
        io.read_json(path, keys=("name", "path"))


def test_cli_names_a_damaged_stage_input(tmp_path, capsys):
    items = tmp_path / "culturalbench.parquet"
    items.write_bytes(b"PAR1 half a file")
    rc = cli.main(["--params", TINY, "render", "--task", "culturalbench", "--strategy", "default",
                   "--items", str(items), "--out", str(tmp_path / "p.parquet")])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith(f"culteval render: error: {items}: damaged or not a Parquet file ("), err
    assert err.rstrip().endswith("moved to culturalbench.parquet.damaged, rerun to recompute it"), err
    assert not (tmp_path / "p.parquet").exists()


def test_cli_refuses_items_made_with_other_params(tmp_path, mirror, capsys):
    raw, items = tmp_path / "raw", tmp_path / "items.parquet"
    assert cli.main(["--params", TINY, "acquire-data", "--dataset", "culturalbench",
                     "--out", str(raw / "culturalbench")]) == 0
    assert cli.main(["--params", TINY, "prepare", "--task", "culturalbench", "--raw-root", str(raw),
                     "--out", str(items)]) == 0
    other = tmp_path / "limit.yaml"
    other.write_text("tasks: {culturalbench: {limit: 1}}\n")
    rc = cli.main(["--params", f"{TINY}:{other}", "render", "--task", "culturalbench", "--strategy",
                   "default", "--items", str(items), "--out", str(tmp_path / "p.parquet")])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"culteval render: error: {tmp_path / 'items.parquet'}: made with params.tasks=" in err, err
    assert "'limit': None" in err and "'limit': 1" in err


def test_full_disk_leaves_the_previous_version_and_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "t.parquet"
    io.write_parquet(frame(5), path)
    before = path.read_bytes()
    real = pq.write_table

    def full_disk(table, where, **kw):
        real(table, where, **kw)
        with open(where, "r+b") as f:  # half the file reached the disk, then the disk was full
            f.truncate(Path(where).stat().st_size // 2)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full_disk)
    with pytest.raises(io.WriteError, match=rf"^{path}: could not be written \(No space left on device\); "
                                            r"the previous version, if any, is unchanged$"):
        io.write_parquet(frame(9), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]  # no temporary file left


def test_full_disk_at_the_cli(tmp_path, mirror, monkeypatch, capsys):
    out = tmp_path / "raw"
    assert cli.main(["--params", TINY, "acquire-data", "--dataset", "wvs7", "--out", str(out)]) == 0
    before = (out / "PROVENANCE.json").read_bytes()

    def full_disk(src, dst):
        Path(dst).write_bytes(b"{")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("culteval.acquire.shutil.copyfile", full_disk)
    rc = cli.main(["--params", TINY, "acquire-data", "--dataset", "wvs7", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    assert (f"culteval acquire-data: error: {out / 'codebook.json'}: could not be written "
            "(No space left on device); the previous version, if any, is unchanged") in err, err
    assert (out / "PROVENANCE.json").read_bytes() == before
    assert json.loads((out / "codebook.json").read_text())  # the previous copy, whole


@pytest.fixture(scope="module")
def engine(default_model):
    with Engine(default_model) as eng:
        yield eng


def test_resume_over_damaged_checkpoints_is_byte_identical(engine, tmp_path, monkeypatch, capsys):
    prompts = prompts_table(8, mode="distribution")
    kw = dict(parse=first_letter, chunk_size=2, provenance={"run": 1}, progress=False)
    clean = tmp_path / "clean.parquet"
    score_prompts(engine, prompts, clean, **kw)

    real, calls = engine_mod._score_one, []

    def killed_in_chunk_3(*a, **k):
        calls.append(1)
        if len(calls) == 7:
            raise RuntimeError("killed")
        return real(*a, **k)

    monkeypatch.setattr(engine_mod, "_score_one", killed_in_chunk_3)
    out = tmp_path / "resumed.parquet"
    with pytest.raises(RuntimeError, match="killed"):
        score_prompts(engine, prompts, out, **kw)
    chunks = Path(f"{out}.chunks")
    c0, c1, c2 = (chunks / f"0000{i}.parquet" for i in range(3))
    assert sorted(chunks.glob("*.parquet")) == [c0, c1, c2]
    c0.write_bytes(c0.read_bytes()[:100])                              # truncated by a full disk
    pq.write_table(pq.read_table(c1).slice(0, 1), c1)                  # cut by hand, metadata kept
    shutil.copyfile(clean, c2)                                         # another file copied over it
    calls.clear()
    monkeypatch.setattr(engine_mod, "_score_one", lambda *a, **k: calls.append(1) or real(*a, **k))
    score_prompts(engine, prompts, out, **kw)
    err = capsys.readouterr().err
    assert out.read_bytes() == clean.read_bytes()
    assert len(calls) == 8  # every chunk recomputed: three damaged, one never written
    assert f"culteval: checkpoint {c0}: damaged or not a Parquet file" in err
    assert f"culteval: checkpoint {c1}: 1 rows, its writer recorded 2; recomputing it" in err
    assert f"culteval: checkpoint {c2}: carries no identity record" in err
    assert not chunks.exists()


def test_junk_chunk_is_recomputed(engine, tmp_path, monkeypatch, capsys):
    prompts = prompts_table(4, mode="distribution")
    kw = dict(parse=first_letter, chunk_size=2, progress=False)
    clean = tmp_path / "clean.parquet"
    score_prompts(engine, prompts, clean, **kw)
    out = tmp_path / "again.parquet"
    chunks = Path(f"{out}.chunks")
    chunks.mkdir()
    io.write_parquet(pd.DataFrame({"prompt_id": ["junk"]}), chunks / "00000.parquet")
    score_prompts(engine, prompts, out, **kw)
    assert out.read_bytes() == clean.read_bytes()
    assert f"culteval: checkpoint {chunks / '00000.parquet'}: missing columns" in capsys.readouterr().err
