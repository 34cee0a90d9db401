"""The pipeline graph table: dvc.yaml is generated from it, and the rules' rerun triggers come from it."""

from __future__ import annotations

import copy
import json
import re

import pytest

from culteval import dvcgraph
from culteval.config import ROOT, load_params, override_params

CFG = load_params(ROOT / "params.yaml")
MODEL = sorted(CFG["models"])[0]


def test_committed_dvc_yaml_is_the_generated_one():
    committed = (ROOT / "dvc.yaml").read_text(encoding="utf-8")
    assert committed == dvcgraph.generate(), "dvc.yaml is stale: run `python -m culteval.dvcgraph`"


def test_every_rule_takes_its_triggers_from_the_table():
    rules = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text(encoding="utf-8")
        for name, body in re.findall(r"^rule (\w+):\n((?:[ \n].*\n?)*)", text, flags=re.M):
            rules[name] = body
    jobs = {name: body for name, body in rules.items() if not name.startswith("all")}
    table = {rule for phase in dvcgraph.PHASES.values() for rule in phase.rules}
    assert set(jobs) == table
    for name, body in jobs.items():
        assert f'settings=settings("{name}")' in body, f"rule {name} hashes params of its own choosing"
        assert "phase_code(" in body, f"rule {name} does not depend on its source files"


def _settings(rule: str, cfg: dict, **wildcards) -> dict:
    return json.loads(dvcgraph.settings(rule, cfg, wildcards))


JOBS = {"acquire_model": {"model": MODEL}, "infer": {"model": MODEL, "task": "global_opinions"},
        "prepare": {"task": "normad"}, "render": {"task": "global_opinions"},
        "translate": {"culture": sorted(CFG["cultures"])[0]}, "metrics": {},
        "report": {}}


def _changed(edit) -> set[str]:
    cfg = copy.deepcopy(CFG)
    edit(cfg)
    return {rule for rule, wc in JOBS.items() if _settings(rule, cfg, **wc) != _settings(rule, CFG, **wc)}


def test_model_group_reruns_only_metrics_and_report():
    assert _changed(lambda c: c["models"][MODEL].update(group="relabelled")) == {"metrics", "report"}
    assert _changed(lambda c: c["models"][MODEL].update(family="other", multilingual=0.5)) == {
        "metrics", "report"}


def test_chunk_size_and_thread_count_rerun_nothing():
    assert _changed(lambda c: c["inference"].update(chunk_size=7)) == set()
    assert _changed(lambda c: c["inference"].update(n_threads=4)) == set()


def test_engine_and_model_settings_rerun_inference():
    assert _changed(lambda c: c["inference"].update(n_ctx=4096)) == {"infer"}
    assert _changed(lambda c: c["models"][MODEL].update(chat_template="none")) == {
        "acquire_model", "infer", "metrics", "report"}


def test_another_model_reruns_nothing_of_this_one():
    def add(c):
        c["models"]["other"] = {"path": "/x.gguf", "group": "regional"}
    assert _changed(add) == {"metrics", "report"}


def test_sampled_opinions_rerun_prompts_and_inference_of_that_task_only():
    def sample(c):
        c["tasks"]["global_opinions"]["sampled"] = {"trials": 3, "temperature": 0.7}
    assert _changed(sample) == {"render", "infer"}
    assert _settings("render", CFG, task="normad") == _settings("render", _edited(sample), task="normad")
    assert _settings("infer", CFG, model=MODEL, task="normad") == _settings(
        "infer", _edited(sample), model=MODEL, task="normad")
    stages = {name: dvcgraph.stage(name, CFG)["params"] for name in ("render", "infer")}
    assert all("tasks.global_opinions.sampled" in p and "tasks" not in p for p in stages.values())


def _edited(edit) -> dict:
    cfg = copy.deepcopy(CFG)
    edit(cfg)
    return cfg


def test_a_moved_translation_table_reruns_only_translate():
    # the same table under another name: only the translate stage reads the path (its content is
    # a file dependency of translate, and what it says reaches the rest through data/translations)
    key = sorted(CFG["cultures"])[0]
    assert _changed(lambda c: c["cultures"][key].update(translation_table="/elsewhere/same.jsonl")) == {
        "translate"}
    for name in ("metrics", "report"):
        params = dvcgraph.stage(name, CFG)["params"]
        assert f"cultures.{key}.country" in params and f"cultures.{key}.language" in params
        assert "cultures" not in params and not any(p.endswith("translation_table") for p in params)


def test_another_task_reruns_nothing_of_this_one():
    assert _changed(lambda c: c["tasks"]["culturalbench"].update(limit=3)) == set()
    assert _changed(lambda c: c["tasks"]["normad"].update(limit=3)) == {"prepare"}


def test_dvc_tracks_model_entries_without_labels():
    infer = dvcgraph.stage("infer", CFG)
    assert f"models.{MODEL}.sha256" in infer["params"]
    assert not any(p.endswith((".group", ".base", ".family", ".multilingual")) or p == "models"
                   for p in infer["params"])
    assert "inference.chunk_size" not in infer["params"] and "inference" not in infer["params"]
    assert "models" in dvcgraph.stage("metrics", CFG)["params"]


def test_a_packages_data_file_is_code_for_snakemake_as_for_dvc():
    """Editing the pro-score rule file reruns metrics under Snakemake, as DVC's folder hash does."""
    assert str(ROOT / "src/culteval/metrics/proscore.yaml") in dvcgraph.code_files("metrics")
    # a module's package data: the report's page template, the claims' margins
    assert str(ROOT / "src/culteval/report/templates/report.html.j2") in dvcgraph.code_files("report")
    assert str(ROOT / "src/culteval/metrics/margins.yaml") in dvcgraph.code_files("metrics")
    # the metrics stage reads the graph table (validate), which names the report's figures: no
    # report code runs in it, so editing the report reruns the report alone (DVC and Snakemake)
    assert not [f for f in dvcgraph.code_files("metrics") if "/report/" in f]
    assert "src/culteval/report" not in dvcgraph.stage("metrics", CFG)["deps"]
    # and nothing of other packages: a top-level module brings no data files
    assert not [f for f in dvcgraph.code_files("infer") if f.endswith((".yaml", ".j2")) and "/src/" in f]


def test_code_files_cover_common_modules_and_the_phase(tmp_path):
    files = dvcgraph.code_files("prepare")
    assert str(ROOT / "src/culteval/cli.py") in files and str(ROOT / "src/culteval/tasks/normad.py") in files
    assert not any("/engine/" in f for f in files)


def test_snakemake_config_overrides_join_the_params(tmp_path, monkeypatch):
    monkeypatch.setenv("CULTEVAL_PARAMS", "params.yaml")
    assert override_params("a.yaml", {}, tmp_path) == "a.yaml"
    spec = override_params(str(ROOT / "params.yaml"), {"seed": 7}, tmp_path)
    assert load_params(spec)["seed"] == 7
    import os
    assert os.environ["CULTEVAL_PARAMS"] == spec


@pytest.mark.parametrize("phase", sorted(dvcgraph.PHASES))
def test_every_dependency_exists(phase):
    stage = dvcgraph.stage(phase, CFG)
    for dep in stage["deps"]:
        if not dep.startswith(("data/", "results/")):
            assert (ROOT / dep).exists(), f"{phase}: {dep} does not exist"


def test_plots_name_the_report_figures_one_by_one(tmp_path):
    """`dvc plots show` fails on any file it cannot plot (Snakemake's timestamp, a provenance
    json) in a plots folder: the figures are named one by one, as the report writes them."""
    import pandas as pd

    from culteval.report.figures import render_all

    cfg = load_params(ROOT / "params.yaml")
    columns = ["model", "kind", "task", "strategy", "metric", "value", "ci_low", "ci_high", "n_items",
               "flags"]
    written = render_all(pd.DataFrame(columns=columns), None, cfg, tmp_path)
    assert dvcgraph.plots(cfg) == [f"results/figures/hi/{p.name}" for p in written]
