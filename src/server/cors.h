/*
 * cors.h — cross-origin requests (CORS), as vLLM and llama.cpp allow them by
 * default, so that a web page from another origin can call the API: a
 * request whose Origin the allowed list names gets
 * Access-Control-Allow-Origin back; a preflight (OPTIONS) is answered 204
 * with the methods and the headers it asks for, before any API key check
 * (browsers send none with it).
 */
#ifndef SL_SERVER_CORS_H
#define SL_SERVER_CORS_H

#include <stdbool.h>
#include <stddef.h>

#define SL_CORS_METHODS "GET, POST, PUT, DELETE, OPTIONS"
#define SL_CORS_MAX_AGE "86400"

/* The Access-Control-Allow-Origin value for a request from origin (n bytes; NULL: not a cross-origin request)
 * under the allowed list ("*": any, else origins separated by commas; NULL or "": none) into out (cap bytes):
 * "*", or the origin itself; false when none is due. */
bool sl_cors_allow_origin(const char *list, const char *origin, size_t n, char *out, size_t cap);

#endif
