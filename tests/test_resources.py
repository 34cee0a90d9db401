"""What inference jobs ask the scheduler for comes from their work (culteval.resources)."""

import json

import pandas as pd

from culteval import costmodel, gguf, resources
from culteval.config import ROOT, load_params
from culteval.preflight import MIB

# A 7B model in Q4_K_M as its GGUF keys describe it (Qwen2.5-7B: 28 layers, 4 KV heads of 128).
SEVEN_B = {"size_bytes": 4_683_073_952, "n_layer": 28, "n_head_kv": 4, "key_length": 128, "value_length": 128}


def test_memory_is_the_model_and_its_kv_cache_as_preflight_counts_them(default_model):
    facts = gguf.facts(default_model)
    mb = resources.mem_mb(facts, 2048)
    need = facts["size_bytes"] + gguf.kv_cache_bytes(facts, 2048)
    assert mb * MIB >= need + resources.PROCESS_MB * MIB > (mb - 1) * MIB
    assert mb < 2048  # the 270M model does not ask for the 8 GB a constant gave every job
    assert resources.mem_mb(facts, 8192) > mb  # a longer context, a larger KV cache
    assert resources.mem_mb(facts, 2048, attempt=2) == 2 * mb  # a retry after a kill asks for more


def test_a_7b_model_asks_for_its_size():
    small = resources.mem_mb(SEVEN_B | {"size_bytes": 253_000_000}, 2048)
    big = resources.mem_mb(SEVEN_B, 2048)
    assert big - small == round((SEVEN_B["size_bytes"] - 253_000_000) / MIB)
    assert 4466 + resources.PROCESS_MB < big < 4466 + resources.PROCESS_MB + 200  # file + 112 MiB KV


def test_model_mem_reads_the_acquired_record(default_model, tmp_path):
    record = tmp_path / "gemma-3-270m.json"
    record.write_text(json.dumps({"name": "gemma-3-270m", "sha256": "x", "path": str(default_model)}))
    cfg = load_params(ROOT / "params.yaml")
    assert resources.model_mem_mb(record, cfg) == resources.mem_mb(gguf.facts(default_model),
                                                                   cfg["inference"]["n_ctx"])


def test_runtime_is_the_prediction_with_margin_and_floor():
    assert resources.runtime_min(None) == resources.UNMEASURED_RUNTIME_MIN
    assert resources.runtime_min(1.0) == resources.RUNTIME_FLOOR_MIN
    assert resources.runtime_min(3600.0) == 180  # 3 x an hour


def test_infer_runtime_follows_the_cost_model():
    cfg = load_params(ROOT / "params.yaml")
    key = next(iter(cfg["cultures"]))
    plan = pd.read_csv(costmodel.ITEMSETS / "plan.csv").sort_values("seconds")
    long = plan.iloc[-1]
    predicted = costmodel.predicted_seconds(cfg, key, long["model"], long["task"], long["strategy"])
    assert round(predicted) == round(long["seconds"])
    assert resources.infer_runtime_min(cfg, key, long["model"], long["task"], long["strategy"]) == \
        resources.runtime_min(predicted)
    # a model without measured rates is not given another model's speed
    assert resources.infer_runtime_min(cfg, key, "new-7b", long["task"], long["strategy"]) == \
        resources.UNMEASURED_RUNTIME_MIN


def test_gpu_only_for_offloaded_models():
    assert resources.gpus({"n_gpu_layers": -1}) == 1
    assert resources.gpus({"n_gpu_layers": 0}) == 0
    assert resources.gpus({}) == 0
