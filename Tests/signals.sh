#!/usr/bin/env bash
# Graceful stop (issue 19) without a scheduler: SIGTERM to ONE rank in the middle of an epoch stops both ranks after
# the same step, rank 0 checkpoints there, exit 75, and --resume ends bitwise equal to the uninterrupted run; SIGUSR1
# to mpirun (which forwards it) does the same; SIGINT in DEC fine-tuning (one process) too, model.bin bitwise; a
# second signal while stopping ends the process at once. Called by Tests/multirank.sh with its temp dir; prints
# PASS/FAIL lines, returns the number of failures.
set -uo pipefail
T="$1/signals"
mkdir -p "$T"
BIN=.build/release/deepcluster
MPI="mpirun --allow-run-as-root --oversubscribe -x OPENBLAS_NUM_THREADS=1"
fails=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
# Waits (up to 60 s) until FILE holds a line matching PATTERN.
await() { for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# PIDs of the deepcluster processes whose command line contains $1 (the ranks of one job).
ranks_of() { pgrep -f -- "$BIN .*$1" || true; }

P="--limit 4096 --epochs 6 --batch-size 256 --seed 7"
$MPI -np 2 $BIN pretrain $P --out "$T/ref" > "$T/ref.log" 2>&1 || { cat "$T/ref.log"; fail "pretrain reference on 2 ranks"; }

# 1. SIGTERM to rank 1 only, once epoch 2 has started.
$MPI -np 2 $BIN pretrain $P --out "$T/one" > "$T/one.log" 2>&1 &
job=$!
await "$T/one.log" "pretrain epoch   1/" || fail "the run to signal never finished epoch 1"
rank1=$(ranks_of "--out $T/one" | tail -1)
sent=$(date +%s.%N)
kill -TERM "$rank1"
wait $job; rc=$?
took=$(echo "$(date +%s.%N) - $sent" | bc)
steps=$(grep -o "stopped after step [0-9]*" "$T/one.log" | sort -u | wc -l)
$MPI -np 2 $BIN pretrain --resume "$T/one" >> "$T/one.log" 2>&1 || fail "resume after SIGTERM"
if [ $rc -eq 75 ] && [ "$steps" -eq 1 ] && grep -q "rank 1/2: SIGTERM seen during step" "$T/one.log" \
   && grep -q "rank 0/2: no signal here; stopped after step" "$T/one.log" && cmp -s "$T/ref/autoencoder.bin" "$T/one/autoencoder.bin"; then
  pass "SIGTERM to rank 1 only: both ranks stopped after the same step, exit 75 in ${took}s; $(grep -o 'after step [0-9]* ([^)]*)' "$T/one.log" | head -1); resumed: autoencoder.bin bitwise equal to the uninterrupted run"
else cat "$T/one.log"; fail "SIGTERM to one rank (exit $rc, $steps distinct stop steps)"; fi

# 2. SIGUSR1 to mpirun, which forwards it to every rank (one may get it a step later than the other: the vote
#    of the first is enough).
$MPI -np 2 $BIN pretrain $P --out "$T/usr1" > "$T/usr1.log" 2>&1 &
job=$!
await "$T/usr1.log" "pretrain epoch   2/" || fail "the run to signal never finished epoch 2"
kill -USR1 $job
wait $job; rc=$?
$MPI -np 2 $BIN pretrain --resume "$T/usr1" >> "$T/usr1.log" 2>&1 || fail "resume after SIGUSR1"
if [ $rc -eq 75 ] && [ "$(grep -o 'rank ./2: .*stopped after step [0-9]*' "$T/usr1.log" | grep -o 'step [0-9]*$' | sort -u | wc -l)" -eq 1 ] \
   && grep -q 'SIGUSR1 seen during step' "$T/usr1.log" && cmp -s "$T/ref/autoencoder.bin" "$T/usr1/autoencoder.bin"; then
  pass "SIGUSR1 to mpirun: both ranks stopped after the same step, exit 75; resumed: autoencoder.bin bitwise equal"
else cat "$T/usr1.log"; fail "SIGUSR1 to mpirun (exit $rc)"; fi

# 3. SIGINT during DEC fine-tuning (one process, 2 threads): dec-state.bin at that step, model.bin bitwise.
D="--limit 4096 --widths 784-128-10 --pretrain-epochs 2 --epochs 8 --update-interval 5 --tol 0 --restarts 2 --tsne-points 0 --seed 8"
$BIN dec $D --out "$T/dref" > "$T/dref.log" 2>&1 || { cat "$T/dref.log"; fail "dec reference"; }
$BIN dec $D --out "$T/dec" > "$T/dec.log" 2>&1 &
job=$!
await "$T/dec.log" "dec epoch    1.2" || fail "the dec run to signal never reached epoch 1.2"
kill -INT $job
wait $job; rc=$?
$BIN dec --resume "$T/dec" >> "$T/dec.log" 2>&1 || fail "dec resume after SIGINT"
if [ $rc -eq 75 ] && grep -q "stopped on SIGINT after step" "$T/dec.log" && grep -q "resuming dec fine-tuning" "$T/dec.log" \
   && cmp -s "$T/dref/model.bin" "$T/dec/model.bin" && cmp -s "$T/dref/assignments.csv" "$T/dec/assignments.csv"; then
  pass "SIGINT in DEC fine-tuning: exit 75, $(grep -o '(in dec epoch [^)]*)\|(after dec epoch [^)]*)' "$T/dec.log" | head -1); resumed: model.bin and assignments.csv bitwise equal"
else cat "$T/dec.log"; fail "SIGINT in DEC fine-tuning (exit $rc)"; fi

# 4. A second signal while stopping ends the process at once. The first comes during k-means on the embedding
#    (300 restarts, seconds), where the stop waits for the first fine-tuning step.
$BIN dec --limit 4096 --widths 784-128-10 --pretrain-epochs 1 --epochs 1 --restarts 300 --tsne-points 0 --out "$T/twice" > "$T/twice.log" 2>&1 &
job=$!
await "$T/twice.log" "pretrain epoch   1/1" || fail "the run to signal twice never finished pretraining"
kill -TERM $job
await "$T/twice.log" "stop signal received" || fail "no word of the first signal"
kill -TERM $job
sent=$(date +%s.%N)
wait $job; rc=$?
took=$(echo "$(date +%s.%N) - $sent" | bc)
if [ $rc -eq 143 ] && [ "$(echo "$took < 2" | bc)" -eq 1 ] && ! grep -q "k-means on the embedding" "$T/twice.log"; then
  pass "a second SIGTERM while the first waits for the next step ends the process at once (exit 143 in ${took}s)"
else cat "$T/twice.log"; fail "second signal (exit $rc after ${took}s)"; fi
exit $fails
