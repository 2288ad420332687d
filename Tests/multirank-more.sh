#!/usr/bin/env bash
# DEC across ranks (shortened schedule): the whole dec pipeline (pretraining, the N2D start, fine-tuning, the guard)
# of DEC, IDEC and DKM on 2 ranks gives the bits of one process that emulates the 2 shares (and not those of 3);
# predict reproduces the training-time assignments exactly, also for a kept start; bad options give one-line errors. Called by Tests/multirank.sh with its temp dir.
set -uo pipefail
T="$1"
BIN=.build/release/deepcluster
MPI="mpirun --allow-run-as-root --oversubscribe -x OPENBLAS_NUM_THREADS=1"
fails=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

# A shared pretrained autoencoder (3 epochs on 2,000 images), then DEC on 1 and 2 ranks.
$BIN pretrain --limit 2000 --epochs 3 --batch-size 128 --seed 1 --out "$T/pre" > "$T/pre.log" 2>&1 || { cat "$T/pre.log"; fail "pretrain for DEC"; }
for n in 1 2; do
  $MPI -np $n $BIN dec --limit 2000 --pretrained "$T/pre/autoencoder.bin" --epochs 5 --restarts 4 --seed 1 --out "$T/dec$n" \
      > "$T/dec$n.log" 2>&1 || { cat "$T/dec$n.log"; fail "dec on $n rank(s)"; }
done
# Exact rank invariance of fine-tuning: on one host the shared-memory sum runs in rank order, so 2 ranks equal one
# process that computes both shares and sums them in that order (--debug-emulate-ranks), bit for bit: model.bin and
# assignments.csv. The negative control: emulating 3 shares must give other bits (the check can fail).
same_as_emulation() {  # NAME EMULATED-RANKS FLAGS...
  local name="$1" emulated="$2"; shift 2
  $MPI -np 2 $BIN dec --limit 1000 --pretrain-epochs 2 --epochs 3 --tsne-points 0 --seed 1 "$@" --out "$T/x-$name-2" \
      > "$T/x-$name-2.log" 2>&1 || { cat "$T/x-$name-2.log"; return 2; }
  $BIN dec --limit 1000 --pretrain-epochs 2 --epochs 3 --tsne-points 0 --seed 1 --threads 1 "$@" --debug-emulate-ranks "$emulated" \
      --out "$T/x-$name-e$emulated" > "$T/x-$name-e$emulated.log" 2>&1 || { cat "$T/x-$name-e$emulated.log"; return 2; }
  cmp -s "$T/x-$name-2/model.bin" "$T/x-$name-e$emulated/model.bin" && cmp -s "$T/x-$name-2/assignments.csv" "$T/x-$name-e$emulated/assignments.csv"
}
for m in dec idec dkm; do
  if same_as_emulation $m 2 --method $m; then pass "$m on 2 ranks = one process emulating 2 shares: model.bin and assignments.csv bitwise"
  else fail "$m on 2 ranks differs from the emulation of 2 shares"; fi
done
if same_as_emulation aug 2 --augment shift=0.1,rotate=10 --start kmeans --restarts 4; then
  pass "dec --augment shift=0.1,rotate=10 --start kmeans on 2 ranks = the emulation of 2 shares, bitwise"
else fail "dec --augment on 2 ranks differs from the emulation of 2 shares"; fi
if same_as_emulation held 2 --hold-target 1 --confidence 0.5; then
  pass "dec --hold-target 1 --confidence 0.5 (the start's target held, then self-training on confident samples) on 2 ranks = the emulation of 2 shares, bitwise"
else fail "dec --hold-target 1 --confidence 0.5 on 2 ranks differs from the emulation of 2 shares"; fi
# The samples once per host: the 2-rank runs above read them on one rank into memory that both map (the note says
# so), and with --no-shared-memory (each rank its own copy, the gradients through MPI) the run keeps its bits.
$MPI -np 2 $BIN dec --limit 1000 --pretrain-epochs 2 --epochs 3 --tsne-points 0 --seed 1 --method dec --no-shared-memory \
    --out "$T/x-own-2" > "$T/x-own-2.log" 2>&1 || cat "$T/x-own-2.log"
if grep -q "held once on this host, in memory its 2 ranks share" "$T/x-dec-2.log" && ! grep -q "held once" "$T/x-own-2.log" \
   && cmp -s "$T/x-dec-2/model.bin" "$T/x-own-2/model.bin" && cmp -s "$T/x-dec-2/assignments.csv" "$T/x-own-2/assignments.csv"; then
  pass "the samples held once per host (2 ranks, one reader) = each rank's own copy (--no-shared-memory): model.bin and assignments.csv bitwise"
else fail "the samples held once per host vs each rank's own copy: the note or the bits differ"; fi
# The peak memory figures: on 2 ranks resident and proportional (Pss: shared pages split, so at most resident), and
# the ranks' proportional peaks summed; on 1 rank resident alone.
if out=$(python3 - "$T/x-dec-2/metrics.jsonl" "$T/dec1/metrics.jsonl" <<'PY'
import json, sys
two, one = ([json.loads(l) for l in open(p) if '"final"' in l][-1] for p in sys.argv[1:])
resident, pss, together = two["peak_memory_mb"], two["peak_pss_mb"], two["peak_pss_sum_mb"]
assert 0 < pss <= resident and pss < together <= 2 * pss, (resident, pss, together)
assert one["peak_memory_mb"] > 0 and "peak_pss_mb" not in one and "peak_pss_sum_mb" not in one, one
print(f"2 ranks: resident {resident:.0f} MB, proportional {pss:.0f} MB, together {together:.0f} MB; 1 rank: resident {one['peak_memory_mb']:.0f} MB")
PY
); then pass "peak memory: $out"; else fail "peak memory figures: $out"; fi
# A reader's failure is every rank's: 3 ranks on bad data print one error line and exit non-zero.
printf 'not a table\x00\x01' > "$T/bad.npy"
$MPI -np 3 $BIN dec --data "$T/bad.npy" --out "$T/x-bad" > "$T/x-bad.out" 2> "$T/x-bad.err"; rc=$?
if [ $rc -ne 0 ] && [ "$(grep -c '^error' "$T/x-bad.err")" -eq 1 ] && grep -q "^error: $T/bad.npy: " "$T/x-bad.err"; then
  pass "bad data on 3 ranks: one line ($(grep '^error' "$T/x-bad.err")), exit $rc"
else fail "bad data on 3 ranks (exit $rc): $(cat "$T/x-bad.err")"; fi
# The guard decides alike on 2 ranks and in one process (its input-space neighbours split over the ranks): the same
# verdict and the same criterion values in metrics.jsonl.
if out=$(python3 - "$T/x-dec-2/metrics.jsonl" "$T/x-dec-e2/metrics.jsonl" <<'PY'
import json, sys
finals = [[json.loads(l) for l in open(p) if '"final"' in l][-1] for p in sys.argv[1:]]
keys = ["kept", "start_agreement", "finetuned_agreement", "start_acc", "finetuned_acc", "kmeans_input_acc", "acc"]
a, b = ([f.get(k) for k in keys] for f in finals)
assert None not in a[:3], a
assert a == b, (a, b)
print(f"kept {a[0]}, neighbour information start {a[1]:.4f} / fine-tuned {a[2]:.4f}, k-means on the input ACC {a[5]:.4f}")
PY
); then pass "guard on 2 ranks = one process: $out"; else fail "guard on 2 ranks vs one process: $out"; fi
same_as_emulation dec3 3; rc=$?
if [ $rc -eq 1 ]; then pass "negative control: emulating 3 shares gives other bits than 2 ranks"
else fail "negative control: emulating 3 shares (exit $rc) should differ from 2 ranks"; fi
# --clusters auto (K from the data): the whole dec pipeline with the choice on 2 ranks = one process emulating the 2
# shares, bitwise; the chosen K and every ICL value alike; the final record names the K; raw chooses alike on 1 and 2
# ranks (data without labels and without --clusters: Tests/owndata.sh).
if same_as_emulation auto 2 --clusters auto:12; then
  if out=$(python3 - "$T/x-auto-2/metrics.jsonl" "$T/x-auto-e2/metrics.jsonl" <<'PY'
import json, sys
runs = [[json.loads(l) for l in open(p)] for p in sys.argv[1:]]
choice = [[r for r in run if r["phase"] == "clusters"][-1] for run in runs]
final = [[r for r in run if r["phase"] == "final"][-1] for run in runs]
timeless = [{k: v for k, v in c.items() if not k.endswith("seconds")} for c in choice]
assert timeless[0] == timeless[1], choice
assert choice[0]["clusters_tried"][0] == 2 and choice[0]["clusters_tried"][-1] <= 12, choice[0]
assert final[0]["clusters"] == final[1]["clusters"] <= choice[0]["clusters"], (final, choice)
print(f"K = {choice[0]['clusters']} of {choice[0]['clusters_tried'][0]}-{choice[0]['clusters_tried'][-1]}, final K {final[0]['clusters']}")
PY
  ); then pass "dec --clusters auto:12 on 2 ranks = the emulation of 2 shares, bitwise; the same choice: $out"
  else fail "dec --clusters auto: the choice differs between 2 ranks and one process: $out"; fi
else fail "dec --clusters auto on 2 ranks differs from the emulation of 2 shares"; fi
for n in 1 2; do
  $MPI -np $n $BIN raw --limit 1000 --epochs 2 --restarts 1 --clusters auto --out "$T/rawauto$n" > "$T/rawauto$n.log" 2>&1 \
    || { cat "$T/rawauto$n.log"; fail "raw --clusters auto on $n rank(s)"; }
done
if out=$(python3 - "$T/rawauto1/metrics.jsonl" "$T/rawauto2/metrics.jsonl" <<'PY'
import json, sys
a, b = ([json.loads(l) for l in open(p) if '"clusters"' in l and '"phase":"clusters"' in l][-1] for p in sys.argv[1:])
assert (a["clusters"], a["clusters_tried"], a["icl"]) == (b["clusters"], b["clusters_tried"], b["icl"]), (a, b)
print(f"K = {a['clusters']} (ICL {min(a['icl']):.4f}), {len(a['icl'])} K tried")
PY
); then pass "raw --clusters auto on 1 and 2 ranks: the same choice, $out"; else fail "raw --clusters auto 1 vs 2 ranks: $out"; fi

# raw's k-means reference on wide bytes takes at most 256 MB of z-scored Floats, as dec's baseline: 1,000 images of
# 70,000 pixels (70 MB) give 958 evenly spaced ones; 2 ranks.
python3 - "$T/wide.npy" <<'PY'
import sys, numpy as np
rng = np.random.default_rng(0)
centres = rng.integers(0, 256, (3, 70_000))
x = np.clip(centres[np.arange(1000) % 3] + rng.integers(-40, 41, (1000, 70_000)), 0, 255).astype(np.uint8)
np.save(sys.argv[1], x)
np.save(sys.argv[1].replace(".npy", "-labels.npy"), (np.arange(1000) % 3).astype(np.int64))
PY
if $MPI -np 2 $BIN raw --data "$T/wide.npy" --labels "$T/wide-labels.npy" --method kmeans --clusters 3 --restarts 1 \
     --out "$T/rawwide" > "$T/rawwide.log" 2>&1 && grep -q "k-means (958 of the 1000 samples, evenly spaced;.*ACC 1.0000" "$T/rawwide.log"; then
  pass "raw on 1,000 x 70,000 bytes: $(grep -o 'k-means (958 of the 1000 samples, evenly spaced' "$T/rawwide.log")), ACC 1.0000"
else cat "$T/rawwide.log"; fail "raw's k-means on a sample of wide bytes"; fi

# raw (Task 1): the ACC curves of both soft methods on 1 and 2 ranks agree within 0.01 at every epoch.
for n in 1 2; do
  $MPI -np $n $BIN raw --limit 1000 --epochs 4 --restarts 1 --out "$T/raw$n" > "$T/raw$n.log" 2>&1 || { cat "$T/raw$n.log"; fail "raw on $n rank(s)"; }
done
if out=$(python3 - "$T/raw1/metrics.jsonl" "$T/raw2/metrics.jsonl" <<'PY'
import json, sys
def curves(path):
    out = {}
    for line in open(path):
        e = json.loads(line)
        if "epoch" in e: out.setdefault(e["phase"], []).append(e["acc"])
    return out
a, b = curves(sys.argv[1]), curves(sys.argv[2])
worst = max(abs(x - y) for k in a for x, y in zip(a[k], b[k]))
assert a.keys() == b.keys() and all(len(a[k]) == len(b[k]) for k in a), (a, b)
print(f"largest ACC difference {worst:.4f} over {sum(len(v) for v in a.values())} epochs of {sorted(a)}")
sys.exit(0 if worst <= 0.01 else 1)
PY
); then pass "raw 1 vs 2 ranks: $out"; else fail "raw 1 vs 2 ranks: $out"; fi

# predict with the saved model reproduces the training-time assignments.
$BIN predict --model "$T/dec1/model.bin" --limit 2000 --output "$T/predicted.csv" > "$T/predict.log" 2>&1
if cmp -s "$T/predicted.csv" "$T/dec1/assignments.csv"; then pass "predict reproduces the training assignments ($(tail -1 "$T/predict.log"))"
else fail "predict differs from the training assignments"; fi

# --keep start: the run writes the start's clustering (N2D: the mixture's), model.bin assigns by neighbours in the
# start's embedding, and predict gives the training samples their assignments back exactly; --keep fine-tuned and the
# default agree when the guard keeps the fine-tuned result.
for keep in start fine-tuned; do
  $BIN dec --limit 2000 --pretrained "$T/pre/autoencoder.bin" --epochs 5 --restarts 4 --seed 1 --tsne-points 0 --keep $keep \
      --out "$T/keep-$keep" > "$T/keep-$keep.log" 2>&1 || { cat "$T/keep-$keep.log"; fail "dec --keep $keep"; }
done
if out=$(python3 - "$T/keep-start" "$T/keep-fine-tuned" "$T/dec1" <<'PY'
import json, sys
start, tuned, default = sys.argv[1:]
final = lambda run: [json.loads(l) for l in open(f"{run}/metrics.jsonl") if '"final"' in l][-1]
s, t, d = final(start), final(tuned), final(default)
assert s["kept"] == "start" and t["kept"] == "fine-tuned", (s["kept"], t["kept"])
assert abs(s["acc"] - s["start_acc"]) < 1e-12 and abs(t["acc"] - t["finetuned_acc"]) < 1e-12, (s, t)
n2d = [json.loads(l) for l in open(f"{start}/metrics.jsonl") if '"n2d-embedding"' in l][-1]
assert abs(s["acc"] - n2d["acc"]) < 1e-12, "the kept start is the N2D clustering"
if d["kept"] == "fine-tuned":
    assert open(f"{default}/assignments.csv").read() == open(f"{tuned}/assignments.csv").read()
print(f"start ACC {s['acc']:.4f} (N2D {n2d['acc']:.4f}), fine-tuned {t['acc']:.4f}; the default kept the {d['kept']} result")
PY
); then pass "--keep: $out"; else fail "--keep: $out"; fi
$BIN predict --model "$T/keep-start/model.bin" --limit 2000 --output "$T/predicted-start.csv" > "$T/predict-start.log" 2>&1
if cmp -s "$T/predicted-start.csv" "$T/keep-start/assignments.csv"; then
  pass "predict with a kept N2D start (neighbours in its embedding) reproduces the training assignments ($(tail -1 "$T/predict-start.log"))"
else fail "predict with a kept N2D start differs from the training assignments"; fi

# --hold-target N: no label-change stop before epoch N (the start's target is held), the first one at N; with 0 the
# first update after the start may stop (--tol 1: any change is small enough).
for h in 0 2; do
  $BIN dec --limit 1000 --pretrained "$T/pre/autoencoder.bin" --epochs 5 --restarts 2 --seed 1 --tsne-points 0 --tol 1 \
      --hold-target $h --out "$T/hold$h" > "$T/hold$h.log" 2>&1 || { cat "$T/hold$h.log"; fail "dec --hold-target $h"; }
done
if out=$(python3 - "$T/hold0/metrics.jsonl" "$T/hold2/metrics.jsonl" <<'PY'
import json, sys
epochs = [[r["epoch"] for r in map(json.loads, open(p)) if r["phase"] == "dec"] for p in sys.argv[1:]]
assert epochs[0] == [0, 1], epochs    # stopped at the first update after the start
assert epochs[1] == [0, 1, 2], epochs  # held through epoch 1, stopped at epoch 2
print(f"target updates at epochs {epochs[0]} without the hold, {epochs[1]} with --hold-target 2")
PY
); then pass "--hold-target: $out"; else fail "--hold-target: $out"; fi

# Pictures and report (issue 6): every SVG and report.html parse as XML; each figure has a title, axis labels and
# a legend; the report inlines Figures 3 and 4, the confusion matrix and the gallery and fetches nothing; the gallery's
# PNGs decode; `report` compares two runs on one page.
if out=$(python3 - "$T/dec1" "$T/dec2" <<'PY'
import base64, re, struct, sys, zlib
import xml.etree.ElementTree as ET
S = "{http://www.w3.org/2000/svg}"
for run in sys.argv[1:]:
    for name in ["figure3.svg", "figure4.svg", "confusion.svg", "clusters.svg"]:
        root = ET.parse(f"{run}/{name}").getroot()
        texts = [t.text or "" for t in root.iter(S + "text")]
        assert root.find(S + "title") is not None and root.find(S + "title").text, f"{name}: no title"
        if name == "figure3.svg": assert "epoch" in texts and "score" in texts and any("ACC" in t for t in texts), name
        if name == "figure4.svg":
            assert texts.count("t-SNE 1") >= 3 and texts.count("t-SNE 2") >= 3 and "label 9" in texts, name
            assert len(list(root.iter(S + "circle"))) >= 3 * 2000, "figure 4 draws 3 maps of 2,000 points"
        if name == "clusters.svg":
            images = [i.get("href") for i in root.iter(S + "image")]
            assert len(images) == 100, len(images)
            png = base64.b64decode(images[0].split(",", 1)[1])
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR" and struct.unpack(">II", png[16:24]) == (28, 28)
            idat = png[33 + 8:33 + 8 + struct.unpack(">I", png[33:37])[0]]
            assert len(zlib.decompress(idat)) == 28 * 29
    html = open(f"{run}/report.html").read()
    ET.fromstring(html.split("\n", 1)[1])  # after <!DOCTYPE html>
    for needle in ["Figure 3", "Figure 4", "Confusion matrix", "What each cluster is", "Final metrics", "Timings", "deepcluster dec",
                   "<h2>Result</h2>", "Kept: <b>the", "k-means on the input", "neighbour information"]:
        assert needle in html, f"{run}/report.html lacks {needle}"
    assert not re.search(r'(src|href)="https?:', html), "report fetches from the network"
print("4 SVGs and report.html of 2 runs parse; titles, axes, legends, 100 gallery PNGs (28x28) decode")
PY
); then pass "report: $out"; else fail "report: $out"; fi
if $BIN report "$T/dec1" "$T/dec2" --output "$T/compare.html" > "$T/report.log" 2>&1 \
   && python3 -c "
import sys, xml.etree.ElementTree as ET
h = open(sys.argv[1]).read(); ET.fromstring(h.split(chr(10), 1)[1])
assert 'dec1 DEC' in h and 'dec2 DEC' in h and h.count('<polyline') >= 2 and 'Accuracy over fine-tuning' in h, 'curves of both runs'
assert h.count('<tr>') >= 3 and 'Final metrics' in h, 'a table of final metrics'
" "$T/compare.html" && $BIN report "$T/dec1" > /dev/null; then pass "report compares dec1 and dec2 (overlaid curves, final table) and rebuilds one run's page"
else cat "$T/report.log"; fail "report of two runs"; fi

# Bad options and inputs: one line on stderr, non-zero exit, nothing crashes.
check_bad() {
  local name="$1"; shift
  "$@" > "$T/bad.out" 2> "$T/bad.err"; local rc=$?
  local lines=$(grep -ci '^error' "$T/bad.err")
  if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ "$lines" -eq 1 ]; then pass "bad input '$name': $(grep -i '^error' "$T/bad.err")"
  else fail "bad input '$name' (rc $rc): $(cat "$T/bad.err")"; fi
}
check_bad "K < 2" $BIN dec --clusters 1 --limit 100
check_bad "K > N" $BIN dec --clusters 500 --limit 100 --pretrained "$T/pre/autoencoder.bin" --out "$T/bk"
check_bad "epochs <= 0" $BIN pretrain --epochs 0
check_bad "unknown method" $BIN dec --method nope
check_bad "unknown --keep" $BIN dec --keep best --limit 100
check_bad "confidence > 1" $BIN dec --confidence 1.5 --limit 100 --pretrained "$T/pre/autoencoder.bin" --out "$T/bq"
check_bad "negative hold" $BIN dec --hold-target -1 --limit 100 --pretrained "$T/pre/autoencoder.bin" --out "$T/bh"
check_bad "unknown option" $BIN pretrain --frobnicate
check_bad "batch < ranks" $MPI -np 3 $BIN pretrain --batch-size 2 --limit 100 --out "$T/bb"
check_bad "missing hostfile" Launch/run --hostfile /nonexistent/hosts info
check_bad "missing checkpoint" $BIN dec --pretrained /nonexistent.bin --limit 100 --out "$T/bc"
head -c 1000 "$T/pre/autoencoder.bin" > "$T/truncated.bin"
check_bad "truncated checkpoint" $BIN dec --pretrained "$T/truncated.bin" --limit 100 --epochs 1 --out "$T/bt"
cp "$T/pre/autoencoder.bin" "$T/flipped.bin"; printf '\x55' | dd of="$T/flipped.bin" bs=1 seek=5000 conv=notrunc 2>/dev/null
check_bad "bad checksum" $BIN dec --pretrained "$T/flipped.bin" --limit 100 --epochs 1 --out "$T/bf"
check_bad "other architecture" $BIN dec --pretrained "$T/pre/autoencoder.bin" --widths 784-100-10 --limit 100 --epochs 1 --out "$T/ba"
check_bad "unwritable output" $BIN pretrain --epochs 1 --limit 100 --out /proc/deepcluster-cannot-write
check_bad "report of a missing run" $BIN report /nonexistent/run
[ $fails -eq 0 ]
