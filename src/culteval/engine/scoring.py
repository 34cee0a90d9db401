"""Batch scoring: every prompt of a table through one engine, checkpointed in chunks.

Each prompt gets its option distribution (trial -1) and, for mode ``both``/``generate``,
``trials`` sampled answers; chunks under ``<out>.chunks/`` carry their job's fingerprint, so
a resumed run trusts only checkpoints made for exactly this job.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from culteval import io
from culteval.engine.sampling import trial_seed

if TYPE_CHECKING:
    from culteval.engine import Engine

RAW_COLUMNS = [
    "prompt_id", "item_id", "permutation", "trial", "probs",
    "option_mass", "generated", "parsed", "n_prompt_tokens",
]


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


def job_id(fingerprint: dict) -> str:
    """sha256 of a job's canonical fingerprint: what each of its checkpoint chunks records."""
    return io.sha256_text(io.dumps_json(fingerprint))


def _checkpoint_ok(path: Path, prompt_ids: list[str], job: str) -> bool:
    """Whether a chunk file is a complete checkpoint of exactly ``prompt_ids`` made by this job
    (same prompts' content, model, engine and sampling settings); any other is set aside."""
    if not path.exists():
        return False
    try:
        got = io.read_parquet(path, columns=RAW_COLUMNS, expect={"kind": "chunk", "job": job})["prompt_id"]
        if sorted(set(got)) != sorted(prompt_ids):
            raise io.reject(path, "holds other prompts than its chunk")
    except io.DamagedFileError as exc:
        print(f"culteval: checkpoint {exc.path}: {exc.reason}; recomputing it", file=sys.stderr)
        return False
    return True


@contextlib.contextmanager
def _exclusive(chunk_dir: Path, out_path: Path) -> Iterator[None]:
    """Hold the job's lock: a second process scoring the same output would interleave chunks."""
    chunk_dir.mkdir(parents=True, exist_ok=True)
    lock = open(chunk_dir / ".lock", "a+")  # noqa: SIM115 (held for the whole job)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "pid unknown"
            raise RuntimeError(f"{out_path}: another culteval process ({holder}) is writing it; "
                               "wait for it to finish") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        yield
    finally:
        lock.close()


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
    job = job_id(_fingerprint(engine, ordered, settings))
    with _exclusive(chunk_dir, out_path):
        result = _score_chunks(engine, ordered, tokens, chunk_dir, job, parse=parse, trials=trials,
                               temperature=temperature, max_tokens=max_tokens, seed=seed,
                               chunk_size=chunk_size, progress=progress, desc=out_path.name)
        try:
            io.write_parquet(result, out_path, provenance)
        except io.WriteError as exc:
            raise io.WriteError(f"{exc} The finished chunks stay in {chunk_dir}: free space and rerun "
                                "to resume.") from exc
        # the output is complete: its checkpoints (and any chunk set aside) are no longer needed
        shutil.rmtree(chunk_dir, ignore_errors=True)
    return result


def _score_chunks(engine, ordered, tokens, chunk_dir: Path, job: str, *, parse, trials, temperature,
                  max_tokens, seed, chunk_size, progress, desc) -> pd.DataFrame:
    """Score the chunks not already checkpointed for this job, then the result from all chunks."""
    from tqdm import tqdm

    n_chunks = (len(ordered) + chunk_size - 1) // chunk_size
    paths = [chunk_dir / f"{c:05d}.parquet" for c in range(n_chunks)]
    ids = [ordered["prompt_id"].iloc[c * chunk_size:(c + 1) * chunk_size].tolist() for c in range(n_chunks)]
    ok = [_checkpoint_ok(paths[c], ids[c], job) for c in range(n_chunks)]
    done = sum(len(ids[c]) for c in range(n_chunks) if ok[c])
    bar = tqdm(total=len(ordered), initial=done, unit="prompt", file=sys.stderr, disable=not progress,
               desc=desc)
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
            io.write_parquet(_frame(rows), paths[c], {"identity": {"kind": "chunk", "job": job, "chunk": c}},
                             sidecar=False)  # a checkpoint's record is its identity alone
    finally:
        bar.close()

    # both fresh and resumed runs build the result from the chunk files, so the bytes agree
    parts = [io.read_parquet(p, expect={"kind": "chunk", "job": job}) for p in paths]
    rows = [r for part in parts for r in part.to_dict("records")]
    for r in rows:
        r["probs"] = None if r["probs"] is None else list(r["probs"])
    return _frame(rows).sort_values(["prompt_id", "trial"], kind="stable").reset_index(drop=True)
