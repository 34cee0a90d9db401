"""The run-time table of a finished run, from the pipeline's own Snakemake ``benchmark:`` files.

Every inference job writes ``logs/benchmarks/infer/<culture>/<model>/<task>/<strategy>.tsv`` (wall
seconds ``s``, CPU seconds ``cpu_time``, peak memory ``max_rss`` in MB); its raw outputs say
how much work the job did (prompts, sampled answers, prompt tokens). This prints one line per
(culture, model, task) and the totals, the numbers the README's run-time paragraph quotes.

Usage: ``python benchmarks/run_time.py [RUN_DIR]`` (default: the current directory).
"""

from __future__ import annotations

import sys
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


def main(run: Path) -> None:
    jobs = job_table(run)
    cols = ["wall_s", "cpu_s", "prompts", "sampled", "prompt_tokens"]
    keys = ["culture", "model", "task"]
    per_task = jobs.groupby(keys, sort=True)[cols].sum()
    per_task["max_rss_mb"] = jobs.groupby(keys, sort=True)["max_rss_mb"].max()
    pd.set_option("display.width", 200)
    print(per_task.round(1).to_string())
    per_model = jobs.groupby("model", sort=True)[cols].sum()
    print()
    print(per_model.round(1).to_string())
    total = jobs[cols].sum()
    print(f"\n{len(jobs)} inference jobs: {total['wall_s'] / 60:.1f} min wall, "
          f"{total['cpu_s'] / 60:.1f} min CPU, "
          f"{total['prompts']:,.0f} prompts, {total['prompt_tokens']:,.0f} prompt tokens, "
          f"{total['sampled']:,.0f} sampled answers")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())
