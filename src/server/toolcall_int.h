/*
 * toolcall_int.h — what the tool-call parsers share (toolcall.c and the
 * files of further syntaxes, toolcall_*.c). Not part of the server's API:
 * toolcall.h is.
 *
 * A parser gets a finished answer s[0, n) and appends each call it reads to
 * `calls` with sl_tc_add_call / sl_tc_add_call_object; it returns false when
 * the text holds no complete call of its syntax (sl_tool_parse then drops
 * whatever it appended), and sets *content to the length of the text before
 * the first call (trailing whitespace is dropped by the caller).
 */
#ifndef SL_SERVER_TOOLCALL_INT_H
#define SL_SERVER_TOOLCALL_INT_H

#include "server/toolcall.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The first index from i on that is not whitespace (n if none). */
size_t sl_tc_skip_ws(const char *s, size_t n, size_t i);
/* s[i, n) starts with m. */
bool sl_tc_at(const char *s, size_t n, size_t i, const char *m);
/* s[*i, n) starts with m: step over it. */
bool sl_tc_eat(const char *s, size_t n, size_t *i, const char *m);
/* Where the first call of syntax f begins (the earliest of its begin markers; n if none), the marker's
 * length in *mlen. */
size_t sl_tc_find_begin(sl_tool_format f, const char *s, size_t n, size_t *mlen);
/* One JSON object or array at s[*i, n) (new reference, NULL if none); *i steps past it. */
json_t *sl_tc_json_at(const char *s, size_t n, size_t *i);

/* Append {"name": name (whitespace around it dropped), "arguments": args as compact JSON text}; args
 * may be an object, NULL / null (no arguments: "{}") or a string holding a JSON object. False for an
 * empty name, a NUL in it, or arguments of another kind. */
bool sl_tc_add_call(json_t *calls, const char *name, size_t name_len, const json_t *args);
/* {"name": ..., "arguments" or "parameters": ...} */
bool sl_tc_add_call_object(json_t *calls, const json_t *o);
/* A call object, or a non-empty array of them. */
bool sl_tc_add_calls_value(json_t *calls, const json_t *v);
/* The JSON value at s[*i, n) as calls (sl_tc_add_calls_value); *i steps past it. */
bool sl_tc_calls_json_at(json_t *calls, const char *s, size_t n, size_t *i);
/* The call `name` whose arguments are the JSON object at s[*i, n); *i steps past it. */
bool sl_tc_args_call_at(json_t *calls, const char *name, size_t nl, const char *s, size_t n, size_t *i);

/* The schema type of parameter `key` of tool `name` in the request's tools ("" when not declared). */
const char *sl_tc_param_type(const json_t *tools, const char *name, size_t nl, const char *key, size_t kl);
/* args[key] = the text v typed by `type` (a JSON Schema type name; NULL, "" or "string": a string): for
 * another type its JSON value when v parses (with `python`, else as a Python literal, sl_tc_py_literal),
 * otherwise the string. False for an empty key, a NUL in the key or value, or a key already in args. */
bool sl_tc_set_value(json_t *args, const char *type, bool python, const char *k, size_t kl, const char *v,
                     size_t vl);
/* sl_tc_set_value typed by the tool's schema (sl_tc_param_type). */
bool sl_tc_set_arg(json_t *args, const json_t *tools, const char *name, size_t nl, const char *k, size_t kl,
                   const char *v, size_t vl);

/* Syntaxes of toolcall_py.c (see toolcall.h): LFM2's Python calls between <|tool_call_start|> and
 * <|tool_call_end|>, and Gemma 4's call:NAME{...} blocks. */
bool sl_tc_parse_pythonic(json_t *calls, const char *s, size_t n, size_t *content);
bool sl_tc_parse_gemma4(json_t *calls, const char *s, size_t n, size_t *content);
/* The whole of s[0, n) as one Python literal (str, int, float, True/False/None, list, tuple, dict with str
 * keys; JSON's spellings too), as JSON; NULL when it is not one. */
json_t *sl_tc_py_literal(const char *s, size_t n);

#endif
