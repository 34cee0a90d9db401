"""Item ids by content and the pinned default evaluation set (workflow/itemsets)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from culteval import tasks
from culteval.acquire import acquire_dataset
from culteval.config import ROOT, enabled_tasks, load_params

DATASETS = ("global_opinions", "culturalbench", "normad", "ivs_map", "wvs7", "blend", "indica")


@pytest.fixture(scope="module")
def cfg() -> dict:
    return load_params(ROOT / "params.yaml")


def pinned(cfg: dict) -> list[str]:
    """The enabled tasks whose params name a pinned evaluation set."""
    return [t for t in enabled_tasks(cfg) if cfg["tasks"][t].get("itemset")]


def _generator():
    spec = importlib.util.spec_from_file_location("itemsets_generate", ROOT / "workflow/itemsets/generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _copy_raw(mirror: Path, dest: Path, *names: str) -> Path:
    for name in names:
        shutil.copytree(mirror / name, dest / name)
    return dest


def _no_itemset(cfg: dict) -> dict:
    out = json.loads(json.dumps(cfg))
    for name in pinned(cfg):
        out["tasks"][name]["itemset"] = None
    return out


def test_committed_full_sets_are_the_mirrors_default_items(mirror, cfg):
    items = _generator().full_groups(cfg, mirror)
    for name, df in items.items():
        listed = tasks.read_itemset(ROOT / "workflow" / "itemsets" / "mirror" / f"{name}.txt")
        assert listed == sorted(dict.fromkeys(df["group_id"])), name
    assert items["global_opinions"]["group_id"].nunique() == 228
    assert items["normad"]["group_id"].nunique() == 71
    per_country = items["blend"].groupby("country")["group_id"].nunique().to_dict()
    assert per_country == {"India": 50, "United States": 50}


def _reload_rewritten(mirror, cfg, tmp_path, task: str, file: str, rows: slice):
    """Items before and after keeping ``rows`` of an upstream file (in a copy of the raw data)."""
    cfg = _no_itemset(cfg)
    full = tasks.get(task).load_items(mirror, cfg)
    raw = _copy_raw(mirror, tmp_path, task)
    df = pd.read_csv(raw / task / file, dtype=str, keep_default_na=False)
    df.iloc[rows].to_csv(raw / task / file, index=False)
    return full, tasks.get(task).load_items(raw, cfg)


def test_global_opinions_ids_survive_subsetting_and_reordering(mirror, cfg, tmp_path):
    # every other row, in reverse: other row numbers
    full, part = _reload_rewritten(mirror, cfg, tmp_path, "global_opinions", "global_opinions.csv",
                                   slice(None, None, -2))
    assert 0 < len(part) < len(full)
    by_question = dict(zip(full["question"], full["item_id"], strict=True))
    assert all(by_question[q] == i for q, i in zip(part["question"], part["item_id"], strict=True))


def test_culturalbench_hard_ids_survive_reordering(mirror, cfg, tmp_path):
    full, shuffled = _reload_rewritten(mirror, cfg, tmp_path, "culturalbench", "CulturalBench-Hard.csv",
                                       slice(None, None, -1))
    def key(d):
        return dict(zip(d["item_id"], zip(d["context"], d["answer"], strict=True), strict=True))
    assert key(shuffled) == key(full)


def test_missing_pinned_item_names_task_and_key(mirror, cfg, tmp_path):
    raw = _copy_raw(mirror, tmp_path, "normad")
    path = raw / "normad" / "normad_etiquette_final_data.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    gone = f"normad/{int(df['ID'].iloc[0]):04d}"
    df.iloc[1:].to_csv(path, index=False)
    with pytest.raises(ValueError, match=f"task normad: 1 item.*{gone}"):
        tasks.get("normad").load_items(raw, cfg)


def test_itemset_selects_then_limit_applies(mirror, cfg, tmp_path):
    pinned = tasks.read_itemset(ROOT / "workflow" / "itemsets" / "mirror" / "normad.txt")
    chosen = [pinned[5], pinned[9], pinned[40]]
    (tmp_path / "set.txt").write_text("# three stories\n" + "\n".join(reversed(chosen)) + "\n")
    c = json.loads(json.dumps(cfg))
    c["tasks"]["normad"].update(itemset=str(tmp_path / "set.txt"), limit=2)
    assert list(dict.fromkeys(tasks.get("normad").load_items(mirror, c)["group_id"])) == chosen[:2]


def test_default_items_same_from_mirror_and_server(mirror, cfg, upstream, tmp_path, monkeypatch):
    """The default evaluation set has the same item ids over HTTP as from the mirror."""
    monkeypatch.setenv("CULTEVAL_SOURCES_LOCK", str(tmp_path / "sources.lock.yaml"))
    from upstream_server import serve_mirror

    serve_mirror(upstream, cfg, mirror)
    for name in DATASETS:
        acquire_dataset(name, cfg["datasets"][name], tmp_path / "http" / name, None)
        acquire_dataset(name, cfg["datasets"][name], tmp_path / "mirror" / name, mirror)
    for name in pinned(cfg):
        via_http = tasks.get(name).load_items(tmp_path / "http", cfg)["item_id"].tolist()
        via_mirror = tasks.get(name).load_items(tmp_path / "mirror", cfg)["item_id"].tolist()
        assert via_http == via_mirror and via_http, name
    assert all(path for path, _ in upstream.requests), "every dataset file came over HTTP"
