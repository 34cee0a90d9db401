"""Sampled opinion answers: params.tasks.<task>.sampled switches a distribution task to mode
``both`` with its own trials and temperature, so self-consistency exists for opinions."""

from __future__ import annotations

import copy

import pytest
import yaml

from culteval import cli, io, tasks
from culteval.config import ROOT, ConfigError, load_params, validate

TINY = f"{ROOT / 'params.yaml'}:{ROOT / 'tests' / 'data' / 'params.tiny.yaml'}"
CFG = load_params(TINY)


def _with(**sampled) -> dict:
    cfg = copy.deepcopy(CFG)
    cfg["tasks"]["global_opinions"]["sampled"] = sampled
    return cfg


def test_sampling_is_off_by_default_and_per_task_when_on():
    assert CFG["tasks"]["global_opinions"]["sampled"]["trials"] == 0  # the default run does not sample
    off = tasks.sampling(CFG, "global_opinions")
    assert off["mode"] == "distribution"
    on = _with(trials=4, temperature=0.7)
    assert tasks.sampling(on, "global_opinions") == {"mode": "both", "trials": 4, "temperature": 0.7}
    # other tasks keep their declared mode and the run-wide sampling
    run_wide = {"trials": CFG["sampling"]["trials"], "temperature": CFG["sampling"]["temperature"]}
    assert tasks.sampling(on, "normad") == {"mode": "both", **run_wide}
    assert tasks.sampling(on, "cultural_map") == {"mode": "distribution", **run_wide}


@pytest.mark.parametrize(("task", "sampled", "needle"), [
    ("global_opinions", {"trials": -1, "temperature": 0.7}, "params.tasks.global_opinions.sampled.trials"),
    ("global_opinions", {"trials": 2}, "params.tasks.global_opinions.sampled"),
    ("normad", {"trials": 2, "temperature": 0.7}, "params.tasks.normad"),  # a sampled task already
])
def test_bad_sampled_sections_name_the_key(task, sampled, needle):
    cfg = copy.deepcopy(CFG)
    cfg["tasks"][task]["sampled"] = sampled
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        validate(cfg)


def test_sampled_opinions_reach_render_and_inference(tmp_path, mirror, default_model, monkeypatch):
    """The prompts are rendered in mode ``both`` and inference samples the task's own trials at its
    own temperature (not params.sampling's), so the raw outputs give self_consistency_corr."""
    from culteval import engine
    from culteval.acquire import describe_model
    from culteval.metrics.robustness import robustness_metrics

    overlay = tmp_path / "sampled.yaml"
    overlay.write_text(yaml.safe_dump({"tasks": {"global_opinions": {
        "sampled": {"trials": 2, "temperature": 0.7}, "limit": 3}}, "permutations": 1,
        "sampling": {"trials": 3, "temperature": 0.3, "max_tokens": 2}}))
    params = f"{TINY}:{overlay}"
    items, prompts = tmp_path / "items.parquet", tmp_path / "prompts.parquet"
    assert cli.main(["--params", params, "prepare", "--task", "global_opinions", "--raw-root", str(mirror),
                     "--out", str(items)]) == 0
    assert cli.main(["--params", params, "render", "--task", "global_opinions", "--strategy", "default",
                     "--items", str(items), "--out", str(prompts)]) == 0
    assert set(io.read_parquet(prompts)["mode"]) == {"both"}

    seen = {}
    real = engine.score_prompts

    def recording(*args, **kwargs):
        seen.update(trials=kwargs["trials"], temperature=kwargs["temperature"])
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "score_prompts", recording)
    record, out = tmp_path / "gemma-3-270m.json", tmp_path / "raw.parquet"
    io.write_json(describe_model("gemma-3-270m", {"path": str(default_model)}), record)
    assert cli.main(["--params", params, "infer", "--model-json", str(record), "--task", "global_opinions",
                     "--strategy", "default", "--prompts", str(prompts), "--out", str(out),
                     "--no-progress"]) == 0
    assert seen == {"trials": 2, "temperature": 0.7}
    raw = io.read_parquet(out)
    assert sorted(set(raw["trial"])) == [-1, 0, 1]
    metrics = {r["metric"] for r in robustness_metrics(raw, load_params(params), ordered_scale=True)}
    assert "self_consistency" in metrics
