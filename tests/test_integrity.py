"""Nothing damaged, foreign or mismatched is used silently, and a recovered job ends as a success.

Each case runs through the CLI as a Snakemake rule runs it (exit code, the one error line, the
final bytes against an uninterrupted run) on real CulturalBench/NormAd items and the default
model: a prompts file of another strategy or task copied over, checkpoint chunks of another
rendering or another temperature, a sampled answer that would not fit the context, a resumed
job, a second process on the same output, a full disk while the sidecar is written.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest
from conftest import copy_workflow

from culteval import cli, io
from culteval.acquire import describe_model
from culteval.config import ROOT

TINY = f"{ROOT / 'params.yaml'}:{ROOT / 'tests' / 'data' / 'params.tiny.yaml'}"


def _cli(capsys, *args: str) -> tuple[int, str]:
    rc = cli.main(["--params", TINY, *args])
    return rc, capsys.readouterr().err


@pytest.fixture(scope="module")
def stage_inputs(tmp_path_factory, mirror, default_model):
    """Items and prompts (default and demographic) of two tasks, made by the CLI as the rules do."""
    root = tmp_path_factory.mktemp("integrity")
    raw = root / "raw"
    out = {"root": root}
    for task in ("culturalbench", "normad"):
        assert cli.main(["--params", TINY, "acquire-data", "--dataset", task, "--out", str(raw / task)]) == 0
        items = root / "items" / f"{task}.parquet"
        assert cli.main(["--params", TINY, "prepare", "--task", task, "--raw-root", str(raw),
                         "--out", str(items)]) == 0
        for strategy in ("default", "demographic"):
            prompts = root / "prompts" / task / f"{strategy}.parquet"
            assert cli.main(["--params", TINY, "render", "--task", task, "--strategy", strategy,
                             "--items", str(items), "--out", str(prompts)]) == 0
            out[(task, strategy)] = prompts
    record = root / "gemma-3-270m.json"
    io.write_json(describe_model("gemma-3-270m", {"path": str(default_model)}), record)
    out["model"] = record
    return out


def _infer(capsys, inputs, task: str, strategy: str, prompts: Path, out: Path,
           *extra: str) -> tuple[int, str]:
    return _cli(capsys, "infer", "--model-json", str(inputs["model"]), "--task", task, "--strategy", strategy,
                "--prompts", str(prompts), "--out", str(out), "--no-progress", *extra)


@pytest.fixture(scope="module")
def clean_run(stage_inputs, tmp_path_factory):
    """An uninterrupted CulturalBench default job: the bytes every recovered job must reproduce."""
    out = tmp_path_factory.mktemp("clean") / "default.parquet"
    assert cli.main(["--params", TINY, "infer", "--model-json", str(stage_inputs["model"]), "--task",
                     "culturalbench", "--strategy", "default", "--prompts",
                     str(stage_inputs[("culturalbench", "default")]), "--out", str(out),
                     "--no-progress"]) == 0
    return out


@pytest.mark.parametrize("task, strategy, claim", [
    ("culturalbench", "demographic", "is strategy 'demographic' where 'default' is expected"),
    ("normad", "default", "is task 'normad' where 'culturalbench' is expected"),
])
def test_prompts_of_another_strategy_or_task_are_refused(stage_inputs, tmp_path, capsys, task, strategy,
                                                         claim):
    target = tmp_path / "data" / "prompts" / "hi" / "culturalbench" / "default.parquet"
    target.parent.mkdir(parents=True)
    shutil.copyfile(stage_inputs[(task, strategy)], target)  # copied over the default prompts
    out = tmp_path / "raw.parquet"
    rc, err = _infer(capsys, stage_inputs, "culturalbench", "default", target, out)
    assert rc == 1 and not out.exists(), err
    assert f"culteval infer: error: {target}: {claim}" in err, err
    assert not target.exists()  # set aside, so the next run renders it again


def test_raw_outputs_of_other_items_are_refused_by_metrics(stage_inputs, clean_run, tmp_path, capsys):
    """A raw output made from another item table (older, edited) is not scored against these items."""
    items = tmp_path / "data" / "items" / "hi" / "culturalbench.parquet"
    items.parent.mkdir(parents=True)
    assert cli.main(["--params", f"{TINY}:{_limit(tmp_path)}", "prepare", "--task", "culturalbench",
                     "--raw-root", str(stage_inputs["root"] / "raw"), "--out", str(items)]) == 0
    raw = tmp_path / "results" / "raw" / "hi" / "gemma-3-270m" / "culturalbench" / "default.parquet"
    raw.parent.mkdir(parents=True)
    shutil.copyfile(clean_run, raw)
    rc = cli.main(["--params", f"{TINY}:{_limit(tmp_path)}", "metrics", "--items", str(items),
                   "--raw", str(raw), "--raw-root", str(stage_inputs["root"] / "raw"),
                   "--out-dir", str(tmp_path / "metrics")])
    err = capsys.readouterr().err
    assert rc == 1 and not (tmp_path / "metrics" / "summary.csv").exists(), err
    assert f"culteval metrics: error: {raw}: is sources.items " in err, err


def _limit(tmp_path: Path) -> Path:
    path = tmp_path / "limit.yaml"
    path.write_text("tasks: {culturalbench: {itemset: null, limit: 1}}\n")
    return path


def _chunks_of(stage_inputs, prompts: Path, out: Path, overlay: str, monkeypatch, capsys) -> None:
    """Leave checkpoint chunks of a job over ``prompts`` with params ``overlay``, killed after 2 prompts."""
    from culteval.engine import scoring

    real, calls = scoring._score_one, []

    def killed(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(scoring, "_score_one", killed)
    rc = cli.main(["--params", f"{TINY}:{overlay}", "infer", "--model-json", str(stage_inputs["model"]),
                   "--task", "culturalbench", "--strategy", "default", "--prompts", str(prompts),
                   "--out", str(out), "--no-progress"])
    capsys.readouterr()
    monkeypatch.setattr(scoring, "_score_one", real)
    assert rc == 130 and sorted(Path(f"{out}.chunks").glob("*.parquet")), "no checkpoint left"


@pytest.mark.parametrize("change", ["option text", "temperature"])
def test_checkpoints_of_another_job_are_recomputed(stage_inputs, clean_run, tmp_path, monkeypatch, capsys,
                                                   change):
    """Chunks left by a job over an older rendering (same prompt ids, one option edited) or with
    another temperature are set aside and recomputed: the output is the uninterrupted run's."""
    import pandas as pd

    prompts = stage_inputs[("culturalbench", "default")]
    other, overlay = prompts, tmp_path / "same.yaml"
    overlay.write_text("{}\n")
    chunk = io.read_parquet(prompts).iloc[:2]  # the first chunk's prompts (chunk_size 2 below)
    if change == "option text":
        df = io.read_parquet(prompts)
        df["text"] = [t.replace(df["shown_options"].iloc[0][0], "an edited option", 1) for t in df["text"]]
        df["user"] = [u.replace(df["shown_options"].iloc[0][0], "an edited option", 1) for u in df["user"]]
        other = tmp_path / "older.parquet"
        io.write_parquet(df, other, io.read_provenance(prompts))
        assert not df["text"].equals(io.read_parquet(prompts)["text"]) and len(chunk) == 2
    else:
        overlay.write_text("sampling: {temperature: 1.5}\n")
    small = tmp_path / "chunks.yaml"
    small.write_text("inference: {chunk_size: 2}\n")
    out = tmp_path / "default.parquet"
    _chunks_of(stage_inputs, other, out, f"{overlay}:{small}", monkeypatch, capsys)
    rc, err = _infer(capsys, stage_inputs, "culturalbench", "default", prompts, out)
    assert rc == 0, err
    assert f"culteval: checkpoint {out}.chunks/00000.parquet: is job " in err, err
    assert "recomputing it" in err
    assert not Path(f"{out}.chunks").exists()
    assert pd.read_parquet(out).equals(pd.read_parquet(clean_run))
    assert out.read_bytes() == clean_run.read_bytes()


def test_recovered_job_exits_0_and_leaves_no_chunk_folder(stage_inputs, clean_run, tmp_path, monkeypatch,
                                                          capsys):
    out = tmp_path / "default.parquet"
    small = tmp_path / "chunks.yaml"
    small.write_text("inference: {chunk_size: 2}\n")
    _chunks_of(stage_inputs, stage_inputs[("culturalbench", "default")], out, str(small), monkeypatch, capsys)
    first = Path(f"{out}.chunks") / "00000.parquet"
    first.write_bytes(first.read_bytes()[:200])  # cut, as by a kill in the middle of a copy
    rc = cli.main(["--params", f"{TINY}:{small}", "infer", "--model-json", str(stage_inputs["model"]),
                   "--task", "culturalbench", "--strategy", "default", "--prompts",
                   str(stage_inputs[("culturalbench", "default")]), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert f"culteval: checkpoint {first}: damaged or not a Parquet file" in err
    assert not Path(f"{out}.chunks").exists()
    assert out.read_bytes() == clean_run.read_bytes()


def test_a_second_process_on_the_same_output_is_told_why(stage_inputs, tmp_path, capsys):
    import fcntl

    out = tmp_path / "default.parquet"
    chunks = Path(f"{out}.chunks")
    chunks.mkdir()
    with open(chunks / ".lock", "w") as held:
        held.write("pid 4242")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        rc, err = _infer(capsys, stage_inputs, "culturalbench", "default",
                         stage_inputs[("culturalbench", "default")], out)
    assert rc == 1 and not out.exists()
    assert (f"culteval infer: error: RuntimeError: {out}: another culteval process (pid 4242) is writing it; "
            "wait for it to finish") in err, err


def test_sampled_answers_that_cannot_fit_n_ctx_are_refused_naming_the_prompt(stage_inputs, tmp_path, capsys):
    """n_ctx between the longest prompt and prompt + max_tokens: refused before any evaluation
    (an answer cut at the context's end would be parsed as the model's whole answer)."""
    from culteval.engine import Engine
    from culteval.preflight import longest_prompt

    prompts = io.read_parquet(stage_inputs[("normad", "default")])
    with Engine(io.read_json(stage_inputs["model"])["path"]) as engine:
        n, pid = longest_prompt(engine, prompts, ("both", "generate"))
    overlay = tmp_path / "ctx.yaml"
    overlay.write_text(f"inference: {{n_ctx: {n + 2}}}\n")  # holds every prompt, not 8 more tokens
    out = tmp_path / "raw.parquet"
    rc = cli.main(["--params", f"{TINY}:{overlay}", "infer", "--model-json", str(stage_inputs["model"]),
                   "--task", "normad", "--strategy", "default", "--prompts",
                   str(stage_inputs[("normad", "default")]), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and not out.exists(), err
    assert (f"culteval infer: error: model 'gemma-3-270m': inference.n_ctx={n + 2} cannot hold prompt "
            f"{pid!r} ({n} tokens) plus a sampled answer of max_tokens=") in err, err


def test_full_disk_on_the_sidecar_replaces_nothing_and_the_rerun_resumes(stage_inputs, clean_run, tmp_path,
                                                                        monkeypatch, capsys):
    out = tmp_path / "default.parquet"
    real = io._commit

    def full_on_sidecar(tmp, path):
        if path.name.endswith(io.SIDECAR_SUFFIX):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(tmp, path)

    monkeypatch.setattr(io, "_commit", full_on_sidecar)
    rc, err = _infer(capsys, stage_inputs, "culturalbench", "default",
                     stage_inputs[("culturalbench", "default")], out)
    monkeypatch.setattr(io, "_commit", real)
    assert rc == 1
    assert (f"culteval infer: error: {io.sidecar_path(out)}: could not be written "
            f"(No space left on device); neither it nor {out.name} was replaced: the previous versions, "
            "if any, are unchanged") in err, err
    assert f"The finished chunks stay in {out}.chunks: free space and rerun to resume." in err
    assert not out.exists() and not io.sidecar_path(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default.parquet.chunks"]  # no temporary file
    rc, err = _infer(capsys, stage_inputs, "culturalbench", "default",
                     stage_inputs[("culturalbench", "default")], out)
    assert rc == 0, err
    assert out.read_bytes() == clean_run.read_bytes() and io.read_provenance(out)["identity"]["kind"] == "raw"


@pytest.mark.slow
def test_dvc_never_records_a_damaged_output(tmp_path, mirror):
    """A truncated item table: `dvc repro` sets it aside before Snakemake runs (whose check is by
    time only), remakes it, and records the good bytes; the damaged copy is outside data/."""
    import os
    import subprocess
    import sys

    import yaml

    from culteval import dvcgraph
    from culteval.config import load_params

    work = tmp_path / "project"
    work.mkdir()
    copy_workflow(work)
    cfg = load_params(TINY)
    cfg["strategies"] = ["default"]
    (work / "params.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (work / "dvc.yaml").write_text(dvcgraph.generate(work / "params.yaml", root=work))
    env = {**{k: v for k, v in os.environ.items() if k != "CULTEVAL_PARAMS"}, "DVC_NO_ANALYTICS": "1",
           "CULTEVAL_DATA_MIRROR": str(mirror), "PYTHONPATH": str(work / "src"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def run(*cmd: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        return proc

    run(sys.executable, "-m", "dvc", "init", "--no-scm", "-q")
    run(sys.executable, "-m", "dvc", "repro", "-q", "render")
    items = work / "data" / "items" / "hi" / "normad.parquet"
    good, lock = items.read_bytes(), (work / "dvc.lock").read_text()
    items.write_bytes(good[: len(good) // 2])
    proc = run(sys.executable, "-m", "dvc", "repro", "render")
    assert f"{items.relative_to(work)}: damaged or not a Parquet file" in proc.stdout + proc.stderr
    assert items.read_bytes() == good  # remade by its rule
    assert (work / "dvc.lock").read_text() == lock  # and only the good bytes were ever recorded
    assert not list((work / "data").rglob("*.damaged"))
    assert (work / ".culteval" / "damaged" / "data" / "items" / "hi" / "normad.parquet").is_file()


def test_a_raw_output_records_the_params_its_rule_depends_on(clean_run):
    """What `culteval validate` compares to tell a stale raw output from a current one: the infer
    rule's params (culteval.dvcgraph), not the engine's settings, so a fresh job is never stale."""
    from culteval import config as cfgmod
    from culteval.io import read_provenance
    from culteval.pipeline import stale_settings

    cfg = cfgmod.load_params(TINY)
    recorded = read_provenance(clean_run)["settings"]
    assert recorded == cli._settings(cfg, "infer", model="gemma-3-270m", task="culturalbench",
                                     strategy="default")
    ident = {"kind": "raw", "culture": cfgmod.culture_of(cfg), "model": "gemma-3-270m",
             "task": "culturalbench", "strategy": "default"}
    assert stale_settings(clean_run, ident, cfg) is None
