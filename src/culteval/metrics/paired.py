"""Like-for-like comparisons with uncertainty: fine-tuned vs base and group vs group.

Per-item scores of the headline metrics (each task's ``Task.item_scores``) are compared on the items
both sides share (``culteval.stats.compare``): a paired bootstrap CI (one item
resample for both sides) and, as extra rows, the sign-flip permutation and sign-test
p-values. A paired delta row replaces the bare ``delta:`` difference of the same
metric; group comparisons are new rows ``group:<a>-vs-<b>``.
"""

from __future__ import annotations

from culteval import stats

KEYS = ("model", "task", "strategy", "metric")


def _rows(name: str, task: str, strategy: str, metric: str, res: stats.Paired) -> list[dict]:
    base = {"model": name, "task": task, "strategy": strategy, "n_items": res.n_items}
    nan = float("nan")
    return [{**base, "metric": metric, "value": res.diff, "ci_low": res.ci_low, "ci_high": res.ci_high},
            {**base, "metric": f"{metric}:p_permutation", "value": res.p_permutation, "ci_low": nan,
             "ci_high": nan},
            {**base, "metric": f"{metric}:p_sign", "value": res.p_sign, "ci_low": nan, "ci_high": nan}]


def paired_rows(scores: dict[tuple[str, str, str], dict[str, dict[str, float]]], cfg: dict) -> list[dict]:
    """``delta:<model>-vs-<base>`` and ``group:<a>-vs-<b>`` rows with paired CIs and p-values.

    ``scores`` maps (model, task, strategy) to the task's ``item_scores``. Groups come from
    ``cfg.models.<name>.group``; a group's per-item score is the mean over its models on the
    items all of them have; every pair of groups (sorted) is compared.
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
                    sa = stats.group_scores({mod: scores[(mod, *ts)][metric] for mod in groups[a]}, groups[a])
                    sb = stats.group_scores({mod: scores[(mod, *ts)][metric] for mod in groups[b]}, groups[b])
                    res = stats.compare(sa, sb, n_boot, ci, seed)
                    if res.n_items:
                        rows += _rows(f"group:{a}-vs-{b}", *ts, metric, res)
    return rows


def merge(comparison: list[dict], paired: list[dict]) -> list[dict]:
    """``comparison`` rows with those of the same (model, task, strategy, metric) replaced by ``paired``."""
    taken = {tuple(r[k] for k in KEYS) for r in paired}
    return [r for r in comparison if tuple(r[k] for k in KEYS) not in taken] + paired
