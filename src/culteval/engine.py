"""Inference engine: exact option distributions and seeded sampled answers from any GGUF model.

Distributions follow the logit protocol of GlobalOpinionQA (Durmus et al. 2023): the
model's next-token probabilities on the answer labels, renormalised over the labels.
Sampled answers follow "Fluent but Foreign" (temperature 0.3, several trials per
prompt), with one seed per (run seed, prompt, trial) so every trial is reproducible.

Speed comes from evaluating each prompt once (no per-option continuation scoring), from
reusing that evaluation for every sampled trial, and from reusing the KV cache of the
previous prompt's shared prefix. Reuse is exact by construction: llama.cpp's logits
depend on how a prompt is split into batches (it picks matmul kernels by batch size;
up to ~2e-3 in option probabilities between splits, measured), so every prompt is
always evaluated in the same pieces, ``segment`` tokens each counted from its first
token, and only whole cached segments are reused. A cached segment then holds exactly
what a fresh evaluation computes, and a prompt's numbers do not depend on which
prompts ran before it (the task ``limit``, the strategies enabled, a resume).
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

RAW_COLUMNS = [
    "prompt_id", "item_id", "permutation", "trial", "probs",
    "option_mass", "generated", "parsed", "n_prompt_tokens",
]


def trial_seed(global_seed: int, prompt_id: str, trial: int) -> int:
    """Seed of one sampled trial: first 4 bytes (big-endian, unsigned) of sha256("seed:prompt_id:trial")."""
    digest = hashlib.sha256(f"{global_seed}:{prompt_id}:{trial}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


class Engine:
    """One llama.cpp model, loaded once; each prompt evaluated once for its distribution and all trials."""

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
        self.prefix_reuse, self.segment = prefix_reuse, segment
        self.n_vocab = self.llm.n_vocab()
        #: (prompt tokens, their next-token logits) while the KV cache starts with that prompt
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

    def answer_token_ids(self, labels: Sequence[str]) -> list[list[int]]:
        """Per label, the distinct first token ids of its spellings ``label`` and ``" " + label``.

        Tokenisers differ ("A" vs " A"), so both spellings count; a spelling whose first
        token is bare whitespace says nothing about the label and is skipped.
        """
        key = tuple(labels)
        if key in self._label_cache:
            return self._label_cache[key]
        ids: list[list[int]] = []
        for label in labels:
            firsts = set()
            for spelling in (label, " " + label):
                toks = self.llm.tokenize(spelling.encode("utf-8"), add_bos=False, special=False)
                if toks and self._token_text(toks[0]).strip():
                    firsts.add(toks[0])
            if not firsts:
                raise ValueError(f"answer label {label!r} has no token in model {self.model_path.name}")
            ids.append(sorted(firsts))
        self._check_distinct(labels, ids)
        self._label_cache[key] = ids
        return ids

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
        # A first token that spellings of two labels share (Hindi words an English tokenizer starts
        # with the same byte token) is evidence for neither: dropped, as long as every label keeps
        # a token of its own (NormAd's numbers); otherwise the labels cannot be told apart.
        counts: dict[int, int] = {}
        for label_ids in ids:
            for t in label_ids:
                counts[t] = counts.get(t, 0) + 1
        unique = [[t for t in label_ids if counts[t] == 1] for label_ids in ids]
        if all(unique):
            ids = unique
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
    def reset(self) -> None:
        """Forget the KV cache (the next prompt is evaluated from scratch)."""
        self.llm.reset()
        self._lib.llama_memory_clear(self._lib.llama_get_memory(self.llm.ctx), True)
        self._cached = None

    def _truncate(self, keep: int) -> int:
        """Drop KV cells from position ``keep`` on; returns the tokens kept (0 if the memory cannot)."""
        if keep < self.llm.n_tokens:
            if not self._lib.llama_memory_seq_rm(self._lib.llama_get_memory(self.llm.ctx), 0, keep, -1):
                self.reset()  # recurrent/hybrid memories cannot drop a tail: start over
                return 0
            self.llm.n_tokens = keep
        return keep

    def _last_logits(self) -> np.ndarray:
        ptr = self._lib.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)

    def _prompt_logits(self, tokens: Sequence[int]) -> np.ndarray:
        """Next-token logits after ``tokens``; leaves exactly ``tokens`` in the KV cache.

        The same prompt again (its sampled trials) costs nothing: the generated tail is
        dropped and the stored logits reused, so the numbers are those of one evaluation.
        Otherwise the prompt is evaluated in canonical segments (``segment`` tokens from its
        start), from an empty cache or, with ``prefix_reuse``, from the first segment that
        is not wholly shared with the cached tokens (at least one token is evaluated).
        """
        key = tuple(tokens)
        if self._cached is not None and self._cached[0] == key and self._truncate(len(key)) == len(key):
            return self._cached[1]
        keep = 0
        if self.prefix_reuse and self.llm.n_tokens:
            m = min(self.llm.n_tokens, len(key) - 1)
            diff = np.flatnonzero(self.llm.input_ids[:m] != np.asarray(key[:m], dtype=np.intc))
            common = int(diff[0]) if diff.size else m
            keep = self._truncate(common - common % self.segment)
        else:
            self.reset()
        self._cached = None
        for start in range(keep, len(key), self.segment):
            self.llm.eval(list(key[start:start + self.segment]))
        self.n_evaluated += len(key) - keep
        self._cached = (key, self._last_logits())
        return self._cached[1]

    def distribution_from_tokens(
        self, tokens: Sequence[int], labels: Sequence[str], *,
        spellings: Sequence[Sequence[str]] | None = None, answer_prefix: str = "",
    ) -> tuple[list[float], float]:
        """Like :meth:`option_distribution`, for prompt tokens from :meth:`encode`/:meth:`encode_parts`.

        Base models score the labels' first tokens (:meth:`answer_token_ids`); chat models
        every spelling the prompt offers, read after the answer prefix (:meth:`label_token_ids`).
        """
        if self.is_chat:
            label_ids = self.label_token_ids(spellings or [[x] for x in labels], answer_prefix)
        else:
            label_ids = self.answer_token_ids(labels)
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
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature} (model {self.model_path.name})")
        rng = np.random.Generator(np.random.PCG64(seed))
        # a context holding n_ctx tokens can still sample one more token without evaluating it
        budget = min(max_tokens, self.n_ctx - len(tokens) + 1)
        logits = self._prompt_logits(tokens)
        out: list[int] = []
        text = ""
        while len(out) < budget:
            if temperature == 0:
                tok = int(np.argmax(logits))
            else:
                z = (logits - logits.max()) / temperature
                cdf = np.cumsum(np.exp(z))
                tok = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
            if self._lib.llama_vocab_is_eog(self._vocab, tok):
                break
            out.append(tok)
            text = self.llm.detokenize(out).decode("utf-8", errors="ignore")
            head = text.lstrip()
            if "\n" in head:  # stop at the first newline after the answer (leading blank lines kept)
                text = text[: len(text) - len(head) + head.index("\n")]
                break
            if len(out) < budget:
                self.llm.eval([tok])  # one token at a time, as a fresh run would
                self.n_evaluated += 1
                logits = self._last_logits()
        return text

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
        """Settings and build that can change results (provenance ``engine`` record); no timestamps."""
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
            "sampler": SAMPLER,
            **self.template_info,
        }

    def close(self) -> None:
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
        ids = engine.answer_token_ids(list(p.labels))
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


def _score_one(engine: Engine, p, *, parse, trials, temperature, max_tokens, seed) -> list[dict]:
    order = [int(i) for i in p.option_order]
    labels = list(p.labels)
    if len(order) != len(labels) or sorted(order) != list(range(len(order))):
        raise ValueError(f"prompt {p.prompt_id!r}: option_order {order} does not match labels {labels}")
    if p.mode not in ("distribution", "both", "generate"):
        raise ValueError(f"prompt {p.prompt_id!r}: unknown mode {p.mode!r} (distribution|both|generate)")
    split = _split_of(p)
    tokens = engine.encode_parts(p.text, split["user"], split["answer_prefix"], split["system"], p.prompt_id)
    base = {"prompt_id": p.prompt_id, "item_id": p.item_id, "permutation": int(p.permutation),
            "n_prompt_tokens": len(tokens)}
    if p.mode == "generate":  # free-text answers, scored against references at metrics time
        rows = []
        for t in range(trials):
            text = engine.sample_from_tokens(tokens, temperature=temperature, max_tokens=max_tokens,
                                             seed=trial_seed(seed, p.prompt_id, t))
            rows.append({**base, "trial": t, "probs": None, "option_mass": None, "generated": text,
                         "parsed": None})
        return rows
    shown, mass = engine.distribution_from_tokens(
        tokens, labels, spellings=split["label_spellings"], answer_prefix=split["answer_prefix"])
    original = [0.0] * len(order)
    for pos, orig in enumerate(order):
        original[orig] = shown[pos]
    rows = [{**base, "trial": -1, "probs": original, "option_mass": mass, "generated": None, "parsed": None}]
    if p.mode == "both":
        shown_options = list(p.shown_options)
        for t in range(trials):
            text = engine.sample_from_tokens(
                tokens, temperature=temperature, max_tokens=max_tokens, seed=trial_seed(seed, p.prompt_id, t)
            )
            idx = parse(text, labels, shown_options)
            if idx is not None and not 0 <= idx < len(order):
                raise ValueError(
                    f"prompt {p.prompt_id!r}: parser returned index {idx} for {len(order)} options"
                )
            rows.append({**base, "trial": t, "probs": None, "option_mass": None, "generated": text,
                         "parsed": -1 if idx is None else order[idx]})
    return rows


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
    the original option index. Prompts run in ``text`` order (consecutive prompts share
    prefixes, which ``Engine(prefix_reuse=True)`` exploits) in fixed chunks checkpointed
    under ``<out_path>.chunks/``; a rerun skips done chunks. The KV cache is cleared at each
    chunk start, so a resumed run evaluates every chunk as an uninterrupted one and writes
    the same bytes.
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
    keys = list(zip(prompts["text"].tolist(), prompts["prompt_id"].tolist(), strict=True))
    order = sorted(range(len(prompts)), key=keys.__getitem__)
    ordered = prompts.iloc[order].reset_index(drop=True)

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
            engine.reset()  # chunk results must not depend on what ran before (resume = same bytes)
            rows: list[dict] = []
            for p in ordered.iloc[c * chunk_size:(c + 1) * chunk_size].itertuples(index=False):
                rows += _score_one(engine, p, parse=parse, trials=trials, temperature=temperature,
                                   max_tokens=max_tokens, seed=seed)
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
