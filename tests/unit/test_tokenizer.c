/*
 * test_tokenizer.c — the SPM, byte-level BPE and WordPiece tokenizers
 * against llama.cpp / Hugging Face golden data, special tokens and the
 * end-of-generation sets, the streaming detokenizer, metadata validation
 * and speed.
 *
 * Golden: every .gguf file in ../shared/golden/tokenizer/ is loaded and, when it has
 * .inp/.out files, run over all of their cases (no BOS, parse_special =
 * false) against the .out ids; a file added there is covered without code
 * changes. The golden ids then stream back through the detokenizer to the
 * input text (exactly for BPE, with the dummy-prefix space for SPM; WordPiece
 * is lossy and is not decoded), and no push may emit a partial UTF-8
 * character. stories260K prompts come from llama.cpp's main.NN.json. Small
 * vocabularies for the edge cases are written in memory, with expected ids
 * worked out by hand from the SPM/BPE rules, never by the code under test.
 */
#include "harness.h"

#include "core/alloc.h"
#include "shardlm.h"
#include "tokenizer/pretok.h"
#include "tokenizer/tokenizer.h"

#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FUZZ_TOKENIZER_NO_MAIN
#include "../fuzz/fuzz_tokenizer.c"

#define GOLDEN_TOK "golden/tokenizer"
#define SEP "\n__ggml_vocab_test__\n"

/* ---- helpers ---------------------------------------------------------- */

static sl_tokenizer *load_tok(const char *path) {
    sl_gguf *g = NULL;
    sl_tokenizer *t = NULL;
    if (sl_gguf_open(path, &g)) {
        fprintf(stderr, "    open %s: %s\n", path, sl_last_error());
        return NULL;
    }
    if (sl_tokenizer_create(g, &t)) fprintf(stderr, "    tokenizer %s: %s\n", path, sl_last_error());
    sl_gguf_close(g); /* the tokenizer must not point into the file */
    return t;
}

static sl_tokenizer *load_shared(const char *rel) {
    const char *p = sl_test_shared(rel);
    if (!p) {
        fprintf(stderr, "    missing ../shared/%s\n", rel);
        return NULL;
    }
    return load_tok(p);
}

/* An independent UTF-8 check (for the "no partial character" property). */
static bool utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; }
        else return false;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000)) return false;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += k + 1;
    }
    return true;
}

/* Whole-stream decode: pushes every id, then flushes; NULL on an error or
 * when a push emits invalid UTF-8 (a partial character). Caller frees. */
static char *decode(const sl_tokenizer *t, const int32_t *ids, size_t n, bool special) {
    size_t cap = 3 * sl_tokenizer_max_piece(t) + 16, len = 0, all_cap = 64;
    char *buf = malloc(cap), *all = malloc(all_cap);
    sl_detok d;
    sl_detok_init(&d, t, special);
    for (size_t i = 0; i <= n; i++) {
        int64_t k = i < n ? sl_detok_push(&d, ids[i], buf, cap) : sl_detok_flush(&d, buf, cap);
        if (k < 0 || !utf8_valid((const unsigned char *)buf, (size_t)k)) {
            free(buf);
            free(all);
            return NULL;
        }
        while (len + (size_t)k + 1 > all_cap) all = realloc(all, all_cap *= 2);
        memcpy(all + len, buf, (size_t)k);
        len += (size_t)k;
    }
    all[len] = '\0';
    free(buf);
    return all;
}

static void fmt_ids(char *out, size_t cap, const int32_t *ids, size_t n) {
    size_t k = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && k + 16 < cap; i++) k += (size_t)snprintf(out + k, cap - k, " %d", ids[i]);
}

/* Parse " 1 2 3" (one .out line) into ids; returns the count. */
static size_t parse_ids(const char *line, size_t len, int32_t *ids, size_t cap) {
    size_t n = 0;
    const char *p = line, *end = line + len;
    while (p < end && n < cap) {
        while (p < end && *p == ' ') p++;
        if (p >= end) break;
        ids[n++] = (int32_t)strtol(p, (char **)&p, 10);
    }
    return n;
}

/* ---- golden vocab files ----------------------------------------------- */

/* Run every case of X.gguf.inp/.out; returns the number of cases, -1 on failure. */
static int run_vocab_cases(const sl_tokenizer *t, const char *gguf_path) {
    char pin[1024], pout[1024];
    snprintf(pin, sizeof pin, "%s.inp", gguf_path);
    snprintf(pout, sizeof pout, "%s.out", gguf_path);
    size_t lin, lout;
    char *inp = sl_test_read_file(pin, &lin), *outp = sl_test_read_file(pout, &lout);
    int n_cases = 0, ret = -1;
    int32_t want[4096];
    sl_vocab_type vt = sl_tokenizer_type(t);
    if (!inp || !outp) {
        sl_test_fail(__FILE__, __LINE__, "cannot read %s / %s", pin, pout);
        goto done;
    }
    const char *ip = inp, *iend = inp + lin, *op = outp, *oend = outp + lout;
    while (ip < iend) {
        const char *sep = memmem(ip, (size_t)(iend - ip), SEP, strlen(SEP));
        size_t tlen = sep ? (size_t)(sep - ip) : (size_t)(iend - ip);
        if (!sep && tlen == 0) break;
        if (op >= oend) {
            sl_test_fail(__FILE__, __LINE__, "%s: more cases than lines in .out (case %d)", pin, n_cases);
            goto done;
        }
        const char *nl = memchr(op, '\n', (size_t)(oend - op));
        size_t olen = nl ? (size_t)(nl - op) : (size_t)(oend - op);
        size_t n_want = parse_ids(op, olen, want, 4096);

        int32_t *ids = NULL;
        size_t n_ids = 0;
        if (sl_tokenize(t, ip, tlen, false, false, &ids, &n_ids)) {
            sl_test_fail(__FILE__, __LINE__, "%s case %d: tokenize failed: %s", pin, n_cases, sl_last_error());
            goto done;
        }
        bool same = n_ids == n_want && (n_ids == 0 || memcmp(ids, want, n_ids * sizeof *ids) == 0);
        if (!same) {
            char a[2048], b[2048];
            fmt_ids(a, sizeof a, ids, n_ids);
            fmt_ids(b, sizeof b, want, n_want);
            sl_free(ids);
            sl_test_fail(__FILE__, __LINE__, "%s case %d \"%.*s\":\n      got %s\n     want %s", pin, n_cases,
                         (int)tlen, ip, a, b);
            goto done;
        }
        sl_free(ids);
        /* round trip of the golden ids: the text comes back (SPM: with the
         * dummy-prefix space), streamed without partial characters */
        if (vt != SL_VOCAB_WPM) {
            char *back = decode(t, want, n_want, false);
            size_t pre = (tlen > 0 && sl_tokenizer_add_space_prefix(t)) ? 1 : 0;
            bool rt = back && strlen(back) == tlen + pre && (!pre || back[0] == ' ') &&
                      memcmp(back + pre, ip, tlen) == 0;
            if (!rt) {
                sl_test_fail(__FILE__, __LINE__, "%s case %d: round trip \"%.*s\" gave \"%s\"", pin, n_cases,
                             (int)tlen, ip, back ? back : "(error or partial UTF-8)");
                free(back);
                goto done;
            }
            free(back);
        }
        n_cases++;
        ip = sep ? sep + strlen(SEP) : iend;
        op = nl ? nl + 1 : oend;
    }
    if (op < oend) {
        sl_test_fail(__FILE__, __LINE__, "%s: .out has more lines than .inp has cases (%d)", pout, n_cases);
        goto done;
    }
    ret = n_cases;
done:
    free(inp);
    free(outp);
    return ret;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

TEST(golden_vocab_files) {
    const char *dir = sl_test_shared(GOLDEN_TOK);
    CHECK_MSG(dir, "missing ../shared/%s", GOLDEN_TOK);
    DIR *dh = opendir(dir);
    CHECK(dh);
    int n_files = 0, n_with_cases = 0;
    bool seen[3] = {false, false, false}; /* SPM, BPE, WPM files with cases */
    struct dirent *e;
    char path[1024];
    while ((e = readdir(dh))) {
        size_t nl = strlen(e->d_name);
        if (nl < 5 || strcmp(e->d_name + nl - 5, ".gguf") != 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char pin[1100];
        snprintf(pin, sizeof pin, "%s.inp", path);
        double t0 = now_ms();
        sl_tokenizer *t = load_tok(path);
        double ms = now_ms() - t0;
        if (!t) {
            closedir(dh);
            CHECK_MSG(0, "%s: cannot load", path);
        }
        n_files++;
        if (access(pin, R_OK) != 0) {
            printf("    %s: no test cases (loaded in %.0f ms)\n", e->d_name, ms);
            sl_tokenizer_destroy(t);
            continue;
        }
        int n = run_vocab_cases(t, path);
        sl_vocab_type vt = sl_tokenizer_type(t);
        printf("    %s (%s, pre %s): %d cases, loaded in %.0f ms\n", e->d_name,
               vt == SL_VOCAB_SPM ? "SPM" : vt == SL_VOCAB_BPE ? "BPE" : "WPM", sl_tokenizer_pre(t), n, ms);
        sl_tokenizer_destroy(t);
        if (n < 0) {
            closedir(dh);
            return;
        }
        n_with_cases++;
        if (n > 0) seen[vt - 1] = true;
    }
    closedir(dh);
    CHECK_MSG(seen[0] && seen[1] && seen[2], "golden files of every vocabulary type: SPM %d BPE %d WPM %d", seen[0],
              seen[1], seen[2]);
    CHECK(n_with_cases >= 12);
    CHECK(n_files >= n_with_cases);
}

/* ---- stories260K ------------------------------------------------------ */

TEST(stories260k_prompts) {
    sl_tokenizer *t = load_shared("models/stories260K.gguf");
    CHECK(t);
    CHECK_EQ_INT(sl_tokenizer_n_vocab(t), 512);
    CHECK_EQ_INT(sl_tokenizer_bos(t), 1);
    CHECK_EQ_INT(sl_tokenizer_eos(t), 2);
    CHECK(sl_tokenizer_add_bos(t));
    int n_files = 0;
    for (int nn = 0; nn < 100; nn++) {
        char rel[64];
        snprintf(rel, sizeof rel, "golden/stories260K/main.%02d.json", nn);
        const char *p = sl_test_shared(rel);
        if (!p) break;
        json_error_t jerr;
        json_t *j = json_load_file(p, 0, &jerr);
        CHECK_MSG(j, "%s: %s", p, jerr.text);
        const char *prompt = json_string_value(json_object_get(j, "prompt"));
        json_t *want = json_object_get(j, "prompt_token_ids");
        json_t *pieces = json_object_get(j, "prompt_pieces");
        json_t *gen = json_object_get(j, "generated_token_ids");
        const char *gen_text = json_string_value(json_object_get(j, "generated_text"));
        bool shape = prompt && json_is_array(want) && json_is_array(pieces) && json_is_array(gen) && gen_text;
        int32_t *ids = NULL;
        size_t n_ids = 0;
        sl_status st = shape ? sl_tokenize(t, prompt, strlen(prompt), sl_tokenizer_add_bos(t), true, &ids, &n_ids)
                             : SL_ERR_FORMAT;
        bool same = st == SL_OK && n_ids == json_array_size(want);
        for (size_t i = 0; same && i < n_ids; i++) same = ids[i] == json_integer_value(json_array_get(want, i));
        char got[1024] = "";
        fmt_ids(got, sizeof got, ids, n_ids);
        /* pieces as llama.cpp rendered them (special = true: "<s>") */
        bool pieces_ok = same && json_array_size(pieces) == n_ids;
        for (size_t i = 0; pieces_ok && i < n_ids; i++) {
            char buf[256];
            int64_t k = sl_token_to_piece(t, ids[i], true, buf, sizeof buf);
            const char *wp = json_string_value(json_array_get(pieces, i));
            pieces_ok = k >= 0 && wp && strlen(wp) == (size_t)k && memcmp(buf, wp, (size_t)k) == 0;
        }
        /* the generated ids stream back to llama.cpp's generated text */
        size_t n_gen = json_array_size(gen);
        int32_t *gids = calloc(n_gen + 1, sizeof *gids);
        for (size_t i = 0; i < n_gen; i++) gids[i] = (int32_t)json_integer_value(json_array_get(gen, i));
        char *text = decode(t, gids, n_gen, false);
        bool text_ok = text && !strcmp(text, gen_text);
        free(text);
        free(gids);
        sl_free(ids);
        json_decref(j);
        CHECK_MSG(shape, "%s: unexpected JSON layout", p);
        CHECK_MSG(st == SL_OK, "%s: %s", p, sl_last_error());
        CHECK_MSG(same, "%s: prompt ids%s differ from prompt_token_ids", p, got);
        CHECK_MSG(pieces_ok, "%s: pieces differ from prompt_pieces", p);
        CHECK_MSG(text_ok, "%s: decoded generated ids differ from generated_text", p);
        n_files++;
    }
    sl_tokenizer_destroy(t);
    CHECK_MSG(n_files >= 6, "only %d main.NN.json files", n_files);
}

/* ---- llama-spm / phi-3 specifics -------------------------------------- */

static bool ids_eq(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

#define CHECK_TOKENS(t, text, bos, special, ...)                                                  \
    do {                                                                                          \
        const int32_t want_[] = {__VA_ARGS__};                                                    \
        size_t nw_ = sizeof want_ / sizeof want_[0];                                              \
        int32_t *ids_ = NULL;                                                                     \
        size_t n_ = 0;                                                                            \
        CHECK_OK(sl_tokenize((t), (text), strlen(text), (bos), (special), &ids_, &n_));           \
        char g_[512], w_[512];                                                                    \
        fmt_ids(g_, sizeof g_, ids_, n_);                                                         \
        fmt_ids(w_, sizeof w_, want_, nw_);                                                       \
        bool eq_ = ids_eq(ids_, n_, want_, nw_);                                                  \
        sl_free(ids_);                                                                            \
        CHECK_MSG(eq_, "tokenize \"%s\": got%s, want%s", (text), g_, w_);                         \
    } while (0)

TEST(llama_spm_metadata_and_pieces) {
    sl_tokenizer *t = load_shared(GOLDEN_TOK "/ggml-vocab-llama-spm.gguf");
    CHECK(t);
    CHECK_EQ_INT(sl_tokenizer_n_vocab(t), 32000);
    CHECK_EQ_INT(sl_tokenizer_bos(t), 1);
    CHECK_EQ_INT(sl_tokenizer_eos(t), 2);
    CHECK_EQ_INT(sl_tokenizer_unk(t), 0);
    CHECK(sl_tokenizer_add_bos(t));
    CHECK(!sl_tokenizer_add_eos(t));
    CHECK(sl_tokenizer_is_eog(t, 2));
    CHECK(!sl_tokenizer_is_eog(t, 1));
    CHECK(!sl_tokenizer_is_eog(t, -1));
    CHECK(!sl_tokenizer_is_eog(t, 32000));
    CHECK_EQ_INT(sl_tokenizer_token_type(t, 0), SL_TOKEN_UNKNOWN);
    CHECK_EQ_INT(sl_tokenizer_token_type(t, 1), SL_TOKEN_CONTROL);
    CHECK_EQ_INT(sl_tokenizer_token_type(t, 13), SL_TOKEN_BYTE);
    size_t len = 0;
    const char *txt = sl_tokenizer_token_text(t, 15043, &len);
    CHECK(txt && len == 8 && !memcmp(txt, "\xe2\x96\x81Hello", 8));
    CHECK(sl_tokenizer_token_text(t, 32000, NULL) == NULL);
    CHECK_EQ_INT(sl_tokenizer_find(t, "\xe2\x96\x81Hello", 8), 15043);
    CHECK_EQ_INT(sl_tokenizer_find(t, "no such token here", 18), -1);

    char buf[64];
    CHECK_EQ_INT(sl_token_to_piece(t, 15043, false, buf, sizeof buf), 6);
    CHECK_STR(buf, " Hello");
    CHECK_EQ_INT(sl_token_to_piece(t, 13, false, buf, sizeof buf), 1); /* <0x0A> */
    CHECK_STR(buf, "\n");
    CHECK_EQ_INT(sl_token_to_piece(t, 1, false, buf, sizeof buf), 0);
    CHECK_EQ_INT(sl_token_to_piece(t, 1, true, buf, sizeof buf), 3);
    CHECK_STR(buf, "<s>");
    CHECK_EQ_INT(sl_token_to_piece(t, 0, false, buf, sizeof buf), 0);
    CHECK_EQ_INT(sl_token_to_piece(t, 0, true, buf, sizeof buf), 5);
    CHECK_STR(buf, "<unk>");
    CHECK_EQ_INT(sl_token_to_piece(t, 15043, false, buf, 3), 6); /* too small: full length */
    CHECK(!memcmp(buf, " He", 3));
    CHECK_EQ_INT(sl_token_to_piece(t, -1, false, buf, sizeof buf), -1);
    CHECK_EQ_INT(sl_token_to_piece(t, 32000, false, buf, sizeof buf), -1);
    sl_tokenizer_destroy(t);
}

TEST(llama_spm_special_and_bos) {
    sl_tokenizer *t = load_shared(GOLDEN_TOK "/ggml-vocab-llama-spm.gguf");
    CHECK(t);
    /* ids from the golden .out: "Hello world" = 15043 3186 */
    CHECK_TOKENS(t, "Hello world", true, false, 1, 15043, 3186);
    CHECK_TOKENS(t, "", true, false, 1);
    int32_t *ids = NULL;
    size_t n = 99;
    CHECK_OK(sl_tokenize(t, "", 0, false, false, &ids, &n));
    CHECK_EQ_INT(n, 0);
    sl_free(ids);
    /* parse_special: "<s>" is BOS, the text after it gets the dummy prefix */
    CHECK_TOKENS(t, "<s>Hello world", false, true, 1, 15043, 3186);
    CHECK_TOKENS(t, "Hello world</s>", false, true, 15043, 3186, 2);
    CHECK_TOKENS(t, "<s>", true, true, 1, 1);
    /* without parse_special the control text is plain text: no 1 or 2 */
    CHECK_OK(sl_tokenize(t, "<s>Hello</s>", 12, false, false, &ids, &n));
    bool has_ctl = false;
    for (size_t i = 0; i < n; i++) has_ctl |= ids[i] == 1 || ids[i] == 2;
    char *back = decode(t, ids, n, false);
    sl_free(ids);
    CHECK(!has_ctl);
    CHECK(back);
    CHECK_STR(back, " <s>Hello</s>");
    free(back);
    sl_tokenizer_destroy(t);
}

TEST(phi3_special_tokens) {
    sl_tokenizer *t = load_shared(GOLDEN_TOK "/ggml-vocab-phi-3.gguf");
    CHECK(t);
    CHECK_EQ_INT(sl_tokenizer_n_vocab(t), 32064);
    CHECK_EQ_INT(sl_tokenizer_eos(t), 32000);
    CHECK_EQ_INT(sl_tokenizer_pad(t), 32000);
    CHECK(sl_tokenizer_is_eog(t, 32000)); /* <|endoftext|> */
    CHECK(sl_tokenizer_is_eog(t, 32007)); /* <|end|> */
    CHECK(!sl_tokenizer_is_eog(t, 32010)); /* <|user|> */
    CHECK(sl_tokenizer_eot(t) == 32000 || sl_tokenizer_eot(t) == 32007);
    /* Phi-3 special tokens strip the whitespace on their right (llama.cpp) */
    CHECK_TOKENS(t, "<|user|>\nHello world<|end|>\n", false, true, 32010, 15043, 3186, 32007);
    CHECK_TOKENS(t, "<|user|>  Hello", true, true, 1, 32010, 15043);
    char buf[32];
    CHECK_EQ_INT(sl_token_to_piece(t, 32010, false, buf, sizeof buf), 0);
    CHECK_EQ_INT(sl_token_to_piece(t, 32010, true, buf, sizeof buf), 8);
    CHECK_STR(buf, "<|user|>");
    sl_tokenizer_destroy(t);
}

/* ---- streaming detokenizer -------------------------------------------- */

TEST(detok_multibyte_split_across_byte_tokens) {
    sl_tokenizer *t = load_shared(GOLDEN_TOK "/ggml-vocab-llama-spm.gguf");
    CHECK(t);
    /* golden: " this is 🦙.cpp" → 29871 445 338 29871 243 162 169 156 29889 8223;
     * 243..156 are the byte tokens <0xF0> <0x9F> <0xA6> <0x99> */
    const int32_t ids[] = {29871, 445, 338, 29871, 243, 162, 169, 156, 29889, 8223};
    const size_t n = sizeof ids / sizeof ids[0];
    size_t len;
    const char *bt = sl_tokenizer_token_text(t, 243, &len);
    CHECK(bt && len == 6 && !memcmp(bt, "<0xF0>", 6));
    sl_detok d;
    sl_detok_init(&d, t, false);
    char out[512], all[512] = "";
    const int64_t want_len[] = {1, 5, 3, 1, 0, 0, 0, 4, 1, 3};
    for (size_t i = 0; i < n; i++) {
        int64_t k = sl_detok_push(&d, ids[i], out, sizeof out);
        CHECK_EQ_INT(k, want_len[i]);
        CHECK_EQ_INT(strlen(out), k);
        CHECK_MSG(utf8_valid((const unsigned char *)out, (size_t)k), "partial UTF-8 after token %zu", i);
        strcat(all, out);
    }
    CHECK_EQ_INT(sl_detok_flush(&d, out, sizeof out), 0);
    CHECK_STR(all, "  this is \xf0\x9f\xa6\x99.cpp");
    char *whole = decode(t, ids, n, false);
    CHECK(whole);
    CHECK_STR(whole, all);
    free(whole);

    /* too small a buffer consumes nothing */
    sl_detok_init(&d, t, false);
    for (size_t i = 4; i < 7; i++) CHECK_EQ_INT(sl_detok_push(&d, ids[i], out, sizeof out), 0);
    CHECK_EQ_INT(sl_detok_push(&d, 156, out, 4), -1);
    CHECK_EQ_INT(sl_detok_push(&d, 156, out, 5), 4);
    CHECK_STR(out, "\xf0\x9f\xa6\x99");
    CHECK_EQ_INT(sl_detok_push(&d, -5, out, sizeof out), -1);
    CHECK_EQ_INT(sl_detok_push(&d, 32000, out, sizeof out), -1);
    sl_tokenizer_destroy(t);
}

/* byte token id for a raw byte in the llama-spm vocab: <0x00> is id 3 */
static int32_t B(unsigned b) { return (int32_t)b + 3; }

static bool detok_case(const sl_tokenizer *t, const int32_t *ids, size_t n, const char *want, char *got, size_t cap) {
    char *s = decode(t, ids, n, false);
    if (!s) return false;
    snprintf(got, cap, "%s", s);
    bool ok = !strcmp(s, want);
    free(s);
    return ok;
}

#define FFFD "\xef\xbf\xbd"
#define CHECK_DETOK(t, want, ...)                                                      \
    do {                                                                               \
        const int32_t ids_[] = {__VA_ARGS__};                                          \
        char got_[256];                                                                \
        bool ok_ = detok_case((t), ids_, sizeof ids_ / sizeof ids_[0], (want), got_, sizeof got_); \
        CHECK_MSG(ok_, "detok %s: got \"%s\" want \"%s\"", #__VA_ARGS__, got_, (want)); \
    } while (0)

/* A tool request shows only the control tokens of its syntax (sl_detok_show): Llama 3's vocabulary,
 * <|start_header_id|> = 128006 and <|end_header_id|> = 128007 (control tokens, ids from the golden file). */
TEST(detok_shows_only_the_listed_control_tokens) {
    sl_tokenizer *t = load_shared(GOLDEN_TOK "/ggml-vocab-llama-bpe.gguf");
    if (!t) return;
    CHECK_EQ_INT(sl_tokenizer_find(t, "<|start_header_id|>", 19), 128006);
    CHECK_EQ_INT(sl_tokenizer_token_type(t, 128007), SL_TOKEN_CONTROL);
    sl_detok d;
    char out[64];
    sl_detok_init(&d, t, false);
    const int32_t show[] = {128006};
    sl_detok_show(&d, show, 1);
    CHECK_EQ_INT(sl_detok_push(&d, 128006, out, sizeof out), 19);
    CHECK_STR(out, "<|start_header_id|>");
    CHECK_EQ_INT(sl_detok_push(&d, 128007, out, sizeof out), 0);
    sl_detok_show(&d, NULL, 0);
    CHECK_EQ_INT(sl_detok_push(&d, 128006, out, sizeof out), 0);
    sl_tokenizer_destroy(t);
}

TEST(detok_invalid_utf8) {
    sl_tokenizer *t = load_shared(GOLDEN_TOK "/ggml-vocab-llama-spm.gguf");
    CHECK(t);
    CHECK_EQ_INT(sl_tokenizer_find(t, "<0x41>", 6), B(0x41));
    CHECK_DETOK(t, FFFD, B(0xFF));                                    /* never a lead byte */
    CHECK_DETOK(t, FFFD "A", B(0x80), B(0x41));                       /* stray continuation */
    CHECK_DETOK(t, FFFD "A", B(0xC3), B(0x41));                       /* lead, then ASCII */
    CHECK_DETOK(t, "\xc3\xa9", B(0xC3), B(0xA9));                     /* é */
    CHECK_DETOK(t, FFFD, B(0xE2), B(0x96));                           /* truncated at the end */
    CHECK_DETOK(t, FFFD FFFD, B(0xC0), B(0xAF));                      /* overlong: C0 never leads */
    CHECK_DETOK(t, FFFD FFFD FFFD, B(0xED), B(0xA0), B(0x80));        /* surrogate */
    CHECK_DETOK(t, FFFD FFFD FFFD, B(0xE0), B(0x80), B(0xAF));        /* overlong 3-byte */
    CHECK_DETOK(t, FFFD "A", B(0xF0), B(0x9F), B(0xA6), B(0x41));     /* 4-byte cut short */
    CHECK_DETOK(t, FFFD FFFD FFFD FFFD, B(0xF4), B(0x90), B(0x80), B(0x80)); /* > U+10FFFF */
    CHECK_DETOK(t, FFFD "\xc3\xa9", B(0xE2), B(0xC3), B(0xA9));       /* new lead restarts */
    CHECK_DETOK(t, "\xf4\x8f\xbf\xbf", B(0xF4), B(0x8F), B(0xBF), B(0xBF)); /* U+10FFFF */
    /* control tokens render only with special */
    CHECK_DETOK(t, " Hello", 1, 15043, 2);
    sl_detok d;
    char out[64];
    sl_detok_init(&d, t, true);
    CHECK_EQ_INT(sl_detok_push(&d, 1, out, sizeof out), 3);
    CHECK_STR(out, "<s>");
    /* flush of an incomplete character */
    CHECK_EQ_INT(sl_detok_push(&d, B(0xE2), out, sizeof out), 0);
    CHECK_EQ_INT(sl_detok_flush(&d, out, 3), -1); /* no room for U+FFFD and the NUL */
    CHECK_EQ_INT(sl_detok_flush(&d, out, sizeof out), 3);
    CHECK_STR(out, FFFD);
    CHECK_EQ_INT(sl_detok_flush(&d, out, sizeof out), 0);
    sl_tokenizer_destroy(t);
}

/* ---- in-memory vocabularies -------------------------------------------- */

typedef struct gb {
    unsigned char *p;
    size_t n, cap;
    uint64_t n_kv;
} gb;

static void gb_put(gb *b, const void *d, size_t n) {
    while (b->n + n > b->cap) b->p = realloc(b->p, b->cap = b->cap ? b->cap * 2 : 256);
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void gb_u32(gb *b, uint32_t v) { gb_put(b, &v, 4); }
static void gb_u64(gb *b, uint64_t v) { gb_put(b, &v, 8); }
static void gb_str(gb *b, const char *s) {
    gb_u64(b, strlen(s));
    gb_put(b, s, strlen(s));
}
static void gb_begin(gb *b) {
    memset(b, 0, sizeof *b);
    gb_put(b, "GGUF", 4);
    gb_u32(b, 3);
    gb_u64(b, 0); /* tensors */
    gb_u64(b, 0); /* kv count, patched by gb_end */
}
static void gb_end(gb *b) {
    memcpy(b->p + 16, &b->n_kv, 8);
    while (b->n % 32) gb_put(b, "", 1);
}
static void kv_head(gb *b, const char *key, uint32_t type) {
    gb_str(b, key);
    gb_u32(b, type);
    b->n_kv++;
}
static void kv_str(gb *b, const char *key, const char *v) {
    kv_head(b, key, SL_GGUF_STRING);
    gb_str(b, v);
}
static void kv_u32(gb *b, const char *key, uint32_t v) {
    kv_head(b, key, SL_GGUF_U32);
    gb_u32(b, v);
}
static void kv_bool(gb *b, const char *key, bool v) {
    kv_head(b, key, SL_GGUF_BOOL);
    unsigned char c = v;
    gb_put(b, &c, 1);
}
static void kv_arr_str(gb *b, const char *key, const char *const *v, size_t n) {
    kv_head(b, key, SL_GGUF_ARRAY);
    gb_u32(b, SL_GGUF_STRING);
    gb_u64(b, n);
    for (size_t i = 0; i < n; i++) gb_str(b, v[i]);
}
static void kv_arr_num(gb *b, const char *key, sl_gguf_vtype et, const void *v, size_t n) {
    kv_head(b, key, SL_GGUF_ARRAY);
    gb_u32(b, et);
    gb_u64(b, n);
    gb_put(b, v, 4 * n);
}

/* A small SPM vocabulary: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>,
 * then the words below. Options tweak it for the error cases. */
enum { W0 = 259 };
static const char *const WORDS[] = {
    "\xe2\x96\x81", "a", "b", "c", "ab", "bc", "x", "y", "z", "xy", "yz", "\xe2\x96\x81\x61", "<tool>", "aa",
};
static const float WSCORE[] = {-1, -5, -5, -5, -1, -1, -5, -5, -5, -2, -1, -3, 0, -4};
enum { T_SP = W0, T_A, T_B, T_C, T_AB, T_BC, T_X, T_Y, T_Z, T_XY, T_YZ, T_SPA, T_TOOL, T_AA, N_SMALL };

typedef struct vopt {
    const char *model;
    bool no_tokens, tokens_u32, short_scores, types_f32, dup, bad_byte;
    bool prefix_off, add_bos_u32;
    int64_t bos; /* -1: key absent */
} vopt;

static unsigned char *small_vocab(const vopt *o, size_t *len) {
    static char bytes[256][8];
    const char *tok[N_SMALL];
    float score[N_SMALL];
    int32_t type[N_SMALL];
    tok[0] = "<unk>", tok[1] = "<s>", tok[2] = "</s>";
    type[0] = SL_TOKEN_UNKNOWN, type[1] = type[2] = SL_TOKEN_CONTROL;
    for (int i = 0; i < 256; i++) {
        snprintf(bytes[i], sizeof bytes[i], "<0x%02X>", i);
        tok[3 + i] = bytes[i];
        type[3 + i] = SL_TOKEN_BYTE;
    }
    for (int i = 0; i < N_SMALL - W0; i++) {
        tok[W0 + i] = WORDS[i];
        type[W0 + i] = SL_TOKEN_NORMAL;
    }
    type[T_TOOL] = SL_TOKEN_USER_DEFINED;
    for (int i = 0; i < N_SMALL; i++) score[i] = i < W0 ? 0.0f : WSCORE[i - W0];
    if (o->dup) tok[T_BC] = "ab";
    if (o->bad_byte) tok[3 + 0x41] = "<0xZZ>";

    gb b;
    gb_begin(&b);
    kv_str(&b, "general.name", "small");
    kv_str(&b, "tokenizer.ggml.model", o->model ? o->model : "llama");
    if (!o->no_tokens) {
        if (o->tokens_u32) {
            uint32_t u[N_SMALL] = {0};
            kv_arr_num(&b, "tokenizer.ggml.tokens", SL_GGUF_U32, u, N_SMALL);
        } else {
            kv_arr_str(&b, "tokenizer.ggml.tokens", tok, N_SMALL);
        }
    }
    kv_arr_num(&b, "tokenizer.ggml.scores", SL_GGUF_F32, score, o->short_scores ? N_SMALL - 1 : N_SMALL);
    kv_arr_num(&b, "tokenizer.ggml.token_type", o->types_f32 ? SL_GGUF_F32 : SL_GGUF_I32, type, N_SMALL);
    if (o->bos >= 0) kv_u32(&b, "tokenizer.ggml.bos_token_id", (uint32_t)o->bos);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", 2);
    if (o->add_bos_u32) kv_u32(&b, "tokenizer.ggml.add_bos_token", 1);
    if (o->prefix_off) kv_bool(&b, "tokenizer.ggml.add_space_prefix", false);
    gb_end(&b);
    *len = b.n;
    return b.p;
}

/* Create from an in-memory vocab; returns the status, the message in msg. */
static sl_status small_create(const vopt *o, sl_tokenizer **t, char *msg, size_t cap) {
    size_t len;
    unsigned char *img = small_vocab(o, &len);
    sl_gguf *g = NULL;
    *t = NULL;
    sl_status st = sl_gguf_open_memory(img, len, &g);
    if (!st) st = sl_tokenizer_create(g, t);
    snprintf(msg, cap, "%s", st ? sl_last_error() : "");
    sl_gguf_close(g);
    free(img);
    return st;
}

TEST(small_vocab_merges) {
    vopt o = {.bos = 1, .prefix_off = true};
    sl_tokenizer *t;
    char msg[512];
    CHECK_MSG(small_create(&o, &t, msg, sizeof msg) == SL_OK, "%s", msg);
    CHECK(!sl_tokenizer_add_space_prefix(t));
    /* "ab" and "bc" both score -1: the leftmost pair merges first */
    CHECK_TOKENS(t, "abc", false, false, T_AB, T_C);
    /* "yz" (-1) beats "xy" (-2) */
    CHECK_TOKENS(t, "xyz", false, false, T_X, T_YZ);
    /* "aa" (-4): aaa → (aa)a, leftmost */
    CHECK_TOKENS(t, "aaa", false, false, T_AA, T_A);
    /* characters outside the vocabulary fall back to their bytes */
    CHECK_TOKENS(t, "a\xc3\xa9", false, false, T_A, 3 + 0xC3, 3 + 0xA9);
    /* no prefix: a space is just "▁" */
    CHECK_TOKENS(t, "a b", false, false, T_A, T_SP, T_B);
    /* user-defined tokens are split out even without parse_special */
    CHECK_TOKENS(t, "a<tool>b", true, false, 1, T_A, T_TOOL, T_B);
    char buf[16];
    CHECK_EQ_INT(sl_token_to_piece(t, T_TOOL, false, buf, sizeof buf), 6);
    CHECK_STR(buf, "<tool>");
    CHECK_EQ_INT(sl_token_to_piece(t, T_SPA, false, buf, sizeof buf), 2);
    CHECK_STR(buf, " a");
    sl_tokenizer_destroy(t);

    /* with the dummy prefix: "▁a" merges; after <tool> the prefix is added again */
    o.prefix_off = false;
    CHECK_MSG(small_create(&o, &t, msg, sizeof msg) == SL_OK, "%s", msg);
    CHECK(sl_tokenizer_add_space_prefix(t));
    CHECK_TOKENS(t, "a<tool>b", false, false, T_SPA, T_TOOL, T_SP, T_B);
    CHECK_TOKENS(t, " ", false, false, T_SP, T_SP);
    CHECK_TOKENS(t, "<tool>", false, false, T_TOOL);
    CHECK_TOKENS(t, "<s>a", false, true, 1, T_SPA);
    sl_tokenizer_destroy(t);
}

TEST(small_vocab_errors) {
    sl_tokenizer *t;
    char msg[512];
    struct {
        vopt o;
        sl_status st;
        const char *needle;
    } cases[] = {
        {{.bos = 1, .model = "t5"}, SL_ERR_UNSUPPORTED, "t5"},
        {{.bos = 1, .no_tokens = true}, SL_ERR_FORMAT, "tokenizer.ggml.tokens"},
        {{.bos = 1, .tokens_u32 = true}, SL_ERR_FORMAT, "tokenizer.ggml.tokens"},
        {{.bos = 1, .short_scores = true}, SL_ERR_FORMAT, "tokenizer.ggml.scores"},
        {{.bos = 1, .types_f32 = true}, SL_ERR_FORMAT, "tokenizer.ggml.token_type"},
        {{.bos = 1, .dup = true}, SL_ERR_FORMAT, "duplicate"},
        {{.bos = 1, .bad_byte = true}, SL_ERR_FORMAT, "<0xZZ>"},
        {{.bos = 4000}, SL_ERR_FORMAT, "tokenizer.ggml.bos_token_id"},
        {{.bos = 1, .add_bos_u32 = true}, SL_ERR_FORMAT, "tokenizer.ggml.add_bos_token"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_status st = small_create(&cases[i].o, &t, msg, sizeof msg);
        sl_tokenizer_destroy(t);
        CHECK_MSG(st == cases[i].st, "case %zu: status %d, want %d (%s)", i, st, cases[i].st, msg);
        CHECK_MSG(t == NULL, "case %zu: tokenizer returned on failure", i);
        CHECK_MSG(strstr(msg, cases[i].needle), "case %zu: message '%s' does not name '%s'", i, msg,
                  cases[i].needle);
    }
    /* default BOS id 1 when the key is absent */
    vopt o = {.bos = -1};
    CHECK_MSG(small_create(&o, &t, msg, sizeof msg) == SL_OK, "%s", msg);
    CHECK_EQ_INT(sl_tokenizer_bos(t), 1);
    CHECK_EQ_INT(sl_tokenizer_unk(t), 0);
    CHECK_EQ_INT(sl_tokenizer_pad(t), -1);
    sl_tokenizer_destroy(t);
}

TEST(small_vocab_alloc_failures) {
    vopt o = {.bos = 1};
    size_t len;
    unsigned char *img = small_vocab(&o, &len);
    sl_gguf *g = NULL;
    CHECK_OK(sl_gguf_open_memory(img, len, &g));
    bool done = false;
    for (int64_t k = 0; k < 200 && !done; k++) {
        sl_tokenizer *t = NULL;
        sl_alloc_fail_after(k);
        sl_status st = sl_tokenizer_create(g, &t);
        int32_t *ids = NULL;
        size_t n = 0;
        if (st == SL_OK) st = sl_tokenize(t, "a<tool>b xyz \xc3\xa9", 15, true, true, &ids, &n);
        sl_alloc_fail_after(-1);
        if (st == SL_OK) done = true;
        sl_free(ids);
        sl_tokenizer_destroy(t);
        if (st != SL_OK && st != SL_ERR_NOMEM) {
            sl_gguf_close(g);
            free(img);
            CHECK_MSG(0, "fail after %lld: status %d (%s)", (long long)k, st, sl_last_error());
        }
    }
    sl_gguf_close(g);
    free(img);
    CHECK(done);
}

/* ---- golden helpers: a case's text and ids by content ------------------- */

/* Text and golden ids of the first case of X.gguf.inp containing `needle`. */
static bool golden_case(const char *vocab, const char *needle, char *text, size_t text_cap, int32_t *ids,
                        size_t *n_ids) {
    char rel[256], pin[1200], pout[1200];
    snprintf(rel, sizeof rel, GOLDEN_TOK "/ggml-vocab-%s.gguf", vocab);
    const char *p = sl_test_shared(rel);
    if (!p) return false;
    snprintf(pin, sizeof pin, "%s.inp", p);
    snprintf(pout, sizeof pout, "%s.out", p);
    size_t lin, lout;
    char *inp = sl_test_read_file(pin, &lin), *outp = sl_test_read_file(pout, &lout);
    bool found = false;
    const char *ip = inp, *op = outp;
    while (inp && outp && ip < inp + lin && op < outp + lout && !found) {
        const char *sep = memmem(ip, (size_t)(inp + lin - ip), SEP, strlen(SEP));
        size_t tlen = sep ? (size_t)(sep - ip) : (size_t)(inp + lin - ip);
        const char *nl = memchr(op, '\n', (size_t)(outp + lout - op));
        size_t olen = nl ? (size_t)(nl - op) : (size_t)(outp + lout - op);
        if (memmem(ip, tlen, needle, strlen(needle)) && tlen < text_cap) {
            memcpy(text, ip, tlen);
            text[tlen] = '\0';
            *n_ids = parse_ids(op, olen, ids, 4096);
            found = true;
        }
        if (!sep || !nl) break;
        ip = sep + strlen(SEP);
        op = nl + 1;
    }
    free(inp);
    free(outp);
    return found;
}

/* ---- byte-level BPE: streaming, special tokens, EOG ---------------------- */

/* Golden ids of emoji and CJK text stream back one token at a time: a token
 * that ends inside a character emits nothing until the character is
 * complete, and no push emits invalid UTF-8. */
static void check_stream(const char *vocab, const char *needle) {
    char text[1024];
    int32_t ids[4096];
    size_t n = 0;
    CHECK_MSG(golden_case(vocab, needle, text, sizeof text, ids, &n), "%s: no golden case with '%s'", vocab, needle);
    char rel[256];
    snprintf(rel, sizeof rel, GOLDEN_TOK "/ggml-vocab-%s.gguf", vocab);
    sl_tokenizer *t = load_shared(rel);
    CHECK(t);
    sl_detok d;
    sl_detok_init(&d, t, false);
    char out[512], all[2048] = "";
    int n_partial = 0, n_held = 0;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        char piece[256];
        int64_t pl = sl_token_to_piece(t, ids[i], false, piece, sizeof piece);
        n_partial += pl > 0 && !utf8_valid((const unsigned char *)piece, (size_t)pl);
        int64_t k = sl_detok_push(&d, ids[i], out, sizeof out);
        ok = k >= 0 && utf8_valid((const unsigned char *)out, (size_t)k) && (size_t)k == strlen(out);
        n_held += k == 0 && pl > 0;
        if (ok) strcat(all, out);
    }
    int64_t k = sl_detok_flush(&d, out, sizeof out);
    sl_tokenizer_destroy(t);
    CHECK_MSG(ok, "%s: a push emitted invalid UTF-8 or failed", vocab);
    CHECK_EQ_INT(k, 0);
    CHECK_STR(all, text);
    /* the case really splits characters across tokens */
    CHECK_MSG(n_partial > 0 && n_held > 0, "%s '%s': %d partial pieces, %d held pushes", vocab, needle, n_partial,
              n_held);
}

TEST(bpe_stream_emoji_and_cjk) {
    check_stream("gpt-2", "\xe6\x88\x91\xe6\x83\xb3");      /* 我想在apple工作... and 😁 */
    if (sl_test_failed()) return;
    check_stream("llama-bpe", " this is \xf0\x9f\xa6\x99"); /* 🦙 */
    if (sl_test_failed()) return;
    check_stream("qwen2", "\xf0\x9f\x9a\x80 (normal)");     /* 🚀 😶‍🌫️ ✅ */
    if (sl_test_failed()) return;
    check_stream("deepseek-llm", "\xe1\x9e\x80\xe1\x9e\xb6"); /* Khmer */
}

TEST(bpe_eog_llama3_and_qwen2) {
    sl_tokenizer *t = load_shared(GOLDEN_TOK "/ggml-vocab-llama-bpe.gguf");
    CHECK(t);
    size_t len;
    CHECK_EQ_INT(sl_tokenizer_type(t), SL_VOCAB_BPE);
    CHECK_STR(sl_tokenizer_pre(t), "llama-bpe");
    CHECK_EQ_INT(sl_tokenizer_n_vocab(t), 128256);
    CHECK_EQ_INT(sl_tokenizer_bos(t), 128000);
    CHECK_EQ_INT(sl_tokenizer_eos(t), 128001);
    CHECK(sl_tokenizer_add_bos(t)); /* llama-bpe: llama.cpp's default, and the file says so */
    CHECK(!sl_tokenizer_add_space_prefix(t));
    /* the vocabulary text of the ids */
    CHECK_STR(sl_tokenizer_token_text(t, 128000, &len), "<|begin_of_text|>");
    CHECK_STR(sl_tokenizer_token_text(t, 128001, &len), "<|end_of_text|>");
    CHECK_STR(sl_tokenizer_token_text(t, 128009, &len), "<|eot_id|>");
    CHECK_STR(sl_tokenizer_token_text(t, 128008, &len), "<|reserved_special_token_4|>");
    /* EOG = EOS <|end_of_text|> and <|eot_id|>, nothing else */
    CHECK_EQ_INT(sl_tokenizer_n_eog(t), 2);
    CHECK_EQ_INT(sl_tokenizer_eog_at(t, 0), 128001);
    CHECK_EQ_INT(sl_tokenizer_eog_at(t, 1), 128009);
    CHECK_EQ_INT(sl_tokenizer_eog_at(t, 2), -1);
    CHECK_EQ_INT(sl_tokenizer_eot(t), 128009);
    CHECK(sl_tokenizer_is_eog(t, 128009));
    CHECK(!sl_tokenizer_is_eog(t, 128000));
    CHECK(!sl_tokenizer_is_eog(t, 128006)); /* <|start_header_id|> */
    sl_tokenizer_destroy(t);

    t = load_shared(GOLDEN_TOK "/ggml-vocab-qwen2.gguf");
    CHECK(t);
    CHECK_STR(sl_tokenizer_pre(t), "qwen2");
    CHECK(!sl_tokenizer_add_bos(t)); /* BPE default: no BOS */
    CHECK_STR(sl_tokenizer_token_text(t, 151643, &len), "<|endoftext|>");
    CHECK_STR(sl_tokenizer_token_text(t, 151644, &len), "<|im_start|>");
    CHECK_STR(sl_tokenizer_token_text(t, 151645, &len), "<|im_end|>");
    CHECK_EQ_INT(sl_tokenizer_eos(t), 151643);
    CHECK_EQ_INT(sl_tokenizer_n_eog(t), 2);
    CHECK_EQ_INT(sl_tokenizer_eog_at(t, 0), 151643);
    CHECK_EQ_INT(sl_tokenizer_eog_at(t, 1), 151645);
    CHECK_EQ_INT(sl_tokenizer_eot(t), 151645);
    CHECK(!sl_tokenizer_is_eog(t, 151644));
    /* the unused [PAD...] tokens render as nothing */
    CHECK_EQ_INT(sl_tokenizer_token_type(t, 151646), SL_TOKEN_UNUSED);
    char buf[32];
    CHECK_EQ_INT(sl_token_to_piece(t, 151646, true, buf, sizeof buf), 0);
    sl_tokenizer_destroy(t);

    t = load_shared(GOLDEN_TOK "/ggml-vocab-gpt-2.gguf");
    CHECK(t);
    CHECK_STR(sl_tokenizer_token_text(t, 50256, &len), "<|endoftext|>");
    CHECK_EQ_INT(sl_tokenizer_n_eog(t), 1);
    CHECK_EQ_INT(sl_tokenizer_eog_at(t, 0), 50256);
    sl_tokenizer_destroy(t);
}

/* ids of `text` (plain, no BOS) into a fresh array; *n gets the count */
static int32_t *toks(const sl_tokenizer *t, const char *text, bool special, size_t *n) {
    int32_t *ids = NULL;
    if (sl_tokenize(t, text, strlen(text), false, special, &ids, n)) return NULL;
    return ids;
}

static bool has_id(const int32_t *ids, size_t n, int32_t id) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id) return true;
    return false;
}

/* decode ids[a..b) with special pieces */
static bool decodes_to(const sl_tokenizer *t, const int32_t *ids, size_t a, size_t b, const char *want) {
    char *s = decode(t, ids + a, b - a, true);
    bool ok = s && !strcmp(s, want);
    if (!ok) fprintf(stderr, "    decoded \"%s\", want \"%s\"\n", s ? s : "(error)", want);
    free(s);
    return ok;
}

TEST(bpe_special_tokens_split) {
    sl_tokenizer *t = load_shared(GOLDEN_TOK "/ggml-vocab-llama-bpe.gguf");
    CHECK(t);
    const char *chat = "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>";
    size_t n = 0;
    int32_t *ids = toks(t, chat, true, &n);
    CHECK(ids);
    /* control tokens come out whole; the text between them is plain BPE */
    size_t h = 0;
    while (h < n && ids[h] != 128007) h++;
    bool shape = n >= 5 && ids[0] == 128006 && h < n && ids[n - 1] == 128009 && !has_id(ids + 1, h - 1, 128006);
    bool parts = shape && decodes_to(t, ids, 1, h, "user") && decodes_to(t, ids, h + 1, n - 1, "\n\nHi there") &&
                 decodes_to(t, ids, 0, n, chat);
    sl_free(ids);
    CHECK(shape);
    CHECK(parts);
    /* without parse_special the same text is plain text */
    ids = toks(t, chat, false, &n);
    CHECK(ids);
    bool plain = !has_id(ids, n, 128006) && !has_id(ids, n, 128007) && !has_id(ids, n, 128009) &&
                 decodes_to(t, ids, 0, n, chat);
    sl_free(ids);
    CHECK(plain);
    /* BOS on request */
    int32_t *b = NULL;
    CHECK_OK(sl_tokenize(t, "Hi", 2, true, false, &b, &n));
    bool bos = n == 2 && b[0] == 128000;
    sl_free(b);
    CHECK(bos);
    sl_tokenizer_destroy(t);

    t = load_shared(GOLDEN_TOK "/ggml-vocab-qwen2.gguf");
    CHECK(t);
    chat = "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n\xe4\xbd\xa0\xe5\xa5\xbd<|im_end|>\n";
    ids = toks(t, chat, true, &n);
    CHECK(ids);
    int n_start = 0, n_end = 0;
    for (size_t i = 0; i < n; i++) n_start += ids[i] == 151644, n_end += ids[i] == 151645;
    bool qok = n_start == 2 && n_end == 2 && ids[0] == 151644 && decodes_to(t, ids, 0, n, chat);
    sl_free(ids);
    CHECK(qok);
    ids = toks(t, chat, false, &n);
    CHECK(ids);
    qok = !has_id(ids, n, 151644) && !has_id(ids, n, 151645) && decodes_to(t, ids, 0, n, chat);
    sl_free(ids);
    CHECK(qok);
    sl_tokenizer_destroy(t);

    /* user-defined tokens are split out even without parse_special:
     * deepseek-coder's 'õ' (id 32000), mpt's runs of spaces */
    t = load_shared(GOLDEN_TOK "/ggml-vocab-deepseek-coder.gguf");
    CHECK(t);
    size_t len;
    CHECK_STR(sl_tokenizer_token_text(t, 32000, &len), "\xc3\xb5");
    CHECK_EQ_INT(sl_tokenizer_token_type(t, 32000), SL_TOKEN_USER_DEFINED);
    ids = toks(t, "ma\xc3\xb5na", false, &n);
    CHECK(ids);
    bool ud = has_id(ids, n, 32000) && decodes_to(t, ids, 0, n, "ma\xc3\xb5na");
    sl_free(ids);
    CHECK(ud);
    sl_tokenizer_destroy(t);

    t = load_shared(GOLDEN_TOK "/ggml-vocab-mpt.gguf");
    CHECK(t);
    char sp24[32];
    memset(sp24, ' ', 24);
    sp24[24] = '\0';
    int32_t id24 = sl_tokenizer_find(t, sp24, 24);
    CHECK(id24 > 0);
    CHECK_EQ_INT(sl_tokenizer_token_type(t, id24), SL_TOKEN_USER_DEFINED);
    char text[64];
    snprintf(text, sizeof text, "x%sy", sp24);
    ids = toks(t, text, false, &n);
    CHECK(ids);
    ud = has_id(ids, n, id24) && decodes_to(t, ids, 0, n, text);
    sl_free(ids);
    CHECK(ud);
    sl_tokenizer_destroy(t);
}

/* Qwen2's Hugging Face tokenizer NFC-normalizes: "e" + U+0301 is "é" (U+00E9).
 * Llama 3's does not. */
TEST(bpe_nfc_for_qwen2_only) {
    const char *dec = "Cafe\xcc\x81 fa\xc3\xa7" "ade \xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab"; /* e+◌́, ç, Hangul jamo */
    const char *com = "Caf\xc3\xa9 fa\xc3\xa7" "ade \xed\x95\x9c";                             /* é, ç, 한 */
    sl_tokenizer *t = load_shared(GOLDEN_TOK "/ggml-vocab-qwen2.gguf");
    CHECK(t);
    size_t na, nb;
    int32_t *a = toks(t, dec, false, &na), *b = toks(t, com, false, &nb);
    bool same = a && b && ids_eq(a, na, b, nb);
    bool back = b && decodes_to(t, a, 0, na, com);
    sl_free(a);
    sl_free(b);
    sl_tokenizer_destroy(t);
    CHECK(same);
    CHECK(back);

    t = load_shared(GOLDEN_TOK "/ggml-vocab-llama-bpe.gguf");
    CHECK(t);
    a = toks(t, dec, false, &na);
    b = toks(t, com, false, &nb);
    bool differ = a && b && !ids_eq(a, na, b, nb);
    back = a && decodes_to(t, a, 0, na, dec);
    sl_free(a);
    sl_free(b);
    sl_tokenizer_destroy(t);
    CHECK(differ);
    CHECK(back);
}

/* Malformed UTF-8 reads as U+FFFD, one per bad byte (llama.cpp's
 * unicode_cpts_from_utf8): a stray 0xFF, a truncated 3-byte character. */
TEST(bpe_malformed_utf8) {
    sl_tokenizer *t = load_shared(GOLDEN_TOK "/ggml-vocab-gpt-2.gguf");
    CHECK(t);
    size_t na, nb;
    int32_t *a = toks(t, "a\xff" "b \xe4\xbd", false, &na);
    int32_t *b = toks(t, "a\xef\xbf\xbd" "b \xef\xbf\xbd\xef\xbf\xbd", false, &nb);
    bool same = a && b && ids_eq(a, na, b, nb);
    sl_free(a);
    sl_free(b);
    sl_tokenizer_destroy(t);
    CHECK(same);
}

/* ---- WordPiece ------------------------------------------------------------ */

TEST(wpm_bert_bge) {
    sl_tokenizer *t = load_shared(GOLDEN_TOK "/ggml-vocab-bert-bge.gguf");
    CHECK(t);
    size_t len;
    CHECK_EQ_INT(sl_tokenizer_type(t), SL_VOCAB_WPM);
    CHECK(sl_tokenizer_add_bos(t));
    CHECK(sl_tokenizer_add_sep(t));
    CHECK_EQ_INT(sl_tokenizer_bos(t), 101);
    CHECK_EQ_INT(sl_tokenizer_sep(t), 102);
    CHECK_EQ_INT(sl_tokenizer_unk(t), 100);
    CHECK_STR(sl_tokenizer_token_text(t, 101, &len), "[CLS]");
    CHECK_STR(sl_tokenizer_token_text(t, 102, &len), "[SEP]");
    CHECK_STR(sl_tokenizer_token_text(t, 7592, &len), "\xe2\x96\x81hello");
    /* uncased: lowercase and accents stripped; punctuation split off */
    CHECK_TOKENS(t, "H\xc3\xa9llo   WORLD!", false, false, 7592, 2088, 999);
    CHECK_TOKENS(t, "hello world !", false, false, 7592, 2088, 999);
    CHECK_TOKENS(t, "[CLS] hello", true, true, 101, 101, 7592);
    /* a word of more than 100 characters is unknown */
    char longw[128];
    memset(longw, 'a', 101);
    longw[101] = '\0';
    CHECK_TOKENS(t, longw, false, false, 100);
    /* CJK ideographs are words of their own; control characters vanish */
    size_t na, nb;
    int32_t *a = toks(t, "\xe6\x88\x91\xe4\xb8\x8a", false, &na), *b = toks(t, "\xe6\x88\x91 \xe4\xb8\x8a\x01", false, &nb);
    bool same = a && b && na == 2 && ids_eq(a, na, b, nb);
    sl_free(a);
    sl_free(b);
    CHECK(same);
    /* pieces: word starts get their space back */
    char buf[32];
    CHECK_EQ_INT(sl_token_to_piece(t, 7592, false, buf, sizeof buf), 6);
    CHECK_STR(buf, " hello");
    sl_tokenizer_destroy(t);
}

/* ---- in-memory byte-level BPE vocabulary ----------------------------------- */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the others, in order, for U+0100, U+0101, ... */
static void byte_char(unsigned b, char *out) {
    unsigned cp = b;
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    if (!printable) {
        cp = 0x100;
        for (unsigned c = 0; c < b; c++)
            cp += !((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE);
    }
    if (cp < 0x80) out[0] = (char)cp, out[1] = 0;
    else out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
}

/* ids 0..255: the byte characters in byte order; then these */
enum { B_AB = 256, B_ABC, B_GA, B_AA, B_XYZ, B_END, B_TOOL, B_BC, N_BPE };
static const char *const BPE_EXTRA[] = {"ab", "abc", "\xc4\xa0\x61", "aa", "xyz", "<|end|>", "<tool>", "bc"};
static const char *const BPE_MERGES[] = {"a b", "b c", "ab c", "\xc4\xa0 a", "a a", "q r", "nospace"};

static unsigned char *bpe_vocab(const char *pre, bool with_merges, size_t *len) {
    static char bytes[256][4];
    const char *tok[N_BPE];
    int32_t type[N_BPE];
    for (unsigned b = 0; b < 256; b++) {
        byte_char(b, bytes[b]);
        tok[b] = bytes[b];
        type[b] = SL_TOKEN_NORMAL;
    }
    for (int i = B_AB; i < N_BPE; i++) {
        tok[i] = BPE_EXTRA[i - B_AB];
        type[i] = SL_TOKEN_NORMAL;
    }
    type[B_END] = SL_TOKEN_CONTROL;
    type[B_TOOL] = SL_TOKEN_USER_DEFINED;
    gb b;
    gb_begin(&b);
    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    if (pre) kv_str(&b, "tokenizer.ggml.pre", pre);
    kv_arr_str(&b, "tokenizer.ggml.tokens", tok, N_BPE);
    kv_arr_num(&b, "tokenizer.ggml.token_type", SL_GGUF_I32, type, N_BPE);
    if (with_merges) kv_arr_str(&b, "tokenizer.ggml.merges", BPE_MERGES, sizeof BPE_MERGES / sizeof BPE_MERGES[0]);
    kv_u32(&b, "tokenizer.ggml.seperator_token_id", B_END);
    gb_end(&b);
    *len = b.n;
    return b.p;
}

static sl_status bpe_create(const char *pre, bool with_merges, sl_tokenizer **t, char *msg, size_t cap) {
    size_t len;
    unsigned char *img = bpe_vocab(pre, with_merges, &len);
    sl_gguf *g = NULL;
    *t = NULL;
    sl_status st = sl_gguf_open_memory(img, len, &g);
    if (!st) st = sl_tokenizer_create(g, t);
    snprintf(msg, cap, "%s", st ? sl_last_error() : "");
    sl_gguf_close(g);
    free(img);
    return st;
}

#define C(ch) ((int32_t)(unsigned char)(ch)) /* id of a printable ASCII byte character */

TEST(small_bpe_merges) {
    sl_tokenizer *t;
    char msg[512];
    CHECK_MSG(bpe_create("gpt-2", true, &t, msg, sizeof msg) == SL_OK, "%s", msg);
    /* defaults for a BPE vocabulary without the keys: BOS = EOS = 11, no BOS added */
    CHECK_EQ_INT(sl_tokenizer_bos(t), 11);
    CHECK_EQ_INT(sl_tokenizer_eos(t), 11);
    CHECK(!sl_tokenizer_add_bos(t));
    CHECK(!sl_tokenizer_add_space_prefix(t));
    /* rank order: "a b" (0) then "ab c" (2) */
    CHECK_TOKENS(t, "abc", false, false, B_ABC);
    CHECK_TOKENS(t, "bc", false, false, B_BC);
    /* equal ranks: the leftmost pair first */
    CHECK_TOKENS(t, "aaa", false, false, B_AA, C('a'));
    /* the space is the byte character U+0120 and joins the word after it */
    CHECK_TOKENS(t, "a a", false, false, C('a'), B_GA);
    /* a merge whose result is not a token: the symbol's single-byte tokens */
    CHECK_TOKENS(t, "qr", false, false, C('q'), C('r'));
    /* merges do not reach "xyz": three tokens */
    CHECK_TOKENS(t, "xyz", false, false, C('x'), C('y'), C('z'));
    /* special tokens */
    CHECK_TOKENS(t, "a<tool>b", false, false, C('a'), B_TOOL, C('b'));
    CHECK_TOKENS(t, "<|end|>", false, true, B_END);
    CHECK_TOKENS(t, "<|end|>", false, false, C('<'), C('|'), C('e'), C('n'), C('d'), C('|'), C('>'));
    CHECK(sl_tokenizer_is_eog(t, B_END)); /* <|end|> by text */
    CHECK_EQ_INT(sl_tokenizer_eot(t), B_END);
    /* malformed UTF-8 → U+FFFD → its three bytes */
    CHECK_TOKENS(t, "\xff", false, false, 0xEF, 0xBF, 0xBD);
    /* pieces: byte characters back to bytes */
    char buf[16];
    CHECK_EQ_INT(sl_token_to_piece(t, B_GA, false, buf, sizeof buf), 2);
    CHECK_STR(buf, " a");
    CHECK_EQ_INT(sl_token_to_piece(t, ' ', false, buf, sizeof buf), 1);
    CHECK_STR(buf, " ");
    CHECK_EQ_INT(sl_token_to_piece(t, 0xE4, false, buf, sizeof buf), 1);
    CHECK_EQ_INT((unsigned char)buf[0], 0xE4);
    /* "你" = E4 BD A0 streamed byte by byte: held until complete */
    sl_detok d;
    sl_detok_init(&d, t, false);
    char out[64];
    CHECK_EQ_INT(sl_detok_push(&d, 0xE4, out, sizeof out), 0);
    CHECK_EQ_INT(sl_detok_push(&d, 0xBD, out, sizeof out), 0);
    CHECK_EQ_INT(sl_detok_push(&d, 0xA0, out, sizeof out), 3);
    CHECK_STR(out, "\xe4\xbd\xa0");
    sl_tokenizer_destroy(t);

    /* llama-bpe ignores merges for a word that is a token; BOS by default */
    CHECK_MSG(bpe_create("llama-bpe", true, &t, msg, sizeof msg) == SL_OK, "%s", msg);
    CHECK(sl_tokenizer_add_bos(t));
    CHECK_TOKENS(t, "xyz", false, false, B_XYZ);
    CHECK_TOKENS(t, "xyz", true, false, 11, B_XYZ);
    sl_tokenizer_destroy(t);
}

TEST(small_bpe_errors) {
    sl_tokenizer *t;
    char msg[512];
    sl_status st = bpe_create("gpt-2", false, &t, msg, sizeof msg);
    CHECK_EQ_INT(st, SL_ERR_FORMAT);
    CHECK(t == NULL);
    CHECK_MSG(strstr(msg, "tokenizer.ggml.merges"), "%s", msg);
    st = bpe_create("no-such-pre", true, &t, msg, sizeof msg);
    CHECK_EQ_INT(st, SL_ERR_UNSUPPORTED);
    CHECK(t == NULL);
    CHECK_MSG(strstr(msg, "tokenizer.ggml.pre") && strstr(msg, "no-such-pre"), "%s", msg);
    /* no tokenizer.ggml.pre: llama.cpp's "default" */
    CHECK_MSG(bpe_create(NULL, true, &t, msg, sizeof msg) == SL_OK, "%s", msg);
    CHECK_STR(sl_tokenizer_pre(t), "default");
    sl_tokenizer_destroy(t);
}

/* Every pre-tokenizer compiles, and partitions a mixed text losslessly (all
 * 256 byte characters are tokens, so decoding gives the text back). */
TEST(all_pretokenizers) {
    const char *text = "Hello, y'all! I'M 3.14159 \xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c  \t\n\n "
                       "\xf0\x9f\x98\x81\xe2\x80\x8d\xf0\x9f\x8c\xab\xef\xb8\x8f caf\xc3\xa9 \xd0\xbd\xd0\xb5\xd1\x89\xd0\xbe "
                       "x=1+2; // \xef\xbc\x81\xe3\x80\x82 \xed\x95\x9c\xea\xb8\x80 12345678  \n";
    int n_pre = 0;
    const char *pre;
    for (size_t i = 0; (pre = pretok_name(i)); i++) {
        sl_tokenizer *t;
        char msg[512];
        sl_status st = bpe_create(pre, true, &t, msg, sizeof msg);
        CHECK_MSG(st == SL_OK, "pre-tokenizer %s: %s", pre, msg);
        size_t n;
        int32_t *ids = toks(t, text, false, &n);
        bool ok = ids && decodes_to(t, ids, 0, n, text);
        sl_free(ids);
        sl_tokenizer_destroy(t);
        CHECK_MSG(ok, "pre-tokenizer %s: round trip failed", pre);
        n_pre++;
    }
    CHECK(n_pre >= 10);
}

TEST(small_bpe_alloc_failures) {
    size_t len;
    unsigned char *img = bpe_vocab("qwen2", true, &len);
    sl_gguf *g = NULL;
    CHECK_OK(sl_gguf_open_memory(img, len, &g));
    bool done = false;
    const char *text = "a<tool>b abc \xc3\xa9\xe4\xbd\xa0 xyz  \n12";
    for (int64_t k = 0; k < 400 && !done; k++) {
        sl_tokenizer *t = NULL;
        sl_alloc_fail_after(k);
        sl_status st = sl_tokenizer_create(g, &t);
        int32_t *ids = NULL;
        size_t n = 0;
        if (st == SL_OK) st = sl_tokenize(t, text, strlen(text), true, true, &ids, &n);
        sl_alloc_fail_after(-1);
        if (st == SL_OK) done = true;
        sl_free(ids);
        sl_tokenizer_destroy(t);
        if (st != SL_OK && st != SL_ERR_NOMEM) {
            sl_gguf_close(g);
            free(img);
            CHECK_MSG(0, "fail after %lld: status %d (%s)", (long long)k, st, sl_last_error());
        }
    }
    sl_gguf_close(g);
    free(img);
    CHECK(done);
}

/* ---- speed: the big byte-level vocabularies ------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define SLOW_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLOW_BUILD 1
#endif
#endif
#ifdef SLOW_BUILD
#define LIMIT_MS 15000.0 /* ASan/UBSan: correctness only, and no quadratic blow-up */
#else
#define LIMIT_MS 1000.0
#endif

/* ~100 KB of prose, code, numbers, CJK, Cyrillic, emoji and whitespace runs */
static char *mixed_text(size_t want, size_t *len) {
    static const char *const parts[] = {
        "The quick brown fox jumps over the lazy dog. It's 3.14159 o'clock, isn't it? ",
        "for (int i = 0; i < n; i++) {\n    total += x[i] * 2;\n}\n",
        "\xe6\x88\x91\xe6\x83\xb3\xe5\x9c\xa8\x61pple\xe5\xb7\xa5\xe4\xbd\x9c\x31\x33\x31\x34\x31\x35\x31\xe5\xa4\xa9\xef\xbd\x9e ",
        "\xd0\xbd\xd0\xb5\xd1\x89\xd0\xbe \xd0\xbd\xd0\xb0 \xd0\x91\xd1\x8a\xd0\xbb\xd0\xb3\xd0\xb0\xd1\x80\xd1\x81\xd0\xba\xd0\xb8 ",
        "\xf0\x9f\x9a\x80 (normal) \xf0\x9f\x98\xb6\xe2\x80\x8d\xf0\x9f\x8c\xab\xef\xb8\x8f \xe2\x9c\x85 \xf0\x9f\xa6\x99 ",
        "    \n\t\t  \n\n   ",
        "C\xe1\xbb\xad\x61 Vi\xe1\xbb\x87t 123456789 ------======= '''''' I've been 'told he's there ",
    };
    char *s = malloc(want + 256);
    size_t n = 0;
    for (size_t k = 0; n < want; k++) {
        const char *p = parts[k % (sizeof parts / sizeof parts[0])];
        size_t l = strlen(p);
        memcpy(s + n, p, l);
        n += l;
    }
    s[n] = '\0';
    *len = n;
    return s;
}

static void big_vocab(const char *rel, double *load_ms, double *tok_ms, size_t *n_tok, bool *rt) {
    double t0 = now_ms();
    sl_tokenizer *t = load_shared(rel);
    *load_ms = now_ms() - t0;
    *rt = false;
    if (!t) return;
    size_t len;
    char *text = mixed_text(100 * 1000, &len);
    int32_t *ids = NULL;
    t0 = now_ms();
    sl_status st = sl_tokenize(t, text, len, false, false, &ids, n_tok);
    *tok_ms = now_ms() - t0;
    char *back = st ? NULL : decode(t, ids, *n_tok, false);
    *rt = back && !strcmp(back, text);
    free(back);
    free(text);
    sl_free(ids);
    sl_tokenizer_destroy(t);
}

TEST(big_bpe_vocabs_are_fast) {
    const char *files[] = {GOLDEN_TOK "/ggml-vocab-llama-bpe.gguf", GOLDEN_TOK "/ggml-vocab-qwen2.gguf"};
    for (size_t f = 0; f < 2; f++) {
        double load_ms = 0, tok_ms = 0;
        size_t n = 0;
        bool rt;
        big_vocab(files[f], &load_ms, &tok_ms, &n, &rt);
        printf("    %s: load %.0f ms, 100 KB -> %zu tokens in %.0f ms\n", files[f], load_ms, n, tok_ms);
        CHECK_MSG(rt, "%s: tokenize/round trip failed", files[f]);
        CHECK_MSG(load_ms < LIMIT_MS, "%s: load took %.0f ms", files[f], load_ms);
        CHECK_MSG(tok_ms < LIMIT_MS, "%s: tokenizing took %.0f ms", files[f], tok_ms);
    }
}

/* ---- speed: no quadratic behaviour on long inputs ---------------------- */

TEST(long_text_is_fast) {
    sl_tokenizer *t = load_shared(GOLDEN_TOK "/ggml-vocab-llama-spm.gguf");
    CHECK(t);
    size_t n = 1 << 19;
    char *s = malloc(n + 1);
    const char *words = "Once upon a time, there was a little girl named Lily. \xe4\xbd\xa0\xe5\xa5\xbd ";
    size_t wl = strlen(words);
    for (size_t i = 0; i < n; i++) s[i] = words[i % wl];
    while (n > 0 && ((unsigned char)s[n - 1] & 0xC0) == 0x80) n--; /* whole characters */
    if (n > 0 && (unsigned char)s[n - 1] >= 0xC0) n--;
    s[n] = '\0';
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    sl_status st = sl_tokenize(t, s, n, true, false, &ids, &n_ids);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    char *back = st ? NULL : decode(t, ids + 1, n_ids - 1, false);
    bool rt = back && back[0] == ' ' && !strcmp(back + 1, s);
    printf("    %zu bytes -> %zu tokens in %.1f ms\n", n, n_ids, ms);
    free(back);
    free(s);
    sl_free(ids);
    sl_tokenizer_destroy(t);
    CHECK_OK(st);
    CHECK(rt);
    CHECK_MSG(ms < 20000, "%.0f ms", ms);
}

/* ---- the fuzz corpus, replayed ----------------------------------------------------- */

/* tests/fuzz/corpus/tokenizer through fuzz_tokenizer_one(): every vocabulary
 * tokenizes any bytes into valid ids, byte-level BPE gives valid UTF-8 back
 * (qwen2: as NFC), the streaming detokenizer emits valid UTF-8 only. */
static long tokens_of(const uint8_t *data, size_t len) { return (long)fuzz_tokenizer_one(data, len); }

TEST(fuzz_corpus_replay) {
    if (!sl_test_shared("golden/tokenizer/ggml-vocab-llama-spm.gguf")) return;
    long tokens = 0;
    const int n = sl_test_each_file("tests/fuzz/corpus/tokenizer", tokens_of, &tokens);
    printf("   corpus: %d inputs, %ld tokens\n", n, tokens);
    CHECK(n >= 40);
    CHECK(tokens > 0);
}
