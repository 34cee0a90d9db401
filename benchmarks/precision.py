"""What a run's item counts buy: the typical 95% CI half-width of each headline metric family.

Read from a finished run's ``summary.csv`` (rows of evaluated models, every strategy): the
median half-width ``(ci_high - ci_low) / 2`` and the median number of items behind it. The
projection to the full mirror set scales the half-width by ``sqrt(n / N)``, N = n times the
ratio of the family's groups in the full mirror set (``workflow/itemsets/mirror/``) to those of
the run's set (``workflow/itemsets/``; CAD and nCAD count only the questions with both
countries' distributions, all of which the default set keeps): the usual 1/sqrt(n) of a mean
over independent items, an estimate, not a measurement.

Usage: ``python benchmarks/precision.py [SUMMARY]`` (default: results/metrics/summary.csv).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from culteval.tasks import read_itemset  # noqa: E402

FAMILIES = {  # task -> (family name, metrics pooled in it)
    "global_opinions": [("similarity 1 - JSD", ("sim_target", "sim_reference")),
                        ("CAD", ("cad",), ("both",)), ("nCAD", ("ncad",), ("both",))],
    "culturalbench": [("Easy accuracy, sampled", ("acc_sampled",)),
                      ("Hard question accuracy, sampled", ("acc_question_sampled",)),
                      ("Hard judgement accuracy, sampled", ("acc_judgement_sampled",))],
    "normad": [("accuracy per context, sampled", tuple(f"acc_sampled_{c}" for c in
                                                       ("none", "country", "value", "rot")))],
    "blend": [("share of matching answers, per country", ("acc_sampled_target", "acc_sampled_reference"))],
}


def group_ratio(task: str, strata: tuple[str, ...] | None = None) -> float:
    """Groups of the full mirror set over those of the default set (within ``strata``)."""
    here = ROOT / "workflow" / "itemsets"
    costs = pd.read_csv(here / "costs.csv", dtype={"group_id": str})
    costs = costs[(costs["task"] == task) & (costs["stratum"].isin(strata) if strata else True)]
    full = set(costs["group_id"])
    return len(full) / len(full & set(read_itemset(here / f"{task}.txt")))


def table(summary: pd.DataFrame) -> pd.DataFrame:
    rows = summary[summary["ci_low"].notna() & ~summary["model"].str.contains(":")]
    out = []
    for task, families in FAMILIES.items():
        for name, metrics, *strata in families:
            part = rows[(rows["task"] == task) & rows["metric"].isin(metrics)]
            if part.empty:
                continue
            hw = ((part["ci_high"] - part["ci_low"]) / 2).median()
            n = part["n_items"].median()
            ratio = group_ratio(task, strata[0] if strata else None)
            out.append({"task": task, "family": name, "rows": len(part), "n_items": n,
                        "half_width": hw, "full_n_items": n * ratio, "full_half_width": hw / ratio ** 0.5})
    return pd.DataFrame(out)


def main(path: Path) -> None:
    df = table(pd.read_csv(path))
    pd.set_option("display.width", 200)
    print(f"# median 95% CI half-width per metric family of {path} (models x strategies);")
    print("# full_*: projected to the full mirror set by 1/sqrt(n) (benchmarks/precision.py)")
    print(df.to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "results" / "metrics" / "summary.csv")
