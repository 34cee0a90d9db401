"""Render items into prompts: four strategies x answer-order permutations.

Strategies (after the "Fluent but Foreign" study): ``default`` (English),
``demographic`` (English + target persona), ``cross_lingual`` (English
instructions, question/options in the target language) and ``native``
(everything in the target language). Wording lives in template files under
``workflow/templates/<task>/`` (see docs/templates.md), never in code; this module
only fills them. Permutations control position bias: 0 = upstream order,
1 = reversed, then seeded shuffles.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from culteval import tasks
from culteval.config import ROOT, STRATEGIES, TEMPLATE_DIR, TRANSLATED_STRATEGIES
from culteval.translate import MissingTranslation, item_strings, strings_to_translate

COLUMNS = [
    "prompt_id", "item_id", "task", "subset", "group_id", "strategy", "permutation", "option_order",
    "labels", "shown_options", "label_spellings", "text", "system", "user", "answer_prefix",
    "template", "template_sha256", "mode", "machine_translated",
]
#: Blocks every template defines (docs/templates.md); ``system`` is optional.
BLOCKS = ("user", "answer")


def template_path(task: str, strategy: str, cfg: dict, root: Path = ROOT) -> Path:
    """The template file for ``task``/``strategy``; native templates are per language.

    ``native`` looks up ``<task>/native.<lang>.j2`` so that a new language needs
    files and a translation table, no code.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    name = f"native.{cfg['target']['language']}.j2" if strategy == "native" else f"{strategy}.j2"
    path = Path(root) / TEMPLATE_DIR / task / name
    if not path.is_file():
        raise FileNotFoundError(f"template missing: {path} (task {task!r}, strategy {strategy!r})")
    return path


def permutation_orders(n: int, k: int, seed: int, item_id: str) -> list[list[int]]:
    """Up to ``k`` distinct option orders: identity, reversed, then seeded shuffles.

    Shuffle p uses numpy ``default_rng`` seeded from sha256(f"{seed}:{item_id}:{p}"),
    so an order depends only on the item and p, not on which other items are run.
    At most n! orders exist, so items with 2 options get at most 2.
    """
    k = min(k, math.factorial(n))
    orders: list[list[int]] = []
    for p in range(k):
        if p == 0:
            order = list(range(n))
        elif p == 1:
            order = list(range(n))[::-1]
        else:
            digest = hashlib.sha256(f"{seed}:{item_id}:{p}".encode()).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
            order = [int(i) for i in rng.permutation(n)]
            while order in orders:  # terminates: fewer than n! orders are taken
                order = [int(i) for i in rng.permutation(n)]
        orders.append(order)
    return orders


class TemplateRenderError(ValueError):
    """A template that does not compile or render (its own code failed, or the sandbox stopped it)."""


def _split(template, variables: dict, rel: str, item_id: str = "") -> tuple[str, str, str, str]:
    """(full text, system, user, answer prefix) of one template rendering.

    The full text is what a base model sees; a chat model gets ``system``/``user`` as
    messages and ``answer`` as the start of its reply. Text outside the blocks (role
    words such as "Human: ") reaches base models only.
    """
    missing = [b for b in BLOCKS if b not in template.blocks]
    if missing:
        raise ValueError(f"template {rel} lacks block(s) {missing} (see docs/templates.md)")
    try:
        text = template.render(**variables)
        ctx = template.new_context(variables)
        parts = {name: "".join(template.blocks[name](ctx)) if name in template.blocks else ""
                 for name in ("system", "user", "answer")}
    except Exception as exc:  # the template's own code (sandboxed): whatever it raises is the template's
        raise TemplateRenderError(f"template {rel}: cannot render item {item_id!r}: "
                                  f"{type(exc).__name__}: {exc}") from None
    # the blocks must be the text's own pieces, in order, with the answer ending the prompt
    pos = 0
    for name in ("system", "user", "answer"):
        found = text.find(parts[name], pos)
        if found < 0:
            raise ValueError(f"template {rel}: block {name!r} is not part of the rendered text in order")
        pos = found + len(parts[name])
    if not text.endswith(parts["answer"]) or (parts["answer"] == "" and not text.endswith(parts["user"])):
        raise ValueError(f"template {rel}: the prompt must end with block 'answer' ('user' if it is empty)")
    return text, parts["system"].strip(), parts["user"].strip(), parts["answer"]


def render(
    items: pd.DataFrame,
    strategy: str,
    cfg: dict,
    *,
    translations: dict[str, str] | None,
    mode: str,
    root: Path = ROOT,
    machine: set[str] | None = None,
) -> pd.DataFrame:
    """Prompts for every item x permutation under ``strategy`` (docs/contracts.md "Prompts").

    Templates are read from ``root/workflow/templates``. Under cross_lingual and
    native every question/option/context string comes from ``translations``; any
    missing string raises :class:`MissingTranslation` (never a silent English fallback).
    ``machine``: the sources whose translation is machine-made (``translate.machine_sources``);
    a prompt's ``machine_translated`` says whether it shows one of them. None (no origins
    known) counts every translated prompt as machine-translated.
    """
    if mode not in tasks.MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {tasks.MODES}")
    root = Path(root)
    translate = strategy in TRANSLATED_STRATEGIES
    if translate:
        needed = set(strings_to_translate(items, cfg)) if strategy == "native" else {
            s for row in items.itertuples(index=False) for s in item_strings(row)}
        missing = needed - set(translations or {})
        if missing:
            raise MissingTranslation(missing, cfg["target"].get("language_name", "target language"))
    tr = (lambda s: translations[s]) if translate else (lambda s: s)  # noqa: E731

    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
        autoescape=False,
    )
    compiled: dict[str, tuple] = {}
    k, seed = int(cfg["permutations"]), int(cfg["seed"])
    base_vars = {
        "persona": cfg["target"]["persona"],
        # The target country appears in the instruction language: translated only under native.
        "country": tr(cfg["target"]["country"]) if strategy == "native" else cfg["target"]["country"],
        "language_name": cfg["target"]["language_name"],
    }
    rows = []
    for item in items.itertuples(index=False):
        subset = str(item.subset)
        task = tasks.get(item.task)
        if task.subsets is not None and subset not in task.subsets:
            raise ValueError(f"item {item.item_id}: unknown {item.task} subset {subset!r}")
        if item.task not in compiled:
            path = template_path(item.task, strategy, cfg, root)
            raw = path.read_bytes()
            try:
                source = env.from_string(raw.decode("utf-8"))
            except (TemplateSyntaxError, UnicodeDecodeError) as exc:
                where = f"line {exc.lineno}: {exc.message}" if isinstance(exc, TemplateSyntaxError) else exc
                raise TemplateRenderError(f"template {path}: cannot be compiled ({where})") from None
            compiled[item.task] = (
                source,
                path.relative_to(root).as_posix(),
                hashlib.sha256(raw).hexdigest(),
            )
        template, rel, sha = compiled[item.task]
        options = [str(o) for o in item.options]
        if len(options) < 2 and task.mode != "generate":
            raise ValueError(f"item {item.item_id}: needs at least 2 options, has {options}")
        context = {key: tr(v) if isinstance(v, str) and v else v
                   for key, v in tasks.json_object(item.context, "context", item.item_id).items()}
        question = tr(item.question)
        # from the origins of the strings this prompt shows, not from the strategy's name
        shown_sources = set(item_strings(item))
        if strategy == "native":
            shown_sources.add(cfg["target"]["country"])
        machine_made = translate and (machine is None or bool(shown_sources & machine))
        for p, order in enumerate(permutation_orders(len(options), k, seed, item.item_id)):
            shown = [tr(options[i]) for i in order]
            labels = task.answer_labels(shown, item.item_id)
            text, system, user, answer = _split(template, {
                **base_vars, "question": question, "options": list(zip(labels, shown, strict=True)),
                "context": context, "subset": subset}, rel, item.item_id)
            rows.append({
                "prompt_id": f"{item.item_id}#{strategy}#p{p}", "item_id": item.item_id, "task": item.task,
                "subset": subset, "group_id": item.group_id, "strategy": strategy, "permutation": p,
                "option_order": order, "labels": labels, "shown_options": shown,
                "label_spellings": task.label_spellings(labels), "text": text, "system": system,
                "user": user, "answer_prefix": answer,
                "template": rel, "template_sha256": sha, "mode": mode, "machine_translated": machine_made,
            })
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["permutation"] = out["permutation"].astype("int64")
    out["machine_translated"] = out["machine_translated"].astype(bool)
    return out.sort_values("prompt_id", kind="stable").reset_index(drop=True)


def check_templates(templates: dict[str, str], root: Path, prompts_path: str | Path) -> None:
    """Stop unless every template a prompts table was rendered from (project path -> the sha256
    its render recorded from the bytes it used) still holds those bytes in the project ``root``.

    A template edited after render makes the graph render again (it is the render rule's and
    stage's input); this catches a stage run by hand, or a graph that tracked another checkout.
    """
    from culteval.inputs import InputChanged, read_bytes

    fix = (f"render the prompts again: remove {prompts_path} and rerun the pipeline (dvc repro, or "
           "snakemake), or run culteval render for them")
    for rel, sha in sorted(templates.items()):
        path = Path(root) / rel
        if not path.is_file():
            raise InputChanged(f"template {rel}: {path} is missing, but the prompts {prompts_path} were "
                               f"rendered from it (sha256 {sha}); {fix}", path, sha, None)
        read_bytes(path, sha, f"template {rel}", recorded_by=f"the prompts {prompts_path}", fix=fix)
