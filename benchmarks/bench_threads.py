"""Threads per job or jobs in parallel: which does more inference per second on this machine?

Runs the same inference jobs (``culteval infer``, as the pipeline runs them) twice over a
finished run's rendered prompts: one after another with ``--threads N`` each (N = the cores),
then all at once with ``--threads 1`` each, and prints both wall times, their ratio and whether
the outputs are byte-identical (the thread count is not part of an artifact's content).

Usage: ``python benchmarks/bench_threads.py --run RUN_DIR [--prompts 150]
[--job gemma-3-270m/global_opinions/default --job gemma-3-270m/global_opinions/cross_lingual]``
(one job per core; each job's first ``--prompts`` prompts).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from culteval import io  # noqa: E402

DEFAULT_JOBS = ("gemma-3-270m/global_opinions/default", "gemma-3-270m/global_opinions/cross_lingual")


def infer(run: Path, culture: str, job: str, prompts: Path, out: Path, threads: int,
          python: str = sys.executable) -> subprocess.Popen:
    """``culteval infer`` on one job, started under ``python`` (this interpreter by default)."""
    model, task, _ = job.split("/")
    cmd = [python, "-m", "culteval.cli", "infer", "--culture", culture,
           "--model-json", str(run / "data" / "models" / f"{model}.json"), "--task", task,
           "--prompts", str(prompts), "--threads", str(threads), "--out", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)


def first_prompts(run: Path, culture: str, job: str, n: int, tmp: Path) -> Path:
    """The first ``n`` rendered prompts of ``job`` (model/task/strategy), copied under ``tmp``."""
    _, task, strategy = job.split("/")
    src = run / "data" / "prompts" / culture / task / f"{strategy}.parquet"
    dst = tmp / job.replace("/", "-") / "prompts.parquet"
    dst.parent.mkdir(parents=True)
    io.write_parquet(io.read_parquet(src).head(n), dst, io.read_provenance(src))
    return dst


def wait(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"{' '.join(p.args)} failed:\n{err[-3000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a finished (or partial) run folder")
    ap.add_argument("--culture", default="hi")
    ap.add_argument("--job", action="append", help="model/task/strategy (repeatable)")
    ap.add_argument("--prompts", type=int, default=150, help="first N prompts of each job")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="threads per job, sequential")
    args = ap.parse_args()
    jobs = args.job or list(DEFAULT_JOBS)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = {}
        for job in jobs:
            inputs[job] = first_prompts(args.run, args.culture, job, args.prompts, tmp)
        t = time.perf_counter()
        for job in jobs:
            wait([infer(args.run, args.culture, job, inputs[job], inputs[job].with_name("seq.parquet"),
                        args.threads)])
        sequential = time.perf_counter() - t
        t = time.perf_counter()
        wait([infer(args.run, args.culture, job, inputs[job], inputs[job].with_name("par.parquet"), 1)
              for job in jobs])
        parallel = time.perf_counter() - t
        same = all(inputs[j].with_name("seq.parquet").read_bytes() == inputs[j].with_name("par.parquet")
                   .read_bytes() for j in jobs)
    print(f"jobs: {', '.join(jobs)} (first {args.prompts} prompts each)")
    print(f"one after another, {args.threads} threads each: {sequential:7.1f} s")
    print(f"all at once, 1 thread each:{'':14}{parallel:7.1f} s")
    print(f"speed-up of jobs in parallel: {sequential / parallel:.2f}x; outputs byte-identical: {same}")


if __name__ == "__main__":
    main()
