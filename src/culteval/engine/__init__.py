"""Inference engine: exact option distributions and seeded sampled answers from any GGUF model.

Distributions follow the logit protocol of GlobalOpinionQA (Durmus et al. 2023): the
model's next-token probabilities on the answer labels, renormalised over the labels.
Sampled answers follow "Fluent but Foreign" (temperature 0.3, several trials per
prompt), with one seed per (run seed, prompt, trial) so every trial is reproducible.

Speed comes from evaluating each prompt once (no per-option continuation scoring), with
logits computed only after its last token (``llama_decode`` on a batch of our own:
``Llama.eval`` would also run the output layer, as costly as many tokens, after every
piece); from reusing the KV cache of the previous prompt's shared prefix, prompts running
in the order of their token sequences (depth-first in their prefix tree, so the previous
prompt is always the one sharing the longest prefix); and from decoding a prompt's sampled
trials together as parallel sequences of one unified KV cache, one batch per step, trials
that drew the same tokens so far sharing one branch.

Reuse is exact by construction: llama.cpp's logits depend on how a prompt is split into
batches (it picks matmul kernels by batch size; up to ~2e-3 in option probabilities
between splits, measured), so every prompt is always evaluated in the same pieces,
``segment`` tokens each counted from its first token, and only whole cached segments are
reused. A cached segment then holds exactly what a fresh evaluation computes, and a
prompt's numbers do not depend on which prompts ran before it (the task ``limit``, the
strategies enabled, a resume). Trials start from a cache holding the prompt alone and run
in fixed groups, so their texts do not depend on it either.

Modules: ``encoding`` (prompts and labels to tokens), ``evaluation`` (logits and option
distributions), ``sampling`` (seeded trials), ``scoring`` (a prompts table, checkpointed).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from culteval import io
from culteval.engine.encoding import LABEL_RULE, Encoding
from culteval.engine.evaluation import Evaluation, _ReleasedContext  # noqa: F401 (tests use it)
from culteval.engine.sampling import SAMPLER, Sampling, trial_seed  # noqa: F401 (public)
from culteval.engine.scoring import (  # noqa: F401 (the engine's public interface)
    RAW_COLUMNS,
    score_prompts,
    show_tokens,
    split_info,
)


class Engine(Encoding, Evaluation, Sampling):
    """One llama.cpp model, loaded once; each prompt evaluated once for its distribution and all trials.

    ``llm`` (a ``llama_cpp.Llama``) serves the tokenizer and metadata only: evaluation runs in
    the engine's own multi-sequence context (``n_parallel`` trial branches besides the prompt).
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        n_ctx: int = 2048,
        n_threads: int = 2,
        n_batch: int = 512,
        n_gpu_layers: int = 0,
        chat_template: str = "auto",
        seed: int = 0,
        prefix_reuse: bool = True,
        segment: int = 32,
        n_parallel: int = 8,
    ) -> None:
        import llama_cpp  # imported here so the rest of the package works without it

        if chat_template not in ("auto", "none"):
            raise ValueError(
                f"chat_template must be 'auto' or 'none', got {chat_template!r} for {model_path}"
            )
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"model file not found: {self.model_path}")
        self.n_ctx, self.n_threads, self.n_batch, self.n_gpu_layers = n_ctx, n_threads, n_batch, n_gpu_layers
        self._lib = llama_cpp
        self.llm = llama_cpp.Llama(
            model_path=str(self.model_path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            n_batch=n_batch,
            n_gpu_layers=n_gpu_layers,
            seed=seed,
            logits_all=False,  # True allocates n_ctx x n_vocab floats and is slow
            verbose=False,
        )
        if not 1 <= segment <= n_batch:
            raise ValueError(f"segment must be between 1 and n_batch={n_batch}, got {segment} "
                             f"for {model_path}")
        if not 1 <= n_parallel <= min(n_batch, llama_cpp.llama_max_parallel_sequences() - 1):
            raise ValueError(f"n_parallel must be between 1 and n_batch={n_batch} (and the build's "
                             f"sequence limit), got {n_parallel} for {model_path}")
        self.prefix_reuse, self.segment, self.n_parallel = prefix_reuse, segment, n_parallel
        self.n_vocab = self.llm.n_vocab()
        self._ctx = self._batch = None  # our own context, made on first use (see _context)
        #: tokens of sequence 0 in the KV cache
        self._tokens: list[int] = []
        #: (prompt tokens, their next-token logits) while sequence 0 holds exactly that prompt
        self._cached: tuple[tuple[int, ...], np.ndarray] | None = None
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self._label_cache: dict[tuple[str, ...], list[list[int]]] = {}
        #: tokens actually run through the model (the rest came from the KV cache)
        self.n_evaluated = 0

        template = self.llm.metadata.get("tokenizer.chat_template") if chat_template == "auto" else None
        self._template = None
        if template:
            import jinja2
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            def raise_exception(message: str) -> None:
                raise ValueError(f"chat template of {self.model_path.name}: {message}")

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = raise_exception
            try:
                self._template = env.from_string(template)
            except jinja2.TemplateSyntaxError as exc:
                raise ValueError(f"chat template of model {self.model_path.name}: line {exc.lineno}: "
                                 f"{exc.message}") from None
        self.template_info = {
            "chat_template": "gguf" if template else "none",
            "chat_template_sha256": io.sha256_text(template) if template else None,
        }

    # ------------------------------------------------------------------ provenance
    def info(self) -> dict:
        """Settings and build (provenance ``engine`` record; ``n_threads`` and ``system_info`` go to the
        sidecar, see ``culteval.io.LOCAL_KEYS``); no timestamps."""
        import llama_cpp

        sysinfo = llama_cpp.llama_print_system_info()
        return {
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
            "n_batch": self.n_batch,
            "n_gpu_layers": self.n_gpu_layers,
            "llama_cpp_python": llama_cpp.__version__,
            "system_info": (sysinfo.decode() if isinstance(sysinfo, bytes) else str(sysinfo)).strip(),
            "prefix_reuse": self.prefix_reuse,
            "segment": self.segment,
            "n_parallel": self.n_parallel,
            "sampler": SAMPLER,
            "label_rule": LABEL_RULE,
            **self.template_info,
        }

    def close(self) -> None:
        if self._batch is not None:
            self._lib.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            self._ctx.close()
        self.llm.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

