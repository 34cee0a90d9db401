"""The cost model that sizes the default run, and the default sample it draws (workflow/itemsets)."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from culteval import costmodel, tasks
from culteval.config import ROOT, culture_cfg, load_params

HERE = ROOT / "workflow" / "itemsets"


def _generator():
    spec = importlib.util.spec_from_file_location("itemsets_generate", HERE / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _costs() -> pd.DataFrame:
    return pd.read_csv(HERE / "costs.csv", dtype={"group_id": str})


def test_makespan_starts_longest_first():
    # the order the workflow runs them in (priority), not the optimum: 3|3, 5|3, 5|5, 7|5 (best: 6)
    assert costmodel.makespan([2, 3, 2, 3, 2], 2) == 7
    assert costmodel.makespan([10, 1, 1, 1], 2) == 10
    assert costmodel.makespan([5, 4, 3], 1) == 12


def test_fit_rates_recovers_known_rates():
    jobs = pd.DataFrame({"model": "m", "jobs": 1, "prompt_tokens": [1000, 4000, 2000, 500],
                         "sampled": [0, 100, 300, 50]})
    jobs["cpu_s"] = 3 + 0.002 * jobs["prompt_tokens"] + 0.05 * jobs["sampled"]
    rates = costmodel.fit_rates(jobs, "cpu_s").iloc[0]
    assert rates["per_token_s"] == pytest.approx(0.002) and rates["per_answer_s"] == pytest.approx(0.05)


def test_sample_is_stratified_nested_and_keeps_what_the_metrics_need():
    costs = _costs()
    kw = {"whole": ("cultural_map",), "keep": {"global_opinions": ("both",)}}
    small, large = (costmodel.sample_groups(costs, f, 7, **kw) for f in (0.1, 0.3))
    for task in small:
        assert set(small[task]) <= set(large[task]), task
    strata = costs.drop_duplicates(["task", "group_id"]).set_index(["task", "group_id"])["stratum"]
    for task, ids in small.items():
        counts = strata.loc[[(task, i) for i in ids]].value_counts()
        sizes = strata.loc[task].value_counts()
        for name, n in counts.items():
            if task == "cultural_map" or (task == "global_opinions" and name == "both"):
                assert n == sizes[name], (task, name)
            else:
                assert n == max(2, -(-sizes[name] // 10)), (task, name)  # ceil(0.1 x size), at least 2
        assert set(counts.index) == set(sizes.index), task  # every country / subset represented
    # a share too small for a stratum still draws two of its groups (one gives no spread)
    tiny = costmodel.sample_groups(costs, 0.01, 7)
    assert strata.loc[[("normad", i) for i in tiny["normad"]]].value_counts().to_dict() == {
        "India": 2, "United States": 2}


def test_committed_default_set_is_the_plan_of_the_committed_tables():
    gen = _generator()
    fraction, groups, jobs, _ = gen.default_plan(_costs(), budget_min=12, cores=2)
    for task, ids in groups.items():
        assert tasks.read_itemset(HERE / f"{task}.txt") == ids, task
        assert f"share {fraction:.2f} per stratum, budget 12 min" in (HERE / f"{task}.txt").read_text()
    committed = pd.read_csv(HERE / "plan.csv")
    pd.testing.assert_frame_equal(committed, jobs.reset_index(drop=True), check_dtype=False)
    assert costmodel.makespan(jobs["seconds"], 2) <= 12 * 60


def test_params_ask_the_committed_default_set():
    cfg = load_params(ROOT / "params.yaml")
    for task in ("cultural_map", "global_opinions", "culturalbench", "normad", "blend"):
        assert cfg["tasks"][task]["itemset"] == f"workflow/itemsets/{task}.txt", task
        assert cfg["tasks"][task]["limit"] is None, task


def test_longest_jobs_get_the_highest_priority():
    cfg = load_params(ROOT / "params.yaml")
    key = next(iter(cfg["cultures"]))
    plan = pd.read_csv(HERE / "plan.csv").sort_values("seconds")
    short, long = plan.iloc[0], plan.iloc[-1]
    p_short = costmodel.job_priority(cfg, key, short["model"], short["task"], short["strategy"])
    p_long = costmodel.job_priority(cfg, key, long["model"], long["task"], long["strategy"])
    assert p_long == round(long["seconds"]) and p_short < p_long
    # a model the tables do not know is costed as the mean of those they do
    mean = plan[(plan["task"] == long["task"]) & (plan["strategy"] == long["strategy"])]["seconds"].mean()
    assert costmodel.job_priority(cfg, key, "new-model", long["task"], long["strategy"]) == round(mean)


@pytest.mark.slow
def test_committed_costs_are_the_tokens_the_models_see(mirror):
    """Map items' costs recounted with the real default models (render + each model's encoding)."""
    from culteval.acquire import resolve_model_file

    params = load_params(ROOT / "params.yaml")
    cfg = culture_cfg(params, next(iter(params["cultures"])))
    items = {"cultural_map": _generator().full_groups(cfg, mirror)["cultural_map"]}
    models = {m: resolve_model_file(m, spec) for m, spec in cfg["models"].items()}
    got = costmodel.group_costs(cfg, items, models)
    want = _costs()
    want = want[want["task"] == "cultural_map"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
