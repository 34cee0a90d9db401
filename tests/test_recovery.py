"""A run recovers by itself from what the last one left: stale files, an interrupt, a file set aside
mid-pipeline, a summary edited by hand (docs/hostile-inputs.md, docs/pipeline.md).

Each case runs as the rules and DVC stages run it (the generated `dvc.yaml` commands, plain
`snakemake`, the CLI) on a scratch project of the tiny params (default strategy, stages up to
render: no model is needed), and checks the exit code, the message and the final bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import copy_workflow
from test_recompute import synthetic_items, synthetic_raw, write_items, write_raw

from culteval import cli, dvcgraph
from culteval.config import ROOT, load_params
from culteval.io import QUARANTINE, read_provenance, sha256_file

TINY = f"{ROOT / 'params.yaml'}:{ROOT / 'tests' / 'data' / 'params.tiny.yaml'}"
ITEMS = Path("data/items/hi")
PROMPTS = Path("data/prompts/hi")


def _env(work: Path) -> dict:
    """The environment of a run in ``work``: its own copy of the sources (the project's outside one)."""
    env = {k: v for k, v in os.environ.items() if k != "CULTEVAL_PARAMS"}
    src = work / "src" if (work / "src").is_dir() else ROOT / "src"
    return {**env, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(src),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"}


def _run(work: Path, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=work, env=_env(work), capture_output=True, text=True)


def _ok(work: Path, *cmd: str) -> subprocess.CompletedProcess:
    proc = _run(work, *cmd)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


DVC = (sys.executable, "-m", "dvc")
SNAKEMAKE = (sys.executable, "-m", "snakemake", "--cores", "2")


@pytest.fixture(scope="module")
def built(tmp_path_factory, mirror):
    """A scratch project whose `dvc repro render` finished: items, translations, prompts."""
    work = tmp_path_factory.mktemp("recovery") / "project"
    work.mkdir()
    copy_workflow(work)
    cfg = load_params(TINY)
    cfg["strategies"] = ["default"]
    (work / "params.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (work / "dvc.yaml").write_text(dvcgraph.generate(work / "params.yaml", root=work))
    os.environ.setdefault("CULTEVAL_DATA_MIRROR", str(mirror))
    _ok(work, *DVC, "init", "--no-scm", "-q")
    _ok(work, *DVC, "repro", "-q", "render")
    return work


@pytest.fixture()
def project(built, tmp_path) -> Path:
    """A copy of the finished project (file times kept), for one case to change. Snakemake's records
    name the absolute paths of the code a job read, so a copy starts without them, as a fresh
    clone does: Snakemake compares file times only."""
    work = tmp_path / "project"
    shutil.copytree(built, work, symlinks=True)
    shutil.rmtree(work / ".snakemake" / "metadata")
    return work


def _edit_params(work: Path, change) -> None:
    path = work / "params.yaml"
    cfg = yaml.safe_load(path.read_text())
    change(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.mark.slow
def test_stale_item_table_is_set_aside_and_remade_by_dvc_repro(project):
    """Params changed where Snakemake has no record of the old ones (a fresh clone after `dvc pull`,
    a wiped .snakemake, the `project` fixture's copy): Snakemake alone keeps the item table made
    under the old params, and DVC would lock it under the new ones. The stage's `validate
    --repair` sets it aside as stale, so it and the prompts made from it are remade; the other
    tasks' files stay as they were."""
    blend, normad = project / ITEMS / "blend.parquet", project / ITEMS / "normad.parquet"
    normad_bytes, old_blend = normad.read_bytes(), blend.read_bytes()
    _edit_params(project, lambda cfg: cfg["tasks"]["blend"].update(limit=1))
    proc = _ok(project, *DVC, "repro", "render")
    out = proc.stdout + proc.stderr
    assert f"culteval validate: {ITEMS / 'blend.parquet'}: stale: made under params.tasks.blend=" in out, out
    assert "params now say" in out and '"limit": 1' in out, out
    assert blend.read_bytes() != old_blend
    assert read_provenance(blend)["settings"]["tasks.blend"]["limit"] == 1
    prompts = project / PROMPTS / "blend" / "default.parquet"
    assert read_provenance(prompts)["identity"]["sources"]["items"] == sha256_file(blend)
    assert normad.read_bytes() == normad_bytes  # not stale: not touched
    aside = project / QUARANTINE / ITEMS / "blend.parquet"
    assert aside.read_bytes() == old_blend  # kept for inspection, outside every tracked output
    # and DVC recorded the remade table, not the stale one
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["prepare"]["params"]["params.yaml"]["tasks"]["blend"]["limit"] == 1
    status = _ok(project, *DVC, "status", "--json", "--with-deps", "render").stdout
    assert status.strip() in ("{}", ""), status


@pytest.mark.slow
def test_intermediate_set_aside_is_remade_with_everything_made_from_it(project):
    """An item table refused (here by the prepare stage's `validate --repair`, as after a run that
    then failed) is gone while the prompts made from it remain: the next plain `snakemake`
    remakes the table and those prompts (not "Nothing to be done"), and only those."""
    normad = project / ITEMS / "normad.parquet"
    good = normad.read_bytes()
    prompts = {p: (p.read_bytes(), p.stat().st_mtime_ns)
               for p in sorted((project / PROMPTS).rglob("*.parquet"))}
    normad.write_bytes(good[: len(good) // 2])
    proc = _ok(project, "culteval", "validate", "--repair", "data/items")
    assert f"{ITEMS / 'normad.parquet'}: damaged or not a Parquet file" in proc.stderr, proc.stderr
    assert not normad.exists()
    proc = _ok(project, *SNAKEMAKE, "all_prompts")
    assert "Nothing to be done" not in proc.stdout + proc.stderr
    assert normad.read_bytes() == good  # remade by its rule
    for path, (data, mtime) in prompts.items():
        assert path.read_bytes() == data, path  # same items, same prompts
        remade = path.stat().st_mtime_ns != mtime
        assert remade == (path.parent.name == "normad"), path  # those made from the table, only
    again = _ok(project, *SNAKEMAKE, "all_prompts")
    assert "Nothing to be done" in again.stdout + again.stderr


def _marker(work: Path, rel: str, like: Path) -> None:
    """Snakemake's incomplete marker for output ``rel`` (as ``like``, one it left, is written)."""
    import base64

    name = base64.urlsafe_b64encode(rel.encode()).decode()
    shutil.copyfile(like, work / ".snakemake" / "incomplete" / name)


def _interrupt(work: Path, cmd: tuple[str, ...], sig: int, only_snakemake: bool = False) -> None:
    """Start ``cmd`` in its own process group, wait until Snakemake runs a job, then send ``sig``:
    to the whole group, as Ctrl-C in a terminal does, or to the Snakemake process alone."""
    started = time.time() - 1  # file times of a coarse clock
    run = subprocess.Popen(cmd, cwd=work, env=_env(work), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    incomplete = work / ".snakemake" / "incomplete"
    deadline = time.monotonic() + 180

    def job_running() -> bool:  # Snakemake marks a job's outputs when it starts the job
        marks = list(incomplete.iterdir()) if incomplete.is_dir() else []
        return any(m.stat().st_mtime >= started for m in marks)

    while not job_running():
        assert run.poll() is None and time.monotonic() < deadline, "no job started"
        time.sleep(0.05)
    if only_snakemake:
        os.kill(run.pid, sig)
        time.sleep(1)
        os.killpg(run.pid, signal.SIGKILL)  # and the job it ran
    else:
        os.killpg(run.pid, sig)
    run.wait(timeout=120)


@pytest.mark.slow
def test_dvc_repro_after_ctrl_c_reruns_without_any_snakemake_flag(project):
    """Ctrl-C in the middle of `dvc repro`, then a Snakemake run killed hard: Snakemake leaves its
    lock and its incomplete markers (one on an output that was complete, as when the interrupt
    lands between a job's last write and Snakemake's record of it). Plain Snakemake refuses to go
    on; the next `dvc repro` removes the stale lock, redoes the interrupted jobs and the output
    marked incomplete, and ends with the same bytes as the uninterrupted run."""
    good = {p.name: p.read_bytes() for p in (project / ITEMS).glob("*.parquet")}
    for name in ("normad", "culturalbench", "cultural_map"):
        (project / ITEMS / f"{name}.parquet").unlink()
    _interrupt(project, (*DVC, "repro", "prepare"), signal.SIGINT)  # Ctrl-C
    _interrupt(project, (*SNAKEMAKE, "all_items"), signal.SIGKILL, only_snakemake=True)
    assert sorted((project / ".snakemake" / "locks").glob("*.lock")), "the kill left no lock"
    incomplete = project / ".snakemake" / "incomplete"
    _marker(project, (ITEMS / "blend.parquet").as_posix(), next(incomplete.iterdir()))
    proc = _run(project, *SNAKEMAKE, "all_items")  # Snakemake checks the markers first, then the lock
    assert proc.returncode != 0 and "IncompleteFilesException" in proc.stdout + proc.stderr
    probe = project.with_name("probe")  # `snakemake --unlock` is not enough (on a copy)
    shutil.copytree(project, probe, symlinks=True)
    _ok(probe, *SNAKEMAKE, "--unlock")
    proc = _run(probe, *SNAKEMAKE, "all_items")
    assert proc.returncode != 0 and "IncompleteFilesException" in proc.stdout + proc.stderr
    blend_mtime = (project / ITEMS / "blend.parquet").stat().st_mtime_ns
    proc = _ok(project, *DVC, "repro", "prepare")
    assert "culteval unlock: removed the lock an interrupted Snakemake run left" in proc.stdout + proc.stderr
    assert {p.name: p.read_bytes() for p in (project / ITEMS).glob("*.parquet")} == good
    assert (project / ITEMS / "blend.parquet").stat().st_mtime_ns != blend_mtime  # redone, not trusted
    assert not list((project / ".snakemake" / "locks").glob("*.lock"))
    assert not list(incomplete.iterdir())


def test_a_live_snakemake_keeps_its_lock(tmp_path):
    """`culteval unlock` removes nothing while a Snakemake process works in the folder."""
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("x\n")
    (tmp_path / "Snakefile").write_text('rule all:\n    shell: "sleep 30"\n')
    live = subprocess.Popen([*SNAKEMAKE, "--nolock", "-q"], cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(3)
        proc = _run(tmp_path, sys.executable, "-m", "culteval.cli", "unlock")
        assert proc.returncode == 0, proc.stderr
        assert f"Snakemake (pid {live.pid}) is running in" in proc.stderr, proc.stderr
        assert (locks / "0.output.lock").is_file()
    finally:
        os.killpg(live.pid, signal.SIGTERM)
        live.wait()
    proc = _run(tmp_path, sys.executable, "-m", "culteval.cli", "unlock")
    assert "removed the lock an interrupted Snakemake run left (0.output.lock" in proc.stderr, proc.stderr
    assert not (locks / "0.output.lock").exists()


# -- a summary edited by hand --------------------------------------------------------------------

@pytest.fixture()
def metrics_run(tmp_path, monkeypatch) -> Path:
    """A project (Snakefile present) with synthetic items and raw outputs and the metrics stage's
    outputs made from them by the CLI, as the metrics rule runs it (in the project folder)."""
    tmp_path = tmp_path.resolve()
    (tmp_path / "Snakefile").write_text("")
    rng = np.random.default_rng(3)
    items = synthetic_items(rng)
    for task in items:
        item_path = write_items(items[task], tmp_path / ITEMS / f"{task}.parquet", "hi", task)
        write_raw(synthetic_raw(rng, items[task], "default"),
                  tmp_path / "results" / "raw" / "hi" / "alpha" / task / "default.parquet", "hi", "alpha",
                  task, "default", item_path)
    small = tmp_path / "small.yaml"
    small.write_text("metrics: {bootstrap: 20}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CULTEVAL_PROJECT", str(ROOT))  # the params' item sets are the checkout's
    items = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "data" / "items").rglob("*.parquet"))
    assert cli.main(["--params", f"{ROOT / 'params.yaml'}:{small}", "metrics", "--items", *items,
                     "--raw", *_raw(tmp_path), "--raw-root", "data/raw", "--out-dir", "results/metrics"]) == 0
    return tmp_path


def _raw(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / "results" / "raw").rglob("*.parquet"))


def _hand_edit(summary: Path) -> bytes:
    df = pd.read_csv(summary)
    df.loc[0, "value"] = 0.99  # a number made to look better
    df.to_csv(summary, index=False)
    return summary.read_bytes()


def test_hand_edited_summary_is_refused_by_report_verify_and_validate(metrics_run, capsys):
    """A summary edited after the metrics stage wrote it is never taken as the pipeline's: the
    report refuses it naming the file and what to run, sets it aside (so the metrics stage remakes
    it) and writes nothing; `culteval verify` refuses it; the metrics stage's `validate --repair`
    (before DVC would lock its hash) sets it aside and says why."""
    summary = Path("results/metrics/summary.csv")
    record = json.loads(Path("results/metrics/provenance.json").read_text())
    assert record["outputs"]["summary.csv"] == sha256_file(summary)
    recorded = record["outputs"]["summary.csv"]
    edited = _hand_edit(summary)
    rc = cli.main(["--params", str(ROOT / "params.yaml"), "report", "--summary", str(summary),
                   "--raw", *_raw(metrics_run), "--raw-root", "data/raw", "--out-dir", "results"])
    err = capsys.readouterr().err
    assert rc == 1, err
    # the metrics stage's set record names the summary's bytes: the report refuses it, naming it
    out = Path("results/metrics")
    assert err.strip() == (f"culteval report: error: {out}: summary.csv is not the bytes written with the "
                           f"rest of its set (recorded in {out / 'provenance.json'}): an interrupted write "
                           "or an edit mixed the set; rerun the stage that writes it"), err
    assert summary.read_bytes() == edited and recorded != sha256_file(summary)
    assert not Path("results/report.html").exists() and not Path("results/provenance.json").exists()
    # without the set record, the stage's record of its outputs still refuses it, and sets it aside
    # (so the metrics stage remakes it)
    prov = Path("results/metrics/provenance.json")
    prov.write_text(json.dumps({k: v for k, v in record.items() if k != "set"}))
    rc = cli.main(["--params", str(ROOT / "params.yaml"), "report", "--summary", str(summary),
                   "--raw", *_raw(metrics_run), "--raw-root", "data/raw", "--out-dir", "results"])
    err = capsys.readouterr().err
    assert rc == 1 and (f"culteval report: error: {summary}: edited after its stage wrote it: "
            f"sha256 {sha256_file(QUARANTINE / summary)}, "
            f"its record results/metrics/provenance.json says {recorded}; not the pipeline's output, "
            "rerun the metrics stage (dvc repro metrics, or snakemake results/metrics/summary.csv); "
            f"moved to {(metrics_run / QUARANTINE / summary).as_posix()}, rerun to recompute it") in err, err
    assert not summary.exists() and (QUARANTINE / summary).read_bytes() == edited
    assert not Path("results/report.html").exists() and not Path("results/provenance.json").exists()

    shutil.copyfile(QUARANTINE / summary, summary)  # the user puts it back
    assert cli.main(["verify", "--summary", str(summary), "--published", str(QUARANTINE / summary)]) == 1
    assert f"culteval verify: error: {summary}: edited after its stage wrote it" in capsys.readouterr().err

    shutil.copyfile(QUARANTINE / summary, summary)
    rc = cli.main(["--params", f"{ROOT / 'params.yaml'}:small.yaml", "validate", "--repair",
                   "results/metrics/summary.csv", "results/metrics/metrics.json"])
    err = capsys.readouterr().err
    assert rc == 0 and f"culteval validate: {summary}: edited after its stage wrote it" in err, err
    assert not summary.exists() and Path("results/metrics/metrics.json").is_file()  # the untouched file stays
    assert "metrics.json" not in err, err
    # made under other metrics params (as the metrics rule's keys say): stale, set aside
    rc = cli.main(["--params", str(ROOT / "params.yaml"), "validate", "--repair",
                   "results/metrics/metrics.json"])
    err = capsys.readouterr().err
    assert rc == 0 and ("culteval validate: results/metrics/metrics.json: stale: made under "
                        "params.metrics=") in err, err
    assert not Path("results/metrics/metrics.json").exists()


def test_prompts_of_an_item_table_since_remade_are_stale(tmp_path, mirror, capsys, monkeypatch):
    """Prompts rendered from an item table that was remade since (other bytes at its path, whatever
    the file times say after a checkout) are stale: the render stage's `validate --repair` sets
    them aside, naming the table and both hashes, so the stage renders them again."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Snakefile").write_text("")
    monkeypatch.setenv("CULTEVAL_PROJECT", str(ROOT))  # the params' item sets are the checkout's
    items, prompts = ITEMS / "culturalbench.parquet", PROMPTS / "culturalbench" / "default.parquet"
    assert cli.main(["--params", TINY, "acquire-data", "--dataset", "culturalbench", "--out",
                     "data/raw/culturalbench"]) == 0
    prepare = ["prepare", "--task", "culturalbench", "--raw-root", "data/raw", "--out", str(items)]
    assert cli.main(["--params", TINY, *prepare]) == 0
    assert cli.main(["--params", TINY, "render", "--task", "culturalbench", "--strategy", "default",
                     "--items", str(items), "--out", str(prompts)]) == 0
    old = sha256_file(items)
    other = tmp_path / "other.yaml"
    other.write_text("tasks: {culturalbench: {itemset: null, limit: 1}}\n")
    assert cli.main(["--params", f"{TINY}:{other}", *prepare]) == 0
    capsys.readouterr()
    rendered = prompts.read_bytes()
    assert cli.main(["--params", TINY, "validate", "--repair", "data/prompts"]) == 0
    err = capsys.readouterr().err
    assert (f"culteval validate: {prompts}: stale: made from {items} with sha256 {old}, which now holds "
            f"{sha256_file(items)}; moved to {(tmp_path.resolve() / QUARANTINE / prompts).as_posix()}, "
            "rerun to recompute it") in err, err
    assert not prompts.exists() and (QUARANTINE / prompts).read_bytes() == rendered
