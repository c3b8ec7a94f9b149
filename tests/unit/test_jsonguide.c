/*
 * test_jsonguide.c — JSON mode's recognizer (engine/jsonguide.c) against
 * RFC 8259 cases written here and against jansson, an independent parser:
 * every document jansson writes is accepted byte by byte and complete at its
 * end, its proper prefixes are accepted and not complete, and a mutated
 * document the recognizer accepts as complete is one jansson parses to an
 * object. Then the token mask over stories260K's vocabulary.
 */
#include "harness.h"

#include "engine/jsonguide.h"
#include "model/model.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static sl_json_schema *any_object(void) {
    static sl_json_schema *sc;
    if (!sc) sl_json_schema_compile(NULL, &sc);
    return sc;
}

/* 1: every byte accepted and complete; 0: every byte accepted, not complete; -1: a byte refused. */
static int run_schema(const sl_json_schema *sc, const char *text, size_t n) {
    sl_json_state s;
    sl_json_init(&s, sc);
    for (size_t i = 0; i < n; i++)
        if (!sl_json_feed(&s, (uint8_t)text[i])) return -1;
    return sl_json_done(&s) ? 1 : 0;
}
static int run(const char *text, size_t n) { return run_schema(any_object(), text, n); }
static int runs_in(const sl_json_schema *sc, const char *text) { return run_schema(sc, text, strlen(text)); }
static int runs(const char *text) { return run(text, strlen(text)); }

TEST(rfc8259_cases) {
    static const char *complete[] = {
        "{}", "{\"a\":1}", " {\"a\":[1,-2.5e+3,0.25,1E-7,true,false,null,{\"b\":\"\\u00e9\\n\\\"\\\\\\/\"}]}",
        "{\n  \"a\": 0,\n\t\"b\": []\n}", "{\"\":\"\"}", "{\"a\":{\"b\":{\"c\":[[[]]]}}}", "{\"x\":\"\xc3\xa9 \xe2\x82\xac\"}",
        "{\"n\":-0}", "{\"n\":0e0}", "{\"n\":123456789012345678901234567890}",
    };
    for (size_t i = 0; i < sizeof complete / sizeof complete[0]; i++)
        CHECK_MSG(runs(complete[i]) == 1, "complete: %s -> %d", complete[i], runs(complete[i]));
    static const char *prefixes[] = {"", " ", "{", "{\"a", "{\"a\":", "{\"a\":tr", "{\"a\":-", "{\"a\":1.", "{\"a\":1e",
                                     "{\"a\":1e+", "{\"a\":\"\\u00", "{\"a\":[1,", "{\"a\":12"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        CHECK_MSG(runs(prefixes[i]) == 0, "prefix: '%s' -> %d", prefixes[i], runs(prefixes[i]));
    static const char *refused[] = {
        "[1]", "\"a\"", "1", "{\"a\":01}", "{\"a\":.5}", "{\"a\":1.e3}", "{\"a\":+1}", "{\"a\":tru}", "{\"a\" 1}", "{,}",
        "{\"a\":1,}", "{\"a\":\"\x01\"}", "{\"a\":\"\\q\"}", "{\"a\":1}}", "{\"a\":[1,]}", "{a:1}", "{\"a\":1]",
        "{\"a\":[1}", "{\"a\":\"\\u12g4\"}", "{\"a\":Infinity}", "{\"a\":1}x", "{'a':1}", "{\"a\":-}",
        /* whitespace: one space, or a newline and at most 20 spaces or tabs */
        "{  \"a\":1}", "{\"a\":1\n\n}", "{\r\n\"a\":1}", "\t{}", "{\n                     \"a\":1}",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        CHECK_MSG(runs(refused[i]) == -1, "refused: %s -> %d", refused[i], runs(refused[i]));
    CHECK(runs("{\n                    \"a\":1}") == 1); /* 20 spaces of indentation */
    /* nesting: SL_JSON_MAX_DEPTH containers, not one more */
    char deep[2 * SL_JSON_MAX_DEPTH + 8];
    size_t k = 0;
    deep[k++] = '{';
    deep[k++] = '"';
    deep[k++] = '"';
    deep[k++] = ':';
    for (int i = 1; i < SL_JSON_MAX_DEPTH; i++) deep[k++] = '[';
    for (int i = 1; i < SL_JSON_MAX_DEPTH; i++) deep[k++] = ']';
    deep[k++] = '}';
    CHECK_EQ_INT(run(deep, k), 1);
    memmove(deep + 5, deep + 4, k - 4);
    deep[4] = '[';
    CHECK_EQ_INT(run(deep, 5 + SL_JSON_MAX_DEPTH - 1), -1);
}

/* ---- schemas ---------------------------------------------------------------------- */

static const char SCHEMA_A[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":5,\"description\":\"who\"},"
    "\"age\":{\"type\":\"integer\"},"
    "\"score\":{\"type\":\"number\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"bc\"]},\"minItems\":1,\"maxItems\":2},"
    "\"pet\":{\"anyOf\":[{\"$ref\":\"#/$defs/Pet\"},{\"type\":\"null\"}]},"
    "\"ok\":{\"type\":\"boolean\"},"
    "\"extra\":{}},"
    "\"required\":[\"name\",\"age\"],"
    "\"$defs\":{\"Pet\":{\"type\":\"object\",\"title\":\"Pet\",\"properties\":{\"kind\":{\"const\":\"cat\"},"
    "\"lives\":{\"enum\":[1,9,12]}},\"required\":[\"kind\"]}}}";

static sl_json_schema *compile_text(const char *text, sl_status *st) {
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    sl_json_schema *sc = NULL;
    *st = j ? sl_json_schema_compile(j, &sc) : SL_ERR_INVALID;
    json_decref(j);
    return sc;
}

TEST(schema_cases) {
    sl_status st;
    sl_json_schema *sc = compile_text(SCHEMA_A, &st);
    CHECK_MSG(st == SL_OK, "%s", sl_last_error());
    static const char *complete[] = {
        "{\"name\":\"Bob\",\"age\":31}",
        "{\"name\":\"\xc3\xa9\",\"age\":-2,\"score\":1.5e3,\"tags\":[\"a\",\"bc\"],\"pet\":{\"kind\":\"cat\",\"lives\":12},"
        "\"ok\":true,\"extra\":[1,{\"x\":null}]}",
        "{\"name\":\"Bob\",\"age\":0,\"pet\":null}",
        "{\"name\":\"Bob\",\"age\":1,\"pet\":{\"kind\":\"cat\",\"lives\":1}}",
        "{\"name\": \"Bob\",\n  \"age\": 1}",
        "{\"name\":\"a\\\"b\\u00e9!\",\"age\":1}", /* escapes count as one character: 5 */
        "{\"name\":\"B\",\"age\":7,\"extra\":\"free text of any length at all\"}",
    };
    for (size_t i = 0; i < sizeof complete / sizeof complete[0]; i++)
        CHECK_MSG(run_schema(sc, complete[i], strlen(complete[i])) == 1, "complete: %s -> %d", complete[i],
                  run_schema(sc, complete[i], strlen(complete[i])));
    static const char *prefixes[] = {"{\"name\":\"Bob\",\"age\":1,\"pet\":{\"kind\":\"cat\",\"lives\":1",
                                     "{\"name\":\"Bob\",\"age\":1", "{\"na", "{\"name\":\"Bob\",\"age\":1,\"tags\":[\"b"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        CHECK_MSG(run_schema(sc, prefixes[i], strlen(prefixes[i])) == 0, "prefix: %s", prefixes[i]);
    static const char *refused[] = {
        "{\"age\":31,\"name\":\"Bob\"}",                                /* declared order */
        "{\"name\":\"Bobbyy\",\"age\":1}",                              /* maxLength */
        "{\"name\":\"\",\"age\":1}",                                    /* minLength */
        "{\"name\":\"Bob\",\"age\":1.5}",                               /* integer */
        "{\"name\":\"Bob\",\"age\":1e3}",                               /* integer */
        "{\"name\":\"Bob\"}",                                           /* required */
        "{}",                                                           /* required */
        "{\"name\":\"Bob\",\"age\":1,\"tags\":[]}",                     /* minItems */
        "{\"name\":\"Bob\",\"age\":1,\"tags\":[\"a\",\"a\",\"a\"]}",    /* maxItems */
        "{\"name\":\"Bob\",\"age\":1,\"tags\":[\"c\"]}",                /* enum */
        "{\"name\":\"Bob\",\"age\":1,\"x\":1}",                         /* undeclared */
        "{\"name\":\"Bob\",\"age\":1,\"pet\":{\"kind\":\"dog\"}}",      /* const */
        "{\"name\":\"Bob\",\"age\":1,\"pet\":{\"lives\":9}}",           /* required kind first */
        "{\"name\":\"Bob\",\"age\":1,\"pet\":{\"kind\":\"cat\",\"lives\":2}}",
        "{\"name\":\"Bob\",\"age\":1,\"pet\":{\"kind\":\"cat\",\"lives\":123}}",
        "{\"name\":\"Bob\",\"age\":1,\"ok\":1}",
        "{\"name\":\"Bob\",\"age\":1,\"score\":\"1\"}",
        "{\"name\":\"Bob\",\"age\":1,}",
        "{\"name\":\"Bob\",\"age\":1,\"pet\":[]}",
        "{\"name\":\"Bob\",\"age\":1,\"ok\":true,\"score\":2}", /* order */
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        CHECK_MSG(run_schema(sc, refused[i], strlen(refused[i])) == -1, "refused: %s -> %d", refused[i],
                  run_schema(sc, refused[i], strlen(refused[i])));
    sl_json_schema_release(sc);

    /* recursion through $ref; additionalProperties with a schema where no property is declared */
    sc = compile_text("{\"$defs\":{\"N\":{\"type\":\"object\",\"properties\":{\"kids\":{\"type\":\"array\",\"items\":"
                      "{\"$ref\":\"#/$defs/N\"}}}}},\"$ref\":\"#/$defs/N\"}", &st);
    CHECK_MSG(st == SL_OK, "%s", sl_last_error());
    CHECK_EQ_INT(runs_in(sc, "{\"kids\":[{\"kids\":[]},{},{\"kids\":[{}]}]}"), 1);
    CHECK_EQ_INT(runs_in(sc, "{\"kids\":[{\"kid\":[]}]}"), -1);
    sl_json_schema_release(sc);
    sc = compile_text("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", &st);
    CHECK(st == SL_OK);
    CHECK_EQ_INT(runs_in(sc, "{\"a\":1,\"any key\":-20}"), 1);
    CHECK_EQ_INT(runs_in(sc, "{\"a\":\"x\"}"), -1);
    sl_json_schema_release(sc);
    sc = compile_text("{\"type\":\"object\",\"additionalProperties\":false}", &st);
    CHECK(st == SL_OK);
    CHECK_EQ_INT(runs_in(sc, "{}"), 1);
    CHECK_EQ_INT(runs_in(sc, "{\"a\":1}"), -1);
    sl_json_schema_release(sc);

    /* minProperties / maxProperties: exactly one of three declared properties (a forced tool call's
     * {"function name": arguments}); no key is offered that would leave the bounds out of reach */
    sc = compile_text("{\"type\":\"object\",\"properties\":{\"a\":{},\"b\":{},\"c\":{}},\"minProperties\":1,"
                      "\"maxProperties\":1,\"additionalProperties\":false}", &st);
    CHECK_MSG(st == SL_OK, "%s", sl_last_error());
    CHECK_EQ_INT(runs_in(sc, "{}"), -1);
    CHECK_EQ_INT(runs_in(sc, "{\"b\":1}"), 1);
    CHECK_EQ_INT(runs_in(sc, "{\"c\":[]}"), 1);
    CHECK_EQ_INT(runs_in(sc, "{\"a\":1,"), -1);
    sl_json_schema_release(sc);
    sc = compile_text("{\"properties\":{\"a\":{},\"b\":{},\"c\":{}},\"required\":[\"c\"],\"minProperties\":2,"
                      "\"maxProperties\":2}", &st);
    CHECK_MSG(st == SL_OK, "%s", sl_last_error());
    CHECK_EQ_INT(runs_in(sc, "{\"c\":1}"), -1);       /* c alone is too few, and nothing may follow it */
    CHECK_EQ_INT(runs_in(sc, "{\"a\":1,\"c\":2}"), 1);
    CHECK_EQ_INT(runs_in(sc, "{\"b\":1,\"c\":2}"), 1);
    CHECK_EQ_INT(runs_in(sc, "{\"a\":1,\"b\""), -1); /* then c would make three */
    sl_json_schema_release(sc);
    sc = compile_text("{\"type\":\"object\",\"minProperties\":1,\"maxProperties\":2}", &st);
    CHECK_MSG(st == SL_OK, "%s", sl_last_error());
    CHECK_EQ_INT(runs_in(sc, "{}"), -1);
    CHECK_EQ_INT(runs_in(sc, "{\"x\":1}"), 1);
    CHECK_EQ_INT(runs_in(sc, "{\"x\":1,\"y\":{}}"), 1);
    CHECK_EQ_INT(runs_in(sc, "{\"x\":1,\"y\":{},"), -1);
    sl_json_schema_release(sc);

    /* refused schemas, the place named */
    static const struct {
        const char *schema, *says;
    } bad[] = {
        {"{\"type\":\"string\"}", "root must be an object"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"format\":\"date\"}}}",
         "properties.a: 'format' is not supported"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}}}",
         "properties.a: alternatives must begin differently"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#/$defs/Nope\"}}}", "properties.a: '$ref' must name"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"b\"]}", "'required' names a property"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"additionalProperties\":true}", "'additionalProperties'"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}}}",
         "properties.a: 'minItems' is above 'maxItems'"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"widget\"}}}", "'widget' is not a JSON Schema type"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"enum\":[1,1]}}}", "a value twice"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"minimum\":3}}}", "'minimum' is not supported"},
        {"{\"$ref\":\"#\"}", "refers to itself"},
        {"{\"$defs\":{\"A\":{\"$ref\":\"#/$defs/B\"},\"B\":{\"anyOf\":[{\"$ref\":\"#/$defs/A\"}]}},\"$ref\":\"#/$defs/A\"}",
         "refers to itself"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#/properties/a\"}}}", "'$ref' must name"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"minProperties\":2}", "'minProperties' is above the number"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"a\"],\"maxProperties\":0}",
         "'maxProperties' is below the required"},
        {"{\"type\":\"object\",\"additionalProperties\":false,\"minProperties\":1}", "'minProperties' asks for keys"},
        {"{\"type\":\"object\",\"minProperties\":3,\"maxProperties\":1}", "'minProperties' is above 'maxProperties'"},
    };
    /* literals are matched byte by byte, at most 255 bytes each */
    char longenum[400];
    snprintf(longenum, sizeof longenum, "{\"type\":\"object\",\"properties\":{\"a\":{\"enum\":[\"%0300d\"]}}}", 7);
    sc = compile_text(longenum, &st);
    CHECK_MSG(st == SL_ERR_INVALID && strstr(sl_last_error(), "longer than 255 bytes"), "%s", sl_last_error());
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sc = compile_text(bad[i].schema, &st);
        CHECK_MSG(st == SL_ERR_INVALID && !sc && strstr(sl_last_error(), bad[i].says), "%s -> %s", bad[i].schema,
                  sl_last_error());
    }
}

/* Random schemas from the supported keywords (and some others), compiled, then random bytes fed: whatever
 * compiles must follow any input without fault (run under ASan), refuse leaving the state unchanged, and
 * accept the bytes of a document only if it can begin one. */
/* xorshift64: reproducible test data (each test sets rng_state first) */
static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint32_t rnd(uint32_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}
static json_t *random_schema(int depth) {
    static const char *types[] = {"object", "array", "string", "number", "integer", "boolean", "null"};
    json_t *o = json_object();
    switch (rnd(depth > 3 ? 5 : 9)) {
    case 0: json_object_set_new(o, "type", json_string(types[rnd(7)])); break;
    case 1: json_object_set_new(o, "enum", json_pack("[s,i,b,n]", "x", (int)rnd(20), rnd(2), NULL)); break;
    case 2: json_object_set_new(o, "const", json_string("c")); break;
    case 3: json_object_set_new(o, "$ref", json_string(rnd(2) ? "#/$defs/D" : "#")); break;
    case 4:
        json_object_set_new(o, "type", json_string("string"));
        json_object_set_new(o, "maxLength", json_integer(rnd(4)));
        break;
    case 5: {
        json_t *p = json_object();
        for (int i = (int)rnd(4); i > 0; i--) {
            char k[4] = {'k', (char)('a' + rnd(3)), 0, 0};
            json_object_set_new(p, k, random_schema(depth + 1));
        }
        json_object_set_new(o, "type", json_string("object"));
        json_object_set_new(o, "properties", p);
        if (json_object_size(p) && rnd(2)) json_object_set_new(o, "required", json_pack("[s]", json_object_iter_key(json_object_iter(p))));
        if (rnd(3) == 0) json_object_set_new(o, "minProperties", json_integer(rnd(3)));
        if (rnd(3) == 0) json_object_set_new(o, "maxProperties", json_integer(rnd(3)));
        break;
    }
    case 6:
        json_object_set_new(o, "type", json_string("array"));
        json_object_set_new(o, "items", random_schema(depth + 1));
        if (rnd(2)) json_object_set_new(o, "maxItems", json_integer(rnd(3)));
        break;
    case 7: json_object_set_new(o, "anyOf", json_pack("[o,o]", random_schema(depth + 1), random_schema(depth + 1))); break;
    default: json_object_set_new(o, rnd(2) ? "additionalProperties" : "minimum", rnd(2) ? json_true() : random_schema(depth + 1)); break;
    }
    return o;
}

TEST(random_schemas_follow_any_input) {
    rng_state = 88172645463325252ull;
    static const char alphabet[] = "{}[],:\" 0123456789.-eEtrufalsnxckab\n\\";
    int compiled = 0, accepted_bytes = 0, completed = 0;
    for (int k = 0; k < 3000; k++) {
        json_t *root = json_object();
        json_object_set_new(root, "type", json_string("object"));
        json_object_set_new(root, "properties", json_pack("{s:o,s:o}", "ka", random_schema(0), "kb", random_schema(0)));
        json_object_set_new(root, "$defs", json_pack("{s:o}", "D", random_schema(1)));
        sl_json_schema *sc = NULL;
        if (sl_json_schema_compile(root, &sc) == SL_OK) {
            compiled++;
            /* a random walk through what may come next: every refusal leaves the state as it was */
            sl_json_state s;
            sl_json_init(&s, sc);
            for (int i = 0; i < 200; i++) {
                uint8_t ok[sizeof alphabet];
                int n_ok = 0;
                for (size_t b = 0; b + 1 < sizeof alphabet; b++) {
                    sl_json_state t = s;
                    if (sl_json_feed(&t, (uint8_t)alphabet[b])) ok[n_ok++] = (uint8_t)alphabet[b];
                    else CHECK(!memcmp(&t, &s, sizeof s));
                }
                if (n_ok == 0) break;
                CHECK(sl_json_feed(&s, ok[rnd((uint32_t)n_ok)]));
                accepted_bytes++;
                if (sl_json_done(&s)) completed++;
                if (sl_json_done(&s)) break;
            }
        }
        sl_json_schema_release(sc);
        json_decref(root);
    }
    CHECK_MSG(compiled > 500, "only %d of 3000 random schemas compiled", compiled);
    CHECK_MSG(accepted_bytes > 20000, "%d bytes accepted in %d walks", accepted_bytes, compiled);
    CHECK_MSG(completed > 100, "%d random walks completed a document", completed);
}

/* ---- against jansson ------------------------------------------------------------- */

static json_t *random_value(int depth);
static json_t *random_string(void) {
    static const char chars[] = "abcXYZ 019-_.,:{}[]\"\\/\t\n";
    char s[12];
    int n = (int)rnd(8);
    for (int i = 0; i < n; i++) s[i] = chars[rnd(sizeof chars - 1)];
    return json_stringn(s, (size_t)n);
}
static json_t *random_container(int depth, bool object) {
    json_t *c = object ? json_object() : json_array();
    int n = (int)rnd(4);
    for (int i = 0; i < n; i++) {
        if (object) {
            char key[8];
            snprintf(key, sizeof key, "k%u", rnd(100));
            json_object_set_new(c, key, random_value(depth + 1));
        } else {
            json_array_append_new(c, random_value(depth + 1));
        }
    }
    return c;
}
static json_t *random_value(int depth) {
    switch (rnd(depth >= 4 ? 6 : 8)) {
    case 0: return json_integer((json_int_t)rnd(2000000) - 1000000);
    case 1: return json_real(ldexp((double)rnd(1000000) - 500000, (int)rnd(80) - 40));
    case 2: return random_string();
    case 3: return json_true();
    case 4: return json_false();
    case 5: return json_null();
    case 6: return random_container(depth, true);
    default: return random_container(depth, false);
    }
}

TEST(jansson_documents_and_mutants) {
    rng_state = 0x243F6A8885A308D3ull;
    static const size_t flags[] = {JSON_COMPACT, 0, JSON_INDENT(2)};
    static const char mut[] = "{}[],:\" 0123456789.-+eEtrfalsn\n\\/abc";
    int docs = 0, mutants_complete = 0, disagree = 0;
    for (int d = 0; d < 600; d++) {
        json_t *o = random_container(0, true);
        char *text = json_dumps(o, flags[d % 3] | JSON_PRESERVE_ORDER);
        json_decref(o);
        CHECK(text);
        const size_t n = strlen(text);
        docs += runs(text) == 1;
        if (runs(text) != 1) fprintf(stderr, "    refused: %s\n", text);
        for (size_t cut = 0; cut < n; cut += 1 + rnd(5))
            if (run(text, cut) != 0) {
                fprintf(stderr, "    prefix %zu of %s -> %d\n", cut, text, run(text, cut));
                disagree++;
            }
        for (int m = 0; m < 20; m++) {
            char *t = strdup(text);
            t[rnd((uint32_t)n)] = mut[rnd(sizeof mut - 1)];
            if (run(t, n) == 1) {
                mutants_complete++;
                json_error_t je;
                json_t *p = json_loadb(t, n, 0, &je);
                /* jansson refuses numbers beyond a double's range, which JSON's grammar allows */
                if (!json_is_object(p) && !strstr(je.text, "overflow")) {
                    fprintf(stderr, "    accepted, jansson refuses (%s): %s\n", je.text, t);
                    disagree++;
                }
                json_decref(p);
            }
            free(t);
        }
        free(text);
    }
    CHECK_EQ_INT(docs, 600);
    CHECK_EQ_INT(disagree, 0);
    CHECK_MSG(mutants_complete > 1000, "only %d mutants were complete documents", mutants_complete);
}

/* ---- the mask over a real vocabulary -------------------------------------------------- */

/* The mask after `text` (under schema sc) against each token's text run through the recognizer: the
 * tokens where they differ (-1 if text is refused); *allowed: what the mask allows. */
static int32_t mask_vs_recognizer(const sl_json_guide *g, const sl_tokenizer *tok, const sl_json_schema *sc,
                                  const char *text, float *l, int32_t *allowed) {
    sl_json_state st;
    sl_json_init(&st, sc);
    if (!sl_json_feed_all(&st, text, strlen(text))) return -1;
    const int32_t n = sl_tokenizer_n_vocab(tok);
    for (int32_t i = 0; i < n; i++) l[i] = 0;
    *allowed = sl_json_guide_mask(g, &st, l);
    int32_t differ = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t tn;
        const char *t = sl_json_guide_text(g, i, &tn);
        sl_json_state c = st;
        const bool want = !sl_tokenizer_is_eog(tok, i) && tn > 0 && sl_json_feed_all(&c, t, tn);
        differ += want == isinf(l[i]);
    }
    return differ;
}

TEST(mask_over_stories_vocabulary) {
    const char *path = sl_test_shared("models/stories260K.gguf");
    if (!path) return;
    sl_model *m = NULL;
    CHECK_OK(sl_model_load(path, &m));
    const sl_tokenizer *tok = sl_model_tokenizer(m);
    const int32_t n = sl_tokenizer_n_vocab(tok);
    sl_json_guide *g = NULL;
    CHECK_OK(sl_json_guide_create(tok, &g));
    float *l = calloc((size_t)n, sizeof(float));
    sl_json_state s;
    sl_json_init(&s, any_object());
    CHECK(sl_json_feed_all(&s, " {", 2));
    /* after "{": a key or "}", maybe after one whitespace unit */
    const int32_t allowed = sl_json_guide_mask(g, &s, l);
    int32_t seen = 0, wrong = 0;
    bool quote = false, brace = false;
    for (int32_t i = 0; i < n; i++) {
        if (isinf(l[i])) continue;
        seen++;
        size_t k;
        const char *t = sl_json_guide_text(g, i, &k);
        size_t j = 0;
        while (j < k && (t[j] == ' ' || t[j] == '\n' || t[j] == '\t')) j++;
        wrong += sl_tokenizer_is_eog(tok, i) || (j < k && t[j] != '"' && t[j] != '}'); /* (whitespace alone may come) */
        quote |= k == 1 && t[0] == '"';
        brace |= k == 1 && t[0] == '}';
    }
    CHECK_EQ_INT(seen, allowed);
    CHECK_EQ_INT(wrong, 0);
    CHECK(quote && brace);
    /* in every kind of state the mask is each token's text run through the recognizer (its shortcuts change nothing) */
    static const char *states[] = {"", "{", "{\"a", "{\"a\\", "{\"a\"", "{\"a\":", "{\"a\":-1", "{\"a\":[tr",
                                   "{\"a\":\"x y", "{\"a\":{}", "{\"a\":[1,\n  "};
    for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
        int32_t allowed_k;
        const int32_t differ = mask_vs_recognizer(g, tok, any_object(), states[k], l, &allowed_k);
        CHECK_MSG(differ == 0, "after '%s': %d tokens masked wrongly", states[k], differ);
    }
    /* the same under a schema, in its kinds of state (keys, limited strings, literals, integers) */
    sl_status sst;
    sl_json_schema *sa = compile_text(SCHEMA_A, &sst);
    CHECK(sst == SL_OK);
    static const char *sstates[] = {"", "{", "{\"na", "{\"name\":\"Bo", "{\"name\":\"Bob\",\"age\":1",
                                    "{\"name\":\"Bob\",\"age\":1,", "{\"name\":\"B\",\"age\":1,\"tags\":[",
                                    "{\"name\":\"B\",\"age\":1,\"pet\":{\"kind\":\"cat\",\"lives\":1"};
    for (size_t k = 0; k < sizeof sstates / sizeof sstates[0]; k++) {
        int32_t ok_n;
        const int32_t differ = mask_vs_recognizer(g, tok, sa, sstates[k], l, &ok_n);
        CHECK_MSG(differ == 0 && ok_n > 0, "schema, after '%s': %d tokens masked wrongly, %d allowed", sstates[k], differ,
                  ok_n);
    }
    sl_json_schema_release(sa);
    /* end of generation: only once the object is complete */
    const int32_t eos = sl_tokenizer_eog_at(tok, 0);
    for (int32_t i = 0; i < n; i++) l[i] = 0;
    sl_json_guide_mask(g, &s, l);
    CHECK(isinf(l[eos]));
    CHECK(sl_json_feed_all(&s, "}", 1) && sl_json_done(&s));
    for (int32_t i = 0; i < n; i++) l[i] = 0;
    sl_json_guide_mask(g, &s, l);
    CHECK(!isinf(l[eos]));
    free(l);
    sl_json_guide_destroy(g);
    sl_model_destroy(m);
}
