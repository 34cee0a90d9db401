"""docs/hostile-inputs.md quotes the preflight and damaged-file messages exactly as the code prints them."""

from __future__ import annotations

import errno
import re
from types import SimpleNamespace

import pandas as pd
import pyarrow.parquet as pq
import pytest

from culteval import io, preflight
from culteval.config import ROOT
from culteval.engine import scoring as engine_mod

SECTIONS = ("## Limits checked before a model loads", "## Damaged, edited or foreign intermediates")


def doc_templates() -> list[str]:
    """The first quoted message of every row in the sections above, plus the prompt-length row."""
    text = (ROOT / "docs" / "hostile-inputs.md").read_text(encoding="utf-8")
    rows = []
    for title in SECTIONS:
        body = text.split(title, 1)[1].split("\n## ", 1)[0]
        rows += [ln for ln in body.splitlines() if ln.startswith("| ") and not ln.startswith("| bad input")]
    rows += [ln for ln in text.splitlines() if ln.startswith("| context shorter than the longest prompt")]
    return [re.search(r"`([^`]+)`", row.split(" | ")[1])[1] for row in rows]


def pattern(template: str) -> re.Pattern:
    """A quoted message as a regex: ``<placeholder>`` stands for any text."""
    return re.compile(re.sub(r"<[^<>]+>", ".+?", re.escape(template)))


def stale_and_edited(project) -> list[str]:
    """An item table made under other params, or with no record of them; prompts of another item
    table than the one at its path; a summary edited by hand,
    with no record beside it, or with a record naming no sha256 for it."""
    import json

    from culteval import dvcgraph, pipeline, provenance
    from culteval.config import load_params

    out = []
    cfg = load_params(ROOT / "params.yaml")
    culture = next(iter(cfg["cultures"]))
    items = project / "data" / "items" / culture / "normad.parquet"
    ident = provenance.identity("items", culture=culture, task="normad")
    made = json.loads(dvcgraph.settings("prepare", cfg, {"culture": culture, "task": "normad"}))
    made["tasks.normad"] = {**made["tasks.normad"], "limit": 1}
    io.write_parquet(pd.DataFrame({"a": [1]}), items, {"identity": ident, "settings": made})
    out += pipeline.validate([items], cfg)[1]
    io.write_parquet(pd.DataFrame({"a": [1]}), items, {"identity": ident})
    out += pipeline.validate([items], cfg)[1]
    io.write_parquet(pd.DataFrame({"a": [1]}), items, {"identity": ident})
    prompts = project / "data" / "prompts" / culture / "normad" / "default.parquet"
    io.write_parquet(pd.DataFrame({"a": [1]}), prompts, {
        "identity": provenance.identity("prompts", culture=culture, task="normad", strategy="default",
                                        sources={"items": "0" * 64}),
        "settings": json.loads(dvcgraph.settings("render", cfg, {"culture": culture, "task": "normad"}))})
    out += pipeline.validate([prompts], cfg)[1]
    summary = project / "results" / "metrics" / "summary.csv"
    summary.parent.mkdir(parents=True)
    for record in (None, {"outputs": {}}, {"outputs": {"summary.csv": "0" * 64}}):
        summary.write_text("culture,value\nhi,0.99\n")
        if record is not None:
            io.write_json(record, summary.parent / "provenance.json")
        with pytest.raises(io.DamagedFileError) as e:
            pipeline.check_recorded(summary, required=True)
        out.append(str(e.value))
    return out


def actual_messages(tmp_path, capsys, monkeypatch) -> list[str]:
    out = []
    facts = {"architecture": "toy", "n_ctx_train": 100, "n_layer": 2, "n_head_kv": 1, "key_length": 4,
             "value_length": 4, "size_bytes": 10 << 20}
    inf = {"n_ctx": 1000, "n_threads": 9}
    machine = preflight.resource_problems("m", facts, inf, available=1 << 20, cores=2)
    job = preflight.resource_problems("m", facts, inf, mem_mb=1, available=1 << 30, cores=2)
    out += [m for _, m in machine] + [m for c, m in job if c == "memory"]
    preflight.enforce(machine[-1:], force=True)
    out.append(capsys.readouterr().err.strip())

    fake = SimpleNamespace(n_ctx=64, encode=lambda text, pid: [0] * len(text))
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check_prompts("m", fake, pd.DataFrame({"prompt_id": ["p#0"], "text": ["x" * 70]}))
    out.append(f"culteval infer-gguf: error: {err.value}")
    fake.encode = lambda text, pid: [0] * 60
    sampled = pd.DataFrame({"prompt_id": ["p#1"], "text": ["x"], "mode": ["both"]})
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check_prompts("m", fake, sampled, max_tokens=8)
    out.append(str(err.value))

    def rejected(call) -> str:
        with pytest.raises(io.DamagedFileError) as e:
            call()
        return str(e.value)

    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1 cut")
    out.append(rejected(lambda: io.read_parquet(path)))
    io.write_parquet(pd.DataFrame({"a": [1, 2]}), path, {"params": {"seed": 1}})
    out.append(rejected(lambda: io.read_parquet(path, columns=["b"])))
    io.write_parquet(pd.DataFrame({"a": [1, 2]}), path, {"params": {"seed": 1}})
    out.append(rejected(lambda: io.read_parquet(path, params={"seed": 2})))
    io.write_parquet(pd.DataFrame({"a": [1, 2]}), path)
    pq.write_table(pq.read_table(path).slice(0, 1), path)
    out.append(rejected(lambda: io.read_parquet(path)))
    js = tmp_path / "m.json"
    js.write_text("{")
    out.append(rejected(lambda: io.read_json(js)))
    js.write_text("{}")
    out.append(rejected(lambda: io.read_json(js, keys=("name",))))

    io.write_parquet(pd.DataFrame({"a": [1, 2]}), path, {"identity": {"kind": "prompts", "task": "normad"}})
    out.append(rejected(lambda: io.read_parquet(path, expect={"kind": "prompts", "task": "culturalbench"})))
    raw = {"identity": {"kind": "raw", "sources": {"items": "a"}}}
    io.write_parquet(pd.DataFrame({"a": [1, 2]}), path, raw)
    out.append(rejected(lambda: io.read_parquet(path, expect={"kind": "raw", "sources.items": "b"})))
    io.write_parquet(pd.DataFrame({"a": [1, 2]}), path)
    out.append(rejected(lambda: io.read_parquet(path, expect={"kind": "items"})))
    project = tmp_path / "project"
    (project / "data" / "items").mkdir(parents=True)
    (project / "Snakefile").write_text("")
    items = project / "data" / "items" / "normad.parquet"
    items.write_bytes(b"PAR1 cut")
    monkeypatch.chdir(project)
    from culteval.cli import cmd_validate
    cmd_validate(SimpleNamespace(paths=["data/items"], repair=True, params=str(ROOT / "params.yaml")))
    out.append(capsys.readouterr().err.strip())
    out += stale_and_edited(project)

    chunk = tmp_path / "00000.parquet"
    chunk.write_bytes(b"PAR1 cut")
    assert not engine_mod._checkpoint_ok(chunk, ["p"], "job")
    out += capsys.readouterr().err.strip().splitlines()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(io.WriteError) as e, io.atomic_path(path) as tmp:
        tmp.write_bytes(b"x")
        full()
    out.append(str(e.value))
    monkeypatch.setattr(io, "_commit", lambda tmp, where: full() if where.name.endswith(".json") else None)
    with pytest.raises(io.WriteError) as e:
        io.write_parquet(pd.DataFrame({"a": [1]}), path, {"git": "x"})
    out.append(str(e.value))
    return out


def test_quoted_messages_match_the_code(tmp_path, capsys, monkeypatch):
    templates, actual = doc_templates(), actual_messages(tmp_path, capsys, monkeypatch)
    assert len(templates) == 26
    for t in templates:
        assert any(pattern(t).fullmatch(m) for m in actual), f"documented but never printed: {t}"
    for m in actual:
        assert any(pattern(t).fullmatch(m) for t in templates), f"printed but not documented: {m}"
