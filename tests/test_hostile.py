"""Hostile inputs and interrupted runs: every bad input fails early, naming the culprit; nothing is lost.

Cases already backed elsewhere (params in tests/test_config.py, checksums and model
files in tests/test_acquire.py, malformed distributions in tests/test_tasks.py) are
not repeated here; docs/hostile-inputs.md lists every case with the test behind it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import culturalbench_prompts

from culteval import cli, io, prompts, tasks
from culteval.config import ROOT, load_params
from culteval.metrics.summary import summarize

TINY = f"{ROOT / 'params.yaml'}:{ROOT / 'tests' / 'data' / 'params.tiny.yaml'}"


@pytest.fixture(scope="module")
def cfg() -> dict:
    return load_params(TINY)


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    """``culteval <argv>`` in-process: (exit code, stderr)."""
    rc = cli.main(list(argv))
    return rc, capsys.readouterr().err


def overlay(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(data))
    return f"{TINY}:{path}"


# --- params (the rest: tests/test_config.py) -----------------------------------------------------------

def test_cli_rejects_unknown_params_key_before_any_work(tmp_path, capsys):
    rc, err = run_cli(capsys, "--params", overlay(tmp_path, {"sampling": {"trails": 3}}), "check")
    assert rc == 1
    assert err.startswith("culteval check: error: ")
    assert "params.sampling" in err and "'trails'" in err


# --- datasets ------------------------------------------------------------------------------------------

def test_dataset_checksum_mismatch_names_the_source_not_a_temp_file(tmp_path, mirror, cfg):
    from culteval.acquire import ChecksumError, acquire_dataset

    fname = "normad_etiquette_final_data.csv"
    spec = json.loads(json.dumps(cfg["datasets"]["normad"]))
    spec["files"][fname]["mirror_sha256"] = "0" * 64
    with pytest.raises(ChecksumError) as err:
        acquire_dataset("normad", spec, tmp_path / "normad", mirror)
    assert str(err.value).startswith(f"dataset 'normad' file '{fname}': sha256 mismatch for "
                                     f"{mirror / 'normad' / fname}: expected {'0' * 64}, got ")
    assert list((tmp_path / "normad").iterdir()) == []


@pytest.mark.parametrize(("task", "dataset", "file", "column"), [
    ("culturalbench", "culturalbench", "CulturalBench-Easy.csv", "answer"),
    ("culturalbench", "culturalbench", "CulturalBench-Hard.csv", "prompt_option"),
    ("global_opinions", "global_opinions", "global_opinions.csv", "selections"),
    ("normad", "normad", "normad_etiquette_final_data.csv", "Gold Label"),
])
def test_missing_column_names_file_and_column(tmp_path, mirror, capsys, task, dataset, file, column):
    raw = tmp_path / "raw"
    shutil.copytree(mirror / dataset, raw / dataset)
    df = pd.read_csv(raw / dataset / file, dtype=str, keep_default_na=False)
    df.drop(columns=[column]).to_csv(raw / dataset / file, index=False)
    out = tmp_path / "items.parquet"
    rc, err = run_cli(capsys, "--params", TINY, "prepare", "--task", task, "--raw-root", str(raw),
                      "--out", str(out))
    assert rc == 1
    assert err.startswith(f"culteval prepare: error: {raw / dataset / file}: missing columns ['{column}']")
    assert not out.exists()


def test_missing_dataset_file_is_named(tmp_path, capsys):
    (tmp_path / "normad").mkdir()
    rc, err = run_cli(capsys, "--params", TINY, "prepare", "--task", "normad", "--raw-root", str(tmp_path),
                      "--out", str(tmp_path / "items.parquet"))
    assert rc == 1 and "normad_etiquette_final_data.csv" in err and "No such file" in err


@pytest.mark.parametrize(("role", "task"), [
    ("target", "culturalbench"), ("target", "normad"), ("target", "global_opinions"),
    ("reference", "normad"), ("reference", "global_opinions"),
])
def test_country_without_items_stops_prepare(tmp_path, mirror, capsys, role, task):
    """A country a dataset does not know fails at prepare, not as NaN metrics of the other country only."""
    where = {"target": ("cultures", "hi"), "reference": ("reference",)}[role]
    change: dict = {"country": "Atlantis"}
    for key in reversed(where):
        change = {key: change}
    params = overlay(tmp_path, change)
    out = tmp_path / "items.parquet"
    rc, err = run_cli(capsys, "--params", params, "prepare", "--task", task, "--raw-root", str(mirror),
                      "--out", str(out))
    assert rc == 1
    assert err.strip() == (
        f"culteval prepare: error: params.{'.'.join(where)}.country 'Atlantis': no {task} items "
        f"(spellings tried: ['Atlantis']); add params.country_aliases.Atlantis.{task}, "
        f"or disable or refilter params.tasks.{task}")
    assert not out.exists()


def test_empty_item_table_stops_prepare(tmp_path, mirror, capsys):
    """countries: [all] skips the per-country check; an empty table still stops at prepare."""
    (tmp_path / "normad").mkdir()
    raw = pd.read_csv(mirror / "normad" / "normad_etiquette_final_data.csv", dtype=str, keep_default_na=False)
    raw.iloc[:0].to_csv(tmp_path / "normad" / "normad_etiquette_final_data.csv", index=False)
    params = overlay(tmp_path, {"tasks": {"normad": {"countries": ["all"], "itemset": None}}})
    rc, err = run_cli(capsys, "--params", params, "prepare", "--task", "normad", "--raw-root", str(tmp_path),
                      "--out", str(tmp_path / "items.parquet"))
    assert rc == 1
    assert err.strip() == ("culteval prepare: error: task 'normad': no items after filtering "
                           "(check params.tasks.normad)")


def test_culturalbench_duplicate_options_kept_with_note(tmp_path, mirror, cfg):
    """Upstream publishes some questions with two identical options: kept, flagged, gold by letter."""
    (tmp_path / "culturalbench").mkdir()
    easy = pd.read_csv(mirror / "culturalbench" / "CulturalBench-Easy.csv", dtype=str, keep_default_na=False)
    row = easy[easy["country"] == "India"].iloc[[0]].copy()
    row["prompt_option_b"] = row["prompt_option_a"]
    row["answer"] = "B"
    row.to_csv(tmp_path / "culturalbench" / "CulturalBench-Easy.csv", index=False)
    c = json.loads(json.dumps(cfg))
    c["tasks"]["culturalbench"].update(subsets=["easy"], limit=None, itemset=None,  # a hand-made file
                                    countries=["target"])
    items = tasks.get("culturalbench").load_items(tmp_path, c)
    assert len(items) == 1
    it = items.iloc[0]
    meta = json.loads(it["meta"])
    assert meta["note"] == "duplicate option texts upstream" and meta["answer_letter"] == "B"
    assert list(it["options"])[0] == list(it["options"])[1] == it["answer"]


# --- model files and model behaviour -------------------------------------------------------------------

def test_context_too_short_names_model_and_prompt(tmp_path, mirror, cfg, default_model, capsys):
    c = json.loads(json.dumps(cfg))
    c["tasks"]["culturalbench"].update(subsets=["easy"], limit=1)
    items = tasks.get("culturalbench").load_items(mirror, c)
    table = prompts.render(items, "default", c, translations=None, mode="distribution", root=ROOT)
    io.write_parquet(table, tmp_path / "prompts.parquet")
    out = tmp_path / "raw.parquet"
    params = overlay(tmp_path, {"inference": {"n_ctx": 64}})
    rc, err = run_cli(capsys, "--params", params, "infer-gguf", "--model", str(default_model),
                      "--prompts", str(tmp_path / "prompts.parquet"), "--out", str(out), "--no-progress")
    assert rc == 1
    # refused by the preflight, before any prompt is evaluated (the engine's own check: test_engine.py)
    name = re.escape(default_model.stem)
    found = re.search(rf"culteval infer-gguf: error: model '{name}': inference.n_ctx=64 is "
                      r"shorter than the longest rendered prompt \((\d+) tokens, prompt '([^']+)'\)", err)
    assert found and int(found[1]) > 64 and found[2] in set(table["prompt_id"]), err
    assert not out.exists()


def test_invalid_generations_and_low_mass_are_reported_per_run(cfg):
    """Unparseable sampled answers count as invalid (and wrong); near-zero option mass is flagged."""
    parse = tasks.get("culturalbench").parse_answer
    opts, letters = ["w", "x", "y", "z"], ["A", "B", "C", "D"]
    items = pd.DataFrame([{
        "item_id": f"culturalbench/easy/000{i}", "task": "culturalbench", "subset": "easy",
        "group_id": f"culturalbench/easy/000{i}", "country": "India", "question": "q", "options": opts,
        "answer": "x", "distributions": "{}", "context": "{}", "meta": "{}"} for i in range(2)])
    raw = {}
    for model, texts, mass in (("good", ["B", "B"], 0.9), ("bad", ["I cannot answer", "B"], 1e-4)):
        rows = []
        for i in range(2):
            iid = f"culturalbench/easy/000{i}"
            base = {"prompt_id": f"{iid}#default#p0", "item_id": iid, "permutation": 0, "n_prompt_tokens": 9}
            rows.append({**base, "trial": -1, "probs": [0.1, 0.7, 0.1, 0.1], "option_mass": mass,
                         "generated": None, "parsed": None})
            for t, text in enumerate(texts):
                idx = parse(text, letters, opts)
                rows.append({**base, "trial": t, "probs": None, "option_mass": None, "generated": text,
                             "parsed": -1 if idx is None else idx})
        raw[(model, "culturalbench", "default")] = pd.DataFrame(rows)
    assert parse("I cannot answer", letters, opts) is None
    s = summarize({"culturalbench": items}, raw, cfg).set_index(["model", "metric"])["value"]
    assert s[("good", "invalid_rate")] == 0.0 and s[("bad", "invalid_rate")] == pytest.approx(0.5)
    assert s[("bad", "acc_sampled")] == pytest.approx(0.5)  # invalid counts as wrong
    assert s[("good", "low_mass_share")] == 0.0 and s[("bad", "low_mass_share")] == 1.0


# --- untrusted content ---------------------------------------------------------------------------------

class _FakeLlama:
    """Stands in for llama_cpp.Llama: only what Engine needs to load and render a chat template."""

    template = ""

    def __init__(self, **kwargs):
        self.model = None
        self.metadata = {"tokenizer.chat_template": self.template}

    def n_vocab(self):
        return 8

    def token_bos(self):
        return 1

    def token_eos(self):
        return 2

    def detokenize(self, tokens, special=False):
        return b"<s>"

    def tokenize(self, data, add_bos=False, special=False):
        return [3] * len(data)


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% for m in messages %}{{ m.content.__class__.__init__.__globals__ }}{% endfor %}",
    "{{ messages.append(1) }}",
])
def test_gguf_chat_template_is_sandboxed(tmp_path, monkeypatch, template):
    llama_cpp = pytest.importorskip("llama_cpp")

    from culteval.engine import Engine

    monkeypatch.setattr(_FakeLlama, "template", template)
    monkeypatch.setattr(llama_cpp, "Llama", _FakeLlama)
    monkeypatch.setattr(llama_cpp, "llama_model_get_vocab", lambda model: None)
    monkeypatch.setattr(llama_cpp, "llama_vocab_get_add_bos", lambda vocab: False)
    model = tmp_path / "evil.gguf"
    model.write_bytes(b"GGUF")
    engine = Engine(model)
    with pytest.raises(ValueError, match="chat template of model") as err:
        engine.encode("hello", "p1")
    assert "access to attribute" in str(err.value) or "unsafe" in str(err.value).lower()
    # the same fake with a harmless template renders: the failure above is the sandbox, not the fake
    monkeypatch.setattr(_FakeLlama, "template", "{{ bos_token }}{{ messages[0]['content'] }}")
    assert Engine(model).encode("hello", "p1") == [3] * len("<s>hello")


def test_source_has_no_eval_exec_or_shell():
    pattern = re.compile(r"(?<![\w.])(eval|exec)\(|shell\s*=\s*True|os\.system\(|os\.popen\(|yaml\.load\(|"
                         r"pickle\.loads?\(")
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
            for p in sorted((ROOT / "src").rglob("*.py"))
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if pattern.search(line)]
    assert hits == []
    assert pattern.search("x = eval('1')") and pattern.search("run(cmd, shell=True)")
    assert not pattern.search("self.llm.eval(tokens)") and not pattern.search("ast.literal_eval(s)")


# --- interrupted and concurrent runs -------------------------------------------------------------------

@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory, mirror, cfg) -> Path:
    """16 real CulturalBench prompts (8 items x 2 orders), distribution mode, scored in chunks of 4."""
    path = culturalbench_prompts(mirror, cfg, tmp_path_factory.mktemp("prompts"), limit=8)
    assert len(io.read_parquet(path)) == 16
    return path


def score_cmd(model: Path, prompts_path: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "culteval.cli", "--params", TINY, "infer-gguf", "--model", str(model),
            "--prompts", str(prompts_path), "--out", str(out), "--no-progress"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, prompts_file, default_model) -> bytes:
    out = tmp_path_factory.mktemp("clean") / "raw.parquet"
    subprocess.run(score_cmd(default_model, prompts_file, out), check=True, capture_output=True)
    return out.read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_score_resumes_to_identical_bytes(tmp_path, prompts_file, default_model, uninterrupted,
                                                     sig):
    out = tmp_path / "raw.parquet"
    chunks = Path(f"{out}.chunks")
    # a background parent may ignore SIGINT (non-interactive shells do); give the child Ctrl-C's default
    proc = subprocess.Popen(score_cmd(default_model, prompts_file, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (chunks / "00000.parquet").exists():
            assert proc.poll() is None, "score finished or failed before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert not out.exists(), "an interrupted run left a file at the final path"
    done = sorted(p.name for p in chunks.glob("0*.parquet"))
    assert done and "00003.parquet" not in done, done  # interrupted before the last of 4 chunks

    subprocess.run(score_cmd(default_model, prompts_file, out), check=True, capture_output=True)
    assert out.read_bytes() == uninterrupted
    assert not chunks.exists()


@pytest.mark.slow
def test_second_snakemake_on_same_workdir_is_refused(tmp_path, mirror):
    env = {**os.environ, "CULTEVAL_PARAMS": TINY, "CULTEVAL_DATA_MIRROR": str(mirror),
           "DVC_NO_ANALYTICS": "1"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
           "--cores", "2", "results/raw/hi/gemma-3-270m/global_opinions/default.parquet"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        locks = tmp_path / ".snakemake" / "locks"
        deadline = time.monotonic() + 120
        while not (locks.is_dir() and any(locks.iterdir())):
            assert first.poll() is None, "first run ended before taking its lock"
            assert time.monotonic() < deadline, "first run took no lock within 120 s"
            time.sleep(0.05)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode != 0
        # Refused by the lock, or (when the first has a job running) by its outputs marked incomplete
        refused = ("LockException" in second.stderr and "Directory cannot be locked" in second.stderr) or (
            "IncompleteFilesException" in second.stderr or "Incomplete files:" in second.stderr)
        assert refused, second.stderr[-3000:]
        _, first_err = first.communicate(timeout=1200)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, first_err[-3000:]  # the refused run did not disturb the first
    assert (tmp_path / "results" / "raw" / "hi" / "gemma-3-270m" / "global_opinions" / "default.parquet"
            ).is_file()
    assert not (locks.is_dir() and any(locks.iterdir())), "the lock outlived the run"
