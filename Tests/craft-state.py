#!/usr/bin/env python3
"""Crafted run-state files for Tests/fuzz.sh (standard library only).

A state file (Sources/Training/Checkpoint.swift), little-endian:
  "DCLUSTER" | version u32 | width count u32 | widths u32... | clusters u32 | section count u32 |
  per section: name length u32, name, element count u64, f32 data | metadata length u32, metadata JSON
  (an object of strings) | FNV-1a 64 of everything before it (u64).

  craft-state.py show FILE
      Prints the header, the sections and the metadata, and checks that re-encoding gives the same bytes.
  craft-state.py variants KIND FILE OUTDIR
      KIND: dec-state (a dec-state.bin), autoencoder (a pretraining autoencoder.bin) or pretrained (an
      autoencoder.bin given to a fresh `dec --pretrained`). Writes OUTDIR/NAME.bin for every variant, each with a
      valid checksum, and prints one line per variant: NAME <tab> EXPECT <tab> what was changed, where EXPECT is
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


def variants(kind, state):
    """Yields (name, expect, description, State)."""
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

    yield "roundtrip", "ok", "re-encoded unchanged (the crafting itself is sound)", state.copy()
    yield ("section-extra", "ok", "an extra unknown section 'extra.unknown' of 3 values",
           changed(lambda s: s.set_section("extra.unknown", floats([1, 2, 3]))))

    # Every section one value short, one value long, missing.
    for name, values in state.sections:
        count = len(values) // 4
        # A snapshot (Figure 4's embedding at an epoch) only draws a figure: without it the figure lacks that panel.
        # A fresh `dec --pretrained` reads only the weights: any autoencoder.bin or model.bin will do.
        expect, missing = "bad", "bad"
        if name.startswith("snapshot."):
            missing = "either"
        if kind == "pretrained" and name.startswith("optimizer."):
            expect, missing = "either", "ok"
        yield (f"section-{name}-short", expect, f"section {name}: {count - 1} values instead of {count}",
               changed(lambda s, n=name, v=values: s.set_section(n, v[:-4])))
        yield (f"section-{name}-long", expect, f"section {name}: {count + 1} values instead of {count}",
               changed(lambda s, n=name, v=values: s.set_section(n, v + v[-4:])))
        yield (f"section-{name}-missing", missing, f"section {name} left out",
               changed(lambda s, n=name: s.sections.remove([n, s.section(n)])))

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

    # Every metadata field: negative, huge, 1e300, non-numeric, empty, absent.
    values = [("negative", "-1"), ("huge", HUGE_INT), ("1e300", "1e300"), ("text", "abc"), ("empty", ""),
              ("absent", None)]
    fields = ["epoch", "step", "batch", "optimizer_step", "metrics_lines", "config", "kind"]
    fields += ["method", "alpha", "interval_loss", "kmeans"] if kind == "dec-state" else ["seed"]
    # Absent: the readers give batch, optimizer_step, metrics_lines, config and the loss sums a default on purpose
    # (files from before these fields were written), and an unlabelled run writes no k-means scores; epoch, step and
    # method have none. A value present but malformed is wrong input, except where nothing reads it.
    either = {(f, "absent") for f in ("batch", "optimizer_step", "metrics_lines", "config", "interval_loss", "kmeans")}
    # kind only labels the file (a reader may check it, or check the contents alone).
    either |= {("kind", v) for v, _ in values}
    if kind == "dec-state":
        # alpha is DKM's sharpness; a dec run does not read it (model.bin records alphaStart).
        either |= {("alpha", v) for v, _ in values}
    else:
        # The seed is covered by the config hash; the number itself is informational.
        either |= {("seed", v) for v, _ in values}
    for field in fields:
        for label, value in values:
            original = state.metadata.get(field)
            if original is None and value is None:
                continue
            expect = "either" if (field, label) in either else "bad"
            what = f"metadata {field} {'left out' if value is None else repr(value)} (was {original!r})"
            yield f"meta-{field}-{label}", expect, what, changed(meta(**{field: value}))

    # A position inside an epoch: the checkpoint a stop signal writes. Valid, then with bad epoch sums (pretraining).
    m = state.metadata
    step, opt = int(m["step"]), int(m["optimizer_step"])
    mid = dict(batch="1", step=str(step + 1), optimizer_step=str(opt + 1))
    if kind == "dec-state":
        yield ("mid-epoch-batch-1", "ok", "batch 1, step and optimizer_step one further (a stop signal's checkpoint)",
               changed(meta(**mid)))
    else:
        yield ("mid-epoch-batch-1", "ok", "batch 1, step one further, epoch_so_far '0 0 0' (a stop signal's checkpoint)",
               changed(meta(epoch_so_far="0 0 0", **mid)))
        sums = [("missing", None), ("negative", "-1 -1 -1"), ("huge", f"{HUGE_INT} 1e300 1e300"), ("text", "abc def ghi"),
                ("empty", ""), ("two-fields", "0 0"), ("nan", "7ff8000000000000 0 0")]
        for label, value in sums:
            yield (f"mid-epoch-sums-{label}", "bad", f"batch 1 with epoch_so_far {'left out' if value is None else repr(value)}",
                   changed(meta(epoch_so_far=value, **mid)))
        yield ("batch0-sums-garbage", "either", "batch 0 with epoch_so_far 'abc' (the writer leaves it out at batch 0)",
               changed(meta(epoch_so_far="abc")))

    if kind == "dec-state":
        # Labels of the last update (`previous`, f32): each must be an integer in 0..<K.
        previous = state.section("previous")
        n = len(previous) // 4
        labels = [("-1", -1.0), ("K", float(state.clusters)), ("1e9", 1e9), ("0.5", 0.5), ("1e10", 1e10), ("-3e9", -3e9)]
        for label, v in labels:
            yield (f"labels-{label}", "bad", f"previous: the first of {n} labels {v:g} (K = {state.clusters})",
                   changed(lambda s, v=v: s.set_section("previous", floats([v]) + previous[4:])))
        # Target distribution rows must be probabilities.
        target = state.section("target")
        yield ("target-negative", "bad", "target: the first value -1 (a probability)",
               changed(lambda s: s.set_section("target", floats([-1.0]) + target[4:])))


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
    if len(sys.argv) == 5 and sys.argv[1] == "variants" and sys.argv[2] in ("dec-state", "autoencoder", "pretrained"):
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
