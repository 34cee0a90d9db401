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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from culteval import io

#: Pure temperature sampling, done here in numpy: softmax(logits / T) in float64, one
#: PCG64 stream per trial seed, no top-k/top-p/min-p truncation (the paper names only T).
SAMPLER = "softmax(logits/T) float64, numpy PCG64(seed), no truncation; T=0 greedy"
#: Which answer spellings an option's probability mass counts, the same for base and chat models
#: (recorded in the raw outputs' provenance, ``engine.label_rule``): every form the prompt offers
#: for its label (``label_spellings``: the label, and its number where the options are numbered),
#: each as written and after a space; their distinct first tokens, dropping a token two labels
#: share while every label keeps one of its own. Version 1 scored base models on the label alone.
LABEL_RULE = ("v2: label_spellings (label + option number where numbered), bare and space-prefixed, "
              "first tokens, shared ones dropped; base and chat models alike")

RAW_COLUMNS = [
    "prompt_id", "item_id", "permutation", "trial", "probs",
    "option_mass", "generated", "parsed", "n_prompt_tokens",
]


class _ReleasedContext:
    """Stands in for the Llama's own context once the Engine has freed it: any use (``llm.eval``,
    ``llm(...)``) raises a clear error instead of crashing on freed memory."""

    ctx = None

    def close(self) -> None:
        pass

    def __getattr__(self, name: str):
        raise RuntimeError("this Llama's own context was released by culteval.engine.Engine, which "
                           "evaluates through its own multi-sequence context: use the Engine's methods "
                           f"(llm.{name} is unavailable)")


def trial_seed(global_seed: int, prompt_id: str, trial: int) -> int:
    """Seed of one sampled trial: first 4 bytes (big-endian, unsigned) of sha256("seed:prompt_id:trial")."""
    digest = hashlib.sha256(f"{global_seed}:{prompt_id}:{trial}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


class Engine:
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
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            def raise_exception(message: str) -> None:
                raise ValueError(f"chat template of {self.model_path.name}: {message}")

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = raise_exception
            self._template = env.from_string(template)
        self.template_info = {
            "chat_template": "gguf" if template else "none",
            "chat_template_sha256": io.sha256_text(template) if template else None,
        }

    # ------------------------------------------------------------------ prompts
    def _token_text(self, token: int) -> str:
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    @property
    def is_chat(self) -> bool:
        """Whether prompts go through the model's chat template (else raw text, as a base model)."""
        return self._template is not None

    def _chat(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        llm = self.llm
        try:
            return self._template.render(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=self._token_text(llm.token_bos()),
                eos_token=self._token_text(llm.token_eos()),
            )
        except jinja2.TemplateError as exc:  # SecurityError included: the GGUF is untrusted
            raise ValueError(f"chat template of model {self.model_path.name}: {exc}") from None

    def _chat_tokens(self, rendered: str) -> list[int]:
        llm = self.llm
        tokens = llm.tokenize(rendered.encode("utf-8"), add_bos=False, special=True)
        bos = llm.token_bos()
        # templates usually write the BOS text themselves; add it only where they do not
        if self._lib.llama_vocab_get_add_bos(self._vocab) and bos >= 0 and tokens[:1] != [bos]:
            tokens = [bos, *tokens]
        return tokens

    def chat_text(self, user: str, answer_prefix: str = "", system: str = "") -> str:
        """What a chat model sees: its template over [system?, user] + generation prompt, then the prefix."""
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": user}]
        return self._chat(messages) + answer_prefix

    def encode_parts(
        self, text: str, user: str, answer_prefix: str = "", system: str = "", prompt_id: str | None = None
    ) -> list[int]:
        """Prompt tokens for one prompt row: ``text`` for a base model; for a chat model the
        chat template applied to ``[system?, user]`` with the generation prompt, then
        ``answer_prefix`` as the start of the model's own reply (docs/templates.md "Blocks")."""
        if not self.is_chat:
            return self.encode(text, prompt_id)
        return self._checked(self._chat_tokens(self.chat_text(user, answer_prefix, system)), prompt_id)

    def encode(self, text: str, prompt_id: str | None = None) -> list[int]:
        """Prompt tokens as evaluated: chat template (if any) applied, BOS added; checks n_ctx.

        A chat model gets all of ``text`` as its user message; prompt rows use
        :meth:`encode_parts`, which puts the answer prefix in the reply instead.
        """
        llm = self.llm
        if self._template is not None:
            tokens = self._chat_tokens(self._chat([{"role": "user", "content": text}]))
        else:
            tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        return self._checked(tokens, prompt_id)

    def _checked(self, tokens: list[int], prompt_id: str | None) -> list[int]:
        if len(tokens) > self.n_ctx:
            raise ValueError(
                f"prompt {prompt_id!r} has {len(tokens)} tokens, more than n_ctx={self.n_ctx} "
                f"of model {self.model_path.name}"
            )
        if not tokens:
            raise ValueError(f"prompt {prompt_id!r} has no tokens for model {self.model_path.name}")
        return tokens

    def answer_token_ids(self, labels: Sequence[str],
                         spellings: Sequence[Sequence[str]] | None = None) -> list[list[int]]:
        """Base models: per label, the distinct first token ids of every form the prompt offers
        (``spellings``, default the label alone), each as written and after a space (``LABEL_RULE``).

        Tokenisers differ ("A" vs " A"), so both count; a spelling whose first token is bare
        whitespace says nothing about the label and is skipped; a first token two labels share
        is dropped while every label keeps one of its own (:meth:`_drop_shared`).
        """
        forms_per_label = [list(f) for f in spellings] if spellings else [[x] for x in labels]
        key = (None, tuple(tuple(f) for f in forms_per_label))  # chat keys start with a str prefix
        if key in self._label_cache:
            return self._label_cache[key]
        ids: list[list[int]] = []
        for forms in forms_per_label:
            firsts = set()
            for spelling in (x for form in forms for x in (form, " " + form)):
                toks = self.llm.tokenize(spelling.encode("utf-8"), add_bos=False, special=False)
                if toks and self._token_text(toks[0]).strip():
                    firsts.add(toks[0])
            if not firsts:
                raise ValueError(f"answer label {forms!r} has no token in model {self.model_path.name}")
            ids.append(sorted(firsts))
        ids = self._drop_shared(ids)
        self._check_distinct([f[0] for f in forms_per_label], ids)
        self._label_cache[key] = ids
        return ids

    @staticmethod
    def _drop_shared(ids: list[list[int]]) -> list[list[int]]:
        """A first token that spellings of two labels share (Hindi words an English tokenizer starts
        with the same byte token) is evidence for neither: dropped, as long as every label keeps a
        token of its own; otherwise ``ids`` unchanged (and :meth:`_check_distinct` refuses them)."""
        counts: dict[int, int] = {}
        for label_ids in ids:
            for t in label_ids:
                counts[t] = counts.get(t, 0) + 1
        unique = [[t for t in label_ids if counts[t] == 1] for label_ids in ids]
        return unique if all(unique) else ids

    def _generation_prompt(self) -> str:
        """The text the chat template adds to open the model's reply (e.g. "<|im_start|>assistant\n")."""
        msgs = [{"role": "user", "content": "x"}]
        with_gp, without = self._chat(msgs, True), self._chat(msgs, False)
        return with_gp[len(without):] if with_gp.startswith(without) else ""

    def label_token_ids(self, spellings: Sequence[Sequence[str]], answer_prefix: str = "") -> list[list[int]]:
        """Chat models: per label, the distinct first tokens of every spelling ``s`` and ``" " + s``
        as a continuation of the reply opened by ``answer_prefix``.

        Each spelling is tokenized together with its context (generation prompt + prefix)
        and the tail that differs is taken, so a label reads as the model would emit it
        after "(" or after "Answer:". Where the spelling merges with the prefix's last
        token, the spelling alone is used. Whitespace-only first tokens are skipped, and so
        are first tokens two labels share when every label keeps one of its own.
        """
        key = (answer_prefix, tuple(tuple(s) for s in spellings))
        if key in self._label_cache:
            return self._label_cache[key]
        llm = self.llm
        context = self._generation_prompt() + answer_prefix
        ctx = llm.tokenize(context.encode("utf-8"), add_bos=False, special=True)
        ids: list[list[int]] = []
        for forms in spellings:
            firsts = set()
            for form in forms:
                for spelling in (form, " " + form):
                    full = llm.tokenize((context + spelling).encode("utf-8"), add_bos=False, special=True)
                    if full[:len(ctx)] == ctx:
                        tail = full[len(ctx):]
                    else:
                        tail = llm.tokenize(spelling.encode("utf-8"), add_bos=False, special=False)
                    if tail and self._token_text(tail[0]).strip():
                        firsts.add(tail[0])
            if not firsts:
                raise ValueError(f"answer label {list(forms)!r} has no token in model {self.model_path.name}")
            ids.append(sorted(firsts))
        ids = self._drop_shared(ids)
        self._check_distinct([f[0] for f in spellings], ids)
        self._label_cache[key] = ids
        return ids

    def _check_distinct(self, labels: Sequence[str], ids: list[list[int]]) -> None:
        owner: dict[int, str] = {}
        for label, label_ids in zip(labels, ids, strict=True):
            for t in label_ids:
                if t in owner:
                    raise ValueError(
                        f"answer labels {owner[t]!r} and {label!r} share first token {t} "
                        f"({self._token_text(t)!r}) in model {self.model_path.name}; labels {list(labels)}"
                    )
                owner[t] = label

    # ------------------------------------------------------------------ evaluation
    def _context(self) -> None:
        """Make our own context: sequence 0 holds the current prompt, 1..n_parallel the branches of
        its sampled trials, all in one unified KV cache (a branch shares the prompt's cells)."""
        if self._ctx is not None:
            return
        from llama_cpp import _internals

        params = self._lib.llama_context_params.from_buffer_copy(self.llm.context_params)
        params.n_seq_max = 1 + self.n_parallel
        params.kv_unified = True
        self._ctx = _internals.LlamaContext(model=self.llm._model, params=params, verbose=False)
        self.llm._ctx.close()  # the Llama's own single-sequence context is never used: free it
        self.llm._ctx = _ReleasedContext()  # ... and make any later use of it a clear error
        self.ctx = self._ctx.ctx
        self._mem = self._lib.llama_get_memory(self.ctx)
        self._batch = self._lib.llama_batch_init(self.n_batch, 0, 1)

    def reset(self) -> None:
        """Forget the KV cache (the next prompt is evaluated from scratch)."""
        self._context()
        self._lib.llama_memory_clear(self._mem, True)
        self._tokens = []
        self._cached = None

    def _truncate(self, keep: int) -> int:
        """Drop sequence 0's KV cells from ``keep`` on; returns the tokens kept (0 if the memory cannot)."""
        if keep < len(self._tokens):
            if not self._lib.llama_memory_seq_rm(self._mem, 0, keep, -1):
                self.reset()  # recurrent/hybrid memories cannot drop a tail: start over
                return 0
            del self._tokens[keep:]
        return keep

    def _decode(self, tokens: Sequence[int], positions: Sequence[int], seqs: Sequence[int],
                logits: Sequence[bool]) -> None:
        """One ``llama_decode`` of these tokens; logits are computed only where ``logits`` asks.

        Going below ``Llama.eval`` matters: it requests logits at the end of every call, and
        the output layer over a large vocabulary (262k for Gemma 3) costs as much as many
        tokens of the rest of the model.
        """
        b = self._batch
        b.n_tokens = len(tokens)
        for i, (tok, pos, seq, want) in enumerate(zip(tokens, positions, seqs, logits, strict=True)):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos, 1, want
            b.seq_id[i][0] = seq
        rc = self._lib.llama_decode(self.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc} for {len(tokens)} tokens at position "
                               f"{positions[0]} (model {self.model_path.name}, n_ctx={self.n_ctx})")
        self.n_evaluated += len(tokens)

    def _logits(self, i: int) -> np.ndarray:
        ptr = self._lib.llama_get_logits_ith(self.ctx, i)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)

    def _prompt_logits(self, tokens: Sequence[int]) -> np.ndarray:
        """Next-token logits after ``tokens``; leaves exactly ``tokens`` in sequence 0.

        The same prompt again costs nothing: the stored logits are those of its one
        evaluation. Otherwise the prompt is evaluated in canonical segments (``segment``
        tokens from its start; logits only after its last token), from an empty cache or,
        with ``prefix_reuse``, from the first segment not wholly shared with the cached
        tokens (at least one token is evaluated).
        """
        self._context()
        key = tuple(tokens)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        keep = 0
        if self.prefix_reuse and self._tokens:
            m = min(len(self._tokens), len(key) - 1)
            diff = np.flatnonzero(np.asarray(self._tokens[:m]) != np.asarray(key[:m]))
            common = int(diff[0]) if diff.size else m
            keep = self._truncate(common - common % self.segment)
        else:
            self.reset()
        self._cached = None
        for start in range(keep, len(key), self.segment):
            piece = key[start:start + self.segment]
            last = start + len(piece) == len(key)
            self._decode(piece, range(start, start + len(piece)), [0] * len(piece),
                         [False] * (len(piece) - 1) + [last])
            self._tokens.extend(piece)
        self._cached = (key, self._logits(-1))
        return self._cached[1]

    def distribution_from_tokens(
        self, tokens: Sequence[int], labels: Sequence[str], *,
        spellings: Sequence[Sequence[str]] | None = None, answer_prefix: str = "",
    ) -> tuple[list[float], float]:
        """Like :meth:`option_distribution`, for prompt tokens from :meth:`encode`/:meth:`encode_parts`.

        Both kinds score every spelling the prompt offers (``LABEL_RULE``): base models as a
        continuation of the text (:meth:`answer_token_ids`), chat models read after the answer
        prefix (:meth:`label_token_ids`).
        """
        if self.is_chat:
            label_ids = self.label_token_ids(spellings or [[x] for x in labels], answer_prefix)
        else:
            label_ids = self.answer_token_ids(labels, spellings)
        logits = self._prompt_logits(tokens)
        unnorm = np.exp(logits - logits.max())  # softmax in float64, one pass over the vocabulary
        mass = np.array([unnorm[ids].sum() for ids in label_ids]) / unnorm.sum()
        total = float(mass.sum())
        return (mass / total).tolist(), total

    def option_distribution(
        self, text: str, labels: Sequence[str], *, prompt_id: str | None = None
    ) -> tuple[list[float], float]:
        """(probabilities of ``labels`` in shown order, renormalised; option mass before renormalising)."""
        return self.distribution_from_tokens(self.encode(text, prompt_id), labels)

    def sample_from_tokens(
        self, tokens: Sequence[int], *, temperature: float, max_tokens: int, seed: int
    ) -> str:
        """Like :meth:`sample`, for prompt tokens from :meth:`encode`."""
        return self.sample_trials(tokens, [seed], temperature=temperature, max_tokens=max_tokens)[0]

    def sample_trials(
        self, tokens: Sequence[int], seeds: Sequence[int], *, temperature: float, max_tokens: int
    ) -> list[str]:
        """One sampled continuation per seed (up to ``max_tokens``, cut at the answer's newline).

        The trials are decoded together as parallel sequences that share the prompt's KV
        cells: each step evaluates the last token of every still-running trial in one batch.
        Trials go in groups of ``n_parallel`` (fewer where ``n_ctx`` cannot hold them all),
        always the same groups for the same prompt and seeds, and the KV cache then holds
        the prompt alone, so a trial's text depends only on its prompt, its seed, its group
        and the settings, never on what ran before.
        """
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature} (model {self.model_path.name})")
        logits0 = self._prompt_logits(tokens)
        n = len(tokens)
        # a context holding n_ctx tokens can still sample one more token without evaluating it
        budget = min(max_tokens, self.n_ctx - n + 1)
        group = self.n_parallel  # trials evaluate up to budget - 1 tokens each, in the prompt's n_ctx
        if budget > 1:
            group = max(1, min(group, (self.n_ctx - n) // (budget - 1)))
        texts: list[str] = []
        for g in range(0, len(seeds), group):
            texts += self._sample_group(n, logits0, seeds[g:g + group], temperature, budget)
        return texts

    def _draw(self, logits: np.ndarray, rng: np.random.Generator, temperature: float) -> int:
        if temperature == 0:
            return int(np.argmax(logits))
        z = (logits - logits.max()) / temperature
        cdf = np.cumsum(np.exp(z))
        return int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))

    def _sample_group(self, n: int, logits0: np.ndarray, seeds: Sequence[int], temperature: float,
                      budget: int) -> list[str]:
        """Decode these trials together; trials that drew the same tokens so far share one branch
        (one KV sequence, one row of logits), so agreeing trials cost one row per step."""
        rngs = [np.random.Generator(np.random.PCG64(s)) for s in seeds]
        outs: list[list[int]] = [[] for _ in seeds]
        texts = [""] * len(seeds)
        # branch -> (KV sequence, next-token logits); branch 0 is the prompt itself (sequence 0)
        branches: list[tuple[int, np.ndarray]] = [(0, logits0)]
        branch_of = [0] * len(seeds)
        running = list(range(len(seeds)))
        free = list(range(1, self.n_parallel + 1))
        try:
            while running:
                children: dict[tuple[int, int], list[int]] = {}  # (parent branch, token) -> trials
                for k in running:
                    tok = self._draw(branches[branch_of[k]][1], rngs[k], temperature)
                    if self._lib.llama_vocab_is_eog(self._vocab, tok):
                        continue
                    outs[k].append(tok)
                    text = self.llm.detokenize(outs[k]).decode("utf-8", errors="ignore")
                    head = text.lstrip()
                    if "\n" in head:  # stop at the first newline after the answer (leading blank lines kept)
                        texts[k] = text[: len(text) - len(head) + head.index("\n")]
                        continue
                    texts[k] = text
                    if len(outs[k]) < budget:
                        children.setdefault((branch_of[k], tok), []).append(k)
                # a child inherits its parent's sequence; further children of one parent get copies
                # (made before the decode, so they hold the parent's cells only)
                heirs = {}
                for parent, _ in children:
                    heirs.setdefault(parent, None)
                for b, (seq, _) in enumerate(branches):
                    if seq != 0 and b not in heirs and seq not in free:
                        self._lib.llama_memory_seq_rm(self._mem, seq, -1, -1)  # no trial goes on here
                        free.append(seq)
                free.sort()
                seqs = []
                for parent, _ in children:
                    pseq = branches[parent][0]
                    if pseq != 0 and heirs[parent] is None:
                        heirs[parent] = pseq
                        seqs.append(pseq)
                    else:
                        seq = free.pop(0)
                        self._lib.llama_memory_seq_cp(self._mem, pseq, seq, -1, -1)
                        seqs.append(seq)
                running = [k for ks in children.values() for k in ks]
                if not children:
                    break
                pos = n + len(outs[running[0]]) - 1  # trials advance in lockstep
                self._decode([tok for _, tok in children], [pos] * len(seqs), seqs, [True] * len(seqs))
                branches = [(seq, self._logits(i)) for i, seq in enumerate(seqs)]
                for i, ks in enumerate(children.values()):
                    for k in ks:
                        branch_of[k] = i
                running.sort()
        finally:
            for seq in range(1, self.n_parallel + 1):
                self._lib.llama_memory_seq_rm(self._mem, seq, -1, -1)
        return texts

    def sample(
        self, text: str, *, temperature: float, max_tokens: int, seed: int, prompt_id: str | None = None
    ) -> str:
        """One sampled continuation (up to ``max_tokens``, cut at the answer's newline), seeded."""
        return self.sample_from_tokens(
            self.encode(text, prompt_id), temperature=temperature, max_tokens=max_tokens, seed=seed
        )

    def generate_text(self, prompt: str, max_tokens: int) -> str:
        """Greedy continuation of ``prompt`` (the translator model's interface in culteval.translate)."""
        return self.sample(prompt, temperature=0.0, max_tokens=max_tokens, seed=0)

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


# ---------------------------------------------------------------------- batch scoring
def _frame(rows: list[dict]) -> pd.DataFrame:
    """Raw-output rows with fixed column types, so chunk files and the final file agree."""
    df = pd.DataFrame(rows, columns=RAW_COLUMNS)
    return pd.DataFrame({
        "prompt_id": pd.array(df["prompt_id"].tolist(), dtype="string"),
        "item_id": pd.array(df["item_id"].tolist(), dtype="string"),
        "permutation": pd.array(df["permutation"].tolist(), dtype="int64"),
        "trial": pd.array(df["trial"].tolist(), dtype="int64"),
        "probs": pd.Series(
            [None if p is None else [float(x) for x in p] for p in df["probs"]], dtype=object
        ),
        "option_mass": pd.array([None if _isna(v) else float(v) for v in df["option_mass"]], dtype="Float64"),
        "generated": pd.array([None if _isna(v) else str(v) for v in df["generated"]], dtype="string"),
        "parsed": pd.array([None if _isna(v) else int(v) for v in df["parsed"]], dtype="Int64"),
        "n_prompt_tokens": pd.array(df["n_prompt_tokens"].tolist(), dtype="int64"),
    })


def _isna(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA


def _fingerprint(engine: Engine, prompts: pd.DataFrame, settings: dict) -> dict:
    h = hashlib.sha256()
    for row in prompts.itertuples(index=False):
        h.update(json.dumps([
            row.prompt_id, row.text, list(row.labels), [int(i) for i in row.option_order], row.mode,
            _split_of(row),
        ], ensure_ascii=False).encode())
        h.update(b"\n")
    return {
        "prompts_sha256": h.hexdigest(),
        "n_prompts": len(prompts),
        "model": {"file": engine.model_path.name, "size": engine.model_path.stat().st_size},
        "engine": engine.info(),
        "settings": settings,
    }


def _split_of(p) -> dict:
    """A prompt row's chat parts; prompts rendered before templates had blocks go whole in the user turn."""
    user = getattr(p, "user", None)
    if user is None or _isna(user):
        return {"system": "", "user": p.text, "answer_prefix": "", "label_spellings": None}
    spellings = getattr(p, "label_spellings", None)
    return {"system": p.system or "", "user": user, "answer_prefix": p.answer_prefix or "",
            "label_spellings": None if spellings is None else [list(s) for s in spellings]}


def split_info(engine: Engine, prompts: pd.DataFrame) -> dict:
    """Provenance of how prompts reached the model, enough to rebuild each token sequence.

    Per template: its sha256 and the answer prefix a chat model's reply started with
    (None for a base model, which sees the whole text); plus the chat template's sha256.
    """
    chat = engine.is_chat and "user" in prompts.columns
    per_template: dict[str, dict] = {}
    for row in prompts.itertuples(index=False):
        t = per_template.setdefault(getattr(row, "template", "?"), {
            "template_sha256": getattr(row, "template_sha256", None), "answer_prefixes": set()})
        t["answer_prefixes"].add(_split_of(row)["answer_prefix"] if chat else None)
    if chat:
        how = "chat template over [system?, user] + generation prompt, then answer prefix"
    else:
        how = "chat template, whole text as user turn" if engine.is_chat else "whole text (base model)"
    return {
        "input": how,
        "chat_template_sha256": engine.template_info["chat_template_sha256"],
        "templates": {k: {"template_sha256": v["template_sha256"],
                          "answer_prefixes": sorted(v["answer_prefixes"], key=str)}
                      for k, v in sorted(per_template.items())},
    }


def show_tokens(engine: Engine, prompts: pd.DataFrame, prompt_id: str) -> str:
    """The token sequence the model evaluates for one prompt (id and piece per line), for debugging."""
    match = prompts[prompts["prompt_id"] == prompt_id]
    if match.empty:
        raise KeyError(f"prompt {prompt_id!r} not in the prompts table ({len(prompts)} prompts)")
    p = next(match.itertuples(index=False))
    s = _split_of(p)
    tokens = engine.encode_parts(p.text, s["user"], s["answer_prefix"], s["system"], p.prompt_id)
    lines = [f"# {prompt_id}: {len(tokens)} tokens, model {engine.model_path.name}, "
             f"chat template {engine.template_info['chat_template_sha256'] or 'none'}, "
             f"answer prefix {s['answer_prefix']!r}"]
    lines += [f"{i}\t{t}\t{engine._token_text(t)!r}" for i, t in enumerate(tokens)]
    if engine.is_chat:
        ids = engine.label_token_ids(s["label_spellings"] or [[x] for x in p.labels], s["answer_prefix"])
    else:
        ids = engine.answer_token_ids(list(p.labels), s["label_spellings"])
    lines += [f"# label {label!r}: " + ", ".join(f"{t} {engine._token_text(t)!r}" for t in label_ids)
              for label, label_ids in zip(p.labels, ids, strict=True)]
    return "\n".join(lines)


def _read_fingerprint(path: Path) -> dict | None:
    try:
        return io.read_json(path)
    except io.DamagedFileError as exc:
        print(f"culteval: checkpoint {exc.path}: {exc.reason}; discarding the checkpoints", file=sys.stderr)
        return None  # a damaged fingerprint vouches for nothing: the checkpoints are discarded


def _checkpoint_ok(path: Path, prompt_ids: list[str]) -> bool:
    """Whether a chunk file is a complete checkpoint of exactly ``prompt_ids``; a damaged one is set aside."""
    if not path.exists():
        return False
    try:
        got = io.read_parquet(path, columns=RAW_COLUMNS)["prompt_id"]
        if sorted(set(got)) != sorted(prompt_ids):
            raise io.reject(path, "holds other prompts than its chunk")
    except io.DamagedFileError as exc:
        print(f"culteval: checkpoint {exc.path}: {exc.reason}; recomputing it", file=sys.stderr)
        return False
    return True


def _score_one(engine: Engine, p, *, parse, trials, temperature, max_tokens, seed, tokens=None) -> list[dict]:
    order = [int(i) for i in p.option_order]
    labels = list(p.labels)
    if len(order) != len(labels) or sorted(order) != list(range(len(order))):
        raise ValueError(f"prompt {p.prompt_id!r}: option_order {order} does not match labels {labels}")
    if p.mode not in ("distribution", "both", "generate"):
        raise ValueError(f"prompt {p.prompt_id!r}: unknown mode {p.mode!r} (distribution|both|generate)")
    split = _split_of(p)
    if tokens is None:
        tokens = _prompt_tokens(engine, p)
    seeds = [trial_seed(seed, p.prompt_id, t) for t in range(trials)]
    base = {"prompt_id": p.prompt_id, "item_id": p.item_id, "permutation": int(p.permutation),
            "n_prompt_tokens": len(tokens)}
    if p.mode == "generate":  # free-text answers, scored against references at metrics time
        texts = engine.sample_trials(tokens, seeds, temperature=temperature, max_tokens=max_tokens)
        return [{**base, "trial": t, "probs": None, "option_mass": None, "generated": text, "parsed": None}
                for t, text in enumerate(texts)]
    shown, mass = engine.distribution_from_tokens(
        tokens, labels, spellings=split["label_spellings"], answer_prefix=split["answer_prefix"])
    original = [0.0] * len(order)
    for pos, orig in enumerate(order):
        original[orig] = shown[pos]
    rows = [{**base, "trial": -1, "probs": original, "option_mass": mass, "generated": None, "parsed": None}]
    if p.mode == "both":
        shown_options = list(p.shown_options)
        texts = engine.sample_trials(tokens, seeds, temperature=temperature, max_tokens=max_tokens)
        for t, text in enumerate(texts):
            idx = parse(text, labels, shown_options)
            if idx is not None and not 0 <= idx < len(order):
                raise ValueError(
                    f"prompt {p.prompt_id!r}: parser returned index {idx} for {len(order)} options"
                )
            rows.append({**base, "trial": t, "probs": None, "option_mass": None, "generated": text,
                         "parsed": -1 if idx is None else order[idx]})
    return rows


def _prompt_tokens(engine: Engine, p) -> list[int]:
    split = _split_of(p)
    return engine.encode_parts(p.text, split["user"], split["answer_prefix"], split["system"], p.prompt_id)


def score_prompts(
    engine: Engine,
    prompts: pd.DataFrame,
    out_path: str | os.PathLike,
    *,
    parse: Callable[[str, list[str], list[str]], int | None],
    trials: int = 3,
    temperature: float = 0.3,
    max_tokens: int = 8,
    seed: int = 20250527,
    chunk_size: int = 64,
    provenance: dict | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Score every prompt (distribution row, plus ``trials`` sampled rows for mode ``both``).

    ``parse(generated, labels, shown_options)`` returns the SHOWN index or None; rows store
    the original option index. Prompts run in the order of their token sequences (each
    shares its longest prefix with the one before, which ``Engine(prefix_reuse=True)``
    exploits) in fixed chunks checkpointed under ``<out_path>.chunks/``; a rerun skips done
    chunks. Reuse is exact, so a resumed run writes the same bytes as an uninterrupted one.
    """
    from tqdm import tqdm

    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    missing = {"prompt_id", "item_id", "permutation", "option_order", "labels", "shown_options", "text",
               "mode"} - set(prompts.columns)
    if missing:
        raise ValueError(f"prompts table lacks columns {sorted(missing)} (writing {out_path})")
    out_path = Path(out_path)
    dupes = prompts["prompt_id"][prompts["prompt_id"].duplicated()]
    if len(dupes):
        raise ValueError(f"duplicate prompt_id {dupes.iloc[0]!r} in prompts for {out_path}")
    # Lexicographic order of token ids is depth-first order of the prompts' prefix tree: each
    # prompt then shares its longest prefix with the one just before it, so the one cached
    # branch is the best there is (multi-branch caching would find nothing longer).
    tokens = [_prompt_tokens(engine, p) for p in prompts.itertuples(index=False)]
    keys = list(zip(tokens, prompts["prompt_id"].tolist(), strict=True))
    order = sorted(range(len(prompts)), key=keys.__getitem__)
    ordered = prompts.iloc[order].reset_index(drop=True)
    tokens = [tokens[i] for i in order]

    settings = {"trials": trials, "temperature": temperature, "max_tokens": max_tokens, "seed": seed,
                "chunk_size": chunk_size, "parse": getattr(parse, "__qualname__", repr(parse))}
    chunk_dir = Path(f"{out_path}.chunks")
    fp = _fingerprint(engine, ordered, settings)
    fp_path = chunk_dir / "fingerprint.json"
    stale = not fp_path.exists() or _read_fingerprint(fp_path) != json.loads(io.dumps_json(fp))
    if chunk_dir.exists() and stale:
        shutil.rmtree(chunk_dir)  # stale checkpoints from other prompts or settings
    chunk_dir.mkdir(parents=True, exist_ok=True)
    io.write_json(fp, fp_path)

    n_chunks = (len(ordered) + chunk_size - 1) // chunk_size
    paths = [chunk_dir / f"{c:05d}.parquet" for c in range(n_chunks)]
    ids = [ordered["prompt_id"].iloc[c * chunk_size:(c + 1) * chunk_size].tolist() for c in range(n_chunks)]
    ok = [_checkpoint_ok(paths[c], ids[c]) for c in range(n_chunks)]
    done = sum(len(ids[c]) for c in range(n_chunks) if ok[c])
    bar = tqdm(total=len(ordered), initial=done, unit="prompt", file=sys.stderr, disable=not progress,
               desc=out_path.name)
    try:
        for c in range(n_chunks):
            if ok[c]:
                continue
            # no reset: reuse is exact, so a chunk's bytes do not depend on what ran before
            rows: list[dict] = []
            for i, p in enumerate(ordered.iloc[c * chunk_size:(c + 1) * chunk_size].itertuples(index=False)):
                rows += _score_one(engine, p, parse=parse, trials=trials, temperature=temperature,
                                   max_tokens=max_tokens, seed=seed, tokens=tokens[c * chunk_size + i])
                bar.update(1)
            io.write_parquet(_frame(rows), paths[c])
    finally:
        bar.close()

    # both fresh and resumed runs build the result from the chunk files, so the bytes agree
    parts = [io.read_parquet(p) for p in paths]
    rows = [r for part in parts for r in part.to_dict("records")]
    for r in rows:
        r["probs"] = None if r["probs"] is None else list(r["probs"])
    result = _frame(rows).sort_values(["prompt_id", "trial"], kind="stable").reset_index(drop=True)
    io.write_parquet(result, out_path, provenance)
    shutil.rmtree(chunk_dir)
    return result
