"""Like-for-like comparisons with uncertainty: fine-tuned vs base, group vs group, and each model
vs the reference country's respondents.

Per-item scores of the headline metrics (each task's ``Task.item_scores``, argmax and sampled
accuracy alike) are compared on the items both sides share (``culteval.stats.compare``): a CI
inverted from the sign-flip test over items (``stats.sign_flip_ci``; none where the items are too
few for one) and, as extra rows, that test's p and the sign test's p; rows of kind ``comparison``
(metrics/kinds.py). A paired delta row replaces the bare ``delta:`` difference of the same
metric; group comparisons are new rows ``group:<a>-vs-<b>`` (with >= 2 models in each group the
models are the units: extra row ``<metric>:p_models``, the label permutation whose inversion is
the CI: ``stats.compare_groups``); ``delta:<model>-vs-baseline:<reference>`` rows compare a model
with the reference respondents.
"""

from __future__ import annotations

from culteval import stats
from culteval.metrics.kinds import COMPARISON

KEYS = ("model", "task", "strategy", "metric")


#: the metrics on which each model meets the reference country's respondents ("is a reference
#: respondent a closer proxy for the target's opinions?"): Sim to the target, per question
RESPONDENT_METRICS = ("sim_target",)


def _rows(name: str, task: str, strategy: str, metric: str, res: stats.Paired,
          p_models: float | None = None) -> list[dict]:
    base = {"model": name, "kind": COMPARISON, "task": task, "strategy": strategy, "n_items": res.n_items}
    nan = float("nan")
    rows = [{**base, "metric": metric, "value": res.diff, "ci_low": res.ci_low, "ci_high": res.ci_high},
            {**base, "metric": f"{metric}:p_permutation", "value": res.p_permutation, "ci_low": nan,
             "ci_high": nan},
            {**base, "metric": f"{metric}:p_sign", "value": res.p_sign, "ci_low": nan, "ci_high": nan}]
    if p_models is not None:
        rows.append({**base, "metric": f"{metric}:p_models", "value": p_models, "ci_low": nan,
                     "ci_high": nan})
    return rows


def respondent_name(model: str, cfg: dict) -> str:
    """The summary's model column of a model-vs-reference-respondent comparison."""
    return f"delta:{model}-vs-{reference_baseline(cfg)}"


def reference_baseline(cfg: dict) -> str:
    """The reference country's respondents as a baseline model (``baseline:United States``)."""
    return f"baseline:{cfg['reference']['country']}"


Scores = dict[str, dict[str, float]]  # metric -> unit -> value


def respondent_rows(scores: dict[tuple[str, str, str], Scores],
                    baseline_scores: dict[tuple[str, str], Scores], cfg: dict) -> list[dict]:
    """``delta:<model>-vs-baseline:<reference>``: each model (every strategy) minus the reference
    country's respondents on the questions both score, per ``RESPONDENT_METRICS`` (Sim to the
    target: negative = the respondents are the closer proxy), with paired CI and p-values.

    ``baseline_scores`` maps (baseline name, task) to the task's ``item_scores`` of that baseline.
    """
    m = cfg["metrics"]
    n_boot, ci, seed = int(m["bootstrap"]), float(m.get("ci", 0.95)), int(cfg["seed"])
    ref = reference_baseline(cfg)
    rows: list[dict] = []
    for (model, task, strategy), per in sorted(scores.items()):
        other = baseline_scores.get((ref, task))
        if other is None:
            continue
        for metric in RESPONDENT_METRICS:
            if metric in per and metric in other:
                res = stats.compare(per[metric], other[metric], n_boot, ci, seed)
                if res.n_items:
                    rows += _rows(respondent_name(model, cfg), task, strategy, metric, res)
    return rows


def paired_rows(scores: dict[tuple[str, str, str], dict[str, dict[str, float]]], cfg: dict) -> list[dict]:
    """``delta:<model>-vs-<base>`` and ``group:<a>-vs-<b>`` rows with paired CIs and p-values.

    ``scores`` maps (model, task, strategy) to the task's ``item_scores``. Groups come from
    ``cfg.models.<name>.group``; a group's per-item score is the mean over its models on the
    items all of them have; every pair of groups (sorted) is compared
    (``stats.compare_groups``: with >= 2 models in each group the CI resamples models within
    groups as well as items, and ``<metric>:p_models`` permutes the models' group labels; without
    that row the comparison speaks for these models only).
    """
    m = cfg["metrics"]
    n_boot, ci, seed = int(m["bootstrap"]), float(m.get("ci", 0.95)), int(cfg["seed"])
    models = cfg.get("models", {})
    rows: list[dict] = []
    for (model, task, strategy), per in sorted(scores.items()):
        base = (models.get(model) or {}).get("base")
        other = scores.get((base, task, strategy)) if base else None
        if other is None:
            continue
        for metric in sorted(set(per) & set(other)):
            res = stats.compare(per[metric], other[metric], n_boot, ci, seed)
            if res.n_items:
                rows += _rows(f"delta:{model}-vs-{base}", task, strategy, metric, res)
    groups: dict[str, list[str]] = {}
    for name in sorted({k[0] for k in scores}):
        groups.setdefault((models.get(name) or {}).get("group") or "ungrouped", []).append(name)
    names = sorted(groups)
    for ts in sorted({k[1:] for k in scores}):
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if not all((mod, *ts) in scores for mod in groups[a] + groups[b]):
                    continue
                metrics = set.intersection(*(set(scores[(mod, *ts)]) for mod in groups[a] + groups[b]))
                for metric in sorted(metrics):
                    res = stats.compare_groups({mod: scores[(mod, *ts)][metric] for mod in groups[a]},
                                               {mod: scores[(mod, *ts)][metric] for mod in groups[b]},
                                               n_boot, ci, seed)
                    if res.paired.n_items:
                        rows += _rows(f"group:{a}-vs-{b}", *ts, metric, res.paired, res.p_models)
    return rows


def merge(comparison: list[dict], paired: list[dict]) -> list[dict]:
    """``comparison`` rows with those of the same (model, task, strategy, metric) replaced by ``paired``."""
    taken = {tuple(r[k] for k in KEYS) for r in paired}
    return [r for r in comparison if tuple(r[k] for k in KEYS) not in taken] + paired
