/*
 * fuzz_tokenizer.c — libFuzzer target for the tokenizers and the streaming
 * detokenizer (`make fuzz`), over the vocabularies of
 * ../shared/golden/tokenizer (SHARDLM_FUZZ_VOCAB_DIR to point elsewhere).
 *
 * Input: one selector byte (bits 0-2: the vocabulary; bit 3: parse special
 * tokens; bit 4: add BOS; bit 5: also detokenize the input's bytes read as
 * token ids), then text — any bytes.
 *
 * Checked: tokenizing any bytes succeeds, with every id in the vocabulary;
 * the byte-level BPE vocabularies are lossless — valid UTF-8 text tokenized
 * without special tokens comes back byte for byte from the pieces (gpt-2,
 * llama-bpe), or as its NFC form (qwen2, whose tokenizer normalizes); the streaming detokenizer, fed those ids (and arbitrary
 * ids) one at a time with the documented buffer, never fails and emits valid
 * UTF-8 only.
 *
 * tests/unit/test_tokenizer.c includes this file (FUZZ_TOKENIZER_NO_MAIN)
 * and replays tests/fuzz/corpus/tokenizer through fuzz_tokenizer_one().
 */
#include "tokenizer/tokenizer.h"

#include "core/alloc.h"
#include "core/strbuf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static void fuzz_tok_check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_tokenizer: invariant violated: %s\n", what);
        abort();
    }
}

static const char *const FUZZ_TOK_VOCABS[8] = {
    "ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf", "ggml-vocab-qwen2.gguf",
    "ggml-vocab-gpt-2.gguf",     "ggml-vocab-bert-bge.gguf",  "ggml-vocab-phi-3.gguf",
    "ggml-vocab-falcon.gguf",    "ggml-vocab-deepseek-coder.gguf",
};
/* Byte-level BPE with a lossless pre-tokenizer (indices into FUZZ_TOK_VOCABS);
 * qwen2 (2) gives back the NFC form. */
static bool fuzz_tok_lossless(int v) { return v == 1 || v == 2 || v == 3; }

static const sl_tokenizer *fuzz_tok_get(int v) {
    static sl_tokenizer *toks[8];
    if (!toks[v]) {
        const char *dir = getenv("SHARDLM_FUZZ_VOCAB_DIR");
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir ? dir : "../shared/golden/tokenizer", FUZZ_TOK_VOCABS[v]);
        sl_gguf *g = NULL;
        if (sl_gguf_open(path, &g) != SL_OK || sl_tokenizer_create(g, &toks[v]) != SL_OK) {
            fprintf(stderr, "fuzz_tokenizer: cannot load %s\n", path);
            abort();
        }
        sl_gguf_close(g);
    }
    return toks[v];
}

/* Stream ids through the detokenizer; the text (valid UTF-8) into *out (sl_malloc'd), its length returned. */
static size_t fuzz_tok_detok(const sl_tokenizer *t, const int32_t *ids, size_t n, char **out) {
    const size_t cap = 3 * (size_t)sl_tokenizer_max_piece(t) + 16;
    char *buf = sl_malloc(cap);
    size_t total = 0, room = 256;
    char *all = sl_malloc(room);
    fuzz_tok_check(buf && all, "memory");
    sl_detok d;
    sl_detok_init(&d, t, false);
    for (size_t i = 0; i <= n; i++) {
        const int64_t k = i < n ? sl_detok_push(&d, ids[i], buf, cap) : sl_detok_flush(&d, buf, cap);
        fuzz_tok_check(k >= 0, "the detokenizer takes every id with the documented buffer");
        fuzz_tok_check(sl_utf8_valid(buf, (size_t)k), "the detokenizer emits valid UTF-8");
        while (total + (size_t)k + 1 > room) room *= 2;
        char *na = sl_realloc(all, room);
        fuzz_tok_check(na != NULL, "memory");
        all = na;
        memcpy(all + total, buf, (size_t)k);
        total += (size_t)k;
    }
    sl_free(buf);
    all[total] = '\0';
    *out = all;
    return total;
}

/* Returns the number of tokens (aborts on a broken invariant). */
static size_t fuzz_tokenizer_one(const uint8_t *data, size_t len) {
    if (len < 1) return 0;
    const int v = data[0] & 7;
    const bool special = data[0] & 8, bos = data[0] & 16, raw_ids = data[0] & 32;
    const char *text = (const char *)data + 1;
    const size_t n = len - 1;
    const sl_tokenizer *t = fuzz_tok_get(v);
    const int32_t n_vocab = sl_tokenizer_n_vocab(t);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    fuzz_tok_check(sl_tokenize(t, text, n, bos, special, &ids, &n_ids) == SL_OK, "any bytes tokenize");
    for (size_t i = 0; i < n_ids; i++) fuzz_tok_check(ids[i] >= 0 && ids[i] < n_vocab, "ids in the vocabulary");
    char *back = NULL;
    const size_t nb = fuzz_tok_detok(t, ids, n_ids, &back);
    if (fuzz_tok_lossless(v) && !special && !bos && sl_utf8_valid(text, n) && !memchr(text, 0, n)) {
        char *z = sl_malloc(n + 1); /* NUL-terminated for utf8proc_NFC (a NUL would end it early) */
        fuzz_tok_check(z != NULL, "memory");
        memcpy(z, text, n);
        z[n] = '\0';
        char *want = v == 2 ? (char *)utf8proc_NFC((const utf8proc_uint8_t *)z) : z;
        fuzz_tok_check(want != NULL, "NFC");
        if (nb != strlen(want) || memcmp(back, want, nb) != 0) {
            fprintf(stderr, "in:  %s\nout: %s\n", want, back);
            fuzz_tok_check(0, "byte-level BPE gives valid UTF-8 text back byte for byte (qwen2: its NFC form)");
        }
        if (want != z) free(want);
        sl_free(z);
    }
    sl_free(back);
    const size_t count = n_ids;
    sl_free(ids);
    if (raw_ids && n >= 2) { /* the input's bytes as ids: any sequence of valid ids */
        size_t m = n / 2;
        int32_t *r = sl_malloc(sizeof *r * m);
        fuzz_tok_check(r != NULL, "memory");
        for (size_t i = 0; i < m; i++) r[i] = (int32_t)(((uint32_t)data[1 + 2 * i] << 8 | data[2 + 2 * i]) % (uint32_t)n_vocab);
        fuzz_tok_detok(t, r, m, &back);
        sl_free(back);
        sl_free(r);
    }
    return count;
}

#ifndef FUZZ_TOKENIZER_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_tokenizer_one(data, size);
    return 0;
}
#endif
