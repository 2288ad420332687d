#!/usr/bin/env bash
# The OpenBLAS kernels this CPU can run, one name per line, for OPENBLAS_CORETYPE (Debian's OpenBLAS is built with
# DYNAMIC_ARCH and honours it): Prescott (SSE3), Sandybridge (AVX), Haswell and Zen (AVX2 + FMA), SkylakeX
# (AVX-512 F/CD/BW/DQ/VL), Cooperlake (SkylakeX + AVX-512 BF16). With --other: one kernel that is not the one
# OpenBLAS picks by itself here (Haswell on an AVX-512 machine, else Sandybridge), for Launch/test's second pass.
set -euo pipefail
cd "$(dirname "$0")/.."
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { for f in "$@"; do [[ "$flags" == *" $f "* ]] || return 1; done; }
kernels=()
has pni && kernels+=(Prescott)
has avx && kernels+=(Sandybridge)
has avx2 fma && kernels+=(Haswell Zen)
has avx512f avx512cd avx512bw avx512dq avx512vl && kernels+=(SkylakeX)
has avx512f avx512cd avx512bw avx512dq avx512vl avx512_bf16 && kernels+=(Cooperlake)
if [ "${1:-}" = "--other" ]; then
  picked=$(env -u OPENBLAS_CORETYPE .build/release/deepcluster info 2>&1 | grep -o 'NO_AFFINITY [A-Za-z0-9]*' | cut -d' ' -f2)
  case "$picked" in
    SkylakeX|Cooperlake|SapphireRapids) echo Haswell ;;
    *) echo Sandybridge ;;
  esac
else
  printf '%s\n' "${kernels[@]}"
fi
