"""Command-line entry points; the Snakemake rules call these (rules stay thin)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from culteval import config as cfgmod
from culteval.io import (
    DamagedFileError,
    WriteError,
    check_set,
    file_set,
    not_a_file,
    read_parquet,
    read_provenance,
    read_record,
    require_rows,
    sha256_file,
    sidecar_path,
    split_provenance,
    write_json,
    write_parquet,
    write_record,
)
from culteval.pipeline import ITEMS_CHECK as _ITEMS_CHECK
from culteval.pipeline import PROMPTS_CHECK as _PROMPTS_CHECK
from culteval.preflight import PreflightError


def _items_params(cfg: dict, task: str) -> dict:
    """The params an item table depends on: recorded by prepare, checked by render."""
    return {"tasks": {task: cfg["tasks"][task]}, "target": cfg["target"], "reference": cfg["reference"]}


DIFFS_SHOWN = 20  # culteval verify: differences listed before '... and N more'


def _params(args) -> dict:
    """The params; for a command about one culture (``--culture``), that culture's view of them."""
    cfg = cfgmod.load_params(args.params)
    if not hasattr(args, "culture"):
        return cfg
    if args.culture is not None:
        return cfgmod.culture_cfg(cfg, args.culture)
    if len(cfg["cultures"]) > 1:
        raise cfgmod.ConfigError(f"{args.params}: several cultures ({', '.join(cfgmod.culture_keys(cfg))}): "
                                 f"choose one with --culture")
    return cfg


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """One file under two spellings (relative/absolute, ``./``, a symlink, a hard link)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_overwrite(outputs: list[tuple[str, str | Path]], inputs: list[tuple[str, str | Path]],
                     trees: list[tuple[str, Path]] = ()) -> None:
    """Stop before any work when an output would replace an input: ``outputs`` and ``inputs`` are
    (argument, path) pairs; ``trees`` are (argument, folder) whose every file the command may
    rewrite (the report's figures)."""
    for out_arg, out in outputs:
        for in_arg, inp in inputs:
            if _same_file(out, inp):
                raise ValueError(f"{out_arg} {out} is the same file as {in_arg} {inp}: writing it would "
                                 "destroy an input; choose another output path")
    for out_arg, folder in trees:
        top = os.path.realpath(folder) + os.sep
        for in_arg, inp in inputs:
            if os.path.realpath(inp).startswith(top):
                raise ValueError(f"{out_arg} {folder} holds {in_arg} {inp}, which the command rewrites: "
                                 "writing there would destroy an input; choose another output path")


# each command's input arguments, and its outputs: --out (with its provenance sidecar), or the
# files it writes under --out-dir; inputs found later (a model record's file, the raw data of a
# task) are checked where the command finds them
_INPUT_ARGS = {"translate": ("items",), "render": ("items", "translations"),
               "infer": ("model_json", "prompts"), "infer-gguf": ("model", "prompts"),
               "metrics": ("items", "raw", "prompts"), "report": ("summary", "raw")}
METRICS_FILES = ("summary.csv", "metrics.json", "provenance.json")
REPORT_FILES = ("report.html", "provenance.json")


def _declared_io(args) -> tuple[list, list, list]:
    """(outputs, inputs, trees) of a parsed command line, for :func:`refuse_overwrite`."""
    def listed(value) -> list:
        return [] if value is None else value if isinstance(value, list) else [value]

    # the paths as given, so that the message shows the spelling the user typed
    inputs = [(f"--{name.replace('_', '-')}", p) for name in _INPUT_ARGS.get(args.command, ())
              for p in listed(getattr(args, name, None))]
    outputs, trees = [], []
    if getattr(args, "out", None) and args.command != "acquire-data":
        outputs += [("--out", args.out), ("--out", sidecar_path(args.out))]
    if getattr(args, "out_dir", None):
        names = METRICS_FILES if args.command == "metrics" else REPORT_FILES
        for name in names:
            outputs += [(f"--out-dir ({name})", Path(args.out_dir) / name),
                        (f"--out-dir ({name})", sidecar_path(Path(args.out_dir) / name))]
        if args.command == "report":
            trees.append(("--out-dir", Path(args.out_dir) / "figures"))
    return outputs, inputs, trees


def _settings(cfg: dict, rule: str, **wildcards: str) -> dict:
    """The params ``rule``'s output depends on, as Snakemake's params trigger hashes them
    (culteval.dvcgraph): recorded in the artifact, so that `culteval validate` tells a file made
    under other params (stale, though valid) from a current one where Snakemake has no record."""
    import json

    from culteval import dvcgraph

    return json.loads(dvcgraph.settings(rule, cfg, {"culture": cfgmod.culture_of(cfg), **wildcards}))


def _translation_table_path(cfg: dict) -> Path | None:
    """Where the translation table lives: an absolute path, else relative to the project the run
    is in (culteval.config.project_root).

    The table ships with the project (workflow/translations/), so the translate stage
    never depends on the offline data mirror.
    """
    table = cfg["translation"]["table"]
    if table is None:
        return None
    path = cfgmod.project_file(table)
    if not path.is_file():
        where = (f"cultures.{cfgmod.culture_of(cfg)}.translation_table" if "cultures" in cfg
                 else "translation.table")
        raise FileNotFoundError(
            f"params.{where}: {path} not found (give a path relative to the project or an "
            "absolute path, or name a translator_model)"
        )
    return path



def cmd_acquire_data(args) -> None:
    from culteval.acquire import acquire_dataset

    cfg = _params(args)
    if args.dataset not in cfg["datasets"]:
        raise KeyError(f"params.datasets: no dataset named {args.dataset!r}")
    spec, mirror = cfg["datasets"][args.dataset], cfgmod.data_mirror()
    if mirror is not None:
        refuse_overwrite([("--out", Path(args.out) / f) for f in spec["files"]],
                         [("the data mirror's", mirror / args.dataset / f) for f in spec["files"]])
    acquire_dataset(args.dataset, spec, Path(args.out), mirror)


def cmd_acquire_model(args) -> None:
    from culteval.acquire import describe_model, write_model_record

    cfg = _params(args)
    if args.model not in cfg["models"]:
        raise KeyError(f"params.models: no model named {args.model!r}")
    record = describe_model(args.model, cfg["models"][args.model])
    refuse_overwrite([("--out", Path(args.out)), ("--out", sidecar_path(args.out))],
                     [(f"the file of model {args.model!r}", Path(record["path"]))])
    # the file's local path goes to the record's sidecar, not into the tracked bytes
    write_model_record(record, args.out)


def cmd_prepare(args) -> None:
    from culteval import provenance, tasks
    from culteval.inputs import check_dataset, read_bytes

    cfg = _params(args)
    task = tasks.get(args.task)
    raw_root = Path(args.raw_root)
    raw_files = [("--raw-root", p) for d in task.datasets if (raw_root / d).is_dir()
                 for p in sorted((raw_root / d).iterdir()) if p.is_file()]
    refuse_overwrite([("--out", Path(args.out)), ("--out", sidecar_path(args.out))], raw_files)
    # the raw files hold the bytes acquire recorded (PROVENANCE.json), checked now and again after
    # reading: the items' provenance records the hashes of the bytes actually read
    checked = [c for d in task.datasets for c in check_dataset(raw_root / d)]
    itemset = cfg["tasks"][args.task].get("itemset")
    itemset_path = cfgmod.project_file(itemset) if itemset else None  # as read_itemset reads it
    itemset_sha = read_bytes(itemset_path)[1] if itemset_path and itemset_path.is_file() else None
    items = task.load_items(raw_root, cfg)
    for c in checked:
        c.confirm()
    hashes = {c.path.as_posix(): c.sha256 for c in checked}
    if itemset_sha is not None:
        read_bytes(itemset_path, itemset_sha, f"item set {itemset}",  # edited while this stage read it
                   recorded_by="this stage, before it read it", fix="rerun prepare")
        hashes[itemset_path.as_posix()] = itemset_sha
    if items.empty:
        raise ValueError(f"task {args.task!r}: no items after filtering (check params.tasks.{args.task})")
    # every file of the datasets' folders but the sidecars, which say where a file came from
    # and must not reach the items' bytes (culteval.inputs.check_dataset)
    inputs = [c.path for c in checked]
    if itemset_path is not None:  # the pinned groups: their file and hash in the lineage
        inputs.append(itemset_path)
    prov = provenance.record(inputs=inputs, params=_items_params(cfg, args.task), hashes=hashes,
                             identity=provenance.identity("items", culture=cfgmod.culture_of(cfg),
                                                          task=args.task))
    prov["settings"] = _settings(cfg, "prepare", task=args.task)
    write_parquet(items, args.out, prov)


def cmd_translate(args) -> None:
    import pandas as pd

    from culteval import provenance, tasks, translate

    cfg = _params(args)
    culture = cfgmod.culture_of(cfg)
    expect = {"kind": "items", "culture": culture}
    items = pd.concat([require_rows(read_parquet(p, columns=tasks.COLUMNS, expect=expect), p, "item",
                                    _ITEMS_CHECK) for p in args.items], ignore_index=True)
    # the translations name the items they were made from, per task: render checks its own
    sources = {f"items/{read_provenance(p)['identity']['task']}": Path(p) for p in args.items}
    strings = translate.strings_to_translate(items, cfg)
    table_path = _translation_table_path(cfg)
    translator, model_record = None, None
    name = cfg["translation"]["translator_model"]
    root = cfgmod.project_root()
    if name is not None:
        from culteval.acquire import use_model
        from culteval.engine import Engine

        model_record, model_check = use_model(Path(args.models_dir) / f"{name}.json", cfg, key=name)
        engine = Engine(model_record["path"], **_engine_settings(cfg, cfg["models"][name], args.threads))
        model_check.confirm()  # the bytes loaded are the ones hashed
        translator = translate.make_model_translator(
            engine, cfg["target"]["language_name"], model_record["sha256"], root=root)
    used: dict[str, str] = {}  # each table's sha256, of the bytes parsed
    df = translate.build_translations(
        strings, cfg, table_path=table_path,
        translator=translator, root=root, used=used,
    )
    inputs = [*args.items, *translate.table_files(cfg, table_path, root)]
    refuse_overwrite([("--out", Path(args.out)), ("--out", sidecar_path(args.out))],
                     [("the translation table", Path(p)) for p in inputs[len(args.items):]])
    prov = provenance.record(inputs=inputs, model=model_record, hashes=used,
                             params={"translation": cfg["translation"], "target": cfg["target"]},
                             identity=provenance.identity("translations", culture=culture, sources=sources))
    prov["settings"] = _settings(cfg, "translate")
    write_parquet(df, args.out, prov)


def cmd_render(args) -> None:
    from culteval import prompts, provenance, tasks, translate

    cfg = _params(args)
    culture = cfgmod.culture_of(cfg)
    items = require_rows(read_parquet(args.items, columns=tasks.COLUMNS, params=_items_params(cfg, args.task),
                                      expect={"kind": "items", "culture": culture, "task": args.task}),
                         args.items, "item", _ITEMS_CHECK)
    translations, machine = None, None
    inputs = [args.items]
    sources = {"items": Path(args.items)}
    if args.strategy in cfgmod.TRANSLATED_STRATEGIES:
        if not args.translations:
            raise ValueError(f"render --strategy {args.strategy}: needs --translations")
        # translations made from other items (an older item table) would translate other strings
        table = require_rows(read_parquet(args.translations, columns=translate.COLUMNS, expect={
            "kind": "translations", "culture": culture,
            f"sources.items/{args.task}": sha256_file(args.items)}), args.translations, "translations",
            "the culture's translation table (params.cultures.<culture>.translation_table), then rerun "
            "culteval translate")
        # the tables translate read still hold the bytes it read (else these are old translations)
        tables = translate.table_files(cfg, _translation_table_path(cfg), cfgmod.project_root())
        translate.check_sources(read_provenance(args.translations), tables, args.translations)
        sources["translations"] = Path(args.translations)
        translations, machine = translate.translations_to_dict(table), translate.machine_sources(table)
        inputs.append(args.translations)
    # mode "both" where the task's params ask for sampled answers (params.tasks.<task>.sampled)
    mode = tasks.sampling(cfg, args.task)["mode"]
    # templates of the project the run is in; each recorded with the sha256 of the bytes rendered
    df = prompts.render(items, args.strategy, cfg, translations=translations, mode=mode,
                        root=cfgmod.project_root(), machine=machine)
    prov = provenance.record(inputs=inputs, templates=_templates(df),
                             params={"permutations": cfg["permutations"], "seed": cfg["seed"],
                                     "target": cfg["target"], "strategy": args.strategy},
                             identity=provenance.identity("prompts", culture=culture, task=args.task,
                                                          strategy=args.strategy, sources=sources))
    prov["settings"] = _settings(cfg, "render", task=args.task, strategy=args.strategy)
    write_parquet(df, args.out, prov)


def _engine_settings(cfg: dict, model_spec: dict, threads: int | None = None) -> dict:
    """Engine arguments; ``threads`` (Snakemake's ``threads:``, capped by --cores) overrides n_threads."""
    inf = cfg["inference"]
    return {
        "n_ctx": inf["n_ctx"], "n_threads": threads or inf["n_threads"], "n_batch": inf["n_batch"],
        "n_gpu_layers": model_spec.get("n_gpu_layers", 0),
        "chat_template": model_spec.get("chat_template", "auto"), "seed": cfg["seed"],
        "prefix_reuse": inf.get("prefix_reuse", True), "segment": inf.get("segment_tokens", 32),
    }


def _templates(prompts_df) -> dict:
    """Template path -> sha256 of every template behind a prompts table."""
    return dict(sorted(zip(prompts_df["template"], prompts_df["template_sha256"], strict=True)))


def _run_inference(args, cfg, prompts_df, model_record, spec, *, task, templates, params,
                   identity: dict, model_check, rule_settings: dict | None = None) -> None:
    """Preflight, load the model, record provenance (``params`` on top of sampling/inference/seed;
    ``identity``: what the raw output is), run the prompts. ``model_check``: the model file as
    hashed before loading (culteval.inputs.Checked), confirmed unchanged once loaded.
    ``rule_settings``: the params the infer rule depends on (recorded: what makes the output stale)."""
    from culteval import gguf, preflight, provenance, tasks
    from culteval.engine import Engine, score_prompts, show_tokens, split_info

    name, settings = model_record["name"], _engine_settings(cfg, spec, getattr(args, "threads", None))
    checked = preflight.enforce(preflight.resource_problems(
        name, gguf.facts(model_record["path"]), cfg["inference"], n_gpu_layers=settings["n_gpu_layers"],
        mem_mb=getattr(args, "mem_mb", None)), force=args.force)
    engine = Engine(model_record["path"], **settings)
    model_check.confirm()  # the bytes loaded are the ones hashed: the record's sha256 is theirs
    if args.show:
        print(show_tokens(engine, prompts_df, args.show))
        return
    if not args.out:
        raise SystemExit("--out is required unless --show is given")
    refuse_overwrite([("--out", Path(args.out)), ("--out", sidecar_path(args.out))],
                     [(f"the file of model {name!r}", Path(model_record["path"]))])
    s, declared = tasks.sampling(cfg, task), tasks.get(task)
    max_tokens = declared.max_tokens or cfg["sampling"]["max_tokens"]
    preflight.check_prompts(name, engine, prompts_df, max_tokens=max_tokens)
    prov = provenance.record(
        inputs=[args.prompts], model=model_record, templates=templates,
        engine={**engine.info(), "prompt_split": split_info(engine, prompts_df)},
        params={"sampling": cfg["sampling"], "inference": cfg["inference"], "seed": cfg["seed"],
                "task_sampling": tasks.sampling(cfg, task), **params},
        identity=identity,
    )
    prov["preflight"] = checked
    if rule_settings is not None:  # a job of the pipeline: the params its rule depends on
        prov["settings"] = rule_settings
    # a task's own sampled section (params.tasks.<task>.sampled) overrides params.sampling for it
    score_prompts(
        engine, prompts_df, args.out, parse=declared.parse_answer, trials=s["trials"],
        temperature=s["temperature"], max_tokens=max_tokens, seed=cfg["seed"],
        chunk_size=cfg["inference"]["chunk_size"], provenance=prov, progress=not args.no_progress,
    )


def cmd_infer(args) -> None:
    """Run one params.yaml model over one (task, strategy) prompts table."""
    from culteval import prompts, provenance
    from culteval.acquire import use_model

    cfg = _params(args)
    # the record of the model its path names, its file hashed now against the record's sha256
    model_record, model_check = use_model(args.model_json, cfg, key=Path(args.model_json).stem)
    spec = cfg["models"][model_record["name"]]
    culture = cfgmod.culture_of(cfg)
    # a prompts file of another task, strategy or culture (copied over, or left from an older
    # layout) is refused here: its rows would be scored and labelled as these
    prompts_df = require_rows(read_parquet(args.prompts, columns=prompts.COLUMNS,
                                           params={k: cfg[k] for k in ("permutations", "seed", "target")},
                                           expect={"kind": "prompts", "culture": culture, "task": args.task,
                                                   "strategy": args.strategy}),
                              args.prompts, "prompts", _PROMPTS_CHECK)
    # the templates the prompts were rendered from still hold the bytes render used
    prompts.check_templates(_templates(prompts_df), cfgmod.project_root(), args.prompts)
    made_from = read_provenance(args.prompts)["identity"]["sources"]
    identity = provenance.identity("raw", culture=culture, model=model_record["name"], task=args.task,
                                   strategy=args.strategy,
                                   sources={"prompts": Path(args.prompts), "items": made_from["items"]})
    _run_inference(args, cfg, prompts_df, model_record, spec, task=args.task,
                   templates=_templates(prompts_df), params={"model": {model_record["name"]: spec}},
                   identity=identity, model_check=model_check,
                   rule_settings=_settings(cfg, "infer", model=model_record["name"], task=args.task,
                                           strategy=args.strategy))


def cmd_infer_gguf(args) -> None:
    """Standalone: run inference on any prompts file with any GGUF (no params.yaml model entry needed)."""
    from culteval import provenance
    from culteval.acquire import describe_model
    from culteval.inputs import checked_input

    cfg = _params(args)
    spec = {"path": args.model, "chat_template": args.chat_template, "n_gpu_layers": args.n_gpu_layers}
    model_record = describe_model(Path(args.model).stem, spec)
    model_check = checked_input(model_record["path"], model_record["sha256"], f"model {args.model}",
                                recorded_by="its description", fix="run this command again")
    # any prompts table: integrity and columns only
    prompts_df = require_rows(read_parquet(args.prompts), args.prompts, "prompts", _PROMPTS_CHECK)
    task_names = sorted(set(prompts_df["task"]))
    if len(task_names) != 1:
        raise ValueError(f"{args.prompts}: expected prompts of one task, found {task_names}")
    made = (read_provenance(args.prompts) or {}).get("identity") or {"sources": {}}
    identity = provenance.identity(
        "raw", culture=made.get("culture"), model=model_record["name"], task=task_names[0],
        strategy=made.get("strategy"),
        sources={"prompts": Path(args.prompts), **{k: v for k, v in made["sources"].items() if k == "items"}})
    _run_inference(args, cfg, prompts_df, model_record, spec, task=task_names[0], templates=None, params={},
                   identity=identity, model_check=model_check)


def cmd_metrics(args) -> None:
    import json

    from culteval import dvcgraph
    from culteval.metrics import summary as summ
    from culteval.pipeline import by_culture, load_items, load_machine_translated, load_raw

    cfg = _params(args)
    used = _map_inputs(args.raw_root, cfg)
    items, raw = by_culture(args.items, "items", cfg), by_culture(args.raw, "raw", cfg)
    for key in cfgmod.culture_keys(cfg):  # a culture with nothing to score would vanish from the summary
        for kind, given, arg in (("item tables", items, "--items"), ("raw outputs", raw, "--raw")):
            if not given.get(key):
                raise ValueError(f"culture {key!r} (params.cultures): no {kind} among {arg}; give its files "
                                 "or disable the culture in params")
    per_culture = {key: (load_items(items.get(key, []), culture=key),
                         load_raw(raw.get(key, []), params={k: cfg[k] for k in ("sampling", "seed")},
                                  culture=key, items=items.get(key, [])))
                   for key in cfgmod.culture_keys(cfg)}
    machine = None
    if args.prompts:  # the machine_translated flag comes from the rendered prompts' string origins
        prompts = by_culture(args.prompts, "prompts", cfg)
        machine = {key: load_machine_translated(prompts.get(key, [])) for key in cfgmod.culture_keys(cfg)}
    df = summ.summarize_cultures(per_culture, cfg, raw_root=Path(args.raw_root), machine=machine)
    micro = _confirmed(used)
    if df.empty:
        raise ValueError(f"no summary rows from {len(args.raw)} raw outputs: nothing to write")
    out = Path(args.out_dir)
    # one set: renamed into place together, and its provenance names the bytes of the others, so
    # a set mixed by a kill during the renames is refused by the report (culteval.io.check_set)
    with file_set(f"{out} ({', '.join(METRICS_FILES)})") as files:
        summ.write_summary(df, out / "summary.csv")
        write_json(summ.metrics_json(df), out / "metrics.json")
        record = _aggregate_provenance([*args.items, *args.raw, *(args.prompts or []), *micro], cfg, micro)
        # what this stage wrote, so that its readers tell a hand-edited file from its own
        # (pipeline.RECORDED), and the params that made them (what makes them stale)
        record["outputs"] = {name: files.sha256(out / name) for name in ("summary.csv", "metrics.json")}
        record["settings"] = json.loads(dvcgraph.settings("metrics", cfg, {}))
        write_record({**record, "set": files.manifest(out)}, out / "provenance.json")


def _map_inputs(raw_root: str, cfg: dict, recorded: dict | None = None) -> list:
    """The files the metrics and report stages read themselves for the cultural map, checked
    before use (culteval.inputs.Checked, to confirm after): the published coordinates
    (``ivs_map``) against their PROVENANCE.json, and the IVS microdata params name (relative to
    the project) against the hash the metrics stage recorded (``recorded``: the metrics
    provenance, for the report; nothing earlier records it for the metrics stage)."""
    from culteval.inputs import check_dataset, checked_input

    folder = Path(raw_root) / "ivs_map"
    used = check_dataset(folder) if (folder / "PROVENANCE.json").is_file() else []
    micro = (cfg.get("cultural_map") or {}).get("microdata")
    if micro:
        path = cfgmod.project_file(micro)
        expected = {Path(i["path"]).name: i["sha256"] for i in (recorded or {}).get("inputs", [])}
        used.append(checked_input(
            path, expected.get(path.name) if recorded is not None else None, "cultural_map.microdata",
            recorded_by="the metrics stage (results/metrics/provenance.json)", fix="rerun metrics"))
    return used


def _confirmed(used: list) -> dict[str, str]:
    """Confirm each checked file is unchanged after use; the microdata's path -> sha256 it was
    used as (the ivs_map files are recorded through their PROVENANCE.json)."""
    for checked in used:
        checked.confirm()
    return {c.path.as_posix(): c.sha256 for c in used if c.what == "cultural_map.microdata"}


def _aggregate_provenance(inputs: list[str], cfg: dict, hashes: dict | None = None) -> dict:
    """Provenance sidecar for outputs built from many artifacts (lineage follows the inputs)."""
    from culteval import provenance
    from culteval.metrics.proscore import rule_record

    params = {k: cfg[k] for k in ("metrics", "cultural_map", "reference", "models")}
    return provenance.record(inputs=inputs, hashes=hashes,
                             params={**params, "cultures": cfgmod.described_cultures(cfg),
                                     "proscore_rule": rule_record()})


def _item_artifacts(args, cfg: dict, summary) -> list:
    """Every culture's item tables, prompts and raw outputs, read and checked as the metrics stage
    reads them, grouped per culture x task for the item pages."""
    from culteval.pipeline import by_culture, expected_identity, load_items, load_raw
    from culteval.prompts import COLUMNS as PROMPT_COLUMNS
    from culteval.report.items import task_artifacts

    items, prompts = by_culture(args.items, "items", cfg), by_culture(args.prompts, "prompts", cfg)
    raw = by_culture(args.raw, "raw", cfg)
    out = []
    for key in cfgmod.culture_keys(cfg):
        rendered = {(Path(p).parent.name, Path(p).stem): read_parquet(p, columns=PROMPT_COLUMNS,
                                                                      expect=expected_identity(p))
                    for p in sorted(prompts.get(key, []), key=str)}
        out += task_artifacts(key, load_items(items.get(key, []), culture=key), rendered,
                              load_raw(raw.get(key, []), culture=key, items=items.get(key, [])), summary,
                              float(cfg["metrics"]["low_mass"]))
    return out


def cmd_report(args) -> None:
    """One report with a section per culture; each culture's figures in ``figures/<culture>/``;
    all its files are written as one set (culteval.io.file_set)."""
    from culteval.metrics.summary import read_summary
    from culteval.pipeline import by_culture, check_recorded

    cfg = _params(args)
    summary = require_rows(read_summary(args.summary), args.summary, "summary",
                           "the raw outputs it was made from, then rerun culteval metrics")
    check_set(Path(args.summary).with_name("provenance.json"))  # a summary of one run, metrics of another
    check_recorded(args.summary, required=True)  # and one with no record of its stage is not the pipeline's
    out = Path(args.out_dir)
    raw = by_culture(args.raw, "raw", cfg)
    with file_set(f"{out} (report.html, figures/, provenance.json)") as files:
        _write_report(args, cfg, summary, raw, out, files)


def _write_report(args, cfg, summary, raw, out, files) -> None:
    from culteval.lineage import data_inputs
    from culteval.metrics.comparisons import language_table, mixed_effects_note
    from culteval.metrics.cultural_map import map_inputs
    from culteval.report.figures import render_all
    from culteval.report.html import CultureSection, build_report

    made = Path(args.summary).parent / "provenance.json"  # what the metrics stage used
    used = _map_inputs(args.raw_root, cfg, read_record(made) if made.is_file() else {})
    prov = _aggregate_provenance([args.summary, *args.raw], cfg)
    sections = []
    for key in cfgmod.culture_keys(cfg):
        view = cfgmod.culture_cfg(cfg, key)
        _, coords = map_inputs(view, Path(args.raw_root))
        rows = summary[summary["culture"] == key]
        figures = render_all(rows, coords, view, out / "figures" / key)
        write_record(_aggregate_provenance([args.summary, *raw.get(key, [])], cfg),
                     out / "figures" / key / "provenance.json")
        country, reference = cfg["cultures"][key]["country"], cfg["reference"]["country"]
        title = f"{country} ({cfg['cultures'][key]['language_name']}) vs {reference}"
        sections.append(CultureSection(key=key, title=title, summary=rows, figures=figures,
                                       countries={"target": country, "reference": reference}))
    _confirmed(used)
    inputs = data_inputs([args.summary, *args.raw])
    notes = [n for n in [mixed_effects_note(summary, cfg)] if n]
    pages = None
    if args.items:  # each task's items, prompts and answers on a page of its own, linked from its rows
        from culteval.report.items import write_items_pages

        pages = {k: f"items/{name}" for k, name in write_items_pages(_item_artifacts(args, cfg, summary),
                                                                     out / "items").items()}
    # the report shows the content part; the commit and machine go to its sidecar, as for every
    # artifact, so the report's bytes do not change with the commit that rebuilt it
    content, local = split_provenance(prov)
    report = build_report(summary, sections, content, inputs, out / "report.html", notes=notes,
                          languages=language_table(summary, cfg), item_pages=pages)
    write_json({**local, "artifact_sha256": files.sha256(report)}, sidecar_path(report))
    # written last: the set's manifest names every member's bytes (culteval.io.check_set)
    write_record({**prov, "set": files.manifest(out)}, out / "provenance.json")


def cmd_lineage(args) -> None:
    from culteval.lineage import lineage

    print(lineage(Path(args.target), root=Path.cwd()))


def cmd_verify(args) -> None:
    """Exit status 1 and one line per difference when the rerun is outside the tolerances.

    With the published run's record (``make publish`` writes it) only like is compared with like:
    rows of added models are listed as new, pooled rows over another set of models as recomputed,
    rows of removed or re-configured models as such (culteval.verify.check)."""
    from culteval import runrecord
    from culteval.pipeline import check_recorded
    from culteval.verify import COMPARED, TOLERANCES, check, compare, read_checked_csv, report

    tolerances = dict(TOLERANCES)
    for spec in args.tol or []:
        col, _, value = spec.partition("=")
        if col not in tolerances or not value:
            raise ValueError(f"--tol {spec!r}: expected COLUMN=ABS, COLUMN in {sorted(tolerances)}")
        try:
            tolerances[col] = float(value)
        except ValueError:
            tolerances[col] = math.nan
        if not math.isfinite(tolerances[col]) or tolerances[col] < 0:
            raise ValueError(f"--tol {spec!r}: {value!r} is not a finite number >= 0")
    tables = []
    for path in (args.summary, args.published):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such summary")
        tables.append(require_rows(read_checked_csv(path, tolerances), path, "summary",
                                   "that it is the summary of a finished run (culteval metrics)"))
        check_set(Path(path).with_name("provenance.json"))
    # a run's summary is checked against its metrics record; a summary outside a run (no record
    # beside it, e.g. the published one) is compared as it is
    check_recorded(args.summary)
    rerun, published = tables
    lines, strict_failed = [], False
    record = Path(args.record) if args.record else Path(args.published).parent / "params.json"
    if record.is_file():
        current = runrecord.build(_params(args), args.models_dir)
        outcome = check(rerun, published, current, runrecord.read(record), tolerances, args.items)
        diffs, stats, lines = outcome.diffs, outcome.stats, report(outcome)
        if args.strict and set(outcome.rows) - {COMPARED}:
            # the project's own check (make test): its params are the published run's, or the
            # published numbers are stale
            lines.append("--strict: this run's models or settings are not the published run's: "
                         "republish (make publish) or restore params.yaml")
            strict_failed = True
        what = (f"{COMPARED} (the published models under the published settings, baselines, reference rows"
                + (", rows pooled over the same models)" if outcome.pooled_same else ")"))
    else:
        stats = {}
        diffs = compare(rerun, published, tolerances, args.items, stats)
        what = "compared (every row)"
        lines.append(f"note: no record of the published run's params ({record}; `make publish` "
                     "writes it): every row compared, added models' and pooled rows included")
    rule = ", ".join(f"{c} {'exact' if t is None else f'{t:g} + {args.items}/n_items'}"
                     for c, t in tolerances.items())
    worst = ", ".join(f"{c} {v:.3g}" for c, v in sorted(stats.get("max_abs_diff", {}).items()))
    print(f"{args.summary} vs {args.published}")
    print(f"{what}: {stats.get('rows', 0)} rows in both, "
          f"{stats.get('identical', 0)} identical; largest differences: {worst or 'none'}")
    print(f"  tolerances: {rule}")
    if lines:
        print("\n".join(lines))
    if diffs:
        shown = diffs if args.all else diffs[:DIFFS_SHOWN]
        print("\n".join(shown))
        if len(shown) < len(diffs):
            print(f"... and {len(diffs) - len(shown)} more (--all lists every one)")
        raise ValueError(f"{len(diffs)} differences beyond tolerance")
    if strict_failed:
        raise ValueError("agrees within tolerance on what is shared, but --strict asks for the published "
                         "run's models and settings")
    print("agrees within tolerance")


def cmd_run_record(args) -> None:
    """Write the run record of the params in force (``make publish``: results/published/params.json)."""
    from culteval import runrecord

    runrecord.write(runrecord.build(_params(args), args.models_dir), args.out)


def cmd_validate(args) -> None:
    """Check a stage's outputs before DVC records them: a damaged or mismatched artifact is moved
    aside and named; with --repair that is all (the stage's run recomputes it), else it fails."""
    from culteval.pipeline import validate

    n, problems = validate(args.paths, _params(args))
    for problem in problems:
        print(f"culteval validate: {problem}", file=sys.stderr)
    if problems and not args.repair:
        raise ValueError(f"{len(problems)} of {n} artifacts under {' '.join(args.paths)} are damaged, stale "
                         "or not what their path names; they were moved aside: rerun to recompute them")
    print(f"culteval validate: {n} artifacts checked under {' '.join(args.paths)}, "
          f"{len(problems)} moved aside" + (" to be recomputed" if problems else ""))


def cmd_unlock(args) -> None:
    """Remove the lock an interrupted Snakemake run left in this folder (every DVC stage runs this
    first, so that `dvc repro` after Ctrl-C needs no `snakemake --unlock`); a live run keeps it."""
    from culteval.pipeline import release_stale_lock

    removed, pid = release_stale_lock(Path.cwd())
    if pid is not None:
        print(f"culteval unlock: Snakemake (pid {pid}) is running in {Path.cwd()}: its lock is kept",
              file=sys.stderr)
    elif removed:
        print(f"culteval unlock: removed the lock an interrupted Snakemake run left "
              f"({', '.join(p.name for p in removed)} in .snakemake/locks)", file=sys.stderr)


def cmd_check(args) -> None:
    """Validate params; preflight each model whose file is known (a path, or an acquired record)."""
    from culteval import gguf, preflight
    from culteval.acquire import model_path

    cfg = _params(args)
    problems = []
    for name, spec in sorted(cfg["models"].items()):
        record = Path(args.models_dir) / f"{name}.json"
        # an acquired record's file from its sidecar; check never downloads or assembles a model
        path = spec.get("path") or (model_path(record, cfg, resolve=False) if record.is_file() else None)
        if path and Path(path).exists() and not Path(path).is_file():  # a folder, /dev/zero: say so
            raise ValueError(f"model {name!r}: {path} {not_a_file(path)}")
        if path and Path(path).is_file():
            problems += preflight.resource_problems(name, gguf.facts(path), cfg["inference"],
                                                    n_gpu_layers=spec.get("n_gpu_layers", 0))
    preflight.enforce(problems, force=args.force)
    print(f"{args.params}: valid ({len(cfg['models'])} models, tasks {cfgmod.enabled_tasks(cfg)}, "
          f"strategies {cfg['strategies']})")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="culteval", description=__doc__)
    p.add_argument("--params", default=cfgmod.params_spec(),
                   help="params file(s); 'a.yaml:b.yaml' deep-merges b over a "
                        "(default: $CULTEVAL_PARAMS or params.yaml)")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, func, help_):
        sp = sub.add_parser(name, help=help_)
        sp.set_defaults(func=func)
        return sp

    sp = add("check", cmd_check, "validate params and preflight the models already acquired")
    sp.add_argument("--models-dir", default="data/models")
    sp.add_argument("--force", action="store_true", help="report preflight limits as warnings only")
    sp = add("acquire-data", cmd_acquire_data, "fetch one dataset (URL or mirror) with checksums")
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--out", required=True)
    sp = add("acquire-model", cmd_acquire_model, "resolve, verify and describe one model")
    sp.add_argument("--model", required=True)
    sp.add_argument("--out", required=True)
    sp = add("prepare", cmd_prepare, "build a task's canonical item table")
    sp.add_argument("--culture", help="the culture (params.cultures key); needed when params name several")
    sp.add_argument("--task", required=True)
    sp.add_argument("--raw-root", default="data/raw")
    sp.add_argument("--out", required=True)
    sp = add("translate", cmd_translate, "target-language text for every string the prompts need")
    sp.add_argument("--culture", help="the culture (params.cultures key); needed when params name several")
    sp.add_argument("--items", nargs="+", required=True)
    sp.add_argument("--models-dir", default="data/models")
    sp.add_argument("--threads", type=int, help="CPU threads for a translator model (default: params)")
    sp.add_argument("--out", required=True)
    sp = add("render", cmd_render, "render a task's prompts under one strategy")
    sp.add_argument("--culture", help="the culture (params.cultures key); needed when params name several")
    sp.add_argument("--task", required=True)
    sp.add_argument("--strategy", required=True)
    sp.add_argument("--items", required=True)
    sp.add_argument("--translations")
    sp.add_argument("--out", required=True)
    sp = add("infer", cmd_infer, "run a params.yaml model over a prompts table")
    sp.add_argument("--culture", help="the culture (params.cultures key); needed when params name several")
    sp.add_argument("--model-json", required=True)
    sp.add_argument("--task", required=True)
    sp.add_argument("--strategy", required=True, help="the prompts' strategy (checked against the file)")
    sp.add_argument("--prompts", required=True)
    sp.add_argument("--out", help="raw outputs parquet (not needed with --show)")
    sp.add_argument("--threads", type=int, help="CPU threads (default: params inference.n_threads)")
    sp.add_argument("--no-progress", action="store_true")
    sp.add_argument("--show", metavar="PROMPT_ID",
                    help="print the token sequence the model sees for this prompt, then stop")
    sp.add_argument("--mem-mb", type=int, help="the job's memory limit (Snakemake resources.mem_mb)")
    sp.add_argument("--force", action="store_true", help="run although preflight limits are exceeded")
    sp = add("infer-gguf", cmd_infer_gguf, "run any GGUF model over any prompts file")
    sp.add_argument("--model", required=True, help="path to a GGUF file")
    sp.add_argument("--prompts", required=True)
    sp.add_argument("--out", help="raw outputs parquet (not needed with --show)")
    sp.add_argument("--chat-template", choices=["auto", "none"], default="auto")
    sp.add_argument("--n-gpu-layers", type=int, default=0)
    sp.add_argument("--no-progress", action="store_true")
    sp.add_argument("--show", metavar="PROMPT_ID",
                    help="print the token sequence the model sees for this prompt, then stop")
    sp.add_argument("--force", action="store_true", help="run although preflight limits are exceeded")
    sp = add("metrics", cmd_metrics, "aggregate raw outputs into summary.csv and metrics.json")
    sp.add_argument("--items", nargs="+", required=True)
    sp.add_argument("--raw", nargs="+", required=True)
    sp.add_argument("--prompts", nargs="*", default=None,
                    help="the rendered prompts (their string origins give the machine_translated flag)")
    sp.add_argument("--raw-root", default="data/raw")
    sp.add_argument("--out-dir", required=True)
    sp = add("report", cmd_report, "figures and the HTML report")
    sp.add_argument("--summary", required=True)
    sp.add_argument("--raw", nargs="+", required=True)
    sp.add_argument("--raw-root", default="data/raw")
    sp.add_argument("--items", nargs="*", default=[], help="item tables: write an item page per task")
    sp.add_argument("--prompts", nargs="*", default=[], help="the prompts the item pages show")
    sp.add_argument("--out-dir", required=True)
    sp = add("verify", cmd_verify, "compare a rerun's summary with the published one, within tolerances")
    sp.add_argument("--summary", default="results/metrics/summary.csv")
    sp.add_argument("--published", default="results/published/summary.csv")
    sp.add_argument("--tol", action="append", metavar="COLUMN=ABS", help="override a column's tolerance")
    sp.add_argument("--items", type=int, default=2, metavar="K",
                    help="items per row whose answer may flip between builds: "
                         "tolerance + K/n_items (default 2)")
    sp.add_argument("--record", default=None,
                    help="the published run's record of models and settings (default: params.json beside "
                         "--published); without it every row is compared")
    sp.add_argument("--models-dir", default="data/models")
    sp.add_argument("--strict", action="store_true",
                    help="fail unless the run has the published run's models and settings (make test)")
    sp.add_argument("--all", action="store_true",
                    help=f"list every difference (default: the first {DIFFS_SHOWN})")
    sp = add("run-record", cmd_run_record, "write the record of the run's models and settings (make publish)")
    sp.add_argument("--out", required=True)
    sp.add_argument("--models-dir", default="data/models")
    sp = add("validate", cmd_validate, "check artifacts (integrity, identity) before DVC records them")
    sp.add_argument("paths", nargs="+", help="artifact files or folders (e.g. data/prompts)")
    sp.add_argument("--repair", action="store_true",
                    help="exit 0 after moving bad artifacts aside (a stage's run then recomputes them)")
    add("unlock", cmd_unlock, "remove the lock an interrupted Snakemake run left (a live run's is kept)")
    sp = add("lineage", cmd_lineage, "print the chain of inputs behind a result file")
    sp.add_argument("target")
    return p


def describe(exc: BaseException) -> str:
    """What went wrong, for the one error line: culteval's own errors are sentences that name the
    file, key or model; any other error (the OS's, a library's) is named by its type as well,
    since its message alone may be a bare path (pyarrow's FileNotFoundError) or a key."""
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    own = (cfgmod.ConfigError, DamagedFileError, WriteError, PreflightError, ValueError, KeyError)
    # an error class culteval defines (ModelError, ChecksumError, ...) carries such a sentence too
    if (isinstance(exc, own) or type(exc).__module__.startswith("culteval.")) and message:
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        refuse_overwrite(*_declared_io(args))
        args.func(args)
    except (cfgmod.ConfigError, OSError, KeyError, ValueError, RuntimeError) as exc:
        print(f"culteval {args.command}: error: {describe(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"culteval {args.command}: interrupted; finished chunks are kept, rerun to resume",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
