#!/usr/bin/env bash
# GPU readiness in one command: the whole-job benchmark (benchmarks/bench_job.py) on a CUDA
# build of llama-cpp-python with a 7B-class GGUF, every layer on the GPU (n_gpu_layers=-1).
#
#   CULTEVAL_DATA_MIRROR=/abs/data/mirror bash scripts/gpu-bench.sh [extra bench_job.py args]
#
# Steps: a virtual environment in $GPU_VENV (default .venv-gpu) with the pinned dependencies;
# llama-cpp-python built with -DGGML_CUDA=ON by scripts/install-llama-cpp.sh (its wheel is
# cached per flag set); the GGUF fetched from the Hugging Face Hub by repo + file + revision
# through culteval.acquire (sha256 checked when GGUF_SHA256 is set, else printed); then the
# benchmark. Pin GGUF_REVISION to a commit hash: "main" moves.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${CULTEVAL_DATA_MIRROR:?set CULTEVAL_DATA_MIRROR to the data mirror (the benchmark renders the real prompts)}"
GGUF_REPO=${GGUF_REPO:-bartowski/Qwen2.5-7B-Instruct-GGUF}
GGUF_FILE=${GGUF_FILE:-Qwen2.5-7B-Instruct-Q4_K_M.gguf}
GGUF_REVISION=${GGUF_REVISION:-main}
GGUF_SHA256=${GGUF_SHA256:-}
GPU_VENV=${GPU_VENV:-.venv-gpu}
MODELS=${CULTEVAL_MODEL_CACHE:-$HOME/.cache/culteval/models}

command -v nvidia-smi >/dev/null || { echo "gpu-bench: no nvidia-smi: this machine has no NVIDIA GPU" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2
[[ "$GGUF_REVISION" =~ ^[0-9a-f]{40}$ ]] || echo "gpu-bench: GGUF_REVISION=$GGUF_REVISION is not a commit hash (moving)" >&2

if [[ ! -x "$GPU_VENV/bin/python" ]]; then
  python3 -m venv "$GPU_VENV"
  "$GPU_VENV/bin/python" -m pip install --quiet --upgrade pip
fi
"$GPU_VENV/bin/python" -m pip install --quiet -c envs/requirements.lock.txt -e .
CULTEVAL_CMAKE_ARGS="${CULTEVAL_CMAKE_ARGS:--DGGML_CUDA=ON}" bash scripts/install-llama-cpp.sh "$GPU_VENV/bin/python"
"$GPU_VENV/bin/python" -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else
  'gpu-bench: llama-cpp-python was built without GPU offload (check the CUDA toolkit and CMAKE_ARGS)')"

mkdir -p "$MODELS"
model=$("$GPU_VENV/bin/python" - "$GGUF_REPO" "$GGUF_FILE" "$GGUF_REVISION" "$GGUF_SHA256" "$MODELS" <<'EOF'
import sys
from pathlib import Path

from culteval.acquire import download, hf_url

repo, file, revision, sha, folder = sys.argv[1:]
dest = Path(folder) / f"{repo.replace('/', '--')}--{revision}--{file}"
if not dest.exists():
    got = download(hf_url({"repo": repo, "file": file, "revision": revision}), dest, sha or None, f"GGUF {repo}/{file}")
    print(f"gpu-bench: {dest.name} sha256 {got}", file=sys.stderr)
print(dest)
EOF
)

PYTHONPATH=src "$GPU_VENV/bin/python" benchmarks/bench_job.py --model "$model" --n-gpu-layers -1 --threads 4 \
  --prompts "${PROMPTS:-48}" "$@"
