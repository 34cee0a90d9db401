#!/usr/bin/env bash
# Build and install llama-cpp-python with CPU flags this machine really supports.
#
# A native build (-DGGML_NATIVE=ON) can emit instructions a VM advertises but
# traps (AMX: SIGILL in ggml_backend_amx_mul_mat), and a fixed AVX-512 build
# crashes on CPUs without it (SIGILL in ggml_cpu_init). So: native off, and
# each SIMD extension switched on only when /proc/cpuinfo lists it.
# Override everything with CULTEVAL_CMAKE_ARGS (e.g. "-DGGML_CUDA=ON").
# Built wheels are cached per flag set in CULTEVAL_WHEEL_CACHE, because pip's
# own wheel cache ignores CMAKE_ARGS and would reuse a wheel built for other flags.
set -euo pipefail
PY=${1:-python}
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}

if [[ -n "${CULTEVAL_CMAKE_ARGS:-}" ]]; then
  args="$CULTEVAL_CMAKE_ARGS"
else
  flags=$(grep -m1 -E '^flags' /proc/cpuinfo 2>/dev/null || true)
  has() { [[ " $flags " == *" $1 "* ]] && echo ON || echo OFF; }
  args="-DGGML_NATIVE=OFF -DGGML_AVX=$(has avx) -DGGML_AVX2=$(has avx2) -DGGML_FMA=$(has fma)"
  args+=" -DGGML_F16C=$(has f16c) -DGGML_AVX512=$(has avx512f) -DGGML_AVX_VNNI=$(has avx_vnni)"
  # AVX-512's extensions are separate switches: without them an AVX-512 build leaves VNNI's
  # int8 dot products unused (benchmarks/bench_build.py: 1.09x on real jobs, byte-identical)
  args+=" -DGGML_AVX512_VBMI=$(has avx512vbmi) -DGGML_AVX512_VNNI=$(has avx512_vnni)"
  args+=" -DGGML_AVX512_BF16=$(has avx512_bf16)"
  args+=" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
fi

key=$(printf '%s %s' "$VERSION" "$args" | sha256sum | cut -c1-16)
cache=${CULTEVAL_WHEEL_CACHE:-$HOME/.cache/culteval/wheels}/$key
if ! ls "$cache"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $VERSION with CMAKE_ARGS=\"$args\" (about 6 minutes)" >&2
  tmp=$(mktemp -d)
  CMAKE_ARGS="$args" "$PY" -m pip wheel --no-cache-dir --no-deps -w "$tmp" "llama-cpp-python==$VERSION" >&2
  mkdir -p "$cache" && mv "$tmp"/llama_cpp_python-*.whl "$cache"/ && rmdir "$tmp"
  printf '%s\n' "$args" > "$cache/CMAKE_ARGS"
fi
"$PY" -m pip install --quiet --force-reinstall --no-deps "$cache"/llama_cpp_python-*.whl
"$PY" -m pip install --quiet "$cache"/llama_cpp_python-*.whl  # its dependencies
