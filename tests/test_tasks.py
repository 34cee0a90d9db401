"""Task modules against the real offline mirror: counts, schema, filters, parsers, map indices."""

from __future__ import annotations

import ast
import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import default_params

from culteval import tasks
from culteval.tasks import COLUMNS, cultural_map, culturalbench, global_opinions, normad

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cfg() -> dict:
    """params.yaml without the pinned item sets: these tests read hand-made files too."""
    out = default_params()
    for spec in out["tasks"].values():
        spec["itemset"] = None
    return out


def with_task(cfg: dict, task: str, **changes) -> dict:
    out = json.loads(json.dumps(cfg))
    out["tasks"][task].update(changes)
    return out


def _count_go(mirror: Path) -> tuple[int, int]:
    """Independent count of questions with an India-or-US / India-and-US distribution."""
    df = pd.read_csv(mirror / "global_opinions" / "global_opinions.csv")
    any_n = both_n = 0
    for sel in df["selections"]:
        keys = ast.literal_eval(sel[sel.index("{"):-1]).keys()
        india = any(k.startswith("India") for k in keys)
        us = "United States" in keys
        any_n += india or us
        both_n += india and us
    return any_n, both_n


# --- registry ---------------------------------------------------------------------------------------

def test_registry_is_the_schemas_list_of_tasks():
    # A task module without its name in the schema (or a name without a module) is a half-added task.

    from culteval.config import SCHEMA

    listed = yaml.safe_load(SCHEMA.read_text())["properties"]["tasks"]["propertyNames"]["enum"]
    assert sorted(listed) == tasks.names()
    assert tasks.get("normad") is normad.TASK
    known = "blend, cultural_map, culturalbench, global_opinions, indica, normad"
    with pytest.raises(KeyError, match=f"known tasks: {known}"):
        tasks.get("civiq")


@pytest.fixture
def toy_task(tmp_path, monkeypatch):
    """A task added the documented way: one new module in the tasks package, nothing else edited."""
    pkg = tmp_path / "extra"
    pkg.mkdir()
    (pkg / "toy.py").write_text(
        "from culteval.tasks import Task, parse_answer\n"
        "def load_items(raw_root, cfg):\n    raise NotImplementedError\n"
        "TASK = Task(name='toy', datasets=('toy',), mode='both', load_items=load_items,\n"
        "            parse_answer=parse_answer, metrics='culteval.metrics.accuracy:normad_metrics',\n"
        "            labels='words', params_schema={'flavour': {'enum': ['sweet', 'sour']}})\n")
    monkeypatch.setattr(tasks, "__path__", [*tasks.__path__, str(pkg)])
    monkeypatch.setattr(tasks, "_REGISTRY", {})
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys
    spec = importlib.util.spec_from_file_location("culteval.tasks.toy", pkg / "toy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["culteval.tasks.toy"] = module
    spec.loader.exec_module(module)
    yield module.TASK
    sys.modules.pop("culteval.tasks.toy", None)


def test_a_new_task_module_is_all_the_stages_need(toy_task):
    from culteval import config

    assert tasks.get("toy") is toy_task
    # its own params are validated from its declaration...
    task_params = config.schema()["properties"]["tasks"]["properties"]["toy"]["properties"]
    assert task_params["flavour"] == {"enum": ["sweet", "sour"]} and "limit" in task_params
    # ...its labels drive rendering...
    assert toy_task.answer_labels(["Yes", "No"], "toy/1") == ["Yes", "No"]
    # ...and the metrics stage finds its metric function.
    from culteval.metrics.accuracy import normad_metrics
    assert toy_task.metric_function() is normad_metrics


def test_task_declaration_rejects_unknown_mode_and_labels():
    with pytest.raises(ValueError, match="mode 'logits'"):
        tasks.Task(name="x", datasets=(), mode="logits", load_items=None, parse_answer=None, metrics="m:f")
    with pytest.raises(ValueError, match="labels 'digits'"):
        tasks.Task(name="x", datasets=(), mode="both", load_items=None, parse_answer=None, metrics="m:f",
                   labels="digits")


@pytest.mark.parametrize("module", [cultural_map, global_opinions, culturalbench, normad])
def test_contract_columns_sorted_and_unique(module, mirror, cfg):
    df = module.load_items(mirror, cfg)
    assert list(df.columns) == list(COLUMNS)
    assert df["item_id"].is_unique and df["item_id"].tolist() == sorted(df["item_id"])
    assert (df["task"] == module.NAME).all()
    for row in df.itertuples():
        assert all(isinstance(o, str) for o in row.options)
        assert row.answer is None or row.answer in row.options
        for col in ("distributions", "context", "meta"):
            assert isinstance(json.loads(getattr(row, col)), dict)


# --- global_opinions --------------------------------------------------------------------------------

def test_global_opinions_counts_match_independent_count(mirror, cfg):
    df = global_opinions.load_items(mirror, cfg)
    any_n, both_n = _count_go(mirror)
    assert (any_n, both_n) == (228, 23)
    assert len(df) == any_n
    dists = [json.loads(d) for d in df["distributions"]]
    assert sum("India" in d and "United States" in d for d in dists) == both_n
    assert df["country"].isna().all() and set(df["subset"]) == {"gas", "wvs"}


def test_global_opinions_distributions_renormalised_and_aliases(mirror, cfg):
    df = global_opinions.load_items(mirror, cfg).set_index("item_id")
    for item_id, row in df.iterrows():
        for country, shares in json.loads(row["distributions"]).items():
            assert len(shares) == len(row["options"]), item_id
            assert sum(shares) == pytest.approx(1.0, abs=1e-9), (item_id, country)
    # rows that carry several India samples use the current national sample, as the alias order says
    raw = pd.read_csv(mirror / "global_opinions" / "global_opinions.csv")
    for i, sel in enumerate(raw["selections"]):
        keys = ast.literal_eval(sel[sel.index("{"):-1]).keys()
        if "India (Current national sample)" in keys and "India (Non-national sample)" in keys:
            meta = next(m for m in map(json.loads, df["meta"]) if m["row"] == i)
            assert meta["country_keys"]["India"] == "India (Current national sample)"
            break
    else:
        pytest.fail("mirror has no question with two India samples")


def test_global_opinions_numeric_options_become_strings(mirror, cfg):
    cfg_all = with_task(cfg, "global_opinions", countries=["all"])
    df = global_opinions.load_items(mirror, cfg_all)
    numeric = [o for o in df["options"] if "Not important at all" in o and "Very important" in o]
    assert numeric, "expected the 0-10 importance scales"
    assert list(numeric[0][:3]) == ["Not important at all", "1", "2"]
    assert len(df) > 228  # "all" keeps questions without India/US


def _write_go(tmp_path: Path, rows: list[dict]) -> Path:
    (tmp_path / "global_opinions").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(tmp_path / "global_opinions" / "global_opinions.csv", index=False)
    return tmp_path


def _go_row(selections: str, options="['Yes', 'No']") -> dict:
    return {"question": "Q?", "selections": selections, "options": options, "source": "GAS"}


def test_global_opinions_malformed_selections_name_the_row(tmp_path, cfg):
    good = _go_row("defaultdict(<class 'list'>, {'United States': [1, 3]})")
    bad = _go_row("defaultdict(<class 'list'>, {'United States': [0.5, __import__('os')]})")
    root = _write_go(tmp_path, [good, bad])
    with pytest.raises(ValueError, match="row 1: selections"):
        global_opinions.load_items(root, cfg)


@pytest.mark.parametrize("shares, message", [
    ("[0.5, float('nan')]", "selections"), ("[0.5, nan]", "selections"),
    ("[-0.1, 1.1]", "row 0: United States: NaN or negative"),
    ("[0.5, 0.3, 0.2]", "row 0: United States: 3 shares for 2 options"),
    ("[0.0, 0.0]", "row 0: United States: shares sum to zero"),
])
def test_global_opinions_bad_target_distribution_raises(tmp_path, cfg, shares, message):
    root = _write_go(tmp_path, [_go_row(f"defaultdict(<class 'list'>, {{'United States': {shares}}})")])
    with pytest.raises(ValueError, match=message):
        global_opinions.load_items(root, cfg)


def test_global_opinions_all_mean_skips_bad_country_and_counts_it(tmp_path, cfg):
    sel = ("defaultdict(<class 'list'>, {'United States': [1, 3], 'India (Old national sample)': [1, 1], "
           "'India (Non-national sample)': [0, 1], 'Peru': [0, 0], 'Chile': [1, 0]})")
    root = _write_go(tmp_path, [_go_row(sel)])
    row = global_opinions.load_items(root, cfg).iloc[0]
    dists, meta = json.loads(row["distributions"]), json.loads(row["meta"])
    assert dists["United States"] == [0.25, 0.75]
    assert dists["India"] == [0.5, 0.5]  # Old before Non-national in the alias order
    # mean over US, India (Old), Chile; Non-national India is not a second India; Peru is skipped
    assert dists["__all_mean__"] == pytest.approx([(0.25 + 0.5 + 1) / 3, (0.75 + 0.5) / 3])
    assert (meta["all_mean_n"], meta["all_mean_skipped"]) == (3, 1)
    assert meta["country_keys"] == {"India": "India (Old national sample)", "United States": "United States"}


def test_global_opinions_duplicate_options_raise(tmp_path, cfg):
    sel = "defaultdict(<class 'list'>, {'United States': [1, 1]})"
    root = _write_go(tmp_path, [_go_row(sel, "[1, 1.0]")])
    with pytest.raises(ValueError, match="row 0: duplicate option texts"):
        global_opinions.load_items(root, cfg)


# --- culturalbench ----------------------------------------------------------------------------------

def _csv_rows(path: Path, **where) -> list[dict]:
    """Rows of an upstream CSV matching ``where`` (read with the stdlib, independently of the loaders)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if all(r[k] in v for k, v in where.items())]


def test_culturalbench_both_countries_counts_and_shapes(mirror, cfg):
    """By default CulturalBench asks the target's and the reference's questions, and only those."""
    df = culturalbench.load_items(mirror, cfg)
    easy, hard = df[df["subset"] == "easy"], df[df["subset"] == "hard"]
    both = {"India", "United States"}
    raw_easy = _csv_rows(mirror / "culturalbench" / "CulturalBench-Easy.csv", country=both)
    raw_hard = _csv_rows(mirror / "culturalbench" / "CulturalBench-Hard.csv", country=both)
    assert len(easy) == len(raw_easy) > 0 and (easy["group_id"] == easy["item_id"]).all()
    assert len(hard) == len(raw_hard)
    assert hard["group_id"].nunique() == len({r["question_idx"] for r in raw_hard})
    assert (hard.groupby("group_id").size() == 4).all()
    assert set(df["country"]) == both
    for country in both:
        want = len([r for r in raw_easy if r["country"] == country])
        assert (easy["country"] == country).sum() == want > 0, country
    assert (hard.groupby("group_id")["answer"].apply(lambda s: (s == "True").sum()) == 1).all()
    statements = hard["context"].map(lambda c: json.loads(c)["statement"])
    first = hard[(hard["group_id"] == "culturalbench/hard/0013")
                 & (statements == "Lavish and large weddings")]
    assert len(first) == 1 and list(first["options"].iloc[0]) == ["True", "False"]
    # keyed by the statement and answer text, not the position in the file
    key = tasks.content_id("Lavish and large weddings", first["answer"].iloc[0], length=8)
    assert first["item_id"].iloc[0] == f"culturalbench/hard/0013/{key}"
    assert json.loads(first["meta"].iloc[0])["judgement"] == 0
    e = easy.set_index("item_id").loc["culturalbench/easy/0005"]
    assert e["answer"] == "ii, iii" and json.loads(e["meta"])["answer_letter"] == "C"


def test_culturalbench_all_countries_and_none_option_kept(mirror, cfg):
    cfg_all = with_task(cfg, "culturalbench", countries=["all"], subsets=["easy"])
    df = culturalbench.load_items(mirror, cfg_all)
    assert len(df) == 1227 and df["country"].nunique() == 45
    spain = df.set_index("item_id").loc["culturalbench/easy/0221"]
    assert spain["options"][3] == "None"  # not read as a missing value


def test_culturalbench_limit_counts_hard_questions_per_subset(mirror, cfg):
    df = culturalbench.load_items(mirror, with_task(cfg, "culturalbench", limit=3))
    hard = df[df["subset"] == "hard"]
    assert (df["subset"] == "easy").sum() == 3
    assert hard["group_id"].nunique() == 3 and len(hard) == 12


# --- normad -----------------------------------------------------------------------------------------

def test_normad_counts_and_context(mirror, cfg):
    df = normad.load_items(mirror, cfg)
    raw = _csv_rows(mirror / "normad" / "normad_etiquette_final_data.csv",
                    Country={"india", "India", "united_states_of_america", "United States"})
    assert df["group_id"].nunique() == len(raw) > 0 and len(df) == len(raw) * 4
    assert set(df["subset"]) == {"none", "country", "value", "rot"}
    want = Counter(("India" if r["Country"].lower() == "india" else "United States",
                    {"yes": "Yes", "no": "No", "neutral": "Neither"}[r["Gold Label"].lower()]) for r in raw)
    assert df[df["subset"] == "none"].groupby(["country", "answer"]).size().to_dict() == dict(want)
    row = df.set_index("item_id").loc["normad/0761/rot"]
    ctx = json.loads(row["context"])
    assert ctx["country"] == "India" and ctx["rot"].startswith("Objects should be passed")
    assert set(ctx) == {"country", "value", "rot"} and list(row["options"]) == ["Yes", "No", "Neither"]


def test_normad_limit_never_splits_a_story(mirror, cfg):
    df = normad.load_items(mirror, with_task(cfg, "normad", limit=2, contexts=["none", "rot"]))
    assert df["item_id"].tolist() == ["normad/0761/none", "normad/0761/rot",
                                      "normad/0762/none", "normad/0762/rot"]


def test_normad_missing_columns_named(tmp_path, mirror, cfg):
    (tmp_path / "normad").mkdir()
    raw = pd.read_csv(mirror / "normad" / "normad_etiquette_final_data.csv")
    raw.drop(columns=["Story", "Gold Label"]).to_csv(tmp_path / "normad" / "normad_etiquette_final_data.csv",
                                                    index=False)
    message = r"normad_etiquette_final_data.csv: missing columns \['Story', 'Gold Label'\]"
    with pytest.raises(ValueError, match=message):
        normad.load_items(tmp_path, cfg)


def test_country_filter_rejects_unknown_key(mirror, cfg):
    with pytest.raises(ValueError, match="countries: unknown entry 'india'"):
        normad.load_items(mirror, with_task(cfg, "normad", countries=["india"]))


# --- cultural_map -----------------------------------------------------------------------------------

def test_cultural_map_items(mirror, cfg):
    df = cultural_map.load_items(mirror, cfg).set_index("item_id")
    assert len(df) == 14 and set(df["subset"]) == set(cultural_map.ITEMS)
    f063 = df.loc["cultural_map/F063"]
    assert list(f063["options"]) == ["1 - Not at all important", *map(str, range(2, 10)),
                                     "10 - Very important"]
    assert json.loads(f063["meta"]) == {"wvs_var": "F063", "wvs7_q": "Q164", "codes": list(range(1, 11)),
                                        "codebook_title": "Importance of God",
                                        "question_source": "question_metadata"}
    g006 = df.loc["cultural_map/G006"]
    assert "I am not [nationality]" not in list(g006["options"])
    assert json.loads(g006["meta"])["codes"] == [1, 2, 3, 4]
    assert df.loc["cultural_map/Y002_2", "question"].endswith("And which would be the next most important?")
    assert list(df.loc["cultural_map/Y003_obedience", "options"]) == ["Important", "Not mentioned"]
    assert "Don't know" not in {o for opts in df["options"] for o in opts}


def test_derive_y002_hand_computed():
    # certain first choice "order", certain second "prices": materialist
    assert cultural_map.derive_y002([1, 0, 0, 0], [0, 0, 1, 0]) == 1.0
    assert cultural_map.derive_y002([0, 0, 0, 1], [0, 1, 0, 0]) == 3.0
    assert cultural_map.derive_y002([1, 0, 0, 0], [0, 1, 0, 0]) == 2.0
    # uniform: 12 distinct ordered pairs, 2 -> 1, 2 -> 3, 8 -> 2: expected 2
    assert cultural_map.derive_y002([0.25] * 4, [0.25] * 4) == pytest.approx(2.0)
    # p1 = order; p2 half order (dropped as a same-aim pair), half free speech -> renormalised to free speech
    assert cultural_map.derive_y002([1, 0, 0, 0], [0.5, 0, 0, 0.5]) == 2.0
    # p1 = (0.5 order, 0.5 say); p2 = prices: 0.5*1 + 0.5*2
    assert cultural_map.derive_y002([0.5, 0.5, 0, 0], [0, 0, 1, 0]) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="distinct aims"):
        cultural_map.derive_y002([1, 0, 0, 0], [1, 0, 0, 0])


def test_derive_y003_hand_computed():
    all_mentioned = {"Y003_independence": 1, "Y003_determination": 1, "Y003_religious_faith": 1,
                     "Y003_obedience": 1}
    assert cultural_map.derive_y003(all_mentioned) == 0.0
    autonomy = {"Y003_independence": 1, "Y003_determination": 1, "Y003_religious_faith": 2,
                "Y003_obedience": 2}
    assert cultural_map.derive_y003(autonomy) == 2.0
    tradition = {"Y003_independence": 2, "Y003_determination": 2, "Y003_religious_faith": 1,
                 "Y003_obedience": 1}
    assert cultural_map.derive_y003(tradition) == -2.0
    mixed = {"Y003_independence": 1.8, "Y003_determination": 1.5, "Y003_religious_faith": 1.2,
             "Y003_obedience": 1.1}
    assert cultural_map.derive_y003(mixed) == pytest.approx(-1.0)
    with pytest.raises(KeyError, match="obedience"):
        cultural_map.derive_y003({"Y003_independence": 1, "Y003_determination": 1, "Y003_religious_faith": 1})
    assert set(cultural_map.Y003_PARTS) <= set(cultural_map.ITEMS)


# --- parsers ----------------------------------------------------------------------------------------

ABCD = ["A", "B", "C", "D"]
EASY_OPTS = ["With their hands", "With chopsticks", "With a knife and fork", "With a spoon and fork."]


@pytest.mark.parametrize("text, expected", [
    ("B", 1), (" B.", 1), ("(B)", 1), ("Answer: B", 1), ("answer is C because", 2), ("**D**", 3),
    ("D) With a spoon and fork.", 3), ("With chopsticks", 1), (" with a knife and fork, mostly", 2),
    ("a lot of people", None), ("E", None), ("", None), ("   ", None), ("I don't know", None),
    ("Both", None), ("BA", None),
])
def test_culturalbench_easy_parse(text, expected):
    assert culturalbench.parse_answer(text, ABCD, EASY_OPTS) == expected


@pytest.mark.parametrize("text, letters, shown, expected", [
    ("True", ["True", "False"], ["True", "False"], 0),
    (" false.", ["True", "False"], ["True", "False"], 1),
    ("Answer: False", ["False", "True"], ["False", "True"], 0),  # permuted order: shown index
    ("B", ["A", "B"], ["True", "False"], 1),
    ("The statement is true", ["A", "B"], ["True", "False"], 0),
    ("सही", ["सही", "गलत"], ["सही", "गलत"], 0),
    ("यह गलत है", ["सही", "गलत"], ["सही", "गलत"], 1),
    ("False", ["सही", "गलत"], ["सही", "गलत"], 1),  # English reply to a Hindi prompt
    ("untrue", ["True", "False"], ["True", "False"], None),
    ("Maybe", ["True", "False"], ["True", "False"], None),
])
def test_culturalbench_hard_parse(text, letters, shown, expected):
    assert culturalbench.parse_answer(text, letters, shown) == expected


YNN = ["Yes", "No", "Neither"]
HI = ["हाँ", "नहीं", "दोनों में से कोई नहीं"]


@pytest.mark.parametrize("text, letters, shown, expected", [
    ("Yes", YNN, YNN, 0), (" no, it is rude", YNN, YNN, 1), ("NEITHER", YNN, YNN, 2),
    ("2) No", YNN, YNN, 1), ("3", YNN, YNN, 2), ("Nobody would mind. Yes", YNN, YNN, 0),
    ("Neither yes nor no", YNN, YNN, 2), ("Yes", ["Neither", "Yes", "No"], ["Neither", "Yes", "No"], 1),
    ("दोनों में से कोई नहीं", HI, HI, 2), ("नहीं, यह अशिष्ट है", HI, HI, 1), ("yes", HI, HI, 0),
    ("The answer is unclear", YNN, YNN, None), ("", YNN, YNN, None), ("12 people", YNN, YNN, None),
])
def test_normad_parse(text, letters, shown, expected):
    assert normad.parse_answer(text, letters, shown) == expected


@pytest.mark.parametrize("text, expected", [
    ("A", 0), ("(C", 2), ("Quite a lot", 1), ("K", None), ("nothing", None),
])
def test_generic_parse(text, expected):
    opts = ["A great deal", "Quite a lot", "Not very much"]
    assert global_opinions.parse_answer(text, ["A", "B", "C"], opts) == expected
    assert cultural_map.parse_answer(text, ["A", "B", "C"], opts) == expected


def test_mirror_layout_used_as_raw_root(tmp_path, mirror, cfg):
    # a raw_root holding just this task's dataset folder is enough
    shutil.copytree(mirror / "wvs7", tmp_path / "wvs7")
    assert len(cultural_map.load_items(tmp_path, cfg)) == 14


def test_items_round_trip_through_parquet_deterministically(tmp_path, mirror, cfg):
    from culteval.io import read_parquet, sha256_file, write_parquet

    first = normad.load_items(mirror, with_task(cfg, "normad", limit=3))
    write_parquet(first, tmp_path / "a.parquet")
    write_parquet(normad.load_items(mirror, with_task(cfg, "normad", limit=3)), tmp_path / "b.parquet")
    assert sha256_file(tmp_path / "a.parquet") == sha256_file(tmp_path / "b.parquet")
    back = read_parquet(tmp_path / "a.parquet")
    assert back["item_id"].tolist() == first["item_id"].tolist() and len(back) == 12
    assert list(back.loc[0, "options"]) == ["Yes", "No", "Neither"]
    go = global_opinions.load_items(mirror, cfg)
    write_parquet(go, tmp_path / "go.parquet")
    assert read_parquet(tmp_path / "go.parquet")["country"].isna().all()
