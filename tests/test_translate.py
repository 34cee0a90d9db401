"""The translation stage: tables, glossary, identity pass-through, translator model, errors."""

from __future__ import annotations

import csv
import hashlib
import json
import re

import pandas as pd
import pytest
from conftest import default_params

from culteval.prompts import ROOT, MissingTranslation, render, strings_to_translate
from culteval.translate import (
    COLUMNS,
    build_translations,
    glossary_path,
    load_table,
    machine_sources,
    make_model_translator,
    reviewed_sources,
    translations_to_dict,
)


@pytest.fixture(scope="module")
def cfg() -> dict:
    return default_params()


@pytest.fixture()
def table(tmp_path):
    path = tmp_path / "hi.jsonl"
    rows = [{"en": "Yes", "hi": "हाँ"}, {"en": "No", "hi": "नहीं"}, {"en": "7", "hi": "7"},
            {"en": "Hands", "hi": "हाथ"}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FakeTranslator:
    model_sha256 = "ab" * 32
    prompt_sha256 = "cd" * 32

    def __init__(self, answer=None):
        self.answer = answer
        self.calls = []

    def __call__(self, text):
        self.calls.append(text)
        return self.answer if self.answer is not None else f"अनुवाद {text}"


def test_load_table_formats(tmp_path, table):
    assert load_table(table, "hi") == {"Yes": "हाँ", "No": "नहीं", "7": "7", "Hands": "हाथ"}
    assert load_table(table) == load_table(table, "hi")
    st = tmp_path / "st.jsonl"
    st.write_text(json.dumps({"source": "Yes", "target": "はい"}, ensure_ascii=False) + "\n",
                  encoding="utf-8")
    assert load_table(st, "ja") == {"Yes": "はい"}
    c = tmp_path / "t.csv"
    c.write_text('source,target\nYes,はい\n"Hands, feet",手足\n', encoding="utf-8")
    assert load_table(c) == {"Yes": "はい", "Hands, feet": "手足"}
    with pytest.raises(ValueError, match=r"hi\.jsonl:1: expected keys"):
        load_table(table, "ja")


@pytest.mark.parametrize("lines, message", [
    (['{"en": "Yes", "hi": "हाँ"}', '{"en": "Yes", "hi": "जी"}'], r":2: 'Yes' translated twice"),
    (['{"en": "Yes", "hi": ""}'], r":1: empty"),
    (['not json'], r":1: not JSON"),
])
def test_load_table_rejects_bad_tables(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_table(path, "hi")


def test_build_from_table_glossary_and_identity(cfg, table):
    df = build_translations(["Yes", "Hands", "India", "42", "7", "Yes"], cfg,
                            table_path=table)
    assert list(df.columns) == COLUMNS
    assert list(df["source"]) == sorted(["Yes", "Hands", "India", "42", "7"])
    got = df.set_index("source")
    assert got.loc["Yes", "target"] == "हाँ" and got.loc["Yes", "origin"] == f"table:{sha(table)}"
    # India is absent from the table: the project glossary supplies it.
    assert got.loc["India", "target"] == "भारत"
    assert got.loc["India", "origin"] == f"table:{sha(glossary_path(cfg))}"
    assert got.loc["42", "target"] == "42" and got.loc["42", "origin"] == "identity"
    assert got.loc["7", "origin"].startswith("table:")
    assert got["translator_prompt_sha256"].isna().all()


def test_missing_without_translator_raises_count(cfg, table):
    with pytest.raises(MissingTranslation) as err:
        build_translations(["Yes", "Spoon", "Fork", "12"], cfg, table_path=table)
    assert err.value.count == 2 and err.value.missing == ["Fork", "Spoon"]
    assert "2 string(s) lack a Hindi translation" in str(err.value)


def test_translator_fills_gaps_with_model_origin(cfg, table):
    fake = FakeTranslator()
    df = build_translations(["Yes", "Spoon"], cfg, table_path=table, translator=fake)
    assert fake.calls == ["Spoon"]
    row = df.set_index("source").loc["Spoon"]
    assert row["target"] == "अनुवाद Spoon"
    assert row["origin"] == f"model:{'ab' * 32}" and row["translator_prompt_sha256"] == "cd" * 32


@pytest.mark.parametrize("answer", ["", "   ", "Spoon"])
def test_translator_empty_or_echo_is_error(cfg, answer):
    with pytest.raises(ValueError, match="'Spoon'"):
        build_translations(["Spoon"], cfg, table_path=None,
                           translator=FakeTranslator(answer))


def test_make_model_translator_prompt_and_output():
    class Engine:
        def __init__(self):
            self.prompts = []

        def generate_text(self, prompt: str, max_tokens: int) -> str:
            self.prompts.append((prompt, max_tokens))
            return "  चम्मच\nEnglish: Fork"

    engine = Engine()
    tr = make_model_translator(engine, "Hindi", "ef" * 32)
    assert tr("Spoon") == "चम्मच"
    prompt, max_tokens = engine.prompts[0]
    assert prompt.endswith("English: Spoon\nHindi:") and "into Hindi" in prompt
    assert max_tokens > 8
    assert tr.prompt_sha256 == sha(ROOT / "workflow" / "translations" / "translator.j2")
    assert tr.model_sha256 == "ef" * 32


def test_translations_to_dict():
    df = pd.DataFrame({"source": ["A", "B"], "target": ["अ", "ब"], "origin": ["identity"] * 2,
                       "translator_prompt_sha256": [None, None]})
    assert translations_to_dict(df) == {"A": "अ", "B": "ब"}
    with pytest.raises(ValueError, match="duplicated"):
        translations_to_dict(pd.concat([df, df]))


def test_project_table_and_glossary_cover_real_india_items(mirror, cfg):
    """Real NormAd and CulturalBench India items translate with no translator model, then render natively."""
    rows = []
    with open(mirror / "normad" / "normad_etiquette_final_data.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["Country"] != "india":
                continue
            ctx = json.dumps({"country": "India", "value": r["Value"], "rot": r["Rule-of-Thumb"]})
            for sub in ["none", "country", "value", "rot"]:
                story = f"normad/{int(r['ID']):04d}"
                rows.append({"item_id": f"{story}/{sub}", "task": "normad", "subset": sub,
                             "group_id": story, "country": "India", "question": r["Story"],
                             "options": ["Yes", "No", "Neither"], "answer": "Yes", "distributions": "{}",
                             "context": ctx, "meta": "{}"})
    with open(mirror / "culturalbench" / "CulturalBench-Easy.csv", encoding="utf-8") as f:
        r = next(r for r in csv.DictReader(f) if r["country"] == "India")
    rows.append({"item_id": "culturalbench/hard/0000/0", "task": "culturalbench", "subset": "hard",
                 "group_id": "culturalbench/hard/0000", "country": "India", "question": r["prompt_question"],
                 "options": ["True", "False"], "answer": "True", "distributions": "{}",
                 "context": json.dumps({"statement": r["prompt_option_a"]}), "meta": "{}"})
    items = pd.DataFrame(rows)
    assert len(items) == 25 * 4 + 1
    table = ROOT / cfg["translation"]["table"]  # the table ships with the project
    df = build_translations(strings_to_translate(items, cfg), cfg, table_path=table)
    assert set(df["origin"].str.split(":").str[0]) == {"table"}
    prompts = render(items, "native", cfg, translations=translations_to_dict(df), mode="both")
    normad = prompts[prompts["task"] == "normad"]
    # The three Hindi answer labels start with different characters (hence different first tokens).
    for letters in normad["labels"]:
        assert len({w[0] for w in letters}) == 3 and set(letters) == {"हाँ", "नहीं", "दोनों में से कोई नहीं"}
    assert prompts["text"].map(lambda t: bool(re.search(r"[\u0900-\u097F]", t))).all()
    hard = prompts[prompts["task"] == "culturalbench"].iloc[0]
    assert list(hard["shown_options"]) == ["सही", "गलत"] and list(hard["labels"]) == ["A", "B"]


def test_translation_table_ships_with_the_project(cfg, monkeypatch):
    """params.translation.table resolves inside the project, whatever CULTEVAL_DATA_MIRROR says."""
    from culteval.cli import _translation_table_path

    monkeypatch.delenv("CULTEVAL_DATA_MIRROR", raising=False)
    path = _translation_table_path(cfg)
    assert path.is_relative_to(ROOT) and path.is_file()
    readme = (path.parent / "README.md").read_text(encoding="utf-8")
    assert hashlib.sha256(path.read_bytes()).hexdigest() in readme  # the origin note names these bytes
    assert "not reviewed by a native speaker" in readme
    monkeypatch.setenv("CULTEVAL_DATA_MIRROR", "/nonexistent/mirror")
    assert _translation_table_path(cfg) == path


@pytest.mark.parametrize(("language", "country", "questions"),
                         [("da", "Denmark", 23), ("nl", "Netherlands", 58), ("pt", "Brazil", 76)])
def test_shipped_tables_cover_their_countries_questions(mirror, cfg, language, country, questions):
    """Each shipped Rystrom et al. table translates every string of the GlobalOpinionQA questions
    with a national distribution for its country, and is the file its README pins by sha256."""
    from culteval import tasks

    path = ROOT / "workflow" / "translations" / f"{language}.jsonl"
    table = load_table(path, language)
    c = json.loads(json.dumps(cfg))
    c["target"]["country"] = country
    c["country_aliases"].setdefault(country, {})["global_opinions"] = [country]
    c["tasks"]["global_opinions"].update(itemset=None, limit=None)
    items = tasks.get("global_opinions").load_items(mirror, c)
    items = items[items["distributions"].map(lambda t: country in json.loads(t))]
    assert len(items) == questions
    needed = strings_to_translate(items, c)
    assert not set(needed) - set(table), sorted(set(needed) - set(table))[:5]
    readme = (ROOT / "workflow" / "translations" / "README.md").read_text(encoding="utf-8")
    assert f"{sha(path)}  {language}.jsonl" in readme


def test_machine_translated_follows_each_strings_origin(tmp_path, cfg):
    """A table entry marked reviewed is not machine-made; an unmarked entry, a translator model's
    output and (per prompt) any shown string of those origins are; numbers are no translation."""
    table = tmp_path / "hi.jsonl"
    rows = [{"en": "Is it fine?", "hi": "क्या ठीक है?", "reviewed": True},
            {"en": "Tea", "hi": "चाय", "reviewed": True}, {"en": "Coffee", "hi": "कॉफ़ी"}]
    table.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert reviewed_sources(table, "hi") == {"Is it fine?", "Tea"}
    assert load_table(table, "hi")["Tea"] == "चाय"  # the review mark is not a language key
    df = build_translations(["Is it fine?", "Tea", "Coffee", "Milk", "12"], cfg, table_path=table,
                            translator=FakeTranslator())
    got = df.set_index("source")["machine_translated"].to_dict()
    assert got == {"Is it fine?": False, "Tea": False, "Coffee": True, "Milk": True, "12": False}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"en": "Tea", "hi": "चाय", "reviewed": "maybe"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: 'reviewed'"):
        load_table(bad, "hi")

    def item(i, options):
        return {"item_id": f"culturalbench/easy/{i:04d}", "task": "culturalbench", "subset": "easy",
                "group_id": f"culturalbench/easy/{i:04d}", "country": "India", "question": "Is it fine?",
                "options": options, "answer": options[0], "distributions": "{}", "context": "{}",
                "meta": "{}"}

    items = pd.DataFrame([item(0, ["Tea", "12"]), item(1, ["Tea", "Coffee"])])
    tr = translations_to_dict(df)
    for strategy in ("cross_lingual", "native"):
        p = render(items, strategy, cfg, translations={**tr, "India": "भारत", "United States": "अमेरिका"},
                   mode="distribution", machine=machine_sources(df))
        by_item = p.groupby("item_id")["machine_translated"].agg(set).to_dict()
        assert by_item == {"culturalbench/easy/0000": {False}, "culturalbench/easy/0001": {True}}
    english = render(items, "default", cfg, translations=None, mode="distribution")
    assert not english["machine_translated"].any()
    unknown = render(items, "native", cfg, translations={**tr, "India": "भारत", "United States": "अमेरिका"},
                     mode="distribution")
    assert unknown["machine_translated"].all()  # no origins known: counted as machine-made
