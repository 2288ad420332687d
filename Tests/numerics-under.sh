#!/usr/bin/env bash
# The numerical tests under one OpenBLAS kernel (OPENBLAS_CORETYPE=$1): the unit tests' gradient checks and optimiser
# kernels (swift test, debug build, already built) and Tests/numerics.sh. Used by Launch/test and Launch/test-kernels.
# Prints the lines that matter and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE="$1"
T=$(mktemp -d /tmp/dc-numerics.XXXX)
trap 'rm -rf "$T"' EXIT
fails=0
rc=0; swift test --skip-build --filter "NNTests|ClusteringTests" > "$T/unit.log" 2>&1 || rc=$?
if [ $rc -eq 0 ] && grep -E "Executed [0-9]+ tests" "$T/unit.log" | tail -1 | grep -qE "[ (]0 failures"; then
  echo "PASS [$1] unit tests: $(grep -c '^gradient check' "$T/unit.log") gradient checks, worst $(grep '^gradient check' "$T/unit.log" \
    | awk '{for (i = 1; i < NF; i++) if ($i == "difference") print $(i + 1)}' | sort -g | tail -1) (tolerance 1e-4; soft k-means at alpha 1000: 1e-3)"
else grep -E "error|failed|Executed" "$T/unit.log"; echo "FAIL [$1] unit tests (exit $rc)"; fails=$((fails + 1)); fi
# In float32: the first pass (Tests/multirank.sh) ran the products in bf16 where this CPU has it.
PRECISION=float32 Tests/numerics.sh "$T"; fails=$((fails + $?))
echo "numerical tests under $1: $fails failure(s)"
[ $fails -eq 0 ]
