"""The run-time table of a finished run, from the pipeline's own Snakemake ``benchmark:`` files.

Every inference job writes ``logs/benchmarks/infer/<culture>/<model>/<task>/<strategy>.tsv`` (wall
seconds ``s``, CPU seconds ``cpu_time``, peak memory ``max_rss`` in MB); its raw outputs say
how much work the job did (prompts, sampled answers, prompt tokens). This prints one line per
(culture, model, task) and the totals, the numbers the README's run-time paragraph quotes.

With ``--csv FILE`` it also writes the job table, the format ``workflow/itemsets/calibration.csv``
is in (the cost model's rates are fitted on it); with ``--plan FILE`` (a ``plan.csv`` of
``workflow/itemsets/generate.py``) it prints each task's predicted seconds (wall seconds of its
jobs, as the cost model predicts them) beside the measured.

Usage: ``python benchmarks/run_time.py [RUN_DIR] [--csv FILE] [--plan FILE]`` (default: the current
directory).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def job_table(run: Path) -> pd.DataFrame:
    """One row per inference job: wall and CPU seconds, peak memory, prompts, answers, tokens."""
    rows = []
    for tsv in sorted((run / "logs" / "benchmarks" / "infer").glob("*/*/*/*.tsv")):
        culture, model, task, strategy = tsv.parts[-4], tsv.parts[-3], tsv.parts[-2], tsv.stem
        bench = pd.read_csv(tsv, sep="\t").iloc[-1]  # the last (only) repeat
        raw_path = run / "results" / "raw" / culture / model / task / f"{strategy}.parquet"
        raw = pd.read_parquet(raw_path, columns=["prompt_id", "trial", "n_prompt_tokens"])
        prompts = raw.drop_duplicates("prompt_id")
        rows.append({"culture": culture, "model": model, "task": task, "strategy": strategy,
                     "wall_s": float(bench["s"]),
                     "cpu_s": float(bench["cpu_time"]), "max_rss_mb": float(bench["max_rss"]),
                     "prompts": len(prompts), "sampled": int((raw["trial"] >= 0).sum()),
                     "prompt_tokens": int(prompts["n_prompt_tokens"].sum())})
    if not rows:
        raise SystemExit(f"{run}: no benchmark files under logs/benchmarks/infer (run the pipeline first)")
    return pd.DataFrame(rows).sort_values(["culture", "model", "task", "strategy"]).reset_index(drop=True)


def main(run: Path, csv: Path | None = None, plan: Path | None = None) -> None:
    jobs = job_table(run)
    cols = ["wall_s", "cpu_s", "prompts", "sampled", "prompt_tokens"]
    keys = ["culture", "model", "task"]
    per_task = jobs.groupby(keys, sort=True)[cols].sum()
    per_task["max_rss_mb"] = jobs.groupby(keys, sort=True)["max_rss_mb"].max()
    if plan is not None:
        predicted = pd.read_csv(plan).groupby(["model", "task"], sort=True)["seconds"].sum()
        per_task["predicted_s"] = [predicted.get((m, t)) for _, m, t in per_task.index]
    pd.set_option("display.width", 200)
    print(per_task.round(1).to_string())
    per_model = jobs.groupby("model", sort=True)[cols].sum()
    print()
    print(per_model.round(1).to_string())
    total = jobs[cols].sum()
    print(f"\n{len(jobs)} inference jobs: {total['wall_s'] / 60:.1f} min wall (sum over jobs), "
          f"{total['cpu_s'] / 60:.1f} min CPU, "
          f"{total['prompts']:,.0f} prompts, {total['prompt_tokens']:,.0f} prompt tokens, "
          f"{total['sampled']:,.0f} sampled answers")
    if plan is not None:
        predicted = per_task['predicted_s'].sum() / 60
        print(f"predicted by the cost model: {predicted:.1f} min wall (sum over jobs)")
    if csv is not None:
        out = jobs.assign(jobs=1)[["model", "task", "strategy", "jobs", "wall_s", "cpu_s", "prompts",
                                   "sampled", "prompt_tokens"]]
        out.to_csv(csv, index=False, float_format="%.1f", lineterminator="\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", type=Path, default=Path.cwd())
    ap.add_argument("--csv", type=Path)
    ap.add_argument("--plan", type=Path)
    args = ap.parse_args()
    main(args.run, args.csv, args.plan)
