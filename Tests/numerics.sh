#!/usr/bin/env bash
# The numerical contract of DESIGN.md, under the OpenBLAS kernel that OPENBLAS_CORETYPE names (unset: the one OpenBLAS
# picks for this CPU). Nothing here depends on which kernel runs, so every check holds on any x86-64 machine:
# 1. exact: p ranks on one host (the shared-memory reduction sums the shares in rank order) end bitwise equal to one
#    process emulating those p shares (the same rows, the same GEMM shapes, the same order), p = 2 and 3; negative
#    controls: the emulation summing in reverse, or without the last share, must NOT be equal (the test can fail).
#    Again with augmented inputs (--augment shift=0.1,rotate=10) on 3 ranks.
# 2. bounded: one step's reduced gradient through each path whose order MPI picks (reduction thread, --no-shared-memory,
#    one blocking allreduce) against the exact sum of the emulated shares, elementwise within gamma_(p-1) sum |g_r|,
#    gamma_n = n u / (1 - n u), u = 2^-24 (any order of summing p floats stays inside it); prints the worst ratio.
#    Dropping a share must break the bound.
# 3. smoke: 20 SGD steps on 1 vs 2 and 3 ranks within a loose 1e-2 relative (the trajectory, not the contract: its
#    rounding differences grow with every step); prints the margin.
# 4. determinism (same seed, same rank count: bitwise) and stop/resume (bitwise, 2 ranks).
# The products in --precision $PRECISION (default: bf16 where the CPU multiplies bf16 natively, with or without AMX,
# even where `auto` means float32 there; else auto, which means float32);
# Tests/numerics-under.sh runs them again in float32.
# Usage: Tests/numerics.sh TMPDIR. Prints PASS/FAIL lines, exits with the number of failures. About 30 s on 2 cores.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/deepcluster
info=$("$BIN" info 2>&1) || { echo "FAIL: $BIN info (to learn whether the CPU multiplies bf16): $info"; exit 1; }
native=$(grep -c -E "bf16 GEMM \(oneDNN\): (AMX|AVX-512 BF16( \(AMD\))?)," <<< "$info" || true)
precision=${PRECISION:-$([ "$native" -gt 0 ] && echo bf16 || echo auto)}
kernel=${OPENBLAS_CORETYPE:-default}/$precision
T="$1/numerics-${kernel/\//-}"
mkdir -p "$T"
MPI="mpirun --allow-run-as-root --oversubscribe -x OPENBLAS_NUM_THREADS=1"
[ -n "${OPENBLAS_CORETYPE:-}" ] && MPI="$MPI -x OPENBLAS_CORETYPE"
fails=0
pass() { echo "PASS [$kernel] $*"; }
fail() { echo "FAIL [$kernel] $*"; fails=$((fails + 1)); }
picked=$($BIN info 2>&1 | grep -o 'NO_AFFINITY [A-Za-z0-9]*' | cut -d' ' -f2)
if [ -n "${OPENBLAS_CORETYPE:-}" ] && [ "$picked" != "$OPENBLAS_CORETYPE" ]; then
  fail "OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE but OpenBLAS runs its $picked kernels"
fi

S="pretrain --precision $precision --epochs 1 --max-steps 20 --batch-size 100 --optimizer sgd --lr 0.1 --seed 5"
# 1. Exact.
for n in 2 3; do
  $MPI -np $n $BIN $S --out "$T/r$n" > "$T/r$n.log" 2>&1 || { cat "$T/r$n.log"; fail "pretrain on $n ranks"; }
  $BIN $S --threads 1 --debug-emulate-ranks $n --out "$T/e$n" > "$T/e$n.log" 2>&1 || { cat "$T/e$n.log"; fail "emulation of $n ranks"; }
  if out=$($BIN compare --bitwise "$T/r$n/autoencoder.bin" "$T/e$n/autoencoder.bin" 2>&1); then
    pass "exact reduction contract, $n ranks (shared memory) vs one process emulating $n shares, 20 steps: $out"
  else fail "exact reduction contract, $n ranks: $out"; fi
done
# The same with augmentation (each sample's shift and rotation drawn from seed, epoch and sample index) and the mask.
A="$S --augment shift=0.1,rotate=10"
$MPI -np 3 $BIN $A --out "$T/ra3" > "$T/ra3.log" 2>&1 || { cat "$T/ra3.log"; fail "pretrain --augment on 3 ranks"; }
$BIN $A --threads 1 --debug-emulate-ranks 3 --out "$T/ea3" > "$T/ea3.log" 2>&1 || { cat "$T/ea3.log"; fail "emulation of 3 ranks with --augment"; }
if out=$($BIN compare --bitwise "$T/ra3/autoencoder.bin" "$T/ea3/autoencoder.bin" 2>&1); then
  pass "exact reduction contract with --augment shift=0.1,rotate=10, 3 ranks vs 3 emulated shares: $out"
else fail "exact reduction contract with --augment, 3 ranks: $out"; fi
for order in reverse drop-last; do
  $BIN $S --threads 1 --debug-emulate-ranks 3 --debug-emulate-order $order --out "$T/e3-$order" > /dev/null 2>&1
  if out=$($BIN compare --bitwise "$T/r3/autoencoder.bin" "$T/e3-$order/autoencoder.bin" 2>&1); then
    fail "negative control: an emulation summing the shares $order still equals 3 ranks ($out): the exact test cannot fail"
  else pass "negative control: summing the shares $order differs from 3 ranks, as it must ($(echo "$out" | head -1))"; fi
done

# 2. Bounded: one step from the same parameters.
O="pretrain --precision $precision --epochs 1 --max-steps 1 --batch-size 100 --optimizer sgd --lr 0.1 --seed 5"
$BIN $O --threads 1 --debug-emulate-ranks 3 --debug-dump-gradients "$T/shares3" --out "$T/g-emu" > /dev/null 2>&1 \
  || fail "emulated gradients of 3 shares"
for mode in --reduction-thread --no-shared-memory --no-overlap; do
  $MPI -np 3 $BIN $O $mode --debug-dump-gradients "$T/g$mode" --out "$T/g-run$mode" > "$T/g$mode.log" 2>&1 \
    || { cat "$T/g$mode.log"; fail "one step on 3 ranks with $mode"; }
  if out=$($BIN compare-gradients "$T/shares3.shares" "$T/g$mode" 2>&1); then
    pass "one step's gradient on 3 ranks with $mode within float32 rounding of the sum of the shares: $out"
  else fail "one step's gradient on 3 ranks with $mode: $out"; fi
done
$BIN $O --threads 1 --debug-emulate-ranks 3 --debug-emulate-order drop-last --debug-dump-gradients "$T/dropped" \
  --out "$T/g-drop" > /dev/null 2>&1
if out=$($BIN compare-gradients "$T/shares3.shares" "$T/dropped" 2>&1); then
  fail "negative control: a gradient without its last share passes the bound ($out)"
else pass "negative control: a gradient without its last share breaks the bound ($(echo "$out" | head -1))"; fi

# 3. Smoke: the trajectory.
$MPI -np 1 $BIN $S --out "$T/r1" > "$T/r1.log" 2>&1 || { cat "$T/r1.log"; fail "pretrain on 1 rank"; }
for n in 2 3; do
  if out=$($BIN compare "$T/r1/autoencoder.bin" "$T/r$n/autoencoder.bin" --tolerance 1e-2 2>&1); then
    pass "trajectory smoke test, 20 steps on 1 vs $n ranks: $out"
  else fail "trajectory smoke test, 1 vs $n ranks: $out"; fi
done

# 4. Determinism (Adam and denoising) and stop/resume, bitwise.
for k in a b; do
  $MPI -np 2 $BIN pretrain --precision $precision --epochs 1 --max-steps 10 --batch-size 64 --seed 9 --out "$T/det$k" > /dev/null 2>&1
done
if out=$($BIN compare --bitwise "$T/deta/autoencoder.bin" "$T/detb/autoencoder.bin" 2>&1); then pass "determinism: $out"
else fail "determinism: $out"; fi
P="--precision $precision --limit 600 --epochs 3 --widths 784-64-10 --batch-size 100 --seed 3"
$MPI -np 2 $BIN pretrain $P --out "$T/res-ref" > /dev/null 2>&1
$MPI -np 2 $BIN pretrain $P --out "$T/res" --stop-after-epochs 1 > "$T/res.log" 2>&1
$MPI -np 2 $BIN pretrain --resume "$T/res" >> "$T/res.log" 2>&1
if cmp -s "$T/res-ref/autoencoder.bin" "$T/res/autoencoder.bin" && grep -q "resuming after epoch 1" "$T/res.log"; then
  pass "stop after epoch 1 and resume on 2 ranks: autoencoder.bin bitwise identical to the uninterrupted run"
else cat "$T/res.log"; fail "stop/resume on 2 ranks differs from the uninterrupted run"; fi
exit $fails
