"""Regenerate the Rystrom overlay's per-culture GlobalOpinionQA item sets.

Usage: CULTEVAL_DATA_MIRROR=/abs/path/to/mirror python workflow/itemsets/rystrom/generate.py
Each set is every question with a distribution for the culture's country in the mirror
(params.tasks.global_opinions.countries: [target], no item set, no limit); see
workflow/overlays/rystrom.yaml for why these countries.
"""

from __future__ import annotations

import copy
import json
import sys

from culteval import tasks
from culteval.config import ROOT, data_mirror, load_params
from culteval.io import write_text

CULTURES = (("Denmark", "da"), ("Netherlands", "nl"), ("Brazil", "pt"))


def main() -> None:
    cfg = load_params(ROOT / "params.yaml")
    mirror = data_mirror()
    if mirror is None:
        sys.exit("set CULTEVAL_DATA_MIRROR to the offline data mirror")
    for country, lang in CULTURES:
        c = copy.deepcopy(cfg)
        c["target"] = {**c["target"], "country": country, "language": lang}
        c["tasks"]["global_opinions"].update(itemset=None, limit=None, countries=["target"])
        items = tasks.get("global_opinions").load_items(mirror, c)
        keys = sorted(dict.fromkeys(items["group_id"]))
        us = sum("United States" in json.loads(d) for d in items["distributions"])
        header = (f"# culteval pinned evaluation set: global_opinions for {country} ({lang}), version 1\n"
                  f"# {len(keys)} questions: every GlobalOpinionQA question with a {country} distribution in the\n"
                  f"# offline data mirror (all national samples); {us} of them also carry a United States one.\n"
                  "# Generated with params.tasks.global_opinions.countries: [target], no item set, no limit\n"
                  "# (workflow/overlays/rystrom.yaml says why these questions).\n")
        write_text(header + "".join(k + "\n" for k in keys),
                   ROOT / "workflow" / "itemsets" / "rystrom" / f"{lang}.global_opinions.txt")


if __name__ == "__main__":
    main()
