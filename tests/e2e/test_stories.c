/*
 * test_stories.c — stories260K against llama.cpp's golden outputs.
 *
 * For each of the six golden prompts: the prompt ids, all 64 greedy ids and
 * the logits at every generated position (max abs diff <= 1e-4 against
 * logits_all.txt, made by llama.cpp with an F32 KV cache) — through the
 * library, and the ids again through the `shardlm run --json` binary.
 * Also: the same logits when the prompt is prefilled in chunks of 1, 3 and 7
 * tokens, and when the sequence runs in a batch beside other sequences.
 */
#include "harness.h"

#include "shardlm.h"
#include "core/alloc.h"
#include "engine/forward.h"
#include "compute/quant.h"
#include "engine/generate.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stdlib.h>
#include <unistd.h>

#define N_GEN 64
#define N_VOCAB 512
#define MODEL "../shared/models/stories260K.gguf"

typedef struct golden {
    char *prompt;
    int32_t prompt_ids[64];
    int n_prompt;
    int32_t gen_ids[N_GEN];
    float *logits; /* (N_GEN, N_VOCAB) */
} golden;

static bool load_golden(int nn, golden *g) {
    char path[256];
    snprintf(path, sizeof path, "golden/stories260K/main.%02d.json", nn);
    const char *p = sl_test_shared(path);
    if (!p) return false;
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    if (!j) return false;
    g->prompt = strdup(json_string_value(json_object_get(j, "prompt")));
    json_t *pi = json_object_get(j, "prompt_token_ids"), *gi = json_object_get(j, "generated_token_ids");
    g->n_prompt = (int)json_array_size(pi);
    for (int i = 0; i < g->n_prompt && i < 64; i++) g->prompt_ids[i] = (int32_t)json_integer_value(json_array_get(pi, i));
    for (int i = 0; i < N_GEN; i++) g->gen_ids[i] = (int32_t)json_integer_value(json_array_get(gi, i));
    json_decref(j);
    snprintf(path, sizeof path, "golden/stories260K/main.%02d.logits_all.txt", nn);
    p = sl_test_shared(path);
    char *txt = p ? sl_test_read_file(p, NULL) : NULL;
    if (!txt) return false;
    g->logits = malloc(sizeof(float) * N_GEN * N_VOCAB);
    char *s = txt;
    for (int i = 0; i < N_GEN * N_VOCAB; i++) g->logits[i] = strtof(s, &s);
    free(txt);
    return true;
}

static void free_golden(golden *g) {
    free(g->prompt);
    free(g->logits);
}

static sl_model *model(void) {
    static sl_model *m;
    if (!m && sl_model_load(MODEL, &m) != SL_OK) {
        fprintf(stderr, "    cannot load %s: %s\n", MODEL, sl_last_error());
        return NULL;
    }
    return m;
}

typedef struct collect {
    int32_t ids[N_GEN];
    float logits[N_GEN][N_VOCAB];
    int n;
} collect;

static bool on_tok(void *ud, int32_t id, const float *logits, int32_t n_vocab) {
    collect *c = ud;
    if (c->n < N_GEN && n_vocab == N_VOCAB) {
        c->ids[c->n] = id;
        memcpy(c->logits[c->n], logits, sizeof(float) * N_VOCAB);
    }
    c->n++;
    return true;
}

static double max_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

static void check_prompt(int nn, int threads) {
    golden g = {0};
    CHECK_MSG(load_golden(nn, &g), "cannot read golden file %02d", nn);
    sl_model *m = model();
    CHECK(m != NULL);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    CHECK_OK(sl_tokenize(sl_model_tokenizer(m), g.prompt, strlen(g.prompt), true, false, &ids, &n_ids));
    bool same = (int)n_ids == g.n_prompt;
    for (size_t i = 0; same && i < n_ids; i++) same = ids[i] == g.prompt_ids[i];
    sl_free(ids);
    CHECK_MSG(same, "prompt %02d '%s': tokenization differs from llama.cpp (%zu vs %d ids)", nn, g.prompt, n_ids,
              g.n_prompt);
    collect *c = calloc(1, sizeof *c);
    sl_gen_params gp = {.n_predict = N_GEN, .n_threads = threads, .ignore_eos = true};
    gp.sampling = sl_sampler_default_params();
    gp.sampling.temperature = 0.0f;
    int32_t n_gen;
    sl_finish fin;
    sl_status st = sl_generate(m, g.prompt_ids, g.n_prompt, &gp, on_tok, c, &n_gen, &fin);
    if (st) {
        free(c);
        free_golden(&g);
        CHECK_OK(st);
    }
    int bad_id = -1;
    double worst = 0;
    int worst_at = 0;
    for (int k = 0; k < N_GEN; k++) {
        if (bad_id < 0 && c->ids[k] != g.gen_ids[k]) bad_id = k;
        double d = max_diff(c->logits[k], g.logits + k * N_VOCAB, N_VOCAB);
        if (d > worst) {
            worst = d;
            worst_at = k;
        }
    }
    int got = bad_id >= 0 ? c->ids[bad_id] : 0, want = bad_id >= 0 ? g.gen_ids[bad_id] : 0;
    free(c);
    free_golden(&g);
    CHECK_EQ_INT(n_gen, N_GEN);
    CHECK_MSG(bad_id < 0, "prompt %02d: generated id %d is %d, llama.cpp has %d", nn, bad_id, got, want);
    CHECK_MSG(worst <= 1e-4, "prompt %02d: logits differ by %.3g at generated position %d (limit 1e-4)", nn, worst,
              worst_at);
}

TEST(stories_prompt_00) { check_prompt(0, 1); }
TEST(stories_prompt_01) { check_prompt(1, 1); }
TEST(stories_prompt_02) { check_prompt(2, 1); }
TEST(stories_prompt_03) { check_prompt(3, 1); }
TEST(stories_prompt_04) { check_prompt(4, 1); }
TEST(stories_prompt_05) { check_prompt(5, 1); }
TEST(stories_prompt_00_two_threads) { check_prompt(0, 2); }
TEST(stories_prompt_03_three_threads) { check_prompt(3, 3); }

/* The CLI: `shardlm run --temp 0 -n 64 --json` prints llama.cpp's ids, with n-gram speculation (`spec`
 * tokens per step) or without, with a draft model proposing every token it can (draft: its file) or without. */
static void check_cli_draft(int nn, const char *spec, const char *grammar, const char *draft) {
    golden g = {0};
    CHECK_MSG(load_golden(nn, &g), "cannot read golden file %02d", nn);
    char *argv[24] = {(char *)sl_test_bin(), "run", "-m", MODEL, "-p", g.prompt, "--temp", "0", "-n", "64", "--json",
                      "--ignore-eos", "-t", "1", "--spec-ngram", (char *)spec};
    int a = 16;
    if (grammar) {
        argv[a++] = "--grammar";
        argv[a++] = (char *)grammar;
    }
    if (draft) {
        argv[a++] = "-md";
        argv[a++] = (char *)draft;
        argv[a++] = "--draft-p-min";
        argv[a++] = "0";
    }
    argv[a] = NULL;
    char *out = NULL, *err = NULL;
    int rc = sl_test_run(argv, &out, &err, 120);
    json_error_t je;
    json_t *j = rc == 0 ? json_loads(out, 0, &je) : NULL;
    int ok_prompt = 0, ok_gen = 0, n_gen = -1;
    if (j) {
        json_t *pi = json_object_get(j, "prompt_ids"), *gi = json_object_get(j, "generated_ids");
        ok_prompt = (int)json_array_size(pi) == g.n_prompt;
        for (int i = 0; ok_prompt && i < g.n_prompt; i++)
            ok_prompt = json_integer_value(json_array_get(pi, i)) == g.prompt_ids[i];
        n_gen = (int)json_array_size(gi);
        ok_gen = n_gen == N_GEN;
        for (int i = 0; ok_gen && i < N_GEN; i++) ok_gen = json_integer_value(json_array_get(gi, i)) == g.gen_ids[i];
        json_decref(j);
    }
    free_golden(&g);
    CHECK_MSG(rc == 0, "shardlm run exited %d: %s", rc, err);
    free(out);
    free(err);
    CHECK_MSG(ok_prompt, "prompt %02d: prompt_ids differ from llama.cpp", nn);
    CHECK_MSG(ok_gen, "prompt %02d: generated_ids differ from llama.cpp (%d ids)", nn, n_gen);
}

static void check_cli_with(int nn, const char *spec, const char *grammar) { check_cli_draft(nn, spec, grammar, NULL); }
static void check_cli(int nn, const char *spec) { check_cli_with(nn, spec, NULL); }

TEST(cli_run_json_all_prompts) {
    for (int nn = 0; nn < 6; nn++) {
        check_cli(nn, "0");
        if (sl_test_failed()) return;
    }
}

/* A draft model: the model itself (its every proposal kept) and a random one of its vocabulary (none kept). */
TEST(cli_run_draft_model_all_prompts) {
    char path[] = "/tmp/shardlm-draft-XXXXXX";
    CHECK(sl_test_tiny_model(path, MODEL));
    for (int nn = 0; nn < 6 && !sl_test_failed(); nn++) {
        check_cli_draft(nn, "0", NULL, MODEL);
        check_cli_draft(nn, "0", NULL, path);
    }
    unlink(path);
}

TEST(cli_run_spec_ngram_all_prompts) {
    for (int nn = 0; nn < 6; nn++) {
        check_cli(nn, "5");
        if (sl_test_failed()) return;
    }
}

/* A grammar that takes any text (`.*`: every character, end of generation once no character is half
 * written) masks nothing llama.cpp's greedy run takes: the same ids, with speculation or without. One that
 * restricts the output (--grammar-file) is followed: the sampled text matches PCRE2's pattern for it, and the
 * run stops once nothing may follow. A bad grammar is refused with its line and column. */
TEST(cli_run_grammar) {
    for (int nn = 0; nn < 6 && !sl_test_failed(); nn++) check_cli_with(nn, nn % 2 ? "5" : "0", "root ::= .*");
    char path[] = "/tmp/shardlm-gbnf-XXXXXX";
    CHECK(sl_test_temp_file(path, "# names, then a bang\nroot ::= name{3,9} \"!\"\nname ::= \" \" [A-Z] [a-z]+ (\",\" | \".\")?\n"));
    int err_code;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR) "^(?: [A-Z][a-z]+[,.]?){3,9}!$", PCRE2_ZERO_TERMINATED, 0, &err_code, &eoff, NULL);
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    for (int seed = 1; seed <= 4; seed++) {
        char sd[16];
        snprintf(sd, sizeof sd, "%d", seed);
        char *argv[] = {(char *)sl_test_bin(), "run", "-m", MODEL, "-p", "Once upon a time", "--temp", "1", "--seed", sd,
                        "-n", "200", "--json", "--grammar-file", path, NULL};
        char *out = NULL, *err = NULL;
        const int rc = sl_test_run(argv, &out, &err, 120);
        json_error_t je;
        json_t *j = rc == 0 ? json_loads(out, 0, &je) : NULL;
        const char *text = json_string_value(json_object_get(j, "text"));
        const bool ok = text && pcre2_match(re, (PCRE2_SPTR)text, strlen(text), 0, 0, md, NULL) >= 0 &&
                        json_array_size(json_object_get(j, "generated_ids")) < 200;
        CHECK_MSG(ok, "seed %d: rc %d, %s %s", seed, rc, out, err);
        json_decref(j);
        free(out);
        free(err);
    }
    unlink(path);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    char *argv[] = {(char *)sl_test_bin(), "run", "-m", MODEL, "-p", "x", "--grammar", "root ::= [a-", NULL};
    char *out = NULL, *err = NULL;
    const int rc = sl_test_run(argv, &out, &err, 60);
    CHECK(rc != 0 && err && strstr(err, "without its closing ']' at line 1, column 10"));
    free(out);
    free(err);
}

/* Streaming output of the CLI equals the golden text. */
TEST(cli_run_stream_text) {
    golden g = {0};
    CHECK(load_golden(4, &g));
    char *argv[] = {(char *)sl_test_bin(), "run", "-m", MODEL, "-p", g.prompt, "--temp", "0", "-n", "64",
                    "--ignore-eos", "-t", "1", NULL};
    char *out = NULL, *err = NULL;
    int rc = sl_test_run(argv, &out, &err, 120);
    const char *jp = sl_test_shared("golden/stories260K/main.04.json");
    json_error_t je;
    json_t *j = jp ? json_load_file(jp, 0, &je) : NULL;
    char *want = NULL;
    if (j) {
        const char *t = json_string_value(json_object_get(j, "generated_text"));
        want = malloc(strlen(t) + 2);
        sprintf(want, "%s\n", t);
        json_decref(j);
    }
    free_golden(&g);
    int same = rc == 0 && want && strcmp(out, want) == 0;
    if (!same) fprintf(stderr, "    got:  [%s]\n    want: [%s]\n    stderr: %s\n", out, want ? want : "?", err);
    free(out);
    free(err);
    free(want);
    CHECK_EQ_INT(rc, 0);
    CHECK(same);
}

/* Prefill in chunks and batching beside other sequences give bit-identical logits. */
TEST(batch_and_chunk_invariance) {
    golden g = {0};
    CHECK(load_golden(1, &g));
    sl_model *m = model();
    CHECK(m != NULL);
    const sl_hparams *hp = &m->hp;
    int32_t toks[80];
    int n = g.n_prompt + 8;
    memcpy(toks, g.prompt_ids, sizeof(int32_t) * (size_t)g.n_prompt);
    memcpy(toks + g.n_prompt, g.gen_ids, sizeof(int32_t) * 8);
    free_golden(&g);
    float *ref = malloc(sizeof(float) * (size_t)n * N_VOCAB);
    CHECK_OK(sl_eval_logits(m, toks, n, n, 1, ref));

    int chunks[] = {1, 3, 7, 64};
    for (int ci = 0; ci < 4; ci++) {
        int chunk = chunks[ci];
        sl_kv_cache *kv = NULL;
        sl_fwd *f = NULL;
        CHECK_OK(sl_kv_create(hp->n_layer, hp->n_head_kv * hp->head_dim, 16, 64, &kv));
        sl_fwd_params fp = {.max_batch = 256, .n_ctx = 512, .n_threads = 2};
        CHECK_OK(sl_fwd_create(m, kv, &fp, &f));
        /* three sequences: 0 = ours; 1 and 2 = distractors with other tokens */
        sl_kv_seq s[3] = {0};
        for (int i = 0; i < 3; i++) CHECK_OK(sl_kv_seq_reserve(kv, &s[i], n));
        sl_kv_seq *seqs[3] = {&s[0], &s[1], &s[2]};
        float *got = malloc(sizeof(float) * (size_t)n * N_VOCAB);
        float *lg = malloc(sizeof(float) * 256 * N_VOCAB);
        int32_t bt[256], bp[256], bs[256];
        uint8_t bw[256];
        for (int off = 0; off < n; off += chunk) {
            int c = n - off < chunk ? n - off : chunk, k = 0;
            for (int d = 1; d < 3; d++) /* distractor tokens interleaved first */
                for (int i = 0; i < c; i++, k++) {
                    bt[k] = (toks[off + i] * 7 + d * 13) % N_VOCAB;
                    bp[k] = off + i;
                    bs[k] = d;
                    bw[k] = 1;
                }
            for (int i = 0; i < c; i++, k++) {
                bt[k] = toks[off + i];
                bp[k] = off + i;
                bs[k] = 0;
                bw[k] = 1;
            }
            sl_batch b = {.n_tokens = k, .tokens = bt, .pos = bp, .seq = bs, .want_logits = bw};
            sl_status st = sl_fwd_step(f, &b, seqs, 3, lg);
            if (st) break;
            memcpy(got + (size_t)off * N_VOCAB, lg + (size_t)(2 * c) * N_VOCAB, sizeof(float) * (size_t)c * N_VOCAB);
        }
        int same = memcmp(got, ref, sizeof(float) * (size_t)n * N_VOCAB) == 0;
        for (int i = 0; i < 3; i++) sl_kv_seq_deinit(kv, &s[i]);
        free(got);
        free(lg);
        sl_fwd_destroy(f);
        sl_kv_destroy(kv);
        CHECK_MSG(same, "chunk %d with two other sequences: logits are not bit-identical", chunk);
    }
    free(ref);
}

/* The output matrix (N_VOCAB rows of n_embd), dequantized by the library (F32 in the file). */
static float *output_matrix(const sl_model *m) {
    const int64_t d = m->hp.n_embd;
    float *w = malloc(sizeof(float) * (size_t)(d * N_VOCAB));
    for (int32_t v = 0; v < N_VOCAB; v++) sl_dequantize_row(m->output.type, sl_tensor_row(&m->output, v), w + v * d, d);
    return w;
}

/* max |W h - gold| over the vocabulary, in double (h: n_embd floats, or NULL with hj: a JSON array of them). */
static double projection_diff(const float *w, int64_t d, const float *h, json_t *hj, const float *gold) {
    double worst = 0;
    for (int32_t v = 0; v < N_VOCAB; v++) {
        double acc = 0;
        for (int64_t i = 0; i < d; i++) acc += (double)w[v * d + i] * (h ? h[i] : json_number_value(json_array_get(hj, (size_t)i)));
        const double diff = fabs(acc - gold[v]);
        if (diff > worst || diff != diff) worst = diff;
    }
    return worst;
}

/* The normed final hidden states (what an embedding pools), multiplied here in double by the model's own
 * output matrix, give llama.cpp's logits at every generated position of each golden run (teacher-forced on its
 * ids): the hidden state is the one the logits come from, for every position of a sequence run in one step. */
TEST(hidden_states_give_golden_logits) {
    sl_model *m = model();
    CHECK(m != NULL);
    const int64_t d = m->hp.n_embd;
    float *w = output_matrix(m);
    for (int nn = 0; nn < 6 && !sl_test_failed(); nn++) {
        golden g = {0};
        CHECK_MSG(load_golden(nn, &g), "cannot read golden file %02d", nn);
        int32_t ids[64 + N_GEN];
        const int n = g.n_prompt + N_GEN - 1;
        memcpy(ids, g.prompt_ids, sizeof(int32_t) * (size_t)g.n_prompt);
        memcpy(ids + g.n_prompt, g.gen_ids, sizeof(int32_t) * (N_GEN - 1));
        float *h = malloc(sizeof(float) * (size_t)(n * d));
        CHECK_OK(sl_eval_hidden(m, ids, n, 2, h));
        double worst = 0;
        for (int k = 0; k < N_GEN; k++)
            worst = fmax(worst, projection_diff(w, d, h + (int64_t)(g.n_prompt - 1 + k) * d, NULL, g.logits + k * N_VOCAB));
        free(h);
        free_golden(&g);
        CHECK_MSG(worst <= 1e-4, "prompt %02d: W x hidden differs from llama.cpp's logits by %.3g", nn, worst);
    }
    free(w);
}

/* `shardlm embed`: the golden prompts, one per line, last-token pooling without normalization: each vector,
 * multiplied by the output matrix, gives llama.cpp's logits after its prompt; with --pooling none the last
 * token's row is that vector, and the default normalization makes it unit length. */
TEST(cli_embed) {
    sl_model *m = model();
    CHECK(m != NULL);
    const int64_t d = m->hp.n_embd;
    float *w = output_matrix(m);
    char text[1024] = "";
    golden g[5] = {{0}};
    for (int nn = 0; nn < 5; nn++) {
        CHECK(load_golden(nn, &g[nn]));
        strcat(strcat(text, nn ? "\n" : ""), g[nn].prompt);
    }
    char *argv[] = {(char *)sl_test_bin(), "embed", "-m", MODEL, "-p", text, "--json", "--normalize", "-1", "--pooling",
                    "last", "-t", "1", NULL};
    char *out = NULL, *err = NULL;
    int rc = sl_test_run(argv, &out, &err, 60);
    json_t *o = rc == 0 ? json_loads(out, 0, NULL) : NULL;
    CHECK_MSG(json_array_size(json_object_get(o, "data")) == 5, "rc %d: %s %s", rc, out, err);
    for (int nn = 0; nn < 5; nn++) {
        json_t *e = json_object_get(json_array_get(json_object_get(o, "data"), (size_t)nn), "embedding");
        CHECK(json_array_size(e) == (size_t)d);
        const double worst = projection_diff(w, d, NULL, e, g[nn].logits);
        CHECK_MSG(worst <= 1e-4, "prompt %02d: W x embedding differs from llama.cpp's logits by %.3g", nn, worst);
    }
    /* every token's (normalized): the last row, unit length, is the last-token vector's direction */
    char *argv2[] = {(char *)sl_test_bin(), "embed", "-m", MODEL, "-p", g[0].prompt, "--pooling", "none", "-t", "1", NULL};
    char *out2 = NULL, *err2 = NULL;
    rc = sl_test_run(argv2, &out2, &err2, 60);
    CHECK_MSG(rc == 0, "%s", err2);
    int rows = 0;
    char *last = NULL, *save = NULL;
    for (char *line = strtok_r(out2, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        rows++;
        last = line;
    }
    CHECK_EQ_INT(rows, g[0].n_prompt);
    json_t *e0 = json_object_get(json_array_get(json_object_get(o, "data"), 0), "embedding");
    double len = 0, worst = 0;
    for (int64_t i = 0; i < d; i++) len += pow(json_number_value(json_array_get(e0, (size_t)i)), 2);
    len = sqrt(len);
    char *q = last;
    for (int64_t i = 0; i < d; i++) worst = fmax(worst, fabs(strtod(q, &q) - json_number_value(json_array_get(e0, (size_t)i)) / len));
    CHECK_MSG(worst < 1e-6, "the last token's normalized row differs by %.3g", worst);
    json_decref(o);
    free(out);
    free(err);
    free(out2);
    free(err2);
    for (int nn = 0; nn < 5; nn++) free_golden(&g[nn]);
    free(w);
}

TEST(zz_release_model) { sl_model_destroy(model()); }
