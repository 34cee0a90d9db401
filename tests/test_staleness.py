"""Staleness: after a full tiny run, each class of input change makes `snakemake -n` plan exactly
the dependent jobs and `dvc status` flag exactly the stages that read it.

A scratch copy of the workflow (Snakefile, rules, templates, sources, dvc.yaml generated for
the tiny params) runs once; then each case edits one input, asks both tools, and restores the
input with its original modification time. Snakemake plans the changed jobs and everything
downstream; DVC flags the stages whose own deps or params changed (it compares outputs by
content, so downstream stages rerun only when an output really changes).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow

from culteval import dvcgraph
from culteval.config import ROOT, load_params

pytestmark = pytest.mark.slow
MODEL = "gemma-3-270m"
DOWN_ITEMS = {"prepare", "translate", "render", "infer", "metrics", "report"}
ALL_RULES = {"acquire_data", "acquire_model", *DOWN_ITEMS}
ALL_STAGES = set(dvcgraph.PHASES)
SCORE = {"metrics", "report"}
FROM_INFER = {"infer", *SCORE}
FROM_RENDER = {"render", *FROM_INFER}
FROM_TRANSLATE = {"translate", *FROM_RENDER}


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CULTEVAL_PARAMS"}
    # the stages' commands call the project's console scripts, as under `make` (.venv/bin on PATH)
    path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(ROOT / "src"), "PATH": path}


def _run(cwd: Path, *cmd: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, mirror):
    os.environ.setdefault("CULTEVAL_DATA_MIRROR", str(mirror))
    work = tmp_path_factory.mktemp("staleness")
    copy_workflow(work)
    # one params file (DVC reads params.yaml only): the default run shrunk by the tiny overlay,
    # with the translation table copied in so that editing it is possible
    cfg = load_params(f"{ROOT / 'params.yaml'}:{ROOT / 'tests' / 'data' / 'params.tiny.yaml'}")
    # smaller still: one strategy without and one with translation, one trial (every stage runs)
    cfg["strategies"], cfg["sampling"]["trials"] = ["default", "native"], 1
    # written in the older single-culture form (target: + translation.table): it must keep working,
    # for Snakemake and for DVC (which then tracks target/translation as written)
    del cfg["cultures"]
    cfg["tasks"]["indica"]["enabled"] = False  # regions of a culture exist only in the cultures: form
    table = work / "tables" / "hi.jsonl"
    table.parent.mkdir()
    shutil.copy2(ROOT / cfg["translation"]["table"], table)
    shutil.copy2(table, table.with_name("copy.jsonl"))
    cfg["translation"]["table"] = str(table)
    (work / "params.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (work / "dvc.yaml").write_text(dvcgraph.generate(work / "params.yaml", root=work))
    _run(work, sys.executable, "-m", "snakemake", "--cores", "2", "--quiet")
    _run(work, sys.executable, "-m", "dvc", "init", "--no-scm", "-q")
    _run(work, sys.executable, "-m", "dvc", "commit", "-f", "-q")
    return work


def planned(work: Path) -> set[str]:
    out = _run(work, sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--quiet", "rules").stdout
    rules = {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", out, flags=re.M)}
    return rules - {"all", "total"}


def stale(work: Path) -> set[str]:
    out = _run(work, sys.executable, "-m", "dvc", "status", "--json").stdout
    return set(yaml.safe_load(out or "{}") or {})


def edit_file(rel: str, change):
    def apply(work: Path):
        path = work / rel
        text = path.read_text(encoding="utf-8")
        path.write_text(change(text), encoding="utf-8")
    return apply


def edit_params(change):
    def apply(work: Path):
        path = work / "params.yaml"
        cfg = yaml.safe_load(path.read_text())
        change(cfg)
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return apply


def _set(dotted: str, value):
    def change(cfg):
        *parents, last = dotted.split(".")
        node = cfg
        for key in parents:
            node = node[key]
        node[last] = value
    return change


def _append(line: str):
    return lambda text: text + line


def _other_table(work: Path) -> None:
    """translation.table names an identical copy: the key changes, the content does not."""
    edit_params(_set("translation.table", str(work / "tables" / "copy.jsonl")))(work)


PY = "\n# edited\n"
CASES = {
    # inputs: (edit, jobs snakemake plans, stages dvc flags)
    "template": (edit_file("workflow/templates/normad/default.j2", _append("{# edited #}")),
                 FROM_RENDER, {"render"}),
    "glossary": (edit_file("workflow/translations/glossary.hi.jsonl",
                           _append('{"en": "edited", "hi": "x"}\n')),
                 FROM_TRANSLATE, {"translate"}),
    "translation table": (edit_file("tables/hi.jsonl", _append('{"en": "edited", "hi": "x"}\n')),
                          FROM_TRANSLATE, {"translate"}),
    # one params key per stage
    "datasets": (edit_params(_set("datasets.normad.license", "edited")), ALL_RULES - {"acquire_model"},
                 {"acquire"}),
    "tasks": (edit_params(_set("tasks.normad.limit", 1)), DOWN_ITEMS, {"prepare"}),
    "translation": (_other_table,
                    FROM_TRANSLATE, {"translate"}),
    "target.language_name": (edit_params(_set("target.language_name", "Hindi (edited)")),
                             FROM_TRANSLATE,
                             {"translate", "render", "metrics", "report"}),
    "permutations": (edit_params(_set("permutations", 1)), FROM_RENDER, {"render"}),
    "sampling": (edit_params(_set("sampling.temperature", 0.5)), FROM_INFER, {"infer"}),
    "metrics": (edit_params(_set("metrics.low_mass", 0.2)), SCORE, SCORE),
    "chunk_size": (edit_params(_set("inference.chunk_size", 3)), set(), set()),
    "n_threads": (edit_params(_set("inference.n_threads", 2)), set(), set()),
    # a model entry, and a model's label
    "model entry": (edit_params(_set(f"models.{MODEL}.chat_template", "none")),
                    {"acquire_model", *FROM_INFER}, {"acquire", "infer", "metrics", "report"}),
    "model group": (edit_params(_set(f"models.{MODEL}.group", "regional")), SCORE,
                    SCORE),
    # one source module per phase
    "acquire.py": (edit_file("src/culteval/acquire.py", _append(PY)), ALL_RULES, {"acquire"}),
    # every phase after acquire reads the task declarations
    "tasks/normad.py": (edit_file("src/culteval/tasks/normad.py", _append(PY)), DOWN_ITEMS,
                        {"prepare", "translate", "render", "infer", "metrics", "report"}),
    "translate.py": (edit_file("src/culteval/translate.py", _append(PY)),
                     FROM_TRANSLATE, {"translate", "render"}),
    # the translations' rerun reruns the native prompts too (Snakemake compares times)
    "engine/scoring.py": (edit_file("src/culteval/engine/scoring.py", _append(PY)), FROM_TRANSLATE,
                  {"translate", "infer", "metrics"}),
    "metrics/accuracy.py": (edit_file("src/culteval/metrics/accuracy.py", _append(PY)), SCORE,
                            SCORE),
    "report/html.py": (edit_file("src/culteval/report/html.py", _append(PY)), {"report"}, {"report"}),
    "cli.py": (edit_file("src/culteval/cli.py", _append(PY)), ALL_RULES, ALL_STAGES),
}


def test_a_finished_run_is_up_to_date(scratch):
    assert planned(scratch) == set()
    assert stale(scratch) == set()


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_edit_reruns_exactly_its_dependents(scratch, case):
    edit, jobs, stages = CASES[case]
    saved = {p: (p.read_bytes(), p.stat()) for p in scratch.rglob("*")
             if p.is_file() and ".snakemake" not in p.parts and ".dvc" not in p.parts
             and p.parts[len(scratch.parts)] not in ("data", "results", "logs")}
    edit(scratch)
    try:
        assert planned(scratch) == jobs, "snakemake -n"
        assert stale(scratch) == stages, "dvc status"
    finally:
        for path, (data, st) in saved.items():
            if path.read_bytes() != data:
                path.write_bytes(data)
                os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_refactor_that_keeps_outputs_reruns_nothing_downstream(scratch):
    """prompts.py changes without changing any prompt: DVC reruns render, finds its outputs
    byte-identical (no commit in the bytes) and stops there: no inference."""
    path = scratch / "src" / "culteval" / "prompts.py"
    original, st = path.read_bytes(), path.stat()
    path.write_bytes(original + b"\n# refactor\n")
    try:
        out = _run(scratch, sys.executable, "-m", "dvc", "repro").stdout
        ran = set(re.findall(r"Running stage '(\w+)'", out))
        assert ran == {"render"}, out[-3000:]
        assert stale(scratch) == set()
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
