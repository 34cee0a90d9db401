"""Preflight: context, memory and threads are checked before a model loads; --force is recorded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import culturalbench_prompts

from culteval import cli, gguf, io, preflight
from culteval.config import ROOT, load_params
from culteval.engine import Engine

TINY = f"{ROOT / 'params.yaml'}:{ROOT / 'tests' / 'data' / 'params.tiny.yaml'}"


@pytest.fixture(scope="module")
def cfg() -> dict:
    return load_params(TINY)


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory, mirror, cfg) -> Path:
    return culturalbench_prompts(mirror, cfg, tmp_path_factory.mktemp("prompts"), limit=1)


def overlay(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(data))
    return f"{TINY}:{path}"


def score(capsys, params: str, model: Path, prompts_path: Path, out: Path, *extra: str) -> tuple[int, str]:
    rc = cli.main(["--params", params, "infer-gguf", "--model", str(model), "--prompts", str(prompts_path),
                   "--out", str(out), "--no-progress", *extra])
    return rc, capsys.readouterr().err


def test_billion_token_context_is_refused_before_the_model_loads(tmp_path, default_model, prompts_file,
                                                                 capsys, monkeypatch):
    def no_load(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("culteval.engine.Engine.__init__", no_load)
    out = tmp_path / "raw.parquet"
    rc, err = score(capsys, overlay(tmp_path, {"inference": {"n_ctx": 1_000_000_000}}), default_model,
                    prompts_file, out)
    assert rc == 1 and not out.exists()
    name = default_model.stem
    assert (f"culteval infer-gguf: error: model '{name}': inference.n_ctx=1000000000 exceeds the 32768 "
            "tokens it was trained on (gemma3.context_length)") in err, err
    assert re.search(rf"model '{name}': inference.n_ctx=1000000000 needs \d+ MiB \(model file \d+ MiB "
                     r"\+ KV cache 17578125 MiB\), more than the \d+ MiB of memory available on this machine",
                     err), err


def test_memory_against_the_jobs_resources(default_model):
    f = gguf.facts(default_model)
    kv = gguf.kv_cache_bytes(f, 32768) // preflight.MIB  # 32768 x 18 x 512 x 2 bytes = 576 MiB
    assert kv == 576
    need = (f["size_bytes"] + gguf.kv_cache_bytes(f, 32768)) // preflight.MIB
    inf = {"n_ctx": 32768, "n_threads": 1}
    probs = preflight.resource_problems("g", f, inf, mem_mb=512, available=64 << 30, cores=2)
    assert probs == [("memory", f"model 'g': inference.n_ctx=32768 needs {need} MiB (model file "
                                f"{f['size_bytes'] // preflight.MIB} MiB + KV cache 576 MiB), more than the "
                                "512 MiB of the job's resources.mem_mb")]
    assert preflight.resource_problems("g", f, inf, mem_mb=need + 1, available=64 << 30, cores=2) == []
    # a machine with less than the job asked for is the binding limit
    assert "of memory available on this machine" in preflight.resource_problems(
        "g", f, inf, mem_mb=8192, available=300 << 20, cores=2)[0][1]
    assert preflight.resource_problems("g", f, inf, n_gpu_layers=-1, mem_mb=1, available=1, cores=2) == []


def test_threads_and_trained_context(default_model):
    f = gguf.facts(default_model)
    ok = preflight.resource_problems("g", f, {"n_ctx": 32768, "n_threads": 2}, available=64 << 30, cores=2)
    assert ok == []
    probs = preflight.resource_problems("g", f, {"n_ctx": 32769, "n_threads": 3}, available=64 << 30, cores=2)
    assert probs == [
        ("n_ctx_train", "model 'g': inference.n_ctx=32769 exceeds the 32768 tokens it was trained on "
                        "(gemma3.context_length)"),
        ("threads", "model 'g': inference.n_threads=3 exceeds the 2 CPU cores this process may use"),
    ]


def test_infer_passes_the_jobs_mem_mb(tmp_path, default_model, prompts_file, capsys):
    from culteval.acquire import describe_model

    record = tmp_path / "gemma-3-270m.json"
    io.write_json(describe_model("gemma-3-270m", {"path": str(default_model)}), record)
    out = tmp_path / "raw.parquet"
    rc = cli.main(["--params", TINY, "infer", "--model-json", str(record), "--task", "culturalbench",
                   "--strategy", "default", "--prompts", str(prompts_file), "--out", str(out),
                   "--no-progress", "--mem-mb", "100"])
    err = capsys.readouterr().err
    assert rc == 1 and not out.exists()
    assert re.search(r"culteval infer: error: model 'gemma-3-270m': inference.n_ctx=\d+ needs \d+ MiB .*more "
                     r"than the 100 MiB of the job's resources.mem_mb \(--force runs anyway\)", err), err


def test_force_runs_and_is_recorded_in_provenance(tmp_path, default_model, prompts_file, capsys, monkeypatch):
    cores = 1  # pretend a one-core machine: oversubscribing the real cores would only make the test slow
    monkeypatch.setattr(preflight, "usable_cores", lambda: cores)
    out = tmp_path / "raw.parquet"
    one = tmp_path / "one.parquet"  # one prompt: the machine may be busy
    io.write_parquet(io.read_parquet(prompts_file).iloc[:1], one)
    params = overlay(tmp_path, {"inference": {"n_threads": cores + 1}})
    rc, err = score(capsys, params, default_model, one, out)
    assert rc == 1 and f"inference.n_threads={cores + 1} exceeds the {cores} CPU cores" in err
    rc, err = score(capsys, params, default_model, one, out, "--force")
    assert rc == 0, err
    assert f"culteval: warning: model '{default_model.stem}': inference.n_threads={cores + 1}" in err
    assert io.read_provenance(out)["preflight"] == {"force": True, "overridden": ["threads"]}
    assert preflight.enforce([], force=False) == {"force": False, "overridden": []}  # an unforced run


def test_longest_prompt_counts_past_n_ctx_and_restores_it(default_model, prompts_file):
    table = io.read_parquet(prompts_file)
    table.loc[0, "text"] = "word " * 300
    with Engine(default_model, n_ctx=64) as eng:
        n, pid = preflight.longest_prompt(eng, table)
        assert pid == table.loc[0, "prompt_id"] and n > 300
        assert eng.n_ctx == 64
        with pytest.raises(preflight.PreflightError,
                           match=rf"model 'g': inference.n_ctx=64 is shorter than the longest rendered "
                                 rf"prompt \({n} tokens, prompt '{re.escape(pid)}'\)"):
            preflight.check_prompts("g", eng, table)


def test_check_preflights_known_models(tmp_path, default_model, capsys, monkeypatch):
    monkeypatch.setattr(preflight, "usable_cores", lambda: 64)  # the tiny params' threads fit anywhere
    params = overlay(tmp_path, {"inference": {"n_ctx": 1_000_000_000},
                                "models": {"local": {"path": str(default_model)}}})
    rc = cli.main(["--params", params, "check", "--models-dir", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert rc == 1
    assert ("culteval check: error: model 'local': inference.n_ctx=1000000000 exceeds the 32768 tokens "
            "it was trained on (gemma3.context_length)") in err, err
    assert "model 'gemma-3-270m'" not in err  # not acquired yet: checked when its record exists
    io.write_json({"name": "gemma-3-270m", "path": str(default_model), "sha256": "0"},
                  tmp_path / "models" / "gemma-3-270m.json")
    rc = cli.main(["--params", params, "check", "--models-dir", str(tmp_path / "models")])
    assert rc == 1 and "model 'gemma-3-270m': inference.n_ctx=1000000000" in capsys.readouterr().err
    assert cli.main(["--params", TINY, "check", "--models-dir", str(tmp_path / "models")]) == 0
