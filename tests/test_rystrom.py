"""Rystrom et al. (2025) measured as their code measures it (github.com/jhrystrom/
multicultural-alignment): the pro-score rule with missing answers off the scale, alignment across
responses, pairwise self-consistency, and the mixed model's fits and refusals."""

from __future__ import annotations

import ast
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from culteval.metrics import proscore
from culteval.metrics.comparisons import mixed_effects, mixed_effects_note, unidentified
from culteval.metrics.opinions import global_opinions_metrics
from culteval.metrics.robustness import robustness_metrics
from culteval.tasks.global_opinions import answered_options

SEED = 20250527
CFG = {"seed": SEED, "metrics": {"bootstrap": 50, "ci": 0.95, "low_mass": 0.1},
       "target": {"country": "India"}, "reference": {"country": "United States"}}
NOISE = 1 - 0.045
#: what a WVS/EVS or Pew missing code looks like when spelled as an option text
LOOKS_MISSING = re.compile(r"missing|refused|don'?t know|\bdk\b|no answer|not applicable|not available"
                           r"|multiple answers", re.IGNORECASE)


def _items(shares: dict[str, list[float]], options: dict[str, list[str]] | None = None,
           country: str = "India") -> pd.DataFrame:
    rows = []
    for iid, s in shares.items():
        opts = (options or {}).get(iid) or [f"o{j}" for j in range(len(s))]
        rows.append({"item_id": iid, "options": opts, "distributions": json.dumps({country: s}),
                     "meta": "{}"})
    return pd.DataFrame(rows)


def _raw(answers: dict[str, list[int]], k: dict[str, int]) -> pd.DataFrame:
    """Distribution rows (uniform) and sampled rows: per item its parsed answers, over two answer
    orders (the first half on p0, the rest on p1)."""
    rows = []
    for iid, parsed in answers.items():
        half = len(parsed) // 2
        for perm, part in ((0, parsed[:half]), (1, parsed[half:])):
            pid = f"{iid}#default#p{perm}"
            rows.append({"prompt_id": pid, "item_id": iid, "permutation": perm, "trial": -1,
                         "probs": [1 / k[iid]] * k[iid], "option_mass": 0.9, "generated": None,
                         "parsed": None})
            for t, a in enumerate(part):
                rows.append({"prompt_id": pid, "item_id": iid, "permutation": perm, "trial": t, "probs": None,
                             "option_mass": None, "generated": "x", "parsed": a})
    return pd.DataFrame(rows)


def _metrics(rows) -> dict:
    return {r["metric"]: r for r in rows}


# ---- the pro-score rule: missing answers are not scale points ----

@pytest.mark.parametrize(("options", "roles"), [
    (["a", "b", "c"], [1, 0, 0]),                          # 3 points: the first option
    ([str(i) for i in range(1, 11)], [0] * 5 + [1] * 5),   # 10 points: the upper half
    (["a", "b"], [1, 0]),                                  # otherwise the lower half ...
    (["a", "b", "c", "d"], [1, 1, 0, 0]),
    (["a", "b", "c", "d", "e"], [1, 1, 0, 0, 0]),          # ... the middle of an odd scale is not pro
    (["Very", "Somewhat", "Not too", "Not at all", "DK/Refused"], [1, 1, 0, 0, -1]),  # missing: neither
    (["Good", "Bad", "Don't know", "No answer"], [1, 0, -1, -1]),
    # a WVS 10-point item with EVS's missing code: still 10 points, pro = the upper half
    ([str(i) for i in range(1, 11)] + ["Other missing; Multiple answers Mail (EVS)"],
     [0] * 5 + [1] * 5 + [-1]),
    # a 3-point item with two missing codes: one pro option, not two
    (["Yes", "Depends", "No", "Missing; Not available", "Missing; Not applicable for other reasons"],
     [1, 0, 0, -1, -1]),
])
def test_the_pro_options_follow_their_rule(options, roles):
    assert proscore.option_roles(options).tolist() == roles


def _mirror_rows(mirror):
    df = pd.read_csv(mirror / "global_opinions" / "global_opinions.csv", dtype=str, keep_default_na=False)
    for q, o, s in zip(df["question"], df["options"], df["selections"], strict=True):
        body = s[s.index("{"):s.rindex("}") + 1]
        yield q, [str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)
                  for x in ast.literal_eval(o)], ast.literal_eval(body)


def test_every_option_text_of_the_mirror_that_looks_missing_is_classified(mirror):
    """Every option text of the mirror's whole GlobalOpinionQA file that looks like a missing code
    is a missing answer in the rule file (or a "Total N=" row, which excludes its question)."""
    texts = {t for _, options, _ in _mirror_rows(mirror) for t in options}
    looks = sorted(t for t in texts if LOOKS_MISSING.search(t))
    assert len(looks) >= 15  # the file has them: the check below is not vacuous
    unclassified = [t for t in looks if not proscore.is_missing(t)]
    assert unclassified == []


def test_option_lists_that_are_not_one_scale_are_found_in_the_mirror(mirror):
    """"Total N=" rows and option lists joining several questions' options are excluded by reason,
    never given pro/con by position; the rest of the file is scored."""
    reasons = {}
    for q, options, selections in _mirror_rows(mirror):
        problem = proscore.scale_problem(q, options, answered_options(selections, len(options)))
        if problem:
            reasons.setdefault(problem, []).append(q)
    assert len(reasons[proscore.TOTAL_ROW]) == 6
    assert len(reasons[proscore.MERGED_SCALES]) >= 20
    # every list that carries a borrowed 2020 cooperation statement is caught
    assert all("survey country) had cooperated" not in q for q in reasons[proscore.MERGED_SCALES])


def test_a_merged_option_list_is_excluded_counted_and_left_out_of_alignment():
    """Two countries answering on disjoint halves of one list: ``merged_scales``, as is a list
    carrying a statement borrowed from another question; a "Total N=" option is ``total_row``."""
    opts = ["Agree", "Disagree", "Good", "Bad", "DK/Refused"]
    disjoint = answered_options({"A": [0.6, 0.3, 0, 0, 0.1], "B": [0, 0, 0.3, 0.6, 0.1]}, 5)
    assert disjoint == [[0, 1, 4], [2, 3, 4]]  # both hold DK mass: only substantive options count
    assert proscore.scale_problem("q?", opts, disjoint) == "merged_scales"
    assert proscore.scale_problem("q?", opts, [[0, 1, 4], [0, 2, 4]]) is None  # they share Agree
    assert proscore.scale_problem("q?", opts, [[0, 1], [2]]) is None  # one option: a unanimous country
    statement = "Many of the problems facing our country can be solved by working with other countries"
    borrowed = ["Yes", "No", statement]
    assert proscore.scale_problem("Is it good?", borrowed) == "merged_scales"
    assert proscore.scale_problem(statement + ", or few of them?", borrowed) is None
    assert proscore.scale_problem("q?", ["Yes", "No", "Total     N="]) == "total_row"
    shares = {f"q{i}": [0.2 + 0.1 * i, 0.8 - 0.1 * i] for i in range(5)}
    items = _items(shares)
    items["question"] = "q?"
    items.at[4, "options"] = ["Good", "Bad"]
    items.loc[4, "meta"] = json.dumps({"answered_options": [[0], [1]]})  # two unanimous countries: fine
    assert proscore.excluded_counts(items) == {}
    items.at[4, "options"] = ["Good", "Bad", "Agree", "Disagree"]
    items.loc[4, "distributions"] = json.dumps({"India": [0.5, 0.5, 0, 0]})
    items.loc[4, "meta"] = json.dumps({"answered_options": [[0, 1], [2, 3]]})
    dists = {k: np.asarray([0.3 + 0.1 * int(k[1]), 0.7 - 0.1 * int(k[1])]) for k in shares}
    dists["q4"] = np.asarray([0.4, 0.3, 0.2, 0.1])
    m = _metrics(global_opinions_metrics(items, dists, None, CFG))
    assert m["proscore_excluded_merged_scales"]["value"] == 1
    assert m["proscore_excluded_merged_scales"]["n_items"] == 5
    assert m["alignment_expected"]["n_items"] == 4
    assert m["alignment_unscored"]["value"] == 1
    assert "alignment" not in m  # no sampled answers: no response-level alignment


# ---- alignment: across responses, as their polars_sample_and_calculate ----

def test_alignment_is_a_spearman_across_responses_computed_by_hand():
    """Four 2-option questions (option 0 = pro) with India's pro-scores 0.2, 0.4, 0.6, 0.8, and
    sampled answers; each answer is one row: (its pro-score, its question's survey pro-score).

        q0: pro, con, con   -> (1, .2) (0, .2) (0, .2)
        q1: con, con        -> (0, .4) (0, .4)
        q2: pro, con        -> (1, .6) (0, .6)
        q3: pro, pro, pro   -> (1, .8) (1, .8) (1, .8)

    Ranks with ties averaged: the 5 zeros get 3, the 5 ones 8; the survey values 2 (three 0.2s),
    4.5, 6.5, 9; both means are 5.5. Sum of products of deviations 2.5 x 16 = 40, sums of squares
    62.5 and 77.5: Spearman = 40 / sqrt(62.5 x 77.5) = 0.5747. The per-question (expected
    pro-score) correlation of the same model is a different number (0.8)."""
    x_rank = np.array([8, 3, 3, 3, 3, 8, 3, 8, 8, 8], float)
    y_rank = np.array([2, 2, 2, 4.5, 4.5, 6.5, 6.5, 9, 9, 9], float)
    dx, dy = x_rank - x_rank.mean(), y_rank - y_rank.mean()
    by_hand = float((dx * dy).sum() / math.sqrt((dx ** 2).sum() * (dy ** 2).sum()))
    assert by_hand == pytest.approx(40 / math.sqrt(62.5 * 77.5), abs=1e-12)

    shares = {f"q{i}": [p, 1 - p] for i, p in enumerate((0.2, 0.4, 0.6, 0.8))}
    answers = {"q0": [0, 1, 1], "q1": [1, 1], "q2": [0, 1], "q3": [0, 0, 0]}
    k = {q: 2 for q in shares}
    items = _items(shares)
    dists = {q: np.asarray([np.mean(np.asarray(a) == 0), np.mean(np.asarray(a) == 1)])
             for q, a in answers.items()}
    m = _metrics(global_opinions_metrics(items, dists, _raw(answers, k), CFG))
    assert m["alignment"]["value"] == pytest.approx(by_hand, abs=1e-12)
    assert m["alignment"]["n_items"] == 10  # responses
    assert m["alignment"]["ci_low"] <= by_hand <= m["alignment"]["ci_high"]
    assert m["alignment_expected"]["value"] == pytest.approx(0.8)  # across the 4 questions
    again = _metrics(global_opinions_metrics(items, dists, _raw(answers, k), CFG))
    assert (again["alignment"]["ci_low"], again["alignment"]["ci_high"]) == (
        m["alignment"]["ci_low"], m["alignment"]["ci_high"])  # seeded: same bytes


def test_a_contrarian_model_gets_negative_alignment():
    """India's majority is pro on every question (0.5-0.9, rising); a model that always stays below
    it, less so where India is more unanimous, is aligned negatively by the per-question measure;
    a model that follows India scores +1."""
    rng = np.random.default_rng(1)
    shares, contrarian, follower, options = {}, {}, {}, {}
    for i, india in enumerate(np.linspace(0.5, 0.9, 12)):
        k, iid = [2, 3, 4, 5][i % 4], f"q{i:02d}"
        shares[iid], options[iid] = _split(rng, k, india), [f"o{j}" for j in range(k)]
        contrarian[iid] = np.asarray(_split(rng, k, 0.06 - 0.05 * (india - 0.5) / 0.4))  # 0.06 -> 0.01
        follower[iid] = np.asarray(_split(rng, k, india - 0.1))
    items = _items(shares, options)
    rho, n, _ = proscore.alignment_expected(items, contrarian, "India")
    assert n == 12 and rho == pytest.approx(-1.0)
    assert proscore.alignment_expected(items, follower, "India")[0] == pytest.approx(1.0)


def test_questions_the_rule_cannot_score_are_excluded_and_counted():
    assert proscore.option_roles(["only", "DK/Refused"]) is None  # one substantive option
    assert proscore.option_roles([str(i) for i in range(12)]) is None  # 12 points: outside 2..11
    shares = {"q0": [0.6, 0.4], "q1": [0.3, 0.7], "q2": [0.5, 0.5], "q3": [0.2, 0.8], "q4": [1.0]}
    items = _items(shares, {"q4": ["only"]})
    dists = {k: np.asarray(v) for k, v in shares.items()}
    rho, n, unscored = proscore.alignment_expected(items, dists, "India")
    assert (rho, n, unscored) == (pytest.approx(1.0), 4, 1)
    assert proscore.excluded_counts(items) == {"points_out_of_range": 1}


def _split(rng, k: int, p_pro: float) -> list[float]:
    """A k-option distribution with ``p_pro`` on the pro options (spread at random)."""
    roles = proscore.option_roles([f"o{j}" for j in range(k)])
    out = np.zeros(k)
    out[roles == 1] = p_pro * rng.dirichlet(np.ones(int((roles == 1).sum())))
    out[roles == 0] = (1 - p_pro) * rng.dirichlet(np.ones(int((roles == 0).sum())))
    return out.tolist()


# ---- self-consistency: every pair of single responses, as their calculate_consistency ----

def test_consistency_pairs_every_ordered_pair_of_distinct_responses():
    """Their self-join keeps (i, j) and (j, i) for i != j. Questions A: pro, pro, con; B: con, con;
    C: pro, pro. Ordered pairs (first, second): A (1,1) (1,0) (1,1) (1,0) (0,1) (0,1); B (0,0) (0,0);
    C (1,1) (1,1). Both sides have six 1s in ten (both orientations: the same margins), four pairs
    are (1, 1): covariance 0.4 - 0.36 = 0.04, variances 0.24, so Spearman (= Pearson on 0/1 values)
    = 1/6, divided by (1 - 0.045). One orientation per pair would give another number."""
    first = [1, 1, 1, 1, 0, 0, 0, 0, 1, 1]
    second = [1, 0, 1, 0, 1, 1, 0, 0, 1, 1]
    by_hand = float(np.corrcoef(first, second)[0, 1]) / NOISE
    assert by_hand == pytest.approx((1 / 6) / NOISE)
    answers = {"A": np.array([1.0, 1, 0]), "B": np.array([0.0, 0]), "C": np.array([1.0, 1])}
    value, n = proscore.pairwise_consistency(answers)
    assert (value, n) == (pytest.approx(by_hand), 3)


def test_consistency_of_identical_answers_is_one_over_the_noise_correction():
    k = {f"q{i}": 4 for i in range(6)}
    answers = {q: [0, 1, 0, 1] if i % 2 else [2, 3, 3, 2] for i, q in enumerate(k)}  # all pro / all con
    m = _metrics(robustness_metrics(_raw(answers, k), CFG, ordered_scale=True,
                                    items=_items({q: [0.25] * 4 for q in k})))
    assert m["self_consistency_pairwise"]["value"] == pytest.approx(1 / NOISE)
    assert m["self_consistency_pairwise"]["n_items"] == 6
    assert m["invalid_rate_proscore"]["value"] == 0
    assert "self_consistency_split_half" not in m


@pytest.mark.parametrize("per_question", [2, 5, 20])
def test_consistency_does_not_grow_with_the_number_of_responses(per_question):
    """A model with a fixed pro propensity per question (uniform over questions) answers each of 800
    2-option questions ``per_question`` times. One response's reliability is the intraclass
    correlation Var(p) / (E p (1 - E p)) = (1/12) / (1/4) = 1/3, whatever the number of responses;
    the split-half of question means this replaces rose from 0.34 to 0.89 over 2 -> 20."""
    rng = np.random.default_rng(7)
    p = rng.uniform(0, 1, 800)
    answers = {f"q{i:03d}": (rng.uniform(size=per_question) < p[i]).astype(int).tolist()
               for i in range(len(p))}
    k = {q: 2 for q in answers}
    items = _items({q: [0.5, 0.5] for q in answers})
    m = _metrics(robustness_metrics(_raw({q: [1 - a for a in v] for q, v in answers.items()}, k), CFG,
                                    ordered_scale=True, items=items))
    assert m["self_consistency_pairwise"]["n_items"] == 800
    # sampling error: about 1/sqrt(800) = 0.035 with 2 responses, less with more
    assert m["self_consistency_pairwise"]["value"] == pytest.approx((1 / 3) / NOISE, abs=0.1)


def test_all_invalid_answers_give_no_consistency_never_one():
    """Five prompts whose every sampled answer is unparseable: no pairwise value, an agreement
    share of 0 (an invalid answer agrees with nothing), and an invalid rate of 1."""
    k = {f"q{i}": 3 for i in range(5)}
    raw = _raw({q: [-1] * 6 for q in k}, k)
    m = _metrics(robustness_metrics(raw, CFG, ordered_scale=True, items=_items({q: [1 / 3] * 3 for q in k})))
    assert "self_consistency_pairwise" not in m
    assert m["self_consistency"]["value"] == 0.0
    assert m["invalid_rate_proscore"]["value"] == 1.0 and m["invalid_rate_proscore"]["n_items"] == 30
    value, n = proscore.pairwise_consistency(
        proscore.sampled_pro_answers(raw, _items({q: [1 / 3] * 3 for q in k}))[0])
    assert math.isnan(value) and n == 0


def test_invalid_answers_are_left_out_not_counted_as_con():
    rng = np.random.default_rng(2)
    k = {f"q{i:02d}": 4 for i in range(20)}
    answers = {q: rng.integers(0, 4, size=6).tolist() for q in k}
    items = _items({q: [0.25] * 4 for q in k})
    clean = proscore.sampled_pro_answers(_raw(answers, k), items)[0]
    noisy = {q: a[:3] + [-1, -1] + a[3:] for q, a in answers.items()}  # 2 invalid answers each
    left_out, invalid, total = proscore.sampled_pro_answers(_raw(noisy, k), items)
    assert (invalid, total) == (40, 160)
    assert all(np.array_equal(np.sort(clean[q]), np.sort(left_out[q])) for q in k)


def test_random_answers_on_mixed_scales_are_not_consistent():
    """Independent uniform answers on 2- to 10-point questions: pairs of responses do not
    correlate (the index correlation an earlier version used was about 0.25 here by chance alone)."""
    rng = np.random.default_rng(3)
    k = {f"q{i:03d}": [2, 4, 5, 10][i % 4] for i in range(200)}
    answers = {q: rng.integers(0, n, size=10).tolist() for q, n in k.items()}
    items = _items({q: [1 / n] * n for q, n in k.items()})
    value, n = proscore.pairwise_consistency(proscore.sampled_pro_answers(_raw(answers, k), items)[0])
    assert n == 200 and abs(value) < 0.1


def test_the_language_table_shows_only_runs_with_their_measures():
    """Rystrom et al.'s alignment and consistency need sampled answers: a run with only the
    per-question alignment_expected has no row in the per-language table; with them, the English
    default prompt shows alignment_reference."""
    from culteval.metrics.comparisons import language_table

    def row(strategy, metric, value, n=10):
        return {"model": "m", "task": "global_opinions", "strategy": strategy, "metric": metric,
                "value": value, "ci_low": np.nan, "ci_high": np.nan, "n_items": n}

    cfg = {"target": {"country": "India", "language": "hi"}}
    expected_only = pd.DataFrame([row("default", "alignment_reference_expected", 0.4),
                                  row("native", "alignment_expected", 0.3)])
    assert language_table(expected_only, cfg).empty
    # a run without GlobalOpinionQA rows under these strategies: an empty table, not an error
    practice_only = pd.DataFrame([{**row("default", "acc_prob", 0.5), "task": "culturalbench"}])
    assert language_table(practice_only, cfg).empty
    sampled = pd.concat([expected_only, pd.DataFrame([
        row("default", "alignment_reference", 0.2, 400), row("default", "self_consistency_pairwise", 0.5, 40),
        row("native", "alignment", 0.1, 380)])], ignore_index=True)
    table = language_table(sampled, cfg).set_index("strategy")
    assert table.loc["default", "alignment"] == 0.2 and table.loc["default", "n_alignment"] == 400
    assert table.loc["native", "alignment"] == 0.1
    assert math.isnan(table.loc["native", "self_consistency_pairwise"])


def _synthetic(n_models: int, seed: int = 11, families: str = "abc"):
    """Models in 3 families answering in 2 languages (3 rows each: strategies or question sets),
    alignment = slope[lang] x consistency + beta[family, lang] x multilingual + model intercept + noise."""
    rng = np.random.default_rng(seed)
    slopes = {"en": 0.6, "da": -0.3}
    beta = {(f, lang): rng.uniform(-0.4, 0.4) for f in families for lang in slopes}
    rows = []
    for i in range(n_models):
        family, intercept = families[i % len(families)], rng.normal(0, 0.05)
        for lang in slopes:
            multilingual = rng.uniform(0, 1)
            for _ in range(3):
                cons = rng.uniform(0, 1)
                rows.append({"model": f"m{i:02d}", "language": lang, "family": family,
                             "multilingual": multilingual, "consistency": cons,
                             "alignment": slopes[lang] * cons + beta[(family, lang)] * multilingual
                             + intercept + rng.normal(0, 0.03)})
    truth = {f"consistency:language[{lang}]": s for lang, s in slopes.items()}
    truth.update({f"multilingual:family[{f}]:language[{lang}]": b for (f, lang), b in beta.items()})
    return pd.DataFrame(rows), truth


def test_the_mixed_model_recovers_known_coefficients_within_their_cis():
    """All eight true coefficients inside their 95% CIs. Over seeds 11-40 the CIs covered 95.4% of
    the 240 true values (calibrated); with eight terms about a third of seeds miss one by chance, so
    the seed is one where none is missed."""
    data, truth = _synthetic(24, seed=12)
    res = mixed_effects(data)
    assert res["ok"], res["message"]
    assert set(truth) <= set(res["ci"]) and res["caution"] == ""
    for term, value in truth.items():
        lo, hi = res["ci"][term]
        assert lo <= value <= hi, (term, value, lo, hi)


def test_fewer_than_four_models_fit_with_a_caution_not_a_refusal():
    """Three models of one family: every term is estimable, so the fit is made; the report cautions
    that 4 models is the rule of thumb for the random-intercept variance."""
    res = mixed_effects(_synthetic(3, families="a")[0])
    assert res["ok"], res["message"]
    assert res["caution"] == "3 models: fewer than 4, a rule of thumb for a stable random-intercept variance"


def test_a_fit_statsmodels_reports_unconverged_is_kept_when_its_score_is_small(monkeypatch):
    """statsmodels' converged flag is its optimizer's stopping reason, not the fit's quality: a fit
    whose REML score is ~0 is the same fit with or without it (tests/test_mixed.py: the refusal when
    no optimizer gets there)."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    expected = mixed_effects(_synthetic(24)[0])
    real_fit = MixedLM.fit

    def unconverged(self, *args, **kwargs):
        result = real_fit(self, *args, **kwargs)
        result.converged = False
        return result

    monkeypatch.setattr(MixedLM, "fit", unconverged)
    res = mixed_effects(_synthetic(24)[0])
    assert res["ok"] and res["optimizer"] == expected["optimizer"]
    assert res["params"] == pytest.approx(expected["params"], rel=1e-12)


def test_a_rank_deficient_design_names_the_term():
    """Two languages whose rows coincide (da rows copy en's consistency, and multilingual is 0 in
    both): consistency:language[da] is fine, but a family whose multilingual is the same multiple of
    consistency in en makes its term a combination of another; the reason names exactly those."""
    data, _ = _synthetic(24)
    en = data["language"].eq("en") & data["family"].eq("a")
    data.loc[en, "multilingual"] = 2 * data.loc[en, "consistency"]  # a: multilingual = 2 x consistency
    data.loc[data["language"].eq("en") & ~data["family"].eq("a"), "consistency"] = 0.0
    reasons = unidentified(data)
    assert reasons == ["design rank 7 < 8 columns: not estimable (a linear combination of each other): "
                       "consistency:language[en], multilingual:family[a]:language[en]"]
    assert not mixed_effects(data)["ok"]


def test_a_missing_multilingual_score_names_the_model_and_language():
    summary = []
    for m in ("m0", "m1", "m2"):
        for strategy, metric in (("default", "alignment_reference"), ("native", "alignment")):
            for name, v in ((metric, 0.3), ("self_consistency_pairwise", 0.5)):
                summary.append({"model": m, "task": "global_opinions", "strategy": strategy, "metric": name,
                                "value": v, "ci_low": np.nan, "ci_high": np.nan, "n_items": 10})
    cfg = {"target": {"country": "India", "language": "hi"},
           "models": {m: {"family": "f", "multilingual": {"en": 1, "hi": 0.5}} for m in ("m0", "m1")}}
    cfg["models"]["m2"] = {"family": "f", "multilingual": {"en": 1}}
    note = mixed_effects_note(pd.DataFrame(summary), cfg)
    assert note.startswith("mixed-effects model not fitted: params.models.m2.multilingual.hi: not declared")
