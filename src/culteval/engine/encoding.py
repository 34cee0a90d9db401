"""Encoding: prompt rows to the token sequences a model evaluates, and answer labels to token ids.

A base model reads a prompt's whole text; a chat model its chat template over
``[system?, user]`` with the generation prompt, then the template's answer prefix as the start
of its own reply (docs/templates.md "Blocks"). Labels count by the first token of every
spelling a model could emit after that context.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

#: Which answer spellings an option's probability mass counts, the same for base and chat models
#: (recorded in the raw outputs' provenance, ``engine.label_rule``): every form the prompt offers
#: for its label (``label_spellings``: the label, and its number where the options are numbered),
#: each as written and after a space; their distinct first tokens, dropping a token two labels
#: share while every label keeps one of its own. Version 1 scored base models on the label alone.
LABEL_RULE = ("v2: label_spellings (label + option number where numbered), bare and space-prefixed, "
              "first tokens, shared ones dropped; base and chat models alike")


class Encoding:
    """Mixin of :class:`culteval.engine.Engine`: tokenizer-side methods (no evaluation)."""

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
        except ValueError as exc:
            if str(exc).startswith("chat template of"):  # the template's raise_exception: named already
                raise
            raise ValueError(f"chat template of model {self.model_path.name}: {type(exc).__name__}: {exc}"
                             ) from None
        except Exception as exc:  # SecurityError included: the GGUF is untrusted; any error is its template's
            raise ValueError(f"chat template of model {self.model_path.name}: {type(exc).__name__}: {exc}"
                             ) from None

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
        return self._label_ids(key, forms_per_label, lambda spelling: self.llm.tokenize(
            spelling.encode("utf-8"), add_bos=False, special=False))

    def _label_ids(self, key, spellings: Sequence[Sequence[str]],
                   tokens_of: Callable[[str], list[int]]) -> list[list[int]]:
        """Per label, the distinct first tokens of ``tokens_of(s)`` for every spelling ``s`` and
        ``" " + s`` (whitespace-only first tokens skipped), shared ones dropped
        (:meth:`_drop_shared`), distinctness checked; cached under ``key``."""
        ids: list[list[int]] = []
        for forms in spellings:
            firsts = set()
            for spelling in (x for form in forms for x in (form, " " + form)):
                toks = tokens_of(spelling)
                if toks and self._token_text(toks[0]).strip():
                    firsts.add(toks[0])
            if not firsts:
                raise ValueError(f"answer label {list(forms)!r} has no token in model {self.model_path.name}")
            ids.append(sorted(firsts))
        ids = self._drop_shared(ids)
        self._check_distinct([f[0] for f in spellings], ids)
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

        def tail(spelling: str) -> list[int]:
            full = llm.tokenize((context + spelling).encode("utf-8"), add_bos=False, special=True)
            if full[:len(ctx)] == ctx:
                return full[len(ctx):]
            return llm.tokenize(spelling.encode("utf-8"), add_bos=False, special=False)

        return self._label_ids(key, spellings, tail)

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
