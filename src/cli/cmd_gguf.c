/*
 * cmd_gguf.c — `shardlm gguf FILE`: print what a GGUF file holds.
 *
 *   shardlm gguf model.gguf [--elems N] [--no-tensors]
 *
 * Prints the version, alignment and data offset; every metadata key with its
 * type and value (arrays: element type, count and the first few elements);
 * the tensor table (index, name, type, dims, offset from the data section,
 * bytes) and totals. The file is validated by sl_gguf_open first, so every
 * value printed lies inside the file. Text from the file is escaped before it
 * reaches the terminal (control bytes, C1 controls and invalid UTF-8 as
 * \xNN / \u00NN) and cut at a fixed number of characters.
 */
#include "commands.h"
#include "opts.h"

#include "core/types.h"
#include "model/gguf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_MAX 80   /* characters of a string value shown */
#define ELEM_STR_MAX 40 /* characters of each string element of an array */

enum { O_ELEMS, O_NO_TENSORS, O_COUNT };

static const opt_def DEFS[O_COUNT] = {
    [O_ELEMS] = {"elems", "n", OPT_INT, "3", 0, 1000000, "array elements shown per key"},
    [O_NO_TENSORS] = {"no-tensors", NULL, OPT_BOOL, NULL, 0, -1, "print the metadata only (and the totals)"},
};

static const char USAGE[] = "FILE [--elems N] [--no-tensors]";

/* Length of a valid UTF-8 sequence at p (n bytes available), or 0. */
static int utf8_len(const unsigned char *p, uint64_t n) {
    unsigned c = p[0];
    int len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len == 0 || (uint64_t)len > n) return 0;
    for (int i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if (c == 0xe0 && p[1] < 0xa0) return 0; /* overlong */
    if (c == 0xed && p[1] >= 0xa0) return 0; /* surrogates */
    if (c == 0xf0 && p[1] < 0x90) return 0; /* overlong */
    if (c == 0xf4 && p[1] >= 0x90) return 0; /* past U+10FFFF */
    return len;
}

/* Print s as a quoted, escaped string of at most max characters; `...` after the quote when cut. */
static void print_str(sl_str s, int max) {
    const unsigned char *p = (const unsigned char *)s.ptr;
    int shown = 0;
    uint64_t i = 0;
    putchar('"');
    while (i < s.len && shown < max) {
        unsigned c = p[i];
        int u = c >= 0x80 ? utf8_len(p + i, s.len - i) : 0;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else if (c < 0x80) putchar((int)c);
        else if (u == 2 && c == 0xc2 && p[i + 1] < 0xa0) printf("\\u%04x", p[i + 1]); /* C1 controls */
        else if (u > 0) fwrite(p + i, 1, (size_t)u, stdout);
        else printf("\\x%02x", c);
        i += u > 0 ? (uint64_t)u : 1;
        shown++;
    }
    putchar('"');
    if (i < s.len) fputs("...", stdout);
}

/* Shortest %g form that reads back as the same float (or double). */
static void print_float(double v, bool is_f32) {
    char buf[64];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (is_f32 ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v) break;
    }
    fputs(buf, stdout);
}

static void print_int(sl_gguf_vtype t, int64_t v) {
    if (t == SL_GGUF_U64) printf("%" PRIu64, (uint64_t)v);
    else if (t == SL_GGUF_BOOL) fputs(v ? "true" : "false", stdout);
    else printf("%" PRId64, v);
}

static void print_array(const sl_gguf_kv *kv, int64_t max_elems) {
    sl_gguf_vtype et = kv->arr_type;
    if (et == SL_GGUF_STRING) printf("[%" PRIu64 " string%s]", kv->arr_n, kv->arr_n == 1 ? "" : "s");
    else printf("[%" PRIu64 " %s]", kv->arr_n, sl_vtype_name(et));
    uint64_t n = kv->arr_n < (uint64_t)max_elems ? kv->arr_n : (uint64_t)max_elems;
    for (uint64_t i = 0; i < n; i++) {
        fputs(i ? ", " : " ", stdout);
        switch (et) {
        case SL_GGUF_STRING: print_str(sl_gguf_arr_str(kv, i), ELEM_STR_MAX); break;
        case SL_GGUF_F32: print_float(sl_gguf_arr_f32(kv, i), true); break;
        case SL_GGUF_F64: print_float(sl_gguf_arr_f64(kv, i), false); break;
        case SL_GGUF_BOOL: print_int(et, sl_gguf_arr_bool(kv, i)); break;
        default: print_int(et, sl_gguf_arr_int(kv, i)); break;
        }
    }
    if (n < kv->arr_n) fputs(n ? ", ..." : " ...", stdout);
}

static void print_value(const sl_gguf_kv *kv, int64_t max_elems) {
    switch (kv->type) {
    case SL_GGUF_STRING: print_str(sl_gguf_kv_str(kv), STR_MAX); break;
    case SL_GGUF_ARRAY: print_array(kv, max_elems); break;
    case SL_GGUF_F32: print_float(sl_gguf_kv_float(kv), true); break;
    case SL_GGUF_F64: print_float(sl_gguf_kv_float(kv), false); break;
    default: print_int(kv->type, sl_gguf_kv_int(kv)); break;
    }
}

/* A name from the file, escaped, padded to `width` columns. */
static void print_name(sl_str s, int width) {
    char buf[4 * 64 + 8];
    size_t k = 0;
    uint64_t i = 0;
    for (; i < s.len && k + 8 < sizeof buf; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c > 0x20 && c < 0x7f) buf[k++] = (char)c;
        else k += (size_t)snprintf(buf + k, sizeof buf - k, "\\x%02x", c);
    }
    if (i < s.len) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = '\0';
    printf("%-*s", width, buf);
}

static void print_human(double bytes) {
    static const char *units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    while (bytes >= 1024 && u < 6) {
        bytes /= 1024;
        u++;
    }
    if (u == 0) printf("%.0f %s", bytes, units[u]);
    else printf("%.2f %s", bytes, units[u]);
}

int cmd_gguf(int argc, char **argv) {
    opt_val v[O_COUNT];
    const char *pos[1];
    int n_pos = 0;
    int rc = opts_parse("gguf", USAGE, DEFS, O_COUNT, v, argc, argv, pos, 1, &n_pos);
    if (rc != 0) return rc > 0 ? 0 : 1;
    if (n_pos != 1) {
        fprintf(stderr, "shardlm gguf: missing FILE (see shardlm gguf --help)\n");
        return 1;
    }
    sl_gguf *g = NULL;
    if (sl_gguf_open(pos[0], &g) != SL_OK) {
        fprintf(stderr, "shardlm gguf: %s\n", sl_last_error());
        return 1;
    }
    int64_t max_elems = v[O_ELEMS].i;
    bool tensors = !(v[O_NO_TENSORS].set && v[O_NO_TENSORS].b);

    printf("file:        %s (%" PRIu64 " bytes)\n", pos[0], sl_gguf_size(g));
    printf("version:     %" PRIu32 "\n", sl_gguf_version(g));
    printf("alignment:   %" PRIu32 "\n", sl_gguf_alignment(g));
    printf("data offset: %" PRIu64 "\n", sl_gguf_data_offset(g));

    int64_t n_kv = sl_gguf_n_kv(g);
    int kw = 8;
    for (int64_t i = 0; i < n_kv; i++) {
        uint64_t l = sl_gguf_kv_at(g, i)->key.len;
        if ((int)(l > 48 ? 48 : l) > kw) kw = (int)(l > 48 ? 48 : l);
    }
    printf("\nmetadata: %" PRId64 " key%s\n", n_kv, n_kv == 1 ? "" : "s");
    for (int64_t i = 0; i < n_kv; i++) {
        const sl_gguf_kv *kv = sl_gguf_kv_at(g, i);
        fputs("  ", stdout);
        print_name(kv->key, kw);
        printf("  %-6s  ", sl_vtype_name(kv->type));
        print_value(kv, max_elems);
        putchar('\n');
    }

    int64_t n_t = sl_gguf_n_tensors(g);
    const int64_t params = sl_gguf_n_params(g);
    uint64_t bytes = 0;
    int nw = 4;
    for (int64_t i = 0; i < n_t; i++) {
        const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
        bytes = bytes > UINT64_MAX - t->nbytes ? UINT64_MAX : bytes + t->nbytes;
        if ((int)t->name.len > nw) nw = (int)t->name.len;
    }
    if (tensors) {
        printf("\ntensors: %" PRId64 " (offsets from the data section)\n", n_t);
        if (n_t > 0) printf("  %5s  %-*s  %-7s  %-20s  %12s  %12s\n", "index", nw, "name", "type", "dims", "offset",
                            "bytes");
        for (int64_t i = 0; i < n_t; i++) {
            const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
            char dims[128];
            size_t k = 0;
            for (uint32_t d = 0; d < t->n_dims; d++)
                k += (size_t)snprintf(dims + k, sizeof dims - k, "%s%" PRId64, d ? " x " : "", t->ne[d]);
            printf("  %5" PRId64 "  ", i);
            print_name(t->name, nw);
            printf("  %-7s  %-20s  %12" PRIu64 "  %12" PRIu64 "\n", sl_type_name(t->type), dims, t->offset,
                   t->nbytes);
        }
    }
    printf("\ntotal: %" PRId64 " tensor%s, %" PRId64 " parameters, %" PRIu64 " bytes (", n_t, n_t == 1 ? "" : "s",
           params, bytes);
    print_human((double)bytes);
    printf(")\n");
    sl_gguf_close(g);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "shardlm gguf: error writing the output\n");
        return 1;
    }
    return 0;
}
