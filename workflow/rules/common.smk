import json
import sys
from pathlib import Path

# Input functions and target lists shared by the rules.
from culteval import dvcgraph
from culteval.config import project_file
from culteval.config import TRANSLATED_STRATEGIES, culture_cfg
from culteval.tasks import get as get_task

# The params files reach the jobs through CULTEVAL_PARAMS (exported by the Snakefile),
# not the command line, so an overlay that adds a model changes no other job.
# The jobs run in this interpreter's environment (no conda: directive); see docs/pipeline.md.
CLI = f"{sys.executable} -m culteval.cli"



def settings(rule):
    """The params keys (culteval.dvcgraph) a rule's outputs depend on, as canonical JSON:
    Snakemake reruns a job when they change, and only then."""
    return lambda wildcards: dvcgraph.settings(rule, config, dict(wildcards.items()))


def phase_code(phase):
    """The source files a phase's jobs read: editing one reruns that phase's jobs."""
    return dvcgraph.code_files(phase, Path(workflow.basedir))


def task_datasets(wildcards):
    return [f"data/raw/{d}/PROVENANCE.json" for d in get_task(wildcards.task).datasets]


def task_itemset(wildcards):
    """The pinned evaluation set a task's params name (its contents decide the items), if any."""
    spec = culture_cfg(config, wildcards.culture)["tasks"][wildcards.task].get("itemset")
    # relative paths name files of the project, as culteval.tasks.read_itemset reads them
    return [str(project_file(spec))] if spec else []


def translation_table(wildcards):
    """The culture's translation table file (in the project unless absolute), if params name one."""
    from culteval.cli import _translation_table_path

    path = _translation_table_path(culture_cfg(config, wildcards.culture))
    return [str(path)] if path else []


def glossary(wildcards):
    """The project's glossary for the culture's language, where there is one."""
    lang = config["cultures"][wildcards.culture]["language"]
    path = Path(workflow.basedir, "workflow/translations", f"glossary.{lang}.jsonl")
    return [str(path)] if path.is_file() else []


def culture_items(wildcards):
    return [f"data/items/{wildcards.culture}/{t}.parquet" for t in TASKS]


def render_inputs(wildcards):
    inputs = {"item_table": f"data/items/{wildcards.culture}/{wildcards.task}.parquet"}
    if wildcards.strategy in TRANSLATED_STRATEGIES:
        inputs["translations"] = f"data/translations/{wildcards.culture}.parquet"
    return inputs


def templates(wildcards):
    return sorted(str(p) for p in Path(workflow.basedir, "workflow/templates", wildcards.task).glob("*.j2"))


def translator_models(wildcards):
    name = config["translation"]["translator_model"]
    return [f"data/models/{name}.json"] if name else []


ALL_DATASETS = sorted({d for t in TASKS for d in get_task(t).datasets} | {"ivs_map"})
# Every artifact from items on is per culture (params.cultures): data/items/<culture>/...
ALL_ITEMS = expand("data/items/{culture}/{task}.parquet", culture=CULTURES, task=TASKS)
ALL_TRANSLATIONS = expand("data/translations/{culture}.parquet", culture=CULTURES)
# (task, strategy) pairs: a task may declare the strategies it supports (Task.strategies).
PAIRS = [(t, s) for t in TASKS for s in STRATEGIES if s in (get_task(t).strategies or STRATEGIES)]
ALL_PROMPTS = [f"data/prompts/{c}/{t}/{s}.parquet" for c in CULTURES for t, s in PAIRS]
ALL_RAW = [f"results/raw/{c}/{m}/{t}/{s}.parquet" for c in CULTURES for m in MODELS for t, s in PAIRS]
