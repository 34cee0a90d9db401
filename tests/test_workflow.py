"""End to end: the Snakemake workflow on a handful of items with the real default model.

These runs are the CI's guard that a broken pipeline cannot land. They share one
module-scoped run (about a minute on 2 CPU cores) and a second run for the
byte-identity check.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from culteval.config import ROOT
from culteval.io import SIDECAR_SUFFIX

pytestmark = pytest.mark.slow
TINY = f"{ROOT / 'params.yaml'}:{ROOT / 'tests' / 'data' / 'params.tiny.yaml'}"


def run_snakemake(workdir: Path, *args: str, params: str = TINY, check: bool = True):
    env = {**os.environ, "CULTEVAL_PARAMS": params, "DVC_NO_ANALYTICS": "1"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--cores", "2", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc


def produced_files(workdir: Path) -> dict[str, bytes]:
    return {
        p.relative_to(workdir).as_posix(): p.read_bytes()
        for top in ("data", "results")
        for p in sorted((workdir / top).rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, mirror):
    os.environ.setdefault("CULTEVAL_DATA_MIRROR", str(mirror))
    workdir = tmp_path_factory.mktemp("run1")
    run_snakemake(workdir)
    return workdir


def test_summary_has_every_task_and_strategy(tiny_run):
    summary = pd.read_csv(tiny_run / "results" / "metrics" / "summary.csv")
    columns = ["culture", "model", "kind", "task", "strategy", "metric", "value", "ci_low", "ci_high",
               "n_items", "flags"]
    assert list(summary.columns) == columns
    assert set(summary["culture"]) == {"hi"}  # the default culture, keyed by its language
    model_rows = summary[summary["model"] == "gemma-3-270m"]
    cfg = yaml.safe_load((ROOT / "params.yaml").read_text())
    for task in ("cultural_map", "global_opinions", "culturalbench", "normad"):
        for strategy in cfg["strategies"]:
            rows = model_rows[(model_rows["task"] == task) & (model_rows["strategy"] == strategy)]
            assert len(rows) > 0, f"no summary rows for {task}/{strategy}"
            assert (rows["n_items"] >= 0).all() and (rows["n_items"] > 0).any()
    # a number without the items behind it is only allowed for counts (ncad_skipped)
    assert set(model_rows.loc[model_rows["n_items"] == 0, "metric"]) <= {"ncad_skipped"}
    cad = model_rows[(model_rows["task"] == "global_opinions") & (model_rows["metric"] == "cad")]
    assert len(cad) == 4 and cad["n_items"].eq(2).all() and cad["value"].between(-1, 1).all()
    easy = model_rows[(model_rows["task"] == "culturalbench") & (model_rows["metric"] == "acc_prob")]
    assert len(easy) == 4 and easy["n_items"].eq(2).all() and easy["value"].between(0, 1).all()


def test_every_output_is_tracked_by_dvc(tiny_run):
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    tracked = [next(iter(o)) if isinstance(o, dict) else o
               for s in stages.values() for key in ("outs", "metrics") for o in s.get(key, [])]
    # commit/machine sidecars are hidden from DVC's hashes on purpose (culteval.io.split_provenance)
    assert f"*{SIDECAR_SUFFIX}" in (ROOT / ".dvcignore").read_text().splitlines()
    for rel in produced_files(tiny_run):
        if rel.endswith(SIDECAR_SUFFIX):
            continue
        assert any(rel == t or rel.startswith(t + "/") for t in tracked), f"{rel} is not tracked by DVC"


def test_rebuild_is_byte_identical(tiny_run, tmp_path):
    run_snakemake(tmp_path)
    first, second = produced_files(tiny_run), produced_files(tmp_path)
    assert sorted(first) == sorted(second)
    differ = [name for name in first if first[name] != second[name]]
    assert not differ, f"files differ between two identical runs: {differ}"


def test_new_model_runs_only_its_own_jobs(tiny_run, tmp_path, default_model):
    overlay = tmp_path / "second.yaml"
    entry = {"path": str(default_model), "group": "global"}
    overlay.write_text(yaml.safe_dump({"models": {"gemma-copy": entry}}))
    proc = run_snakemake(tiny_run, "-n", "--quiet", "rules", params=f"{TINY}:{overlay}")
    planned = proc.stdout + proc.stderr
    assert "infer" in planned and "acquire_model" in planned
    dry = run_snakemake(tiny_run, "-n", "-p", params=f"{TINY}:{overlay}")
    infer_outputs = [line for line in dry.stdout.splitlines() if "results/raw/" in line and "output:" in line]
    assert infer_outputs, dry.stdout[-3000:]
    assert all("results/raw/hi/gemma-copy/" in line for line in infer_outputs), infer_outputs


def test_lineage_of_a_figure_reaches_data_model_and_templates(tiny_run):
    cmd = [sys.executable, "-m", "culteval.cli", "--params", TINY, "lineage", "results/figures/hi/cad.png"]
    proc = subprocess.run(cmd, cwd=tiny_run, capture_output=True, text=True, check=True)
    out = proc.stdout
    model = yaml.safe_load((tiny_run / "data" / "models" / "gemma-3-270m.json").read_text())
    assert model["sha256"] in out and "Q4_K_M" in out
    for manifest in (tiny_run / "data" / "raw").glob("*/PROVENANCE.json"):
        if manifest.parent.name == "ivs_map":
            continue  # the map coordinates feed the figure through the report, not a provenance chain
        for entry in yaml.safe_load(manifest.read_text())["files"].values():
            assert entry["sha256"] in out, f"{manifest.parent.name} missing from lineage"
    prompts = pd.read_parquet(tiny_run / "data" / "prompts" / "hi" / "normad" / "native.parquet")
    assert prompts["template_sha256"].iloc[0] in out
    assert "commit" in out and "llama.cpp build" in out


def test_new_metrics_recompute_from_the_real_run_files(tiny_run):
    """The summary of the real run, recomputed independently from its items and raw outputs
    (tests/recompute_lib.py): per-country accuracy on CulturalBench (Easy, Hard per judgement and
    per question, argmax and sampled) and NormAd (per context), Sim/CAD/nCAD, Rystrom et al.'s
    pro-score alignment, and the paired group comparison's CI and p-values (the tiny overlay puts
    the two models in two groups)."""
    from recompute_lib import (
        cad_per_question,
        check_alignment,
        check_culturalbench,
        check_normad,
        check_opinions,
        check_paired,
        easy_correct_per_item,
        respondent_sim_target,
        sim_target_per_question,
    )

    from culteval.config import load_params

    cfg = load_params(TINY)
    models = sorted(cfg["models"])
    for model in models:
        for strategy in cfg["strategies"]:
            cb = check_culturalbench(tiny_run, cfg, model, strategy)
            assert cb["acc_prob_target"] == cb["acc_prob_reference"] == 1  # one question per country
            assert cb["acc_question_sampled_target"] == cb["acc_judgement_reference"] // 4 == 1
            nm = check_normad(tiny_run, cfg, model, strategy)
            assert nm["acc_sampled_rot_target"] == nm["acc_prob_none_reference"] == 1
            assert check_opinions(tiny_run, cfg, model, strategy)["cad"] == 2
            check_alignment(tiny_run, cfg, model, strategy)
    assert [cfg["models"][m]["group"] for m in models] == ["global", "instruct"]
    cad = {m: cad_per_question(tiny_run, cfg, m, "default") for m in models}
    assert check_paired(tiny_run, cfg, "group:global-vs-instruct", "global_opinions", "default", "cad",
                        cad[models[0]], cad[models[1]]) == 2
    easy = {m: easy_correct_per_item(tiny_run, m, "demographic") for m in models}
    assert check_paired(tiny_run, cfg, "group:global-vs-instruct", "culturalbench", "demographic",
                        "acc_prob", easy[models[0]], easy[models[1]]) == 2
    us = respondent_sim_target(tiny_run, cfg)
    for model in models:
        for strategy in cfg["strategies"]:
            mine = sim_target_per_question(tiny_run, cfg, model, strategy)
            assert check_paired(tiny_run, cfg, f"delta:{model}-vs-baseline:United States", "global_opinions",
                                strategy, "sim_target", mine, us) == 2
