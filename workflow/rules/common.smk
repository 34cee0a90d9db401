import json
import sys
from pathlib import Path

# Input functions and target lists shared by the rules.
from culteval.config import TRANSLATED_STRATEGIES
from culteval.tasks import get as get_task

# The params files reach the jobs through CULTEVAL_PARAMS (exported by the Snakefile),
# not the command line, so an overlay that adds a model changes no other job.
CLI = f"{sys.executable} -m culteval.cli"
ENV = "../../envs/culteval.yaml"  # for --use-conda; the Makefile's .venv is the default



def settings(*keys, model=False):
    """The params a rule's output depends on, as canonical JSON: Snakemake reruns a job when they change."""
    def get(wildcards):
        chosen = {k: config[k] for k in keys}
        if model:
            chosen["model"] = config["models"][wildcards.model]
        return json.dumps(chosen, sort_keys=True)

    return get


def task_datasets(wildcards):
    return [f"data/raw/{d}/PROVENANCE.json" for d in get_task(wildcards.task).datasets]


def render_inputs(wildcards):
    inputs = {"item_table": f"data/items/{wildcards.task}.parquet"}
    if wildcards.strategy in TRANSLATED_STRATEGIES:
        inputs["translations"] = f"data/translations/{LANG}.parquet"
    return inputs


def templates(wildcards):
    return sorted(str(p) for p in Path(workflow.basedir, "workflow/templates", wildcards.task).glob("*.j2"))


def translator_models(wildcards):
    name = config["translation"]["translator_model"]
    return [f"data/models/{name}.json"] if name else []


ALL_DATASETS = sorted({d for t in TASKS for d in get_task(t).datasets} | {"ivs_map"})
ALL_ITEMS = expand("data/items/{task}.parquet", task=TASKS)
# (task, strategy) pairs: a task may declare the strategies it supports (Task.strategies).
PAIRS = [(t, s) for t in TASKS for s in STRATEGIES if s in (get_task(t).strategies or STRATEGIES)]
ALL_PROMPTS = [f"data/prompts/{t}/{s}.parquet" for t, s in PAIRS]
ALL_RAW = [f"results/raw/{m}/{t}/{s}.parquet" for m in MODELS for t, s in PAIRS]
