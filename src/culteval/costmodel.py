"""What a run costs before it runs: prompt tokens and sampled answers per item group, seconds per job.

An inference job (culture, model, task, strategy) costs, on one CPU thread,

    seconds = load + per_token * prompt tokens + per_answer * sampled answers

with ``load``, ``per_token`` and ``per_answer`` fitted per model (non-negative least squares) on
the job table of a finished run (``benchmarks/run_time.py --csv``). Prompt tokens count every
prompt's tokens as the engine encodes them (the model's own tokenizer and chat template); the
fitted rate absorbs what prefix reuse saves on average. The *group costs* table holds, for every
item group (question, story, map item) of a set, the prompts, tokens and sampled answers it
adds to each job, so the cost of any subset of groups is a sum. A run's inference wall time on
``cores`` one-thread slots is the makespan of its jobs started longest first, which is how
the workflow orders them (``priority`` of the infer rule, :func:`job_priority`).
"""

from __future__ import annotations

import copy
import functools
import heapq
import json
from pathlib import Path

import numpy as np
import pandas as pd

from culteval import tasks
from culteval.config import ROOT, TRANSLATED_STRATEGIES, culture_cfg, enabled_tasks

COST_COLUMNS = ["model", "task", "strategy", "stratum", "group_id", "prompts", "prompt_tokens", "sampled"]
RATE_COLUMNS = ["model", "load_s", "per_token_s", "per_answer_s"]
# calibration.csv's column the rates are fitted on: wall seconds of one-thread jobs run two at a
# time on 2 cores, as the default run runs them (their CPU seconds are ~25% fewer: the two jobs
# slow each other down through the shared memory bandwidth and caches)
CALIBRATION_SECONDS = "wall_s"


def strategies_of(task: str, cfg: dict) -> list[str]:
    """The strategies the workflow runs ``task`` under (a task may declare fewer than params)."""
    declared = tasks.get(task).strategies
    return [s for s in cfg["strategies"] if declared is None or s in declared]


def stratum(row, cfg: dict) -> str:
    """The stratum a sample of ``row``'s group is drawn within (docs: workflow/itemsets/README.md).

    GlobalOpinionQA: which of target and reference the question has a national distribution for
    (``both`` carries CAD and nCAD); CulturalBench: subset and country; NormAd, BLEnD: country
    (a NormAd story carries all its contexts); INDICA: subset; the map: one stratum.
    """
    if row.task == "global_opinions":
        dist = json.loads(row.distributions)
        have = [role for role in ("target", "reference") if cfg[role]["country"] in dist]
        return "both" if len(have) == 2 else (have[0] if have else "neither")
    if row.task == "culturalbench":
        return f"{row.subset}/{row.country}"
    if row.task in ("normad", "blend"):
        return str(row.country)
    if row.task == "indica":  # region-agnostic and region-anchored questions measure different things
        return str(row.subset)
    return "all"


def full_items(cfg: dict, raw_root: Path) -> dict[str, pd.DataFrame]:
    """Every enabled task's items with no item set and no limit (the set a sample is drawn from)."""
    cfg = copy.deepcopy(cfg)
    out = {}
    for name in enabled_tasks(cfg):
        cfg["tasks"][name].update(itemset=None, limit=None)
        out[name] = tasks.get(name).load_items(raw_root, cfg)
    return out


def _translations(items: dict[str, pd.DataFrame], cfg: dict) -> dict[str, str]:
    """The strings the translate stage would give the translated strategies (table + glossary)."""
    from culteval import translate

    table = cfg["translation"]["table"]
    if table is None:
        raise ValueError("the cost model needs the culture's translation_table "
                         "(no translator model runs here)")
    path = Path(table) if Path(table).is_absolute() else ROOT / table
    strings = translate.strings_to_translate(pd.concat(list(items.values()), ignore_index=True), cfg)
    df = translate.build_translations(strings, cfg, table_path=path, translator=None)
    return translate.translations_to_dict(df)


def group_costs(cfg: dict, items: dict[str, pd.DataFrame], model_paths: dict[str, Path]) -> pd.DataFrame:
    """Per (model, task, strategy, group): prompts, prompt tokens and sampled answers (COST_COLUMNS).

    Prompts are rendered as ``culteval render`` renders them and encoded by each model as the
    engine encodes them; ``cfg`` is one culture's view of params (:func:`culture_cfg`).
    """
    from culteval import prompts as prompts_mod
    from culteval.engine import Engine
    from culteval.engine.scoring import _prompt_tokens

    translations = _translations(items, cfg)
    rendered = {}
    for task, df in items.items():
        plan = tasks.sampling(cfg, task)
        strata = {r.group_id: stratum(r, cfg) for r in df.itertuples(index=False)}
        for strategy in strategies_of(task, cfg):
            p = prompts_mod.render(df, strategy, cfg, mode=plan["mode"], root=ROOT,
                                   translations=translations if strategy in TRANSLATED_STRATEGIES else None)
            trials = plan["trials"] if plan["mode"] in ("both", "generate") else 0
            rendered[task, strategy] = (p, strata, trials)
    rows = []
    for model, path in sorted(model_paths.items()):
        spec = cfg["models"][model]
        engine = Engine(path, n_ctx=cfg["inference"]["n_ctx"], n_threads=1,
                        chat_template=spec.get("chat_template", "auto"))
        try:
            for (task, strategy), (p, strata, trials) in sorted(rendered.items()):
                n_tokens = [len(_prompt_tokens(engine, r)) for r in p.itertuples(index=False)]
                per = pd.DataFrame({"group_id": p["group_id"], "tokens": n_tokens}).groupby("group_id")
                agg = per["tokens"].agg(["size", "sum"])
                for group_id, (n, tokens) in agg.iterrows():
                    rows.append({"model": model, "task": task, "strategy": strategy,
                                 "stratum": strata[group_id], "group_id": group_id, "prompts": int(n),
                                 "prompt_tokens": int(tokens), "sampled": int(n) * trials})
        finally:
            engine.close()
    return pd.DataFrame(rows, columns=COST_COLUMNS).sort_values(COST_COLUMNS[:5]).reset_index(drop=True)


def fit_rates(jobs: pd.DataFrame, seconds: str = "wall_s", load_s: float = 3.0) -> pd.DataFrame:
    """Per model: per-token and per-answer seconds, fitted by non-negative least squares.

    ``jobs``: one row per job or per sum of jobs (columns model, jobs, prompt_tokens, sampled
    and ``seconds``). ``load_s`` (interpreter start, imports, model load) is fixed per job, not
    fitted: a few rows per model cannot tell it from the rates.
    """
    from scipy.optimize import nnls

    rows = []
    for model, g in jobs.groupby("model", sort=True):
        n_jobs = g["jobs"] if "jobs" in g else pd.Series(1, index=g.index)
        a = np.column_stack([g["prompt_tokens"], g["sampled"]]).astype(float)
        coef, _ = nnls(a, (g[seconds] - load_s * n_jobs).to_numpy(float))
        rows.append(dict(zip(RATE_COLUMNS, [model, load_s, *map(float, coef)], strict=True)))
    return pd.DataFrame(rows, columns=RATE_COLUMNS)


def job_seconds(costs: pd.DataFrame, rates: pd.DataFrame, groups: dict[str, list[str]] | None = None
                ) -> pd.DataFrame:
    """Predicted seconds per (model, task, strategy) job over ``groups`` (task -> ids; None: all)."""
    if groups is not None:
        keep = pd.Series(False, index=costs.index)
        for task, ids in groups.items():
            keep |= (costs["task"] == task) & costs["group_id"].isin(set(ids))
        costs = costs[keep]
    jobs = (costs.groupby(["model", "task", "strategy"], sort=True)[["prompts", "prompt_tokens", "sampled"]]
            .sum().reset_index())
    missing = sorted(set(jobs["model"]) - set(rates["model"]))
    if missing:
        raise KeyError(f"no measured rates for models {missing}: calibrate on a run that has them")
    jobs = jobs.merge(rates, on="model", how="left")
    jobs["seconds"] = (jobs["load_s"] + jobs["per_token_s"] * jobs["prompt_tokens"]
                       + jobs["per_answer_s"] * jobs["sampled"])
    return jobs.drop(columns=RATE_COLUMNS[1:])


def makespan(seconds, cores: int) -> float:
    """Wall time of jobs started longest first on ``cores`` one-thread slots."""
    slots = [0.0] * max(1, int(cores))
    for s in sorted(seconds, reverse=True):
        heapq.heappush(slots, heapq.heappop(slots) + float(s))
    return max(slots)


def sample_groups(costs: pd.DataFrame, fraction: float, seed: int, *, whole: tuple[str, ...] = (),
                  keep: dict[str, tuple[str, ...]] | None = None, minimum: int = 2) -> dict[str, list[str]]:
    """A seeded, stratified sample: ceil(fraction x size) groups of every (task, stratum), at least
    ``minimum``; every group of the tasks in ``whole`` and of the strata in ``keep`` (task ->
    strata). Samples are nested: a larger fraction keeps every group a smaller one drew."""
    keep = keep or {}
    cols = ["task", "stratum", "group_id"]
    strata = costs[cols].drop_duplicates().sort_values(cols)
    out: dict[str, list[str]] = {}
    for (task, name), g in strata.groupby(["task", "stratum"], sort=True):
        ids = list(g["group_id"])
        if task in whole or name in keep.get(task, ()):
            chosen = ids
        else:
            # one permutation per stratum, seeded by the stratum's name: nested in the fraction
            rng = np.random.default_rng([seed, *json.dumps([task, name]).encode()])
            order = [ids[i] for i in rng.permutation(len(ids))]
            chosen = order[: min(len(ids), max(minimum, int(np.ceil(fraction * len(ids) - 1e-9))))]
        out.setdefault(task, []).extend(chosen)
    return {t: sorted(ids) for t, ids in out.items()}


def plan(costs: pd.DataFrame, rates: pd.DataFrame, *, budget_s: float, cores: int, seed: int,
         whole: tuple[str, ...] = (), keep: dict[str, tuple[str, ...]] | None = None,
         step: float = 0.01) -> tuple[float, dict[str, list[str]], pd.DataFrame]:
    """The largest sampling fraction (a multiple of ``step``) whose inference makespan fits
    ``budget_s``: (fraction, groups per task, predicted jobs)."""
    best = None
    for k in range(1, int(round(1 / step)) + 1):
        fraction = k * step
        groups = sample_groups(costs, fraction, seed, whole=whole, keep=keep)
        jobs = job_seconds(costs, rates, groups)
        if makespan(jobs["seconds"], cores) > budget_s:
            break
        best = (fraction, groups, jobs)
    if best is None:
        raise ValueError(f"even the smallest sample (fraction {step}) exceeds the budget of {budget_s:.0f} s")
    return best


# --- the workflow's job order ---------------------------------------------------------------------

ITEMSETS = ROOT / "workflow" / "itemsets"


@functools.cache
def _tables(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The committed group costs and the rates fitted on the committed calibration, or None."""
    costs, calibration = folder / "costs.csv", folder / "calibration.csv"
    if not (costs.is_file() and calibration.is_file()):
        return None
    return (pd.read_csv(costs, dtype={"group_id": str}),
            fit_rates(pd.read_csv(calibration, comment="#"), seconds=CALIBRATION_SECONDS))


def predicted_seconds(cfg: dict, culture: str, model: str, task: str, strategy: str,
                      folder: Path = ITEMSETS, *, unmeasured: str = "mean") -> float | None:
    """Predicted seconds of an infer job (one thread, the calibration machine's CPU).

    From the committed group costs over the job's pinned groups (all groups of the full set
    without an item set). A model the tables lack gets the mean of the models they have
    (``unmeasured="mean"``) or None (``unmeasured="none"``); None when nothing is known.
    """
    tables = _tables(folder)
    if tables is None:
        return None
    costs, rates = tables
    rows = costs[(costs["task"] == task) & (costs["strategy"] == strategy)]
    spec = culture_cfg(cfg, culture)["tasks"][task].get("itemset")
    if spec:
        rows = rows[rows["group_id"].isin(set(tasks.read_itemset(spec)))]
    if rows.empty:
        return None
    seconds = job_seconds(rows, rates).set_index("model")["seconds"]
    if model in seconds.index:
        return float(seconds[model])
    return float(seconds.mean()) if unmeasured == "mean" else None


def job_priority(cfg: dict, culture: str, model: str, task: str, strategy: str,
                 folder: Path = ITEMSETS) -> int:
    """Snakemake priority of an infer job: its predicted seconds, so the longest jobs start first
    (:func:`predicted_seconds`; 0 when nothing is known). Only the order of jobs depends on it,
    never a result."""
    seconds = predicted_seconds(cfg, culture, model, task, strategy, folder)
    return 0 if seconds is None else int(round(seconds))
