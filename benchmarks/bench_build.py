"""Two llama.cpp builds on the same inference jobs: how much faster, and how far apart the numbers.

Runs the same jobs (``culteval infer``, as the pipeline runs them, 1 thread) over a run's
rendered prompts once per Python environment, each with its own llama-cpp-python build (for
example the install script's flags before and after a change), and prints each job's CPU time,
the ratio, and how the outputs compare: byte-identical, else the largest difference in an
option probability and the share of sampled answers that parse differently. Builds with other
SIMD kernels may round differently; such differences are what ``culteval verify``'s tolerances
must absorb. The clock is the children's CPU time, which
other load on a shared machine inflates far less than wall time.

Usage: ``python benchmarks/bench_build.py --run RUN_DIR --python A/bin/python --python B/bin/python
[--prompts 120] [--job smollm2-135m-instruct/normad/native ...]`` (A is the baseline).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_threads import first_prompts, infer, wait  # noqa: E402

from culteval import io  # noqa: E402

DEFAULT_JOBS = ("gemma-3-270m/normad/cross_lingual", "smollm2-135m-instruct/normad/native",
                "gemma-3-270m/global_opinions/default", "smollm2-135m-instruct/culturalbench/default")


def cpu_of_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cpu_seconds(python: str, run: Path, culture: str, job: str, prompts: Path, out: Path) -> float:
    """CPU seconds of one ``culteval infer`` job (1 thread) under ``python``."""
    before = cpu_of_children()
    wait([infer(run, culture, job, prompts, out, 1, python)])
    return cpu_of_children() - before


def compare(a: Path, b: Path) -> str:
    if a.read_bytes() == b.read_bytes():
        return "byte-identical"
    ra, rb = io.read_parquet(a), io.read_parquet(b)
    key = ["prompt_id", "trial"]
    m = ra.merge(rb, on=key, suffixes=("_a", "_b"), validate="one_to_one")
    dist = m[m["trial"] == -1]
    dp = max((float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
              for x, y in zip(dist["probs_a"], dist["probs_b"], strict=True)), default=0.0)
    sampled = m[m["trial"] >= 0]
    parsed = (sampled["parsed_a"].fillna(-9) != sampled["parsed_b"].fillna(-9)).mean() if len(sampled) else 0
    return f"max |dprob| {dp:.2e}, sampled answers parsed differently {parsed:.1%} of {len(sampled)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a run folder with data/prompts and data/models")
    ap.add_argument("--python", action="append", required=True, help="interpreter of a build (twice)")
    ap.add_argument("--culture", default="hi")
    ap.add_argument("--job", action="append", help="model/task/strategy (repeatable)")
    ap.add_argument("--prompts", type=int, default=120, help="first N prompts of each job")
    args = ap.parse_args()
    if len(args.python) != 2:
        raise SystemExit("give --python twice: the baseline build's interpreter, then the other's")
    jobs = args.job or list(DEFAULT_JOBS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for job in jobs:
            prompts = first_prompts(args.run, args.culture, job, args.prompts, tmp)
            outs = [prompts.with_name(f"{i}.parquet") for i in range(2)]
            cpu = [cpu_seconds(py, args.run, args.culture, job, prompts, out)
                   for py, out in zip(args.python, outs, strict=True)]
            rows.append({"job": job, "prompts": args.prompts, "cpu_a_s": round(cpu[0], 1),
                         "cpu_b_s": round(cpu[1], 1), "a/b": round(cpu[0] / cpu[1], 2),
                         "outputs": compare(*outs)})
    table = pd.DataFrame(rows)
    print(f"A: {args.python[0]}\nB: {args.python[1]}")
    print(table.to_string(index=False))
    a, b = table["cpu_a_s"].sum(), table["cpu_b_s"].sum()
    print(f"all jobs: A {a:.1f} s, B {b:.1f} s CPU, A/B {a / b:.2f}x")


if __name__ == "__main__":
    main()
