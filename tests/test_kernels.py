"""One truth on every CPU: the metrics and report stages write the same bytes under any OpenBLAS
kernel, and the fast suite's numerical tests pass under two kernels.

OpenBLAS picks its kernels for the CPU it runs on (``OPENBLAS_CORETYPE`` overrides the choice),
and kernels round differently in the last bits. ``Prescott`` is an SSE3 kernel that every x86-64
CPU supports, so forcing it can never ask for an instruction the CPU lacks; it is forced only in
the subprocesses below, never in this process. Elsewhere than x86-64 the kernel names differ and
the tests are skipped.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_recompute import synthetic_items, write_items

from culteval.config import ROOT
from culteval.io import FLOAT_FORMAT, SIDECAR_SUFFIX
from culteval.metrics.summary import SIGNIFICANT_DIGITS

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="OpenBLAS kernel names are x86-64's")
KERNEL = "Prescott"  # SSE3: supported by every x86-64 CPU
MODELS = {  # five models in two families, multilingual varying within each: the mixed model is fitted
    "m0": ("fa", {"en": 1.0, "hi": 0.2}), "m1": ("fb", {"en": 0.9, "hi": 0.9}),
    "m2": ("fa", {"en": 0.8, "hi": 0.5}), "m3": ("fb", {"en": 0.95, "hi": 0.7}),
    "m4": ("fa", {"en": 0.7, "hi": 0.4})}
STRATEGIES = ("default", "native")
N_PERM, N_TRIALS = 2, 4


def _env(kernel: str | None) -> dict:
    """This process's environment (this checkout's package first); ``kernel`` forced, if given."""
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "DVC_NO_ANALYTICS": "1"}
    if kernel is not None:
        env["OPENBLAS_CORETYPE"] = kernel
    return env


def _cli(root: Path, params: str, args: list[str], kernel: str | None = None) -> None:
    """``culteval <args>`` as the rules run it (``python -m culteval.cli``, cwd the project)."""
    proc = subprocess.run([sys.executable, "-m", "culteval.cli", "--params", params, *args], cwd=root,
                          env=_env(kernel), capture_output=True, text=True)
    assert proc.returncode == 0, f"{args[0]} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"


def _raw(rng, items: pd.DataFrame, strategy: str) -> pd.DataFrame:
    """Raw outputs (docs/contracts.md) for any number of options: a distribution per answer order and
    sampled trials (some invalid)."""
    rows = []
    for iid, opts in zip(items["item_id"], items["options"], strict=True):
        k = len(opts)
        for p in range(N_PERM):
            pid = f"{iid}#{strategy}#p{p}"
            rows.append({"prompt_id": pid, "item_id": iid, "permutation": p, "trial": -1,
                         "probs": rng.dirichlet(np.full(k, 0.7)).tolist(),
                         "option_mass": float(rng.uniform(0.02, 1.0)), "generated": None, "parsed": None,
                         "n_prompt_tokens": 30})
            for t in range(N_TRIALS):
                a = int(rng.integers(-1, k))  # -1: an unparseable answer
                rows.append({"prompt_id": pid, "item_id": iid, "permutation": p, "trial": t, "probs": None,
                             "option_mass": None, "generated": "?" if a < 0 else str(a + 1), "parsed": a,
                             "n_prompt_tokens": 30})
    return pd.DataFrame(rows).sort_values(["prompt_id", "trial"]).reset_index(drop=True)


def _microdata(path: Path, n: int = 600) -> None:
    """Respondent-level answers to the ten map variables with two latent factors (the projection's fit)."""
    from test_metrics import synthetic_microdata

    synthetic_microdata(n=n)[0].to_csv(path, index=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory, mirror) -> tuple[Path, str, list[str], list[str]]:
    """A project folder with a run's inputs to the metrics stage: items of four tasks (the map's
    from the mirror through ``prepare``), raw outputs of five models x two strategies, the
    published map coordinates under ``data/raw/ivs_map`` and IVS-like microdata."""
    from culteval import provenance
    from culteval.io import write_parquet

    root = tmp_path_factory.mktemp("project")
    shutil.copytree(mirror / "ivs_map", root / "data" / "raw" / "ivs_map")
    _microdata(root / "microdata.csv")
    overlay = {"metrics": {"bootstrap": 40},
               "cultural_map": {"microdata": str(root / "microdata.csv")},
               "tasks": {"global_opinions": {"sampled": {"trials": N_TRIALS, "temperature": 0.7}}},
               "models": {name: {"path": f"models/{name}.gguf", "group": "global" if i % 2 else "regional",
                                 "family": family, "multilingual": multilingual, "base": None}
                          for i, (name, (family, multilingual)) in enumerate(MODELS.items())}}
    # the models are not params.yaml's: its own two are replaced, not joined
    base = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    base["models"] = overlay.pop("models")
    (root / "params.yaml").write_text(yaml.safe_dump(base), encoding="utf-8")
    (root / "overlay.yaml").write_text(yaml.safe_dump(overlay), encoding="utf-8")
    params = f"{root / 'params.yaml'}:{root / 'overlay.yaml'}"
    items_dir = root / "data" / "items" / "hi"
    _cli(root, params, ["prepare", "--task", "cultural_map", "--raw-root", str(mirror),
                        "--out", str(items_dir / "cultural_map.parquet")])
    rng = np.random.default_rng(34)
    tables = {**synthetic_items(rng), "cultural_map": pd.read_parquet(items_dir / "cultural_map.parquet")}
    raw = []
    for task, df in sorted(tables.items()):
        path = items_dir / f"{task}.parquet"
        if task != "cultural_map":
            write_items(df, path, "hi", task)
        for model in MODELS:
            for strategy in STRATEGIES:
                out = root / "results" / "raw" / "hi" / model / task / f"{strategy}.parquet"
                write_parquet(_raw(rng, df, strategy), out, {"identity": provenance.identity(
                    "raw", culture="hi", model=model, task=task, strategy=strategy,
                    sources={"prompts": "0" * 64, "items": path})})
                raw.append(str(out.relative_to(root)))
    items = sorted(str((items_dir / f"{t}.parquet").relative_to(root)) for t in tables)
    return root, params, items, raw


def tracked_outputs(root: Path) -> dict[str, bytes]:
    """What DVC tracks of the metrics and report stages (dvc.yaml): summary.csv, metrics.json, the
    provenance records, report.html and the figures folder; the ``*.provenance.json`` sidecars are
    .dvcignore'd (commit and machine)."""
    files = [root / "results" / "metrics" / n for n in ("summary.csv", "metrics.json", "provenance.json")]
    files += [root / "results" / "report.html", root / "results" / "provenance.json"]
    files += sorted(p for p in (root / "results" / "figures").rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files
            if not p.name.endswith(SIDECAR_SUFFIX)}


def run_stages(project, kernel: str | None) -> dict[str, bytes]:
    """The metrics and report stages (workflow/rules/score.smk, report.smk) under ``kernel``."""
    root, params, items, raw = project
    for out in ("results/metrics", "results/figures", "results/report.html", "results/provenance.json"):
        path = root / out
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    _cli(root, params, ["metrics", "--items", *items, "--raw", *raw, "--out-dir", "results/metrics"], kernel)
    _cli(root, params, ["report", "--summary", "results/metrics/summary.csv", "--raw", *raw,
                        "--out-dir", "results"], kernel)
    return tracked_outputs(root)


@pytest.fixture(scope="module")
def default_outputs(project) -> dict[str, bytes]:
    return run_stages(project, None)


def test_tracked_outputs_are_the_same_bytes_under_another_openblas_kernel(project, default_outputs):
    default = default_outputs
    summary = pd.read_csv(io_bytes(default["results/metrics/summary.csv"]))
    # the run exercises what a kernel can move: the map's expected answers and projection, the
    # mixed model, bootstrap intervals
    assert summary["metric"].str.startswith("expected_").any() and summary["metric"].eq("map_x").any()
    assert summary["model"].eq("mixed_effects").any(), "the mixed model was not fitted"
    assert summary["ci_low"].notna().sum() > 100
    forced = run_stages(project, KERNEL)
    assert sorted(forced) == sorted(default)
    differ = [name for name in sorted(default) if default[name] != forced[name]]
    assert not differ, f"OPENBLAS_CORETYPE={KERNEL} changes {differ}: " + "; ".join(
        first_difference(default[name], forced[name]) for name in differ)


def first_difference(a: bytes, b: bytes) -> str:
    """The first differing line of two texts (count of differing lines), or the first byte offset."""
    try:
        la, lb = a.decode().splitlines(), b.decode().splitlines()
    except UnicodeDecodeError:
        return f"byte {next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)}"
    pairs = [(x, y) for x, y in zip(la, lb, strict=False) if x != y]
    if not pairs:
        return f"{len(la)} vs {len(lb)} lines"
    return f"{len(pairs)} lines differ, first {pairs[0][0].strip()!r} vs {pairs[0][1].strip()!r}"


def io_bytes(data: bytes):
    import io

    return io.BytesIO(data)


def test_written_floats_carry_the_documented_digits(default_outputs):
    """Whatever the CPU (this test holds on one whose kernels happen to agree): every float in
    metrics.json has at most ``SIGNIFICANT_DIGITS`` significant digits and is summary.csv's."""
    outputs = default_outputs
    assert FLOAT_FORMAT == f"%.{SIGNIFICANT_DIGITS}g"  # summary.csv's cells: the same precision

    def digits(x: float) -> int:
        mantissa = repr(float(x)).split("e")[0].replace("-", "").replace(".", "").lstrip("0")
        return len(mantissa.rstrip("0")) if "." in repr(float(x)) else len(mantissa)

    values = []

    def walk(node):
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, float):
            values.append(node)

    walk(json.loads(outputs["results/metrics/metrics.json"]))
    assert len(values) > 500
    long = [v for v in values if digits(v) > SIGNIFICANT_DIGITS]
    assert not long, f"{len(long)} floats in metrics.json carry more digits, e.g. {long[:3]}"
    # and they are summary.csv's numbers, not a longer version of them
    metrics = json.loads(outputs["results/metrics/metrics.json"])
    summary = pd.read_csv(io_bytes(outputs["results/metrics/summary.csv"]))
    for r in summary.itertuples(index=False):
        got = metrics[r.culture][r.model][r.task][r.strategy][r.metric]
        assert (got is None and np.isnan(r.value)) or got == r.value, (r, got)


# The fast suite's numerical tests (fits, optimizers, projections, bootstraps and permutation tests
# with tolerances): they must pass under any kernel, so they run again under the forced one.
NUMERICAL = ("tests/test_mixed.py", "tests/test_rystrom.py", "tests/test_stats.py", "tests/test_paired.py",
             "tests/test_cultural_map.py", "tests/test_metrics.py")


def test_numerical_tests_pass_under_another_openblas_kernel():
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                           *NUMERICAL], cwd=ROOT, env=_env(KERNEL), capture_output=True, text=True)
    tail = proc.stdout[-3000:]
    assert proc.returncode == 0, f"under OPENBLAS_CORETYPE={KERNEL}:\n{tail}"
    assert " passed" in tail and " failed" not in tail, tail
