#!/usr/bin/env bash
# Bad input, answered (issue 17): about 150 crafted and random inputs (options, IDX and gzip files, checkpoints with a
# valid checksum, run directories), each run under a 3 GB address-space limit (ulimit -v) and a 30 s timeout. A
# crafted bad input must end with exit status 1-127 and an error line naming what to fix; a random one with status 0
# or such an error; none with a signal, a timeout or the memory limit. Writes the table of every input (exit status,
# first error line, peak memory) to $1/fuzz.md and prints the failures and the largest peak. Called by
# Tests/multirank.sh with its temp dir; returns the number of failures. About a minute.
# Its last section, state files, also runs alone (about 50 s): FUZZ_ONLY=state Tests/fuzz.sh DIR. DC_BIN names
# another binary to test (default .build/release/deepcluster), e.g. DC_BIN=/work/before/.build/release/deepcluster.
set -uo pipefail
cd "$(dirname "$0")/.."
T="$1/fuzz"
mkdir -p "$T"
BIN=${DC_BIN:-$(pwd)/.build/release/deepcluster}
fails=0
table="$1/fuzz.md"
echo "| input | exit | first line on stderr | peak MB |" > "$table"
echo "|---|---|---|---|" >> "$table"
worst=0; worstcase=""; cases=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

# run KIND NAME ARGS...: KIND bad (must fail with an error line), ok (must succeed) or any (0 or an error line).
run() {
  local kind="$1" name="$2"; shift 2
  cases=$((cases + 1))
  ( ulimit -v 3000000; cd "$T/cwd" && exec /usr/bin/time -f "%M" -o "$T/mem" timeout 30 "$@" ) > "$T/out" 2> "$T/err"
  local rc=$?
  local kb; kb=$(tail -1 "$T/mem" 2>/dev/null | grep -E '^[0-9]+$' || echo 0)
  local line; line=$(grep -v -E '^(Usage|  See|Command exited)' "$T/err" | grep -m1 -E '[Ee]rror' | cut -c1-160)
  local mb=$((kb / 1024))
  [ "$mb" -gt "$worst" ] && { worst=$mb; worstcase="$name"; }
  echo "| $name | $rc | ${line//|/\\|} | $mb |" >> "$table"
  local ok=1
  if [ $rc -ge 124 ]; then ok=0; fi            # timeout, or killed by a signal (128 + n)
  if [ $rc -ne 0 ] && [ -z "$line" ]; then ok=0; fi
  if [ "$kind" = bad ] && [ $rc -eq 0 ]; then ok=0; fi
  if [ "$kind" = ok ] && [ $rc -ne 0 ]; then ok=0; fi
  if [ $ok -eq 0 ]; then
    echo "FAIL fuzz $name: exit $rc, peak ${mb} MB: $(head -3 "$T/err" | tr '\n' ' ' | cut -c1-300)"; fails=$((fails + 1))
  fi
}
mkdir -p "$T/cwd"

# State files (the resume readers: DECTrainer.resume, Pretrainer.resume, Model.load): genuine autoencoder.bin and
# dec-state.bin (dec, idec, dkm) from small runs, then variants with a valid checksum written by Tests/craft-state.py
# (each section one value short, one long, missing; each metadata field negative, huge, 1e300, text, empty, absent;
# the hex fields sums, start_scores and alpha with the wrong count, NaN or Inf bits, text; positions out of range;
# labels out of range; the old format's names; other widths and cluster counts; the rules are RunState.decode's),
# each resumed in a copy of its run directory (the .prev files removed, so that
# the crafted file is the one read). Its list names what each must do: "bad" ends with exit status 1 or 2, a line
# starting with "error:", and every file of the run as it was; "ok" resumes and finishes (exit 0); "either" does one
# of the two. Rows go into the table as "state SET VARIANT"; the section prints N passed, N failed.
state_files() {
  local S="$T/state" t0=$SECONDS passed=0 failed=0 accepted=0
  rm -rf "$S"; mkdir -p "$S/cwd"
  local D="--limit 300 --widths 784-16-10 --batch-size 100 --pretrain-epochs 2 --epochs 3 --start kmeans --restarts 1"
  D="$D --tsne-points 0 --augment none --tol 0 --seed 1 --threads 1"
  # dec-pre: stopped after pretraining epoch 1 of 2 (autoencoder.bin only). dec, idec, dkm: then stopped again at the
  # end of pretraining and after fine-tuning epoch 1 of 3 (autoencoder.bin and dec-state.bin). pre: a pretrain run
  # stopped after epoch 1 of 2.
  if ! { "$BIN" dec $D --out "$S/dec" --stop-after-epochs 1 && cp -r "$S/dec" "$S/dec-pre" \
         && "$BIN" dec --resume "$S/dec" --threads 1 --stop-after-epochs 1 \
         && "$BIN" dec --resume "$S/dec" --threads 1 --stop-after-epochs 1 \
         && ( for m in idec dkm; do "$BIN" dec $D --method $m --out "$S/$m" --stop-after-epochs 1 \
              && "$BIN" dec --resume "$S/$m" --threads 1 --stop-after-epochs 1 \
              && "$BIN" dec --resume "$S/$m" --threads 1 --stop-after-epochs 1 || exit 1; done ) \
         && "$BIN" dec ${D/--start kmeans/--start n2d} --out "$S/n2d" --stop-after-epochs 2 \
         && "$BIN" dec --resume "$S/n2d" --threads 1 --stop-after-epochs 1 \
         && "$BIN" pretrain --limit 300 --widths 784-16-10 --batch-size 100 --epochs 2 --augment none --threads 1 \
              --stop-after-epochs 1 --out "$S/pre"; } > "$S/runs.log" 2>&1 \
     || [ ! -s "$S/dec/dec-state.bin" ] || [ ! -s "$S/dec/autoencoder.bin" ] || [ ! -s "$S/dec/start.bin" ] || [ -e "$S/dec-pre/dec-state.bin" ] \
     || [ ! -s "$S/idec/dec-state.bin" ] || [ ! -s "$S/dkm/dec-state.bin" ] || [ ! -s "$S/n2d/start.bin" ] \
     || [ ! -s "$S/dec-pre/autoencoder.bin" ] || [ ! -s "$S/pre/autoencoder.bin" ]; then
    fail "state files: the small runs that make them ($S/runs.log: $(tail -1 "$S/runs.log"))"; return
  fi

  # state_set SET KIND SOURCE RUN COMMAND...: every variant of the state file SOURCE, put into a copy of the run
  # directory RUN that COMMAND resumes (@DIR@); with RUN -, the file @FILE@ that a fresh run into @DIR@ loads.
  state_set() {
    local set=$1 kind=$2 source=$3 run=$4; shift 4
    local V="$S/$set"; mkdir -p "$V"
    python3 Tests/craft-state.py variants "$kind" "$source" "$V" > "$V.tsv" || { fail "state $set: craft-state.py"; return; }
    local name expect what
    while IFS=$'\t' read -r name expect what; do
      local c="$S/$set-$name" crafted="$V/$name.bin" file
      if [ "$run" = - ]; then file="$c.bin"; else cp -r "$run" "$c"; rm -f "$c"/*.prev; file="$c/$(basename "$source")"; fi
      cp "$crafted" "$file"
      local before=""; [ "$run" = - ] || before=$(cd "$c" && md5sum * 2>/dev/null)
      local args=("${@//@DIR@/$c}"); args=("${args[@]//@FILE@/$file}")
      cases=$((cases + 1))
      ( ulimit -v 3000000; cd "$S/cwd" && exec /usr/bin/time -f "%M" -o "$S/mem" timeout 30 "${args[@]}" ) \
        < /dev/null > "$c.out" 2> "$c.err"
      local rc=$?
      local kb; kb=$(tail -1 "$S/mem" 2>/dev/null | grep -E '^[0-9]+$' || echo 0)
      local mb=$((kb / 1024))
      [ "$mb" -gt "$worst" ] && { worst=$mb; worstcase="state $set $name"; }
      local line; line=$(grep -m1 '^error:' "$c.err" | cut -c1-200)
      # What changed in the run directory (the crafted file included): nothing may, unless the run went on.
      local changed=""
      cmp -s "$crafted" "$file" || changed="$(basename "$file")"
      if [ "$run" != - ]; then
        changed=$(diff <(echo "$before") <(cd "$c" && md5sum * 2>/dev/null) | awk '/^[<>]/ { print $3 }' | sort -u | tr '\n' ' ')
      fi
      # A crash: the runtime's message (else the signal) and the first frame in the sources, from the backtrace.
      local crash=""
      if [ $rc -ge 128 ]; then
        crash=$(grep -m1 -o -E 'Swift runtime failure: .*|Fatal error: .*' "$c.err" | sed -E 's/ in deepcluster at .*//; s/ \*\*\*$//')
        [ -n "$crash" ] || crash=$(grep -m1 -o -E 'Program crashed: [^*]*' "$c.err" | sed -E 's/ at 0x[0-9a-f]+ *$//')
        crash="${crash:-signal $((rc - 128))} at $(grep -v -E 'compiler-generated|Swift runtime failure' "$c.err" \
          | grep -m1 -E '^ *[0-9]+ .*0x[0-9a-f]+ .* in deepcluster at /' \
          | sed -E 's/^ *[0-9]+ [^0]*0x[0-9a-f]+ (.*) in deepcluster at .*\/([^/]+:[0-9]+):[0-9]+$/\1 (\2)/; s/ \+ [0-9]+ \(/ (/')"
      fi
      local took=0 proper=0
      [ $rc -eq 0 ] && grep -q -E 'resuming|loaded the pretrained' "$c.out" "$c.err" && took=1
      { [ $rc -eq 1 ] || [ $rc -eq 2 ]; } && [ -n "$line" ] && [ -z "$changed" ] && proper=1
      local ok=0
      case "$expect" in
        ok) ok=$took ;;
        bad) ok=$proper ;;
        either) [ $took -eq 1 ] || [ $proper -eq 1 ] && ok=1 ;;
      esac
      local shown="$line"
      [ $rc -eq 0 ] && shown="accepted"
      [ $rc -ge 124 ] && shown="$crash"
      [ $rc -eq 124 ] && shown="timeout (30 s)"
      echo "| state $set $name [$expect]: ${what//|/\\|} | $rc | ${shown//|/\\|} | $mb |" >> "$table"
      if [ $ok -eq 1 ]; then
        passed=$((passed + 1)); [ $rc -eq 0 ] && accepted=$((accepted + 1))
      else
        local why
        if [ $rc -eq 124 ]; then why="timeout after 30 s"
        elif [ $rc -ge 128 ]; then why="$crash"
        elif [ $rc -eq 0 ] && [ $took -eq 0 ]; then why="exit 0 without resuming"
        elif [ $rc -eq 0 ]; then why="accepted: must be refused"
        elif [ -z "$line" ]; then why="no line starting with error: ($(tail -1 "$c.err" | cut -c1-160))"
        elif [ -n "$changed" ]; then why="changed the run: $changed ($line)"
        else why="$line"; fi
        echo "FAIL state $set $name [$expect] ($what): exit $rc: $why"
        failed=$((failed + 1)); fails=$((fails + 1))
      fi
      [ $ok -eq 1 ] && rm -rf "$c" "$c.bin" "$c.out" "$c.err"
    done < "$V.tsv"
  }
  state_set dec-state dec-state "$S/dec/dec-state.bin" "$S/dec" "$BIN" dec --resume @DIR@ --threads 1
  state_set idec-state dec-state "$S/idec/dec-state.bin" "$S/idec" "$BIN" dec --resume @DIR@ --threads 1
  state_set dkm-state dec-state "$S/dkm/dec-state.bin" "$S/dkm" "$BIN" dec --resume @DIR@ --threads 1
  state_set start start "$S/dec/start.bin" "$S/dec" "$BIN" dec --resume @DIR@ --threads 1
  state_set start-n2d start "$S/n2d/start.bin" "$S/n2d" "$BIN" dec --resume @DIR@ --threads 1
  state_set dec-pretrain autoencoder "$S/dec-pre/autoencoder.bin" "$S/dec-pre" "$BIN" dec --resume @DIR@ --threads 1
  state_set pretrain autoencoder "$S/pre/autoencoder.bin" "$S/pre" "$BIN" pretrain --resume @DIR@ --threads 1
  state_set pretrained pretrained "$S/pre/autoencoder.bin" - "$BIN" dec $D --pretrained @FILE@ --out @DIR@
  echo "state files: $passed passed, $failed failed ($accepted of the passed accepted, exit 0); $((SECONDS - t0)) s"
}
if [ "${FUZZ_ONLY:-}" = state ]; then
  state_files
  echo "fuzz (state files only): $cases inputs, $fails failure(s); largest peak ${worst} MB ($worstcase); table in $table"
  exit $fails
fi

# Files: IDX images (with good labels beside them), gzip, checkpoints (valid FNV-1a over crafted fields).
python3 - "$T" <<'PY'
import gzip, os, random, struct, sys
T = sys.argv[1]
def idx(dims, payload, head=None):
    h = head if head is not None else bytes([0, 0, 8, len(dims)])
    return h + b"".join(struct.pack(">I", d) for d in dims) + (bytes(payload) if isinstance(payload, int) else payload)
good_labels = idx([4], 4)
good = idx([4, 28, 28], 4 * 784)
def put(name, images, labels=good_labels, gz=False):
    d = f"{T}/data/{name}"; os.makedirs(d, exist_ok=True)
    open(f"{d}/t10k-images-idx3-ubyte" + (".gz" if gz else ""), "wb").write(images)
    open(f"{d}/t10k-labels-idx1-ubyte", "wb").write(labels)
put("bad-magic", idx([4, 28, 28], 4 * 784, head=bytes([1, 2, 8, 3])))
put("element-type-int32", idx([4, 28, 28], 4 * 784, head=bytes([0, 0, 0x0C, 3])))
put("rank-2", idx([4, 784], 4 * 784))
put("rank-255", bytes([0, 0, 8, 255]) + bytes(64))
put("dims-overflow", idx([0xFFFFFFFF, 0xFFFFFFFF, 28], 10))
put("zero-count", idx([0, 28, 28], 0))
put("zero-width", idx([10000, 0, 28], 0))
put("zero-height", idx([10000, 28, 0], 0))
put("huge-items", idx([1, 65535, 65535], 0))
put("huge-count-short-file", idx([2**31 - 1, 28, 28], 784 * 3))
put("header-truncated", bytes([0, 0, 8, 3, 0, 0]))
put("empty-file", b"")
put("one-byte", b"\x00")
put("payload-truncated", idx([4, 28, 28], 4 * 784 - 1))
put("trailing-bytes", idx([4, 28, 28], 4 * 784 + 3))
put("count-mismatch", idx([5, 28, 28], 5 * 784))
put("labels-12", good, idx([4], b"\x01\x02\x0c\x03"))
put("labels-rank-3", good, idx([4, 1, 1], 4))
put("labels-zero", good, idx([0], 0))
put("labels-truncated", good, idx([4], 2))
# A gzip bomb: a 4-image header, then 6 GB of zeros in about 6 MB.
with gzip.open(f"{T}/bomb.gz", "wb", compresslevel=9) as f:
    f.write(good)
    z = bytes(1 << 24)
    for _ in range(380): f.write(z)
put("gzip-bomb", open(f"{T}/bomb.gz", "rb").read(), gz=True)
# A header that declares 60,000 images, then the same bomb's zeros: 47 MB declared, 6 GB delivered.
with gzip.open(f"{T}/bomb2.gz", "wb", compresslevel=9) as f:
    f.write(idx([60000, 28, 28], b""))
    for _ in range(380): f.write(z)
put("gzip-bomb-60000", open(f"{T}/bomb2.gz", "rb").read(), gz=True)
z = gzip.compress(good)
put("gzip-corrupt", z[:20] + bytes(b ^ 0x5A for b in z[20:40]) + z[40:], gz=True)
put("gzip-truncated", z[: len(z) // 2], gz=True)
put("gzip-header-only", z[:10], gz=True)
put("gzip-not", b"plain text, not gzip\n", gz=True)
put("gzip-of-garbage", gzip.compress(b"garbage" * 1000), gz=True)
rng = random.Random(17)
for i in range(10):
    put(f"random-bytes-{i}", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5000))))
for i in range(5):
    put(f"random-gzip-{i}", b"\x1f\x8b" + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))), gz=True)
for i in range(10):
    b = bytearray(z); b[rng.randrange(10, len(b))] ^= 1 << rng.randrange(8)
    put(f"gzip-bitflip-{i}", bytes(b), gz=True)
for i in range(5):
    b = bytearray(good); b[rng.randrange(0, 16)] = rng.randrange(256)
    put(f"header-byte-{i}", bytes(b))

# Checkpoints: "DCLUSTER" | version | width count | widths | clusters | section count | sections | json | FNV-1a 64.
def fnv(data):
    h = 0xcbf29ce484222325
    for b in data: h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h
def ckpt(widths=(784, 16, 10), clusters=10, sections=None, version=1, count_override=None, width_count=None,
         json=b"{}", json_len=None, section_count=None):
    if sections is None:
        n = 2 * (784 * 16 + 16 * 10) + 784 + 16 + 16 + 10
        sections = {"autoencoder": [0.01] * n, "centres": [0.0] * (clusters * widths[-1])}
    out = b"DCLUSTER" + struct.pack("<II", version, len(widths) if width_count is None else width_count)
    out += b"".join(struct.pack("<I", w) for w in widths) + struct.pack("<I", clusters)
    out += struct.pack("<I", len(sections) if section_count is None else section_count)
    for name, values in sorted(sections.items()):
        nb = name.encode()
        out += struct.pack("<I", len(nb)) + nb
        out += struct.pack("<Q", len(values) if count_override is None else count_override)
        out += struct.pack(f"<{len(values)}f", *values)
    out += struct.pack("<I", len(json) if json_len is None else json_len) + json
    return out + struct.pack("<Q", fnv(out))
os.makedirs(f"{T}/ckpt", exist_ok=True)
cases = {
    "valid-shape": ckpt(),
    "section-count-2^61": ckpt(count_override=2**61),
    "section-count-2^64-1": ckpt(count_override=2**64 - 1),
    "section-count-2^62+1": ckpt(count_override=2**62 + 1),
    "widths-2e9": ckpt(widths=(784, 2000000000, 10)),
    "width-count-0": ckpt(width_count=0, widths=(), sections={"autoencoder": [0.0] * 10}),
    "width-count-1000": ckpt(width_count=1000),
    "clusters-2^32-1": ckpt(clusters=2**32 - 1, sections={"autoencoder": [0.0] * 10}),
    "sections-2^32-1": ckpt(section_count=2**32 - 1),
    "nan-centres": ckpt(sections={"autoencoder": [0.01] * (2 * (784 * 16 + 16 * 10) + 784 + 16 + 16 + 10), "centres": [float("nan")] * 100}),
    "inf-weights": ckpt(sections={"autoencoder": [float("inf")] * (2 * (784 * 16 + 16 * 10) + 784 + 16 + 16 + 10), "centres": [0.0] * 100}),
    "wrong-weight-count": ckpt(sections={"autoencoder": [0.0] * 1000, "centres": [0.0] * 100}),
    "wrong-centre-count": ckpt(sections={"autoencoder": [0.01] * (2 * (784 * 16 + 16 * 10) + 784 + 16 + 16 + 10), "centres": [0.0] * 7}),
    "no-centres": ckpt(sections={"autoencoder": [0.01] * (2 * (784 * 16 + 16 * 10) + 784 + 16 + 16 + 10)}),
    "json-length-2^32-1": ckpt(json_len=2**32 - 1),
    "json-not-json": ckpt(json=b"\xff\xfe not json"),
    "version-2": ckpt(version=2),
    "empty": b"",
    "magic-only": b"DCLUSTER",
    "random": bytes(random.Random(3).randrange(256) for _ in range(4096)),
}
v = ckpt()
cases["truncated"] = v[: len(v) // 2]
cases["bitflip"] = v[:100] + bytes([v[100] ^ 1]) + v[101:]
for name, data in cases.items(): open(f"{T}/ckpt/{name}.bin", "wb").write(data)
PY

for d in "$T"/data/*; do run bad "info --data $(basename "$d")" "$BIN" info --data "$d" --split test; done
run bad "pretrain --data gzip-bomb" "$BIN" pretrain --data "$T/data/gzip-bomb" --split test --epochs 1 --out "$T/o-bomb"
for f in "$T"/ckpt/*.bin; do
  n=$(basename "$f" .bin)
  [ "$n" = valid-shape ] && kind=any || kind=bad   # its weights are made up, but well-formed: it may run
  run $kind "predict --model $n.bin" "$BIN" predict --model "$f" --limit 100 --output "$T/pred-$n.csv"
  run bad "dec --pretrained $n.bin (784-64-10)" "$BIN" dec --pretrained "$f" --widths 784-64-10 --limit 200 --epochs 1 --restarts 1 --tsne-points 0 --out "$T/o-pre-$n"
done

# Options. Q keeps a valid run short, so that only the value under test decides.
Q="--limit 200 --widths 784-16-10 --batch-size 50 --restarts 1 --tsne-points 0 --pretrain-epochs 1 --epochs 1"
k=0
bad_dec() { k=$((k + 1)); run bad "dec $*" "$BIN" dec $Q "$@" --out "$T/o-dec$k"; }
for v in 0 -1 999999999 abc; do bad_dec --restarts $v; done
for v in nan -1 2 inf; do bad_dec --tol $v; done
for v in nan -0.1 1.5 inf abc; do bad_dec --confidence $v; done
for v in -1 abc 1e40; do bad_dec --hold-target $v; done
for v in best none ""; do bad_dec --keep "$v"; done
for v in -5 0 nan; do bad_dec --gamma $v; done
for v in -1 0 nan inf 1e40; do bad_dec --lr $v; done
for v in -1 0 nan; do bad_dec --pretrain-lr $v; done
for v in 0 -1; do bad_dec --epochs $v; bad_dec --pretrain-epochs $v; done
for v in 0 -1 3000000 100000; do bad_dec --batch-size $v; done
for v in 784-4000000-10 784 784-0-10 abc 784--10 100-10 784-16-0 784-16-10-; do bad_dec --widths $v; done
for v in 1 4294967295 -3 201 auto:1 auto:0 auto:-5 auto:abc auto: auto:100000 automatic "auto 5"; do bad_dec --clusters "$v"; done
run bad "dec on 5 labelled samples of 10 classes" "$BIN" dec --limit 5 --batch-size 5 --pretrain-epochs 1 --epochs 1 --out "$T/o-l5"
run bad "dec --clusters auto on 15 samples" "$BIN" dec $Q --limit 15 --batch-size 5 --clusters auto --out "$T/o-auto15"
for v in -1 a,b ,; do bad_dec --snapshots $v; done
printf "a,b,label\n1,2,x\n2,3,x\n3,1,y\n8,9,y\n9,8,x\n" > "$T/tiny.csv"
for v in 1 0 -3 abc 10; do run bad "neighbours --neighbours $v on 5 points" "$BIN" neighbours --data "$T/tiny.csv" --neighbours "$v"; done
for v in -1 abc; do run bad "neighbours --check $v" "$BIN" neighbours --data "$T/tiny.csv" --neighbours 3 --check "$v"; done
run bad "neighbours --search fast" "$BIN" neighbours --data "$T/tiny.csv" --search fast
# choose-k (the sweep of --clusters auto on a saved layout): bad settings and layouts answered in one line.
python3 - "$T" <<'PY'
import random, struct, sys
def npy(path, descr, shape, payload):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, ", ".join(map(str, shape)))
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    open(path, "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload)
random.seed(3)
npy(sys.argv[1] + "/layout.npy", "<f4", (120, 3), b"".join(struct.pack("<f", random.gauss(i % 3 * 8, 1)) for i in range(360)))
npy(sys.argv[1] + "/layout10.npy", "<f4", (10, 3), b"".join(struct.pack("<f", random.random()) for _ in range(30)))
npy(sys.argv[1] + "/layout-nan.npy", "<f4", (30, 2), struct.pack("<f", float("nan")) * 60)
PY
run ok "choose-k --screen-iterations 0" "$BIN" choose-k "$T/layout.npy" --screen-iterations 0
for v in -1 abc; do run bad "choose-k --screen-iterations $v" "$BIN" choose-k "$T/layout.npy" --screen-iterations "$v"; done
for v in 0 -2; do run bad "choose-k --fits $v" "$BIN" choose-k "$T/layout.npy" --fits "$v"; done
for f in layout10.npy layout-nan.npy tiny.csv missing.npy; do run bad "choose-k on $f" "$BIN" choose-k "$T/$f"; done
run any "raw --method n2d on 5 points" "$BIN" raw --data "$T/tiny.csv" --method n2d --clusters 2 --out "$T/o-n2d5"
run bad "raw --method n2d,umap" "$BIN" raw --data "$T/tiny.csv" --method n2d,umap --out "$T/o-n2du"

# Image folders (issue 29): crafted PNGs (16-bit, palette, alpha, 2-bit, a 60,000 x 60,000 header, bad CRC, zero
# width), JPEGs from write-images (whole and truncated), files that are not images, sizes that differ, one class,
# one image, an empty folder, a link back to the root. Converted ones must load (ok); the others must be refused.
I="$T/img"; rm -rf "$I"; mkdir -p "$I"
"$BIN" write-images --limit 40 --out "$I/png40" > /dev/null && "$BIN" write-images --limit 6 --format jpeg --out "$I/jpg6" > /dev/null \
  || fail "write-images could not write the fuzz folders"
python3 - "$I" <<'PY'
import os, struct, sys, zlib, glob, shutil
I = sys.argv[1]
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
def png(w, h, depth, colour, rows, plte=None, trns=None, crc_ok=True):
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))
    if plte: out += chunk(b"PLTE", plte)
    if trns: out += chunk(b"tRNS", trns)
    idat = chunk(b"IDAT", zlib.compress(rows))
    if not crc_ok: idat = idat[:-1] + bytes([idat[-1] ^ 1])
    return out + idat + chunk(b"IEND", b"")
def folder(name, files):
    d = f"{I}/{name}"; os.makedirs(d, exist_ok=True)
    for f, b in files.items():
        os.makedirs(os.path.dirname(f"{d}/{f}"), exist_ok=True); open(f"{d}/{f}", "wb").write(b)
good = open(sorted(glob.glob(f"{I}/png40/*/*.png"))[0], "rb").read()
jpg = open(sorted(glob.glob(f"{I}/jpg6/*/*.jpg"))[0], "rb").read()
g8 = lambda w, h: b"".join(b"\x00" + bytes(range(w)) for _ in range(h))
folder("converted", {"a16.png": png(4, 4, 16, 0, b"".join(b"\x00" + b"\x12\x34" * 4 for _ in range(4))),
                     "b-palette.png": png(4, 4, 8, 3, g8(4, 4), plte=bytes(range(12))),
                     "c-alpha.png": png(4, 4, 8, 6, b"".join(b"\x00" + b"\x10\x20\x30\x40" * 4 for _ in range(4))),
                     "d-trns.png": png(4, 4, 8, 0, g8(4, 4), trns=b"\x00\x02"),
                     "e-2bit.png": png(4, 4, 2, 0, b"".join(b"\x00\x1b" for _ in range(4))),
                     "f-rgb16a.png": png(4, 4, 16, 6, b"".join(b"\x00" + b"\x01\x02" * 16 for _ in range(4)))})
folder("sizes", {"a.png": good, "b.png": good, "c.png": png(300, 200, 8, 0, g8(256, 200)[:0] + b"".join(b"\x00" + bytes(300) for _ in range(200))),
                 "d.png": png(1, 1, 8, 0, b"\x00\x07"), "e.jpg": jpg})
folder("huge-header", {"a.png": good, "b.png": png(60000, 60000, 8, 0, b"\x00\x00")})
folder("wide-header", {"a.png": good, "b.png": png(1000000, 1, 8, 0, b"\x00\x00")})
folder("zero-width", {"a.png": good, "b.png": png(0, 5, 8, 0, b"\x00")})
folder("bad-crc", {"a.png": good, "b.png": png(4, 4, 8, 0, g8(4, 4), crc_ok=False)})
folder("truncated-png", {"a.png": good, "b.png": good[: len(good) // 2]})
folder("truncated-jpg", {"a.jpg": jpg, "b.jpg": jpg[: len(jpg) * 2 // 3]})
folder("header-only-jpg", {"a.jpg": jpg, "b.jpg": jpg[:20]})
folder("text-as-png", {"a.png": good, "b.png": b"hello, not a picture\n"})
folder("jpeg-named-png", {"a.png": good, "b.png": jpg})
folder("empty-file", {"a.png": good, "b.png": b""})
folder("random-bytes", {"a.png": good, "b.png": os.urandom(3000)})
folder("others-only", {"notes.txt": b"x", "data.csv": b"1,2\n"})
folder("one-image", {"only.png": good})
folder("one-class", {"cats/a.png": good, "cats/b.png": good})
folder("mixed-depth", {"a.png": good, "x/b.png": good, "x/y/z/c.png": good})
os.makedirs(f"{I}/empty", exist_ok=True)
os.makedirs(f"{I}/loop/sub", exist_ok=True)
open(f"{I}/loop/sub/a.png", "wb").write(good); open(f"{I}/loop/sub/b.png", "wb").write(good)
os.symlink(f"{I}/loop", f"{I}/loop/sub/back")
os.symlink(f"{I}/nowhere", f"{I}/loop/sub/dangling.png")
PY
for f in converted sizes one-class mixed-depth loop; do run ok "image folder: $f" "$BIN" info --data "$I/$f"; done
for f in huge-header wide-header zero-width bad-crc truncated-png truncated-jpg header-only-jpg text-as-png empty-file \
         random-bytes others-only one-image empty; do
  run bad "image folder: $f" "$BIN" info --data "$I/$f"
done
run any "image folder: jpeg-named-png" "$BIN" info --data "$I/jpeg-named-png"
run ok "image folder: --image-size 12x9 --channels 3" "$BIN" info --data "$I/sizes" --image-size 12x9 --channels 3
run ok "image folder: 2 ranks" mpirun --allow-run-as-root --oversubscribe -np 2 "$BIN" info --data "$I/png40"
run bad "image folder: 2 ranks, truncated" mpirun --allow-run-as-root --oversubscribe -np 2 "$BIN" info --data "$I/truncated-png"
for v in 0 -3 abc 2000 28x x28 28x28x3 1e3; do run bad "--image-size $v" "$BIN" info --data "$I/png40" --image-size "$v"; done
for v in 0 2 4 abc; do run bad "--channels $v" "$BIN" info --data "$I/png40" --channels "$v"; done
run bad "--image-size with a CSV" "$BIN" info --data "$T/tiny.csv" --image-size 28
run bad "--labels with an image folder" "$BIN" info --data "$I/png40" --labels "$T/tiny.csv"
run ok "dec on an image folder" "$BIN" dec $Q --data "$I/png40" --limit 40 --batch-size 20 --out "$T/o-img"
run ok "predict on an image folder" "$BIN" predict --model "$T/o-img/model.bin" --data "$I/png40" --output "$T/o-img-pred.csv"
head -1 "$T/o-img/assignments.csv" | grep -qx "index,path,cluster,label" && head -1 "$T/o-img-pred.csv" | grep -qx "index,path,cluster,label" \
  || fail "image folder: assignments.csv and predict's CSV should start index,path,cluster,label"
run bad "predict on a folder of other sizes" "$BIN" predict --model "$T/o-img/model.bin" --data "$I/sizes" --image-size 12 --output "$T/o-img-pred2.csv"
for v in -1 100000; do bad_dec --tsne-points $v; done
bad_dec --tsne-iterations 0; bad_dec --update-interval 0; bad_dec --checkpoint-every 0
for v in -5m 0s abc 5x 1e9s nan; do bad_dec --checkpoint-every "$v"; done
for v in linear "" COSINE; do bad_dec --pretrain-schedule "$v"; done
for v in fp16 "" BF16 float64; do bad_dec --precision "$v"; done
run bad "--precision bf16 without AVX-512 (DNNL_MAX_CPU_ISA=AVX2)" env DNNL_MAX_CPU_ISA=AVX2 "$BIN" pretrain --precision bf16 --epochs 1 --max-steps 1 --out "$T/o-bf16-avx2"
run ok "--precision auto without native bf16 (DNNL_MAX_CPU_ISA=AVX2): float32" env DNNL_MAX_CPU_ISA=AVX2 "$BIN" pretrain --epochs 1 --max-steps 1 --out "$T/o-auto-avx2"
grep -q '"--precision" : "float32 (auto)"' "$T/o-auto-avx2/config.json" \
  || fail "--precision auto under DNNL_MAX_CPU_ISA=AVX2 should record float32 (auto) in config.json"
# What auto meant goes into command.json as if given, so a resume on another CPU keeps the checkpoint's precision.
python3 -c "import json, sys; a = json.load(open(sys.argv[1]))['arguments']; sys.exit(0 if a[a.index('--precision') + 1] == 'float32' else 1)" \
  "$T/o-auto-avx2/command.json" 2>/dev/null || fail "--precision auto should write what it meant (--precision float32) into command.json"
# AVX-512 BF16 without AMX: float32 on Intel's cores (bf16 no faster there), bf16 on AMD's (twice the rate).
without_amx=float32
env DNNL_MAX_CPU_ISA=AVX512_CORE_BF16 "$BIN" info 2>&1 | grep -q "AVX-512 BF16 (AMD)" && without_amx=bf16
run ok "--precision auto on AVX-512 BF16 without AMX (DNNL_MAX_CPU_ISA=AVX512_CORE_BF16): $without_amx" env DNNL_MAX_CPU_ISA=AVX512_CORE_BF16 "$BIN" pretrain --epochs 1 --max-steps 1 --out "$T/o-auto-bf16isa"
grep -q "\"--precision\" : \"$without_amx (auto)\"" "$T/o-auto-bf16isa/config.json" \
  || fail "--precision auto without AMX should record $without_amx (auto) in config.json here"
# A run whose `auto` meant bf16 (command.json: --precision bf16), resumed where oneDNN has no bf16 GEMM: an error, the
# checkpoint kept. (Where auto means float32 here, both mean float32 and the resume goes on.)
"$BIN" pretrain --epochs 2 --limit 512 --batch-size 256 --checkpoint-every 1 --stop-after-epochs 1 --out "$T/o-prec" > /dev/null 2>&1
if "$BIN" info 2>&1 | grep -q "auto means bf16"; then
  run bad "resume a bf16 run where auto means float32" env DNNL_MAX_CPU_ISA=AVX2 "$BIN" pretrain --resume "$T/o-prec"
  [ -s "$T/o-prec/autoencoder.bin" ] || fail "the refused resume should keep autoencoder.bin"
else
  run ok "resume a run whose auto meant float32 (command.json: --precision float32)" env DNNL_MAX_CPU_ISA=AVX2 "$BIN" pretrain --resume "$T/o-prec"
fi
for v in 1 -0.1 nan; do bad_dec --mask $v; done
bad_dec --method nope; bad_dec --initialization foo; bad_dec --optimizer foo; bad_dec --seed -1; bad_dec --seed abc
for v in 0 100000 -2; do bad_dec --threads $v; done
for v in 0 -5 abc; do bad_dec --limit $v; done
bad_dec --split foo; bad_dec --data /nonexistent; bad_dec --data /etc/passwd; bad_dec --frobnicate
run bad "dec --pretrained missing" "$BIN" dec $Q --pretrained /nonexistent.bin --out "$T/o-missing"
for v in 0 -1 abc 999999999999; do run bad "toy --points $v" "$BIN" toy --points $v --epochs 1 --out "$T/o-toy$v"; done
for v in 0 nan -1; do run bad "toy --spread $v" "$BIN" toy --spread $v --epochs 1 --out "$T/o-toys$v"; done
for v in "" 0 nan 1,abc -1; do run bad "toy --alphas '$v'" "$BIN" toy --alphas "$v" --epochs 1 --out "$T/o-toya$k"; k=$((k + 1)); done
run bad "toy --clusters 5" "$BIN" toy --clusters 5 --epochs 1 --out "$T/o-toyk"
run bad "toy --batch-size 1000 (600 points)" "$BIN" toy --batch-size 1000 --epochs 1 --out "$T/o-toyb"
for v in 0 -1 1000000; do run bad "raw --restarts $v" "$BIN" raw --limit 200 --restarts $v --epochs 1 --out "$T/o-raw$v"; done
for v in 0 nan -1; do run bad "raw --alpha $v" "$BIN" raw --limit 200 --alpha $v --epochs 1 --out "$T/o-rawa$v"; done
run bad "raw --weight-lr -1" "$BIN" raw --limit 200 --weight-lr -1 --epochs 1 --out "$T/o-raww"
run bad "raw --method bogus" "$BIN" raw --limit 200 --method bogus --epochs 1 --out "$T/o-rawm"
for v in 1 0 100000 auto:1 auto:x; do run bad "raw --clusters $v" "$BIN" raw --limit 200 --clusters $v --epochs 1 --out "$T/o-rawk$v"; done
for v in 0 -1 3000000; do run bad "pretrain --batch-size $v" "$BIN" pretrain --batch-size $v --epochs 1 --out "$T/o-pb$v"; done
run bad "pretrain --max-steps 0" "$BIN" pretrain --max-steps 0 --epochs 1 --out "$T/o-pms"
run bad "pretrain --widths 784-4000000-10" "$BIN" pretrain --widths 784-4000000-10 --out "$T/o-pw"
for a in "--steps 0" "--batch-size 0" "--widths 784-4000000-10" "--link-gbps -1" "--max-ranks 0" "--link-latency-us nan" \
         "--start-points 10" "--start-points -5" "--start-dims 1" "--predict-run 0" "--predict-run -3" "--predict-run abc" \
         "--predict-run 70000 --start-points 50000 --start-dims 784" "--predict-run 70000 --start-dims 784"; do
  run bad "bench $a" "$BIN" bench $a
done
run bad "info --limit 0" "$BIN" info --limit 0
# The schedule follows the data's size: 40,000 rows get (10k / 40k)^(1/3) of pretraining's 100 epochs, 63, and the
# hold and fine-tuning's cap (10k / 40k)^(1/2) of 30 and 100, 15 and 50; given flags win.
python3 -c "
import random; random.seed(1)
print('a,b,label')
for i in range(40000): print(f'{random.random():.4f},{random.random():.4f},{i % 3}')" > "$T/rows40k.csv"
run ok "pretrain on 40,000 rows: the shortened schedule" "$BIN" pretrain --data "$T/rows40k.csv" --widths 2-8-2 --max-steps 1 --out "$T/o-sched"
grep -q '"--epochs" : "63"' "$T/o-sched/config.json" || fail "pretrain on 40,000 samples should record --epochs 63 in config.json"
run ok "dec on 40,000 rows: the shortened schedule" "$BIN" dec --data "$T/rows40k.csv" --widths 2-8-2 --pretrain-epochs 1 --stop-after-epochs 1 --tsne-points 0 --out "$T/o-sched-dec"
grep -q '"--hold-target" : "15"' "$T/o-sched-dec/config.json" && grep -q '"--epochs" : "50"' "$T/o-sched-dec/config.json" \
  || fail "dec on 40,000 samples should record --hold-target 15 and --epochs 50 in config.json"
# ... and in command.json, as if given, so a resumed run keeps them whatever a later recipe says.
python3 -c "import json, sys; a = json.load(open(sys.argv[1]))['arguments']; sys.exit(0 if a[a.index('--hold-target') + 1] == '15' and a[a.index('--epochs') + 1] == '50' else 1)" \
  "$T/o-sched-dec/command.json" 2>/dev/null || fail "dec on 40,000 samples should write --hold-target 15 --epochs 50 into command.json"
python3 -c "import json, sys; a = json.load(open(sys.argv[1]))['arguments']; sys.exit(0 if a[a.index('--epochs') + 1] == '63' else 1)" \
  "$T/o-sched/command.json" 2>/dev/null || fail "pretrain on 40,000 samples should write --epochs 63 into command.json"
run bad "report /nonexistent" "$BIN" report /nonexistent
run bad "report of a file" "$BIN" report /etc/passwd
run bad "unknown command" "$BIN" frobnicate

# Run directories: outputs never overwrite inputs or another run's files; resume takes only what may change.
"$BIN" dec $Q --out "$T/run" > /dev/null 2>&1 || fail "a short dec run for the output checks"
run bad "predict --output = --model" "$BIN" predict --model "$T/run/model.bin" --limit 100 --output "$T/run/model.bin"
run bad "predict into a run directory (its assignments.csv)" "$BIN" predict --model "$T/run/model.bin" --limit 100 --output "$T/run/assignments.csv"
run bad "predict --output a directory" "$BIN" predict --model "$T/run/model.bin" --limit 100 --output "$T/run"
run any "predict --output a new file" "$BIN" predict --model "$T/run/model.bin" --limit 100 --output "$T/new.csv"
run bad "dec --out an existing run" "$BIN" dec $Q --out "$T/run"
run bad "dec --resume with --seed" "$BIN" dec --resume "$T/run" --seed 3
run bad "dec --resume with --widths" "$BIN" dec --resume "$T/run" --widths 784-32-10
run bad "pretrain --resume of a dec run" "$BIN" pretrain --resume "$T/run"
run bad "dec --resume of a missing directory" "$BIN" dec --resume /nonexistent
run any "dec --resume with --lr 0.0001" "$BIN" dec --resume "$T/run" --lr 0.0001
if ! cmp -s "$T/run/model.bin" "$T/run/model.bin.prev" 2>/dev/null && [ -s "$T/run/model.bin" ]; then :; fi
run any "info --data gzip-bomb --limit 2 (reads only what it keeps)" "$BIN" info --data "$T/data/gzip-bomb" --split test --limit 2

# Random values for numeric options (seeded): any answer but a crash, a hang or the memory limit.
RANDOM=11
values=(0 -1 1 2 -0 1e308 -1e308 nan inf -inf 1e-45 4294967296 9223372036854775807 -9223372036854775808 18446744073709551616 0x10 1,2 "" " " abc)
options=(--epochs --pretrain-epochs --batch-size --lr --pretrain-lr --restarts --clusters --tol --gamma --mask --limit --threads --update-interval --checkpoint-every --tsne-points --tsne-iterations --hold-target --confidence)
for i in $(seq 1 25); do
  o=${options[$((RANDOM % ${#options[@]}))]}; v=${values[$((RANDOM % ${#values[@]}))]}
  run any "dec $o '$v' (random)" "$BIN" dec $Q $o "$v" --out "$T/o-rand$i"
done

state_files

echo "fuzz: $cases inputs, $fails failure(s); largest peak ${worst} MB ($worstcase); table in $table"
exit $fails
