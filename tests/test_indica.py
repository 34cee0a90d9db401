"""INDICA (regions of India): items from the regions' answers, selection shares against the expected
ones, per-region accuracy and confusion, and an independent recomputation of the numbers."""

from __future__ import annotations

import json
import re
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from conftest import default_params
from recompute_lib import indica_numbers

from culteval import prompts
from culteval.metrics.regions import indica_metrics
from culteval.tasks import indica

REGIONS = ["North", "South", "East", "West", "Central"]


@pytest.fixture(scope="module")
def cfg() -> dict:
    cfg = json.loads(json.dumps(default_params()))
    cfg["tasks"]["indica"].update(enabled=True, itemset=None, limit=None)
    return cfg


def _question(qid: str, answers: dict[str, str | None], text: str = "What is eaten at breakfast?") -> dict:
    """An INDICA record: "In <R> India, <answer>" per region (None: "N/A"); pairwise flags from equality."""
    key = {r: re.sub(r"[.!?]+$", "", a.lower()) if a else None for r, a in answers.items()}
    out = {"question_id": qid, "question_text": text, "question_domain": "Food",
           "question_subcategory": "Meals", "question_topic": "Breakfast", "universal_agreement": False}
    for r in REGIONS:
        a = answers.get(r)
        out[r] = {"answer": [f"In {r} India, {a}" if a else "N/A"]}
    out["pairwise_agreements"] = {
        f"{a}_{b}": {"agreement": key.get(a) is not None and key.get(a) == key.get(b)}
        for a, b in combinations(REGIONS, 2)}
    return out


def _write(tmp_path, questions: list[dict]):
    (tmp_path / "indica").mkdir(parents=True, exist_ok=True)
    (tmp_path / "indica" / "dataset.json").write_text(json.dumps({"questions": questions}), encoding="utf-8")
    return tmp_path


def _random_dataset(n: int, seed: int) -> list[dict]:
    """n questions, every region answering, 3-5 distinct answers, regions grouped at random."""
    rng = np.random.default_rng(seed)
    out = []
    for q in range(n):
        k = int(rng.integers(3, 6))
        labels = np.concatenate([np.arange(k), rng.integers(0, k, 5 - k)])
        rng.shuffle(labels)
        answers = {r: f"answer {q}-{lab}." for r, lab in zip(REGIONS, labels, strict=True)}
        out.append(_question(f"q_{q:03d}", answers, text=f"Question {q}?"))
    return out


# --- items ------------------------------------------------------------------------------------------

def test_items_merge_identical_answers_strip_prefixes_and_keep_regions(tmp_path, cfg):
    data = [
        # North and Central agree (up to case and the final stop); South, East and West differ
        _question("q_001", {"North": "people eat poha.", "Central": "People eat Poha",
                            "South": "people eat idli.", "East": "people eat luchi.",
                            "West": "people eat thepla."},
                  text="What is eaten at breakfast?"),
        # two distinct answers only: region-anchored, not region-agnostic
        _question("q_002", {"North": "tea.", "South": "coffee.", "East": "tea.",
                            "West": None, "Central": None}),
        # every region agrees: no choice, no item
        _question("q_003", {r: "rice." for r in REGIONS}),
    ]
    items = indica.load_items(_write(tmp_path, data), cfg).set_index("item_id")
    assert sorted(items.index) == [
        "indica/region_agnostic/q_001",
        *[f"indica/region_anchored/q_001/{r}" for r in sorted(REGIONS)],
        *[f"indica/region_anchored/q_002/{r}" for r in ("East", "North", "South")]]
    ra = items.loc["indica/region_agnostic/q_001"]
    assert list(ra["options"]) == ["People eat poha.", "People eat idli.", "People eat luchi.",
                                   "People eat thepla."]
    assert json.loads(ra["meta"])["option_regions"] == [["North", "Central"], ["South"], ["East"], ["West"]]
    assert ra["question"] == "In India, what is eaten at breakfast?" and ra["answer"] is None
    east = items.loc["indica/region_anchored/q_001/East"]
    assert east["question"] == "In East India, what is eaten at breakfast?"
    assert east["answer"] == "People eat luchi." and east["group_id"] == "indica/region_anchored/q_001"
    central = items.loc["indica/region_anchored/q_001/Central"]
    assert central["answer"] == "People eat poha."  # the merged option, first region's wording
    assert json.loads(central["context"]) == {"persona": "a person living in Central India"}
    assert list(items.loc["indica/region_anchored/q_002/East", "options"]) == ["Tea.", "Coffee."]
    assert not any("India," in o for opts in items["options"] for o in opts)


def test_region_agnostic_needs_the_authors_disagreement(tmp_path, cfg):
    # 3 distinct answers among 5 regions with 2+2+1 agreeing: 8 of 10 pairs disagree -> asked;
    # with the flags saying 4 pairs agree (0.6 disagree) -> not asked (RAMCQ_creation.py)
    q = _question("q_001", {"North": "a.", "South": "a.", "East": "b.", "West": "b.", "Central": "c."})
    items = indica.load_items(_write(tmp_path, [q]), cfg)
    assert "indica/region_agnostic/q_001" in set(items["item_id"])
    q["pairwise_agreements"]["North_East"]["agreement"] = True
    q["pairwise_agreements"]["North_West"]["agreement"] = True
    items = indica.load_items(_write(tmp_path, [q]), cfg)
    assert "indica/region_agnostic/q_001" not in set(items["item_id"])


def test_regions_are_params(tmp_path, cfg):
    # a region spelt otherwise upstream is a params edit; a culture without INDICA regions is named
    q = _question("q_001", {"North": "a.", "South": "b.", "East": "c.", "West": "d.", "Central": "e."})
    q["Centre"] = q.pop("Central")
    cfg2 = json.loads(json.dumps(cfg))
    from culteval.config import culture_of
    key = culture_of(cfg2)
    cfg2["cultures"][key]["regions"]["Central"]["aliases"]["indica"] = ["Centre"]
    items = indica.load_items(_write(tmp_path, [q]), cfg2)
    assert "indica/region_anchored/q_001/Central" in set(items["item_id"])
    cfg2["cultures"][key]["regions"] = {}
    with pytest.raises(ValueError, match=rf"params.cultures.{key}.regions"):
        indica.load_items(tmp_path, cfg2)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda q: q.pop("East"),
     r"question 0 \(q_001\): no answer field for region 'East' \(spellings tried: \['East'\]\)"),
    (lambda q: q["North"].update(answer="poha"), r"question 0 \(q_001\): North.answer is not a list"),
    (lambda q: q.update(question_id="../q"),
     r"question 0 \(\.\./q\): question_id '\.\./q' is missing or not a plain key"),
    (lambda q: q.update(question_text=" "), r"question 0 \(q_001\): empty question_text"),
    (lambda q: q.update(pairwise_agreements=["North_South"]),
     r"question 0 \(q_001\): pairwise_agreements is not an object"),
])
def test_damaged_records_name_file_question_and_field(tmp_path, cfg, damage, message):
    q = _question("q_001", {"North": "a.", "South": "b.", "East": "c.", "West": "d.", "Central": "e."})
    damage(q)
    with pytest.raises(ValueError, match=r"indica/dataset.json: " + message):
        indica.load_items(_write(tmp_path, [q]), cfg)


def test_repeated_question_id_and_missing_file_are_named(tmp_path, cfg):
    q = _question("q_001", {"North": "a.", "South": "b.", "East": "c.", "West": "d.", "Central": "e."})
    with pytest.raises(ValueError, match=r"question 1 \(q_001\): question_id 'q_001' repeats"):
        indica.load_items(_write(tmp_path, [q, q]), cfg)
    with pytest.raises(FileNotFoundError, match=r"task indica: .*indica/dataset.json not found"):
        indica.load_items(tmp_path / "nowhere", cfg)


def test_demographic_persona_names_the_asked_region(tmp_path, cfg):
    data = [_question("q_001", {"North": "a.", "South": "b.", "East": "c.", "West": "d.", "Central": "e."})]
    items = indica.load_items(_write(tmp_path, data), cfg)
    p = prompts.render(items, "demographic", cfg, translations=None, mode="both").set_index("item_id")
    east = p.loc["indica/region_anchored/q_001/East", "text"].iloc[0]
    assert "Answer as a person living in East India would." in east
    agnostic = p.loc["indica/region_agnostic/q_001", "text"].iloc[0]
    assert "Answer as a person living in India would." in agnostic


def test_mirror_questions_follow_the_authors_rule(mirror, cfg):
    """The region-agnostic questions are those the authors' RAMCQ_creation.py keeps (re-read here)."""
    data = json.loads((mirror / "indica" / "dataset.json").read_text(encoding="utf-8"))["questions"]
    keep, anchored = set(), set()
    for q in data:
        answers = [(r, re.sub(r"^In\s+(?:North|South|East|West|Central)\s+India,\s*", "", q[r]["answer"][0],
                              flags=re.IGNORECASE).strip())
                   for r in REGIONS if q[r]["answer"] and q[r]["answer"][0] != "N/A"]
        unique = {re.sub(r"[.!?]+$", "", re.sub(r"\s+", " ", a.lower().strip())) for _, a in answers}
        pairs = q["pairwise_agreements"]
        ratio = sum(1 for p in pairs.values() if p.get("agreement") is False) / len(pairs)
        if len(answers) >= 3 and len(unique) >= 3 and ratio >= 0.7:
            keep.add(q["question_id"])
        if len(unique) >= 2:
            anchored |= {f"{q['question_id']}/{r}" for r, _ in answers}
    items = indica.load_items(mirror, cfg)
    got = items[items["subset"] == "region_agnostic"]["item_id"].str.split("/").str[2]
    assert set(got) == keep and len(keep) == 79
    got = items[items["subset"] == "region_anchored"]["item_id"].str.split("/", n=2).str[2]
    assert set(got) == anchored


# --- metrics -----------------------------------------------------------------------------------------

def _items(tmp_path, cfg, n=40, seed=7):
    return indica.load_items(_write(tmp_path, _random_dataset(n, seed)), cfg)


def _rows(rows) -> dict[str, dict]:
    return {r["metric"]: r for r in rows}


def _model(items, pick) -> dict[str, np.ndarray]:
    """Per item: ``pick(option_regions, item_row)`` -> its distribution."""
    return {r.item_id: np.asarray(pick(json.loads(r.meta)["option_regions"], r), float)
            for r in items.itertuples(index=False)}


def _north(owners, row=None):
    return [0.9 if "North" in o else 0.1 / (len(owners) - 1) for o in owners]


def _trials(items, dists, k=3, seed=0):
    """Sampled answers drawn from each item's distribution (k per item), -1 now and then."""
    rng = np.random.default_rng(seed)
    rows = []
    for iid, p in sorted(dists.items()):
        for t in range(k):
            parsed = -1 if rng.random() < 0.05 else int(rng.choice(len(p), p=p))
            rows.append({"prompt_id": f"{iid}#default#p0", "item_id": iid, "trial": t, "parsed": parsed})
    return pd.DataFrame(rows)


def test_always_north_is_over_selected_and_significant(tmp_path, cfg):
    items = _items(tmp_path, cfg)
    dists = _model(items, _north)
    rows = _rows(indica_metrics(items, dists, _trials(items, dists), cfg))
    north, expected = rows["selection_share:North"], rows["expected_share:North"]["value"]
    # 0.9 of the mass on North's answer, which North shares with other regions on some questions
    assert north["value"] > 0.7 and expected < 0.25
    assert north["ci_low"] > 2 * expected and rows["selection_ratio:North"]["ci_low"] > 2.5
    for r in ("South", "East", "West", "Central"):
        assert rows[f"selection_ratio:{r}"]["ci_high"] < 1
    assert rows["region_permutation_p"]["value"] < 0.01
    assert rows["region_chi2_p"]["value"] < 0.01 and rows["region_chi2_sampled_p"]["value"] < 0.01
    assert rows["selection_share_sampled:North"]["value"] > 0.6
    assert sum(rows[f"selection_share:{r}"]["value"] for r in REGIONS) == pytest.approx(1)
    assert sum(rows[f"expected_share:{r}"]["value"] for r in REGIONS) == pytest.approx(1)
    assert rows["selection_share:North"]["n_items"] == 40


def test_uniform_model_selects_as_expected(tmp_path, cfg):
    items = _items(tmp_path, cfg)
    dists = _model(items, lambda owners, row: [1 / len(owners)] * len(owners))
    rows = _rows(indica_metrics(items, dists, None, cfg))
    for r in REGIONS:
        share, expected = rows[f"selection_share:{r}"], rows[f"expected_share:{r}"]["value"]
        assert share["value"] == pytest.approx(expected, abs=1e-12)
        assert share["ci_low"] <= expected <= share["ci_high"]
        assert rows[f"selection_ratio:{r}"]["value"] == pytest.approx(1)
    # expected shares follow the options offered, not a flat 1/5
    assert max(abs(rows[f"expected_share:{r}"]["value"] - 0.2) for r in REGIONS) > 0.01
    assert rows["region_permutation_p"]["value"] == 1.0
    assert rows["region_chi2_p"]["value"] == pytest.approx(1.0)


def test_anchored_accuracy_and_confusion_of_a_north_answerer(tmp_path, cfg):
    items = _items(tmp_path, cfg)
    dists = _model(items, _north)
    rows = _rows(indica_metrics(items, dists, None, cfg))
    anchored = items[items["subset"] == "region_anchored"]
    assert rows["acc_prob:North"]["value"] == 1.0
    for r in REGIONS:
        assert rows[f"confusion:{r}>North"]["value"] == 1.0
        assert rows[f"confusion:{r}>{r}"]["value"] == rows[f"acc_prob:{r}"]["value"]
        mine = anchored[anchored["item_id"].str.endswith("/" + r)]
        shares = [float("North" in o[[str(x) for x in row.options].index(row.answer)])
                  for row in mine.itertuples() for o in [json.loads(row.meta)["option_regions"]]]
        assert rows[f"acc_prob:{r}"]["value"] == pytest.approx(np.mean(shares))
        assert rows[f"acc_prob:{r}"]["n_items"] == len(mine) == 40


def test_numbers_match_an_independent_recomputation(tmp_path, cfg):
    items = _items(tmp_path, cfg, n=30, seed=3)
    rng = np.random.default_rng(11)
    dists = {iid: rng.dirichlet(np.ones(len(o)))
             for iid, o in zip(items["item_id"], items["options"], strict=True)}
    trials = _trials(items, dists, k=4, seed=5)
    rows = _rows(indica_metrics(items, dists, trials, cfg))
    want = indica_numbers(items, dists, trials)
    assert {m for m in want} <= set(rows)
    assert len([m for m in want if m.startswith(("acc_prob:", "selection_share:"))]) == 10
    for metric, values in want.items():
        assert rows[metric]["n_items"] == len(values), metric
        assert rows[metric]["value"] == pytest.approx(float(np.mean(values)), abs=1e-12), metric


# --- claim and report --------------------------------------------------------------------------------

def _summary(items, cfg, pick, model="m") -> pd.DataFrame:
    rows = indica_metrics(items, _model(items, pick), None, cfg)
    return pd.DataFrame([{"model": model, "kind": "model", "task": "indica", "strategy": "default",
                          "flags": "", **r} for r in rows])


def test_the_indica_claim_is_read_from_the_selection_ratios(tmp_path, cfg):
    from culteval.metrics.claims import (
        CONTRADICTED,
        INCONCLUSIVE,
        NOT_DECIDABLE,
        NOT_TESTABLE,
        SUPPORTED,
        claims,
    )

    items = _items(tmp_path, cfg)

    def central_north(owners, row):
        w = [1.0 + 5 * any(r in o for r in ("Central", "North")) for o in owners]
        return [x / sum(w) for x in w]

    verdict = {c.key: c for c in claims(_summary(items, cfg, central_north))}["indica-default-region"]
    assert verdict.verdict == SUPPORTED and len(verdict.evidence) == 2
    verdict = {c.key: c for c in claims(_summary(items, cfg, _north))}["indica-default-region"]
    assert verdict.verdict == CONTRADICTED and "Central" in verdict.reason
    # North over-selected, Central within chance: one of the two regions only
    def run(north_p, central_p, central=(1.0, 0.9, 1.1), floor=0.001):
        return pd.DataFrame([
            {"model": "m", "task": "indica", "strategy": "default", "metric": f"selection_ratio:{r}",
             "value": v, "ci_low": lo, "ci_high": hi, "n_items": 40, "flags": ""}
            for r, (v, lo, hi) in [("North", (1.4, 1.2, 1.6)), ("Central", central)]]
            + [{"model": "m", "task": "indica", "strategy": "default", "metric": f"{name}:{r}",
                "value": v, "ci_low": np.nan, "ci_high": np.nan, "n_items": 40, "flags": ""}
               for r, p in (("North", north_p), ("Central", central_p))
               for name, v in (("region_permutation_p", p), ("region_permutation_floor", floor))])

    def verdict_of(summary):
        return {c.key: c for c in claims(summary)}["indica-default-region"]

    assert verdict_of(run(0.001, 0.6)).verdict == INCONCLUSIVE
    # both decided by their own permutation test, not by the bootstrap interval
    assert verdict_of(run(0.001, 0.002, central=(1.3, 1.1, 1.5))).verdict == SUPPORTED
    assert verdict_of(run(0.001, 0.002, central=(1.3, 0.9, 1.5))).verdict == SUPPORTED
    assert verdict_of(run(0.001, 0.3, central=(1.3, 1.1, 1.5))).verdict == INCONCLUSIVE
    # Holm over the two rows: 0.03 passes 0.05 / 1 but not 0.05 / 2
    assert verdict_of(run(0.001, 0.03, central=(1.3, 1.1, 1.5))).verdict == SUPPORTED
    assert verdict_of(run(0.03, 0.03, central=(1.3, 1.1, 1.5))).verdict == INCONCLUSIVE
    assert verdict_of(run(0.04, 0.001, central=(1.3, 1.1, 1.5))).verdict == SUPPORTED
    assert verdict_of(run(0.2, 0.001, central=(1.3, 1.1, 1.5))).verdict == INCONCLUSIVE
    # no row's test can reach Holm's first threshold (0.05 / 2): never a verdict, say what is missing
    stuck = verdict_of(run(0.04, 0.04, central=(1.3, 1.1, 1.5), floor=0.04))
    assert stuck.verdict == NOT_DECIDABLE and "more region-agnostic questions" in stuck.reason
    assert "40 questions" in stuck.reason
    empty = pd.DataFrame(columns=["model", "task", "strategy", "metric", "value", "ci_low", "ci_high",
                                  "n_items", "flags"])
    assert {c.key: c for c in claims(empty)}["indica-default-region"].verdict == NOT_TESTABLE


def test_region_tests_hold_their_level_on_few_questions(tmp_path, cfg):
    """A model without regional preference (its option masses fall on the options at random) on 8
    questions, as in the default run: each region's permutation test rejects at 5% about 5% of the
    time, where the percentile bootstrap interval of the ratio misses 1 far more often. The claim
    rests on the test for that reason."""
    from culteval.metrics.regions import _agnostic_arrays, permutation_test, ratio_ci

    items = _items(tmp_path, cfg, n=16, seed=4)
    items = items[items["subset"].eq("region_agnostic")].head(8)
    rng = np.random.default_rng(0)
    small = {**cfg, "metrics": {**cfg["metrics"], "bootstrap": 199}}
    rejected = missed = 0
    reps = 150
    for rep in range(reps):
        dists = {r.item_id: rng.dirichlet(np.ones(len(r.options)) * 0.5) for r in items.itertuples()}
        ids, mats, sel, exp = _agnostic_arrays(items, dists, REGIONS)
        _, p_region = permutation_test([dists[i] for i in ids], mats, 199, rep)
        k = REGIONS.index("North")
        rejected += p_region[k] < 0.05
        lo, hi = ratio_ci(sel[:, k], exp[:, k], {**small, "seed": rep})
        missed += not lo <= 1 <= hi
    assert len(ids) == 8
    print(f"\n8 questions, {reps} runs: permutation test rejects {rejected / reps:.1%}, "
          f"bootstrap interval misses 1 in {missed / reps:.1%}")
    assert rejected / reps <= 0.09, rejected / reps
    assert missed > rejected, (missed, rejected)


def test_a_region_offered_on_few_questions_still_has_an_interval():
    """The ratio's bootstrap resamples the questions offering the region (its n_items): with 4 of 8
    questions offering it, some resamples of all 8 hold none of them (0 / 0), which used to make
    the whole interval NaN, as it did for East in the default run."""
    from culteval.metrics.regions import ratio_ci

    cfg = {"seed": 0, "metrics": {"bootstrap": 2000, "ci": 0.95}}
    e = np.array([0.25, 0.0, 0.2, 0.0, 0.25, 0.0, 1 / 3, 0.0])
    s = np.array([0.5, 0.0, 0.1, 0.0, 0.3, 0.0, 0.2, 0.0])
    lo, hi = ratio_ci(s, e, cfg)
    assert np.isfinite([lo, hi]).all() and lo < s.sum() / e.sum() < hi
    # the same interval as over the four offering questions alone
    assert (lo, hi) == ratio_ci(s[e > 0], e[e > 0], cfg)


def test_the_floor_is_the_smallest_p_the_region_test_can_give(tmp_path, cfg):
    from culteval.metrics.claims import NOT_DECIDABLE, claims
    from culteval.metrics.regions import _agnostic_arrays, permutation_floor, permutation_test

    items = _items(tmp_path, cfg, n=12, seed=2)
    items = items[items["subset"].eq("region_agnostic")].head(2)
    dists = _model(items, lambda owners, row: [1.0 if "North" in o else 0.0 for o in owners])
    ids, mats, _, _ = _agnostic_arrays(items, dists, REGIONS)
    k = REGIONS.index("North")
    by_hand = np.prod([1 / len(m) for m in mats])  # North names one option of each question
    assert permutation_floor(mats, 10_000)[k] == pytest.approx(by_hand)
    assert permutation_floor(mats, 9)[k] == pytest.approx(max(by_hand, 0.1))
    # a model that always picks North's answer reaches the floor, and on 2 questions that cannot
    # pass Holm: the claim says so instead of a verdict
    _, p_region = permutation_test([dists[i] for i in ids], mats, 20_000, 0)
    assert p_region[k] == pytest.approx(by_hand, rel=0.15)
    verdict = {c.key: c for c in claims(_summary(items, cfg, _north))}["indica-default-region"]
    assert verdict.verdict == NOT_DECIDABLE and "2 questions" in verdict.reason


def test_report_shows_regions_figure_and_confusion_table(tmp_path, cfg):
    from culteval.report.figures import regions_figure
    from culteval.report.tables import paper_tables

    items = _items(tmp_path, cfg)
    summary = _summary(items, cfg, _north)
    tables = paper_tables(summary)["regions"]
    assert [t["title"].split(": ")[1] for t in tables] == [
        "whose answer is picked, region-agnostic questions",
        "region-anchored questions, accuracy and confusion"]
    conf = tables[1]
    labels = [h["label"] for h in conf["header"][0]]
    assert "picked North's answer" in labels and conf["key"] == ["model", "strategy", "region"]
    east = next(r for r in conf["rows"] if r["key"] == ["m", "default", "East"])
    assert east["cells"][labels.index("picked North's answer")]["value"] == "1"
    assert "cross-lingual and native unsupported" in conf["note"] and "CC BY 4.0" in conf["note"]
    assert paper_tables(summary[summary["task"].eq("other")])["regions"] == []
    a, b = regions_figure(summary, tmp_path / "a.png"), regions_figure(summary, tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes() and a.read_bytes()[:4] == b"\x89PNG"


def test_a_run_without_opinions_has_an_empty_language_table(tmp_path, cfg):
    # the report of an INDICA-only run must not fail on the mixed model's (absent) inputs
    from culteval.metrics.comparisons import language_table

    summary = _summary(_items(tmp_path, cfg, n=5), cfg, _north).assign(culture="hi")
    table = language_table(summary, cfg)
    assert table.empty and "language" in table.columns


def test_a_default_sample_is_drawn_per_subset(tmp_path, cfg):
    # culteval.costmodel.stratum: a sample keeps both kinds of question
    from culteval.costmodel import stratum

    items = _items(tmp_path, cfg, n=3)
    assert {stratum(r, cfg) for r in items.itertuples(index=False)} == {"region_agnostic", "region_anchored"}


def test_group_means_leave_out_test_statistics_and_p_values():
    """A mean of models' chi-square statistics or p-values is no test: the group rows carry the
    shares and ratios, never those."""
    from culteval.metrics.comparisons import group_means

    rows = [{"model": m, "task": "indica", "strategy": "default", "metric": metric, "value": v}
            for m in ("a", "b")
            for metric, v in (("selection_share:North", 0.3), ("region_chi2", 4.0), ("region_chi2_p", 0.04),
                              ("region_permutation_p", 0.02), ("region_chi2_sampled_p", 0.5),
                              ("region_permutation_p:North", 0.01),
                              ("region_permutation_floor:North", 0.001))]
    cfg = {"models": {"a": {"group": "global"}, "b": {"group": "global"}}}
    out = group_means(pd.DataFrame(rows), cfg)
    assert out["metric"].tolist() == ["selection_share:North"] and out["n_models"].tolist() == [2]
