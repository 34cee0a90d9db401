"""The same rule for every stage: each kind of hostile input below is refused wherever it can occur,
through the CLI as the Snakemake rules call it (exit code, the one error line, the final bytes).

Kinds: an output that names an input (by any spelling); an empty input table; outputs that belong
together (metrics, report) written as one set; params values that pass the schema but not the
engine (NaN, infinity) and params that expand to gigabytes; the quarantine never overwriting a
copy; errors that name their culprit (a malformed number, a broken template, a model path that is
a device or a folder). docs/hostile-inputs.md lists each case with its test.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_cultures import _pipeline_run

from culteval import cli, io
from culteval import config as cfgmod
from culteval.acquire import describe_model
from culteval.config import ROOT

PARAMS = ROOT / "params.yaml"
TINY = f"{PARAMS}:{ROOT / 'tests' / 'data' / 'params.tiny.yaml'}"


def run(capsys, *argv: str, params: str = TINY) -> tuple[int, str]:
    """``culteval --params <params> <argv>`` in-process: (exit code, stderr)."""
    rc = cli.main(["--params", params, *argv])
    return rc, capsys.readouterr().err


def overlay(tmp_path: Path, data: dict, name: str = "overlay.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return f"{TINY}:{path}"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def staged(tmp_path_factory, mirror):
    """CulturalBench raw data, its item table and default prompts, made by the CLI as the rules do."""
    root = tmp_path_factory.mktemp("kinds")
    raw, items, prompts = root / "raw", root / "items.parquet", root / "prompts.parquet"
    for argv in (["acquire-data", "--dataset", "culturalbench", "--out", str(raw / "culturalbench")],
                 ["prepare", "--task", "culturalbench", "--raw-root", str(raw), "--out", str(items)],
                 ["render", "--task", "culturalbench", "--strategy", "default", "--items", str(items),
                  "--out", str(prompts)]):
        assert cli.main(["--params", TINY, *argv]) == 0, argv
    return {"root": root, "raw": raw, "items": items, "prompts": prompts}


# --- 1. an output that names an input -------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["relative ./", "absolute", "symlink", "hard link"])
def test_render_output_naming_its_items_is_refused(staged, tmp_path, monkeypatch, capsys, spelling):
    items = tmp_path / "items.parquet"
    shutil.copyfile(staged["items"], items)
    before = items.read_bytes()
    monkeypatch.chdir(tmp_path)
    given = "items.parquet"
    out = {"relative ./": "./items.parquet", "absolute": str(items), "symlink": "link.parquet",
           "hard link": "hard.parquet"}[spelling]
    if spelling == "symlink":
        os.symlink(items, tmp_path / out)
    if spelling == "hard link":
        os.link(items, tmp_path / out)
    rc, err = run(capsys, "render", "--task", "culturalbench", "--strategy", "default", "--items", given,
                  "--out", out)
    assert rc == 1, err
    assert err.strip() == (f"culteval render: error: --out {out} is the same file as --items {given}: "
                           "writing it would destroy an input; choose another output path")
    assert items.read_bytes() == before
    assert not Path(f"{out}.provenance.json").exists()


def test_every_command_refuses_an_output_naming_an_input(staged, tmp_path, capsys, default_model):
    """Each command that reads and writes files, with its output spelt as one of its inputs: refused
    before any work, naming both arguments; every input keeps its bytes."""
    prompts = tmp_path / "prompts.parquet"
    shutil.copyfile(staged["prompts"], prompts)
    raw_copy = tmp_path / "raw"
    shutil.copytree(staged["raw"], raw_copy)
    easy = raw_copy / "culturalbench" / "CulturalBench-Easy.csv"
    model = tmp_path / "m.gguf"
    os.link(default_model, model)  # the same bytes, no copy of the model
    record = tmp_path / "m.json"
    io.write_json(describe_model("m", {"path": str(model)}), record)
    run_dir = tmp_path / "run"
    (run_dir / "figures" / "hi").mkdir(parents=True)
    in_figures = run_dir / "figures" / "hi" / "cad.png"
    in_figures.write_bytes(b"an input kept where the report writes")
    summary_in = tmp_path / "metrics" / "summary.csv"
    summary_in.parent.mkdir()
    summary_in.write_text("culture,model\n")
    dotted = f"{staged['items'].parent}/./items.parquet"
    models = overlay(tmp_path, {"models": {"m": {"path": str(model)}}}, "models.yaml")
    cases = [
        (TINY, ["prepare", "--task", "culturalbench", "--raw-root", str(raw_copy), "--out", str(easy)],
         f"--out {easy} is the same file as --raw-root {easy}"),
        (TINY, ["translate", "--items", str(staged["items"]), "--out", dotted],
         f"--out {dotted} is the same file as --items {staged['items']}"),
        (TINY, ["infer", "--model-json", str(record), "--task", "culturalbench", "--strategy", "default",
                "--prompts", str(prompts), "--out", str(record)],
         f"--out {record} is the same file as --model-json {record}"),
        (TINY, ["infer-gguf", "--model", str(model), "--prompts", str(prompts), "--out", str(model)],
         f"--out {model} is the same file as --model {model}"),
        (models, ["acquire-model", "--model", "m", "--out", str(model)],
         f"--out {model} is the same file as the file of model 'm' {model}"),
        (TINY, ["metrics", "--items", str(staged["items"]), "--raw", str(summary_in), "--out-dir",
                str(summary_in.parent)],
         f"--out-dir (summary.csv) {summary_in} is the same file as --raw {summary_in}"),
        (TINY, ["report", "--summary", str(summary_in), "--raw", str(in_figures), "--out-dir", str(run_dir)],
         f"--out-dir {run_dir / 'figures'} holds --raw {in_figures}, which the command rewrites"),
    ]
    inputs = [prompts, easy, model, record, in_figures, summary_in, staged["items"]]
    before = {p: io.sha256_file(p) for p in inputs}
    for params, argv, message in cases:
        rc, err = run(capsys, *argv, params=params)
        assert rc == 1, (argv, err)
        # the last line: llama.cpp may log to stderr while a model is described
        assert err.strip().splitlines()[-1].startswith(f"culteval {argv[0]}: error: {message}"), (argv, err)
        assert {p: io.sha256_file(p) for p in inputs} == before, argv


# --- 2. an empty input table -----------------------------------------------------------------------

def _emptied(path: Path, to: Path) -> Path:
    """``path``'s table with 0 rows and the same provenance (identity, params)."""
    io.write_parquet(pd.read_parquet(path).iloc[:0], to, io.read_provenance(path))
    return to


def test_empty_items_and_prompts_are_refused(staged, tmp_path, capsys, default_model):
    items, prompts = _emptied(staged["items"], tmp_path / "items.parquet"), \
        _emptied(staged["prompts"], tmp_path / "prompts.parquet")
    record = tmp_path / "gemma-3-270m.json"  # data/models/<key>.json: a record names its key
    io.write_json(describe_model("gemma-3-270m", {"path": str(default_model)}), record)
    out = tmp_path / "out.parquet"
    cases = [
        (["render", "--task", "culturalbench", "--strategy", "default", "--items", str(items)],
         f"{items}: an empty item table (0 rows), nothing to work on; check params.tasks.<task>"),
        (["translate", "--items", str(items)],
         f"{items}: an empty item table (0 rows), nothing to work on; check params.tasks.<task>"),
        (["infer", "--model-json", str(record), "--task", "culturalbench", "--strategy", "default",
          "--prompts", str(prompts), "--no-progress"],
         f"{prompts}: an empty prompts table (0 rows), nothing to work on; check the item table it was "
         "rendered from, then rerun culteval render"),
        (["infer-gguf", "--model", str(default_model), "--prompts", str(prompts), "--no-progress"],
         f"{prompts}: an empty prompts table (0 rows)"),
    ]
    translations = tmp_path / "translations.parquet"
    assert run(capsys, "translate", "--items", str(staged["items"]), "--out", str(translations))[0] == 0
    _emptied(translations, translations)
    cases.append((["render", "--task", "culturalbench", "--strategy", "native", "--items",
                   str(staged["items"]), "--translations", str(translations)],
                  f"{translations}: an empty translations table (0 rows), nothing to work on; check the "
                  "culture's translation table"))
    for argv, message in cases:
        rc, err = run(capsys, *argv, "--out", str(out))
        assert rc == 1, (argv, err)
        assert err.strip().splitlines()[-1].startswith(f"culteval {argv[0]}: error: {message}"), (argv, err)
        assert not out.exists(), argv


def test_an_oversized_params_file_is_not_read(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * (cfgmod.MAX_BYTES // 10 + 1))
    rc, err = run(capsys, "check", params=f"{TINY}:{big}")
    assert rc == 1
    assert err.strip() == (f"culteval check: error: {big}: {big.stat().st_size} bytes, more than a params "
                           f"file needs ({cfgmod.MAX_BYTES} at most)")


@pytest.fixture()
def synthetic_run(tmp_path, mirror):
    """Synthetic items and raw outputs of three models (one task, one culture) in the pipeline's
    layout, and the metrics command over them."""
    _pipeline_run(tmp_path, {"hi": "India"}, tasks={"culturalbench"})
    items = sorted(str(p) for p in (tmp_path / "data" / "items").rglob("*.parquet"))
    raw = sorted(str(p) for p in (tmp_path / "results" / "raw").rglob("*.parquet"))
    out = tmp_path / "results" / "metrics"

    def metrics(capsys, bootstrap: int = 20) -> tuple[int, str]:
        params = overlay(tmp_path, {"metrics": {"bootstrap": bootstrap}}, f"b{bootstrap}.yaml")
        return run(capsys, "metrics", "--items", *items, "--raw", *raw, "--raw-root", str(mirror),
                   "--out-dir", str(out), params=params)

    def report(capsys) -> tuple[int, str]:
        return run(capsys, "report", "--summary", str(out / "summary.csv"), "--raw", *raw, "--raw-root",
                   str(mirror), "--out-dir", str(tmp_path / "results" / "report"),
                   params=overlay(tmp_path, {"metrics": {"bootstrap": 20}}, "b20.yaml"))

    return {"root": tmp_path, "items": items, "raw": raw, "out": out, "metrics": metrics, "report": report}


def test_empty_raw_output_and_summary_are_refused(synthetic_run, capsys):
    raw = Path(synthetic_run["raw"][0])
    _emptied(raw, raw)
    rc, err = synthetic_run["metrics"](capsys)
    assert rc == 1 and not synthetic_run["out"].exists(), err
    assert err.strip() == (f"culteval metrics: error: {raw}: an empty raw output table (0 rows), nothing to "
                           "work on; check the prompts table it was run on, then rerun culteval infer")
    out = synthetic_run["out"]
    out.mkdir(parents=True)
    summary = out / "summary.csv"
    summary.write_text("culture,model,task,strategy,metric,value,ci_low,ci_high,n_items,flags\n")
    rc, err = synthetic_run["report"](capsys)
    assert rc == 1 and not (synthetic_run["root"] / "results" / "report").exists(), err
    assert err.startswith(f"culteval report: error: {summary}: an empty summary table (0 rows)"), err
    rc, err = run(capsys, "verify", "--summary", str(summary), "--published",
                  str(ROOT / "results" / "published" / "summary.csv"))
    assert rc == 1, err
    assert err.startswith(f"culteval verify: error: {summary}: an empty summary table (0 rows)"), err


def test_a_culture_without_outputs_is_refused(tmp_path, mirror, capsys):
    """Three cultures in params, the items and raw outputs of one: the others would vanish from the
    summary."""
    _pipeline_run(tmp_path, {"da": "Denmark"}, tasks={"global_opinions"})
    params = f"{PARAMS}:{ROOT / 'workflow' / 'overlays' / 'rystrom.yaml'}"
    out = tmp_path / "metrics"
    rc, err = run(capsys, "metrics", "--items", *map(str, (tmp_path / "data" / "items").rglob("*.parquet")),
                  "--raw", *map(str, (tmp_path / "results" / "raw").rglob("*.parquet")), "--raw-root",
                  str(mirror), "--out-dir", str(out), params=params)
    assert rc == 1 and not out.exists(), err
    assert err.strip() == ("culteval metrics: error: culture 'nl' (params.cultures): no item tables among "
                           "--items; give its files or disable the culture in params")


# --- 3. outputs that belong together ---------------------------------------------------------------

def _fail_on(monkeypatch, name: str, nth: int, err: int) -> None:
    """``io.<name>`` (the temporary file's commit, or os.replace) raises ``err`` on its ``nth`` call."""
    target = io if name == "_commit" else os
    real, calls = getattr(target, name), []

    def failing(*a, **k):
        calls.append(1)
        if len(calls) == nth:
            raise OSError(err, os.strerror(err))
        return real(*a, **k)

    monkeypatch.setattr(target, name, failing)


@pytest.mark.parametrize("where", ["writing the second file", "renaming the second file"])
def test_metrics_outputs_are_replaced_as_one_set(synthetic_run, monkeypatch, capsys, where):
    out = synthetic_run["out"]
    assert synthetic_run["metrics"](capsys)[0] == 0
    old = snapshot(out)
    assert set(old) >= {"summary.csv", "metrics.json", "provenance.json"}
    if where == "writing the second file":  # a full disk once summary.csv is written
        _fail_on(monkeypatch, "_commit", 2, errno.ENOSPC)
        tail = "could not be written (No space left on device); nothing of"
    else:  # the set's last rename (summary.csv) fails: the others are in place and must go back
        real = os.replace

        def failing(src, dst):
            if Path(dst).name == "summary.csv":
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            real(src, dst)

        monkeypatch.setattr(os, "replace", failing)
        tail = "summary.csv: could not be put in place (Input/output error); the 3 file(s) of"
    rc, err = synthetic_run["metrics"](capsys, bootstrap=30)  # other params: other bytes
    monkeypatch.undo()
    assert rc == 1, err
    assert err.startswith(f"culteval metrics: error: {out}/"), err
    assert tail in err and err.rstrip().endswith("the previous versions, if any, are unchanged"), err
    assert snapshot(out) == old  # every file the old set's, and no temporary file left
    # the same run without the failure does replace the set
    assert synthetic_run["metrics"](capsys, bootstrap=30)[0] == 0
    assert snapshot(out)["summary.csv"] != old["summary.csv"]


def test_a_mixed_metrics_set_is_refused_by_the_report(synthetic_run, capsys):
    """A summary of one run beside the metrics and provenance of another (a kill between renames,
    or a copy): the report refuses it, naming the member that does not belong."""
    out = synthetic_run["out"]
    assert synthetic_run["metrics"](capsys, bootstrap=30)[0] == 0
    other = (out / "summary.csv").read_bytes()
    assert synthetic_run["metrics"](capsys)[0] == 0
    (out / "summary.csv").write_bytes(other)
    rc, err = synthetic_run["report"](capsys)
    assert rc == 1 and not (synthetic_run["root"] / "results" / "report").exists(), err
    assert err.strip() == (f"culteval report: error: {out}: summary.csv is not the bytes written with the "
                           f"rest of its set (recorded in {out / 'provenance.json'}): an interrupted write "
                           "or an edit mixed the set; rerun the stage that writes it")
    rc, err = run(capsys, "validate", str(out))  # as DVC's command checks a stage's outputs
    assert rc == 1 and f"culteval validate: {out}: summary.csv is not the bytes written" in err, err
    assert (out / "summary.csv").read_bytes() == other  # named, not moved aside


def test_report_outputs_are_replaced_as_one_set(synthetic_run, monkeypatch, capsys):
    assert synthetic_run["metrics"](capsys)[0] == 0
    report = synthetic_run["root"] / "results" / "report"
    rc, err = synthetic_run["report"](capsys)
    assert rc == 0, err
    old = snapshot(report)
    assert {"report.html", "provenance.json", "figures/hi/cad.png"} <= set(old)
    assert synthetic_run["metrics"](capsys, bootstrap=30)[0] == 0  # a new summary: new figures
    real = io._commit

    def full_at_the_page(tmp, where):  # every figure is written, then the disk is full
        if Path(where).name == "report.html":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(tmp, where)

    monkeypatch.setattr(io, "_commit", full_at_the_page)
    rc, err = synthetic_run["report"](capsys)
    monkeypatch.undo()
    assert rc == 1, err
    assert "could not be written (No space left on device); nothing of " in err, err
    assert snapshot(report) == old
    assert synthetic_run["report"](capsys)[0] == 0 and snapshot(report) != old
    assert run(capsys, "validate", str(report))[0] == 0  # the new set is whole


# --- 4. params that pass the schema but not the engine ---------------------------------------------

@pytest.mark.parametrize(("key", "value", "shown"), [
    ("sampling.temperature", ".nan", "nan"),
    ("sampling.temperature", ".inf", "inf"),
    ("metrics.low_mass", "-.inf", "-inf"),
    ("models.gemma-3-270m.multilingual.en", ".nan", "nan"),
])
def test_non_finite_params_are_refused(tmp_path, capsys, key, value, shown):
    *parents, last = key.split(".")
    text = "".join(f"{'  ' * i}{p}:\n" for i, p in enumerate(parents))
    text += f"{'  ' * len(parents)}{last}: {value}\n"
    (tmp_path / "o.yaml").write_text(text)
    rc, err = run(capsys, "check", params=f"{TINY}:{tmp_path / 'o.yaml'}")
    assert rc == 1, err
    assert err.strip() == (f"culteval check: error: {PARAMS}:{ROOT / 'tests/data/params.tiny.yaml'}:"
                           f"{tmp_path / 'o.yaml'}: params.{key}: {shown} is not a finite number (NaN and "
                           "infinity are refused everywhere in params)")


def test_params_alias_bomb_is_refused_unexpanded(tmp_path, capsys):
    """Six levels of nine aliases under one key: 531441 values from 330 bytes, of the wrong type
    (the schema's message would print them all: 4 MB)."""
    lines = ["sampling:", "  trials:", '    - &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"    - &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 6)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    rc, err = run(capsys, "check", params=f"{TINY}:{bomb}")
    assert rc == 1
    assert err.startswith(f"culteval check: error: {bomb}: its YAML aliases expand to more than "), err[:300]
    assert err.rstrip().endswith("values (an alias bomb?); refused unread: write the values out")
    assert len(err) < 300 and "lol" not in err  # the expansion is never printed
    assert time.monotonic() - start < 10


# --- 5. the quarantine keeps every copy ------------------------------------------------------------

@pytest.mark.parametrize("in_project", [True, False], ids=["project", "outside"])
def test_a_file_set_aside_twice_keeps_both_copies(tmp_path, capsys, in_project):
    if in_project:
        (tmp_path / "Snakefile").write_text("")
    items = tmp_path / "data" / "items" / "hi" / "culturalbench.parquet"
    items.parent.mkdir(parents=True)
    copies = [b"PAR1 first damaged copy", b"PAR1 second, other bytes", b"PAR1 first damaged copy"]
    seen = []
    for data in copies:
        items.write_bytes(data)
        rc, err = run(capsys, "render", "--task", "culturalbench", "--strategy", "default", "--items",
                      str(items), "--out", str(tmp_path / "p.parquet"))
        assert rc == 1 and not items.exists(), err
        seen.append(err.rstrip().rsplit("moved to ", 1)[1])
    if in_project:
        aside = tmp_path / ".culteval" / "damaged" / "data" / "items" / "hi"
        assert seen == [f"{aside / n}, rerun to recompute it" for n in
                        ("culturalbench.parquet", "culturalbench.2.parquet", "culturalbench.parquet")]
    else:
        aside = items.parent
        assert seen == [f"{n}, rerun to recompute it" for n in
                        ("culturalbench.parquet.damaged", "culturalbench.parquet.2.damaged",
                         "culturalbench.parquet.damaged")]
    kept = sorted(p.read_bytes() for p in aside.iterdir())
    assert kept == sorted(copies[:2])  # both kept; the same bytes twice kept once


# --- 6. errors that name their culprit -------------------------------------------------------------

def test_verify_names_a_malformed_number(tmp_path, capsys):
    published = ROOT / "results" / "published" / "summary.csv"
    df = pd.read_csv(published, dtype=str, keep_default_na=False)
    df.loc[2, "value"] = "0.5x"
    summary = tmp_path / "summary.csv"
    df.to_csv(summary, index=False)
    rc, err = run(capsys, "verify", "--summary", str(summary), "--published", str(published))
    assert rc == 1
    assert err.strip() == f"culteval verify: error: {summary}: line 4, column 'value': '0.5x' is not a number"
    rc, err = run(capsys, "verify", "--summary", str(published), "--published", str(published), "--tol",
                  "value=nan")
    assert rc == 1 and "--tol 'value=nan': 'nan' is not a finite number >= 0" in err, err


@pytest.mark.parametrize(("body", "names"), [
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "SecurityError: access to attribute '__class__'"),
    ("{{ 1 // 0 }}", "ZeroDivisionError: "),
    ("{{ question.upper( }}", None),
])
def test_a_broken_template_names_its_file_and_item(staged, tmp_path, monkeypatch, capsys, body, names):
    root = tmp_path / "checkout"
    shutil.copytree(ROOT / "workflow" / "templates", root / "workflow" / "templates")
    template = root / "workflow" / "templates" / "culturalbench" / "default.j2"
    template.write_text("{% block user %}" + body + "{% endblock %}{% block answer %}A{% endblock %}")
    monkeypatch.setenv("CULTEVAL_PROJECT", str(root))  # the run's checkout (config.project_root)
    out = tmp_path / "p.parquet"
    rc, err = run(capsys, "render", "--task", "culturalbench", "--strategy", "default", "--items",
                  str(staged["items"]), "--out", str(out))
    assert rc == 1 and not out.exists(), err
    assert "Traceback" not in err and "<template>" not in err, err
    if names is None:
        assert err.startswith(f"culteval render: error: template {template}: cannot be compiled (line 1: "), \
            err
    else:
        first = pd.read_parquet(staged["items"])["item_id"].iloc[0]
        assert err.startswith("culteval render: error: template workflow/templates/culturalbench/default.j2: "
                              f"cannot render item '{first}': {names}"), err


@pytest.mark.parametrize(("path", "what"), [("/dev/null", "is a character device, not a file"),
                                            ("/dev/zero", "is a character device, not a file"),
                                            ("folder", "is a directory, not a file")])
def test_a_model_path_that_is_no_file_says_what_it_is(staged, tmp_path, capsys, path, what):
    if path == "folder":
        path = str(tmp_path / "model.gguf")
        Path(path).mkdir()
    rc, err = run(capsys, "infer-gguf", "--model", path, "--prompts", str(staged["prompts"]), "--out",
                  str(tmp_path / "r.parquet"))
    assert rc == 1
    assert err.strip() == f"culteval infer-gguf: error: model '{Path(path).stem}': {path} {what}"
    rc, err = run(capsys, "check", params=overlay(tmp_path, {"models": {"m": {"path": path}}}))
    assert rc == 1 and f"model 'm': {path} {what}" in err, err


def test_a_model_entry_with_no_file_keeps_its_message(tmp_path, capsys, staged):
    missing = tmp_path / "ghost.gguf"
    rc, err = run(capsys, "infer-gguf", "--model", str(missing), "--prompts", str(staged["prompts"]), "--out",
                  str(tmp_path / "r.parquet"))
    assert rc == 1 and err.strip() == f"culteval infer-gguf: error: model 'ghost': file not found: {missing}"

