"""The pipeline graph in one table: the Snakemake rules and ``dvc.yaml`` both read it.

Each phase names the source files, templates, upstream artifacts and params keys its
jobs read. The rules take their rerun triggers from here (``settings`` and
``code_files``); ``python -m culteval.dvcgraph`` writes ``dvc.yaml`` from the same
table, and a test fails when the committed ``dvc.yaml`` differs from the generated one.

Params keys are dotted paths into params.yaml; ``{task}``/``{model}``/``{dataset}``/
``{lang}`` are a job's wildcards. A job with a ``{culture}`` wildcard reads its culture's view of
the params (``culture_cfg``: ``target`` and ``translation.table`` are that culture's), which DVC
tracks as ``cultures.<key>...`` for every culture. ``MODEL`` stands for one model's entry without its
labels (``group``, ``base``, ``family``, ``multilingual``): relabelling a model reruns only
metrics and report.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from culteval.config import (
    CULTURE_FIELDS,
    ROOT,
    culture_cfg,
    culture_keys,
    described_cultures,
    enabled_tasks,
    load_params,
)

MODEL = "models.{model}"
MODEL_LABELS = ("group", "base", "family", "multilingual")  # read by metrics and report only
# Everything a job reads whichever phase it runs: the CLI, params loading and I/O.
COMMON_CODE = (
    "Snakefile",
    "workflow/rules/common.smk",
    "workflow/schemas/params.schema.yaml",
    "src/culteval/__init__.py",
    "src/culteval/cli.py",
    "src/culteval/config.py",
    "src/culteval/io.py",
    "src/culteval/provenance.py",
)
# inference.chunk_size only sets how often the engine checkpoints and inference.n_threads how
# fast it runs: results depend on neither (docs/pipeline.md), so neither reruns anything.
ENGINE_KEYS = ("inference.n_ctx", "inference.n_batch", "inference.prefix_reuse",
               "inference.segment_tokens",
               "seed")


@dataclass(frozen=True)
class Phase:
    """One DVC stage: the Snakemake target it builds and what its jobs read."""

    target: str
    rules: dict[str, tuple[str, ...]]  # rule -> params keys its outputs depend on
    code: tuple[str, ...]
    deps: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()


#: outputs made of culteval's Parquet artifacts, and the files the metrics stage records by hash:
#: checked before Snakemake runs (a damaged, stale or hand-edited one is set aside, so Snakemake
#: remakes it: its own check is by time only) and before DVC records them
VALIDATED = ("data/items", "data/translations", "data/prompts", "results/raw", "results/metrics/summary.csv",
             "results/metrics/metrics.json")

PHASES: dict[str, Phase] = {
    "acquire": Phase(
        target="all_acquire",
        rules={"acquire_data": ("datasets.{dataset}",), "acquire_model": (MODEL,)},
        code=("workflow/rules/acquire.smk", "culteval.acquire"),
        outs=("data/raw", "data/models"),
    ),
    "prepare": Phase(
        target="all_items",
        rules={"prepare": ("tasks.{task}", "target.country", "reference.country", "country_aliases")},
        code=("workflow/rules/prepare.smk", "culteval.tasks"),
        deps=("data/raw",),
        outs=("data/items",),
    ),
    "translate": Phase(
        target="all_translations",
        rules={"translate": ("translation", "target.language", "target.language_name")},  # + a translator's
        code=("workflow/rules/translate.smk", "culteval.translate", "culteval.engine"),
        deps=("data/items", "workflow/translations/translator.j2",
              "workflow/translations/glossary.{lang}.jsonl"),
        outs=("data/translations",),
    ),
    "render": Phase(
        target="all_prompts",
        rules={"render": ("permutations", "seed", "target", "reference", "tasks.{task}.sampled")},
        code=("workflow/rules/render.smk", "culteval.prompts"),
        deps=("data/items", "data/translations", "workflow/templates"),
        outs=("data/prompts",),
    ),
    "infer": Phase(
        target="all_raw",
        rules={"infer": ("sampling", "tasks.{task}.sampled", *ENGINE_KEYS, MODEL)},
        code=("workflow/rules/infer.smk", "culteval.engine", "culteval.preflight", "culteval.tasks"),
        deps=("data/prompts", "data/models"),
        outs=("results/raw",),
    ),
    "metrics": Phase(
        target="results/metrics/summary.csv",
        rules={"metrics": ("metrics", "cultural_map", "models", "cultures", "reference", "country_aliases",
                           "seed")},
        # the tasks name their metric functions as strings: the whole metrics package is read
        code=("workflow/rules/score.smk", "culteval.metrics", "culteval.pipeline", "culteval.tasks"),
        deps=("data/raw", "data/items", "data/prompts", "results/raw"),
        outs=("results/metrics/summary.csv", "results/metrics/provenance.json"),
        metrics=("results/metrics/metrics.json",),
    ),
    "report": Phase(
        target="results/report.html",
        rules={"report": ("metrics", "cultural_map", "models", "cultures", "reference", "country_aliases")},
        # lineage follows the raw outputs' provenance down to prompts, translations and items
        code=("workflow/rules/report.smk", "culteval.report", "culteval.metrics", "culteval.lineage"),
        deps=("results/metrics/summary.csv", "results/raw", "data/raw", "data/items", "data/translations",
              "data/prompts"),
        outs=("results/report.html", "results/figures", "results/items", "results/provenance.json"),
    ),
}
def plots(cfg: dict) -> list[str]:
    """The report's PNG figures, shown by `dvc plots show/diff`: named one by one, since the
    figures folder also holds Snakemake's timestamp and a provenance file DVC cannot plot."""
    from culteval.report.figures import FIGURES

    return [f"results/figures/{c}/{name}" for c in culture_keys(cfg) for name in FIGURES]


def rule_keys(rule: str, cfg: dict) -> tuple[str, ...]:
    """The params keys a rule's outputs depend on (the translator's model when one is named)."""
    keys = next(p.rules[rule] for p in PHASES.values() if rule in p.rules)
    if rule == "translate" and cfg["translation"]["translator_model"]:
        keys = (*keys, "sampling", *ENGINE_KEYS, "models." + cfg["translation"]["translator_model"])
    return keys


# optional per-task keys: absent means the run-wide default (null in the settings)
OPTIONAL_TASK_KEYS = ("sampled",)


def _lookup(cfg: dict, dotted: str):
    value = cfg
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if parts[0] == "tasks" and i == 2 and part in OPTIONAL_TASK_KEYS and part not in value:
            return None
        value = value[part]
    return value


def _model_entry(cfg: dict, name: str) -> dict:
    return {k: v for k, v in cfg["models"][name].items() if k not in MODEL_LABELS}


def settings(rule: str, cfg: dict, wildcards: dict) -> str:
    """Canonical JSON of the params ``rule``'s job reads: Snakemake reruns the job when it changes.

    A job about one culture (wildcard ``culture``) reads that culture's view of the params."""
    if "culture" in wildcards:
        cfg = culture_cfg(cfg, wildcards["culture"])
    chosen = {}
    for key in rule_keys(rule, cfg):
        key = key.format(**wildcards)
        if key.startswith("models.") and key.count(".") == 1:
            chosen[key] = _model_entry(cfg, key.split(".", 1)[1])
        elif key == "cultures":
            chosen[key] = described_cultures(cfg)
        else:
            chosen[key] = _lookup(cfg, key)
    return json.dumps(chosen, sort_keys=True)


#: the package data files a module may read (pyproject.toml's package-data: metrics/*.yaml,
#: report/templates/*.j2): DVC hashes the whole package folder, so Snakemake must see them too
DATA_SUFFIXES = (".yaml", ".j2")


def _module_files(module: str, root: Path) -> list[Path]:
    """The source files of a culteval module, or of every module of a package with the data files
    it ships (e.g. metrics/proscore.yaml: DVC hashes the whole folder, Snakemake must see them too)."""
    base = root / "src" / Path(*module.split("."))
    if base.is_dir():
        return sorted(p for p in base.rglob("*") if p.suffix in (".py", *DATA_SUFFIXES))
    if not base.with_suffix(".py").is_file():
        return []
    # a module reads its package's data files too (report/html.py its templates/*.j2): those in its
    # folder and in subfolders that are no packages themselves (the top-level modules have none)
    package = base.parent
    data = sorted(p for p in package.rglob("*") if p.suffix in DATA_SUFFIXES
                  and not any((d / "__init__.py").is_file() for d in p.parents if package in d.parents))
    return [base.with_suffix(".py"), *data]


def imported_modules(path: Path) -> set[str]:
    """The culteval modules a source file imports (anywhere in it, function-level imports too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("culteval"):
            if node.module != "culteval":  # the top-level package itself is common code
                out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)  # `from culteval import tasks`
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("culteval"))
    return out


def _closure(modules: list[str], root: Path) -> list[Path]:
    """The files of ``modules`` and of everything they import, transitively (computed, never kept by hand).

    The common code (CLI, config, io, provenance) is a leaf: every job reads it anyway, and
    following the config's lazy import of the task registry would make every phase read every task.
    """
    common = {root / rel for rel in COMMON_CODE}
    seen: set[Path] = set()
    todo = [f for m in modules for f in _module_files(m, root)]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        if f in common or f.suffix != ".py":  # a data file imports nothing
            continue
        if f.name == "dvcgraph.py" and f.parent.name == "culteval":
            # the graph table (read by culteval validate for the params a rule depends on) names the
            # report's figures for `dvc plots`; no job runs report code through it
            continue
        todo += [p for p in [f.parent / "__init__.py"] if p.is_file()]  # a package's __init__ runs first
        for m in imported_modules(f):
            todo += _module_files(m, root)
    return sorted(seen)


def code_files(phase: str, root: Path = ROOT) -> list[str]:
    """Every source file a phase's jobs read: the common code, its rules file and the transitive
    imports of its entry modules (Snakemake compares file times). The CLI and config are common
    code taken as files: following their imports would make every phase read every module."""
    files = [root / rel for rel in COMMON_CODE]
    files += [root / rel for rel in PHASES[phase].code if "/" in rel]
    files += _closure([m for m in PHASES[phase].code if "/" not in m], root)
    return list(dict.fromkeys(str(f) for f in files))


# Where a culture view's keys live in the new-form params.yaml (cultures.<key>.<field>).
_VIEW_KEYS = {"target": CULTURE_FIELDS, "translation": ("translation_table",)}


def _culture_params(key: str, cfg: dict) -> list[str] | None:
    """DVC's names for a culture view's key (``target...``, ``translation``) in the cultures form."""
    head, _, field = key.partition(".")
    if head not in _VIEW_KEYS:
        return None
    fields = (field,) if field else _VIEW_KEYS[head]
    out = [f"cultures.{c}.{f}" for c in culture_keys(cfg) for f in fields]
    return out + (["translation.translator_model"] if head == "translation" else [])


def _dvc_params(keys: tuple[str, ...], cfg: dict, cultures_form: bool = True) -> list[str]:
    """The params.yaml keys DVC tracks for ``keys``; ``cultures_form``: the file names its cultures
    under ``cultures:`` (else the older ``target:``/``translation:``, which DVC tracks as written)."""
    out: list[str] = []
    for key in keys:
        if key == "cultures":  # every culture but its translation table (only translate reads it)
            out += _culture_params("target", cfg) if cultures_form else ["target"]
            continue
        in_cultures = _culture_params(key, cfg) if cultures_form else None
        if in_cultures is not None:
            out += in_cultures
            continue
        if key == "tasks.{task}" and cultures_form:  # a culture's own item sets replace the tasks' ones
            out += ["tasks", *(f"cultures.{c}.itemsets" for c in culture_keys(cfg)
                               if cfg["cultures"][c].get("itemsets"))]
            continue
        if key == "country_aliases" and cultures_form:  # a culture's own aliases join them
            out += ["country_aliases", *(f"cultures.{c}.aliases" for c in culture_keys(cfg)
                                         if cfg["cultures"][c].get("aliases"))]
            continue
        if key == MODEL:  # DVC tracks each model's entry key by key, labels excepted
            out += [f"models.{m}.{k}" for m in sorted(cfg["models"]) for k in sorted(_model_entry(cfg, m))]
        elif key.startswith("tasks.{task}."):  # one key of each task: tracked where a task has it
            sub = key.split(".", 2)[2]
            out += [f"tasks.{t}.{sub}" for t in enabled_tasks(cfg) if sub in cfg["tasks"][t]]
        elif "{" in key:  # a per-job key: DVC tracks its whole section
            out.append(key.split(".{")[0])
        else:
            out.append(key)
    return list(dict.fromkeys(out))


def _expand(path: str, cfg: dict, root: Path) -> list[str]:
    if "{task}" in path:
        return [path.format(task=t) for t in enabled_tasks(cfg)]
    langs = sorted({c["language"] for c in cfg["cultures"].values()})
    paths = list(dict.fromkeys(path.format(lang=lang) for lang in langs))
    return [p for p in paths if "glossary" not in p or (root / p).is_file()]


def _package_dir(rel: Path) -> str:
    parts = rel.parts
    if len(parts) > 3 and parts[:2] == ("src", "culteval"):
        return "/".join(parts[:3])
    return rel.as_posix()


def stage(name: str, cfg: dict, root: Path = ROOT, cultures_form: bool = True) -> dict:
    """The ``dvc.yaml`` stage of one phase."""
    phase = PHASES[name]
    keys = tuple(k for rule in phase.rules for k in rule_keys(rule, cfg))
    # a subpackage (tasks, metrics, report) is one folder dependency: adding a task module to it
    # changes what DVC hashes, not the text of dvc.yaml
    code = list(dict.fromkeys(_package_dir(Path(f).relative_to(root)) for f in code_files(name, root)))
    deps = [*code, *(p for d in phase.deps for p in _expand(d, cfg, root))]
    translator = cfg["translation"]["translator_model"]
    if name == "translate" and translator:
        deps.append(f"data/models/{translator}.json")
    if name == "translate":  # each culture's table, shipped in the project (or an absolute path)
        deps += [t for c in culture_keys(cfg) if (t := cfg["cultures"][c].get("translation_table"))]
    if name == "prepare":  # the pinned evaluation sets each culture's view of a task's params names
        views = [culture_cfg(cfg, c) for c in culture_keys(cfg)]
        deps += sorted({v["tasks"][t]["itemset"] for v in views for t in enabled_tasks(cfg)
                        if v["tasks"][t].get("itemset")})
    # persist: Snakemake, not DVC, decides what inside a folder is stale (DVC would otherwise
    # delete finished inference before rerunning a stage).
    # --rerun-incomplete: a job Ctrl-C or a kill cut short is redone (its outputs are written
    # atomically and validated below, so redoing is safe); `culteval unlock` first removes the lock
    # an interrupted run left, unless a live Snakemake holds it (docs/pipeline.md, "Interrupted runs")
    cmd = f"snakemake --cores 2 --rerun-incomplete {phase.target}"
    checked = [o for o in (*phase.outs, *phase.metrics) if o in VALIDATED]
    if checked:  # DVC records a stage's outputs only after they were read back as their readers do
        outs = " ".join(checked)
        cmd = f"culteval validate --repair {outs} && {cmd} && culteval validate {outs}"
    cmd = f"culteval unlock && {cmd}"
    out: dict = {"cmd": cmd, "deps": list(dict.fromkeys(deps)),
                 "params": _dvc_params(keys, cfg, cultures_form),
                 "outs": [{o: {"persist": True}} for o in phase.outs]}
    if phase.metrics:
        out["metrics"] = [{m: {"cache": False, "persist": True}} for m in phase.metrics]
    return out


def generate(params: str | Path = ROOT / "params.yaml", root: Path = ROOT) -> str:
    """The text of ``dvc.yaml`` for the given params (its models, tasks and cultures)."""
    cfg = load_params(params)
    raw = yaml.safe_load(Path(params).read_text(encoding="utf-8"))
    form = "cultures" in raw  # else the older single-culture form: DVC tracks target/translation
    doc = {"stages": {name: stage(name, cfg, root, form) for name in PHASES}, "plots": plots(cfg)}
    header = ("# Generated by `python -m culteval.dvcgraph` from the table in src/culteval/dvcgraph.py,\n"
              "# which the Snakemake rules read too. Do not edit: edit the table and regenerate.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m culteval.dvcgraph", description=__doc__.splitlines()[0])
    p.add_argument("--params", default=str(ROOT / "params.yaml"))
    p.add_argument("--out", default=str(ROOT / "dvc.yaml"), help="'-' for stdout")
    p.add_argument("--check", action="store_true", help="exit 1 if --out differs from the generated text")
    args = p.parse_args(argv)
    text = generate(args.params)
    if args.check:
        if Path(args.out).read_text(encoding="utf-8") != text:
            print(f"{args.out} is stale: run `python -m culteval.dvcgraph`", file=sys.stderr)
            return 1
        return 0
    if args.out == "-":
        sys.stdout.write(text)
    else:
        from culteval.io import write_text

        write_text(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
