"""The SLURM profile against a real scheduler: the tiny pipeline as SLURM jobs, checked with sacct.

Needs a SLURM cluster this process can submit to, with accounting (sacct): ``make test``
starts a one-node one on localhost (``scripts/local-slurm.sh``, root and apt-get). Without
one the tests are skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_workflow import TINY, produced_files, run_snakemake

from culteval.config import ROOT, culture_keys, enabled_tasks, load_params
from culteval.costmodel import strategies_of
from culteval.resources import infer_runtime_min, model_mem_mb

pytestmark = pytest.mark.slow
PROFILE = ROOT / "workflow" / "profiles" / "slurm"
# the tiny run with one prompting strategy: one inference job per model and task
PARAMS = f"{TINY}:{ROOT / 'tests' / 'data' / 'params.slurm.yaml'}"
SACCT_FIELDS = ["JobID", "Comment", "State", "ReqCPUS", "ReqMem", "Timelimit", "MaxRSS", "Elapsed"]


def _cluster_problem() -> str | None:
    """Why no SLURM job can be run and accounted here, or None when one can."""
    for tool in ("sbatch", "sinfo", "sacct"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/local-slurm.sh starts a local cluster)"
    nodes = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    if nodes.returncode != 0 or not {"idle", "mix"} & set(nodes.stdout.split()):
        return (f"no idle SLURM node ({(nodes.stderr or nodes.stdout).strip()}); "
                "start one with scripts/local-slurm.sh")
    acct = subprocess.run(["sacct", "-n", "-X"], capture_output=True, text=True)
    if acct.returncode != 0:
        return f"sacct does not answer ({acct.stderr.strip()}): the cluster has no accounting"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = _cluster_problem()
    if problem:
        pytest.skip(f"no SLURM cluster: {problem}")


def expected_infer_jobs(cfg: dict) -> list[tuple[str, str, str, str]]:
    return sorted((culture, model, task, strategy)
                  for culture in culture_keys(cfg) for model in cfg["models"]
                  for task in enabled_tasks(cfg) for strategy in strategies_of(task, cfg))


def run_on_slurm(workdir: Path, *args: str, params: str = PARAMS, check: bool = True):
    """The workflow through the project's SLURM profile; status checks start after 2 s (the profile's
    40 s default suits a shared cluster, not a test)."""
    env = {**os.environ, "CULTEVAL_PARAMS": params, "DVC_NO_ANALYTICS": "1"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--profile", str(PROFILE), "--slurm-init-seconds-before-status-checks", "2",
           "--slurm-keep-successful-logs", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake --profile slurm failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc


def sacct_jobs(run_uuid_dir: Path) -> dict[str, dict[str, str]]:
    """sacct's row of every job the run submitted, keyed by the plugin's comment (rule + wildcards)."""
    ids = sorted({p.stem for p in (run_uuid_dir / ".snakemake" / "slurm_logs").rglob("*.log")})
    assert ids, f"no SLURM log files under {run_uuid_dir}/.snakemake/slurm_logs: nothing ran on SLURM"
    out = subprocess.run(["sacct", "-n", "-P", "-j", ",".join(ids), "-o", ",".join(SACCT_FIELDS)],
                         capture_output=True, text=True, check=True).stdout
    rows = [dict(zip(SACCT_FIELDS, line.split("|"), strict=True)) for line in out.splitlines() if line]
    jobs = {r["JobID"]: {**r, "MaxRSS": 0.0} for r in rows if "." not in r["JobID"]}
    for r in rows:  # MaxRSS is per step (the batch script's Snakemake, the job step running the
        # rule): their sum bounds the job's peak, which a cgroup-enforcing cluster holds to --mem
        if "." in r["JobID"]:
            jobs[r["JobID"].split(".")[0]]["MaxRSS"] += _mib(r["MaxRSS"])
    return {r["Comment"]: r for r in jobs.values()}


def _mib(value: str) -> float:
    """sacct's ``1036M`` / ``212K`` / ``1.5G`` in MiB."""
    scale = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    return float(value[:-1]) * scale[value[-1]] if value and value[-1] in scale else float(value or 0)


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory, mirror):
    os.environ.setdefault("CULTEVAL_DATA_MIRROR", str(mirror))
    workdir = tmp_path_factory.mktemp("slurm")
    # data and prompts on this host, as on a login node (acquire may need the network compute
    # nodes lack); inference, metrics and report as SLURM jobs (about 15 s each: two Snakemake
    # start-ups per job)
    run_snakemake(workdir, "all_prompts", params=PARAMS)
    run_on_slurm(workdir)
    return workdir


def test_every_infer_job_ran_as_the_slurm_job_its_rule_asked_for(slurm_run):
    cfg = load_params(PARAMS)
    jobs = sacct_jobs(slurm_run)
    infer = sorted(p.relative_to(slurm_run / "results" / "raw").with_suffix("").parts
                   for p in (slurm_run / "results" / "raw").rglob("*.parquet"))
    # what the params ask for, as the Snakefile enumerates it (every culture x model x task x
    # strategy the task supports): a job missing, or one nobody asked for, fails here
    assert infer == expected_infer_jobs(cfg)
    print(f"\n{'job':>6} {'culture/model/task/strategy':58} {'state':9} "
          "cpus  req_mem max_rss  limit    elapsed")
    for culture, model, task, strategy in infer:
        key = f"rule_infer_wildcards_{culture}_{model}_{task}_{strategy}"
        assert key in jobs, f"infer {culture}/{model}/{task}/{strategy} has no SLURM job in sacct"
        job = jobs[key]
        mem = model_mem_mb(slurm_run / "data" / "models" / f"{model}.json", cfg)
        minutes = infer_runtime_min(cfg, culture, model, task, strategy)
        print(f"{job['JobID']:>6} {'/'.join((culture, model, task, strategy)):58} {job['State']:9} "
              f"{job['ReqCPUS']:>4} {job['ReqMem']:>8} {job['MaxRSS']:>7.0f}M {job['Timelimit']} "
              f"{job['Elapsed']}")
        assert job["State"] == "COMPLETED", job
        assert int(job["ReqCPUS"]) == cfg["inference"]["n_threads"], job
        assert _mib(job["ReqMem"]) == mem, (job, mem)
        assert job["Timelimit"] == f"{minutes // 60:02d}:{minutes % 60:02d}:00", (job, minutes)
        assert 0 < job["MaxRSS"] < mem, job  # measured, and within what was asked


def test_slurm_run_is_byte_identical_to_a_local_run(slurm_run, tmp_path):
    run_snakemake(tmp_path, params=PARAMS)
    local, slurm = produced_files(tmp_path), produced_files(slurm_run)
    assert sorted(local) == sorted(slurm)
    differ = [name for name in local if local[name] != slurm[name]]
    assert not differ, f"files differ between the SLURM run and the local run: {differ}"
    print(f"\n{len(local)} files under data/ and results/, "
          f"{sum(map(len, local.values()))} bytes, byte-identical in both runs")


def test_a_job_killed_for_memory_is_retried_then_fails_naming_its_log(slurm_run):
    """Too little memory for one inference job: SLURM kills it, the profile's retry is killed too,
    Snakemake fails naming the SLURM log with the reason; a rerun with the rule's own memory
    writes the bytes the first run wrote (nothing of the killed attempts is kept)."""
    target = "results/raw/hi/gemma-3-270m/culturalbench/default.parquet"
    before = (slurm_run / target).read_bytes()
    proc = run_on_slurm(slurm_run, target, "--forcerun", "infer", "--set-resources", "infer:mem_mb=300",
                        check=False)
    assert proc.returncode != 0, proc.stderr[-3000:]
    print("\n" + "\n".join(line for line in proc.stderr.splitlines()
                            if "SLURM-job" in line or "culteval: SLURM job" in line))
    key = "rule_infer_wildcards_hi_gemma-3-270m_culturalbench_default"
    logs = sorted((slurm_run / ".snakemake" / "slurm_logs" / "rule_infer"
                   / "hi_gemma-3-270m_culturalbench_default").glob("*.log"), key=lambda p: int(p.stem))
    killed = [p for p in logs if "exceeded memory limit" in p.read_text(errors="replace")]
    assert len(killed) == 2, f"expected the job and its retry killed for memory, got logs {logs}"
    for log in killed:  # the failure names each killed attempt, the scheduler's reason and its log
        assert f"culteval: SLURM job {log.stem}: exceeded memory limit" in proc.stderr, proc.stderr[-3000:]
        assert f"(SLURM log: {log})" in proc.stderr, proc.stderr[-3000:]
    jobs = sacct_jobs(slurm_run)
    assert jobs[key]["State"] in {"FAILED", "OUT_OF_MEMORY"}
    assert not (slurm_run / target).exists(), "a killed job's output was kept"
    run_on_slurm(slurm_run, target)
    assert (slurm_run / target).read_bytes() == before
