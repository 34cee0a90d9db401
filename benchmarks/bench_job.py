"""Benchmark: whole inference jobs, the engine of commit 4efe881 vs today's engine, side by side.

Per (task, strategy) slice of the default run's real prompts (rendered from the data mirror
with params.yaml, as ``culteval render`` does). ``--slice windows`` (default): a few runs of
consecutive prompts of the whole job in the engine's order (token order), spread over the job,
so every prompt but a window's first shares with its predecessor what it shares in a full run;
``--slice groups``: the first item groups of the job in id order. Translated strategies need
every string in the shipped translation table; jobs it does not cover are left out.

* ``4efe881``: that commit's ``engine.py`` loaded as a separate module in this process, in its
  exact mode (every prompt from an empty cache in one batch, trials one token and one trial
  at a time); ``generate`` prompts (which it predates) as its ``sample_from_tokens`` per trial;
* ``new``: today's engine as configured by default (canonical segments, exact prefix reuse,
  prompts in token order, trials decoded together as parallel sequences);
* ``new, no reuse``: today's engine with ``prefix_reuse=False``; its raw output file must be
  byte-identical to ``new``'s.

Printed per slice: wall-time ratio 4efe881 / new, tokens evaluated vs tokens in the prompts,
and the share of the new engine's time in prompt evaluation, sampling (decoding the
trials plus the numpy draws) and the rest (tokenising, parquet, Python). Methods run in
interleaved rounds and the best time counts (other load on the machine only adds time). With
``--threads 1`` on CPU the clock is the process's CPU time, which a busy shared machine
inflates far less than wall time. In total: the slices as they are, and each slice scaled to
its whole job's number of prompts (the estimate for the whole run's set).
``--chat-template none`` (the default) gives both engines the raw prompt text, so they
evaluate the same tokens for any GGUF.

Usage: ``python benchmarks/bench_job.py [--prompts 24] [--tasks culturalbench,normad]
[--strategies default] [--threads 2] [--repeats 1] [--segment 32] [--model PATH] [--n-gpu-layers 0]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import default_model  # noqa: E402

from culteval import prompts as prompts_mod  # noqa: E402
from culteval import tasks, translate  # noqa: E402
from culteval.config import culture_cfg, culture_keys, culture_of, normalise_cultures  # noqa: E402
from culteval.engine import Engine  # noqa: E402

BASELINE = "4efe881"
CLOCK = time.perf_counter


def load_baseline():
    """``src/culteval/engine.py`` of commit 4efe881 as module ``engine_4efe881``."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{BASELINE}:src/culteval/engine.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / f"engine_{BASELINE}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"engine_{BASELINE}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUN: Path | None = None  # --run: a finished run folder whose rendered prompts are read instead


def shipped_table(cfg: dict) -> dict | None:
    """The shipped translation table, needed only to render prompts here (not with ``--run``)."""
    if RUN is not None:
        return None
    return translate.load_table(ROOT / cfg["translation"]["table"], cfg["target"]["language"])


def job_prompts(task, strategy: str, cfg: dict, mirror: Path, table: dict | None) -> pd.DataFrame:
    """The whole job's prompts: as a finished run rendered them (``--run``; every strategy, the
    translated ones with the run's own translations) or rendered here from the shipped table
    (raises MissingTranslation where it does not cover the job)."""
    if RUN is not None:
        culture = culture_of(cfg)
        path = RUN / "data" / "prompts" / culture / task.name / f"{strategy}.parquet"
        if not path.is_file():
            raise prompts_mod.MissingTranslation(f"{path}: no such rendered prompts")
        return pd.read_parquet(path)
    items = task.load_items(mirror, cfg)
    return prompts_mod.render(items, strategy, cfg, translations=table, mode=task.mode, root=ROOT)


def reuse_view(engine, cfg: dict, mirror: Path, task_names: list[str], strategies: list[str]) -> None:
    """Whole jobs, tokens only: the share of prompt tokens evaluated with exact reuse, by segment."""
    table = shipped_table(cfg)
    segments = (1, 8, 16, 32, 64)
    print("whole jobs, prompt tokens evaluated / prompt tokens (token order; segment 1 = any prefix)")
    print(f"{'task/strategy':<30}{'prompts':>8}{'tokens':>8}" + "".join(f"{f'seg {g}':>8}" for g in segments))
    for name in task_names:
        task = tasks.get(name)
        for strategy in strategies:
            try:
                df = job_prompts(task, strategy, cfg, mirror, table)
            except prompts_mod.MissingTranslation as exc:
                print(f"{name + '/' + strategy:<30}  skipped: {exc}"[:110])
                continue
            seqs = sorted(engine.encode(t) for t in df["text"])
            total = sum(map(len, seqs))
            shares = []
            for g in segments:
                evaluated, prev = 0, []
                for seq in seqs:
                    m = min(len(prev), len(seq) - 1)
                    common = next((i for i in range(m) if prev[i] != seq[i]), m)
                    evaluated += len(seq) - (common - common % g)
                    prev = seq
                shares.append(evaluated / total)
            cells = "".join(f"{x:>8.2f}" for x in shares)
            print(f"{name + '/' + strategy:<30}{len(seqs):>8}{total:>8}{cells}")


def job_slices(cfg: dict, mirror: Path, task_names: list[str], strategies: list[str], n: int):
    """(task, strategy, prompts of the first items of that job, up to about ``n`` prompts)."""
    table = translate.load_table(ROOT / cfg["translation"]["table"], cfg["target"]["language"])
    for name in task_names:
        task = tasks.get(name)
        # whole groups (an item with its variants: Hard's judgements of one question, NormAd's
        # contexts of one story) in id order, as they share prefixes in the full job
        items = task.load_items(mirror, cfg).sort_values(["group_id", "item_id"], kind="stable")
        for strategy in strategies:
            df, k = None, 1
            while True:  # grow the item slice until it renders about n prompts
                head = items.head(k)
                try:
                    df = prompts_mod.render(head, strategy, cfg, translations=table, mode=task.mode,
                                            root=ROOT)
                except prompts_mod.MissingTranslation:
                    break  # the shipped table does not cover these items: keep the last slice
                if len(df) >= n or k >= len(items):
                    break
                k = max(k + 1, int(k * n / max(len(df), 1)))
            if df is not None and len(df):
                yield name, strategy, task, df.head(max(n, 1)).reset_index(drop=True)


def window_slices(engine, cfg: dict, mirror: Path, task_names: list[str], strategies: list[str], n: int,
                  windows: int):
    """(task, strategy, ``windows`` runs of consecutive prompts of the whole job in the engine's
    order, about ``n`` prompts in all, spread evenly over the job).

    Every prompt of a window but its first shares with its predecessor exactly what it shares
    in the whole job, so a window costs what those prompts cost in a full run."""
    table = shipped_table(cfg)
    for name in task_names:
        task = tasks.get(name)
        for strategy in strategies:
            try:
                df = job_prompts(task, strategy, cfg, mirror, table)
            except prompts_mod.MissingTranslation:
                continue  # the shipped table does not cover this job
            keys = [(engine.encode(t), pid) for t, pid in zip(df["text"], df["prompt_id"], strict=True)]
            ordered = df.iloc[sorted(range(len(df)), key=keys.__getitem__)].reset_index(drop=True)
            size = max(1, n // windows)
            starts = sorted({int(i * (len(ordered) - size) / max(windows - 1, 1)) for i in range(windows)})
            rows = sorted({r for s in starts for r in range(s, min(s + size, len(ordered)))})
            window = ordered.iloc[rows].reset_index(drop=True)
            window.attrs["job_prompts"] = len(df)  # to scale the slice to its whole job
            yield name, strategy, task, window


class Clock:
    """Exclusive wall time and evaluated tokens per label, by wrapping engine methods."""

    def __init__(self, engine) -> None:
        self.engine, self.time, self.tokens, self.stack = engine, defaultdict(float), defaultdict(int), []

    def wrap(self, name: str, label: str) -> None:
        fn = getattr(self.engine, name)

        def timed(*a, **k):
            t0, n0 = CLOCK(), self.engine.n_evaluated
            self.stack.append(label)
            try:
                return fn(*a, **k)
            finally:
                self.stack.pop()
                dt, dn = CLOCK() - t0, self.engine.n_evaluated - n0
                self.time[label] += dt
                self.tokens[label] += dn
                if self.stack:  # exclusive: the caller's label does not count this time again
                    self.time[self.stack[-1]] -= dt
                    self.tokens[self.stack[-1]] -= dn

        setattr(self.engine, name, timed)


def run_job(engine, module, task, df: pd.DataFrame, cfg: dict, out: Path, baseline: bool) -> dict:
    s = cfg["sampling"]
    kw = dict(trials=s["trials"], temperature=s["temperature"], max_tokens=task.max_tokens or s["max_tokens"],
              seed=cfg["seed"])
    clock = Clock(engine)
    clock.wrap("_prompt_logits", "prompt")
    clock.wrap("sample_from_tokens" if baseline else "sample_trials", "sampling")
    engine.reset()
    t0 = CLOCK()
    if baseline and task.mode == "generate":  # 4efe881 predates generate mode: its per-trial sampler
        for p in df.itertuples(index=False):
            tokens = engine.encode(p.text, p.prompt_id)
            for t in range(kw["trials"]):
                engine.sample_from_tokens(tokens, temperature=kw["temperature"], max_tokens=kw["max_tokens"],
                                          seed=module.trial_seed(kw["seed"], p.prompt_id, t))
    else:
        table = df.assign(letters=df["labels"]) if baseline else df
        module.score_prompts(engine, table, out, parse=task.parse_answer,
                             chunk_size=cfg["inference"]["chunk_size"], progress=False, **kw)
    wall = CLOCK() - t0
    for name in ("_prompt_logits", "sample_from_tokens", "sample_trials"):
        engine.__dict__.pop(name, None)  # unwrap
    return {"wall": wall, "prompt": clock.time["prompt"], "sampling": clock.time["sampling"],
            "prompt_tokens_evaluated": clock.tokens["prompt"],
            "sampled_tokens_evaluated": clock.tokens["sampling"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="GGUF (default: the packaged Gemma 3 270M)")
    ap.add_argument("--prompts", type=int, default=24, help="prompts per (task, strategy) slice")
    ap.add_argument("--tasks", default=None, help="comma-separated (default: every enabled task)")
    ap.add_argument("--strategies", default=None, help="comma-separated (default: params.yaml's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-gpu-layers", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="interleaved rounds; the best time counts")
    ap.add_argument("--segment", type=int, default=None, help="segment tokens (default: params.yaml's)")
    ap.add_argument("--slice", choices=["windows", "groups"], default="windows",
                    help="windows: runs of consecutive prompts of the whole job in the engine's order "
                         "(each costs what it costs in a full run); groups: the first item groups by id")
    ap.add_argument("--windows", type=int, default=2, help="windows per slice (--slice windows)")
    ap.add_argument("--reuse-view", action="store_true",
                    help="only the tokens view of the whole jobs (no model evaluation, seconds)")
    ap.add_argument("--chat-template", default="none", choices=["none", "auto"],
                    help="none (default): both engines see the same raw text, whatever the GGUF")
    ap.add_argument("--run", type=Path, default=None,
                    help="a finished run's folder: its rendered prompts (data/prompts/<culture>/...) are "
                         "benchmarked, every strategy included (default: render from the shipped table)")
    args = ap.parse_args()
    global RUN
    RUN = args.run
    if "CULTEVAL_DATA_MIRROR" not in os.environ:
        sys.exit("set CULTEVAL_DATA_MIRROR to the data mirror (the benchmark renders the real prompts)")
    mirror = Path(os.environ["CULTEVAL_DATA_MIRROR"])
    cfg = normalise_cultures(yaml.safe_load((ROOT / "params.yaml").read_text()))
    cfg = culture_cfg(cfg, culture_keys(cfg)[0])  # the default run's (first) culture
    enabled = [t for t, c in cfg["tasks"].items() if c.get("enabled")]
    task_names = args.tasks.split(",") if args.tasks else enabled
    strategies = args.strategies.split(",") if args.strategies else cfg["strategies"]
    model = args.model or default_model()
    inf = cfg["inference"]
    common = dict(n_ctx=inf["n_ctx"], n_threads=args.threads, n_batch=inf["n_batch"],
                  n_gpu_layers=args.n_gpu_layers, chat_template=args.chat_template)
    segment = args.segment or inf["segment_tokens"]
    global CLOCK
    if args.threads == 1 and not args.n_gpu_layers:
        CLOCK = time.process_time  # one busy thread: its CPU time is what other load cannot inflate
    if args.reuse_view:
        with Engine(model, **common) as eng:
            reuse_view(eng, cfg, mirror, task_names, strategies)
        return
    old_mod = load_baseline()
    new_mod = sys.modules["culteval.engine"]
    old = old_mod.Engine(model, **common)  # its default: prefix_reuse=False, the exact mode
    new = Engine(model, **common, prefix_reuse=inf["prefix_reuse"], segment=segment)
    off = Engine(model, **common, prefix_reuse=False, segment=segment)
    for eng in (old, new, off):
        eng.option_distribution("Warm-up:", ["A", "B"])  # first decode allocates buffers

    print(f"model {model.name}, n_threads={args.threads}, n_gpu_layers={args.n_gpu_layers}, "
          f"segment={segment}, trials={cfg['sampling']['trials']}, chat template {args.chat_template}, "
          f"~{args.prompts} prompts per slice, best of {args.repeats}, "
          f"{'CPU' if CLOCK is time.process_time else 'wall'} time")
    head = (f"{'task/strategy':<30}{'n':>4}{'tokens':>7}{'old s':>7}{'new s':>7}{'old/new':>8}"
            f"{'eval new':>9}{'eval old':>9}{'%prompt':>8}{'%sampl':>7}{'%other':>7}  same")
    print(head)
    totals: dict[str, float] = defaultdict(float)
    all_same = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.slice == "windows":
            slices = window_slices(new, cfg, mirror, task_names, strategies, args.prompts, args.windows)
        else:
            slices = job_slices(cfg, mirror, task_names, strategies, args.prompts)
        for name, strategy, task, df in slices:
            best: dict[str, dict] = {}
            for _ in range(args.repeats):
                for label, eng, mod in (("old", old, old_mod), ("new", new, new_mod), ("off", off, new_mod)):
                    res = run_job(eng, mod, task, df, cfg, tmp / f"{label}.parquet", label == "old")
                    if label not in best or res["wall"] < best[label]["wall"]:
                        best[label] = res
            same = (tmp / "new.parquet").read_bytes() == (tmp / "off.parquet").read_bytes()
            all_same &= same
            result = pd.read_parquet(tmp / "new.parquet").drop_duplicates("prompt_id")
            n_tok = int(result["n_prompt_tokens"].sum())
            o, n = best["old"], best["new"]
            ev_new = n["prompt_tokens_evaluated"] + n["sampled_tokens_evaluated"]
            ev_old = o["prompt_tokens_evaluated"] + o["sampled_tokens_evaluated"]
            other = n["wall"] - n["prompt"] - n["sampling"]
            print(f"{name + '/' + strategy:<30}{len(df):>4}{n_tok:>7}{o['wall']:>7.1f}{n['wall']:>7.1f}"
                  f"{o['wall'] / n['wall']:>7.2f}x{ev_new:>9}{ev_old:>9}"
                  f"{100 * n['prompt'] / n['wall']:>7.0f}%"
                  f"{100 * n['sampling'] / n['wall']:>6.0f}%{100 * other / n['wall']:>6.0f}%  {same}")
            for key, val in (("n", len(df)), ("tokens", n_tok), ("old", o["wall"]), ("new", n["wall"]),
                             ("ev_new", ev_new), ("ev_old", ev_old), ("prompt", n["prompt"]),
                             ("sampling", n["sampling"]), ("old_prompt", o["prompt"]),
                             ("old_sampling", o["sampling"]),
                             ("ev_new_prompt", n["prompt_tokens_evaluated"])):
                totals[key] += val
            scale = df.attrs.get("job_prompts", len(df)) / len(df)  # this slice's job, whole
            totals["old_job"] += o["wall"] * scale
            totals["new_job"] += n["wall"] * scale
    t = totals
    print(f"{'all slices':<30}{int(t['n']):>4}{int(t['tokens']):>7}{t['old']:>7.1f}{t['new']:>7.1f}"
          f"{t['old'] / t['new']:>7.2f}x{int(t['ev_new']):>9}{int(t['ev_old']):>9}"
          f"{100 * t['prompt'] / t['new']:>7.0f}%{100 * t['sampling'] / t['new']:>6.0f}%"
          f"{100 * (t['new'] - t['prompt'] - t['sampling']) / t['new']:>6.0f}%  {all_same}")
    print(f"speed-up, all slices (4efe881 exact / new):     {t['old'] / t['new']:.2f}x")
    print(f"speed-up, whole jobs (each slice x its job's prompts / slice prompts): "
          f"{t['old_job'] / t['new_job']:.2f}x  "
          f"(est. {t['old_job'] / 60:.1f} vs {t['new_job'] / 60:.1f} min; "
          "target >= 1.6x)")
    print(f"speed-up, prompt evaluation:                   {t['old_prompt'] / t['prompt']:.2f}x   "
          f"(prompt tokens evaluated: {int(t['ev_new_prompt'])} of {int(t['tokens'])}, "
          f"{t['ev_new_prompt'] / t['tokens']:.2f})")
    if t["sampling"] > 0:
        print(f"speed-up, sampling:                            {t['old_sampling'] / t['sampling']:.2f}x")
    print(f"raw outputs byte-identical with reuse on and off: {all_same}")
    print(json.dumps({k: round(v, 3) for k, v in t.items()}))
    for eng in (old, new, off):
        eng.close()


if __name__ == "__main__":
    main()
