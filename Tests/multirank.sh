#!/usr/bin/env bash
# Multi-rank tests with the real binary under mpirun: collectives against serial results, info, rank
# invariance of training, determinism, and one-line errors for bad input. Run by Launch/test.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/deepcluster
MPI="mpirun --allow-run-as-root --oversubscribe -x OPENBLAS_NUM_THREADS=1"
T=$(mktemp -d /tmp/dc-multirank.XXXX)
trap 'rm -rf "$T"' EXIT
fails=0
pass() { echo "PASS $*"; passes=$((passes + 1)); }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
passes=0

# Collectives: allreduce (sum/max/min; Float, Double, Int), allgatherv uneven, broadcast, barrier; the transports.
for n in 1 2 3; do
  if $MPI -np $n $BIN selftest > "$T/st$n" 2>&1; then pass "collectives on $n rank(s)"; else cat "$T/st$n"; fail "collectives on $n rank(s)"; fi
done

# info under Launch/run and directly.
if Launch/run -np 2 info > "$T/info" 2>&1 && grep -q "2 rank(s)" "$T/info" && [ "$(grep -c 'MNIST t10k' "$T/info")" -eq 2 ] \
   && grep -q "gradient reduction: shared memory" "$T/info"; then
  pass "Launch/run -np 2 info"; else cat "$T/info"; fail "Launch/run -np 2 info"; fi
if $BIN info > "$T/info1" 2>&1 && grep -q "1 rank(s)" "$T/info1"; then pass "info without mpirun"; else fail "info without mpirun"; fi

# NN-descent of images as their bytes under mpirun: the same rounds and entries changed on 1 and 3 ranks, the neighbours
# found (recall against the exact search of a sample).
for n in 1 3; do
  $MPI -np $n $BIN neighbours --limit 6000 --check 200 > "$T/nb$n" 2>&1
  sed -n 's/.*(\(NN-descent of the bytes, .*\)) on .*/\1/p' "$T/nb$n" > "$T/nb$n.rounds"
done
if [ -s "$T/nb1.rounds" ] && cmp -s "$T/nb1.rounds" "$T/nb3.rounds" \
   && awk '/^recall/ { found = 1; if ($2 < 0.95) exit 1 } END { exit !found }' "$T/nb3"; then
  pass "neighbours of bytes: $(cat "$T/nb3.rounds" | cut -c1-60)..., the same on 1 and 3 ranks, $(grep -o 'recall [0-9.]*' "$T/nb3")"
else cat "$T/nb1" "$T/nb3"; fail "neighbours of bytes on 1 and 3 ranks"; fi

# The numerical contract (exact rank invariance on one host, the rounding bound of MPI's paths, determinism,
# stop/resume), under the kernel OpenBLAS picks here.
Tests/numerics.sh "$T"; fails=$((fails + $?))

# Bad data: every IDX defect gives one line on stderr and a non-zero exit.
python3 - "$T/bad" <<'PY'
import gzip, os, struct, sys
root = sys.argv[1]
def idx(dims, payload, magic=None):
    head = magic if magic is not None else bytes([0, 0, 8, len(dims)])
    return head + b"".join(struct.pack(">I", d) for d in dims) + bytes([1]) * payload
labels = idx([4], 4)
cases = {
    "badmagic": idx([4, 28, 28], 4 * 784, magic=bytes([1, 2, 8, 3])),
    "wrongdims": idx([4, 784], 4 * 784),
    "overflow": idx([0xFFFFFFFF, 0xFFFFFFFF, 28], 10),
    "truncated": idx([4, 28, 28], 4 * 784 - 1),
    "trailing": idx([4, 28, 28], 4 * 784 + 3),
    "countmismatch": idx([5, 28, 28], 5 * 784),
    "zerodimension": idx([10000, 0, 28], 0),
    "zeroimages": idx([0, 28, 28], 0),
    "hugeitems": idx([1, 65535, 65535], 0),
}
for name, images in cases.items():
    os.makedirs(f"{root}/{name}")
    open(f"{root}/{name}/t10k-images-idx3-ubyte", "wb").write(images)
    open(f"{root}/{name}/t10k-labels-idx1-ubyte", "wb").write(labels)
good = idx([4, 28, 28], 4 * 784)
for name, data in {"corruptgzip": None, "truncatedgzip": None, "badlabel": None, "notgzip": None}.items():
    os.makedirs(f"{root}/{name}")
z = gzip.compress(good)
open(f"{root}/corruptgzip/t10k-images-idx3-ubyte.gz", "wb").write(z[:20] + bytes(b ^ 0x5A for b in z[20:40]) + z[40:])
open(f"{root}/truncatedgzip/t10k-images-idx3-ubyte.gz", "wb").write(z[: len(z) // 2])
open(f"{root}/notgzip/t10k-images-idx3-ubyte.gz", "wb").write(b"this is plain text, not gzip and not IDX\n")
open(f"{root}/badlabel/t10k-images-idx3-ubyte", "wb").write(good)
for name in ["corruptgzip", "truncatedgzip", "notgzip"]:
    open(f"{root}/{name}/t10k-labels-idx1-ubyte", "wb").write(labels)
open(f"{root}/badlabel/t10k-labels-idx1-ubyte", "wb").write(idx([4], 0) + bytes([1, 2, 12, 3]))
os.makedirs(f"{root}/missing")
PY
for d in "$T"/bad/*; do
  name=$(basename "$d")
  $BIN info --data "$d" --split test > "$T/out" 2> "$T/err"; rc=$?
  lines=$(wc -l < "$T/err")
  if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ "$lines" -eq 1 ]; then pass "bad data '$name': $(cat "$T/err")"
  else fail "bad data '$name' (rc $rc, $lines stderr lines): $(cat "$T/err")"; fi
done

# The other suites: each prints PASS/FAIL lines and exits with its failure count. Every suite must run (a missing
# one is a failure, not a skip), and a check that could not run (skipped) counts as a failure too.
for suite in multirank-more resume signals owndata fuzz testcluster slurm; do
  if [ ! -x "Tests/$suite.sh" ]; then fail "suite Tests/$suite.sh is missing"; continue; fi
  Tests/$suite.sh "$T" 2>&1 | tee "$T/suite-$suite.log"; rc=${PIPESTATUS[0]}
  passes=$((passes + $(grep -c '^PASS' "$T/suite-$suite.log")))
  counted=$(grep -c '^FAIL' "$T/suite-$suite.log")
  fails=$((fails + (rc > counted ? rc : counted)))
done
skips=$(cat "$T/skipped" 2>/dev/null | wc -l)
echo "multi-rank tests: $passes passed, $fails failed, $skips skipped$( [ "$skips" -gt 0 ] && echo ": $(paste -sd, "$T/skipped") (a skipped check is a failure)")"
[ $fails -eq 0 ] && [ $skips -eq 0 ]
