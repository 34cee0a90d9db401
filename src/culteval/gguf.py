"""Facts about a GGUF model read from the file's own metadata keys (no weights loaded).

llama.cpp's ``n_ctx_train()`` is 0 for a vocabulary-only load, so the trained context and
the shapes the KV cache needs are read from the keys every GGUF carries: ``general.architecture``
names the prefix of ``<arch>.context_length``, ``<arch>.block_count`` and the attention keys.
"""

from __future__ import annotations

from pathlib import Path

GGUF_MAGIC = b"GGUF"


class GGUFError(RuntimeError):
    """A file is not a readable GGUF, or lacks a key every GGUF of its architecture carries."""


def read_metadata(path: str | Path) -> dict[str, str]:
    """Scalar key-value metadata of a GGUF, as llama.cpp reads it (vocabulary only, no weights)."""
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise GGUFError(f"{path} is not a GGUF file (magic {magic!r})")
    import llama_cpp

    try:
        llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    except Exception as exc:  # llama.cpp reports a corrupt file as a bare ValueError
        raise GGUFError(f"llama.cpp cannot read {path}: {exc}") from None
    try:
        meta = dict(llm.metadata)
        meta["n_vocab"] = str(llm.n_vocab())
    finally:
        llm.close()
    return meta


def facts(path: str | Path, meta: dict[str, str] | None = None) -> dict:
    """Architecture, trained context, shapes, file size and chat-template presence of a GGUF.

    ``n_head_kv`` defaults to ``n_head`` and the key/value head sizes to
    ``embedding_length / n_head`` (llama.cpp's defaults when the keys are absent).
    """
    path = Path(path)
    meta = read_metadata(path) if meta is None else meta
    arch = meta.get("general.architecture")
    if not arch:
        raise GGUFError(f"{path}: GGUF metadata lacks general.architecture")

    def num(key: str, default: int | None = None) -> int:
        value = meta.get(f"{arch}.{key}")
        if value is None:
            if default is None:
                raise GGUFError(f"{path}: GGUF metadata lacks {arch}.{key}")
            return default
        return int(float(value))

    n_embd = num("embedding_length")
    n_head = num("attention.head_count")
    n_head_kv = num("attention.head_count_kv", n_head)
    head_dim = n_embd // n_head if n_head else n_embd
    return {
        "architecture": arch,
        "n_ctx_train": num("context_length"),
        "n_embd": n_embd,
        "n_layer": num("block_count"),
        "n_head": n_head,
        "n_head_kv": n_head_kv,
        "key_length": num("attention.key_length", head_dim),
        "value_length": num("attention.value_length", head_dim),
        "n_vocab": int(meta["n_vocab"]) if "n_vocab" in meta else None,
        "size_bytes": path.stat().st_size,
        "has_chat_template": bool(meta.get("tokenizer.chat_template")),
    }


def kv_cache_bytes(f: dict, n_ctx: int, bytes_per_value: int = 2) -> int:
    """Upper bound of the KV cache llama.cpp allocates: n_ctx x layers x KV heads x (K + V dims) x f16."""
    return n_ctx * f["n_layer"] * f["n_head_kv"] * (f["key_length"] + f["value_length"]) * bytes_per_value
