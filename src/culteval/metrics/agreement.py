"""Logit-generation agreement: do a model's sampled answers say what its answer distribution says?

Logit-based evaluation reads the next-token distribution over the answer labels; the paper's
practice protocol reads sampled answers. The two can disagree (a chat model that starts its reply
with prose, a label the parser cannot read, sampling noise). For every prompt with both a
distribution row and sampled trials (docs/contracts.md "Raw outputs"):

* ``logit_gen_agreement``: the share of its trials whose parsed answer is the argmax of that
  prompt's ``probs`` (first maximum on ties); an invalid answer (``parsed == -1``) disagrees.
* ``logit_gen_tv``: the total-variation distance between the trials' answer frequencies and
  ``probs``, with invalid answers as an extra category the distribution gives no mass:
  ``0.5 * (sum_i |f_i - p_i| + f_invalid)``, in [0, 1].

Per item, the mean over its prompts (answer orders); the row is the mean over items with the
usual bootstrap CI (``n_items`` = items). Both are measured against the distribution at
temperature 1, while trials are sampled at ``params.sampling.temperature``, and with a few
trials per prompt even a faithful sampler has TV > 0: read them as descriptions, not tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from culteval.metrics import distribution_rows, mean_row, sampled_rows


def per_prompt(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per prompt with probs and >= 1 parsed trial: item_id, agreement, tv, trials."""
    cols = ["prompt_id", "item_id", "agreement", "tv", "trials"]
    dist = distribution_rows(raw)
    trials = sampled_rows(raw)
    if dist.empty or trials.empty or trials["parsed"].isna().all():
        return pd.DataFrame(columns=cols)
    probs = {pid: np.asarray(p, float) for pid, p in zip(dist["prompt_id"], dist["probs"], strict=True)
             if p is not None and not (isinstance(p, float) and np.isnan(p))}
    rows = []
    for pid, grp in trials.dropna(subset=["parsed"]).groupby("prompt_id", sort=True):
        p = probs.get(pid)
        if p is None:
            continue
        parsed = grp["parsed"].astype(int).to_numpy()
        if (parsed >= len(p)).any():
            raise ValueError(f"raw outputs: prompt {pid!r} has a parsed answer {int(parsed.max())} "
                             f"outside its {len(p)} options")
        freq = np.bincount(parsed[parsed >= 0], minlength=len(p)) / parsed.size
        invalid = float((parsed < 0).mean())
        rows.append({"prompt_id": pid, "item_id": str(grp["item_id"].iloc[0]),
                     "agreement": float((parsed == int(np.argmax(p))).mean()),
                     "tv": 0.5 * (float(np.abs(freq - p).sum()) + invalid), "trials": int(parsed.size)})
    return pd.DataFrame(rows, columns=cols)


def agreement_metrics(raw: pd.DataFrame, cfg: dict) -> list[dict]:
    """``logit_gen_agreement`` and ``logit_gen_tv`` for one (model, task, strategy) raw table;
    none where the table lacks distributions or parsed sampled answers (BLEnD, opinion tasks
    without sampled trials, baselines)."""
    pp = per_prompt(raw)
    if pp.empty:
        return []
    items = pp.groupby("item_id", sort=True)[["agreement", "tv"]].mean()
    return [mean_row("logit_gen_agreement", items["agreement"].to_numpy(), cfg),
            mean_row("logit_gen_tv", items["tv"].to_numpy(), cfg)]
