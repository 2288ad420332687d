#!/usr/bin/env python3
"""Crafted run-state files for Tests/fuzz.sh (standard library only).

A state file (Sources/Training/Checkpoint.swift), little-endian:
  "DCLUSTER" | version u32 | width count u32 | widths u32... | clusters u32 | section count u32 |
  per section: name length u32, name, element count u64, f32 data | metadata length u32, metadata JSON
  (an object of strings) | FNV-1a 64 of everything before it (u64).

  craft-state.py show FILE
      Prints the header, the sections and the metadata, and checks that re-encoding gives the same bytes.
  craft-state.py variants KIND FILE OUTDIR
      KIND: dec-state (a dec-state.bin of dec, idec or dkm: the method is the file's), autoencoder (a pretraining
      autoencoder.bin), pretrained (an autoencoder.bin given to a fresh `dec --pretrained`) or start (the start.bin
      that a resumed `dec` reads for its guard). Writes
      OUTDIR/NAME.bin for every variant, each with a valid checksum, and prints one line per variant: NAME <tab> EXPECT <tab> what was changed, where EXPECT is
        bad     wrong input: the reader must refuse it with an error line (exit 1 or 2) and keep every file;
        ok      harmless: the reader must take it and the run must finish (exit 0);
        either  a proper error or exit 0 are both right (a value the run may ignore).
"""
import json
import struct
import sys

MAGIC = b"DCLUSTER"
HUGE_INT = "9223372036854775807"


def fnv1a64(data, h=0xCBF29CE484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


_prefix_hashes = {}  # header and sections -> FNV state after them: most variants change only the metadata


def checksum(prefix, rest):
    if prefix not in _prefix_hashes:
        _prefix_hashes[prefix] = fnv1a64(prefix)
    return fnv1a64(rest, _prefix_hashes[prefix])


class State:
    def __init__(self, version, widths, clusters, sections, metadata):
        self.version, self.widths, self.clusters = version, list(widths), clusters
        self.sections = sections      # list of [name, bytes of f32 data], in file order
        self.metadata = metadata      # dict of strings, in file order

    @staticmethod
    def parse(data):
        if data[:8] != MAGIC:
            raise ValueError("bad magic")
        body = data[:-8]
        (stored,) = struct.unpack("<Q", data[-8:])
        if stored != fnv1a64(body):  # (parse is called on the source file only)
            raise ValueError("checksum mismatch")
        o = 8

        def take(fmt):
            nonlocal o
            v = struct.unpack_from(fmt, body, o)
            o += struct.calcsize(fmt)
            return v

        version, width_count = take("<II")
        widths = take(f"<{width_count}I")
        clusters, section_count = take("<II")
        sections = []
        for _ in range(section_count):
            (n,) = take("<I")
            name = body[o:o + n].decode()
            o += n
            (count,) = take("<Q")
            sections.append([name, body[o:o + 4 * count]])
            o += 4 * count
        (n,) = take("<I")
        metadata = json.loads(body[o:o + n].decode())
        o += n
        if o != len(body):
            raise ValueError(f"{len(body) - o} bytes after the metadata")
        return State(version, widths, clusters, sections, metadata)

    def encode(self):
        out = bytearray(MAGIC)
        out += struct.pack("<II", self.version, len(self.widths))
        out += b"".join(struct.pack("<I", w) for w in self.widths)
        out += struct.pack("<II", self.clusters, len(self.sections))
        for name, values in self.sections:
            nb = name.encode()
            out += struct.pack("<I", len(nb)) + nb + struct.pack("<Q", len(values) // 4) + values
        js = json.dumps(self.metadata, sort_keys=True, separators=(",", ":")).encode()
        rest = struct.pack("<I", len(js)) + js
        return bytes(out) + rest + struct.pack("<Q", checksum(bytes(out), rest))

    def copy(self):
        return State(self.version, self.widths, self.clusters, [[n, v] for n, v in self.sections], dict(self.metadata))

    def section(self, name):
        return next(v for n, v in self.sections if n == name)

    def set_section(self, name, values):
        for s in self.sections:
            if s[0] == name:
                s[1] = values
                return
        self.sections.append([name, values])
        self.sections.sort(key=lambda s: s[0])


def floats(values):
    return struct.pack(f"<{len(values)}f", *values)


def bits64(x):
    return f"{struct.unpack('<Q', struct.pack('<d', x))[0]:x}"


def variants(kind, state):
    """Yields (name, expect, description, State). The rules are RunState.decode's (Sources/Training/RunState.swift)
    and Model.load's: a field or section the writer always writes is required, every integer is checked against its
    range, every hex bit pattern must parse and be finite, every label must be a cluster."""
    def changed(f):
        s = state.copy()
        f(s)
        return s

    def meta(**kv):
        def f(s):
            for k, v in kv.items():
                if v is None:
                    s.metadata.pop(k, None)
                else:
                    s.metadata[k] = v
        return f

    def shown(value):
        return "left out" if value is None else repr(value)

    names = [n for n, _ in state.sections]
    yield "roundtrip", "ok", "re-encoded unchanged (the crafting itself is sound)", state.copy()
    yield ("section-extra", "ok", "an extra unknown section 'extra.unknown' of 3 values",
           changed(lambda s: s.set_section("extra.unknown", floats([1, 2, 3]))))

    # Every section one value short, one value long, missing.
    for name, values in state.sections:
        count = len(values) // 4
        # A snapshot (Figure 4's embedding at an epoch) only draws a figure: without it the figure lacks that panel.
        # labels (the hard labels of the last target update) are optional in the decoder: without them the next
        # update has nothing to compare with. A fresh `dec --pretrained` reads only the weights.
        expect, missing = "bad", "bad"
        if name.startswith("snapshot.") or name == "labels":
            missing = "either"
        if kind == "pretrained" and name.startswith("optimizer."):
            expect, missing = "either", "ok"
        yield (f"section-{name}-short", expect, f"section {name}: {count - 1} values instead of {count}",
               changed(lambda s, n=name, v=values: s.set_section(n, v[:-4])))
        yield (f"section-{name}-long", expect, f"section {name}: {count + 1} values instead of {count}",
               changed(lambda s, n=name, v=values: s.set_section(n, v + v[-4:])))
        yield (f"section-{name}-missing", missing, f"section {name} left out",
               changed(lambda s, n=name: s.sections.remove([n, s.section(n)])))
    # A snapshot section must name an epoch in 0...2^40.
    snapshot = next((v for n, v in state.sections if n.startswith("snapshot.")), None)
    if snapshot is not None and kind != "pretrained":
        for label, name in (("text", "snapshot.abc"), ("negative", "snapshot.-1"), ("huge", "snapshot.2000000000000"),
                            ("empty", "snapshot.")):
            yield (f"section-snapshot-name-{label}", "bad", f"an extra section {name!r} of {len(snapshot) // 4} values",
                   changed(lambda s, n=name: s.set_section(n, snapshot)))

    # The header: widths and clusters changed, the sections kept.
    w = state.widths
    yield ("widths-last+1", "bad", f"widths {'-'.join(map(str, w[:-1] + [w[-1] + 1]))} (sections kept)",
           changed(lambda s: s.widths.__setitem__(-1, w[-1] + 1)))
    yield ("widths-reversed", "bad",
           f"widths {'-'.join(map(str, w[::-1]))}: the same parameter count, another architecture (sections kept)",
           changed(lambda s: s.widths.reverse()))
    yield ("widths-one-more-layer", "bad", f"widths {'-'.join(map(str, w + [w[-1]]))} (sections kept)",
           changed(lambda s: s.widths.append(w[-1])))
    if state.clusters > 0:
        for k in (state.clusters + 1, state.clusters - 1, 0):
            yield (f"clusters-{k}", "bad", f"clusters {k} instead of {state.clusters} (sections kept)",
                   changed(lambda s, k=k: setattr(s, "clusters", k)))
    else:
        # An autoencoder.bin has no centres; its cluster count (0) is not read by pretraining.
        yield ("clusters-10", "either", "clusters 10 instead of 0 (no centres section)",
               changed(lambda s: setattr(s, "clusters", 10)))

    if kind == "pretrained":
        return  # a fresh dec reads only the weights and the architecture of its --pretrained file
    if kind == "start":
        # start.bin (the start the guard may keep): kind "start"; assignments clusters in 0..<K; the embedding finite;
        # an N2D start's q (absent after k-means) N x K probabilities.
        for label, value in (("other", "dec-state"), ("empty", ""), ("absent", None)):
            yield (f"meta-kind-{label}", "bad", f"metadata kind {shown(value)} (was 'start')", changed(meta(kind=value)))
        other = "kmeans" if state.metadata.get("start") == "n2d" else "n2d"
        for label, value in (("other", other), ("text", "abc"), ("absent", None)):
            yield (f"meta-start-{label}", "bad", f"metadata start {shown(value)} (was {state.metadata.get('start')!r}; the run's)",
                   changed(meta(start=value)))
        labels = state.section("start.assignments")
        n = len(labels) // 4
        for label, v in [("-1", -1.0), ("K", float(state.clusters)), ("0.5", 0.5), ("1e10", 1e10), ("nan", float("nan"))]:
            yield (f"assignments-{label}", "bad", f"start.assignments: the first of {n} {v:g} (K = {state.clusters})",
                   changed(lambda s, v=v: s.set_section("start.assignments", floats([v]) + labels[4:])))
        embedding = state.section("start.embedding")
        for label, v in (("nan", float("nan")), ("inf", float("inf"))):
            yield (f"embedding-{label}", "bad", f"start.embedding: the first value {v:g}",
                   changed(lambda s, v=v: s.set_section("start.embedding", floats([v]) + embedding[4:])))
        k = state.clusters
        if "start.q" not in names:
            yield ("q-added", "bad", f"a start.q of {n} x {k} values 1/K in a k-means start (only N2D's has one)",
                   changed(lambda s: s.set_section("start.q", floats([1 / k] * (n * k)))))
        else:
            q = state.section("start.q")
            yield ("q-uniform", "ok", f"start.q: {n} x {k} values 1/K (other posteriors, still probabilities)",
                   changed(lambda s: s.set_section("start.q", floats([1 / k] * (n * k)))))
            for label, v in (("negative", -1.0), ("above-1", 1.5), ("nan", float("nan"))):
                yield (f"q-{label}", "bad", f"start.q: the first value {v:g} (a probability)",
                       changed(lambda s, v=v: s.set_section("start.q", floats([v]) + q[4:])))
        return

    m = state.metadata
    # Every plain metadata field: negative, huge, 1e300, non-numeric, empty, absent. kind and method must be this
    # run's; epoch, step, batch, optimizer_step and metrics_lines are required whole numbers in their ranges.
    values = [("negative", "-1"), ("huge", HUGE_INT), ("1e300", "1e300"), ("text", "abc"), ("empty", ""),
              ("absent", None)]
    fields = ["kind", "epoch", "step", "batch", "optimizer_step", "metrics_lines", "config"]
    fields += ["method"] if kind == "dec-state" else ["seed"]
    # config: a different hash is another configuration; none at all is not checked (RunPolicy.checkConfiguration).
    either = {("config", "absent")}
    # The seed is covered by the config hash; the number itself is informational (nothing reads it).
    either |= {("seed", v) for v, _ in values}
    for field in fields:
        for label, value in values:
            original = m.get(field)
            if original is None and value is None:
                continue
            expect = "either" if (field, label) in either else "bad"
            yield (f"meta-{field}-{label}", expect, f"metadata {field} {shown(value)} (was {original!r})",
                   changed(meta(**{field: value})))

    # The hex fields: sums (required: 3 doubles in pretraining, loss, seconds waited, seconds; 2 in fine-tuning, the
    # clustering and reconstruction losses), start_scores (3 doubles, optional) and alpha (a float, optional).
    # Each is split on single spaces; every part must parse as hex bits and be finite (alpha: and positive).
    # Note that "1e300" and "abc" are hex digits: as bits they are tiny positive subnormals, which decode.
    sums = 2 if kind.endswith("-state") else 3
    hexed = [("sums", sums, "bad")]
    if kind == "dec-state":
        hexed += [("start_scores", 3, "either"), ("alpha", 1, "either")]
    for field, n, absent in hexed:
        original = m.get(field)
        good = original.split(" ") if original is not None else ["0"] * n
        if field == "alpha":
            good = [original or "3f800000"]
            cases = [("absent", None, absent), ("empty", "", "bad"), ("text", "xyz", "bad"), ("decimal", "0.5", "bad"),
                     ("negative", "-1", "bad"), ("huge", HUGE_INT, "bad"), ("1e300", "1e300", "either"),
                     ("two-values", f"{good[0]} {good[0]}", "bad"), ("nan-bits", "7fc00000", "bad"),
                     ("inf-bits", "7f800000", "bad"), ("zero-bits", "0", "bad"), ("negative-bits", "bf800000", "bad"),
                     ("too-wide", "1ffffffff", "bad"), ("space", f" {good[0]}", "bad"), ("one-bits", "3f800000", "either")]
        else:
            def rest(first):
                return " ".join([first] + good[1:])
            cases = [("absent", None, absent), ("empty", "", "bad"), ("text", " ".join(["xyz"] * n), "bad"),
                     ("decimal", " ".join(["0.5"] * n), "bad"), ("negative", " ".join(["-1"] * n), "bad"),
                     ("huge", " ".join([HUGE_INT] + ["1e300"] * (n - 1)), "bad"),
                     ("1e300", " ".join(["1e300"] * n), "either"),
                     ("short", " ".join(good[:-1]), "bad"), ("long", " ".join(good + good[-1:]), "bad"),
                     ("nan-bits", rest("7ff8000000000000"), "bad"), ("inf-bits", rest("7ff0000000000000"), "bad"),
                     ("all-ones", rest("ffffffffffffffff"), "bad"), ("too-wide", rest("1" + "0" * 16), "bad"),
                     ("double-space", good[0] + "  " + " ".join(good[1:]), "bad"),
                     ("trailing-space", " ".join(good) + " ", "bad"),
                     ("negative-bits", rest(bits64(-1.0)), "either"), ("huge-bits", rest(bits64(1e300)), "either")]
        for label, value, expect in cases:
            if original is None and value is None:
                continue
            yield (f"meta-{field}-{label}", expect, f"metadata {field} {shown(value)} (was {original!r})",
                   changed(meta(**{field: value})))

    # The position's ranges: batch in 0..<batches, step in 0...(epoch + 1) * batches, optimizer_step in 0...step,
    # metrics_lines at most the lines of metrics.jsonl. batches per epoch: step / epoch of a checkpoint at batch 0.
    step, opt, epoch, lines = int(m["step"]), int(m["optimizer_step"]), int(m["epoch"]), int(m["metrics_lines"])
    if m["batch"] == "0" and epoch > 0 and step % epoch == 0:
        b = step // epoch
        yield "batch-equals-batches", "bad", f"batch {b} ({b} batches an epoch)", changed(meta(batch=str(b)))
        yield ("step-beyond-epoch", "bad", f"step {(epoch + 1) * b + 1} (epoch {epoch}, {b} batches an epoch)",
               changed(meta(step=str((epoch + 1) * b + 1))))
        yield ("step-at-limit", "either", f"step {(epoch + 1) * b} and optimizer_step {opt} (the range's end)",
               changed(meta(step=str((epoch + 1) * b))))
        yield ("epoch-beyond-run", "either", f"epoch 1000 (beyond the run's epochs), step {step} kept",
               changed(meta(epoch="1000")))
    yield ("optimizer-step-above-step", "bad", f"optimizer_step {step + 1} (step {step})",
           changed(meta(optimizer_step=str(step + 1))))
    yield ("metrics-lines-above-file", "bad", f"metrics_lines {lines + 1000} (was {lines}; more than metrics.jsonl)",
           changed(meta(metrics_lines=str(lines + 1000))))
    yield ("metrics-lines-0", "either", f"metrics_lines 0 (was {lines}): the history is dropped",
           changed(meta(metrics_lines="0")))

    # A position inside an epoch: the checkpoint a stop signal writes. Valid, then with bad sums.
    mid = dict(batch="1", step=str(step + 1), optimizer_step=str(opt + 1))
    zeros = " ".join(["0"] * sums)
    yield ("mid-epoch-batch-1", "ok", f"batch 1, step and optimizer_step one further, sums '{zeros}' (a stop signal's "
           "checkpoint)", changed(meta(sums=zeros, **mid)))
    for label, value in [("missing", None), ("text", " ".join(["xyz"] * sums)), ("one-field-short", " ".join(["0"] * (sums - 1))),
                         ("nan", " ".join(["7ff8000000000000"] + ["0"] * (sums - 1)))]:
        yield (f"mid-epoch-sums-{label}", "bad", f"batch 1 with sums {shown(value)}", changed(meta(sums=value, **mid)))

    # A file in the old format's names (before RunState): no sums, so refused.
    renames = {"sums": "interval_loss" if kind == "dec-state" else "epoch_so_far", "start_scores": "kmeans"}
    sections = {"labels": "previous", "objective.target": "target"}

    def old(s):
        for new_name, old_name in renames.items():
            if new_name in s.metadata:
                s.metadata[old_name] = s.metadata.pop(new_name)
        for sec in s.sections:
            sec[0] = sections.get(sec[0], sec[0])
        s.sections.sort(key=lambda x: x[0])
    yield ("old-names", "bad", "the old format's names (" + ", ".join(f"{a} as {b}" for a, b in
           list(renames.items()) + list(sections.items()) if a in m or a in names) + ")", changed(old))

    if kind == "dec-state":
        # Labels of the last update (`labels`, f32): each must be an integer in 0..<K.
        labels = state.section("labels")
        n = len(labels) // 4
        cases = [("-1", -1.0), ("K", float(state.clusters)), ("1e9", 1e9), ("0.5", 0.5), ("1e10", 1e10), ("-3e9", -3e9),
                 ("nan", float("nan"))]
        for label, v in cases:
            yield (f"labels-{label}", "bad", f"labels: the first of {n} labels {v:g} (K = {state.clusters})",
                   changed(lambda s, v=v: s.set_section("labels", floats([v]) + labels[4:])))
        # The target distribution's rows must be probabilities (DEC, IDEC).
        if "objective.target" in names:
            target = state.section("objective.target")
            for label, v in (("negative", -1.0), ("nan", float("nan"))):
                yield (f"target-{label}", "bad", f"objective.target: the first value {v:g} (a probability)",
                       changed(lambda s, v=v: s.set_section("objective.target", floats([v]) + target[4:])))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "show":
        data = open(sys.argv[2], "rb").read()
        s = State.parse(data)
        print(f"version {s.version}, widths {'-'.join(map(str, s.widths))}, clusters {s.clusters}")
        for name, values in s.sections:
            print(f"  section {name}: {len(values) // 4} values")
        print(f"  metadata {json.dumps(s.metadata, sort_keys=True)}")
        print("  re-encodes to the same bytes" if s.encode() == data else "  re-encodes to DIFFERENT bytes")
        return 0
    if len(sys.argv) == 5 and sys.argv[1] == "variants" and sys.argv[2] in ("dec-state", "autoencoder", "pretrained", "start"):
        kind, source, out = sys.argv[2:]
        original = open(source, "rb").read()
        state = State.parse(original)
        for name, expect, what, crafted in variants(kind, state):
            data = crafted.encode()
            if name == "roundtrip" and data != original:
                print(f"craft-state.py: re-encoding {source} changes its bytes", file=sys.stderr)
                return 1
            open(f"{out}/{name}.bin", "wb").write(data)
            print(f"{name}\t{expect}\t{what}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
