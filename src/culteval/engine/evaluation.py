"""Evaluation: next-token logits of a prompt, computed once and reused exactly across prompts.

Logits come only after a prompt's last token (``llama_decode`` on a batch of our own), the KV
cache of the previous prompt's shared prefix is reused in whole canonical segments, so a
prompt's numbers never depend on what ran before it (see the package docstring).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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



class Evaluation:
    """Mixin of :class:`culteval.engine.Engine`: the multi-sequence context and option distributions."""

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
