/*
 * cmd_template.c — `shardlm template (-m MODEL | --template FILE)
 * --messages FILE.json [--bos TEXT] [--eos TEXT] [--no-generation-prompt]`:
 * render a chat template and print the text exactly (no newline added).
 *
 * The template is the GGUF key tokenizer.chat_template (ChatML when the file
 * has none) or FILE. BOS/EOS text defaults to the vocabulary tokens named
 * by tokenizer.ggml.bos_token_id / eos_token_id (empty with --template).
 * The messages file holds either a list of messages or an object with
 * "messages" and optionally "tools", "add_generation_prompt" and any other
 * variables the template reads (e.g. "enable_thinking"). Variables are set
 * as transformers' apply_chat_template sets them: tools and documents are
 * null unless given. A template error prints "shardlm template: <message>"
 * and exits 1.
 */
#include "commands.h"
#include "common.h"
#include "opts.h"

#include "core/alloc.h"
#include "core/strbuf.h"
#include "model/gguf.h"
#include "template/template.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { O_MODEL, O_TEMPLATE, O_MESSAGES, O_BOS, O_EOS, O_NO_GEN, O_COUNT };

static const opt_def OPTS[O_COUNT] = {
    [O_MODEL] = {"model", "m", OPT_STR, NULL, 0, -1, "GGUF file whose tokenizer.chat_template is rendered"},
    [O_TEMPLATE] = {"template", NULL, OPT_STR, NULL, 0, -1, "Jinja template file (instead of -m)"},
    [O_MESSAGES] = {"messages", NULL, OPT_STR, NULL, 0, -1, "JSON file: a list of messages or {\"messages\": [...], ...}"},
    [O_BOS] = {"bos", NULL, OPT_STR, NULL, 0, -1, "bos_token text (default: the model's BOS token)"},
    [O_EOS] = {"eos", NULL, OPT_STR, NULL, 0, -1, "eos_token text (default: the model's EOS token)"},
    [O_NO_GEN] = {"no-generation-prompt", NULL, OPT_BOOL, NULL, 0, -1, "add_generation_prompt = false"},
};

#define USAGE "(-m MODEL | --template FILE) --messages FILE.json [--bos TEXT] [--eos TEXT] [--no-generation-prompt]"

/* The text of token tokenizer.ggml.<which>_token_id, or NULL when absent. */
static char *token_text(const sl_gguf *g, const char *which) {
    char key[64];
    snprintf(key, sizeof key, "tokenizer.ggml.%s_token_id", which);
    uint32_t id;
    if (!sl_gguf_find(g, key) || sl_gguf_get_u32(g, key, &id) != SL_OK) return NULL;
    sl_gguf_vtype et;
    uint64_t n;
    const sl_gguf_kv *kv;
    if (sl_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &kv) != SL_OK || et != SL_GGUF_STRING || id >= n)
        return NULL;
    sl_str s = sl_gguf_arr_str(kv, id);
    return sl_strndup(s.ptr, (size_t)s.len);
}

int cmd_template(int argc, char **argv) {
    opt_val v[O_COUNT];
    const char *pos[1];
    int n_pos, rc = 1;
    int r = opts_parse("template", USAGE, OPTS, O_COUNT, v, argc, argv, pos, 0, &n_pos);
    if (r != 0) return r > 0 ? 0 : 1;

    sl_gguf *g = NULL;
    sl_template *tpl = NULL;
    char *src = NULL, *bos = NULL, *eos = NULL, *out = NULL, *msg_text = NULL;
    json_t *root = NULL, *vars = NULL;
    size_t src_len = 0, out_len = 0, msg_len = 0;

    if (v[O_MODEL].set == v[O_TEMPLATE].set) {
        fprintf(stderr, "shardlm template: give exactly one of -m MODEL and --template FILE\n");
        goto done;
    }
    if (!v[O_MESSAGES].set) {
        fprintf(stderr, "shardlm template: no messages given (--messages FILE.json)\n");
        goto done;
    }
    if (v[O_TEMPLATE].set) {
        char *t = sl_read_file(v[O_TEMPLATE].s, &src_len);
        if (!t) {
            fprintf(stderr, "shardlm template: cannot read '%s'\n", v[O_TEMPLATE].s);
            goto done;
        }
        src = sl_strndup(t, src_len);
        free(t);
        if (!src) goto nomem;
    } else {
        if (sl_gguf_open(v[O_MODEL].s, &g) != SL_OK) {
            fprintf(stderr, "shardlm template: %s\n", sl_last_error());
            goto done;
        }
        sl_str s;
        if (sl_gguf_find(g, "tokenizer.chat_template") && sl_gguf_get_str(g, "tokenizer.chat_template", &s) == SL_OK) {
            src = sl_strndup(s.ptr, (size_t)s.len);
            src_len = (size_t)s.len;
        } else {
            const char *def = sl_chat_template_default();
            src = sl_strdup(def);
            src_len = strlen(def);
        }
        if (!src) goto nomem;
        bos = token_text(g, "bos");
        eos = token_text(g, "eos");
    }
    if (v[O_BOS].set) { sl_free(bos); bos = sl_strdup(v[O_BOS].s); }
    if (v[O_EOS].set) { sl_free(eos); eos = sl_strdup(v[O_EOS].s); }

    if (!(msg_text = sl_read_file(v[O_MESSAGES].s, &msg_len))) {
        fprintf(stderr, "shardlm template: cannot read '%s'\n", v[O_MESSAGES].s);
        goto done;
    }
    json_error_t jerr;
    root = json_loadb(msg_text, msg_len, 0, &jerr);
    if (!root) {
        fprintf(stderr, "shardlm template: %s: line %d, column %d: %s\n", v[O_MESSAGES].s, jerr.line, jerr.column,
                jerr.text);
        goto done;
    }
    if (json_is_array(root)) {
        vars = json_object();
        if (!vars || json_object_set(vars, "messages", root)) goto nomem;
    } else if (json_is_object(root) && json_is_array(json_object_get(root, "messages"))) {
        vars = json_deep_copy(root);
        if (!vars) goto nomem;
    } else {
        fprintf(stderr, "shardlm template: %s: expected a list of messages or an object with \"messages\"\n",
                v[O_MESSAGES].s);
        goto done;
    }
    if (v[O_NO_GEN].b || !json_object_get(vars, "add_generation_prompt")) {
        if (json_object_set_new(vars, "add_generation_prompt", json_boolean(!v[O_NO_GEN].b))) goto nomem;
    }
    if (json_object_set_new(vars, "bos_token", json_string(bos ? bos : "")) ||
        json_object_set_new(vars, "eos_token", json_string(eos ? eos : ""))) {
        fprintf(stderr, "shardlm template: bos/eos text is not valid UTF-8\n");
        goto done;
    }
    if (!json_object_get(vars, "tools") && json_object_set_new(vars, "tools", json_null())) goto nomem;
    if (!json_object_get(vars, "documents") && json_object_set_new(vars, "documents", json_null())) goto nomem;

    if (sl_template_compile(src, src_len, &tpl) != SL_OK ||
        sl_template_render(tpl, vars, NULL, &out, &out_len) != SL_OK) {
        fprintf(stderr, "shardlm template: %s\n", sl_last_error());
        goto done;
    }
    if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout) != 0) {
        fprintf(stderr, "shardlm template: cannot write the output\n");
        goto done;
    }
    rc = 0;
    goto done;
nomem:
    fprintf(stderr, "shardlm template: out of memory\n");
done:
    sl_free(out);
    sl_template_destroy(tpl);
    json_decref(vars);
    json_decref(root);
    free(msg_text);
    sl_free(src);
    sl_free(bos);
    sl_free(eos);
    sl_gguf_close(g);
    return rc;
}
