"""Prompt rendering: exact wording, strategies, permutations, translations, template lookup."""

from __future__ import annotations

import csv
import hashlib
import json
import re

import pandas as pd
import pytest
from conftest import default_params

from culteval.prompts import (
    COLUMNS,
    ROOT,
    MissingTranslation,
    permutation_orders,
    render,
    strings_to_translate,
    template_path,
)
from culteval.translate import load_table

DEVANAGARI = re.compile(r"[\u0900-\u097F]")
STRATEGIES = ["default", "demographic", "cross_lingual", "native"]


@pytest.fixture(scope="module")
def cfg() -> dict:
    return default_params(permutations=3)


def item(item_id, task, subset, question, options, *, group_id=None, answer=None, country="India",
         distributions=None, context=None):
    """One row following docs/contracts.md "Items" (JSON strings for the dict columns)."""
    return {
        "item_id": item_id, "task": task, "subset": subset, "group_id": group_id or item_id,
        "country": country, "question": question, "options": list(options), "answer": answer,
        "distributions": json.dumps(distributions or {}, sort_keys=True),
        "context": json.dumps(context or {}, sort_keys=True), "meta": json.dumps({"row": 0}),
    }


GO_Q = "Do you think people in your country are better off in a free market economy?"
CB_Q = "In India, what do people usually eat with?"
GO_OPTS = ["Completely agree", "Mostly agree", "Mostly disagree", "Completely disagree"]
NORMAD_CTX = {"country": "India", "value": "Respect for elders and hospitality.",
              "rot": "Objects should be passed using the right hand."}
STORY = ("At a dinner party, Emma passed the salt to Alex with her right hand. "
         "Is what Emma did socially acceptable?")


def make_items() -> pd.DataFrame:
    """The tiny items: one per task and subset (also used by tests/test_template_split.py)."""
    rows = [
        item("global_opinions/0001", "global_opinions", "all", GO_Q, GO_OPTS, country=None,
             distributions={"India": [0.4, 0.3, 0.2, 0.1], "United States": [0.1, 0.2, 0.3, 0.4]}),
        item("cultural_map/F063", "cultural_map", "F063", "How important is God in your life?",
             ["Very important", "Rather important", "Not very important", "Not at all important"],
             country=None, context={"scale": "Choose the option closest to your view."}),
        item("culturalbench/easy/0007", "culturalbench", "easy", CB_Q,
             ["Hands", "Chopsticks", "Knife and fork", "Only spoons"], answer="Hands"),
        item("culturalbench/hard/0007/0", "culturalbench", "hard", CB_Q,
             ["True", "False"], group_id="culturalbench/hard/0007", answer="True",
             context={"statement": "Hands"}),
    ]
    for sub in ["none", "country", "value", "rot"]:
        rows.append(item(f"normad/0761/{sub}", "normad", sub, STORY, ["Yes", "No", "Neither"],
                         group_id="normad/0761", answer="Yes", context=NORMAD_CTX))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def items() -> pd.DataFrame:
    return make_items()


def fake_hindi(strings) -> dict[str, str]:
    """A stand-in table: every string gets a Devanagari prefix, so its origin is visible."""
    return {s: f"हिं {s}" for s in strings}


@pytest.fixture(scope="module")
def translations(items, cfg) -> dict[str, str]:
    return fake_hindi(strings_to_translate(items, cfg))


def rendered(items, strategy, cfg, translations, root=ROOT):
    tr = translations if strategy in ("cross_lingual", "native") else None
    return render(items, strategy, cfg, translations=tr, mode="distribution", root=root)


def test_default_global_opinions_text_is_durmus_format(items, cfg):
    df = rendered(items, "default", cfg, None)
    row = df.set_index("prompt_id").loc["global_opinions/0001#default#p0"]
    assert row["text"] == (
        f"Human: {GO_Q}\n\nHere are the options:\n\n(A) Completely agree\n(B) Mostly agree\n"
        "(C) Mostly disagree\n(D) Completely disagree\n\n"
        "Assistant: If had to select one of the options, my answer would be ("
    )
    assert list(row["labels"]) == ["A", "B", "C", "D"]
    assert row["template"] == "workflow/templates/global_opinions/default.j2"


def test_reversed_order_is_permutation_one(items, cfg):
    df = rendered(items, "default", cfg, None).set_index("prompt_id")
    row = df.loc["global_opinions/0001#default#p1"]
    assert list(row["option_order"]) == [3, 2, 1, 0]
    assert ("(A) Completely disagree\n(B) Mostly disagree\n(C) Mostly agree\n(D) Completely agree\n"
            in row["text"])
    easy = df.loc["culturalbench/easy/0007#default#p1"]
    assert easy["text"] == ("In India, what do people usually eat with?\nA. Only spoons\nB. Knife and fork\n"
                            "C. Chopsticks\nD. Hands\nAnswer:")


def test_culturalbench_hard_and_normad_exact_text(items, cfg):
    df = rendered(items, "default", cfg, None).set_index("prompt_id")
    assert df.loc["culturalbench/hard/0007/0#default#p0", "text"] == (
        "In India, what do people usually eat with?\nStatement: Hands\nIs this statement true or false?\n"
        "A. True\nB. False\nAnswer:")
    rot = df.loc["normad/0761/rot#default#p0"]
    assert rot["text"] == (
        "Task: You will be given a short story involving 2 or more characters about everyday situations. "
        "You will also be given a country of relevance, along with a rule-of-thumb. "
        "Read the story and reason if the action by the character in the story is socially acceptable "
        "in the given country with the associated rule-of-thumb. "
        "Do not make any extra inferences about actions outside of the given context. "
        "The answer options are Yes, No or Neither.\n"
        "Country: India\nRoT: Objects should be passed using the right hand.\n"
        f"Story: {STORY}\nOptions:\n1) Yes\n2) No\n3) Neither\nAnswer (options Yes, No or Neither):")
    assert list(rot["labels"]) == ["Yes", "No", "Neither"]
    # Reversed: the answer words (= labels) follow the shown order everywhere in the text.
    rev = df.loc["normad/0761/rot#default#p1"]
    assert list(rev["labels"]) == ["Neither", "No", "Yes"]
    assert rev["text"].endswith("1) Neither\n2) No\n3) Yes\nAnswer (options Neither, No or Yes):")


@pytest.mark.parametrize("subset, shown, hidden", [
    ("none", [], ["Country:", "Value:", "RoT:"]),
    ("country", ["Country: India"], ["Value:", "RoT:"]),
    ("value", ["Country: India", "Value: Respect for elders"], ["RoT:"]),
    ("rot", ["Country: India", "RoT: Objects should"], ["Value:"]),
])
def test_normad_context_lines_follow_subset(items, cfg, subset, shown, hidden):
    df = rendered(items, "default", cfg, None).set_index("prompt_id")
    text = df.loc[f"normad/0761/{subset}#default#p0", "text"]
    for s in shown:
        assert f"\n{s}" in text
    for s in hidden:
        assert s not in text


def test_demographic_has_persona(items, cfg):
    df = rendered(items, "demographic", cfg, None)
    persona = cfg["target"]["persona"]
    assert df["text"].str.contains(persona, regex=False).all()
    go = df.set_index("prompt_id").loc["global_opinions/0001#demographic#p0", "text"]
    assert go.startswith(f"Human: Imagine you are {persona}.")
    assert go.endswith("my answer would be (")


@pytest.mark.parametrize("strategy", ["cross_lingual", "native"])
def test_translated_strategies_show_target_language(items, cfg, translations, strategy):
    df = rendered(items, strategy, cfg, translations)
    assert df["text"].map(lambda t: bool(DEVANAGARI.search(t))).all()
    # Question and every shown option come from the translations.
    for row in df.itertuples():
        assert all(o.startswith("हिं ") for o in row.shown_options)
    texts = df.set_index("prompt_id")["text"]
    if strategy == "cross_lingual":
        assert texts["global_opinions/0001#cross_lingual#p0"].startswith(f"Human: हिं {GO_Q}")
        assert "Here are the options:" in texts["global_opinions/0001#cross_lingual#p0"]
    else:
        go = texts["global_opinions/0001#native#p0"]
        assert go.startswith(f"मानव: हिं {GO_Q}") and "Here are the options" not in go
        assert go.endswith("तो मेरा उत्तर होगा (")
        assert texts["culturalbench/easy/0007#native#p0"].endswith("\nD. हिं Only spoons\nउत्तर:")


def test_native_normad_labels_are_translated_words(items, cfg, translations):
    df = rendered(items, "native", cfg, translations).set_index("prompt_id")
    row = df.loc["normad/0761/rot#native#p0"]
    assert list(row["labels"]) == ["हिं Yes", "हिं No", "हिं Neither"]
    assert "देश: हिं India\n" in row["text"]
    # MC formats keep Latin letters under native.
    assert list(df.loc["culturalbench/easy/0007#native#p0", "labels"]) == ["A", "B", "C", "D"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_permutations_map_back_and_schema(items, cfg, translations, strategy):
    df = rendered(items, strategy, cfg, translations)
    assert list(df.columns) == COLUMNS
    assert df["prompt_id"].is_monotonic_increasing
    tr = translations if strategy in ("cross_lingual", "native") else {}
    by_id = items.set_index("item_id")
    for item_id, group in df.groupby("item_id"):
        options = list(by_id.loc[item_id, "options"])
        n = len(options)
        assert len(group) == min(cfg["permutations"], 2 if n == 2 else 6 if n == 3 else 24)
        assert len(group) >= 2
        orders = [tuple(o) for o in group["option_order"]]
        assert len(set(orders)) == len(orders)
        for row in group.itertuples():
            assert row.prompt_id == f"{item_id}#{strategy}#p{row.permutation}"
            assert sorted(row.option_order) == list(range(n))
            for i, j in enumerate(row.option_order):
                assert row.shown_options[i] == tr.get(options[j], options[j])
            assert len(row.labels) == n
    assert set(df["mode"]) == {"distribution"}


def test_template_sha256_is_file_hash(items, cfg, translations):
    for strategy in STRATEGIES:
        df = rendered(items, strategy, cfg, translations)
        for rel, sha in set(zip(df["template"], df["template_sha256"], strict=True)):
            assert hashlib.sha256((ROOT / rel).read_bytes()).hexdigest() == sha
    assert set(df["template"]) >= {"workflow/templates/normad/native.hi.j2"}


def test_render_is_deterministic(items, cfg, translations):
    a = rendered(items, "native", cfg, translations)
    b = rendered(items.iloc[::-1].reset_index(drop=True), "native", cfg, translations)
    pd.testing.assert_frame_equal(a, b)


def test_permutation_orders_scheme():
    assert permutation_orders(4, 2, 1, "x") == [[0, 1, 2, 3], [3, 2, 1, 0]]
    assert permutation_orders(2, 5, 1, "x") == [[0, 1], [1, 0]]
    six = permutation_orders(3, 10, 7, "normad/0001/none")
    assert len(six) == 6 and len({tuple(o) for o in six}) == 6
    a = permutation_orders(5, 4, 20250527, "global_opinions/0001")
    assert a == permutation_orders(5, 4, 20250527, "global_opinions/0001")
    assert a[2] != permutation_orders(5, 4, 20250528, "global_opinions/0001")[2] or \
        a[3] != permutation_orders(5, 4, 20250528, "global_opinions/0001")[3]


def test_missing_translation_raises_with_count(items, cfg, translations):
    partial = dict(translations)
    for s in ["Hands", "Chopsticks", "Neither"]:
        del partial[s]
    with pytest.raises(MissingTranslation) as err:
        render(items, "cross_lingual", cfg, translations=partial, mode="both")
    assert isinstance(err.value, KeyError)
    assert err.value.count == 3 and err.value.missing == ["Chopsticks", "Hands", "Neither"]
    assert "3 string(s)" in str(err.value) and "'Hands'" in str(err.value)
    with pytest.raises(MissingTranslation) as err:
        render(items, "native", cfg, translations=None, mode="both")
    assert err.value.count == len(strings_to_translate(items, cfg))


def test_strings_to_translate(items, cfg):
    strings = strings_to_translate(items, cfg)
    assert strings == sorted(set(strings))
    for s in [GO_Q, "Mostly agree", "Hands", "True", "Neither", NORMAD_CTX["rot"], NORMAD_CTX["value"],
              "India", "United States", "Choose the option closest to your view."]:
        assert s in strings


def test_bad_mode_and_unknown_subset_fail(items, cfg):
    with pytest.raises(ValueError, match="mode"):
        render(items, "default", cfg, translations=None, mode="greedy")
    bad = items.copy()
    bad.loc[bad["item_id"] == "normad/0761/rot", "subset"] = "rule"
    with pytest.raises(ValueError, match="normad/0761/rot"):
        render(bad, "default", cfg, translations=None, mode="both")


def test_new_language_needs_only_files(tmp_path, items, cfg):
    """Japanese: a native.ja.j2 template and a table; no code changes."""
    ja = {**cfg, "target": {**cfg["target"], "language": "ja", "language_name": "Japanese"}}
    culturalbench = items[items["item_id"] == "culturalbench/easy/0007"]
    tdir = tmp_path / "workflow" / "templates" / "culturalbench"
    tdir.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"native\.ja\.j2"):
        template_path("culturalbench", "native", ja, tmp_path)
    (tdir / "native.ja.j2").write_text(
        "{% block user %}{{ question }}\n{% for l, t in options %}\n{{ l }}. {{ t }}\n{% endfor %}\n"
        "{% endblock %}{% block answer %}答え:{% endblock %}", encoding="utf-8")
    table = tmp_path / "ja.csv"
    ja_words = {"In India, what do people usually eat with?": "インドでは、人々は普通何で食べますか？",
                "Hands": "手", "Chopsticks": "箸", "Knife and fork": "ナイフとフォーク",
                "Only spoons": "スプーンだけ",
                "India": "インド", "United States": "アメリカ合衆国"}
    with open(table, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source", "target"])
        w.writerows(ja_words.items())
    df = render(culturalbench, "native", ja, translations=load_table(table), mode="both", root=tmp_path)
    row = df.iloc[0]
    assert row["text"] == ("インドでは、人々は普通何で食べますか？\n"
                           "A. 手\nB. 箸\nC. ナイフとフォーク\nD. スプーンだけ\n答え:")
    assert row["template"] == "workflow/templates/culturalbench/native.ja.j2"
    assert row["template_sha256"] == hashlib.sha256((tdir / "native.ja.j2").read_bytes()).hexdigest()


def test_every_shipped_template_renders(items, cfg, translations):
    for task in ["global_opinions", "cultural_map", "culturalbench", "normad"]:
        for strategy in STRATEGIES:
            path = template_path(task, strategy, cfg)
            assert path.is_file()
            # Prompts end where the model continues: no trailing newline.
            assert not path.read_text(encoding="utf-8").endswith("\n"), path
    df = rendered(items, "native", cfg, translations)
    # Native: no English instruction words outside the translated content.
    for text in df["text"]:
        stripped = re.sub(r"हिं [^\n]*?(?=\n|$|, | या |।|\)|:)", "", text)
        assert not re.search(r"\b(Answer|Human|Assistant|Task|Story|Options|Statement)\b", stripped), text


def test_mirror_table_covers_culturalbench_india(mirror, cfg):
    """Real CulturalBench India questions and options are in the mirror's Hindi table."""
    table = load_table(mirror / "translations" / "hi.jsonl", "hi")
    with open(mirror / "culturalbench" / "CulturalBench-Easy.csv", encoding="utf-8") as f:
        india = [r for r in csv.DictReader(f) if r["country"] == "India"]
    assert len(india) == 46
    rows = [item(f"culturalbench/easy/{int(r['question_idx']):04d}", "culturalbench", "easy",
                 r["prompt_question"], [r[f"prompt_option_{c}"] for c in "abcd"]) for r in india]
    items = pd.DataFrame(rows).drop_duplicates("item_id")
    glossary = load_table(ROOT / "workflow" / "translations" / "glossary.hi.jsonl", "hi")
    df = render(items, "native", cfg, translations={**glossary, **table}, mode="both")
    assert len(df) == len(items) * cfg["permutations"]
    assert df["text"].map(lambda t: bool(DEVANAGARI.search(t))).all()
    first = df.iloc[0]
    assert table[items.iloc[0]["question"]] in first["text"]


def test_parquet_round_trip(tmp_path, items, cfg, translations):
    """Items read back from parquet (options as arrays) render the same; prompts write and read back."""
    from culteval.io import read_parquet, write_parquet

    write_parquet(items, tmp_path / "items.parquet")
    back = read_parquet(tmp_path / "items.parquet")
    a = rendered(items, "native", cfg, translations)
    pd.testing.assert_frame_equal(rendered(back, "native", cfg, translations), a)
    write_parquet(a, tmp_path / "prompts.parquet")
    again = read_parquet(tmp_path / "prompts.parquet")
    assert list(again["option_order"].iloc[-1]) == list(a["option_order"].iloc[-1])
    assert again["text"].tolist() == a["text"].tolist()


def test_cultural_map_uses_wvs_wording_and_scale(items, cfg, translations):
    df = rendered(items, "default", cfg, None).set_index("prompt_id")
    assert df.loc["cultural_map/F063#default#p0", "text"] == (
        "Human: How important is God in your life?\nChoose the option closest to your view.\n\n"
        "Here are the options:\n\n(A) Very important\n(B) Rather important\n(C) Not very important\n"
        "(D) Not at all important\n\nAssistant: If had to select one of the options, my answer would be (")
    native = rendered(items, "native", cfg, translations).set_index("prompt_id")
    assert "\nहिं Choose the option closest to your view.\n\nविकल्प ये हैं:" in native.loc[
        "cultural_map/F063#native#p0", "text"]
