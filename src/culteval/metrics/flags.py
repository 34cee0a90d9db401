"""What each summary row rests on: the ``flags`` column of summary.csv.

Flags (sorted, joined by ``;``, empty when none):

* ``subset``: the task's data are a subset: a ``tasks.<task>.limit`` is set, its item set
  is a sample (a ``# sample:`` line, as the default run's sets have), or an acquired file's
  ``PROVENANCE.json`` under ``raw_root`` carries a subset note.
* ``ncad-assumption``: nCAD's normalisation is the project's assumption.
* ``y002-independence``: the value uses Y002 derived from two choice distributions
  treated as independent (``expected_Y002``/``sampled_Y002`` and every placement).
* ``machine_translated``: the prompts show at least one string whose translation is
  machine-made: from a translator model, or a translation-table entry not marked
  ``"reviewed": true`` (``culteval.translate``). Read from the rendered prompts'
  ``machine_translated`` column (the strings' origins), per (task, strategy); without
  them (a summary built from raw outputs alone) every translated strategy is assumed so.
* ``no-ci``: a comparison (kind ``comparison``) without a 95% interval: the exact test behind it
  cannot reach p < 0.05 with its items (sign-flip: fewer than 6) or models (group-label
  permutation: e.g. 3 + 3), so no interval at that level exists (culteval.stats).
* ``non-national``: a GlobalOpinionQA number that rests on at least one target
  distribution from a non-national sample (admitted by ``metrics.non_national``).
* ``boundary``: a row of a mixed-effects fit whose REML random-intercept variance is 0
  (``metrics.comparisons.fit_reml``); set by the fit itself (the row's own flags, kept here).

A row about several strategies (strategy ``all``: the mixed model and its per-language
correlations) or several cultures (culture ``all``) rests on every evaluated model's rows of
its task: it carries, beside its own, the union of their data flags (``POOLED_FLAGS``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from culteval.config import TRANSLATED_STRATEGIES
from culteval.metrics.comparisons import is_model

TARGET_METRICS = ("sim_target", "sim_target_shared", "cad", "ncad", "alignment", "alignment_expected")
#: the flags about the data a row rests on, which rows pooling several runs inherit
POOLED_FLAGS = ("machine_translated", "non-national", "subset")
ALL = "all"


def subset_tasks(tasks, cfg: dict, raw_root: str | Path | None) -> set[str]:
    """The tasks whose items are a subset (a limit, or a subset note in an acquired file's provenance)."""
    from culteval import tasks as registry

    out = set()
    for task in tasks:
        spec = (cfg.get("tasks") or {}).get(task) or {}
        if spec.get("limit") is not None:
            out.add(task)
        if spec.get("itemset") and registry.itemset_sample_note(spec["itemset"]):
            out.add(task)
        for ds in registry.get(task).datasets if task in registry.registry() else ():
            prov = Path(raw_root) / ds / "PROVENANCE.json" if raw_root is not None else None
            if prov is not None and prov.is_file():
                files = json.loads(prov.read_text(encoding="utf-8")).get("files", {})
                if any((f or {}).get("subset") for f in files.values()):
                    out.add(task)
    return out


def _metric_flags(task: str, metric: str) -> list[str]:
    base = metric.split(":")[0]  # "<metric>:p_sign" rests on what <metric> rests on
    out = []
    if base == "ncad":
        out.append("ncad-assumption")
    no_y002 = ("map_dist_target_reference", "map_invalid_rate_sampled")  # neither rests on Y002
    placement = base.startswith("map_") and base not in no_y002
    if task == "cultural_map" and (base.endswith("Y002") or placement):
        out.append("y002-independence")
    return out


def _machine(task: str, strategy: str, machine: dict[tuple[str, str], bool] | None) -> bool:
    if machine is None:  # no prompts read: assume the worst for every translated strategy
        return strategy in TRANSLATED_STRATEGIES
    return bool(machine.get((task, strategy), False))


def pooled_flags(df: pd.DataFrame, flags: pd.Series, task: str, culture: str = ALL) -> set[str]:
    """The data flags (``POOLED_FLAGS``) of the evaluated models' rows of ``task`` about one
    strategy and culture (of ``culture``; ``all``: of every culture): what a row pooling them
    rests on."""
    models = df["kind"].eq("model") if "kind" in df.columns else df["model"].map(is_model)
    inputs = (df["task"] == task) & (df["strategy"] != ALL) & models
    if "culture" in df.columns:
        cultures = df["culture"].astype(str)
        inputs &= (cultures != ALL) if culture == ALL else (cultures == culture)
    out = set()
    for f in flags[inputs]:
        out.update(x for x in f.split(";") if x in POOLED_FLAGS)
    return out


def flag_column(df: pd.DataFrame, cfg: dict, raw_root: str | Path | None = None,
                machine: dict[tuple[str, str], bool] | None = None) -> pd.Series:
    """One flags string per row of a long summary table (see the module doc).

    ``machine``: per (task, strategy), whether its rendered prompts show a machine-made
    translation (``culteval.pipeline.load_machine_translated``); None: not known. Flags a row
    already carries in ``df["flags"]`` (a fit's ``boundary``) are kept.
    """
    subset = subset_tasks(sorted(set(df["task"])), cfg, raw_root)
    go = df[(df["task"] == "global_opinions") & (df["metric"] == "target_non_national") & (df["value"] > 0)]
    non_national = set(zip(go["model"], go["strategy"], strict=True))
    comparisons_nn = bool(len(go))  # group/delta rows pool runs, one of which rests on such a sample
    flags = []
    no_ci = pd.Series(False, index=df.index)
    if {"kind", "ci_low", "value"} <= set(df.columns):  # tables without kinds (or CIs) carry no such flag
        no_ci = (df["kind"].eq("comparison") & ~df["metric"].str.contains(":", regex=False)
                 & df["ci_low"].isna() & df["value"].notna())
    # rows pooling several runs (group means and comparisons), by kind where rows carry one
    pooling = (df["kind"].isin(("group", "comparison")) if "kind" in df.columns
               else df["model"].str.startswith(("group:", "delta:")))
    # a row's own flags, set where it was made (the mixed model's boundary)
    own = [f if isinstance(f, str) else "" for f in df["flags"]] if "flags" in df.columns else [""] * len(df)
    cols = zip(df["model"], df["task"], df["strategy"], df["metric"], no_ci, pooling, own, strict=True)
    for model, task, strategy, metric, without_ci, pools, mine in cols:
        f = (_metric_flags(task, metric) + (["no-ci"] if without_ci else [])
             + [x for x in mine.split(";") if x])
        if _machine(task, strategy, machine):
            f.append("machine_translated")
        if task in subset:
            f.append("subset")
        pooled = comparisons_nn and pools
        rests = (model, strategy) in non_national or pooled
        if task == "global_opinions" and rests and metric.split(":")[0] in TARGET_METRICS:
            f.append("non-national")
        flags.append(";".join(sorted(set(f))))
    out = pd.Series(flags, index=df.index, dtype=object)
    return with_pooled(df, out)


def with_pooled(df: pd.DataFrame, flags: pd.Series) -> pd.Series:
    """``flags`` with every strategy-``all`` or culture-``all`` row given the union of its
    inputs' data flags (:func:`pooled_flags`: its culture's rows, or every culture's)."""
    # a one-culture table (no culture column yet) pools within itself
    cultures = df["culture"].astype(str) if "culture" in df.columns else pd.Series("", index=df.index)
    pooling = (df["strategy"].astype(str) == ALL) | (cultures == ALL)
    flags = flags.copy()
    for culture, task in sorted(set(zip(cultures[pooling], df.loc[pooling, "task"], strict=True))):
        extra = pooled_flags(df, flags, task, culture)
        for i in df.index[pooling & (df["task"] == task) & (cultures == culture)]:
            flags[i] = ";".join(sorted(set(filter(None, flags[i].split(";"))) | extra))
    return flags
