"""Templates split the user message from the answer prefix; base-model text stays as it was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import default_params
from test_prompts import STRATEGIES, fake_hindi, make_items

from culteval.prompts import render
from culteval.translate import strings_to_translate

#: sha256 of every tiny-item prompt text as rendered before templates had blocks (commit 4efe881).
EXPECTED = Path(__file__).parent / "data" / "base_prompts.sha256.json"


@pytest.fixture(scope="module")
def all_prompts():
    cfg = default_params(permutations=3)
    items = make_items()
    tr = fake_hindi(strings_to_translate(items, cfg))
    import pandas as pd

    return pd.concat([
        render(items, s, cfg, translations=tr if s in ("cross_lingual", "native") else None,
               mode="distribution")
        for s in STRATEGIES
    ], ignore_index=True), cfg


def test_base_model_text_is_byte_identical_to_before(all_prompts):
    df, _ = all_prompts
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    got = {pid: hashlib.sha256(t.encode("utf-8")).hexdigest()
           for pid, t in zip(df.prompt_id, df.text, strict=True)}
    assert set(got) == set(expected)
    changed = sorted(pid for pid in got if got[pid] != expected[pid])
    assert not changed, f"base-model prompt text changed for {changed[:5]}"


def test_blocks_are_the_texts_pieces(all_prompts):
    df, _ = all_prompts
    for row in df.itertuples(index=False):
        assert row.user and row.user == row.user.strip(), row.prompt_id
        assert row.user in row.text and row.text.endswith(row.answer_prefix), row.prompt_id
        assert row.system == ""  # no shipped strategy uses a system message
        if row.task == "normad":  # measured choice (docs/templates.md): no answer prefix
            assert row.answer_prefix == "" and row.text.endswith(row.user)


def test_global_opinions_split_exactly(all_prompts):
    df, _ = all_prompts
    row = df[df.prompt_id == "global_opinions/0001#default#p0"].iloc[0]
    assert row.user == (
        "Do you think people in your country are better off in a free market economy?\n\n"
        "Here are the options:\n\n(A) Completely agree\n(B) Mostly agree\n(C) Mostly disagree\n"
        "(D) Completely disagree")
    assert row.answer_prefix == "If had to select one of the options, my answer would be ("
    assert row.text == f"Human: {row.user}\n\nAssistant: {row.answer_prefix}"
    cb = df[df.prompt_id == "culturalbench/easy/0007#default#p0"].iloc[0]
    assert cb.answer_prefix == "Answer:" and cb.text == cb.user + "\n" + cb.answer_prefix
    nd = df[df.prompt_id == "normad/0761/none#default#p0"].iloc[0]
    assert list(map(list, nd.label_spellings)) == [["Yes", "1"], ["No", "2"], ["Neither", "3"]]
    assert list(map(list, cb.label_spellings)) == [["A"], ["B"], ["C"], ["D"]]


def test_template_without_blocks_is_rejected(tmp_path, all_prompts):
    _, cfg = all_prompts
    items = make_items()
    items = items[items.task == "culturalbench"]
    tdir = tmp_path / "workflow" / "templates" / "culturalbench"
    tdir.mkdir(parents=True)
    (tdir / "default.j2").write_text("{{ question }}\nAnswer:", encoding="utf-8")
    with pytest.raises(ValueError, match=r"culturalbench/default\.j2 lacks block"):
        render(items, "default", cfg, translations=None, mode="distribution", root=tmp_path)
    (tdir / "default.j2").write_text(
        "{% block user %}{{ question }}{% endblock %}\n{% block answer %}Answer:{% endblock %} ",
        encoding="utf-8")
    with pytest.raises(ValueError, match="must end with block 'answer'"):
        render(items, "default", cfg, translations=None, mode="distribution", root=tmp_path)
