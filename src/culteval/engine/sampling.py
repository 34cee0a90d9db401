"""Sampling: seeded temperature sampling of several trials per prompt, decoded together.

Pure temperature sampling done in numpy: softmax(logits / T) in float64, one PCG64 stream per
trial seed, no top-k/top-p/min-p truncation ("Fluent but Foreign" names only T).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

SAMPLER = "softmax(logits/T) float64, numpy PCG64(seed), no truncation; T=0 greedy"


def trial_seed(global_seed: int, prompt_id: str, trial: int) -> int:
    """Seed of one sampled trial: first 4 bytes (big-endian, unsigned) of sha256("seed:prompt_id:trial")."""
    digest = hashlib.sha256(f"{global_seed}:{prompt_id}:{trial}".encode()).digest()
    return int.from_bytes(digest[:4], "big")



class Sampling:
    """Mixin of :class:`culteval.engine.Engine`: sampled trials and greedy text."""

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
        if budget < max_tokens:  # never cut an answer short silently (preflight refuses it first)
            raise ValueError(f"n_ctx={self.n_ctx} of model {self.model_path.name} cannot hold a prompt of "
                             f"{n} tokens plus max_tokens={max_tokens} sampled tokens")
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
