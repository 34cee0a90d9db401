"""Engine tests on the real default model (Gemma 3 270M base, loads in < 1 s)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from culteval import io
from culteval.engine import Engine, score_prompts, trial_seed
from culteval.engine import scoring as engine_mod

GOQA = (
    "Human: Do you think people in your country should be free to criticise the government?\n\n"
    "Here are the options:\n\n(A) Very important\n(B) Somewhat important\n(C) Not important\n\n"
    "Assistant: If had to select one of the options, my answer would be ("
)
OTHER = GOQA.replace("(C) Not important", "(C) Not at all important")
STORY = "Question: Which city is the capital of France?\nA. Paris\nB. Rome\nC. Lima\nAnswer:"


@pytest.fixture(scope="module")
def engine(default_model):
    with Engine(default_model) as eng:
        yield eng


def direct_distribution(model_path, text: str, labels: list[str]) -> tuple[np.ndarray, float]:
    """Reference computation straight on llama-cpp-python (fresh context, no culteval code)."""
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(model_path), n_ctx=2048, n_threads=2, logits_all=False, verbose=False
    )
    tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
    llm.eval(tokens)
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
    p = np.exp(logits.astype(np.float64) - logits.max())
    p /= p.sum()
    mass = []
    for label in labels:
        ids = {llm.tokenize(s.encode(), add_bos=False, special=False)[0] for s in (label, " " + label)}
        mass.append(sum(p[i] for i in ids))
    llm.close()
    mass = np.array(mass)
    return mass / mass.sum(), float(mass.sum())


def test_distribution_matches_direct_llama_cpp_and_prefix_reuse(engine, default_model):
    want, want_mass = direct_distribution(default_model, GOQA, ["A", "B", "C"])
    assert want_mass > 0.5  # measured: ~0.9 of the mass is on the letters for this kind of prompt

    engine.reset()
    probs, mass = engine.option_distribution(GOQA, ["A", "B", "C"])
    np.testing.assert_allclose(probs, want, atol=1e-6)
    assert mass == pytest.approx(want_mass, abs=1e-6)

    # another prompt with the same opening first: its shared whole segments are reused, and the
    # numbers are exactly (bit for bit) those of a fresh context
    engine.option_distribution(OTHER, ["A", "B", "C"])
    before = engine.n_evaluated
    probs2, mass2 = engine.option_distribution(GOQA, ["A", "B", "C"])
    n_tokens = len(engine.encode(GOQA))
    assert 0 < engine.n_evaluated - before < n_tokens
    assert (probs2, mass2) == (probs, mass)
    assert engine.template_info == {"chat_template": "none", "chat_template_sha256": None}


def test_prefix_reuse_reuses_whole_segments_only(default_model):
    with Engine(default_model, segment=8) as eng:
        n = len(eng.encode(GOQA))
        pairs = zip(eng.encode(GOQA), eng.encode(OTHER), strict=False)
        shared = next(i for i, (a, b) in enumerate(pairs) if a != b)
        eng.option_distribution(OTHER, ["A", "B", "C"])
        before = eng.n_evaluated
        eng.option_distribution(GOQA, ["A", "B", "C"])
        assert eng.n_evaluated - before == n - shared // 8 * 8
        assert eng.info()["prefix_reuse"] is True and eng.info()["segment"] == 8
    with pytest.raises(ValueError, match="segment must be between 1 and n_batch=16"):
        Engine(default_model, n_batch=16, segment=32)


@pytest.mark.slow
def test_thread_count_changes_no_byte(default_model, mirror, tmp_path):
    # inference.n_threads is neither a rerun trigger nor in an artifact's bytes (culteval.io.LOCAL_KEYS):
    # real opinion prompts (answer distributions) and NormAd prompts (sampled trials) on 1 and 2 threads.
    from conftest import default_params

    from culteval import prompts as prompts_mod
    from culteval.tasks import global_opinions, normad

    cfg = default_params()
    for task, trials in ((global_opinions, 0), (normad, 2)):
        items = task.load_items(mirror, cfg)
        mode = "both" if trials else "distribution"
        table = prompts_mod.render(items, "default", cfg, translations=None, mode=mode)
        table = table.sample(n=min(10, len(table)), random_state=5).reset_index(drop=True)
        outs = []
        for threads in (1, 2):
            out = tmp_path / f"{task.TASK.name}-{threads}.parquet"
            with Engine(default_model, n_threads=threads) as eng:
                prov = {"engine": eng.info(), "params": {"inference": {"n_threads": threads}}}
                score_prompts(eng, table, out, parse=task.TASK.parse_answer, trials=trials, temperature=0.7,
                              max_tokens=4, seed=9, chunk_size=4, progress=False, provenance=prov)
            outs.append(out.read_bytes())
        assert outs[0] == outs[1], task.TASK.name


@pytest.mark.slow
def test_prefix_reuse_and_trials_are_byte_identical_in_any_order(default_model, mirror, tmp_path):
    # Real NormAd prompts with their sampled trials (a sample that keeps the test within minutes):
    # reuse on or off, job order or shuffled one prompt at a time, same bytes.
    import yaml

    from culteval import prompts as prompts_mod
    from culteval.config import ROOT, culture_cfg, culture_keys, normalise_cultures
    from culteval.tasks import normad

    cfg = normalise_cultures(yaml.safe_load((ROOT / "params.yaml").read_text()))
    cfg = culture_cfg(cfg, culture_keys(cfg)[0])
    items = normad.load_items(mirror, cfg)
    table = prompts_mod.render(items, "default", cfg, translations=None, mode="both")
    table = table.sample(n=min(24, len(table)), random_state=3).reset_index(drop=True)
    kw = dict(parse=normad.TASK.parse_answer, trials=3, temperature=0.7, max_tokens=4, seed=9, chunk_size=10,
              progress=False)
    with Engine(default_model, prefix_reuse=False) as off, Engine(default_model) as on:
        a = score_prompts(off, table, tmp_path / "off.parquet", **kw)
        b = score_prompts(on, table, tmp_path / "on.parquet", **kw)
        assert on.n_evaluated < 0.8 * off.n_evaluated  # reuse really happened
        assert (tmp_path / "off.parquet").read_bytes() == (tmp_path / "on.parquet").read_bytes()
        shuffled, texts = {}, {}
        for row in table.sample(frac=1.0, random_state=11).itertuples(index=False):
            tokens = on.encode(row.text)
            shuffled[row.prompt_id] = on.distribution_from_tokens(
                tokens, list(row.labels), spellings=[list(s) for s in row.label_spellings])[0]
            seeds = [trial_seed(9, row.prompt_id, t) for t in range(3)]
            texts[row.prompt_id] = on.sample_trials(tokens, seeds, temperature=0.7, max_tokens=4)
    want = a[a["trial"] == -1].set_index("prompt_id")
    for pid, shown in shuffled.items():
        order = table.set_index("prompt_id").loc[pid, "option_order"]
        original = [0.0] * len(order)
        for pos, orig in enumerate(order):
            original[orig] = shown[pos]
        assert list(want.loc[pid, "probs"]) == original, pid
        assert a[(a["prompt_id"] == pid) & (a["trial"] >= 0)]["generated"].tolist() == texts[pid], pid
    assert a["generated"].dropna().nunique() > 1
    assert b.equals(a)


def test_parallel_trials_do_not_depend_on_what_ran_before(default_model):
    seeds = [trial_seed(1, "x", t) for t in range(5)]
    kw = dict(temperature=1.0, max_tokens=6)
    with Engine(default_model) as on, Engine(default_model, prefix_reuse=False) as off:
        tokens = on.encode("Once upon a time")
        fresh = on.sample_trials(tokens, seeds, **kw)
        on.sample_trials(on.encode("Once upon a time, there"), seeds[:3], **kw)  # shares a prefix
        on.option_distribution(GOQA, ["A", "B", "C"])
        again = on.sample_trials(tokens, seeds, **kw)
        off.option_distribution(STORY, ["A", "B", "C"])
        other = off.sample_trials(tokens, seeds, **kw)
        assert fresh == again == other
        assert len(set(fresh)) > 2  # the trials really went apart (branches split)
        # agreeing trials share one branch: five greedy trials decode as many tokens as one
        before = on.n_evaluated
        greedy = on.sample_trials(tokens, seeds, temperature=0.0, max_tokens=6)
        five = on.n_evaluated - before
        one = on.sample_trials(tokens, seeds[:1], temperature=0.0, max_tokens=6)
        assert len(set(greedy)) == 1 and greedy[:1] == one
        assert five == on.n_evaluated - before - five > 0
    with pytest.raises(ValueError, match="n_parallel must be between 1 and n_batch=16"):
        Engine(default_model, n_batch=16, segment=8, n_parallel=17)


def test_prompts_run_in_token_order(engine, tmp_path, monkeypatch):
    # depth-first order of the prompts' prefix tree: token order, which is not text order
    words = ["Is", "is", "Are", "Does", "What", "Which", "Apple", "apple", "Zebra", "zebra"]
    prompts = prompts_table(len(words), mode="distribution")
    prompts["text"] = [f"{w} {t}" for w, t in zip(words, prompts["text"], strict=True)]
    seen = []
    real = engine._prompt_logits
    monkeypatch.setattr(engine, "_prompt_logits", lambda tokens: seen.append(list(tokens)) or real(tokens))
    out = score_prompts(engine, prompts, tmp_path / "o.parquet", parse=first_letter, progress=False)
    assert len(seen) == len(words) and seen == sorted(seen)
    assert out["prompt_id"].tolist() == sorted(prompts["prompt_id"])


def test_answer_token_ids(engine):
    ids = engine.answer_token_ids(["A", "B", "C"])
    assert 236776 in ids[0] and 236799 in ids[1] and 236780 in ids[2]  # Gemma 3 tokenizer ids
    with pytest.raises(ValueError, match=r"share first token.*gemma-3-270m-q4_k_m\.gguf.*'A', 'B', 'A'"):
        engine.answer_token_ids(["A", "B", "A"])
    # a real collision: Likert labels that start with the same token
    with pytest.raises(ValueError, match="'Strongly agree' and 'Strongly disagree' share first token"):
        engine.answer_token_ids(["Strongly agree", "Strongly disagree"])


GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def test_gguf_chat_template_is_rendered(default_model, monkeypatch):
    import llama_cpp

    class WithTemplate(llama_cpp.Llama):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.metadata = {**self.metadata, "tokenizer.chat_template": GEMMA_TEMPLATE}

    monkeypatch.setattr(llama_cpp, "Llama", WithTemplate)
    with Engine(default_model, chat_template="auto") as eng:
        sha = io.sha256_text(GEMMA_TEMPLATE)
        assert eng.template_info == {"chat_template": "gguf", "chat_template_sha256": sha}
        tokens = eng.encode("Hi")
        bos = eng.llm.token_bos()
        turn = eng.llm.tokenize(b"<start_of_turn>", add_bos=False, special=True)
        assert len(turn) == 1 and tokens.count(turn[0]) == 2  # a special token, not its spelling
        assert tokens[0] == bos and tokens.count(bos) == 1
        assert eng.llm.detokenize(tokens[1:], special=True) == b"<start_of_turn>user\nHi<end_of_turn>\n" \
            b"<start_of_turn>model\n"
    with Engine(default_model, chat_template="none") as eng:
        assert eng.template_info["chat_template"] == "none"
        assert eng.encode("Hi") == [eng.llm.token_bos(), *eng.llm.tokenize(b"Hi", add_bos=False)]


def test_trial_seeds_are_distinct_and_stable_across_processes():
    # Every (run seed, prompt, trial) needs its own stream, identical in any process: a seed built from
    # Python's hash() or ignoring one of the three would repeat trials or change between runs.
    import subprocess
    import sys

    keys = [(s, f"global_opinions/{i:04d}#default#p{p}", t) for s in (7, 8) for i in range(50) for p in (0, 1)
            for t in range(3)]
    seeds = [trial_seed(*k) for k in keys]
    assert len(set(seeds)) == len(keys)
    code = ("from culteval.engine import trial_seed; "
            "print(trial_seed(7, 'global_opinions/0001#default#p0', 2))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout.strip()
    assert int(other) == trial_seed(7, "global_opinions/0001#default#p0", 2)


def test_sampling_is_seeded(engine):
    engine.reset()
    a = engine.sample("Once upon a time", temperature=1.0, max_tokens=12, seed=11)
    engine.option_distribution(GOQA, ["A", "B", "C"])  # other work in between
    b = engine.sample("Once upon a time", temperature=1.0, max_tokens=12, seed=11)
    c = engine.sample("Once upon a time", temperature=1.0, max_tokens=12, seed=11)  # cached prompt
    assert a == b == c and len(a.split()) >= 3
    assert a.startswith(engine.sample("Once upon a time", temperature=1.0, max_tokens=4, seed=11))
    outs = {engine.sample("Once upon a time", temperature=1.0, max_tokens=4, seed=s) for s in range(4)}
    assert len(outs) > 1  # the seed really drives the draw
    greedy = engine.sample(STORY, temperature=0.0, max_tokens=8, seed=1)
    assert greedy == engine.sample(STORY, temperature=0.0, max_tokens=8, seed=2)
    answer = engine.sample(STORY, temperature=0.3, max_tokens=8, seed=3)
    assert "\n" not in answer.strip() and len(engine.llm.tokenize(answer.encode(), add_bos=False)) <= 9


def prompts_table(n: int = 6, mode: str = "both") -> pd.DataFrame:
    rows = []
    for i in range(n):
        order = [0, 1, 2] if i % 2 == 0 else [2, 1, 0]
        opts = [["Yes", "No", "Unsure"][j] for j in order]
        rows.append({
            "prompt_id": f"t/{i:02d}#default#p{i % 2}", "item_id": f"t/{i:02d}", "task": "t", "subset": "all",
            "group_id": f"t/{i:02d}", "strategy": "default", "permutation": i % 2, "option_order": order,
            "labels": ["A", "B", "C"], "shown_options": opts,
            "text": f"Is {i // 2} + 1 = 2?\nA. {opts[0]}\nB. {opts[1]}\nC. {opts[2]}\nAnswer:",
            "template": "x", "template_sha256": "0", "mode": mode,
        })
    return pd.DataFrame(rows)


def first_letter(text: str, letters: list[str], options: list[str]) -> int | None:
    t = text.strip()
    return letters.index(t[0]) if t and t[0] in letters else None


def test_score_prompts_maps_to_original_order(engine, tmp_path):
    prompts = prompts_table(2)  # same text, identity and reversed order
    prompts["text"] = GOQA
    out = score_prompts(engine, prompts, tmp_path / "r.parquet", parse=lambda *a: 0, trials=2, progress=False)
    shown, _ = engine.option_distribution(GOQA, ["A", "B", "C"])
    dist = out[out["trial"] == -1].set_index("prompt_id")["probs"]
    np.testing.assert_allclose(list(dist["t/00#default#p0"]), shown, atol=1e-9)
    np.testing.assert_allclose(list(dist["t/01#default#p1"]), shown[::-1], atol=1e-9)
    trials = out[out["trial"] >= 0]
    assert trials["parsed"].tolist() == [0, 0, 2, 2]  # shown index 0 is original option 2 when reversed
    assert list(out.columns) == engine_mod.RAW_COLUMNS
    assert out["trial"].tolist() == [-1, 0, 1, -1, 0, 1]
    assert out["n_prompt_tokens"].iloc[0] == len(engine.encode(GOQA))
    assert out["option_mass"].isna().tolist() == [False, True, True, False, True, True]


def test_generate_mode_gives_seeded_free_text_only(engine, tmp_path):
    # Short-answer tasks: no option distribution, `trials` seeded free-text answers, nothing parsed.
    prompts = prompts_table(2, mode="generate").assign(labels=[[], []], option_order=[[], []],
                                                       shown_options=[[], []], text=STORY)
    kw = dict(parse=lambda *a: 0, trials=2, temperature=0.3, max_tokens=6, seed=5, progress=False)
    out = score_prompts(engine, prompts, tmp_path / "g.parquet", **kw)
    assert out["trial"].tolist() == [0, 1, 0, 1]
    assert out["probs"].isna().all() and out["parsed"].isna().all() and out["generated"].str.len().gt(0).all()
    pid = out["prompt_id"].iloc[0]
    seeds = [trial_seed(5, pid, t) for t in range(2)]  # the trials of a prompt are decoded together
    assert out["generated"].iloc[:2].tolist() == engine.sample_trials(engine.encode(STORY), seeds,
                                                                      temperature=0.3, max_tokens=6)


def test_score_prompts_resume_is_byte_identical(engine, tmp_path, monkeypatch):
    prompts = prompts_table(6)
    kw = dict(parse=first_letter, trials=1, max_tokens=4, chunk_size=2, provenance={"run": 1}, progress=False)
    full = tmp_path / "full.parquet"
    ref = score_prompts(engine, prompts, full, **kw)
    assert len(ref) == 12 and not full.with_name("full.parquet.chunks").exists()
    assert set(ref["parsed"].dropna()) <= {-1, 0, 1, 2} and ref["generated"].notna().sum() == 6

    real = engine_mod._score_one
    calls = []
    kill_at = [-1]

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == kill_at[0]:
            raise RuntimeError("killed")
        return real(*a, **k)

    monkeypatch.setattr(engine_mod, "_score_one", flaky)

    # checkpoints written for other prompts/settings are stale; input row order does not matter
    again = tmp_path / "again.parquet"
    (tmp_path / "again.parquet.chunks").mkdir()
    io.write_json({"prompts_sha256": "other"}, tmp_path / "again.parquet.chunks" / "fingerprint.json")
    ref.iloc[:2].to_parquet(tmp_path / "again.parquet.chunks" / "00000.parquet")
    score_prompts(engine, prompts.iloc[::-1], again, **kw)
    assert len(calls) == 6
    assert again.read_bytes() == full.read_bytes()

    calls.clear()
    kill_at[0] = 5  # first prompt of the third chunk
    resumed = tmp_path / "resumed.parquet"
    with pytest.raises(RuntimeError, match="killed"):
        score_prompts(engine, prompts, resumed, **kw)
    chunks = tmp_path / "resumed.parquet.chunks"
    assert sorted(p.name for p in chunks.glob("*.parquet")) == ["00000.parquet", "00001.parquet"]
    assert not resumed.exists()

    calls.clear()
    kill_at[0] = -1
    score_prompts(engine, prompts, resumed, **kw)
    assert len(calls) == 2  # only the missing chunk ran
    assert resumed.read_bytes() == full.read_bytes()
    assert io.read_provenance(resumed) == {"run": 1}


def test_resume_with_prefix_reuse_is_byte_identical(default_model, tmp_path, monkeypatch):
    # chunks start from an empty cache, so even order-dependent prefix reuse resumes exactly
    prompts = prompts_table(4, mode="distribution")
    kw = dict(parse=first_letter, chunk_size=2, progress=False)
    with Engine(default_model, prefix_reuse=True) as eng:
        score_prompts(eng, prompts, tmp_path / "full.parquet", **kw)
        real = engine_mod._score_one
        calls = []

        def flaky(*a, **k):
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("killed")
            return real(*a, **k)

        monkeypatch.setattr(engine_mod, "_score_one", flaky)
        with pytest.raises(RuntimeError):
            score_prompts(eng, prompts, tmp_path / "resumed.parquet", **kw)
        eng.option_distribution(GOQA, ["A", "B", "C"])  # leave other tokens in the cache
        score_prompts(eng, prompts, tmp_path / "resumed.parquet", **kw)
    assert (tmp_path / "resumed.parquet").read_bytes() == (tmp_path / "full.parquet").read_bytes()


def test_too_long_prompt_names_prompt(engine, tmp_path):
    prompts = prompts_table(2, mode="distribution")
    prompts.loc[1, "text"] = "word " * 2100
    with pytest.raises(ValueError, match=r"prompt 't/01#default#p1' has \d+ tokens, more than n_ctx=2048 "
                                         r"of model gemma-3-270m-q4_k_m\.gguf"):
        score_prompts(engine, prompts, tmp_path / "x.parquet", parse=first_letter, progress=False)


def test_engine_serves_as_translator_model(default_model):
    """The translation stage's model path: greedy text from the real engine, recorded by sha256."""
    from culteval.translate import make_model_translator

    engine = Engine(default_model, n_ctx=512)
    translator = make_model_translator(engine, "Hindi", "a" * 64)
    assert translator.model_sha256 == "a" * 64 and len(translator.prompt_sha256) == 64
    first = engine.generate_text("Translate into French: cat ->", max_tokens=6)
    assert first == engine.generate_text("Translate into French: cat ->", max_tokens=6)
    assert isinstance(first, str) and first


def test_released_llama_context_is_a_clear_error_not_a_crash(default_model):
    # the Engine frees the Llama's own context (it decodes through its own); a user reaching for
    # engine.llm.eval afterwards must get an error naming the Engine, not a segfault
    import subprocess
    import sys

    code = (
        "import sys\nfrom culteval.engine import Engine\n"
        f"e = Engine({str(default_model)!r})\n"
        "e.option_distribution('Question: 1+1?\\nA. 2\\nB. 3\\nAnswer:', ['A', 'B'])\n"
        "try:\n    e.llm.eval(e.encode('Hello'))\nexcept RuntimeError as err:\n"
        "    print(err)\n    sys.exit(3)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 3, (run.returncode, run.stderr[-2000:])
    assert "released by culteval.engine.Engine" in run.stdout


def test_base_models_score_the_same_spellings_as_chat_models(engine):
    """One label rule (engine.LABEL_RULE): a base model's option mass counts NormAd's option
    numbers too, as a chat model's does, and the rule is recorded in the engine's provenance."""
    from culteval.engine import LABEL_RULE

    labels = ["Yes", "No", "Neither"]
    spellings = [[x, str(i + 1)] for i, x in enumerate(labels)]
    text = ("Story: Ravi takes off his shoes before entering a friend's home.\nIs what Ravi did "
            "socially acceptable?\nOptions:\n1) Yes\n2) No\n3) Neither\nAnswer:")
    ids = engine.answer_token_ids(labels, spellings)
    for i, label_ids in enumerate(ids):
        number = engine.llm.tokenize(str(i + 1).encode(), add_bos=False, special=False)[0]
        assert number in label_ids and set(engine.answer_token_ids(labels)[i]) < set(label_ids)
    tokens = engine.encode(text)
    both, mass_both = engine.distribution_from_tokens(tokens, labels, spellings=spellings)
    alone, mass_alone = engine.distribution_from_tokens(tokens, labels)
    assert mass_both > mass_alone and both != alone
    assert engine.info()["label_rule"] == LABEL_RULE
