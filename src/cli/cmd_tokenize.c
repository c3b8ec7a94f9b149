/*
 * cmd_tokenize.c — `shardlm tokenize -m MODEL (-p TEXT | -f FILE)
 * [--no-bos] [--parse-special]`: print the token ids of a text on one line,
 * separated by single spaces.
 *
 * Only the GGUF metadata is read (sl_gguf_open, no tensors loaded), so
 * vocabulary-only files work. As llama.cpp's llama-tokenize with its
 * add_special: unless --no-bos is given, BOS is added when
 * tokenizer.ggml.add_bos_token says so, EOS appended when
 * tokenizer.ggml.add_eos_token does and SEP (WordPiece [SEP]) when
 * tokenizer.ggml.add_sep_token does. A file is tokenized byte for byte (a
 * trailing newline is part of it).
 */
#include "commands.h"
#include "common.h"
#include "opts.h"

#include "core/alloc.h"
#include "core/strbuf.h"
#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { O_MODEL, O_PROMPT, O_FILE, O_NO_BOS, O_PARSE_SPECIAL, O_COUNT };

static const opt_def OPTS[O_COUNT] = {
    [O_MODEL] = {"model", "m", OPT_STR, NULL, 0, -1, "GGUF file (a vocabulary-only file is enough)"},
    [O_PROMPT] = {"prompt", "p", OPT_STR, NULL, 0, -1, "text to tokenize"},
    [O_FILE] = {"file", "f", OPT_STR, NULL, 0, -1, "read the text from a file"},
    [O_NO_BOS] = {"no-bos", NULL, OPT_BOOL, NULL, 0, -1, "do not add BOS (nor EOS/SEP) even if the metadata asks"},
    [O_PARSE_SPECIAL] = {"parse-special", NULL, OPT_BOOL, NULL, 0, -1, "match control-token text such as <s>"},
};

#define USAGE "-m MODEL (-p TEXT | -f FILE) [--no-bos] [--parse-special]"

int cmd_tokenize(int argc, char **argv) {
    opt_val v[O_COUNT];
    const char *pos[1];
    int n_pos, rc = 1;
    int r = opts_parse("tokenize", USAGE, OPTS, O_COUNT, v, argc, argv, pos, 0, &n_pos);
    if (r != 0) return r > 0 ? 0 : 1;

    sl_gguf *g = NULL;
    sl_tokenizer *t = NULL;
    char *file_text = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;

    if (!v[O_MODEL].set) {
        fprintf(stderr, "shardlm tokenize: no model given (-m FILE)\n");
        goto done;
    }
    if (v[O_PROMPT].set == v[O_FILE].set) {
        fprintf(stderr, "shardlm tokenize: give exactly one of -p TEXT and -f FILE\n");
        goto done;
    }
    const char *text = v[O_PROMPT].s;
    size_t len = v[O_PROMPT].set ? strlen(text) : 0;
    if (v[O_FILE].set) {
        if (!(file_text = sl_read_file(v[O_FILE].s, &len))) {
            fprintf(stderr, "shardlm tokenize: cannot read '%s'\n", v[O_FILE].s);
            goto done;
        }
        text = file_text;
    }
    if (sl_gguf_open(v[O_MODEL].s, &g) || sl_tokenizer_create(g, &t)) {
        fprintf(stderr, "shardlm tokenize: %s\n", sl_last_error());
        goto done;
    }
    bool add_special = !v[O_NO_BOS].b;
    if (sl_tokenize(t, text, len, add_special && sl_tokenizer_add_bos(t), v[O_PARSE_SPECIAL].b, &ids, &n_ids)) {
        fprintf(stderr, "shardlm tokenize: %s\n", sl_last_error());
        goto done;
    }
    for (size_t i = 0; i < n_ids; i++) printf(i ? " %d" : "%d", ids[i]);
    bool any = n_ids > 0;
    if (add_special && sl_tokenizer_add_eos(t)) {
        printf(any ? " %d" : "%d", sl_tokenizer_eos(t));
        any = true;
    }
    if (add_special && sl_tokenizer_add_sep(t)) printf(any ? " %d" : "%d", sl_tokenizer_sep(t));
    putchar('\n');
    if (fflush(stdout) != 0) {
        fprintf(stderr, "shardlm tokenize: cannot write the output\n");
        goto done;
    }
    rc = 0;
done:
    sl_free(ids);
    sl_tokenizer_destroy(t);
    sl_gguf_close(g);
    free(file_text);
    return rc;
}
