"""Checks before a model is loaded: context, memory and threads against what the model and machine allow.

A ``n_ctx`` of a billion would otherwise reach llama.cpp, which allocates its KV cache and
gets the job killed for memory, with no message. Every refusal names the model, the param
and both numbers; ``force`` turns the resource refusals into warnings (recorded in
provenance by the caller). A prompt longer than ``n_ctx`` cannot be forced: llama.cpp
cannot evaluate it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from culteval import gguf

MIB = 1 << 20


class PreflightError(RuntimeError):
    """A run would exceed what the model or the machine allows."""


def available_memory_bytes() -> int:
    """Memory the OS could give this process now without swapping."""
    import psutil  # pinned through snakemake; reads cgroup-unaware MemAvailable on Linux

    return int(psutil.virtual_memory().available)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def resource_problems(model: str, facts: dict, inference: dict, *, n_gpu_layers: int = 0,
                      mem_mb: int | None = None, available: int | None = None,
                      cores: int | None = None) -> list[tuple[str, str]]:
    """(check, message) for every limit ``inference`` exceeds; empty when the run fits.

    Memory counts the model file plus the KV cache (an upper bound: f16, every layer);
    it is the smaller of the machine's available memory and the job's ``mem_mb``.
    GPU-offloaded models are not checked against RAM.
    """
    n_ctx, n_threads = inference["n_ctx"], inference["n_threads"]
    problems = []
    train = facts["n_ctx_train"]
    if train and n_ctx > train:
        problems.append(("n_ctx_train", (
            f"model {model!r}: inference.n_ctx={n_ctx} exceeds the {train} tokens it was trained on "
            f"({facts['architecture']}.context_length)")))
    if n_gpu_layers == 0:
        kv = gguf.kv_cache_bytes(facts, n_ctx)
        need = facts["size_bytes"] + kv
        have = available_memory_bytes() if available is None else available
        where = "memory available on this machine"
        if mem_mb is not None and mem_mb * MIB < have:
            have, where = mem_mb * MIB, "the job's resources.mem_mb"
        if need > have:
            problems.append(("memory", (
                f"model {model!r}: inference.n_ctx={n_ctx} needs {need // MIB} MiB (model file "
                f"{facts['size_bytes'] // MIB} MiB + KV cache {kv // MIB} MiB), more than the "
                f"{have // MIB} MiB of {where}")))
    cores = usable_cores() if cores is None else cores
    if n_threads > cores:
        problems.append(("threads", (
            f"model {model!r}: inference.n_threads={n_threads} exceeds the {cores} CPU cores "
            "this process may use")))
    return problems


def enforce(problems: list[tuple[str, str]], *, force: bool) -> dict:
    """Raise on ``problems`` unless ``force``; returns the provenance record of the preflight."""
    if problems and not force:
        raise PreflightError("; ".join(m for _, m in problems) + " (--force runs anyway)")
    for _, message in problems:
        print(f"culteval: warning: {message} (forced)", file=sys.stderr)
    return {"force": force, "overridden": sorted(c for c, _ in problems)}


@contextlib.contextmanager
def _uncapped(engine) -> Iterator[None]:
    """Let ``engine.encode`` count a prompt longer than n_ctx instead of raising at the first one."""
    saved = engine.n_ctx
    engine.n_ctx = sys.maxsize
    try:
        yield
    finally:
        engine.n_ctx = saved


def _tokens(engine, row) -> list[int]:
    """The prompt's tokens as scoring evaluates them (chat parts where the row has them)."""
    user = getattr(row, "user", None)
    if user is None or user != user:  # prompts rendered before templates had blocks: whole text
        return engine.encode(row.text, row.prompt_id)
    return engine.encode_parts(row.text, user, row.answer_prefix or "", row.system or "", row.prompt_id)


def longest_prompt(engine, prompts, modes: tuple[str, ...] | None = None) -> tuple[int, str | None]:
    """(tokens, prompt_id) of the longest prompt as the engine evaluates it (chat template applied),
    among prompts of ``modes`` (all prompts when None)."""
    best: tuple[int, str | None] = (0, None)
    rows = prompts if modes is None else prompts[prompts["mode"].isin(modes)]
    with _uncapped(engine):
        for row in sorted(rows.itertuples(index=False), key=lambda r: r.prompt_id):
            n = len(_tokens(engine, row))
            if n > best[0]:
                best = (n, row.prompt_id)
    return best


def check_prompts(model: str, engine, prompts, max_tokens: int | None = None) -> None:
    """Refuse before any inference when the longest rendered prompt does not fit ``n_ctx``, or
    (with ``max_tokens``) a prompt with sampled answers leaves no room for a whole answer: an
    answer cut at the context's end would be parsed as if the model had stopped there."""
    n, pid = longest_prompt(engine, prompts)
    if n > engine.n_ctx:
        raise PreflightError(
            f"model {model!r}: inference.n_ctx={engine.n_ctx} is shorter than the longest rendered prompt "
            f"({n} tokens, prompt {pid!r})")
    if max_tokens is None or "mode" not in prompts.columns:
        return
    n, pid = longest_prompt(engine, prompts, ("both", "generate"))
    if pid is not None and n + max_tokens > engine.n_ctx:
        raise PreflightError(
            f"model {model!r}: inference.n_ctx={engine.n_ctx} cannot hold prompt {pid!r} ({n} tokens) plus "
            f"a sampled answer of max_tokens={max_tokens}: raise n_ctx to at least {n + max_tokens}")
