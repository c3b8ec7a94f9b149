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
#define FUZZ_JSONGUIDE_NO_MAIN
#include "../fuzz/fuzz_jsonguide.c"
#include "model/model.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"^(?=x)\"}}}",
         "properties.a: 'pattern': lookahead is not supported at offset 1"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"pattern\":\"^a\",\"format\":\"date\"}}}",
         "properties.a: 'pattern' beside an enforced 'format'"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"pattern\":7}}}", "'pattern' must be a string"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":2.5,\"maximum\":2.9}}}",
         "properties.a: no integer lies within"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"minimum\":1,\"exclusiveMaximum\":1}}}", "no number lies within"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"minimum\":1,\"exclusiveMinimum\":true}}}",
         "'exclusiveMinimum' must be a number (draft 4's"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"maximum\":\"9\"}}}", "'maximum' must be a number"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"minimum\":1e19}}}", "no number of at most 18 digits"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"exclusiveMinimum\":0,\"maximum\":1e-19}}}",
         "no number of at most 18 digits"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"not\":{\"type\":\"null\"}}}}", "properties.a: 'not' is supported only as not: {}"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"uniqueItems\":true}}}",
         "properties.a: 'uniqueItems' is supported for items that are enum, const, boolean or null values"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"uniqueItems\":true,\"items\":{\"type\":\"string\"}}}}",
         "'uniqueItems' is supported for items that are enum"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"uniqueItems\":true,\"items\":{\"enum\":[1,1.0]}}}}",
         "'uniqueItems': two of the items' values are equal"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"uniqueItems\":true,\"items\":{\"type\":\"boolean\"},\"minItems\":3}}}",
         "'minItems' asks for more distinct items than there are values"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"uniqueItems\":1}}}", "'uniqueItems' must be true or false"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"propertyNames\":{\"maxLength\":2}}",
         "'propertyNames' beside 'properties' is not supported"},
        {"{\"type\":\"object\",\"propertyNames\":{\"maximum\":2}}", "'propertyNames': 'maximum' is not supported"},
        {"{\"type\":\"object\",\"propertyNames\":{\"type\":\"integer\"}}", "'propertyNames': 'type' must be \"string\""},
        {"{\"type\":\"object\",\"propertyNames\":{\"enum\":[1,2]}}", "'propertyNames': no value of 'enum' or 'const' is a name"},
        {"{\"type\":\"object\",\"propertyNames\":{\"enum\":[\"a\"],\"pattern\":\"a\"}}", "'pattern' or 'format' beside"},
        {"{\"type\":\"object\",\"propertyNames\":7}", "'propertyNames' must be a schema"},
        {"{\"type\":\"object\",\"patternProperties\":{\"a\":{},\"b\":{}}}", "'patternProperties' is supported with one pattern"},
        {"{\"type\":\"object\",\"properties\":{\"x\":{}},\"patternProperties\":{\"a\":{}}}",
         "'patternProperties' beside 'properties', 'required' or 'propertyNames' is not supported"},
        {"{\"allOf\":[{\"patternProperties\":{\"a\":{}}},{\"patternProperties\":{\"b\":{}}}]}",
         "its schemas give 'patternProperties' different patterns"},
        {"{\"type\":\"object\",\"propertyNames\":false,\"minProperties\":1}", "asks for keys that 'propertyNames' refuses"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"multipleOf\":0}}}",
         "properties.a: 'multipleOf' must be a number above 0"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"multipleOf\":\"5\"}}}", "'multipleOf' must be a number"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"multipleOf\":1e-19}}}", "at most 18 digits after its point"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"multipleOf\":7,\"minimum\":1,\"maximum\":6}}}",
         "properties.a: no multiple of 'multipleOf'"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"multipleOf\":1e18,\"minimum\":1}}}", "no multiple of 'multipleOf'"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"allOf\":[{\"type\":\"string\"},{\"type\":[\"integer\",\"null\"]}]}}}",
         "properties.a: 'allOf': no type is allowed by all of its schemas"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"allOf\":[{\"pattern\":\"a\"},{\"pattern\":\"b\"}]}}}",
         "'allOf': its schemas give 'pattern' different values"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"allOf\":[{\"enum\":[1,2]},{\"const\":3}]}}}",
         "'allOf': no value is allowed by all of its schemas"},
        {"{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"a\"]},{\"additionalProperties\":false}]}",
         "'allOf': property 'a' is required by one schema and not allowed by another"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"allOf\":[{\"$ref\":\"#/$defs/Nope\"},{\"type\":\"string\"}]}}}",
         "properties.a.allOf[0]: '$ref' must name"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"allOf\":[{\"multipleOf\":2},{\"multipleOf\":3}]}}}",
         "properties.a: 'allOf': its schemas give 'multipleOf' different values"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"enum\":[1,2,3],\"multipleOf\":5}}}",
         "no value of 'enum' meets the keywords beside it"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"enum\":[1,true]}}}",
         "no value of 'enum' meets the keywords beside it"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"enum\":[\"x\",1],\"pattern\":\"x\"}}}",
         "'pattern' beside 'enum' or 'const' is not supported"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"}],"
         "\"enum\":[1,2]}}}", "properties.a: no alternative of 'anyOf' / 'oneOf' allows a value"},
        /* $refs that unfold without end through allOf: bounded work */
        {"{\"allOf\":[{\"type\":\"object\",\"properties\":{\"e\":{\"$ref\":\"#\"}}},{\"properties\":{\"e\":{\"$ref\":\"#/$defs/D\"}}}],"
         "\"$defs\":{\"D\":{\"$ref\":\"#\"}}}", "allOf[0]: the schema nests too deeply"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"b\"],\"additionalProperties\":false}",
         "'required' names a property that is not declared"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"anyOf\":[{\"type\":\"object\"},{\"type\":\"object\"},"
         "{\"type\":\"object\"},{\"type\":\"object\"},{\"type\":\"object\"},{\"type\":\"object\"},{\"type\":\"object\"},"
         "{\"type\":\"object\"},{\"type\":\"object\"}]}}}",
         "properties.a: more than 8 alternatives may begin alike"},
        {"{\"anyOf\":[{\"type\":\"object\"},{\"type\":\"string\"}]}", "root must be an object"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#/$defs/Nope\"}}}", "properties.a: '$ref' must name"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"b\"]}", "'required' names a property"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}}}",
         "properties.a: 'minItems' is above 'maxItems'"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"widget\"}}}", "'widget' is not a JSON Schema type"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"enum\":[1,1]}}}", "a value twice"},
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
static uint32_t rnd(uint32_t n) { return sl_test_xorshift(&rng_state, n); }
static json_t *random_schema(int depth) {
    static const char *types[] = {"object", "array", "string", "number", "integer", "boolean", "null"};
    json_t *o = json_object();
    switch (rnd(depth > 3 ? 5 : 9)) {
    case 0: json_object_set_new(o, "type", json_string(types[rnd(7)])); break;
    case 1: json_object_set_new(o, "enum", json_pack("[s,i,b,n]", "x", (int)rnd(20), rnd(2), NULL)); break;
    case 2: json_object_set_new(o, "const", json_string("c")); break;
    case 3: json_object_set_new(o, "$ref", json_string(rnd(2) ? "#/$defs/D" : "#")); break;
    case 4: {
        static const char *pats[] = {"^a+b?$", "[0-9]", "^(x|yz)*$", "^\\d{2,3}$"};
        json_object_set_new(o, "type", json_string("string"));
        json_object_set_new(o, "maxLength", json_integer(rnd(4)));
        if (rnd(2)) json_object_set_new(o, "pattern", json_string(pats[rnd(4)]));
        else if (rnd(2)) json_object_set_new(o, "format", json_string(rnd(2) ? "date" : "uuid"));
        if (rnd(2)) { /* and a bounded number */
            json_decref(o);
            o = json_pack("{s:s,s:i,s:f}", "type", rnd(2) ? "integer" : "number", "minimum", (int)rnd(20) - 10,
                          "exclusiveMaximum", (double)rnd(40) / 4);
        }
        break;
    }
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
        if (rnd(3) == 0) json_object_set_new(o, "additionalProperties", rnd(2) ? json_true() : random_schema(depth + 1));
        break;
    }
    case 6:
        json_object_set_new(o, "type", json_string("array"));
        if (rnd(3) == 0) json_object_set_new(o, "prefixItems", json_pack("[o,o]", random_schema(depth + 1), random_schema(depth + 1)));
        json_object_set_new(o, "items", rnd(4) ? random_schema(depth + 1) : json_false());
        if (rnd(2)) json_object_set_new(o, "maxItems", json_integer(rnd(3)));
        break;
    case 7:
        json_object_set_new(o, rnd(3) ? "anyOf" : "allOf", json_pack("[o,o]", random_schema(depth + 1), random_schema(depth + 1)));
        break;
    default: json_object_set_new(o, rnd(2) ? "additionalProperties" : "minimum", rnd(2) ? json_true() : random_schema(depth + 1)); break;
    }
    return o;
}

TEST(random_schemas_follow_any_input) {
    rng_state = 88172645463325252ull;
    static const char alphabet[] = "{}[],:\" 0123456789.-eEtrufalsnxckabyz\n\\";
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
static int32_t mask_vs_recognizer(sl_json_guide *g, const sl_tokenizer *tok, const sl_json_schema *sc,
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
                                   "{\"a\":\"x y", "{\"a\":{}", "{\"a\":[1,\n  ", "{\"a\":\"x\xc3", "{\"a\":\"\xf0\x9f",
                                   "{\"a\":\"\\ud83d", "{\"\\ud83d\\"};
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

/* {"a": VALUE} under {"type":"object","properties":{"a": PROP},"required":["a"]} */
static sl_json_schema *prop_schema(const char *prop) {
    char text[1024];
    snprintf(text, sizeof text, "{\"type\":\"object\",\"properties\":{\"a\":%s},\"required\":[\"a\"]}", prop);
    sl_status st;
    sl_json_schema *sc = compile_text(text, &st);
    if (st != SL_OK) sl_test_fail(__FILE__, __LINE__, "%s: %s", prop, sl_last_error());
    return sc;
}
static int run_value(const sl_json_schema *sc, const char *value) {
    char doc[512];
    snprintf(doc, sizeof doc, "{\"a\":%s}", value);
    return runs_in(sc, doc);
}
/* {"a": followed by the start of a value: 0 when it may go on, -1 refused */
static int run_begun(const sl_json_schema *sc, const char *value) {
    char doc[512];
    snprintf(doc, sizeof doc, "{\"a\":%s", value);
    return runs_in(sc, doc);
}

/* Formats against examples written from their RFCs (3339 dates and times, 4122 UUIDs, 1123 host names,
 * 5321 addresses), and patterns through JSON's escapes. */
TEST(string_formats_and_patterns) {
    sl_status st0;
    static const struct {
        const char *format, *value;
        int want; /* 1 a whole answer, -1 refused */
    } cases[] = {
        {"date", "\"2024-02-29\"", 1},
        {"date", "\"1999-12-31\"", 1},
        {"date", "\"2024-13-01\"", -1},
        {"date", "\"2024-1-01\"", -1},
        {"date", "\"2024-01-32\"", -1},
        {"date", "\"2024-01-01T\"", -1},
        {"time", "\"23:59:60Z\"", 1},
        {"time", "\"08:30:00.125+05:30\"", 1},
        {"time", "\"08:30:00\"", -1},
        {"time", "\"24:00:00Z\"", -1},
        {"date-time", "\"1985-04-12T23:20:50.52Z\"", 1},
        {"date-time", "\"1996-12-19T16:39:57-08:00\"", 1},
        {"date-time", "\"1996-12-19t16:39:57z\"", 1},
        {"date-time", "\"1996-12-19 16:39:57Z\"", -1},
        {"uuid", "\"f81d4fae-7dec-11d0-a765-00a0c91e6bf6\"", 1},
        {"uuid", "\"F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6\"", 1},
        {"uuid", "\"f81d4fae7dec11d0a76500a0c91e6bf6\"", -1},
        {"uuid", "\"g81d4fae-7dec-11d0-a765-00a0c91e6bf6\"", -1},
        {"ipv4", "\"192.168.0.255\"", 1},
        {"ipv4", "\"0.0.0.0\"", 1},
        {"ipv4", "\"256.1.1.1\"", -1},
        {"ipv4", "\"01.1.1.1\"", -1},
        {"ipv4", "\"1.1.1\"", -1},
        {"hostname", "\"example.com\"", 1},
        {"hostname", "\"a-b.c1\"", 1},
        {"hostname", "\"-ab.com\"", -1},
        {"hostname", "\"ab-.com\"", -1},
        {"hostname", "\"a..b\"", -1},
        {"email", "\"john.doe+x@example.co.uk\"", 1},
        {"email", "\"a@b\"", -1},
        {"email", "\"a@@b.c\"", -1},
        {"email", "\".a@b.c\"", -1},
        {"uri", "\"not checked\"", 1}, /* not enforced: an annotation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char prop[96];
        snprintf(prop, sizeof prop, "{\"type\":\"string\",\"format\":\"%s\"}", cases[i].format);
        sl_json_schema *sc = prop_schema(prop);
        if (!sc) return;
        const int got = run_value(sc, cases[i].value);
        sl_json_schema_release(sc);
        CHECK_MSG(got == cases[i].want, "format %s, %s: %d, want %d", cases[i].format, cases[i].value, got, cases[i].want);
    }
    /* a date is refused at its first wrong byte, so a model is stopped there */
    sl_json_schema *sc = prop_schema("{\"format\":\"date\"}");
    CHECK(sc);
    CHECK_EQ_INT(run_begun(sc, "\"2024-1"), 0);
    CHECK_EQ_INT(run_begun(sc, "\"2024-2"), -1);
    CHECK_EQ_INT(run_begun(sc, "\"2024-12-31"), 0);
    CHECK_EQ_INT(run_value(sc, "\"2024-12-31\""), 1);
    sl_json_schema_release(sc);

    /* a pattern sees the string's characters, whatever escapes write them; it matches anywhere unless anchored */
    sc = prop_schema("{\"type\":\"string\",\"pattern\":\"^A\\\\\\\\\\\"\xc3\xa9\\n$\",\"maxLength\":5}");
    CHECK(sc);
    CHECK_EQ_INT(run_value(sc, "\"A\\\\\\\"\xc3\xa9\\n\""), 1);
    CHECK_EQ_INT(run_value(sc, "\"\\u0041\\u005c\\u0022\\u00e9\\u000a\""), 1);
    CHECK_EQ_INT(run_begun(sc, "\"\\u0041\\/"), -1);
    CHECK_EQ_INT(run_value(sc, "\"A\\\\\\\"\xc3\xa9\\n \""), -1);
    sl_json_schema_release(sc);
    sc = prop_schema("{\"pattern\":\"[0-9]{3}\",\"minLength\":5}");
    CHECK(sc);
    CHECK_EQ_INT(run_value(sc, "\"ab123\""), 1);
    CHECK_EQ_INT(run_value(sc, "\"123\""), -1);   /* minLength */
    CHECK_EQ_INT(run_value(sc, "\"ab12c\""), -1); /* no match */
    CHECK_EQ_INT(run_begun(sc, "\"ab12"), 0);
    CHECK_EQ_INT(run_begun(sc, "\"ab\\u00e9"), 0);
    CHECK_EQ_INT(run_begun(sc, "\"ab\\ud83d"), -1); /* in a pattern's string a surrogate escape is refused */
    sl_json_schema_release(sc);
    sc = prop_schema("{\"pattern\":\"^.$\"}");
    CHECK(sc);
    CHECK_EQ_INT(run_value(sc, "\"\xf0\x9f\x98\x80\""), 1);
    CHECK_EQ_INT(run_begun(sc, "\"\\ud83d"), -1); /* a surrogate escape: the character must come as UTF-8 */
    sl_json_schema_release(sc);
    /* with length limits, the string is stopped where a match of an allowed length can no longer come */
    sc = prop_schema("{\"format\":\"email\",\"maxLength\":8}");
    CHECK(sc);
    CHECK_EQ_INT(run_value(sc, "\"ab@cd.ef\""), 1);
    CHECK_EQ_INT(run_begun(sc, "\"abcd"), 0);
    CHECK_EQ_INT(run_begun(sc, "\"abcde"), -1); /* "abcde@x.y" is 9 */
    CHECK_EQ_INT(run_begun(sc, "\"ab@cde."), 0); /* "ab@cde.f" */
    CHECK_EQ_INT(run_begun(sc, "\"ab@cdef."), -1);
    sl_json_schema_release(sc);
    sc = prop_schema("{\"pattern\":\"^(ab)+$\",\"minLength\":5,\"maxLength\":7}");
    CHECK(sc);
    CHECK_EQ_INT(run_value(sc, "\"ababab\""), 1);
    CHECK_EQ_INT(run_value(sc, "\"abab\""), -1);
    CHECK_EQ_INT(run_begun(sc, "\"abababa"), -1);
    sl_json_schema_release(sc);
    CHECK(!compile_text("{\"properties\":{\"a\":{\"format\":\"uuid\",\"maxLength\":35}}}", &st0) &&
          strstr(sl_last_error(), "properties.a: no string of the 'format' has a length within"));
    CHECK(!compile_text("{\"properties\":{\"a\":{\"pattern\":\"^a{2}$\",\"minLength\":3}}}", &st0));
    /* allOf of one schema, as older Pydantic writes a described $ref */
    sc = compile_text("{\"definitions\":{\"D\":{\"type\":\"string\",\"format\":\"date\"}},\"type\":\"object\",\"properties\":"
                      "{\"d\":{\"allOf\":[{\"$ref\":\"#/definitions/D\"}],\"description\":\"a day\"}}}", &(sl_status){0});
    CHECK(sc);
    CHECK_EQ_INT(runs_in(sc, "{\"d\":\"2020-01-01\"}"), 1);
    CHECK_EQ_INT(runs_in(sc, "{\"d\":\"2020-01-0x\"}"), -1);
    sl_json_schema_release(sc);
}

/* Integer bounds (and multipleOf) against enumeration: every integer in range (and multiple of mul) written
 * by snprintf gives the texts that may be answered and, with their prefixes, the texts that may be begun;
 * every string of up to 4 characters over "-0123456789" is then accepted byte by byte exactly when it begins
 * one, and as a whole when it is one. */
TEST(integer_bounds_match_enumeration) {
    static const struct {
        const char *prop;
        long lo, hi; /* the integers meant */
        long mul;    /* those that are multiples of this (0: all) */
    } cases[] = {
        {"{\"type\":\"integer\",\"minimum\":-40,\"maximum\":250,\"multipleOf\":7}", -40, 250, 7},
        {"{\"type\":\"integer\",\"multipleOf\":2.5,\"minimum\":-30,\"exclusiveMaximum\":100}", -30, 99, 5},
        {"{\"type\":\"integer\",\"multipleOf\":0.3,\"exclusiveMinimum\":-20,\"maximum\":60}", -19, 60, 3},
        {"{\"type\":[\"integer\",\"null\"],\"multipleOf\":12,\"minimum\":13,\"maximum\":1300}", 13, 1300, 12},
        {"{\"type\":\"integer\",\"minimum\":3,\"maximum\":250}", 3, 250, 0},
        {"{\"type\":\"integer\",\"exclusiveMinimum\":-5.5,\"maximum\":17}", -5, 17, 0},
        {"{\"type\":\"integer\",\"minimum\":-120,\"exclusiveMaximum\":-3}", -120, -4, 0},
        {"{\"type\":\"integer\",\"minimum\":0,\"maximum\":0}", 0, 0, 0},
        {"{\"type\":\"integer\",\"minimum\":10,\"maximum\":1000,\"exclusiveMaximum\":999.5}", 10, 999, 0},
        {"{\"type\":[\"integer\",\"null\"],\"minimum\":-9,\"maximum\":9}", -9, 9, 0},
    };
    static const char alpha[] = "-0123456789";
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sl_json_schema *sc = prop_schema(cases[c].prop);
        if (!sc) return;
        int mism = 0, total = 0, n_txt = 0;
        static char txts[2000][24];
        for (long v = cases[c].lo; v <= cases[c].hi && n_txt < 2000; v++)
            if (!cases[c].mul || v % cases[c].mul == 0) snprintf(txts[n_txt++], sizeof txts[0], "%ld", v);
        for (int len = 1; len <= 4; len++) {
            int idx[4] = {0};
            for (long t = 0, n = (long)pow(11, len); t < n; t++) {
                char str[8];
                long x = t;
                for (int k = 0; k < len; k++) str[k] = alpha[x % 11], x /= 11;
                str[len] = 0;
                (void)idx;
                bool begins = false, whole = false;
                for (int k = 0; k < n_txt; k++) {
                    begins |= !strncmp(txts[k], str, (size_t)len);
                    whole |= !strcmp(txts[k], str);
                }
                if (cases[c].lo <= 0 && cases[c].hi >= 0) { /* JSON's -0 is 0 (a multiple of anything) */
                    whole |= !strcmp(str, "-0");
                    begins |= !strcmp(str, "-0") || !strcmp(str, "-");
                }
                char doc[32];
                snprintf(doc, sizeof doc, "{\"a\":%s", str);
                const int got = runs_in(sc, doc);
                strcat(doc, "}");
                const int got_whole = runs_in(sc, doc);
                total++;
                if ((got == 0) != begins || (got_whole == 1) != whole) {
                    if (mism++ < 5)
                        sl_test_fail(__FILE__, __LINE__, "%s: '%s' begun %d (want %d), whole %d (want %d)", cases[c].prop,
                                     str, got == 0, begins, got_whole == 1, whole);
                }
            }
        }
        sl_json_schema_release(sc);
        CHECK_MSG(mism == 0 && total == 11 + 121 + 1331 + 14641, "%d mismatches", mism);
    }
}

/* Number bounds against jansson and strtod: every string of up to 6 characters over "-0123456789." that
 * jansson reads as a number within the bounds may be answered; those and their prefixes may be begun (these
 * bounds have witnesses that short); every string of up to 4 characters is then accepted byte by byte exactly
 * when it begins one, and as a whole when it is one. Exponents are refused where bounds apply. With
 * multipleOf, an answer is also a multiple as its text says: hundredths in whole numbers (digits after the
 * second one after the point all 0), a multiple of mul100 of them. */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static bool text_multiple_of_hundredths(const char *t, long mul100) {
    if (*t == '-') t++;
    long hundredths = 0;
    for (; *t >= '0' && *t <= '9'; t++) hundredths = hundredths * 10 + (*t - '0');
    hundredths *= 100;
    if (*t == '.') {
        t++;
        for (long w = 10; *t; t++, w /= 10) {
            if (w == 0 && *t != '0') return false;
            hundredths += w * (*t - '0');
        }
    }
    return hundredths % mul100 == 0;
}
TEST(number_bounds_match_jansson) {
    static const struct {
        const char *prop;
        double lo, hi;
        bool lo_ex, hi_ex;
        long mul100; /* multipleOf in hundredths (0: none) */
    } cases[] = {
        {"{\"type\":\"number\",\"minimum\":0.5,\"exclusiveMaximum\":2.25}", 0.5, 2.25, false, true, 0},
        {"{\"exclusiveMinimum\":-1.5,\"maximum\":0.1}", -1.5, 0.1, true, false, 0},
        {"{\"type\":\"number\",\"minimum\":-0.25,\"maximum\":-0.25}", -0.25, -0.25, false, false, 0},
        {"{\"type\":\"number\",\"multipleOf\":0.25,\"minimum\":-1.5,\"maximum\":2.3}", -1.5, 2.3, false, false, 25},
        {"{\"multipleOf\":0.01,\"exclusiveMinimum\":-0.5,\"maximum\":0.75}", -0.5, 0.75, true, false, 1},
        {"{\"multipleOf\":0.3,\"minimum\":-3,\"exclusiveMaximum\":9.9}", -3, 9.9, false, true, 30},
    };
    static const char alpha[] = "-0123456789.";
    /* the JSON numbers of up to 6 characters, once */
    size_t n_num = 0, cap = 1 << 16;
    char (*nums)[8] = malloc(cap * sizeof *nums);
    for (int len = 1; len <= 6; len++) {
        long n = 1;
        for (int k = 0; k < len; k++) n *= 12;
        for (long t = 0; t < n; t++) {
            char str[8];
            long x = t;
            for (int k = 0; k < len; k++) str[k] = alpha[x % 12], x /= 12;
            str[len] = 0;
            if (str[0] != '-' && (str[0] < '0' || str[0] > '9')) continue;
            json_t *v = json_loads(str, JSON_DECODE_ANY, NULL);
            if (json_is_number(v)) {
                if (n_num == cap) nums = realloc(nums, (cap *= 2) * sizeof *nums);
                memcpy(nums[n_num++], str, 8);
            }
            json_decref(v);
        }
    }
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sl_json_schema *sc = prop_schema(cases[c].prop);
        if (!sc) break;
        char **ok = malloc(n_num * sizeof *ok);
        size_t n_ok = 0;
        for (size_t i = 0; i < n_num; i++) {
            const double v = strtod(nums[i], NULL);
            if ((cases[c].lo_ex ? v > cases[c].lo : v >= cases[c].lo) && (cases[c].hi_ex ? v < cases[c].hi : v <= cases[c].hi) &&
                (!cases[c].mul100 || text_multiple_of_hundredths(nums[i], cases[c].mul100)))
                ok[n_ok++] = nums[i];
        }
        qsort(ok, n_ok, sizeof *ok, cmp_str);
        int mism = 0;
        for (int len = 1; len <= 4; len++) {
            long n = 1;
            for (int k = 0; k < len; k++) n *= 12;
            for (long t = 0; t < n; t++) {
                char str[8];
                long x = t;
                for (int k = 0; k < len; k++) str[k] = alpha[x % 12], x /= 12;
                str[len] = 0;
                /* the first answer at or after str in order: str begins one exactly when it begins that one */
                size_t lo = 0, hi = n_ok;
                while (lo < hi) {
                    const size_t mid = (lo + hi) / 2;
                    if (strcmp(ok[mid], str) < 0) lo = mid + 1;
                    else hi = mid;
                }
                const bool begins = lo < n_ok && !strncmp(ok[lo], str, (size_t)len), whole = lo < n_ok && !strcmp(ok[lo], str);
                const int got = run_begun(sc, str), got_whole = run_value(sc, str);
                if ((got == 0) != begins || (got_whole == 1) != whole) {
                    if (mism++ < 5)
                        sl_test_fail(__FILE__, __LINE__, "%s: '%s' begun %d (want %d), whole %d (want %d)", cases[c].prop,
                                     str, got == 0, begins, got_whole == 1, whole);
                }
            }
        }
        free(ok);
        const int exp = run_value(sc, "1e-1");
        sl_json_schema_release(sc);
        CHECK_MSG(mism == 0 && n_ok >= 2, "%d mismatches, %zu answers", mism, n_ok);
        CHECK_EQ_INT(exp, -1);
    }
    free(nums);
}

/* The mask in strings with patterns and formats and in numbers with bounds is each token's text run through
 * the recognizer (the free-text shortcut must not apply there). */
TEST(mask_follows_patterns_and_bounds) {
    const char *path = sl_test_shared("models/stories260K.gguf");
    if (!path) return;
    sl_model *m = NULL;
    CHECK_OK(sl_model_load(path, &m));
    const sl_tokenizer *tok = sl_model_tokenizer(m);
    sl_json_guide *g = NULL;
    CHECK_OK(sl_json_guide_create(tok, &g));
    float *l = calloc((size_t)sl_tokenizer_n_vocab(tok), sizeof(float));
    sl_status st;
    sl_json_schema *sc = compile_text("{\"type\":\"object\",\"properties\":{\"w\":{\"pattern\":\"^[a-z]+ing$\"},"
                                      "\"d\":{\"format\":\"date\"},\"n\":{\"type\":\"integer\",\"minimum\":10,\"maximum\":99}}}",
                                      &st);
    CHECK_MSG(st == SL_OK, "%s", sl_last_error());
    static const char *states[] = {"{\"w\":\"", "{\"w\":\"sing", "{\"w\":\"s", "{\"d\":\"20", "{\"d\":\"2024-0",
                                   "{\"n\":", "{\"n\":1", "{\"n\":99"};
    int32_t total = 0;
    for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
        int32_t ok_n;
        const int32_t differ = mask_vs_recognizer(g, tok, sc, states[k], l, &ok_n);
        CHECK_MSG(differ == 0 && ok_n > 0, "after '%s': %d tokens masked wrongly, %d allowed", states[k], differ, ok_n);
        total += ok_n;
    }
    /* inside the word, no token with a capital or a space is allowed */
    mask_vs_recognizer(g, tok, sc, "{\"w\":\"s", l, &(int32_t){0});
    for (int32_t i = 0; i < sl_tokenizer_n_vocab(tok); i++) {
        size_t n;
        const char *t = sl_json_guide_text(g, i, &n);
        if (!isinf(l[i])) CHECK_MSG(!memchr(t, ' ', n) && !(n && t[0] >= 'A' && t[0] <= 'Z'), "'%.*s' allowed", (int)n, t);
    }
    sl_json_schema_release(sc);
    free(l);
    sl_json_guide_destroy(g);
    sl_model_destroy(m);
    CHECK(total > 8);
}

/* Alternatives that begin alike (Pydantic's unions of models, integer or number, two patterns) are followed
 * together until the output tells them apart; each whole answer is one some alternative takes. */
TEST(unions_that_begin_alike) {
#define CAT "{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"cat\"},\"lives\":{\"type\":\"integer\"}}," \
            "\"required\":[\"kind\",\"lives\"],\"additionalProperties\":false}"
#define DOG "{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"dog\"},\"good\":{\"type\":\"boolean\"}}," \
            "\"required\":[\"kind\",\"good\"],\"additionalProperties\":false}"
    static const struct {
        const char *prop, *value;
        int want;
    } cases[] = {
        {"{\"anyOf\":[" CAT "," DOG "]}", "{\"kind\":\"cat\",\"lives\":9}", 1},
        {"{\"anyOf\":[" CAT "," DOG "]}", "{\"kind\":\"dog\",\"good\":true}", 1},
        {"{\"anyOf\":[" CAT "," DOG "]}", "{\"kind\":\"cat\",\"good\":true}", -1},
        {"{\"anyOf\":[" CAT "," DOG "]}", "{\"kind\":\"cow\"", -1},
        {"{\"anyOf\":[" CAT "," DOG "]}", "{\"kind\":\"", 0},
        {"{\"oneOf\":[" CAT "," DOG "]}", "{ \"kind\": \"dog\", \"good\": false }", 1},
        {"{\"anyOf\":[{\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},"
         "{\"properties\":{\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}]}", "{\"a\":1}", 1},
        {"{\"anyOf\":[{\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},"
         "{\"properties\":{\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}]}", "{\"b\":\"x\"}", 1},
        {"{\"anyOf\":[{\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},"
         "{\"properties\":{\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}]}", "{\"a\":\"x\"}", -1},
        {"{\"anyOf\":[{\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},"
         "{\"properties\":{\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}]}", "{}", -1},
        {"{\"anyOf\":[{\"type\":\"integer\",\"maximum\":5},{\"type\":\"number\",\"minimum\":100}]}", "3", 1},
        {"{\"anyOf\":[{\"type\":\"integer\",\"maximum\":5},{\"type\":\"number\",\"minimum\":100}]}", "100.5", 1},
        {"{\"anyOf\":[{\"type\":\"integer\",\"maximum\":5},{\"type\":\"number\",\"minimum\":100}]}", "50", -1},
        {"{\"anyOf\":[{\"pattern\":\"^a+$\"},{\"pattern\":\"^b+$\"}]}", "\"aaa\"", 1},
        {"{\"anyOf\":[{\"pattern\":\"^a+$\"},{\"pattern\":\"^b+$\"}]}", "\"bb\"", 1},
        {"{\"anyOf\":[{\"pattern\":\"^a+$\"},{\"pattern\":\"^b+$\"}]}", "\"ab\"", -1},
        {"{\"anyOf\":[{\"type\":\"array\",\"items\":{\"type\":\"integer\"}},{\"type\":\"array\",\"items\":{\"type\":\"string\"}}]}",
         "[1,2]", 1},
        {"{\"anyOf\":[{\"type\":\"array\",\"items\":{\"type\":\"integer\"}},{\"type\":\"array\",\"items\":{\"type\":\"string\"}}]}",
         "[\"a\"]", 1},
        {"{\"anyOf\":[{\"type\":\"array\",\"items\":{\"type\":\"integer\"}},{\"type\":\"array\",\"items\":{\"type\":\"string\"}}]}",
         "[1,\"a\"]", -1},
        /* an array of unions: each element chooses for itself */
        {"{\"type\":\"array\",\"items\":{\"anyOf\":[" CAT "," DOG "]}}",
         "[{\"kind\":\"dog\",\"good\":true},{\"kind\":\"cat\",\"lives\":1},{\"kind\":\"dog\",\"good\":false}]", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_json_schema *sc = prop_schema(cases[i].prop);
        if (!sc) return;
        const size_t vl = strlen(cases[i].value);
        const bool whole = cases[i].want != 0;
        const int got = whole ? run_value(sc, cases[i].value) : run_begun(sc, cases[i].value);
        sl_json_schema_release(sc);
        CHECK_MSG(got == cases[i].want, "%s with %s: %d, want %d (%zu bytes)", cases[i].prop, cases[i].value, got,
                  cases[i].want, vl);
    }
    /* at the root */
    sl_status st;
    sl_json_schema *sc = compile_text("{\"anyOf\":[" CAT "," DOG "]}", &st);
    CHECK_MSG(st == SL_OK, "%s", sl_last_error());
    CHECK_EQ_INT(runs_in(sc, "{\"kind\":\"dog\",\"good\":true}"), 1);
    CHECK_EQ_INT(runs_in(sc, "{\"kind\":\"dog\",\"lives\":1}"), -1);
    /* while both are possible, the mask is each token's text run through the recognizer */
    const char *path = sl_test_shared("models/stories260K.gguf");
    if (path) {
        sl_model *m = NULL;
        CHECK_OK(sl_model_load(path, &m));
        sl_json_guide *g = NULL;
        CHECK_OK(sl_json_guide_create(sl_model_tokenizer(m), &g));
        float *l = calloc((size_t)sl_tokenizer_n_vocab(sl_model_tokenizer(m)), sizeof(float));
        static const char *states[] = {"", "{", "{\"kind", "{\"kind\":", "{\"kind\":\"", "{\"kind\":\"d", "{\"kind\":\"cat\","};
        for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
            int32_t ok_n;
            const int32_t differ = mask_vs_recognizer(g, sl_model_tokenizer(m), sc, states[k], l, &ok_n);
            CHECK_MSG(differ == 0 && ok_n > 0, "after '%s': %d tokens masked wrongly, %d allowed", states[k], differ, ok_n);
        }
        free(l);
        sl_json_guide_destroy(g);
        sl_model_destroy(m);
    }
    sl_json_schema_release(sc);
#undef CAT
#undef DOG
}

static long replay_one(const uint8_t *data, size_t len) { return fuzz_jsonguide_one(data, len); }

/* The fuzz target's corpus, replayed: every input keeps the invariants (a failure aborts); the seeds written
 * by hand (a schema and an answer to it) are complete. */
TEST(fuzz_corpus_replay) {
    long score = 0;
    const int n = sl_test_each_file("tests/fuzz/corpus/jsonguide", replay_one, &score);
    printf("   corpus: %d inputs, score %ld\n", n, score);
    CHECK(n >= 8);
    static const char *seeds[] = {"union", "union-array", "formats", "pattern", "bounds", "numbers-union", "refs", "json-mode", "tuple", "multiples", "property-names", "unique-items"};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "tests/fuzz/corpus/jsonguide/%s", seeds[i]);
        size_t len;
        char *data = sl_test_read_file(path, &len);
        CHECK_MSG(data, "%s", path);
        const int r = fuzz_jsonguide_one((const uint8_t *)data, len);
        free(data);
        CHECK_MSG(r == 2, "%s: %d (2: complete)", seeds[i], r);
    }
}

/* A schema and a document, and what the recognizer says: 1 complete, 0 begun, -1 refused (a byte of it), -2
 * the schema itself refused. */
typedef struct schema_case {
    const char *schema, *doc;
    int want;
} schema_case;

static void run_cases(const schema_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        sl_status st;
        sl_json_schema *sc = compile_text(cases[i].schema, &st);
        const int got = st != SL_OK ? -2 : runs_in(sc, cases[i].doc);
        CHECK_MSG(got == cases[i].want, "%s: %s -> %d, want %d (%s)", cases[i].schema, cases[i].doc, got, cases[i].want,
                  st ? sl_last_error() : "");
        sl_json_schema_release(sc);
    }
}

/* propertyNames (what Pydantic writes for dict[Literal[...], X] and constrained keys): each key of an object
 * with no declared property is a name the schema allows, its escapes decoded; by the JSON Schema rules. */
TEST(property_names) {
    static const schema_case cases[] = {
        {"{\"additionalProperties\":{\"type\":\"integer\"},\"propertyNames\":{\"enum\":[\"red\",\"green\",\"a.b\"]}}", "{\"red\":1,\"green\":2}", 1},
        {"{\"additionalProperties\":{\"type\":\"integer\"},\"propertyNames\":{\"enum\":[\"red\",\"green\",\"a.b\"]}}", "{\"blue\":1}", -1},
        {"{\"additionalProperties\":{\"type\":\"integer\"},\"propertyNames\":{\"enum\":[\"red\",\"green\",\"a.b\"]}}", "{\"re\":1}", -1},
        {"{\"additionalProperties\":{\"type\":\"integer\"},\"propertyNames\":{\"enum\":[\"red\",\"green\",\"a.b\"]}}", "{\"a.b\":1}", 1},
        {"{\"additionalProperties\":{\"type\":\"integer\"},\"propertyNames\":{\"enum\":[\"red\",\"green\",\"a.b\"]}}", "{\"axb\":1}", -1},
        {"{\"additionalProperties\":{\"type\":\"integer\"},\"propertyNames\":{\"enum\":[\"red\"]}}", "{\"r\\u0065d\":1}", 1},
        {"{\"additionalProperties\":{\"type\":\"integer\"},\"propertyNames\":{\"enum\":[\"red\"]}}", "{\"red\":\"x\"}", -1},
        {"{\"propertyNames\":{\"pattern\":\"^[a-z]+$\",\"maxLength\":3}}", "{\"abc\":1,\"x\":[]}", 1},
        {"{\"propertyNames\":{\"pattern\":\"^[a-z]+$\",\"maxLength\":3}}", "{\"abcd\":1}", -1},
        {"{\"propertyNames\":{\"pattern\":\"^[a-z]+$\",\"maxLength\":3}}", "{\"\":1}", -1},
        {"{\"propertyNames\":{\"pattern\":\"^[a-z]+$\",\"maxLength\":3}}", "{\"aB\":1}", -1},
        {"{\"type\":\"object\",\"propertyNames\":{\"minLength\":2}}", "{\"a\":1}", -1},
        {"{\"type\":\"object\",\"propertyNames\":{\"minLength\":2}}", "{\"\\u00e9\\u00e9\":1}", 1},
        {"{\"type\":\"object\",\"propertyNames\":false}", "{}", 1},
        {"{\"type\":\"object\",\"propertyNames\":false}", "{\"a\":1}", -1},
        {"{\"type\":\"object\",\"propertyNames\":true}", "{\"a\":1}", 1},
        {"{\"type\":\"object\",\"propertyNames\":{\"format\":\"date\"}}", "{\"2024-01-02\":null}", 1},
        {"{\"type\":\"object\",\"propertyNames\":{\"format\":\"date\"}}", "{\"2024-13-02\":null}", -1},
        {"{\"type\":\"object\",\"propertyNames\":{\"const\":\"\\u00e9t\\u00e9\"}}", "{\"\xc3\xa9t\xc3\xa9\":0}", 1},
        {"{\"type\":\"object\",\"propertyNames\":{\"const\":\"\\u00e9t\\u00e9\"}}", "{\"\xc3\xa9t\":0}", -1},
        /* a nested object's keys are its own */
        {"{\"propertyNames\":{\"enum\":[\"a\"]},\"additionalProperties\":{\"type\":\"object\"}}", "{\"a\":{\"zz\":1}}", 1},
    };
    run_cases(cases, sizeof cases / sizeof cases[0]);
}

/* Schemas that allow no value — false, and zod's never {"not": {}} — as JSON Schema reads them: a property
 * that cannot appear, no other keys, no items, an alternative left out; required or alone, nothing. */
TEST(never_schemas) {
    static const schema_case cases[] = {
        {"{\"type\":\"object\",\"properties\":{\"a\":false,\"b\":{\"type\":\"integer\"}}}", "{\"b\":1}", 1},
        {"{\"type\":\"object\",\"properties\":{\"a\":false,\"b\":{\"type\":\"integer\"}}}", "{\"a\":1}", -1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"not\":{},\"description\":\"never\"}}}", "{}", 1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},\"additionalProperties\":{\"not\":{}}}", "{\"a\":\"x\"}", 1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},\"additionalProperties\":{\"not\":{}}}", "{\"a\":\"x\",\"b\":1}", -1},
        {"{\"type\":\"object\",\"additionalProperties\":{\"not\":true}}", "{}", 1},
        {"{\"type\":\"object\",\"additionalProperties\":{\"not\":true}}", "{\"b\":1}", -1},
        {"{\"type\":\"object\",\"properties\":{\"t\":{\"type\":\"array\",\"items\":{\"not\":{}}}}}", "{\"t\":[]}", 1},
        {"{\"type\":\"object\",\"properties\":{\"t\":{\"type\":\"array\",\"items\":{\"not\":{}}}}}", "{\"t\":[1]}", -1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"anyOf\":[{\"type\":\"string\"},{\"not\":{}}]}}}", "{\"a\":\"x\"}", 1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"anyOf\":[{\"type\":\"string\"},{\"not\":{}}]}}}", "{\"a\":1}", -1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"not\":{}}},\"required\":[\"a\"]}", "{}", -2},
        {"{\"not\":{}}", "{}", -2},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"not\":{\"type\":\"null\"}}}}", "{}", -2},
    };
    run_cases(cases, sizeof cases / sizeof cases[0]);
}

/* Annotations that constrain nothing are read past: a Pydantic discriminated union (oneOf with OpenAPI's
 * discriminator) guides as the oneOf alone; deprecated, readOnly, x- extensions the same. */
TEST(annotations) {
#define PET "{\"$defs\":{\"Cat\":{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"cat\"},\"lives\":{\"type\":\"integer\"," \
            "\"deprecated\":true}},\"required\":[\"kind\",\"lives\"],\"x-order\":1},\"Dog\":{\"type\":\"object\",\"properties\":" \
            "{\"kind\":{\"const\":\"dog\"},\"name\":{\"type\":\"string\",\"readOnly\":true}},\"required\":[\"kind\",\"name\"]}}," \
            "\"type\":\"object\",\"properties\":{\"pet\":{\"oneOf\":[{\"$ref\":\"#/$defs/Cat\"},{\"$ref\":\"#/$defs/Dog\"}]," \
            "\"discriminator\":{\"propertyName\":\"kind\",\"mapping\":{\"cat\":\"#/$defs/Cat\",\"dog\":\"#/$defs/Dog\"}}}}," \
            "\"required\":[\"pet\"]}"
    static const schema_case cases[] = {
        {PET, "{\"pet\":{\"kind\":\"cat\",\"lives\":9}}", 1},
        {PET, "{\"pet\":{\"kind\":\"dog\",\"name\":\"Rex\"}}", 1},
        {PET, "{\"pet\":{\"kind\":\"cat\",\"name\":\"Rex\"}}", -1},
        {PET, "{\"pet\":{\"kind\":\"cow\"", -1},
        /* OpenAPI 3.0's nullable: null joins the type beside it (and no other), an enum still holds */
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"nullable\":true}}}", "{\"a\":null}", 1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"nullable\":true}}}", "{\"a\":\"x\"}", 1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"nullable\":false}}}", "{\"a\":null}", -1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":[\"integer\",\"boolean\"],\"nullable\":true}}}", "{\"a\":null}", 1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"enum\":[\"x\"],\"nullable\":true}}}", "{\"a\":null}", -1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"nullable\":\"yes\"}}}", "{}", -2},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":[\"string\",\"null\"],\"nullable\":true}}}", "{\"a\":null}", 1},
    };
#undef PET
    run_cases(cases, sizeof cases / sizeof cases[0]);
}

/* anyOf beside oneOf: both hold (each read as anyOf, as jsonguide.h says), so a value of an alternative of each. */
TEST(any_of_beside_one_of) {
    sl_status st;
    sl_json_schema *sc = compile_text("{\"type\":\"object\",\"properties\":{\"a\":{\"anyOf\":[{\"type\":\"string\"},"
                                      "{\"type\":\"integer\",\"minimum\":0}],\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"null\"}]}},"
                                      "\"required\":[\"a\"]}", &st);
    CHECK_MSG(st == SL_OK, "%s", sl_last_error());
    CHECK_EQ_INT(runs_in(sc, "{\"a\":1}"), 1);
    CHECK_EQ_INT(runs_in(sc, "{\"a\":-1}"), -1);
    CHECK_EQ_INT(runs_in(sc, "{\"a\":\"x\"}"), -1);
    CHECK_EQ_INT(runs_in(sc, "{\"a\":null}"), -1);
    sl_json_schema_release(sc);
    sc = compile_text("{\"type\":\"object\",\"properties\":{\"a\":{\"anyOf\":[{\"type\":\"string\"}],\"oneOf\":[{\"type\":\"null\"}]}}}", &st);
    CHECK_MSG(st == SL_ERR_INVALID && strstr(sl_last_error(), "no alternative of 'anyOf' / 'oneOf' allows a value"), "%s", sl_last_error());
}

/* uniqueItems over literal items (Pydantic's set[SomeEnum]): each value at most once, by the JSON Schema rule;
 * a value whose text begins another's (1 and 12) may still become that one. */
TEST(unique_items) {
#define UQ(items) "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"uniqueItems\":true," items "}},\"required\":[\"a\"]}"
    static const schema_case cases[] = {
        {UQ("\"items\":{\"enum\":[\"red\",\"green\",1,12]}"), "{\"a\":[\"red\",\"green\",1,12]}", 1},
        {UQ("\"items\":{\"enum\":[\"red\",\"green\",1,12]}"), "{\"a\":[\"red\",\"red\"]}", -1},
        {UQ("\"items\":{\"enum\":[\"red\",\"green\",1,12]}"), "{\"a\":[1,1]}", -1},
        {UQ("\"items\":{\"enum\":[\"red\",\"green\",1,12]}"), "{\"a\":[1,1", 0}, /* (12 may come) */
        {UQ("\"items\":{\"enum\":[\"red\",\"green\",1,12]}"), "{\"a\":[12,1]}", 1},
        {UQ("\"items\":{\"enum\":[\"red\",\"green\",1,12]}"), "{\"a\":[\"red\",\"green\",1,12,", -1}, /* none left */
        {UQ("\"items\":{\"enum\":[\"red\",\"green\",1,12]}"), "{\"a\":[]}", 1},
        {UQ("\"items\":{\"type\":\"boolean\"}"), "{\"a\":[true,false]}", 1},
        {UQ("\"items\":{\"type\":\"boolean\"}"), "{\"a\":[true,true]}", -1},
        {UQ("\"items\":{\"const\":null},\"minItems\":1"), "{\"a\":[null]}", 1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"uniqueItems\":true,\"items\":{\"$ref\":\"#/$defs/C\"}}},"
         "\"$defs\":{\"C\":{\"enum\":[\"x\",\"y\"]}}}", "{\"a\":[\"y\",\"x\"]}", 1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"uniqueItems\":false,\"items\":{\"type\":\"string\"}}}}",
         "{\"a\":[\"x\",\"x\"]}", 1},
        /* each inner array is its own set */
        {"{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"array\",\"items\":{\"type\":\"array\",\"uniqueItems\":true,"
         "\"items\":{\"enum\":[1,2]}}}}}", "{\"s\":[[1,2],[2,1],[1]]}", 1},
        {"{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"array\",\"items\":{\"type\":\"array\",\"uniqueItems\":true,"
         "\"items\":{\"enum\":[1,2]}}}}}", "{\"s\":[[1,2],[2,2]]}", -1},
    };
#undef UQ
    run_cases(cases, sizeof cases / sizeof cases[0]);
}

/* additionalProperties beside declared properties, and allOf (and keywords beside $ref or anyOf) merged */
TEST(open_objects_and_merged_schemas) {
#define OPEN "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}}," \
             "\"required\":[\"a\"],\"additionalProperties\":{\"type\":\"boolean\"}"
#define BASE "\"$defs\":{\"Base\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},\"required\":[\"a\"]}}"
    static const struct {
        const char *schema, *doc;
        int want;
    } cases[] = {
        {OPEN "}", "{\"a\":1}", 1},
        {OPEN "}", "{\"a\":1,\"x\":true}", 1},
        {OPEN "}", "{\"x\":false,\"a\":1,\"y\":true,\"b\":\"s\",\"z\":true}", 1}, /* others anywhere */
        {OPEN "}", "{\"a\":1,\"ab\":true,\"\":false,\"b2\":true}", 1},             /* names that begin as declared ones */
        {OPEN "}", "{\"a\":1,\"\\n\\\"\xc3\xa9\":true}", 1},
        {OPEN "}", "{\"a\":1,\"x\":1}", -1},              /* others' values: boolean */
        {OPEN "}", "{\"a\":1,\"a\":2}", -1},              /* a declared key twice */
        {OPEN "}", "{\"a\":1,\"b\":\"s\",\"a\"", -1},     /* ... or out of the declared order */
        {OPEN "}", "{\"a\":1,\"b\":\"s\",\"b\"", -1},
        {OPEN "}", "{\"b\"", -1},                       /* ... before a required one */
        {OPEN "}", "{\"\\u0061\"", -1},                    /* a name written another way */
        {OPEN "}", "{\"a\":1,\"x\\/", -1},
        {OPEN "}", "{\"x\":true}", -1},       /* required */
        {OPEN "}", "{\"x\":true", 0},
        {OPEN ",\"maxProperties\":2}", "{\"x\":true,\"a\":1}", 1},
        {OPEN ",\"maxProperties\":2}", "{\"x\":true,\"y\"", -1}, /* room left for a */
        {OPEN ",\"maxProperties\":2}", "{\"x\":true,\"a\":1,", -1},
        {OPEN ",\"minProperties\":2}", "{\"a\":1}", -1},
        {OPEN ",\"minProperties\":2}", "{\"a\":1,\"q\":true}", 1},
        {"{\"properties\":{\"a\":{}},\"additionalProperties\":true}", "{\"z\":[1,{\"q\":null}],\"a\":\"x\"}", 1},
        /* allOf: a $ref'd base and more properties (as Pydantic and zod write inheritance) */
        {"{\"allOf\":[{\"$ref\":\"#/$defs/Base\"},{\"properties\":{\"c\":{\"type\":\"integer\"}},\"required\":[\"c\"]}]," BASE "}",
         "{\"a\":\"x\",\"c\":1}", 1},
        {"{\"allOf\":[{\"$ref\":\"#/$defs/Base\"},{\"properties\":{\"c\":{\"type\":\"integer\"}},\"required\":[\"c\"]}]," BASE "}",
         "{\"a\":\"x\"}", -1},
        {"{\"allOf\":[{\"$ref\":\"#/$defs/Base\"},{\"properties\":{\"c\":{\"type\":\"integer\"}},\"required\":[\"c\"]}]," BASE "}",
         "{\"c\":1}", -1},
        /* a property in both: both its schemas */
        {"{\"allOf\":[{\"$ref\":\"#/$defs/Base\"},{\"properties\":{\"a\":{\"maxLength\":2}}}]," BASE "}", "{\"a\":\"xy\"}", 1},
        {"{\"allOf\":[{\"$ref\":\"#/$defs/Base\"},{\"properties\":{\"a\":{\"maxLength\":2}}}]," BASE "}", "{\"a\":\"xyz\"}", -1},
        {"{\"allOf\":[{\"$ref\":\"#/$defs/Base\"},{\"properties\":{\"a\":{\"maxLength\":2}}}]," BASE "}", "{\"a\":1}", -1},
        /* additionalProperties false in one schema refuses the other's properties */
        {"{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{}},\"additionalProperties\":false},{\"properties\":{\"b\":{}}}]}",
         "{\"a\":1}", 1},
        {"{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{}},\"additionalProperties\":false},{\"properties\":{\"b\":{}}}]}",
         "{\"b\":1}", -1},
        /* bounds, types and values: the strictest, the common ones */
        {"{\"properties\":{\"n\":{\"allOf\":[{\"type\":\"integer\",\"minimum\":0},{\"maximum\":10,\"minimum\":-5}]}}}", "{\"n\":10}", 1},
        {"{\"properties\":{\"n\":{\"allOf\":[{\"type\":\"integer\",\"minimum\":0},{\"maximum\":10,\"minimum\":-5}]}}}", "{\"n\":11}", -1},
        {"{\"properties\":{\"n\":{\"allOf\":[{\"type\":\"integer\",\"minimum\":0},{\"maximum\":10,\"minimum\":-5}]}}}", "{\"n\":-1}", -1},
        {"{\"properties\":{\"n\":{\"allOf\":[{\"type\":\"integer\",\"minimum\":0},{\"maximum\":10,\"minimum\":-5}]}}}", "{\"n\":1.5}", -1},
        {"{\"properties\":{\"n\":{\"allOf\":[{\"type\":[\"number\",\"string\"]},{\"type\":[\"integer\",\"null\"]}]}}}", "{\"n\":3}", 1},
        {"{\"properties\":{\"n\":{\"allOf\":[{\"type\":[\"number\",\"string\"]},{\"type\":[\"integer\",\"null\"]}]}}}", "{\"n\":null}", -1},
        {"{\"properties\":{\"e\":{\"allOf\":[{\"enum\":[\"a\",\"b\",\"c\"]},{\"enum\":[\"b\",\"c\",\"d\"]}]}}}", "{\"e\":\"c\"}", 1},
        {"{\"properties\":{\"e\":{\"allOf\":[{\"enum\":[\"a\",\"b\",\"c\"]},{\"enum\":[\"b\",\"c\",\"d\"]}]}}}", "{\"e\":\"a\"}", -1},
        {"{\"properties\":{\"v\":{\"type\":\"string\",\"enum\":[\"x\",1]}}}", "{\"v\":1}", -1},
        {"{\"properties\":{\"v\":{\"type\":\"string\",\"enum\":[\"x\",1]}}}", "{\"v\":\"x\"}", 1},
        /* keywords beside a $ref hold too */
        {"{\"properties\":{\"p\":{\"$ref\":\"#/$defs/S\",\"maxLength\":3}},\"$defs\":{\"S\":{\"type\":\"string\",\"minLength\":1}}}",
         "{\"p\":\"abc\"}", 1},
        {"{\"properties\":{\"p\":{\"$ref\":\"#/$defs/S\",\"maxLength\":3}},\"$defs\":{\"S\":{\"type\":\"string\",\"minLength\":1}}}",
         "{\"p\":\"abcd\"}", -1},
        {"{\"properties\":{\"p\":{\"$ref\":\"#/$defs/S\",\"maxLength\":3}},\"$defs\":{\"S\":{\"type\":\"string\",\"minLength\":1}}}",
         "{\"p\":\"\"}", -1},
        /* ... and beside anyOf: one of a or b required */
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"integer\"}},"
         "\"anyOf\":[{\"required\":[\"a\"]},{\"required\":[\"b\"]}]}", "{\"b\":2}", 1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"integer\"}},"
         "\"anyOf\":[{\"required\":[\"a\"]},{\"required\":[\"b\"]}]}", "{\"a\":1,\"b\":2}", 1},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"integer\"}},"
         "\"anyOf\":[{\"required\":[\"a\"]},{\"required\":[\"b\"]}]}", "{}", -1},
        {"{\"properties\":{\"x\":{\"type\":\"string\",\"anyOf\":[{\"maxLength\":1},{\"pattern\":\"^z+$\"}]}}}", "{\"x\":\"zzz\"}", 1},
        {"{\"properties\":{\"x\":{\"type\":\"string\",\"anyOf\":[{\"maxLength\":1},{\"pattern\":\"^z+$\"}]}}}", "{\"x\":\"ab\"}", -1},
        {"{\"properties\":{\"x\":{\"type\":\"string\",\"anyOf\":[{\"maxLength\":1},{\"pattern\":\"^z+$\"}]}}}", "{\"x\":1}", -1},
        /* an enum beside anyOf: each alternative's values (one that allows none is left out) */
        {"{\"properties\":{\"a\":{\"anyOf\":[{\"type\":\"integer\"},{\"enum\":[\"x\",19]},{\"type\":\"object\"}],\"enum\":[\"x\",2,1.0]}}}",
         "{\"a\":1.0}", 1},
        {"{\"properties\":{\"a\":{\"anyOf\":[{\"type\":\"integer\"},{\"enum\":[\"x\",19]},{\"type\":\"object\"}],\"enum\":[\"x\",2,1.0]}}}",
         "{\"a\":\"x\"}", 1},
        {"{\"properties\":{\"a\":{\"anyOf\":[{\"type\":\"integer\"},{\"enum\":[\"x\",19]},{\"type\":\"object\"}],\"enum\":[\"x\",2,1.0]}}}",
         "{\"a\":19}", -1},
        /* a required name not declared is another key (of additionalProperties' schema) */
        {"{\"properties\":{\"a\":{}},\"required\":[\"zz\"],\"additionalProperties\":{\"type\":\"integer\"}}", "{\"a\":1,\"zz\":2}", 1},
        {"{\"properties\":{\"a\":{}},\"required\":[\"zz\"],\"additionalProperties\":{\"type\":\"integer\"}}", "{\"a\":1}", -1},
        {"{\"properties\":{\"a\":{}},\"required\":[\"zz\"],\"additionalProperties\":{\"type\":\"integer\"}}", "{\"zz\":\"x\"}", -1},
        {"{\"required\":[\"zz\"],\"additionalProperties\":true}", "{\"q\":1,\"zz\":[]}", 1},
        /* items false in one schema: no item the other's tuple adds */
        {"{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":false}}},"
         "{\"properties\":{\"a\":{\"prefixItems\":[{\"type\":\"string\"}]}}}]}", "{\"a\":[]}", 1},
        {"{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":false}}},"
         "{\"properties\":{\"a\":{\"prefixItems\":[{\"type\":\"string\"}]}}}]}", "{\"a\":[\"x\"]}", -1},
        {"{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"}]}}},"
         "{\"properties\":{\"a\":{\"items\":{\"maximum\":3}}}}]}", "{\"a\":[1,2.5]}", 1},
        {"{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"}]}}},"
         "{\"properties\":{\"a\":{\"items\":{\"maximum\":3}}}}]}", "{\"a\":[4]}", -1},
        /* recursion through a $ref both schemas name */
        {"{\"allOf\":[{\"type\":\"object\",\"properties\":{\"e\":{\"$ref\":\"#/$defs/D\"}}},{\"properties\":{\"e\":{\"$ref\":\"#/$defs/D\"}}}],"
         "\"$defs\":{\"D\":{\"$ref\":\"#\"}}}", "{\"e\":{\"e\":{}}}", 1},
        /* a leap second is 23:59:60 */
        {"{\"properties\":{\"t\":{\"format\":\"time\"}}}", "{\"t\":\"23:59:60Z\"}", 1},
        {"{\"properties\":{\"t\":{\"format\":\"time\"}}}", "{\"t\":\"09:10:60Z\"}", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_status st;
        sl_json_schema *sc = compile_text(cases[i].schema, &st);
        CHECK_MSG(st == SL_OK, "%s: %s", cases[i].schema, sl_last_error());
        if (!sc) continue;
        const int got = runs_in(sc, cases[i].doc);
        sl_json_schema_release(sc);
        CHECK_MSG(got == cases[i].want, "%s with %s: %d, want %d", cases[i].schema, cases[i].doc, got, cases[i].want);
    }
#undef OPEN
#undef BASE
}

/* ---- against Ajv: every complete answer is valid under its schema ----------------------------- */

/* Random schemas of what the compiler supports, written as draft 2020-12 has them (no items-as-array; anyOf
 * rather than oneOf, which the recognizer follows as anyOf) */
static json_t *gen_schema(int depth);
static json_t *gen_object(int depth, bool typed) {
    static const char *names[] = {"a", "ab", "b", "k", "\xc3\xa9"};
    json_t *o = json_object(), *p = json_object(), *req = json_array();
    if (typed) json_object_set_new(o, "type", json_string("object"));
    for (int i = (int)rnd(4); i > 0; i--) {
        const char *k = names[rnd(5)];
        json_object_set_new(p, k, gen_schema(depth + 1));
        if (rnd(2)) json_array_append_new(req, json_string(k));
    }
    if (json_object_size(p) || rnd(2)) json_object_set(o, "properties", p);
    if (json_array_size(req) && !json_object_get(o, "required")) { /* (each name once) */
        json_t *u = json_array();
        const char *k;
        json_t *v;
        json_object_foreach(p, k, v) {
            size_t i;
            json_t *e;
            bool r = false;
            json_array_foreach(req, i, e) r |= !strcmp(json_string_value(e), k);
            if (r) json_array_append_new(u, json_string(k));
        }
        json_object_set_new(o, "required", u);
    }
    switch (rnd(6)) {
    case 0: json_object_set_new(o, "additionalProperties", json_false()); break;
    case 4: json_object_set_new(o, "additionalProperties", json_pack("{s:{}}", "not")); break; /* zod's never */
    case 1: json_object_set_new(o, "additionalProperties", json_true()); break;
    case 2: json_object_set_new(o, "additionalProperties", gen_schema(depth + 1)); break;
    default: break;
    }
    if (!json_object_size(p) && rnd(3) == 0) { /* the names of keys (an object with no declared property) */
        switch (rnd(4)) {
        case 0: json_object_set_new(o, "propertyNames", json_pack("{s:[s,s,s]}", "enum", "a", "k", "\xc3\xa9")); break;
        case 1: json_object_set_new(o, "propertyNames", json_pack("{s:s}", "pattern", "^[a-c]+$")); break;
        case 2: json_object_set_new(o, "propertyNames", json_pack("{s:i,s:i}", "minLength", 2, "maxLength", 3)); break;
        default: json_object_set_new(o, "propertyNames", json_pack("{s:s}", "const", "zz")); break;
        }
    }
    else if (!json_object_size(p) && !json_object_get(o, "required") && rnd(4) == 0) /* keys of a pattern, values of a schema */
        json_object_set_new(o, "patternProperties", json_pack("{s:o}", rnd(2) ? "^[a-c]+$" : "k", gen_schema(depth + 1)));
    if (rnd(4) == 0) json_object_set_new(o, "minProperties", json_integer(rnd(3)));
    if (rnd(4) == 0) json_object_set_new(o, "maxProperties", json_integer(1 + rnd(3)));
    json_decref(p);
    json_decref(req);
    return o;
}

static json_t *gen_schema(int depth) {
    static const char *pats[] = {"^a+b?$", "[0-9]", "^(x|yz)*$", "^\\d{2,3}$", "^[a-c]{1,4}$"};
    static const char *fmts[] = {"date", "uuid", "ipv4", "email", "time", "date-time", "hostname"};
    json_t *o;
    switch (rnd(depth > 3 ? 7 : 12)) {
    case 0: {
        static const char *t[] = {"string", "integer", "number", "boolean", "null"};
        return json_pack("{s:s}", "type", t[rnd(5)]);
    }
    case 1:
        o = json_pack("{s:s}", "type", "string");
        if (rnd(2)) json_object_set_new(o, "minLength", json_integer(rnd(3)));
        if (rnd(2)) json_object_set_new(o, "maxLength", json_integer(2 + rnd(5)));
        if (rnd(3) == 0) json_object_set_new(o, "pattern", json_string(pats[rnd(5)]));
        else if (rnd(3) == 0) json_object_set_new(o, "format", json_string(fmts[rnd(7)]));
        return o;
    case 2:
        o = json_pack("{s:s}", "type", rnd(2) ? "integer" : "number");
        if (rnd(2)) json_object_set_new(o, rnd(2) ? "minimum" : "exclusiveMinimum", json_real((double)rnd(40) / 4 - 5));
        if (rnd(2)) json_object_set_new(o, rnd(2) ? "maximum" : "exclusiveMaximum", json_real((double)rnd(40) / 4 + 5));
        if (rnd(3) == 0) { /* multiples that Ajv's float division checks exactly */
            static const double muls[] = {2, 5, 0.5, 0.25};
            json_object_set_new(o, "multipleOf", json_real(muls[rnd(4)]));
        }
        return o;
    case 3:
        o = json_pack("{s:[s,i,b,n,f]}", "enum", "x", (int)rnd(20), rnd(2), (double)rnd(8) / 2);
        if (rnd(2)) json_object_set_new(o, "type", json_pack("[s,s]", "string", rnd(2) ? "integer" : "null"));
        return o;
    case 4: return json_pack("{s:s}", "$ref", rnd(3) ? "#/$defs/D" : "#");
    case 5: return json_pack("{s:[s,s]}", "type", "string", rnd(2) ? "null" : "number");
    case 6: return json_pack("{s:s,s:i}", "$ref", "#/$defs/S", "maxLength", (int)rnd(6));
    case 7: return gen_object(depth, rnd(4) != 0);
    case 8:
        o = json_pack("{s:s,s:o}", "type", "array", "items", rnd(5) ? gen_schema(depth + 1) : json_false());
        if (rnd(3) == 0) json_object_set_new(o, "prefixItems", json_pack("[o,o]", gen_schema(depth + 1), gen_schema(depth + 1)));
        if (rnd(2)) json_object_set_new(o, "minItems", json_integer(rnd(3)));
        if (rnd(2)) json_object_set_new(o, "maxItems", json_integer(1 + rnd(3)));
        if (rnd(4) == 0) { /* a set of literals */
            json_object_del(o, "prefixItems");
            json_object_set_new(o, "items", rnd(2) ? json_pack("{s:[s,i,i,b,n]}", "enum", "x", 1, 12, 1)
                                                   : json_pack("{s:s}", "type", "boolean"));
            json_object_set_new(o, "uniqueItems", json_true());
        }
        return o;
    case 9: return json_pack("{s:[o,o]}", "anyOf", gen_schema(depth + 1), gen_schema(depth + 1));
    case 10: /* allOf: two objects, or bounds and types */
        if (rnd(2)) return json_pack("{s:[o,o]}", "allOf", gen_object(depth, rnd(2)), gen_object(depth, false));
        return json_pack("{s:[{s:[s,s],s:i},{s:s,s:i}]}", "allOf", "type", "integer", "string", "minimum", (int)rnd(5),
                         "type", rnd(2) ? "number" : "integer", "maximum", 4 + (int)rnd(5));
    default: /* keywords beside anyOf */
        o = gen_object(depth, true);
        json_object_set_new(o, "anyOf", json_pack("[{s:[s]},{s:{s:{s:s}}}]", "required", "zz", "properties", "b", "type",
                                                  "string"));
        if (rnd(2)) json_object_set_new(json_object_get(o, "properties"), "zz", json_pack("{s:s}", "type", "integer"));
        return o;
    }
}

/* A random answer to sc, steered to an end as it grows: NULL when it does not reach one. */
static char *random_answer(const sl_json_schema *sc) {
    static const char alphabet[] = "{}[],:\" 0123456789.-+eEtrufalsnxyzkabcdT@Z\n\\/\xc3\xa9";
    static const char closing[] = "}]\"0";
    char *out = malloc(1200);
    sl_json_state s;
    sl_json_init(&s, sc);
    const int patience = 20 + (int)rnd(60);
    for (int i = 0; i < 1199; i++) {
        if (sl_json_done(&s)) {
            out[i] = 0;
            return out;
        }
        uint8_t ok[sizeof alphabet];
        int n_ok = 0;
        for (size_t b = 0; b + 1 < sizeof alphabet; b++) {
            sl_json_state t = s;
            if (sl_json_feed(&t, (uint8_t)alphabet[b])) ok[n_ok++] = (uint8_t)alphabet[b];
        }
        if (n_ok == 0) break;
        uint8_t c = ok[rnd((uint32_t)n_ok)];
        for (const char *p = closing; i > patience && *p && rnd(4); p++)
            if (memchr(ok, *p, (size_t)n_ok)) {
                c = (uint8_t)*p;
                break;
            }
        sl_json_feed(&s, c);
        out[i] = (char)c;
    }
    free(out);
    return NULL;
}

TEST(answers_are_valid_per_ajv) {
    CHECK_MSG(access("tests/node/node_modules/ajv/package.json", R_OK) == 0,
              "the ajv npm package is not installed: run 'npm install' in tests/node (.ci/run does)");
    const char *node = access("/usr/bin/node", X_OK) == 0 ? "/usr/bin/node" : "/usr/local/bin/node";
    CHECK_MSG(access(node, X_OK) == 0, "node is not installed");
    char path[] = "/tmp/sl-ajv-XXXXXX";
    const int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    rng_state = 0x9E3779B97F4A7C15ull;
    int compiled = 0, answers = 0, repeated = 0;
    for (int k = 0; k < 2500; k++) {
        json_t *root = rnd(3) ? gen_object(0, true)
                              : json_pack("{s:[o,o]}", rnd(2) ? "allOf" : "anyOf", gen_object(0, true), gen_object(1, rnd(2)));
        json_t *defd = gen_schema(1); /* (not itself alone: Ajv's stack overflows on that, used or not) */
        while (json_object_get(defd, "$ref") && !strcmp(json_string_value(json_object_get(defd, "$ref")), "#/$defs/D"))
            json_decref(defd), defd = gen_schema(1);
        json_object_set_new(root, "$defs", json_pack("{s:o,s:{s:s,s:i}}", "D", defd, "S", "type", "string", "minLength", (int)rnd(3)));
        sl_json_schema *sc = NULL;
        if (sl_json_schema_compile(root, &sc) == SL_OK) {
            compiled++;
            json_t *docs = json_array();
            for (int w = 0; w < 4; w++) {
                char *a = random_answer(sc);
                /* keys not declared are not checked against each other (jsonguide.h): an answer that repeats one
                 * is left out, as a JSON parser keeps one of them */
                json_t *doc = a ? json_loads(a, JSON_REJECT_DUPLICATES, NULL) : NULL;
                if (doc) json_array_append_new(docs, json_string(a));
                else repeated += a != NULL;
                json_decref(doc);
                free(a);
            }
            answers += (int)json_array_size(docs);
            json_t *line = json_pack("{s:O,s:o}", "schema", root, "docs", docs);
            char *t = json_dumps(line, JSON_COMPACT);
            fprintf(f, "%s\n", t);
            free(t);
            json_decref(line);
        }
        sl_json_schema_release(sc);
        json_decref(root);
    }
    fclose(f);
    CHECK_MSG(compiled > 1000 && answers > 3000 && repeated < answers / 20, "%d schemas compiled, %d answers complete, %d with a key twice",
              compiled, answers, repeated);
    char *argv[] = {(char *)node, "tests/node/schema-check.mjs", path, NULL};
    char *out = NULL, *err = NULL;
    const int rc = sl_test_run(argv, &out, &err, 120);
    unlink(path);
    json_t *o = rc == 0 ? json_loads(out, 0, NULL) : NULL;
    if (!o) fprintf(stderr, "    node exited %d\n    stderr: %.2000s\n", rc, err);
    CHECK(o != NULL);
    const long long n_docs = json_integer_value(json_object_get(o, "docs"));
    CHECK_MSG(json_integer_value(json_object_get(o, "schemas")) == compiled && n_docs == answers,
              "Ajv checked %lld answers of %d", n_docs, answers);
    char *bad = json_dumps(json_object_get(o, "invalid"), JSON_COMPACT);
    CHECK_MSG(json_array_size(json_object_get(o, "invalid")) == 0, "answers Ajv finds invalid: %.3000s", bad);
    free(bad);
    bad = json_dumps(json_object_get(o, "not_compiled"), JSON_COMPACT);
    CHECK_MSG(json_array_size(json_object_get(o, "not_compiled")) == 0, "schemas Ajv does not compile: %.2000s", bad);
    free(bad);
    fprintf(stderr, "   %d schemas compiled, %d answers (and %d with a key twice), all valid per Ajv\n", compiled, answers, repeated);
    json_decref(o);
    free(out);
    free(err);
}

/* String contents are UTF-8 (RFC 8259 section 8.1, RFC 3629) and escapes name characters: a truncated,
 * overlong or surrogate sequence and a lone surrogate escape are refused, as jansson refuses them, and as
 * soon as the bytes tell, so no string is begun that cannot end. */
TEST(strings_are_utf8) {
    static const struct {
        const char *value;
        int want;
    } cases[] = {
        {"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", 1},
        {"\"\\ud83d\\ude00\"", 1},
        {"\"\\uD83D\\uDE00x\"", 1},
        {"\"\xc3\"", -1},             /* truncated */
        {"\"\xc0\xaf\"", -1},         /* overlong */
        {"\"\xe0\x80\xaf\"", -1},     /* overlong */
        {"\"\xed\xa0\x80\"", -1},     /* a surrogate in UTF-8 */
        {"\"\xf4\x90\x80\x80\"", -1}, /* past U+10FFFF */
        {"\"\x80\"", -1},             /* a continuation byte alone */
        {"\"\xff\"", -1},
        {"\"\\ud83d\"", -1},          /* a high half alone */
        {"\"\\ud83dx\"", -1},
        {"\"\\ud83d\\u0041\"", -1},
        {"\"\\ude00\"", -1},          /* a low half alone */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int got = run_value(any_object(), cases[i].value);
        CHECK_MSG(got == cases[i].want, "%s: %d, want %d", cases[i].value, got, cases[i].want);
        /* jansson agrees */
        char doc[64];
        snprintf(doc, sizeof doc, "{\"a\":%s}", cases[i].value);
        json_t *o = json_loads(doc, 0, NULL);
        CHECK_MSG((o != NULL) == (cases[i].want == 1), "jansson on %s", cases[i].value);
        json_decref(o);
    }
    CHECK_EQ_INT(run_begun(any_object(), "\"\\uDC"), -1);
    CHECK_EQ_INT(run_begun(any_object(), "\"\\uDB"), 0);
    CHECK_EQ_INT(run_begun(any_object(), "\"\\uDBFF\\uD"), 0);
    CHECK_EQ_INT(run_begun(any_object(), "\"\\uDBFF\\uDB"), -1);
    CHECK_EQ_INT(run_begun(any_object(), "\"\xe0\x9f"), -1);
    /* as keys too */
    CHECK_EQ_INT(runs("{\"\xc3\xa9\":1}"), 1);
    CHECK_EQ_INT(runs("{\"\xc3\":1}"), -1);
    /* a length limit counts a pair as one character */
    sl_json_schema *sc = prop_schema("{\"type\":\"string\",\"maxLength\":1}");
    CHECK(sc);
    CHECK_EQ_INT(run_value(sc, "\"\\ud83d\\ude00\""), 1);
    CHECK_EQ_INT(run_value(sc, "\"\xf0\x9f\x98\x80\""), 1);
    sl_json_schema_release(sc);
}

/* Tuples: prefixItems (Pydantic's Tuple[int, str]) and the older items-as-array form; items for the rest, or
 * none with items false. */
TEST(tuples) {
    static const struct {
        const char *prop, *value;
        int want;
    } cases[] = {
        {"{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],\"minItems\":2,\"maxItems\":2}",
         "[1,\"a\"]", 1},
        {"{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],\"minItems\":2,\"maxItems\":2}",
         "[\"a\",1]", -1},
        {"{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],\"minItems\":2,\"maxItems\":2}",
         "[1]", -1},
        {"{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],\"minItems\":2,\"maxItems\":2}",
         "[1,\"a\",2]", -1},
        {"{\"prefixItems\":[{\"const\":\"x\"}],\"items\":{\"type\":\"boolean\"}}", "[\"x\",true,false]", 1},
        {"{\"prefixItems\":[{\"const\":\"x\"}],\"items\":{\"type\":\"boolean\"}}", "[\"x\",1]", -1},
        {"{\"prefixItems\":[{\"const\":\"x\"}],\"items\":{\"type\":\"boolean\"}}", "[]", 1},
        {"{\"prefixItems\":[{\"const\":\"x\"}],\"items\":false}", "[\"x\",true]", -1},
        {"{\"prefixItems\":[{\"const\":\"x\"}],\"items\":false}", "[\"x\"]", 1},
        {"{\"type\":\"array\",\"items\":[{\"type\":\"null\"},{\"type\":\"integer\"}],\"additionalItems\":false}", "[null,3]", 1},
        {"{\"type\":\"array\",\"items\":[{\"type\":\"null\"},{\"type\":\"integer\"}],\"additionalItems\":false}", "[null,3,4]", -1},
        {"{\"type\":\"array\",\"items\":[{\"type\":\"null\"}]}", "[null,\"anything\",{}]", 1},
        /* a union of tuples that begin alike */
        {"{\"anyOf\":[{\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"integer\"}],\"items\":false},"
         "{\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],\"items\":false}]}", "[1,\"b\"]", 1},
        {"{\"anyOf\":[{\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"integer\"}],\"items\":false},"
         "{\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],\"items\":false}]}", "[1,null]", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_json_schema *sc = prop_schema(cases[i].prop);
        if (!sc) return;
        const int got = run_value(sc, cases[i].value);
        sl_json_schema_release(sc);
        CHECK_MSG(got == cases[i].want, "%s with %s: %d, want %d", cases[i].prop, cases[i].value, got, cases[i].want);
    }
    sl_status st;
    CHECK(!compile_text("{\"properties\":{\"a\":{\"prefixItems\":[{}],\"items\":false,\"minItems\":2}}}", &st) &&
          strstr(sl_last_error(), "properties.a: 'minItems' is above the items the schema allows"));
    CHECK(!compile_text("{\"properties\":{\"a\":{\"prefixItems\":{}}}}", &st) &&
          strstr(sl_last_error(), "'prefixItems' must be an array"));
    CHECK(!compile_text("{\"properties\":{\"a\":{\"prefixItems\":[{\"type\":\"nope\"}]}}}", &st) &&
          strstr(sl_last_error(), "properties.a.prefixItems[0]"));
}

/* A whole-output pattern (guided_regex, guided_choice): the output's bytes go through the DFA as they are; end
 * of generation is allowed where the bytes so far match, and the answer is complete once nothing can follow. */
TEST(whole_output_patterns) {
    sl_json_schema *sc = NULL;
    CHECK_OK(sl_json_schema_compile_pattern("(yes|no)!?", 10, &sc));
    sl_json_state s;
    sl_json_init(&s, sc);
    CHECK(!sl_json_may_end(&s) && !sl_json_done(&s));
    CHECK(sl_json_feed_all(&s, "ye", 2) && !sl_json_may_end(&s));
    CHECK(sl_json_feed_all(&s, "s", 1) && sl_json_may_end(&s) && !sl_json_done(&s)); /* "!" may follow */
    CHECK(sl_json_feed_all(&s, "!", 1) && sl_json_done(&s));
    CHECK(!sl_json_feed(&s, '!'));
    sl_json_init(&s, sc);
    CHECK(!sl_json_feed(&s, ' ')); /* the whole output: nothing before the match */
    CHECK(!sl_json_feed(&s, '{'));
    sl_json_schema_release(sc);
    /* the output is UTF-8, and '.' one character of it */
    CHECK_OK(sl_json_schema_compile_pattern("\\d+ .", 5, &sc));
    sl_json_init(&s, sc);
    CHECK(sl_json_feed_all(&s, "12 \xc3", 4) && !sl_json_may_end(&s));
    CHECK(sl_json_feed_all(&s, "\xa9", 1) && sl_json_done(&s));
    sl_json_init(&s, sc);
    CHECK(!sl_json_feed_all(&s, "1 \xc3(", 4));
    sl_json_schema_release(sc);
    sl_status st = sl_json_schema_compile_pattern("a(?=b)", 6, &sc);
    CHECK(st == SL_ERR_INVALID && strstr(sl_last_error(), "lookahead is not supported at offset 1"));
    /* the mask: end of generation only where the output may end; exactly the tokens the recognizer takes */
    const char *path = sl_test_shared("models/stories260K.gguf");
    if (!path) return;
    sl_model *m = NULL;
    CHECK_OK(sl_model_load(path, &m));
    const sl_tokenizer *tok = sl_model_tokenizer(m);
    sl_json_guide *g = NULL;
    CHECK_OK(sl_json_guide_create(tok, &g));
    float *l = calloc((size_t)sl_tokenizer_n_vocab(tok), sizeof(float));
    CHECK_OK(sl_json_schema_compile_pattern("[A-Z][a-z]+( [a-z]+)*\\.", 23, &sc));
    static const char *states[] = {"", "O", "Once", "Once upon", "Once upon "};
    for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
        int32_t ok_n;
        const int32_t differ = mask_vs_recognizer(g, tok, sc, states[k], l, &ok_n);
        CHECK_MSG(differ == 0 && ok_n > 0, "after '%s': %d tokens masked wrongly, %d allowed", states[k], differ, ok_n);
        CHECK(isinf(l[sl_tokenizer_eog_at(tok, 0)]));
    }
    sl_json_init(&s, sc);
    CHECK(sl_json_feed_all(&s, "Once.", 5) && sl_json_done(&s));
    for (int32_t i = 0; i < sl_tokenizer_n_vocab(tok); i++) l[i] = 0;
    CHECK(sl_json_guide_mask(g, &s, l) >= 1 && !isinf(l[sl_tokenizer_eog_at(tok, 0)]));
    sl_json_schema_release(sc);
    free(l);
    sl_json_guide_destroy(g);
    sl_model_destroy(m);
}
