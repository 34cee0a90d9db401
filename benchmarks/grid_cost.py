"""What a grid of models costs on the full mirror set, from the cost model (docs/cluster.md).

The work of one model is the mean, over the models ``workflow/itemsets/costs.csv`` counted
(their tokenizers differ; another model's differs again), of the prompt tokens and sampled
answers of every (task, strategy) job of the full mirror set. Its seconds are the cost
model's ``load_s + per_token_s x tokens + per_answer_s x answers`` per job, with the rates
fitted on the committed calibration run (one CPU thread, the reference machine, the tiny
models) and, when given, with rates measured elsewhere (``--per-token-s``/``--per-answer-s``,
e.g. from ``scripts/gpu-bench.sh`` on a GPU node): an estimate, never a measurement.

Usage: ``python benchmarks/grid_cost.py [--models N] [--per-token-s S --per-answer-s S [--load-s S]]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from culteval import costmodel  # noqa: E402


def grid_work(costs: pd.DataFrame) -> pd.DataFrame:
    """Per (task, strategy) job of one model: prompts, prompt tokens and sampled answers, the mean
    over the counted models."""
    counts = ["prompts", "prompt_tokens", "sampled"]
    per_model = costs.groupby(["model", "task", "strategy"], sort=True)[counts].sum().reset_index()
    return per_model.groupby(["task", "strategy"], sort=True)[counts].mean()


def hours(work: pd.DataFrame, load_s: float, per_token_s: float, per_answer_s: float) -> float:
    """Hours of one model's jobs at the given rates."""
    seconds = (load_s * len(work) + per_token_s * work["prompt_tokens"].sum()
               + per_answer_s * work["sampled"].sum())
    return float(seconds) / 3600


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=12, help="models in the grid (the paper: a dozen)")
    ap.add_argument("--per-token-s", type=float, help="measured seconds per prompt token (e.g. on a GPU)")
    ap.add_argument("--per-answer-s", type=float, help="measured seconds per sampled answer")
    ap.add_argument("--load-s", type=float, default=30.0, help="seconds per job to start and load the model")
    args = ap.parse_args(argv)
    costs = pd.read_csv(costmodel.ITEMSETS / "costs.csv", dtype={"group_id": str})
    calibration = pd.read_csv(costmodel.ITEMSETS / "calibration.csv", comment="#")
    rates = costmodel.fit_rates(calibration, seconds=costmodel.CALIBRATION_SECONDS)
    work = grid_work(costs)
    print(f"one model, full mirror set: {len(work)} jobs, {work['prompts'].sum():,.0f} prompts, "
          f"{work['prompt_tokens'].sum():,.0f} prompt tokens, {work['sampled'].sum():,.0f} sampled answers "
          f"(mean over {', '.join(sorted(costs['model'].unique()))})")
    for r in rates.itertuples(index=False):
        h = hours(work, r.load_s, r.per_token_s, r.per_answer_s)
        print(f"at {r.model}'s calibrated CPU rates ({r.per_token_s:.2e} s/token, "
              f"{r.per_answer_s:.2e} s/answer, one thread): {h:.2f} h per model, "
              f"{args.models * h:.1f} h for {args.models} models")
    if args.per_token_s is None or args.per_answer_s is None:
        print("given rates: none (pass --per-token-s and --per-answer-s measured on the target node, "
              "e.g. with scripts/gpu-bench.sh)")
        return
    h = hours(work, args.load_s, args.per_token_s, args.per_answer_s)
    print(f"at the given rates ({args.per_token_s:.2e} s/token, {args.per_answer_s:.2e} s/answer, "
          f"{args.load_s:.0f} s per job): {h:.2f} h per model, "
          f"{args.models * h:.1f} h for {args.models} models")


if __name__ == "__main__":
    main()
