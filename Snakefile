# culteval: dataset acquisition -> items -> translations -> prompts -> inference -> metrics -> report.
# The logic lives in the culteval package; rules only wire files together.
# Params: params.yaml, or CULTEVAL_PARAMS="params.yaml:overlay.yaml", then --configfile/--config
# (validated at start-up).

import os
import re

# Every job reads the project files (templates, tables, item sets) of this Snakefile's checkout,
# whichever checkout the culteval package was installed from (culteval.config.project_root).
os.environ["CULTEVAL_PROJECT"] = workflow.basedir

# --configfile/--config are applied over the params files: they are written to an overlay
# that joins CULTEVAL_PARAMS, so the jobs read the same values the workflow plans with.

from culteval.costmodel import job_priority
from culteval.resources import gpus, infer_runtime_min, model_mem_mb
from culteval.config import culture_keys, enabled_tasks, export_params, load_params, override_params

PARAMS = override_params(export_params(), config)  # exported as CULTEVAL_PARAMS for every job
config.clear()
config.update(load_params(PARAMS))  # schema-validated: bad params stop here, naming the key


envvars:
    "CULTEVAL_PARAMS",
    "CULTEVAL_PROJECT",


TASKS = enabled_tasks(config)
STRATEGIES = config["strategies"]
MODELS = sorted(config["models"])
CULTURES = culture_keys(config)  # params.cultures: every stage runs once per culture

wildcard_constraints:
    task="|".join(TASKS),
    culture="|".join(re.escape(c) for c in CULTURES),
    strategy="|".join(STRATEGIES),
    model="[A-Za-z0-9][A-Za-z0-9._-]*",


include: "workflow/rules/common.smk"
include: "workflow/rules/acquire.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/translate.smk"
include: "workflow/rules/render.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/metrics/summary.csv",
        "results/report.html",


# A job the scheduler killed: say why (its SLURM log's reason) beside the log's path.
onerror:
    import sys
    from pathlib import Path

    from culteval.cluster import explain_failures

    # `log`: the run's log file (a list of them in Snakemake 9)
    for path in [log] if isinstance(log, str) else log:
        for line in explain_failures(Path(path).read_text(errors="replace")):
            print(line, file=sys.stderr)
