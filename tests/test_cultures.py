"""Several cultures in one run: ``params.cultures`` (and the older single-culture form), each
culture's view of the params, per-culture artifacts, a summary keyed by culture, and the
Rystrom et al. overlay."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_recompute import synthetic_items, synthetic_raw, write_items, write_raw

from culteval import cli, dvcgraph
from culteval.config import (
    ROOT,
    ConfigError,
    culture_cfg,
    culture_keys,
    load_params,
    normalise_cultures,
    validate,
)
from culteval.metrics.comparisons import mixed_effects_data
from culteval.metrics.summary import summarize, summarize_cultures

PARAMS = ROOT / "params.yaml"
RYSTROM = f"{PARAMS}:{ROOT / 'workflow' / 'overlays' / 'rystrom.yaml'}"
TINY = f"{PARAMS}:{ROOT / 'tests' / 'data' / 'params.tiny.yaml'}"


def old_form() -> dict:
    """params.yaml's one culture written the older way: target: + translation.table."""
    raw = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))
    hi = raw.pop("cultures")["hi"]
    raw["target"] = {k: hi[k] for k in ("country", "language", "language_name", "persona")}
    raw["translation"] = {"table": hi["translation_table"], **raw["translation"]}
    return raw


def write_yaml(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return str(path)


def test_the_old_single_culture_form_is_a_one_entry_cultures_list(tmp_path):
    old = load_params(write_yaml(tmp_path / "old.yaml", old_form()))
    new = load_params(PARAMS)
    # sub-national regions (cultures.<key>.regions) exist in the cultures form only
    hi = {k: v for k, v in new["cultures"]["hi"].items() if k != "regions"}
    assert old == {**new, "cultures": {"hi": hi}}
    assert culture_keys(new) == ["hi"] and new["target"]["country"] == "India"
    assert new["translation"] == {"table": "workflow/translations/hi.jsonl", "translator_model": None}
    assert normalise_cultures(new) == new  # normalising twice changes nothing


def _pipeline_run(root: Path, cultures: dict[str, str], seed: int = 5, tasks=None) -> dict:
    """Synthetic items and raw outputs in the pipeline's layout, one culture (key -> country) each:
    data/items/<culture>/<task>.parquet, results/raw/<culture>/<model>/<task>/<strategy>.parquet."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, country in cultures.items():
        items = synthetic_items(rng)
        go = items["global_opinions"].copy()  # the synthetic target is India: rename it
        renamed = [{(country if k == "India" else k): v for k, v in json.loads(d).items()}
                   for d in go["distributions"]]
        go["distributions"] = [json.dumps(d, sort_keys=True) for d in renamed]
        items["global_opinions"] = go
        items = {t: df for t, df in items.items() if tasks is None or t in tasks}
        raw = {}
        for task, df in items.items():
            item_path = write_items(df, root / "data" / "items" / key / f"{task}.parquet", key, task)
            for model in ("alpha", "beta", "gamma"):
                for strategy in ("default", "native"):
                    raw[(model, task, strategy)] = synthetic_raw(rng, df, strategy)
                    write_raw(raw[(model, task, strategy)],
                              root / "results" / "raw" / key / model / task / f"{strategy}.parquet",
                              key, model, task, strategy, item_path)
        out[key] = (items, raw)
    return out


def _metrics(params: str, root: Path, out: str) -> int:
    items = sorted(str(p) for p in (root / "data" / "items").rglob("*.parquet"))
    raw = sorted(str(p) for p in (root / "results" / "raw").rglob("*.parquet"))
    return cli.main(["--params", params, "metrics", "--items", *items, "--raw", *raw,
                     "--raw-root", str(root / "data" / "raw"), "--out-dir", str(root / out)])


def test_old_and_one_entry_forms_give_identical_summaries(tmp_path):
    """The metrics command on one run, once with the old single-culture params and once with the
    same culture as a one-entry cultures list: the same summary.csv and metrics.json, byte for byte."""
    _pipeline_run(tmp_path, {"hi": "India"})
    small = {"metrics": {"bootstrap": 20}}
    old_cfg = old_form()
    old_cfg["metrics"].update(small["metrics"])
    old = write_yaml(tmp_path / "old.yaml", old_cfg)
    new = f"{PARAMS}:{write_yaml(tmp_path / 'small.yaml', small)}"
    assert _metrics(old, tmp_path, "old") == 0 and _metrics(new, tmp_path, "new") == 0
    for name in ("summary.csv", "metrics.json"):
        assert (tmp_path / "old" / name).read_bytes() == (tmp_path / "new" / name).read_bytes(), name
    summary = pd.read_csv(tmp_path / "new" / "summary.csv")
    assert set(summary["culture"]) == {"hi"} and summary["model"].eq("alpha").any()


def test_a_culture_the_params_do_not_name_is_refused(tmp_path, capsys):
    _pipeline_run(tmp_path, {"da": "Denmark"})
    assert _metrics(str(PARAMS), tmp_path, "out") == 1
    err = capsys.readouterr().err
    assert "data/items/da/culturalbench.parquet: culture 'da' is not in params.cultures (hi)" in err, err


def test_each_culture_sees_its_own_target_table_and_item_sets(capsys):
    cfg = load_params(RYSTROM)
    assert culture_keys(cfg) == ["da", "nl", "pt"] and "target" not in cfg  # hi is switched off
    da = culture_cfg(cfg, "da")
    assert da["target"] == {"country": "Denmark", "language": "da", "language_name": "Danish",
                            "persona": "a person living in Denmark"}
    assert da["translation"] == {"table": "workflow/translations/da.jsonl", "translator_model": None}
    assert da["tasks"]["global_opinions"]["itemset"] == "workflow/itemsets/rystrom/da.global_opinions.txt"
    assert culture_cfg(cfg, "pt")["target"]["country"] == "Brazil"
    assert cfg["country_aliases"]["Netherlands"]["ivs_map"] == ["netherlands"]
    with pytest.raises(ConfigError, match=r"no culture 'hi' \(have da, nl, pt\)"):
        culture_cfg(cfg, "hi")
    rc = cli.main(["--params", RYSTROM, "render", "--task", "global_opinions", "--strategy", "default",
                   "--items", "x.parquet", "--out", "y.parquet"])
    assert rc == 1 and "several cultures (da, nl, pt): choose one with --culture" in capsys.readouterr().err


def test_a_missing_translation_table_names_its_culture(tmp_path, capsys):
    overlay = write_yaml(tmp_path / "o.yaml", {"cultures": {"da": {"translation_table": "nowhere/da.jsonl"}}})
    items = tmp_path / "global_opinions.parquet"
    write_items(synthetic_items(np.random.default_rng(1))["global_opinions"], items, "da", "global_opinions")
    rc = cli.main(["--params", f"{RYSTROM}:{overlay}", "translate", "--culture", "da", "--items", str(items),
                   "--out", str(tmp_path / "t.parquet")])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert f"params.cultures.da.translation_table: {ROOT / 'nowhere/da.jsonl'} not found" in err, err


def _raw() -> dict:
    return yaml.safe_load(PARAMS.read_text(encoding="utf-8"))


def _second(cfg: dict, **fields) -> None:
    cfg["cultures"]["da"] = {"country": "Denmark", "language": "da", "language_name": "Danish",
                             "persona": "a person living in Denmark", "translation_table": None, **fields}


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda c: c.update(target={"country": "India", "language": "hi", "language_name": "Hindi",
                                "persona": "p"}),
     "params.target: the single-culture form (target:, translation.table) cannot be combined with "
     "params.cultures"),
    (lambda c: c["translation"].update(table="x.jsonl"),
     "params.translation.table: with params.cultures each culture names its own translation_table"),
    (lambda c: c.pop("cultures"), "params: name the culture under test (cultures:, or target:)"),
    (lambda c: c["cultures"]["hi"].update(enabled=False), "params.cultures: no culture is enabled"),
    (lambda c: c["cultures"]["hi"].update(country="United States"),
     "params.cultures.hi.country: 'United States' is the reference country"),
    (lambda c: _second(c, country="India"), "params.cultures: country 'India' appears twice"),
    (lambda c: c["cultures"].update(all=c["cultures"].pop("hi")), "params.cultures.all: 'all' is reserved"),
    (lambda c: c["cultures"]["hi"].update(itemsets={"astrology": "x.txt"}),
     "params.cultures.hi.itemsets: no task 'astrology' in params.tasks"),
    (lambda c: c["cultures"]["hi"].pop("language_name"), "params.cultures.hi"),
    (lambda c: c["cultures"]["hi"].update(language="Hindi"), "params.cultures.hi.language"),
])
def test_bad_cultures_name_the_key(mutate, needle):
    cfg = _raw()
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert needle in str(err.value)


def test_summary_rows_per_culture_and_the_mixed_model_across_them(tmp_path):
    """Two cultures: each culture's rows are exactly its own summary in its own view of the params;
    the consistency-alignment rows are computed once over both (culture ``all``), English prompts
    as language ``en`` and each culture's native prompts as its own language."""
    cfg = load_params(RYSTROM)
    cfg["cultures"].pop("pt")
    cfg["metrics"]["bootstrap"] = 20
    run = _pipeline_run(tmp_path, {"da": "Denmark", "nl": "Netherlands"})
    df = summarize_cultures(run, cfg)
    assert set(df["culture"]) == {"da", "nl", "all"}
    for key in ("da", "nl"):
        own = summarize(*run[key], culture_cfg(cfg, key), mixed=False)
        mine = df[df["culture"] == key].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, own)
    across = df[df["culture"] == "all"]
    assert set(across["model"]) == {"correlation:consistency-alignment"}  # 3 models: not fitted
    assert set(across["metric"]) == {"spearman:en", "spearman:da", "spearman:nl"}
    data = mixed_effects_data(df, cfg)
    assert sorted(data.groupby(["culture", "strategy"])["language"].first().items()) == [
        (("da", "default"), "en"), (("da", "native"), "da"), (("nl", "default"), "en"),
        (("nl", "native"), "nl")]
    wide = df[df["task"].eq("global_opinions")].set_index(["culture", "model", "strategy", "metric"])["value"]
    for r in data.itertuples(index=False):
        metric = "alignment_reference" if r.language == "en" else "alignment"
        assert r.alignment == wide[(r.culture, r.model, r.strategy, metric)]


def test_dvc_and_snakemake_read_each_cultures_params():
    cfg = load_params(RYSTROM)
    prepare = dvcgraph.stage("prepare", cfg)
    assert {f"workflow/itemsets/rystrom/{c}.global_opinions.txt" for c in ("da", "nl", "pt")} <= set(
        prepare["deps"])
    assert {"cultures.da.itemsets", "cultures.nl.aliases", "cultures.pt.country"} <= set(prepare["params"])
    translate = dvcgraph.stage("translate", cfg)
    assert {f"workflow/translations/{c}.jsonl" for c in ("da", "nl", "pt")} <= set(translate["deps"])
    render = {c: dvcgraph.settings("render", cfg, {"culture": c, "task": "global_opinions"})
              for c in culture_keys(cfg)}
    assert len(set(render.values())) == 3 and '"target": {"country": "Brazil"' in render["pt"]
    other = copy.deepcopy(cfg)
    other["cultures"]["nl"]["persona"] = "someone in the Netherlands"
    changed = {c for c in culture_keys(cfg)
               if dvcgraph.settings("render", other, {"culture": c, "task": "global_opinions"}) != render[c]}
    assert changed == {"nl"}  # editing one culture reruns its prompts only


def test_the_rystrom_overlay_plans_every_culture(tmp_path, mirror):
    env = {**os.environ, "CULTEVAL_PARAMS": RYSTROM, "CULTEVAL_DATA_MIRROR": str(mirror)}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "-n",
           "--cores", "2", "--quiet", "rules"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    counts = {line.split()[0]: int(line.split()[1]) for line in proc.stdout.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    # 3 cultures; GlobalOpinionQA only; 2 strategies; 2 models
    assert {k: counts[k] for k in ("prepare", "translate", "render", "infer")} == {
        "prepare": 3, "translate": 3, "render": 6, "infer": 12}


def test_the_report_has_a_section_per_culture_and_the_languages_table(tmp_path):
    from culteval.metrics.comparisons import language_table
    from culteval.report.figures import render_all
    from culteval.report.html import CultureSection, build_report

    cfg = load_params(RYSTROM)
    cfg["cultures"].pop("pt")
    cfg["metrics"]["bootstrap"] = 20
    df = summarize_cultures(_pipeline_run(tmp_path, {"da": "Denmark", "nl": "Netherlands"}), cfg)
    sections = []
    for key, country in (("da", "Denmark"), ("nl", "Netherlands")):
        rows = df[df["culture"] == key]
        figures = render_all(rows, None, culture_cfg(cfg, key), tmp_path / "figures" / key)
        sections.append(CultureSection(key=key, title=f"{country} vs United States", summary=rows,
                                       figures=figures, countries={"target": country,
                                                                   "reference": "United States"}))
    # the reference country has fewer questions than the target in real runs: make the two n differ
    df.loc[df["metric"].eq("alignment_reference"), "n_items"] += 1000
    table = language_table(df, cfg)
    assert set(zip(table["culture"], table["strategy"], table["language"], strict=True)) == {
        ("da", "default", "en"), ("da", "native", "da"), ("nl", "default", "en"), ("nl", "native", "nl")}
    shown = ["alignment", "self_consistency_pairwise", "invalid_rate_proscore"]
    assert table[shown].notna().all().all()
    wide = df[df["task"].eq("global_opinions")].set_index(["culture", "model", "strategy", "metric"])["value"]
    for r in table.itertuples(index=False):
        paired = "alignment_reference" if r.language == "en" else "alignment"
        assert r.alignment == wide[(r.culture, r.model, r.strategy, paired)]
        assert r.self_consistency_pairwise == wide[(r.culture, r.model, r.strategy,
                                                      "self_consistency_pairwise")]
        n = df[df["task"].eq("global_opinions")].set_index(
            ["culture", "model", "strategy", "metric"])["n_items"]
        assert r.n_alignment == n[(r.culture, r.model, r.strategy, paired)]  # responses (that country)
        assert r.n_consistency == n[(r.culture, r.model, r.strategy, "self_consistency_pairwise")]
    html = build_report(df, sections, {}, [], tmp_path / "r.html", languages=table).read_text()
    for key, country in (("da", "Denmark"), ("nl", "Netherlands")):
        assert f'<h1 id="{key}-culture">{country} vs United States</h1>' in html
        assert f'<h2 id="{key}-warnings">' in html and f'id="{key}-table-opinions"' in html
    assert html.index('id="da-culture"') < html.index('id="nl-culture"') < html.index('id="languages"')
    across = html.split('<h1 id="all-cultures">')[1].split("<h2")[0]
    assert "spearman:da" in across and "spearman:en" in across
    languages = html.split('<h1 id="languages">')[1].split("</table>")[0]
    assert languages.count("<tr>") == 1 + len(table)  # header + one row per model x culture x strategy


def test_metrics_and_report_commands_over_the_rystrom_cultures(tmp_path, mirror):
    """The overlay's three cultures through the metrics and report commands (synthetic outputs of
    three models for its one task): rows per culture, the mixed model's exact reason for not
    being fitted, a report section and a figure folder per culture."""
    _pipeline_run(tmp_path, {"da": "Denmark", "nl": "Netherlands", "pt": "Brazil"},
                  tasks={"global_opinions"})
    small = write_yaml(tmp_path / "small.yaml", {"metrics": {"bootstrap": 20}})
    params = f"{RYSTROM}:{small}"
    items = sorted(str(p) for p in (tmp_path / "data" / "items").rglob("*.parquet"))
    raw = sorted(str(p) for p in (tmp_path / "results" / "raw").rglob("*.parquet"))
    out = tmp_path / "results"
    assert cli.main(["--params", params, "metrics", "--items", *items, "--raw", *raw,
                     "--raw-root", str(mirror), "--out-dir", str(out / "metrics")]) == 0
    summary = pd.read_csv(out / "metrics" / "summary.csv")
    assert set(summary["culture"]) == {"da", "nl", "pt", "all"}
    assert cli.main(["--params", params, "report", "--summary", str(out / "metrics" / "summary.csv"),
                     "--raw", *raw, "--raw-root", str(mirror), "--out-dir", str(out)]) == 0
    html = (out / "report.html").read_text()
    for key, title in (("da", "Denmark (Danish)"), ("nl", "Netherlands (Dutch)"),
                       ("pt", "Brazil (Portuguese)")):
        assert f'<h1 id="{key}-culture">{title} vs United States</h1>' in html
        assert {p.name for p in (out / "figures" / key).iterdir()} >= {"cad.png", "provenance.json"}
    # the synthetic models are not params entries, so they declare no multilingual score: named
    assert ("mixed-effects model not fitted: params.models.alpha.multilingual.da: not declared (a score "
            "in [0, 1] for each language the model is fitted in); params.models.alpha.multilingual.en"
            ) in html
    assert '<h1 id="languages">' in html and '<h1 id="all-cultures">' in html
