"""Regenerate the pinned default evaluation set: one file of group ids per task.

Usage: CULTEVAL_DATA_MIRROR=/abs/path/to/mirror python workflow/itemsets/generate.py [VERSION]
Reads the mirror's files with params.yaml's filters (countries, subsets), no item
set and no limit, and writes workflow/itemsets/<task>.txt. Bump VERSION when the
set changes on purpose: results from different versions are not comparable.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path

from culteval import tasks
from culteval.acquire import acquire_dataset
from culteval.config import ROOT, data_mirror, enabled_tasks, load_params
from culteval.io import atomic_path


def pinned(cfg: dict) -> list[str]:
    """The enabled tasks whose params name a pinned evaluation set."""
    return [t for t in enabled_tasks(cfg) if cfg["tasks"][t].get("itemset")]


def default_groups(cfg: dict, raw_root: Path) -> dict[str, list[str]]:
    """Task -> sorted group ids of the default items, ignoring any item set and limit."""
    cfg = copy.deepcopy(cfg)
    out = {}
    for name in pinned(cfg):
        cfg["tasks"][name].update(itemset=None, limit=None)
        items = tasks.get(name).load_items(raw_root, cfg)
        out[name] = sorted(dict.fromkeys(items["group_id"]))
    return out


def main(version: str = "1") -> None:
    cfg = load_params(ROOT / "params.yaml")
    mirror = data_mirror()
    if mirror is None:
        sys.exit("set CULTEVAL_DATA_MIRROR to the offline data mirror")
    with tempfile.TemporaryDirectory() as raw:
        for name, spec in cfg["datasets"].items():
            acquire_dataset(name, spec, Path(raw) / name, mirror)
        groups = default_groups(cfg, Path(raw))
    for name, keys in groups.items():
        header = (f"# culteval pinned evaluation set: {name}, version {version}\n"
                  f"# {len(keys)} groups (questions / stories / map items), one group_id a line;\n"
                  "# the default items of params.yaml on the offline data mirror (workflow/itemsets/README.md)\n")
        with atomic_path(ROOT / "workflow" / "itemsets" / f"{name}.txt") as tmp:
            tmp.write_text(header + "".join(k + "\n" for k in keys), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:])
