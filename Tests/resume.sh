#!/usr/bin/env bash
# Reliability (issue 8): exact resume, kill -9 at many points (checkpoint writes included), a killed rank, a NaN on
# one rank, bad resumes. Called by Tests/multirank.sh with its temp dir; prints PASS/FAIL lines, returns #fails.
set -uo pipefail
T="$1/resume"
mkdir -p "$T"
BIN=.build/release/deepcluster
MPI="mpirun --allow-run-as-root --oversubscribe -x OPENBLAS_NUM_THREADS=1"
fails=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
same() { cmp -s "$1" "$2"; }

# 1. Stopped after epoch k and resumed = uninterrupted, bitwise (the whole checkpoint file), on 1 and 2 ranks.
P="--limit 1000 --epochs 5 --widths 784-64-10 --batch-size 100 --seed 3"
for n in 1 2; do
  $MPI -np $n $BIN pretrain $P --out "$T/p$n-ref" > "$T/p$n-ref.log" 2>&1 || { cat "$T/p$n-ref.log"; fail "pretrain reference on $n rank(s)"; }
  $MPI -np $n $BIN pretrain $P --out "$T/p$n" --stop-after-epochs 2 > "$T/p$n.log" 2>&1
  rc1=$?
  $MPI -np $n $BIN pretrain --resume "$T/p$n" >> "$T/p$n.log" 2>&1
  rc2=$?
  if [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && grep -q "resuming after epoch 2" "$T/p$n.log" \
     && same "$T/p$n-ref/autoencoder.bin" "$T/p$n/autoencoder.bin" && [ "$(wc -l < "$T/p$n/metrics.jsonl")" -eq 5 ]; then
    pass "pretrain on $n rank(s) stopped after epoch 2 and resumed: autoencoder.bin bitwise identical to the uninterrupted run, 5 metric lines"
  else cat "$T/p$n.log"; fail "pretrain stop/resume on $n rank(s)"; fi
done

# 2. dec stopped in pretraining, again across the phase boundary, again in fine-tuning: model.bin, dec-state.bin and
#    assignments.csv bitwise identical to the uninterrupted run (2 ranks).
D="--limit 1000 --widths 784-64-10 --pretrain-epochs 3 --epochs 5 --restarts 2 --tol 0 --batch-size 100 --seed 4"
$MPI -np 2 $BIN dec $D --out "$T/d-ref" > "$T/d-ref.log" 2>&1 || { cat "$T/d-ref.log"; fail "dec reference"; }
$MPI -np 2 $BIN dec $D --out "$T/d" --stop-after-epochs 2 > "$T/d.log" 2>&1
for k in 2 2 9; do $MPI -np 2 $BIN dec --resume "$T/d" --stop-after-epochs $k >> "$T/d.log" 2>&1 || fail "dec resume"; done
if same "$T/d-ref/model.bin" "$T/d/model.bin" && same "$T/d-ref/dec-state.bin" "$T/d/dec-state.bin" \
   && same "$T/d-ref/assignments.csv" "$T/d/assignments.csv" && grep -q "resuming dec fine-tuning after epoch" "$T/d.log" \
   && [ "$(wc -l < "$T/d/metrics.jsonl")" -eq "$(wc -l < "$T/d-ref/metrics.jsonl")" ]; then
  pass "dec stopped 3 times (pretraining, phase boundary, fine-tuning) and resumed: model.bin, dec-state.bin, assignments.csv bitwise identical"
else cat "$T/d.log"; fail "dec stop/resume differs from the uninterrupted run"; fi

# 2b. The same with --clusters auto: K is chosen after pretraining, so the run's model is made then; a resumed run
#     reads the K it chose back from its start.bin. Bitwise identical to the uninterrupted run, same K, same records.
$MPI -np 2 $BIN dec $D --clusters auto --out "$T/a-ref" > "$T/a-ref.log" 2>&1 || { cat "$T/a-ref.log"; fail "dec --clusters auto reference"; }
$MPI -np 2 $BIN dec $D --clusters auto --out "$T/a" --stop-after-epochs 2 > "$T/a.log" 2>&1
for k in 2 2 9; do $MPI -np 2 $BIN dec --resume "$T/a" --stop-after-epochs $k >> "$T/a.log" 2>&1 || fail "dec --clusters auto resume"; done
if same "$T/a-ref/model.bin" "$T/a/model.bin" && same "$T/a-ref/dec-state.bin" "$T/a/dec-state.bin" \
   && same "$T/a-ref/assignments.csv" "$T/a/assignments.csv" && grep -q "resuming with the K = " "$T/a.log" \
   && grep -q '"phase":"clusters"' "$T/a/metrics.jsonl" \
   && [ "$(grep -c . "$T/a/metrics.jsonl")" -eq "$(grep -c . "$T/a-ref/metrics.jsonl")" ]; then
  pass "dec --clusters auto stopped 3 times and resumed with the K it chose ($(grep -o 'resuming with the K = [0-9]*' "$T/a.log" | head -1 | grep -o '[0-9]*$')): model.bin, dec-state.bin, assignments.csv bitwise identical"
else cat "$T/a.log"; fail "dec --clusters auto stop/resume differs from the uninterrupted run"; fi

# 3. kill -9 of the whole job at random points (the full-size autoencoder: ~40 MB checkpoints, so many kills land
#    inside a checkpoint write). Every resume must load the newest complete checkpoint; the end result must equal
#    the uninterrupted run bitwise.
K="--limit 1024 --epochs 6 --batch-size 256 --seed 5 --threads 1 --checkpoint-every 1"
$BIN pretrain $K --out "$T/k-ref" > "$T/k-ref.log" 2>&1 || fail "kill reference"
kills=0; during=0; resumes=0; bad=0
$BIN pretrain $K --out "$T/k" > "$T/k.log" 2>&1 &
pid=$!
RANDOM=7
while :; do
  if [ $((kills % 2)) -eq 0 ]; then
    sleep "$(printf '0.%02d' $((RANDOM % 90 + 5)))"
  else  # the moment a checkpoint write begins (its temporary file appears), plus a random few milliseconds
    for _ in $(seq 100000); do [ -e "$T/k/autoencoder.bin.tmp" ] && break; kill -0 $pid 2>/dev/null || break; done
    sleep "0.00$((RANDOM % 10))"
  fi
  if kill -0 $pid 2>/dev/null; then
    kill -9 $pid; wait $pid 2>/dev/null; kills=$((kills + 1))
    # A temporary file left behind means the kill landed inside a write; remove it so the next count is fresh.
    [ -e "$T/k/autoencoder.bin.tmp" ] && { during=$((during + 1)); rm -f "$T/k/autoencoder.bin.tmp"; }
  else
    wait $pid; rc=$?
    [ $rc -eq 0 ] && break
    bad=$((bad + 1)); cat "$T/k.log"; break
  fi
  [ $kills -ge 16 ] && { $BIN pretrain --resume "$T/k" --threads 1 >> "$T/k.log" 2>&1 || bad=$((bad + 1)); break; }
  $BIN pretrain --resume "$T/k" --threads 1 >> "$T/k.log" 2>&1 &
  pid=$!; resumes=$((resumes + 1))
done
if [ $bad -eq 0 ] && same "$T/k-ref/autoencoder.bin" "$T/k/autoencoder.bin" && [ "$(wc -l < "$T/k/metrics.jsonl")" -eq 6 ]; then
  pass "kill -9 $kills times ($during during a checkpoint write), $resumes resumes: final autoencoder.bin bitwise identical to the uninterrupted run"
else tail -5 "$T/k.log"; fail "kill -9 and resume ($kills kills, $bad failed resumes)"; fi

# 4. One rank of a 3-rank job killed: mpirun ends non-zero within 10 s with a message; resuming finishes the run.
R="--limit 1536 --epochs 6 --batch-size 192 --seed 6 --checkpoint-every 1"
$MPI -np 3 $BIN pretrain $R --out "$T/r" > "$T/r.log" 2>&1 &
mpid=$!
for _ in $(seq 200); do [ -e "$T/r/autoencoder.bin" ] && break; sleep 0.1; done
victim=$(pgrep -P $mpid -f "deepcluster pretrain" | sed -n 2p)
if [ -n "$victim" ]; then
  t0=$(date +%s.%N); kill -9 "$victim"; wait $mpid; rc=$?; t1=$(date +%s.%N)
  secs=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
  message=$(grep -m1 -i "signal 9\|killed" "$T/r.log")
  if [ $rc -ne 0 ] && python3 -c "import sys; sys.exit(0 if $t1 - $t0 < 10 else 1)" && [ -n "$message" ] \
     && $MPI -np 3 $BIN pretrain --resume "$T/r" > "$T/r2.log" 2>&1 && grep -q "pretrain epoch   6/6" "$T/r2.log"; then
    pass "rank 1 of 3 killed: mpirun exited $rc after ${secs}s ('$message'); the resumed run finished"
  else cat "$T/r.log" "$T/r2.log" 2>/dev/null; fail "killed rank (rc $rc after ${secs}s)"; fi
else fail "killed rank: could not find the ranks of mpirun $mpid"; wait $mpid; fi

# 5. NaN in one rank's gradient: both ranks stop at that step with a message; the last good checkpoint resumes to
#    the same result as a run that never saw the NaN.
N="--limit 1000 --epochs 3 --widths 784-64-10 --batch-size 100 --seed 8 --checkpoint-every 1"
$MPI -np 2 $BIN pretrain $N --out "$T/n-ref" > /dev/null 2>&1
$MPI -np 2 $BIN pretrain $N --out "$T/n" --debug-poison 14:1 > "$T/n.log" 2>&1; rc=$?
if [ $rc -ne 0 ] && grep -q "non-finite gradient at step 14" "$T/n.log" && grep -q "epoch   1/3" "$T/n.log" && ! grep -q "epoch   2/3" "$T/n.log" \
   && $MPI -np 2 $BIN pretrain --resume "$T/n" >> "$T/n.log" 2>&1 && same "$T/n-ref/autoencoder.bin" "$T/n/autoencoder.bin"; then
  pass "NaN on rank 1 at step 14: $(grep -m1 -o 'non-finite gradient at step 14[^;]*' "$T/n.log"); the epoch-1 checkpoint resumed to the clean result"
else cat "$T/n.log"; fail "NaN on one rank"; fi

# 6. Bad resumes: one-line error, non-zero exit, nothing written over.
bad_resume() {
  local name="$1" dir="$2"; shift 2
  local before=$(cd "$dir" 2>/dev/null && cat * 2>/dev/null | md5sum)
  "$@" > "$T/bad.out" 2> "$T/bad.err"; local rc=$?
  local after=$(cd "$dir" 2>/dev/null && cat * 2>/dev/null | md5sum)
  if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ "$(grep -c '^error' "$T/bad.err")" -eq 1 ] && [ "$before" = "$after" ]; then
    pass "bad input '$name': $(grep '^error' "$T/bad.err")"
  else fail "bad input '$name' (rc $rc): $(cat "$T/bad.err")"; fi
}
mkdir -p "$T/empty"
bad_resume "resume a directory without a run" "$T/empty" $BIN pretrain --resume "$T/empty"
bad_resume "resume a pretrain run with dec" "$T/p1" $BIN dec --resume "$T/p1"
bad_resume "fresh run into an existing run" "$T/p1" $BIN pretrain $P --out "$T/p1"
cp -r "$T/p1" "$T/corrupt"; rm -f "$T/corrupt/autoencoder.bin.prev"
python3 -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[100]^=1; open(p,'wb').write(b)" "$T/corrupt/autoencoder.bin"
bad_resume "resume from a corrupt checkpoint" "$T/corrupt" $BIN pretrain --resume "$T/corrupt"
cp -r "$T/p1" "$T/other"; python3 - "$T/other/command.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); m["arguments"][m["arguments"].index("--seed") + 1] = "99"; json.dump(m, open(sys.argv[1], "w"))
PY
bad_resume "resume with an edited configuration" "$T/other" $BIN pretrain --resume "$T/other"
exit $fails
