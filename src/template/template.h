/*
 * template.h — chat templates: a sandboxed Jinja2 interpreter that renders
 * templates as Hugging Face transformers does (jinja2's
 * ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, the
 * loopcontrols extension, the {% generation %} tag, and the globals
 * raise_exception(msg), strftime_now(fmt) and the tojson filter of
 * transformers: json.dumps(x, ensure_ascii=False, ...)).
 *
 * Design: lexer → parser (an AST owned by the compiled template) → a
 * tree-walking evaluator over a small value type (undefined, none, bool,
 * int, float, string, list/tuple, dict, namespace, function, loop). Every
 * value made while rendering lives in one arena freed when the render ends.
 *
 * Sandbox: templates cannot reach files, the network or the process; a
 * render stops with an error once it exceeds the step budget (nodes
 * evaluated plus work proportional to bytes processed), the nesting depth,
 * the output size or the memory budget. Every error names the template line
 * and column. Input variables come in as jansson values (JSON semantics:
 * objects keep their key order, integers stay integers).
 */
#ifndef SL_TEMPLATE_TEMPLATE_H
#define SL_TEMPLATE_TEMPLATE_H

#include "shardlm.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl_template sl_template;

typedef struct sl_template_limits {
    uint64_t max_steps;  /* node evaluations + bytes processed / 64 */
    uint32_t max_depth;  /* nested evaluations (expressions, statements, macro calls) */
    size_t max_output;   /* bytes of rendered text, also the largest string */
    size_t max_memory;   /* bytes of the per-render arena */
    bool fixed_clock;    /* strftime_now formats `now` (UTC) instead of the local clock */
    int64_t now;         /* seconds since the epoch, used when fixed_clock */
} sl_template_limits;

/* 10M steps, depth 400, 16 MiB output, 256 MiB memory, the real clock. */
void sl_template_limits_default(sl_template_limits *lim);

/* Compile template source (UTF-8, `len` bytes). Syntax errors fail with
 * SL_ERR_FORMAT and a message naming line and column. */
sl_status sl_template_compile(const char *src, size_t len, sl_template **out);
void sl_template_destroy(sl_template *t);

/* Render with the variables of `vars` (a JSON object, or NULL for none);
 * `lim` may be NULL for the defaults. On success *out is a NUL-terminated
 * buffer of *out_len bytes (free with sl_free; the text may itself hold no
 * NUL). Errors: SL_ERR_INVALID (template error or raise_exception),
 * SL_ERR_RANGE (a limit), SL_ERR_NOMEM; the message names line and column. */
sl_status sl_template_render(const sl_template *t, const json_t *vars, const sl_template_limits *lim, char **out,
                             size_t *out_len);

/* The built-in fallback chat template (ChatML), for models without one. */
const char *sl_chat_template_default(void);

/* Render a chat as transformers' apply_chat_template does: variables
 * messages, add_generation_prompt, bos_token, eos_token, tools and documents
 * (JSON null when NULL), and those of `extra` (a JSON object, or
 * NULL: apply_chat_template's keyword arguments, e.g. enable_thinking; a
 * name of the ones above is refused). `tpl_src` NULL means the fallback. */
sl_status sl_chat_render(const char *tpl_src, const json_t *messages, bool add_generation_prompt, const char *bos,
                         const char *eos, const json_t *tools, const json_t *documents, const json_t *extra, char **out,
                         size_t *out_len);
/* Whether `name` is one of the variables sl_chat_render sets itself. */
bool sl_chat_reserved_var(const char *name);

#endif
