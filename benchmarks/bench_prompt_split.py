"""Option mass of each model per task x strategy: how well the prompt elicits an answer label.

Prints, per model and cell, the mean option mass (probability on the labels before
renormalising) and low_mass_share (share of prompts with mass < params metrics.low_mass).
``--whole-user`` also scores chat models the old way (whole prompt text in the user
turn, labels' first tokens only) for comparison. Not a test: a measurement.

    python benchmarks/bench_prompt_split.py --items 10 [--models gemma-3-270m smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from culteval import config, prompts, tasks, translate
from culteval.acquire import resolve_model_file
from culteval.engine import Engine
from culteval.engine.scoring import _split_of

TASKS = ["global_opinions", "cultural_map", "culturalbench", "normad"]


def cell_prompts(cfg: dict, mirror: Path, n_items: int, task_names: list[str], strategies: list[str],
                 ) -> dict[tuple[str, str], pd.DataFrame]:
    table = translate.load_table(config.ROOT / cfg["translation"]["table"], cfg["target"]["language"])
    out = {}
    for task in task_names:
        items = tasks.get(task).load_items(mirror, cfg)
        # spread the sample over subsets (CulturalBench easy/hard, NormAd contexts)
        if items["subset"].nunique() <= 4:  # round-robin over subsets
            items = items.assign(_k=items.groupby("subset").cumcount()).sort_values(
                ["_k", "item_id"], kind="stable").drop(columns="_k")
        items = items.head(n_items)
        strings = translate.strings_to_translate(items, cfg)
        gl = translate.glossary_path(cfg)
        tr = {**(translate.load_table(gl, cfg["target"]["language"]) if gl.is_file() else {}), **table}
        tr.update({s: s for s in strings if s not in tr and not translate.has_letters(s)})
        for strategy in strategies:
            try:
                translated = strategy in config.TRANSLATED_STRATEGIES
                out[task, strategy] = prompts.render(
                    items, strategy, cfg, translations=tr if translated else None, mode="distribution")
            except translate.MissingTranslation as exc:  # keep only items the table covers
                keep = [i for i, row in items.iterrows()
                        if not set(translate.item_strings(row_tuple(row))) & set(exc.missing)]
                out[task, strategy] = prompts.render(
                    items.loc[keep], strategy, cfg, translations=tr, mode="distribution")
    return out


def row_tuple(row: pd.Series):
    return next(pd.DataFrame([row]).itertuples(index=False))


def masses(engine: Engine, df: pd.DataFrame, whole_user: bool) -> np.ndarray:
    out = []
    for p in df.itertuples(index=False):
        if whole_user:
            tokens = engine.encode(p.text, p.prompt_id)
            spellings, prefix = [[x] for x in p.labels], ""
        else:
            s = _split_of(p)
            tokens = engine.encode_parts(p.text, s["user"], s["answer_prefix"], s["system"], p.prompt_id)
            spellings, prefix = s["label_spellings"], s["answer_prefix"]
        out.append(engine.distribution_from_tokens(tokens, list(p.labels), spellings=spellings,
                                                   answer_prefix=prefix)[1])
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=10, help="items per task (all permutations of each)")
    ap.add_argument("--models", nargs="+", default=None)
    ap.add_argument("--whole-user", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tasks", nargs="+", default=TASKS)
    ap.add_argument("--strategies", nargs="+", default=list(config.STRATEGIES))
    args = ap.parse_args()
    cfg = config.load_params()
    cfg = config.culture_cfg(cfg, config.culture_keys(cfg)[0])  # the default (first) culture's view
    mirror = Path(os.environ["CULTEVAL_DATA_MIRROR"])
    cells = cell_prompts(cfg, mirror, args.items, args.tasks, args.strategies)
    low = cfg["metrics"]["low_mass"]
    rows = []
    for name in args.models or list(cfg["models"]):
        spec = cfg["models"][name]
        engine = Engine(resolve_model_file(name, spec), n_ctx=cfg["inference"]["n_ctx"],
                        n_threads=args.threads, chat_template=spec.get("chat_template", "auto"))
        modes = [False, True] if args.whole_user and engine.is_chat else [False]
        for whole in modes:
            for (task, strategy), df in cells.items():
                m = masses(engine, df, whole)
                rows.append({"model": name + (" (whole prompt in user turn)" if whole else ""), "task": task,
                             "strategy": strategy, "n": len(m), "mean_mass": round(float(m.mean()), 3),
                             "low_mass_share": round(float((m < low).mean()), 3)})
                print(*rows[-1].values(), sep="\t", file=sys.stderr, flush=True)  # progress
        engine.close()
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()
