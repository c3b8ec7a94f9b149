/*
 * cmd_run.c — `shardlm run`: generate text from a prompt and stream it to
 * stdout (only the generated text; the prompt is not echoed), or with --json
 * print one object {"prompt_ids": [...], "generated_ids": [...], "text": "..."}.
 */
#include "commands.h"
#include "common.h"
#include "opts.h"

#include "core/alloc.h"
#include "core/status.h"
#include "core/strbuf.h"
#include "engine/generate.h"
#include "model/model.h"
#include "server/api.h"
#include "template/template.h"
#include "tokenizer/tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { O_MODEL, O_PROMPT, O_FILE, O_N, O_TEMP, O_TOPK, O_TOPP, O_MINP, O_REPPEN, O_REPN, O_PRES, O_FREQ, O_SEED,
       O_THREADS, O_CTX, O_BATCH, O_JSON, O_IGNORE_EOS, O_TIMINGS, O_CHAT, O_SYSTEM, O_TEMPLATE, O_SPEC, O_GRAMMAR, O_GRAMMAR_FILE,
       O_TYPICAL, O_NSIGMA, O_XTC_P, O_XTC_T, O_DYNA_R, O_DYNA_E, O_DRY_M, O_DRY_B, O_DRY_A, O_DRY_N, O_DRY_BRK, O_MIRO,
       O_MIRO_LR, O_MIRO_ENT, O_MIN_KEEP, O_SAMPLERS, O_SAMPLING_SEQ, O_DRAFT, O_DRAFT_MAX, O_DRAFT_PMIN, O_COUNT };

static const opt_def OPTS[O_COUNT] = {
    [O_MODEL] = {"model", "m", OPT_STR, NULL, 0, -1, "GGUF model file"},
    [O_PROMPT] = {"prompt", "p", OPT_STR, "", 0, -1, "prompt text"},
    [O_FILE] = {"file", "f", OPT_STR, NULL, 0, -1, "read the prompt from a file"},
    [O_N] = {"n-predict", "n", OPT_INT, "-1", -1, 1 << 30, "tokens to generate (-1: until EOS or the context is full)"},
    [O_TEMP] = {"temp", NULL, OPT_FLOAT, "0.8", 0, 100, "temperature (0: greedy)"},
    [O_TOPK] = {"top-k", NULL, OPT_INT, "40", 0, 1 << 30, "top-k (0: off)"},
    [O_TOPP] = {"top-p", NULL, OPT_FLOAT, "0.95", 1e-9, 1, "top-p in (0, 1] (1: off)"},
    [O_MINP] = {"min-p", NULL, OPT_FLOAT, "0.05", 0, 1, "min-p (0: off)"},
    [O_REPPEN] = {"repeat-penalty", NULL, OPT_FLOAT, "1.0", 0, 100, "repetition penalty (1: off)"},
    [O_REPN] = {"repeat-last-n", NULL, OPT_INT, "64", -1, 1 << 30, "history the penalties look at (-1: all)"},
    [O_PRES] = {"presence-penalty", NULL, OPT_FLOAT, "0", -2, 2, "presence penalty"},
    [O_FREQ] = {"frequency-penalty", NULL, OPT_FLOAT, "0", -2, 2, "frequency penalty"},
    [O_SEED] = {"seed", "s", OPT_INT, "-1", -1, (double)UINT32_MAX, "random seed (-1: from the clock)"},
    [O_THREADS] = {"threads", "t", OPT_INT, NULL, 1, 1024, "compute threads (default: number of CPUs)"},
    [O_CTX] = {"ctx-size", "c", OPT_INT, "0", 0, 1 << 24, "context length (0: the model's)"},
    [O_BATCH] = {"batch-size", "b", OPT_INT, "512", 1, 1 << 16, "prompt tokens per forward step"},
    [O_JSON] = {"json", NULL, OPT_BOOL, NULL, 0, -1, "print one JSON object instead of streaming text"},
    [O_IGNORE_EOS] = {"ignore-eos", NULL, OPT_BOOL, NULL, 0, -1, "do not stop at end-of-generation tokens"},
    [O_TIMINGS] = {"timings", NULL, OPT_BOOL, NULL, 0, -1, "print prompt and generation speed to stderr"},
    [O_CHAT] = {"chat", NULL, OPT_BOOL, NULL, 0, -1, "interactive chat: one user message per line of stdin"},
    [O_SYSTEM] = {"system", NULL, OPT_STR, NULL, 0, -1, "system message for --chat"},
    [O_TEMPLATE] = {"chat-template", NULL, OPT_STR, NULL, 0, -1,
                    "Jinja chat template file for --chat (default: the model's, else a built-in one)"},
    [O_SPEC] = {"spec-ngram", NULL, OPT_INT, "0", 0, 16,
                "n-gram speculation: tokens proposed from an earlier occurrence of the last 2-4 tokens, checked in "
                "the same step (same output; 0: off)"},
    CLI_DRAFT_OPTS(O_DRAFT, O_DRAFT_MAX, O_DRAFT_PMIN),
    [O_GRAMMAR] = {"grammar", NULL, OPT_STR, NULL, 0, -1, "GBNF grammar the output follows (as llama.cpp's --grammar)"},
    [O_GRAMMAR_FILE] = {"grammar-file", NULL, OPT_STR, NULL, 0, -1, "read the GBNF grammar from a file"},
    [O_TYPICAL] = {"typical", NULL, OPT_FLOAT, "1", 0, 1, "locally typical sampling p (1: off)"},
    [O_NSIGMA] = {"top-nsigma", NULL, OPT_FLOAT, "-1", -1e6, 1e6, "top-n-sigma: keep logits within n deviations (<= 0: off)"},
    [O_XTC_P] = {"xtc-probability", NULL, OPT_FLOAT, "0", 0, 1, "XTC: chance of cutting the top choices (0: off)"},
    [O_XTC_T] = {"xtc-threshold", NULL, OPT_FLOAT, "0.1", 0, 1, "XTC: probability above which tokens go (> 0.5: off)"},
    [O_DYNA_R] = {"dynatemp-range", NULL, OPT_FLOAT, "0", 0, 100, "dynamic temperature: temp +- range by entropy (0: off)"},
    [O_DYNA_E] = {"dynatemp-exp", NULL, OPT_FLOAT, "1", 0, 100, "dynamic temperature exponent"},
    [O_DRY_M] = {"dry-multiplier", NULL, OPT_FLOAT, "0", 0, 1e6, "DRY repetition penalty scale (0: off)"},
    [O_DRY_B] = {"dry-base", NULL, OPT_FLOAT, "1.75", 0, 1e6, "DRY penalty base"},
    [O_DRY_A] = {"dry-allowed-length", NULL, OPT_INT, "2", 0, 1 << 20, "DRY: repeats this long go unpunished"},
    [O_DRY_N] = {"dry-penalty-last-n", NULL, OPT_INT, "-1", -1, 1 << 30, "DRY: history looked at (-1: context, 0: off)"},
    [O_DRY_BRK] = {"dry-sequence-breakers", NULL, OPT_STR, NULL, 0, -1,
                   "DRY's breakers as a JSON array of strings (default [\"\\n\", \":\", \"\\\"\", \"*\"]; [] for none)"},
    [O_MIRO] = {"mirostat", NULL, OPT_INT, "0", 0, 2, "mirostat version (0: off, 1, 2); replaces the other samplers"},
    [O_MIRO_LR] = {"mirostat-lr", NULL, OPT_FLOAT, "0.1", 0, 1e6, "mirostat learning rate (eta)"},
    [O_MIRO_ENT] = {"mirostat-ent", NULL, OPT_FLOAT, "5", 0, 1e6, "mirostat target entropy (tau)"},
    [O_MIN_KEEP] = {"min-keep", NULL, OPT_INT, "0", 0, 1 << 30, "top-p, min-p, typical and XTC keep at least this many"},
    [O_SAMPLERS] = {"samplers", NULL, OPT_STR, NULL, 0, -1,
                    "the samplers in order, names separated by ';' (default "
                    "penalties;dry;top_n_sigma;top_k;typ_p;top_p;min_p;xtc;temperature)"},
    [O_SAMPLING_SEQ] = {"sampling-seq", NULL, OPT_STR, NULL, 0, -1, "the samplers in order as letters (edskypmxti)"},
};

/* --samplers (names separated by ';') or --sampling-seq (letters) into p's custom order. */
static bool parse_order(const opt_val *v, sl_sampler_params *p) {
    if (!v[O_SAMPLERS].set && !v[O_SAMPLING_SEQ].set) return true;
    if (v[O_SAMPLERS].set && v[O_SAMPLING_SEQ].set) {
        fprintf(stderr, "shardlm run: --samplers and --sampling-seq: one of them\n");
        return false;
    }
    p->custom_order = true;
    p->n_stages = 0;
    const bool names = v[O_SAMPLERS].set;
    const char *s = names ? v[O_SAMPLERS].s : v[O_SAMPLING_SEQ].s;
    while (*s) {
        const size_t len = names ? strcspn(s, ";") : 1;
        const int stage = names ? sl_samp_stage_by_name(s, len) : sl_samp_stage_by_letter(*s);
        if (!stage || p->n_stages == SL_SAMPLER_MAX_STAGES) {
            fprintf(stderr, "shardlm run: %s: '%.*s' is %s\n", names ? "--samplers" : "--sampling-seq", (int)len, s,
                    stage ? "one stage too many" : "not a sampler");
            return false;
        }
        p->stages[p->n_stages++] = (uint8_t)stage;
        s += len;
        if (names && *s == ';') s++;
    }
    return true;
}

/* DRY's breakers: --dry-sequence-breakers (a JSON array of strings; [] for none) or llama.cpp's four. */
static sl_status dry_breakers(const opt_val *v, const sl_model *m, sl_dry_breakers **out) {
    json_t *a = v[O_DRY_BRK].set ? json_loads(v[O_DRY_BRK].s, JSON_DECODE_ANY, NULL) : NULL;
    if (v[O_DRY_BRK].set && !a) return SL_FAIL(SL_ERR_INVALID, "--dry-sequence-breakers is not JSON");
    sl_status st = sl_dry_breakers_from_json(sl_model_tokenizer(m), a, "--dry-sequence-breakers", true, out);
    json_decref(a);
    return st;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct run_state {
    const sl_tokenizer *tok;
    sl_detok detok;
    bool json;
    bool tee; /* streaming: also keep the text */
    int32_t *gen;
    size_t n_gen, cap_gen;
    char *text;
    size_t n_text, cap_text;
    bool oom;
    double t_first; /* when the first token was sampled (prompt done) */
} run_state;

static void append_text(run_state *s, const char *p, size_t n) {
    if (s->n_text + n + 1 > s->cap_text) {
        size_t cap = s->cap_text ? s->cap_text * 2 : 1024;
        while (cap < s->n_text + n + 1) cap *= 2;
        char *t = realloc(s->text, cap);
        if (!t) { s->oom = true; return; }
        s->text = t;
        s->cap_text = cap;
    }
    memcpy(s->text + s->n_text, p, n);
    s->n_text += n;
    s->text[s->n_text] = '\0';
}

static void emit(run_state *s, const char *p, int64_t n) {
    if (n <= 0) return;
    if (s->json || s->tee) append_text(s, p, (size_t)n);
    if (!s->json) {
        fwrite(p, 1, (size_t)n, stdout);
        fflush(stdout);
    }
}

static bool on_token(void *ud, int32_t id, const float *logits, int32_t n_vocab) {
    (void)logits;
    (void)n_vocab;
    run_state *s = ud;
    if (s->n_gen == 0) s->t_first = now_s();
    if (s->n_gen == s->cap_gen) {
        size_t cap = s->cap_gen ? s->cap_gen * 2 : 256;
        int32_t *g = realloc(s->gen, cap * sizeof *g);
        if (!g) { s->oom = true; return false; }
        s->gen = g;
        s->cap_gen = cap;
    }
    s->gen[s->n_gen++] = id;
    char buf[1024];
    int64_t n = sl_detok_push(&s->detok, id, buf, sizeof buf);
    emit(s, buf, n);
    return !s->oom;
}

/* ---- --chat ------------------------------------------------------------------ */

static char *read_line(FILE *f) {
    size_t cap = 256, n = 0;
    char *b = malloc(cap);
    int c;
    while (b && (c = fgetc(f)) != EOF) {
        if (c == '\n') break;
        if (n + 2 > cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) { free(b); return NULL; }
            b = nb;
        }
        b[n++] = (char)c;
    }
    if (!b || (n == 0 && c == EOF)) { free(b); return NULL; }
    if (n && b[n - 1] == '\r') n--;
    b[n] = '\0';
    return b;
}

static int run_chat(const opt_val *v, sl_model *m, const sl_gen_params *gp_in) {
    const sl_tokenizer *tok = sl_model_tokenizer(m);
    char *tpl_file = NULL;
    const char *tpl = NULL;
    sl_str s;
    if (v[O_TEMPLATE].set) {
        tpl_file = sl_read_file(v[O_TEMPLATE].s, NULL);
        if (!tpl_file) {
            fprintf(stderr, "shardlm run: cannot read --chat-template '%s'\n", v[O_TEMPLATE].s);
            return 1;
        }
        tpl = tpl_file;
    } else if (sl_gguf_find(m->gguf, "tokenizer.chat_template") &&
               sl_gguf_get_str(m->gguf, "tokenizer.chat_template", &s) == SL_OK) {
        tpl_file = strndup(s.ptr, s.len);
        tpl = tpl_file;
    } else {
        tpl = sl_api_fallback_template(m);
    }
    size_t bl = 0, el = 0;
    const char *bt = sl_tokenizer_bos(tok) >= 0 ? sl_tokenizer_token_text(tok, sl_tokenizer_bos(tok), &bl) : NULL;
    const char *et = sl_tokenizer_eos(tok) >= 0 ? sl_tokenizer_token_text(tok, sl_tokenizer_eos(tok), &el) : NULL;
    char *bos = strndup(bt ? bt : "", bl), *eos = strndup(et ? et : "", el);
    json_t *messages = json_array();
    if (v[O_SYSTEM].set) json_array_append_new(messages, json_pack("{s:s,s:s}", "role", "system", "content", v[O_SYSTEM].s));
    int rc = 0;
    bool tty = isatty(0);
    for (;;) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        char *line = read_line(stdin);
        if (!line) break;
        if (!*line) {
            free(line);
            continue;
        }
        json_array_append_new(messages, json_pack("{s:s,s:s}", "role", "user", "content", line));
        free(line);
        char *text = NULL;
        size_t tlen = 0;
        if (sl_chat_render(tpl, messages, true, bos, eos, NULL, NULL, NULL, &text, &tlen) != SL_OK) {
            fprintf(stderr, "shardlm run: the chat template failed: %s\n", sl_last_error());
            rc = 1;
            break;
        }
        bool add_bos = sl_tokenizer_add_bos(tok) && !(bl && tlen >= bl && !memcmp(text, bt, bl));
        int32_t *ids = NULL;
        size_t n_ids = 0;
        sl_status st = sl_tokenize(tok, text, tlen, add_bos, true, &ids, &n_ids);
        sl_free(text);
        if (st) {
            fprintf(stderr, "shardlm run: cannot tokenize the conversation: %s\n", sl_last_error());
            rc = 1;
            break;
        }
        /* stream the reply to stdout and keep a copy for the conversation */
        run_state rs = {.tee = true, .tok = tok};
        sl_detok_init(&rs.detok, tok, false);
        int32_t n_gen;
        sl_finish fin;
        st = sl_generate(m, ids, (int32_t)n_ids, gp_in, on_token, &rs, &n_gen, &fin);
        sl_free(ids);
        if (st) {
            fprintf(stderr, "shardlm run: %s\n", sl_last_error());
            free(rs.gen);
            free(rs.text);
            if (st == SL_ERR_RANGE) { /* the conversation outgrew the context: start over */
                fprintf(stderr, "shardlm run: starting a new conversation\n");
                json_array_clear(messages);
                if (v[O_SYSTEM].set)
                    json_array_append_new(messages,
                                          json_pack("{s:s,s:s}", "role", "system", "content", v[O_SYSTEM].s));
                continue;
            }
            rc = 1;
            break;
        }
        char buf[64];
        emit(&rs, buf, sl_detok_flush(&rs.detok, buf, sizeof buf));
        const char *reply = rs.text ? rs.text : "";
        fputc('\n', stdout);
        fflush(stdout);
        json_array_append_new(messages, json_pack("{s:s,s:s}", "role", "assistant", "content", reply));
        free(rs.gen);
        free(rs.text);
    }
    json_decref(messages);
    free(bos);
    free(eos);
    free(tpl_file);
    return rc;
}

int cmd_run(int argc, char **argv) {
    static const char usage[] = "-m MODEL (-p PROMPT | --chat) [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P] "
                                "[--seed S] [-t THREADS] [--json]";
    opt_val v[O_COUNT];
    const char *pos[1];
    int n_pos, rc = 1;
    int r = opts_parse("run", usage, OPTS, O_COUNT, v, argc, argv, pos, 0, &n_pos);
    if (r) return r > 0 ? 0 : 1;
    char *file_text = NULL;
    const char *prompt = v[O_PROMPT].s;
    size_t prompt_len = strlen(prompt);
    if (v[O_FILE].set) {
        file_text = sl_read_file(v[O_FILE].s, &prompt_len);
        if (!file_text) {
            fprintf(stderr, "shardlm run: cannot read prompt file '%s'\n", v[O_FILE].s);
            return 1;
        }
        prompt = file_text;
    }
    char *gbnf_file = NULL;
    const char *gbnf = v[O_GRAMMAR].set ? v[O_GRAMMAR].s : NULL;
    size_t gbnf_len = gbnf ? strlen(gbnf) : 0;
    if (v[O_GRAMMAR].set && v[O_GRAMMAR_FILE].set) {
        fprintf(stderr, "shardlm run: --grammar and --grammar-file: one of them\n");
        free(file_text);
        return 1;
    }
    if (v[O_GRAMMAR_FILE].set && !(gbnf = gbnf_file = sl_read_file(v[O_GRAMMAR_FILE].s, &gbnf_len))) {
        fprintf(stderr, "shardlm run: cannot read grammar file '%s'\n", v[O_GRAMMAR_FILE].s);
        free(file_text);
        return 1;
    }
    sl_grammar *grammar = NULL;
    sl_dry_breakers *dry = NULL;
    sl_sampler_params sampling = sl_sampler_default_params();
    sampling.temperature = (float)v[O_TEMP].f;
    sampling.top_k = (int32_t)v[O_TOPK].i;
    sampling.top_p = (float)v[O_TOPP].f;
    sampling.min_p = (float)v[O_MINP].f;
    sampling.repeat_penalty = (float)v[O_REPPEN].f;
    sampling.repeat_last_n = (int32_t)v[O_REPN].i;
    sampling.presence_penalty = (float)v[O_PRES].f;
    sampling.frequency_penalty = (float)v[O_FREQ].f;
    sampling.seed = v[O_SEED].i < 0 ? (uint64_t)time(NULL) : (uint64_t)v[O_SEED].i;
    sampling.typical_p = (float)v[O_TYPICAL].f;
    sampling.top_n_sigma = (float)v[O_NSIGMA].f;
    sampling.xtc_probability = (float)v[O_XTC_P].f;
    sampling.xtc_threshold = (float)v[O_XTC_T].f;
    sampling.dynatemp_range = (float)v[O_DYNA_R].f;
    sampling.dynatemp_exponent = (float)v[O_DYNA_E].f;
    sampling.dry_multiplier = (float)v[O_DRY_M].f;
    sampling.dry_base = (float)v[O_DRY_B].f;
    sampling.dry_allowed_length = (int32_t)v[O_DRY_A].i;
    sampling.dry_penalty_last_n = (int32_t)v[O_DRY_N].i;
    sampling.mirostat = (int32_t)v[O_MIRO].i;
    sampling.mirostat_eta = (float)v[O_MIRO_LR].f;
    sampling.mirostat_tau = (float)v[O_MIRO_ENT].f;
    sampling.min_keep = (int32_t)v[O_MIN_KEEP].i;
    if (!parse_order(v, &sampling)) {
        free(gbnf_file);
        free(file_text);
        return 1;
    }
    sl_model *m = cli_load_model("run", v[O_MODEL].s), *draft = NULL;
    int32_t *ids = NULL;
    run_state s = {.json = v[O_JSON].b};
    if (!m || (v[O_DRAFT].set && !(draft = cli_load_model("run", v[O_DRAFT].s)))) goto done;
    if (gbnf && sl_grammar_compile_vocab(gbnf, gbnf_len, sl_model_tokenizer(m), &grammar) != SL_OK) {
        fprintf(stderr, "shardlm run: %s\n", sl_last_error());
        goto done;
    }
    if (sl_sampler_dry_on(&sampling) && dry_breakers(v, m, &dry) != SL_OK) {
        fprintf(stderr, "shardlm run: %s\n", sl_last_error());
        goto done;
    }
    size_t n_ids;
    sl_gen_params gp = {
        .n_predict = (int32_t)v[O_N].i,
        .n_ctx = (int32_t)v[O_CTX].i,
        .n_threads = v[O_THREADS].set ? (int32_t)v[O_THREADS].i : cli_default_threads(),
        .max_batch = (int32_t)v[O_BATCH].i,
        .ignore_eos = v[O_IGNORE_EOS].b,
        .spec_tokens = (int32_t)v[O_SPEC].i,
        .grammar = grammar,
        .sampling = sampling,
        .dry_breakers = dry,
        .draft = draft,
        .draft_max = (int32_t)v[O_DRAFT_MAX].i,
        .draft_p_min = (float)v[O_DRAFT_PMIN].f,
    };
    if (v[O_CHAT].b) {
        rc = run_chat(v, m, &gp);
        goto done;
    }
    ids = cli_tokenize_prompt("run", m, prompt, prompt_len, &n_ids);
    if (!ids) goto done;
    s.tok = sl_model_tokenizer(m);
    sl_detok_init(&s.detok, s.tok, false);
    int32_t n_gen;
    sl_finish fin;
    double t0 = now_s();
    if (sl_generate(m, ids, (int32_t)n_ids, &gp, on_token, &s, &n_gen, &fin) != SL_OK) {
        if (!s.json) putchar('\n');
        fprintf(stderr, "shardlm run: %s\n", sl_last_error());
        goto done;
    }
    if (s.oom) {
        fprintf(stderr, "shardlm run: out of memory\n");
        goto done;
    }
    double t1 = now_s();
    char buf[64];
    emit(&s, buf, sl_detok_flush(&s.detok, buf, sizeof buf));
    if (v[O_TIMINGS].b && n_gen > 0) {
        double tp = s.t_first - t0, tg = t1 - s.t_first;
        fprintf(stderr, "\nprompt: %zu tokens in %.2f ms (%.1f tokens/s); generation: %d tokens in %.2f ms (%.1f tokens/s)\n",
                n_ids, tp * 1e3, (double)n_ids / tp, n_gen - 1, tg * 1e3, n_gen > 1 ? (double)(n_gen - 1) / tg : 0.0);
    }
    if (s.json) {
        json_t *o = json_object(), *pa = json_array(), *ga = json_array();
        for (size_t i = 0; i < n_ids; i++) json_array_append_new(pa, json_integer(ids[i]));
        for (size_t i = 0; i < s.n_gen; i++) json_array_append_new(ga, json_integer(s.gen[i]));
        json_object_set_new(o, "prompt_ids", pa);
        json_object_set_new(o, "generated_ids", ga);
        json_object_set_new(o, "text", json_stringn(s.text ? s.text : "", s.n_text));
        char *dump = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(o);
        if (!dump) {
            fprintf(stderr, "shardlm run: cannot encode the JSON output\n");
            goto done;
        }
        puts(dump);
        free(dump);
    } else {
        putchar('\n');
    }
    rc = 0;
done:
    free(s.gen);
    free(s.text);
    sl_free(ids);
    sl_model_destroy(m);
    sl_model_destroy(draft);
    sl_grammar_release(grammar);
    sl_dry_breakers_free(dry);
    free(gbnf_file);
    free(file_text);
    return rc;
}
