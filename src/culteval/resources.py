"""What an inference job asks the scheduler for, from the work it does (docs/cluster.md).

Memory is preflight's estimate of what the model needs (its file plus the KV cache of
``n_ctx``, :mod:`culteval.preflight`) plus the interpreter's own share; runtime is the cost
model's predicted seconds (:func:`culteval.costmodel.predicted_seconds`) with a margin and a
floor; a GPU is asked for exactly when the model's ``n_gpu_layers`` is non-zero. Only what a
job asks for depends on these numbers, never a result.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

from culteval import gguf
from culteval.costmodel import ITEMSETS, predicted_seconds
from culteval.preflight import MIB

# What a job holds besides the model and its KV cache: Snakemake's two processes (the batch
# script's and the job step's, 300-500 MiB each), the interpreter with pandas, pyarrow and
# llama.cpp, its compute buffers and the prompts table. Measured on the tiny run's 36 inference
# jobs as SLURM jobs (sacct MaxRSS summed over the job's steps, docs/cluster.md): at most
# 1153 MiB, of which the model file and KV cache are 139-278 MiB.
PROCESS_MB = 1536
RUNTIME_MARGIN = 3.0       # predicted seconds x 3: the calibration machine is not the node
RUNTIME_FLOOR_MIN = 10     # start-up, a loaded node, a slow shared filesystem
UNMEASURED_RUNTIME_MIN = 240  # a model the cost model has no rates for (calibrate to tighten)


def mem_mb(facts: dict, n_ctx: int, attempt: int = 1) -> int:
    """MiB for a job running the GGUF described by ``facts`` (:func:`culteval.gguf.facts`):
    (file + KV cache of ``n_ctx`` + :data:`PROCESS_MB`) x ``attempt`` (a job killed for memory
    is retried asking for more)."""
    need = facts["size_bytes"] + gguf.kv_cache_bytes(facts, n_ctx)
    return int(math.ceil(need / MIB + PROCESS_MB)) * max(1, int(attempt))


def model_mem_mb(model_json: str | Path, cfg: dict, attempt: int = 1) -> int:
    """:func:`mem_mb` of the model an acquired ``data/models/<name>.json`` record points at."""
    from culteval.acquire import load_model_record

    path = Path(load_model_record(model_json, cfg)["path"])
    stat = path.stat()
    return mem_mb(_facts(str(path), stat.st_size, stat.st_mtime_ns), cfg["inference"]["n_ctx"], attempt)


@functools.cache
def _facts(path: str, size: int, mtime_ns: int) -> dict:
    """:func:`culteval.gguf.facts`, read once per file version: reading the keys loads llama.cpp's
    vocabulary (a quarter of a second), and the workflow asks once per job."""
    return gguf.facts(path)


def runtime_min(seconds: float | None) -> int:
    """Minutes to ask for a job predicted to take ``seconds`` (None: not predicted)."""
    if seconds is None:
        return UNMEASURED_RUNTIME_MIN
    return max(RUNTIME_FLOOR_MIN, int(math.ceil(RUNTIME_MARGIN * seconds / 60)))


def infer_runtime_min(cfg: dict, culture: str, model: str, task: str, strategy: str,
                      folder: Path = ITEMSETS) -> int:
    """:func:`runtime_min` of the cost model's prediction for one infer job; a model without
    measured rates gets :data:`UNMEASURED_RUNTIME_MIN`, not another model's speed."""
    return runtime_min(predicted_seconds(cfg, culture, model, task, strategy, folder, unmeasured="none"))


def gpus(model_spec: dict) -> int:
    """1 when the model offloads layers to a GPU (``n_gpu_layers`` non-zero), else 0."""
    return 1 if model_spec.get("n_gpu_layers", 0) != 0 else 0
