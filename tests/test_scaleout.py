"""The SLURM profile plans the same workflow; a GPU run is a params change."""

import os
import subprocess
import sys

from culteval.config import ROOT


def test_slurm_profile_dry_run_requests_gpu_for_offloaded_models(tmp_path, mirror):
    overlay = tmp_path / "gpu.yaml"
    overlay.write_text("models:\n  gemma-3-270m: {n_gpu_layers: -1}\n")
    params = f"{ROOT / 'params.yaml'}:{ROOT / 'tests' / 'data' / 'params.tiny.yaml'}:{overlay}"
    env = {**os.environ, "CULTEVAL_PARAMS": params, "CULTEVAL_DATA_MIRROR": str(mirror)}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path / "run"),
         "--profile", str(ROOT / "workflow" / "profiles" / "slurm"), "-n"],
        env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    blocks = proc.stdout.split("rule ")
    infer = [b for b in blocks if b.startswith("infer:")]
    assert len(infer) == 40  # 2 models x (4 tasks x 4 strategies + BLEnD and INDICA x 2 English strategies)
    gemma = [b for b in infer if "raw/hi/gemma-3-270m/" in b]
    assert len(gemma) == 20 and all("gpu=1" in b for b in gemma)
    assert not any("gpu=1" in b for b in infer if b not in gemma)  # SmolLM2 stays on the CPU
    assert not any("gpu=1" in b for b in blocks if b.startswith("prepare:"))
