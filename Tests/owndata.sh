#!/usr/bin/env bash
# Users' own data (issue 18): a CSV with a header and a text label column, clustered end to end (K from the labels,
# features standardised, no augmentation; assignments.csv with the labels as written, embedding.npy and q.npy);
# without labels K is chosen from the data or given and the run reports no scores (a choice at the top of its sweep
# says the data may hold more clusters); predict on the CSV gives the run's own embedding
# bitwise; .npy readers (float64 features + a labels .npy, uint8 images) and broken files answered in one line;
# folders of PNG images (flat against IDX bit for bit; by class on 2 ranks, predict).
# Called by Tests/multirank.sh with its temp dir; prints PASS/FAIL lines, returns the number of failures.
set -uo pipefail
T="$1/owndata"
mkdir -p "$T"
BIN=.build/release/deepcluster
fails=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
python3 - "$T" <<'PY'
import random, struct, sys
root = sys.argv[1]
random.seed(1)
D, names = 24, ["alpha", "beta", "gamma", "delta"]
centres = [[random.gauss(0, 3) for _ in range(D)] for _ in names]
rows = [[f"{centres[i % 4][d] + random.gauss(0, 2.5):.4f}" for d in range(D)] + [names[i % 4]] for i in range(1200)]
with open(f"{root}/blobs.csv", "w") as f:
    f.write(",".join([f"f{d}" for d in range(D)] + ["species"]) + "\r\n")
    for r in rows: f.write(",".join(r) + "\r\n")
with open(f"{root}/nolabels.csv", "w") as f:
    for r in rows: f.write(",".join(r[:-1]) + "\n")
def npy(path, descr, shape, payload, fortran=False):
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (descr, fortran, ", ".join(map(str, shape)) + ("," if len(shape) == 1 else ""))
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    open(path, "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload)
npy(f"{root}/x.npy", "<f8", (300, 12), b"".join(struct.pack("<d", random.random() * 5) for _ in range(300 * 12)))
npy(f"{root}/y.npy", "<i8", (300,), b"".join(struct.pack("<q", i % 3) for i in range(300)))
npy(f"{root}/images.npy", "|u1", (200, 8, 8), bytes(random.randrange(256) for _ in range(200 * 64)))
npy(f"{root}/truncated.npy", "<f4", (300, 12), b"\0" * 100)
npy(f"{root}/fortran.npy", "<f4", (2, 2), b"\0" * 16, fortran=True)
npy(f"{root}/complex.npy", "<c8", (2, 2), b"\0" * 32)
open(f"{root}/missing.csv", "w").write("a,b,label\n1,2,x\n3,,y\n5,6,x\n")
open(f"{root}/ragged.csv", "w").write("1,2,3\n4,5\n6,7,8\n")
open(f"{root}/notnpy.npy", "w").write("hello\n")
# Every dtype the reader takes, both byte orders: 50 x 6, values 0..99.
formats = {"<f4": "<f", ">f4": ">f", "<f8": "<d", ">f8": ">d", "|u1": "B", "|i1": "b", "<u2": "<H", ">i2": ">h",
           "<i4": "<i", ">u4": ">I", "<i8": "<q", ">u8": ">Q"}
for descr, code in formats.items():
    npy(f"{root}/dtype-{descr[1:]}-{'big' if descr[0] == '>' else 'little'}.npy", descr, (50, 6),
        b"".join(struct.pack(code, (i * 7) % 100) for i in range(300)))
# CSV variants: tab-separated without a header, label in the last column by index; semicolons with quoted fields.
with open(f"{root}/tabs.tsv", "w") as f:
    for i in range(40): f.write("\t".join(str((i * k) % 11) for k in range(1, 6)) + f"\t{i % 5}\n")
with open(f"{root}/semicolons.csv", "w") as f:
    f.write('"x 1";"x; 2";"kind"\n')
    for i in range(30): f.write(f'{i};"{i * 2}";"type {i % 3}"\n')
PY

# 1. A CSV with a header and text labels, end to end.
if $BIN dec --data "$T/blobs.csv" --pretrain-epochs 10 --epochs 10 --tsne-points 200 --out "$T/run" > "$T/run.log" 2>&1 \
   && grep -q "labels from 'species' (column 24)" "$T/run.log" && grep -q "K = 4" "$T/run.log" && grep -q "pretraining 24-500-500-2000-10" "$T/run.log" \
   && grep -q "features standardised" "$T/run.log" && grep -q "no augmentation" "$T/run.log" \
   && head -2 "$T/run/assignments.csv" | tail -1 | grep -qE "^0,[0-3],alpha$" && [ -f "$T/run/embedding.npy" ] && [ -f "$T/run/q.npy" ]; then
  acc=$(grep -o "final DEC: ACC [0-9.]*" "$T/run.log" | grep -o "[0-9.]*$")
  if [ "$(echo "$acc > 0.9" | bc)" -eq 1 ]; then pass "CSV with a header and text labels: K = 4 from the labels, 24-wide autoencoder, standardised, ACC $acc; assignments.csv with the labels, embedding.npy, q.npy"
  else fail "CSV end to end: ACC $acc on 4 well-separated blobs"; fi
else cat "$T/run.log"; fail "CSV end to end"; fi
python3 - "$T/run" <<'PY' && pass "embedding.npy (1200 x 10) and q.npy (1200 x 4, rows sum to 1) load in NumPy's format" || fail "embedding.npy / q.npy"
import struct, sys
def load(path):
    b = open(path, "rb").read()
    assert b[:6] == b"\x93NUMPY", path
    n = struct.unpack("<H", b[8:10])[0]
    header = eval(b[10:10 + n].decode())
    assert header["descr"] == "<f4" and not header["fortran_order"]
    count = header["shape"][0] * header["shape"][1]
    assert len(b) == 10 + n + 4 * count and (10 + n) % 64 == 0
    return header["shape"], struct.unpack("<%df" % count, b[10 + n:])
shape, _ = load(sys.argv[1] + "/embedding.npy"); assert shape == (1200, 10), shape
shape, q = load(sys.argv[1] + "/q.npy"); assert shape == (1200, 4), shape
assert all(abs(sum(q[i * 4:(i + 1) * 4]) - 1) < 1e-4 for i in range(1200))
PY

# 2. Without labels: K is chosen from the data (--clusters auto, with a note, a record and the report's figure) or
#    given; either way the run reports cluster sizes and no scores.
if $BIN dec --data "$T/nolabels.csv" --pretrain-epochs 5 --epochs 5 --tsne-points 0 --out "$T/nolabels-k" > "$T/nolabels-k.log" 2>&1 \
   && grep -q "has no labels and no --clusters was given: K is chosen from the data" "$T/nolabels-k.log" \
   && grep -q "^clusters chosen: K = " "$T/nolabels-k.log" && grep -q '"phase":"clusters"' "$T/nolabels-k/metrics.jsonl" \
   && grep -q "The number of clusters" "$T/nolabels-k/report.html" \
   && $BIN dec --data "$T/nolabels.csv" --clusters 4 --pretrain-epochs 5 --epochs 5 --tsne-points 0 --out "$T/nolabels" > "$T/nolabels.log" 2>&1 \
   && grep -q "final DEC: (no labels)" "$T/nolabels.log" && grep -q "cluster sizes: c0" "$T/nolabels.log" && head -1 "$T/nolabels/assignments.csv" | grep -qx "index,cluster" \
   && ! grep -q '"acc"' "$T/nolabels/metrics.jsonl"; then
  pass "CSV without labels: K chosen from the data ($(grep -o '^clusters chosen: K = [0-9]*' "$T/nolabels-k.log"), with a note, a record and the report's figure) or given; cluster sizes and no ACC/NMI/ARI"
else cat "$T/nolabels-k.log" "$T/nolabels.log" 2>/dev/null; fail "CSV without labels"; fi

# 2b. The least ICL at the top of the sweep (auto:3 on 4 blobs): the run says the data may hold more clusters; a
#     choice below the top (the run above) says nothing of the kind.
if $BIN raw --data "$T/blobs.csv" --method kmeans --clusters auto:3 --out "$T/rawtop" > "$T/rawtop.log" 2>&1 \
   && grep -q "^note: K = 3 is the largest K the sweep tried, and the ICL was still falling there" "$T/rawtop.log" \
   && [ -s "$T/nolabels-k.log" ] && ! grep -q "is the largest K the sweep tried" "$T/nolabels-k.log"; then
  pass "--clusters auto:3 on 4 blobs: K = 3, with a note that the ICL was still falling at the sweep's top (none where it chose below it)"
else cat "$T/rawtop.log"; fail "the note at the sweep's top"; fi
# 2c. Under 1,000 samples the choice says it is unreliable (the 300-row .npy of part 4); on 1,200 rows (above) not.
if $BIN raw --data "$T/x.npy" --labels "$T/y.npy" --method kmeans --clusters auto --out "$T/rawsmall" > "$T/rawsmall.log" 2>&1 \
   && grep -q "^note: on 300 samples the choice is unreliable" "$T/rawsmall.log" \
   && ! grep -q "the choice is unreliable" "$T/nolabels-k.log"; then
  pass "--clusters auto on 300 samples: $(grep -o '^clusters chosen: K = [0-9]*' "$T/rawsmall.log"), with a note that the choice is unreliable there (none on 1,200)"
else cat "$T/rawsmall.log"; fail "the note on few samples"; fi

# 3. predict on the training CSV: the model keeps the standardisation, so the embedding is the run's own, bitwise.
if $BIN predict --model "$T/run/model.bin" --data "$T/blobs.csv" --output "$T/predicted.csv" > "$T/predict.log" 2>&1 \
   && cmp -s "$T/run/embedding.npy" "$T/predicted.embedding.npy" && cmp -s "$T/run/assignments.csv" "$T/predicted.csv" && [ -f "$T/predicted.q.npy" ]; then
  pass "predict --data CSV: the model's normalisation applied, embedding and assignments bitwise the run's own"
else cat "$T/predict.log"; fail "predict on a CSV"; fi

# 4. .npy: float64 features with a labels .npy; uint8 images.
if $BIN info --data "$T/x.npy" --labels "$T/y.npy" > "$T/npy.log" 2>&1 && grep -qE "300 +12 +3 +x.npy" "$T/npy.log" \
   && $BIN info --data "$T/images.npy" > "$T/img.log" 2>&1 && grep -qE "200 +64 +- +images.npy" "$T/img.log"; then
  pass ".npy: float64 (300 x 12) with int64 labels (3 classes); uint8 images (200 x 8 x 8) without labels"
else cat "$T/npy.log" "$T/img.log"; fail ".npy readers"; fi

for file in "$T"/dtype-*.npy; do
  if $BIN info --data "$file" > "$T/dtype.log" 2>&1 && grep -qE " 50 +6 +- " "$T/dtype.log"; then :; else cat "$T/dtype.log"; fail "$(basename "$file")"; fi
done
[ $fails -eq 0 ] && pass ".npy of every dtype the reader takes, little and big endian: $(ls "$T"/dtype-*.npy | sed 's/.*dtype-//; s/.npy//' | paste -sd' ')"
if $BIN info --data "$T/tabs.tsv" --label-column -1 > "$T/tsv.log" 2>&1 && grep -qE " 40 +5 +5 +tabs.tsv" "$T/tsv.log" \
   && $BIN info --data "$T/semicolons.csv" > "$T/semi.log" 2>&1 && grep -qE " 30 +2 +3 +semicolons.csv" "$T/semi.log" \
   && grep -q "labels from 'kind' (column 2)" "$T/semi.log"; then
  pass "CSV variants: tabs without a header and --label-column -1 (40 x 5, 5 classes); semicolons with quoted fields, a ';' inside quotes (30 x 2, 3 text classes)"
else cat "$T/tsv.log" "$T/semi.log"; fail "CSV variants"; fi

# 5. Broken files: one line each, non-zero exit.
for case in "truncated.npy:truncated: shape (300, 12) of '<f4' needs 14400 bytes" "fortran.npy:Fortran order" "complex.npy:dtype '<c8' is not supported" \
            "notnpy.npy:not a NumPy .npy file" "missing.csv:line 3, column 1 ('b'): an empty field is not a finite number" \
            "ragged.csv:line 2 has 2 fields, line 1 has 3"; do
  file=${case%%:*}; expected=${case#*:}
  $BIN info --data "$T/$file" > "$T/bad.log" 2>&1; rc=$?
  if [ $rc -ne 0 ] && [ "$(wc -l < "$T/bad.log")" -le 2 ] && grep -qF "$expected" "$T/bad.log"; then pass "$file: $(grep -o 'error: .*' "$T/bad.log" | head -1)"
  else cat "$T/bad.log"; fail "$file (exit $rc)"; fi
done

# 6. Folders of images (issue 29): MNIST's first 400 test images written as PNG files. A flat folder named by index
#    trains the IDX run's model.bin bit for bit; a folder per digit runs on 2 ranks (labels from the folders,
#    assignments.csv with the paths, the gallery with the file names), and predict on it gives the run's own CSV.
MPI="mpirun --allow-run-as-root --oversubscribe -x OPENBLAS_NUM_THREADS=1"
S="--limit 400 --widths 784-32-10 --batch-size 100 --pretrain-epochs 3 --epochs 3 --tsne-points 0 --restarts 2 --clusters 10 --seed 2"
if $BIN write-images --limit 400 --out "$T/png" > /dev/null && $BIN write-images --limit 400 --layout flat --out "$T/flat" > /dev/null \
   && $BIN dec $S --out "$T/idx400" > "$T/idx400.log" 2>&1 && $BIN dec $S --data "$T/flat" --out "$T/flat400" > "$T/flat400.log" 2>&1 \
   && cmp -s "$T/idx400/model.bin" "$T/flat400/model.bin" && grep -q "a flat folder: no labels" "$T/flat400.log"; then
  pass "a flat folder of PNGs named by index: model.bin the same bytes as the run from the IDX file"
else tail -3 "$T/idx400.log" "$T/flat400.log"; fail "flat PNG folder against IDX"; fi
if $MPI -np 2 $BIN dec ${S/--clusters 10/} --data "$T/png" --out "$T/png400" > "$T/png400.log" 2>&1 \
   && grep -q "labels from the 10 subfolders of png" "$T/png400.log" && grep -q "^read 400 images in" "$T/png400.log" \
   && head -2 "$T/png400/assignments.csv" | tail -1 | grep -qE "^0,0/[0-9]+\.png,[0-9],0$" \
   && grep -q "<title>0/" "$T/png400/clusters.svg" \
   && $BIN predict --model "$T/png400/model.bin" --data "$T/png" --output "$T/png-pred.csv" > "$T/png-pred.log" 2>&1 \
   && cmp -s "$T/png400/assignments.csv" "$T/png-pred.csv"; then
  pass "a folder per digit on 2 ranks: labels from the folders, $(grep -o 'final DEC: ACC [0-9.]*' "$T/png400.log"), paths in assignments.csv, file names in the gallery; predict gives the run's own CSV"
else tail -5 "$T/png400.log" "$T/png-pred.log"; fail "PNG class folders on 2 ranks"; fi
exit $fails
