#!/usr/bin/env python3
"""mkbadgguf.py — write the GGUF regression files and the fuzz seed corpus.

Writes (relative to the repo root, or to --out-root):
  tests/data/gguf-bad/*.gguf      one tiny file per known attack shape against
                                  GGUF readers (the llama.cpp / Ollama CVEs:
                                  counts that overflow, strings and offsets
                                  past the end of the file, bad types, ...)
  tests/data/gguf-bad/MANIFEST    one line per file:
                                  name<TAB>STATUS<TAB>substring[<TAB>substring...]
                                  the status sl_gguf_open must return and the
                                  substrings its message must contain (the
                                  first names the bad field).
  tests/fuzz/corpus/gguf/*        small valid GGUF files (seed-*.gguf) plus a
                                  copy of the regression files (bad-*.gguf), less
                                  near-duplicates (CORPUS_SKIP) so the committed
                                  corpus stays under 50 files.

The files are built here from the GGUF specification alone (python3 standard
library, no numpy, no code under test), and committed; the tests read the
committed files and never run this script. Output is deterministic.

Usage: python3 tools/mkbadgguf.py [--out-root DIR]
"""

import os
import random
import struct
import sys

# ---- GGUF encoding ----------------------------------------------------------

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
              BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}

# ggml_type number -> (name, elements per block, bytes per block)
TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
         6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36),
         10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
         13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
         20: ("IQ4_NL", 32, 18), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
         26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 30: ("BF16", 1, 2),
         39: ("MXFP4", 32, 17)}
T_F32, T_F16, T_Q4_0, T_Q8_0, T_Q4_K, T_Q6_K, T_I8 = 0, 1, 2, 8, 12, 14, 24

M64 = (1 << 64) - 1


def u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


def u64(v):
    return struct.pack("<Q", v & M64)


def gstr(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return u64(len(b)) + b


def header(n_tensors, n_kv, version=3, magic=b"GGUF"):
    return magic + u32(version) + u64(n_tensors) + u64(n_kv)


def scalar(t, v):
    return struct.pack(SCALAR_FMT[t], v)


def kv(key, t, v):
    """A key/value pair; v is a Python value (list of values for arrays: (elem_type, [..]))."""
    out = gstr(key) + u32(t)
    if t == STRING:
        return out + gstr(v)
    if t == ARRAY:
        et, vals = v
        out += u32(et) + u64(len(vals))
        for x in vals:
            out += gstr(x) if et == STRING else scalar(et, x)
        return out
    return out + scalar(t, v)


def tinfo(name, ne, ttype, offset):
    out = gstr(name) + u32(len(ne))
    for d in ne:
        out += u64(d)
    return out + u32(ttype) + u64(offset)


def nbytes(ne, ttype):
    _, blck, size = TYPES[ttype]
    n = ne[0] // blck * size
    for d in ne[1:]:
        n *= d
    return n


def pad_to(b, align):
    return b + b"\0" * ((-len(b)) % align)


def gguf(kvs, tensors, version=3, align=32, rng=None):
    """A valid file. kvs: list of kv() byte strings; tensors: list of (name, ne, type).
    Tensor data is laid out in order, each tensor padded to `align`, filled from rng."""
    rng = rng or random.Random(1)
    infos, data, off = b"", b"", 0
    for name, ne, tt in tensors:
        infos += tinfo(name, ne, tt, off)
        n = nbytes(ne, tt)
        blob = bytes(rng.randrange(256) for _ in range(n))
        if tt in (T_F32,):  # keep float data finite and readable
            blob = b"".join(struct.pack("<f", rng.uniform(-1, 1)) for _ in range(n // 4))
        data += pad_to(blob, align)
        off = len(data)
    head = header(len(tensors), len(kvs), version) + b"".join(kvs) + infos
    return pad_to(head, align) + data


# ---- regression files -------------------------------------------------------

FORMAT, UNSUPPORTED = "FORMAT", "UNSUPPORTED"
W = "a.weight"  # the tensor name used in tensor cases


def one_tensor(ne, ttype, offset=0, data_len=None, kvs=(), raw_type=None):
    """Header + kvs + one tensor info + padding + data_len bytes of data (default: its size).
    raw_type, when given, is written as the type number instead of ttype."""
    head = header(1, len(kvs)) + b"".join(kvs) + tinfo(W, ne, ttype if raw_type is None else raw_type, offset)
    if data_len is None:
        data_len = nbytes(ne, ttype)
    return pad_to(head, 32) + b"\x5a" * data_len


def bad_cases():
    c = []  # (name, bytes, status, [substrings])

    def add(name, data, status, *subs):
        c.append((name, data, status, list(subs)))

    # strings whose length runs past the end of the file
    add("str-key-past-eof", header(0, 1) + u64(1000) + b"general.name" + b"\0" * 8, FORMAT,
        "kv[0].key", "string length 1000")
    add("str-key-len-max", header(0, 1) + u64(M64) + b"general.name" + b"\0" * 8, FORMAT,
        "kv[0].key", "string length 18446744073709551615")
    add("str-value-past-eof", header(0, 1) + gstr("general.name") + u32(STRING) + u64(1 << 62) + b"llama",
        FORMAT, "kv[0] 'general.name'", "string length 4611686018427387904")
    add("str-arr-elem-past-eof",
        header(0, 1) + gstr("tokenizer.ggml.tokens") + u32(ARRAY) + u32(STRING) + u64(3)
        + gstr("<unk>") + gstr("<s>") + u64(500) + b"</s>" + b"\0" * 20,
        FORMAT, "kv[0] 'tokenizer.ggml.tokens' element 2", "string length 500")
    add("str-tensor-name-past-eof", header(1, 0) + u64(1000) + b"a.weight" + b"\0" * 40, FORMAT,
        "tensor[0].name", "string length 1000")

    # counts that overflow or exceed the file
    add("kv-count-2p63", header(0, 1 << 63) + kv("general.name", STRING, "x"), FORMAT,
        "kv_count", "9223372036854775808")
    add("kv-count-max", header(0, M64) + kv("general.name", STRING, "x"), FORMAT,
        "kv_count", "18446744073709551615")
    add("kv-count-more-than-present",
        header(0, 3) + kv("general.name", STRING, "x") + kv("general.type", STRING, "model") + u64(100) + b"ab",
        FORMAT, "kv[2].key", "string length 100")
    add("tensor-count-2p63", header(1 << 63, 0) + tinfo(W, [32], T_F32, 0), FORMAT,
        "tensor_count", "9223372036854775808")
    add("tensor-count-max", header(M64, 0) + tinfo(W, [32], T_F32, 0), FORMAT,
        "tensor_count", "18446744073709551615")
    add("arr-count-past-eof",
        header(0, 1) + gstr("llama.scores") + u32(ARRAY) + u32(F32) + u64(1 << 62) + b"\0" * 16,
        FORMAT, "kv[0] 'llama.scores'", "array count 4611686018427387904")
    # 2^61 elements of 8 bytes: the byte count wraps to 0 in 64-bit arithmetic
    add("arr-count-wrap",
        header(0, 1) + gstr("x.ids") + u32(ARRAY) + u32(I64) + u64(1 << 61) + b"\0" * 16,
        FORMAT, "kv[0] 'x.ids'", "array count 2305843009213693952")
    add("arr-str-count-2p63",
        header(0, 1) + gstr("tokenizer.ggml.tokens") + u32(ARRAY) + u32(STRING) + u64(1 << 63) + gstr("a"),
        FORMAT, "kv[0] 'tokenizer.ggml.tokens'", "array count 9223372036854775808")

    # tensor dims whose product overflows
    add("dims-elements-overflow", one_tensor([1 << 32, 1 << 32], T_F32, data_len=0), FORMAT,
        "tensor 'a.weight' ne[1]", "element count overflow")
    add("dims-elements-overflow-4d", one_tensor([1 << 16] * 4, T_F32, data_len=0), FORMAT,
        "tensor 'a.weight' ne[3]", "element count overflow")
    add("dims-bytes-overflow", one_tensor([1 << 31, 1 << 31], T_F32, data_len=0), FORMAT,
        "tensor 'a.weight'", "byte size")
    # 1-D: the first multiply (blocks x block bytes) overflows. Quantized types cannot get here
    # once the element count fits 63 bits: they take at most 292/256 bytes per element.
    add("dims-bytes-overflow-1d", one_tensor([1 << 62], T_F32, data_len=0), FORMAT,
        "tensor 'a.weight'", "byte size of 4611686018427387904x1x1x1 F32")

    # tensor data outside the file
    add("data-offset-past-eof", one_tensor([8], T_F32, offset=4096), FORMAT,
        "tensor 'a.weight' offset", "4096")
    add("data-offset-wrap", one_tensor([8], T_F32, offset=(1 << 64) - 32), FORMAT,
        "tensor 'a.weight' offset", "18446744073709551584")
    add("data-end-past-eof", one_tensor([64], T_F32, data_len=32), FORMAT,
        "tensor 'a.weight' data", "256 bytes")
    add("offset-misaligned", one_tensor([8], T_F32, offset=4, data_len=64), FORMAT,
        "tensor 'a.weight' offset", "alignment 32")

    # types
    add("tensor-type-unknown", one_tensor([8], T_F32, raw_type=1000), FORMAT,
        "tensor 'a.weight' type", "unknown tensor type 1000")
    add("tensor-type-retired", one_tensor([8], T_F32, raw_type=31), FORMAT,
        "tensor 'a.weight' type", "unknown tensor type 31")
    add("arr-elem-type-unknown", header(0, 1) + gstr("x.arr") + u32(ARRAY) + u32(13) + u64(1) + b"\0" * 8,
        FORMAT, "kv[0] 'x.arr'", "array element type 13")
    add("arr-elem-type-max", header(0, 1) + gstr("x.arr") + u32(ARRAY) + u32(0xFFFFFFFF) + u64(1) + b"\0" * 8,
        FORMAT, "kv[0] 'x.arr'", "array element type 4294967295")
    add("arr-nested",
        header(0, 1) + gstr("x.arr") + u32(ARRAY) + u32(ARRAY) + u64(1) + u32(U8) + u64(1) + b"\1",
        FORMAT, "kv[0] 'x.arr'", "nested")
    add("value-type-unknown", header(0, 1) + gstr("general.name") + u32(13) + b"\0" * 8, FORMAT,
        "kv[0] 'general.name' value type", "unknown type 13")
    add("bool-value-bad", header(0, 1) + gstr("x.flag") + u32(BOOL) + b"\2", FORMAT,
        "kv[0] 'x.flag'", "bool value 2")

    # header
    add("magic-bad", b"GGML" + header(0, 0)[4:], FORMAT, "magic", "not a GGUF file")
    add("magic-truncated", b"GGU", FORMAT, "magic")
    add("version-1", header(0, 0, version=1), UNSUPPORTED, "version", "GGUF version 1")
    be = b"GGUF" + struct.pack(">I", 3) + struct.pack(">Q", 0) + struct.pack(">Q", 1) \
        + struct.pack(">Q", 12) + b"general.name" + struct.pack(">I", STRING) + struct.pack(">Q", 1) + b"x"
    add("version-big-endian", be, UNSUPPORTED, "version", "big-endian")
    add("truncated-header", header(0, 0)[:11], FORMAT, "tensor_count", "needs 8 bytes")
    add("truncated-tensor-info", header(1, 0) + tinfo(W, [8], T_F32, 0)[:-1], FORMAT,
        "tensor 'a.weight' offset", "needs 8 bytes but only 7 remain")

    # tensor shape
    add("n-dims-0", header(1, 0) + gstr(W) + u32(0) + u32(T_F32) + u64(0) + b"\0" * 24, FORMAT,
        "tensor 'a.weight' n_dims", "0 dimensions")
    add("n-dims-5", one_tensor([1, 1, 1, 1, 8], T_F32), FORMAT, "tensor 'a.weight' n_dims", "5 dimensions")
    add("dim-negative", one_tensor([8, -1], T_F32, data_len=32), FORMAT,
        "tensor 'a.weight' ne[1]", "negative")
    add("ne0-not-block-multiple", one_tensor([33, 2], T_Q4_0, data_len=64), FORMAT,
        "tensor 'a.weight' ne[0]", "block size 32")
    add("tensor-name-too-long", header(1, 0) + tinfo("x" * 64, [8], T_F32, 0) + b"\0" * 32, FORMAT,
        "tensor[0].name", "name length 64")

    # alignment
    add("alignment-not-pow2", one_tensor([8], T_F32, kvs=[kv("general.alignment", U32, 48)]), FORMAT,
        "general.alignment", "48 is not a power of two")
    add("alignment-zero", one_tensor([8], T_F32, kvs=[kv("general.alignment", U32, 0)]), FORMAT,
        "general.alignment", "0 is not a power of two")
    add("alignment-wrong-type", one_tensor([8], T_F32, kvs=[kv("general.alignment", U64, 32)]), FORMAT,
        "general.alignment", "expected u32")

    # duplicates and empty names
    add("key-duplicate",
        header(0, 2) + kv("general.name", STRING, "a") + kv("general.name", STRING, "b"), FORMAT,
        "kv[1] 'general.name'", "duplicate key")
    head = header(2, 0) + tinfo(W, [8], T_F32, 0) + tinfo(W, [8], T_F32, 32)
    add("tensor-name-duplicate", pad_to(head, 32) + b"\0" * 64, FORMAT,
        "tensor[1] 'a.weight'", "duplicate tensor name")
    add("key-empty", header(0, 1) + kv("", U32, 1), FORMAT, "kv[0].key", "empty key")
    return c


# ---- valid seed files -------------------------------------------------------

def seed_files():
    rng = random.Random(20240607)
    s = {}
    s["empty"] = header(0, 0)
    s["v2"] = gguf([kv("general.architecture", STRING, "llama"), kv("general.name", STRING, "v2 file")],
                   [("output_norm.weight", [16], T_F32)], version=2, rng=rng)
    scal = [kv("t.u8", U8, 200), kv("t.i8", I8, -100), kv("t.u16", U16, 60000), kv("t.i16", I16, -30000),
            kv("t.u32", U32, 4000000000), kv("t.i32", I32, -2000000000), kv("t.f32", F32, 0.5),
            kv("t.bool", BOOL, 1), kv("t.str", STRING, "h\u00e9llo \"q\"\n\t\\ end"),
            kv("t.u64", U64, (1 << 64) - 2), kv("t.i64", I64, -(1 << 62)), kv("t.f64", F64, -2.25)]
    arrs = [kv("a.u8", ARRAY, (U8, [0, 1, 255])), kv("a.i8", ARRAY, (I8, [-128, 127])),
            kv("a.u16", ARRAY, (U16, [65535])), kv("a.i16", ARRAY, (I16, [-1, 2, -3])),
            kv("a.u32", ARRAY, (U32, [1, 2, 3, 4])), kv("a.i32", ARRAY, (I32, [-7, 7])),
            kv("a.f32", ARRAY, (F32, [1.5, -0.25, 3.0])), kv("a.bool", ARRAY, (BOOL, [1, 0, 1])),
            kv("a.str", ARRAY, (STRING, ["", "a", "\u00fcnicode", "x" * 100, "\x00\x01\x7f"])),
            kv("a.u64", ARRAY, (U64, [(1 << 64) - 1, 0])), kv("a.i64", ARRAY, (I64, [-(1 << 63), 5])),
            kv("a.f64", ARRAY, (F64, [0.125])), kv("a.empty", ARRAY, (I32, [])),
            kv("a.empty_str", ARRAY, (STRING, []))]
    s["alltypes"] = gguf(scal + arrs, [], rng=rng)
    tensors = []
    for tt, (tn, blck, _) in sorted(TYPES.items()):
        ne = [blck * (2 if blck == 1 else 1)] + ([2] if tt % 3 == 0 else [])
        tensors.append(("t.%s" % tn.lower(), ne, tt))
    tensors.append(("t.zero", [4, 0], T_F32))
    tensors.append(("t.4d", [2, 3, 2, 2], T_F16))
    s["tensors"] = gguf([kv("general.architecture", STRING, "test")], tensors, rng=rng)
    s["align64"] = gguf([kv("general.alignment", U32, 64)],
                        [("a", [3], T_F32), ("b", [32], T_Q8_0), ("c", [5, 2], T_F16)], align=64, rng=rng)
    s["align1"] = gguf([kv("general.alignment", U32, 1)],
                       [("a", [3], T_F32), ("b", [7], T_I8), ("c", [5], T_F16)],
                       align=1, rng=rng)
    vocab = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(8)] + \
        ["\u2581the", "\u2581a", "\u2581cat", "\u2581sat", "\u2581on", "\u2581mat", "e", "s", "t", "\u2581"]
    n_vocab, dim, ff = len(vocab), 8, 16
    s["llama"] = gguf([
        kv("general.architecture", STRING, "llama"), kv("general.name", STRING, "tiny"),
        kv("llama.context_length", U32, 64), kv("llama.embedding_length", U32, dim),
        kv("llama.block_count", U32, 1), kv("llama.feed_forward_length", U32, ff),
        kv("llama.attention.head_count", U32, 2), kv("llama.attention.head_count_kv", U32, 1),
        kv("llama.attention.layer_norm_rms_epsilon", F32, 1e-5), kv("llama.rope.dimension_count", U32, 4),
        kv("tokenizer.ggml.model", STRING, "llama"), kv("tokenizer.ggml.tokens", ARRAY, (STRING, vocab)),
        kv("tokenizer.ggml.scores", ARRAY, (F32, [-float(i) for i in range(n_vocab)])),
        kv("tokenizer.ggml.token_type", ARRAY, (I32, [2, 3, 3] + [6] * 8 + [1] * (n_vocab - 11))),
        kv("tokenizer.ggml.bos_token_id", U32, 1), kv("tokenizer.ggml.eos_token_id", U32, 2)],
        [("token_embd.weight", [dim, n_vocab], T_F32), ("blk.0.attn_norm.weight", [dim], T_F32),
         ("blk.0.attn_q.weight", [dim, dim], T_F16), ("blk.0.attn_k.weight", [dim, dim // 2], T_F16),
         ("blk.0.attn_v.weight", [dim, dim // 2], T_F16), ("blk.0.attn_output.weight", [dim, dim], T_F16),
         ("blk.0.ffn_norm.weight", [dim], T_F32), ("blk.0.ffn_gate.weight", [dim, ff], T_F16),
         ("blk.0.ffn_up.weight", [dim, ff], T_F16), ("blk.0.ffn_down.weight", [ff, dim], T_F16),
         ("output_norm.weight", [dim], T_F32)], rng=rng)
    s["kquant"] = gguf([kv("general.architecture", STRING, "llama")],
                       [("blk.0.attn_q.weight", [256, 2], T_Q4_K), ("blk.0.attn_v.weight", [256, 1], T_Q6_K),
                        ("token_embd.weight", [512, 1], T_Q8_0)], rng=rng)
    return s


# Regression files left out of the fuzz corpus: a variant of another file there.
CORPUS_SKIP = {"str-key-len-max", "kv-count-max", "tensor-count-max", "arr-elem-type-max",
               "dims-elements-overflow-4d", "alignment-zero", "tensor-type-retired", "magic-truncated",
               "truncated-header", "version-1"}


def main(argv):
    root = "."
    if len(argv) >= 3 and argv[1] == "--out-root":
        root = argv[2]
    elif len(argv) > 1:
        sys.stderr.write(__doc__)
        return 2
    bad_dir = os.path.join(root, "tests/data/gguf-bad")
    corp_dir = os.path.join(root, "tests/fuzz/corpus/gguf")
    os.makedirs(bad_dir, exist_ok=True)
    os.makedirs(corp_dir, exist_ok=True)
    cases = bad_cases()
    names = [n for n, *_ in cases]
    assert len(set(names)) == len(names), "duplicate case name"
    manifest = ["# Written by tools/mkbadgguf.py: file, expected sl_gguf_open status, substrings of the",
                "# error message (the first names the bad field). Tab-separated."]
    for name, data, status, subs in cases:
        assert len(data) < 4096, name
        with open(os.path.join(bad_dir, name + ".gguf"), "wb") as f:
            f.write(data)
        if name not in CORPUS_SKIP:
            with open(os.path.join(corp_dir, "bad-" + name + ".gguf"), "wb") as f:
                f.write(data)
        manifest.append("\t".join([name + ".gguf", status] + subs))
    with open(os.path.join(bad_dir, "MANIFEST"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    for name, data in seed_files().items():
        assert len(data) < 8192, name
        with open(os.path.join(corp_dir, "seed-" + name + ".gguf"), "wb") as f:
            f.write(data)
    print("wrote %d regression files to %s; %d seeds and %d copies to %s"
          % (len(cases), bad_dir, len(seed_files()), len(cases) - len(CORPUS_SKIP), corp_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
