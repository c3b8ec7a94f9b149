/*
 * test_toolcall.c — tool-call syntaxes (server/toolcall.c): the syntax each
 * real chat template of ../shared/golden/chat-templates teaches, answers in
 * each syntax parsed into calls (the expected calls written by hand from the
 * syntax the template documents), answers that hold no call, and the
 * streaming hold-back fed one byte at a time.
 */
#include "harness.h"

#include "server/toolcall.h"

#define FUZZ_TOOLCALL_NO_MAIN
#include "../fuzz/fuzz_toolcall.c"

#include <stdlib.h>
#include <string.h>

/* The syntax of a golden template, or -1 when ../shared is absent. */
static int detect_file(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "golden/chat-templates/%s.jinja", name);
    const char *path = sl_test_shared(rel);
    if (!path) return -1;
    size_t len;
    char *src = sl_test_read_file(path, &len);
    if (!src) return -2;
    const int f = (int)sl_tool_format_detect(src);
    free(src);
    return f;
}

TEST(formats_detected_from_real_templates) {
    static const struct {
        const char *file;
        sl_tool_format f;
    } cases[] = {
        {"Qwen-Qwen2.5-7B-Instruct", SL_TOOLS_HERMES},
        {"Qwen-Qwen3-0.6B", SL_TOOLS_HERMES},
        {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use", SL_TOOLS_HERMES},
        {"ibm-granite-granite-4.0", SL_TOOLS_HERMES},
        {"meta-llama-Llama-3.1-8B-Instruct", SL_TOOLS_LLAMA3},
        {"meta-llama-Llama-3.2-3B-Instruct", SL_TOOLS_LLAMA3},
        {"meta-llama-Llama-3.3-70B-Instruct", SL_TOOLS_LLAMA3},
        {"mistralai-Mistral-Nemo-Instruct-2407", SL_TOOLS_MISTRAL},
        {"Mistral-Small-3.2-24B-Instruct-2506", SL_TOOLS_MISTRAL_ARGS},
        {"unsloth-mistral-Devstral-Small-2507", SL_TOOLS_MISTRAL_ARGS},
        {"ibm-granite-granite-3.3-2B-Instruct", SL_TOOLS_GRANITE},
        {"fireworks-ai-llama-3-firefunction-v2", SL_TOOLS_FIREFUNCTION},
        {"meetkai-functionary-medium-v3.1", SL_TOOLS_FUNCTIONARY},
        {"Qwen3-Coder", SL_TOOLS_XML},
        {"Qwen3.5-4B", SL_TOOLS_XML},
        {"GLM-4.6", SL_TOOLS_GLM},
        {"deepseek-ai-DeepSeek-V3.1", SL_TOOLS_DEEPSEEK},
        {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", SL_TOOLS_DEEPSEEK},
        {"moonshotai-Kimi-K2", SL_TOOLS_KIMI},
        {"Kimi-K2-Instruct", SL_TOOLS_KIMI},
        {"google-gemma-2-2b-it", SL_TOOLS_JSON},
        {"deepseek-ai-DeepSeek-V3.2", SL_TOOLS_DSML},
        {"deepseek-ai-DeepSeek-V4", SL_TOOLS_DSML},
        {"deepseek-ai-DeepSeek-V4-Flash-0731", SL_TOOLS_DSML},
        {"MiniMax-M2", SL_TOOLS_MINIMAX_M2},
        {"MiniMax-M1", SL_TOOLS_TAGGED_JSON},
        {"Apriel-1.6-15b-Thinker-fixed", SL_TOOLS_TAGGED_JSON},
        {"openbmb-MiniCPM5-1B", SL_TOOLS_MINICPM},
        {"tencent-Hy3", SL_TOOLS_HY3},
        {"upstage-Solar-Open-100B", SL_TOOLS_SOLAR},
        {"Apertus-8B-Instruct", SL_TOOLS_APERTUS},
        {"CohereForAI-c4ai-command-r7b-12-2024-tool_use", SL_TOOLS_COMMAND_R7B},
        {"Cohere2MoE", SL_TOOLS_COMMAND_R7B},
        {"NVIDIA-Nemotron-Nano-v2", SL_TOOLS_NEMOTRON},
        {"GigaChat3-10B-A1.8B", SL_TOOLS_GIGACHAT},
        {"GigaChat3.1-10B-A1.8B", SL_TOOLS_GIGACHAT},
        {"LFM2-8B-A1B", SL_TOOLS_LFM2},
        {"LFM2.5-8B-A1B", SL_TOOLS_LFM2},
        {"LFM2.5-Instruct", SL_TOOLS_LFM2},
        {"google-gemma-4-31B-it", SL_TOOLS_GEMMA4},
        {"google-gemma-4-31B-it-interleaved", SL_TOOLS_GEMMA4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int f = detect_file(cases[i].file);
        if (f == -1) return; /* no ../shared */
        CHECK_MSG(f == (int)cases[i].f, "%s: detected %s, expected %s", cases[i].file,
                  f < 0 ? "(unreadable)" : sl_tool_format_name((sl_tool_format)f), sl_tool_format_name(cases[i].f));
    }
    CHECK_EQ_INT(sl_tool_format_detect(NULL), SL_TOOLS_JSON);
}

/* Parse `text` in syntax f; check the content and the calls "name|arguments;name|arguments". */
static bool parses_as(sl_tool_format f, const json_t *tools, const char *text, const char *content, const char *calls) {
    size_t cl = 12345;
    json_t *got = sl_tool_parse(f, tools, text, strlen(text), &cl);
    fuzz_toolcall_partial(f, false, tools, text, strlen(text), got); /* streamed, its calls grow into these */
    if (!calls) {
        const bool ok = got == NULL;
        if (!ok) fprintf(stderr, "   %s: expected no call in '%s'\n", sl_tool_format_name(f), text);
        json_decref(got);
        return ok;
    }
    if (!got) {
        fprintf(stderr, "   %s: no call parsed from '%s'\n", sl_tool_format_name(f), text);
        return false;
    }
    char buf[1024] = "";
    size_t i;
    json_t *c;
    json_array_foreach(got, i, c) {
        if (i) strncat(buf, ";", sizeof buf - strlen(buf) - 1);
        strncat(buf, json_string_value(json_object_get(c, "name")), sizeof buf - strlen(buf) - 1);
        strncat(buf, "|", sizeof buf - strlen(buf) - 1);
        strncat(buf, json_string_value(json_object_get(c, "arguments")), sizeof buf - strlen(buf) - 1);
    }
    json_decref(got);
    const bool ok = !strcmp(buf, calls) && cl == strlen(content) && !memcmp(text, content, cl);
    if (!ok)
        fprintf(stderr, "   %s: '%s' gave calls '%s' and content '%.*s'; expected '%s' and '%s'\n",
                sl_tool_format_name(f), text, buf, (int)cl, text, calls, content);
    return ok;
}

TEST(json_syntaxes_parse_into_calls) {
    /* Hermes / Qwen 2.5: text before the first block is content; several blocks */
    CHECK(parses_as(SL_TOOLS_HERMES, NULL,
                    "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
                    "</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>",
                    "Let me look.", "get_weather|{\"city\":\"Paris\"};get_time|{}"));
    /* a closing tag cut by the end of the answer still counts; arguments as a JSON string */
    CHECK(parses_as(SL_TOOLS_HERMES, NULL, "<tool_call>{\"name\":\"f\",\"arguments\":\"{\\\"a\\\": 1}\"}", "",
                    "f|{\"a\": 1}"));
    CHECK(parses_as(SL_TOOLS_HERMES, NULL, "no calls here", NULL, NULL));
    CHECK(parses_as(SL_TOOLS_HERMES, NULL, "<tool_call>{\"name\": \"f\", \"arguments\": {", NULL, NULL));
    CHECK(parses_as(SL_TOOLS_HERMES, NULL, "<tool_call>{\"arguments\": {}}</tool_call>", NULL, NULL));
    CHECK(parses_as(SL_TOOLS_HERMES, NULL, "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>", NULL, NULL));
    /* Llama 3.x: the whole answer, "parameters"; after <|python_tag|>; several joined by ';' */
    CHECK(parses_as(SL_TOOLS_LLAMA3, NULL, " {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}", "",
                    "get_weather|{\"city\":\"Oslo\"}"));
    CHECK(parses_as(SL_TOOLS_LLAMA3, NULL,
                    "<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"x\": [1, 2]}}",
                    "", "a|{};b|{\"x\":[1,2]}"));
    CHECK(parses_as(SL_TOOLS_LLAMA3, NULL, "The answer is {\"name\": \"a\"}", NULL, NULL));
    CHECK(parses_as(SL_TOOLS_LLAMA3, NULL, "{\"name\": \"a\", \"parameters\": {}} and more", NULL, NULL));
    /* Mistral: an array after [TOOL_CALLS]; the v11 form name[ARGS]{...}, with an id */
    CHECK(parses_as(SL_TOOLS_MISTRAL, NULL,
                    "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"q\": \"x\"}, \"id\": \"abcdefghi\"}, "
                    "{\"name\": \"g\", \"arguments\": {}}]",
                    "", "f|{\"q\":\"x\"};g|{}"));
    CHECK(parses_as(SL_TOOLS_MISTRAL_ARGS, NULL,
                    "Sure.[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Rome\"}[TOOL_CALLS]f[CALL_ID]a1b2c3d4e[ARGS]{}",
                    "Sure.", "get_weather|{\"city\":\"Rome\"};f|{}"));
    CHECK(parses_as(SL_TOOLS_MISTRAL_ARGS, NULL, "[TOOL_CALLS]get_weather{\"city\": \"Rome\"}", NULL, NULL));
    /* Granite 3.3, firefunction: a marker, then an array */
    CHECK(parses_as(SL_TOOLS_GRANITE, NULL, "<|tool_call|>[{\"name\": \"f\", \"arguments\": {\"n\": 2}}]", "",
                    "f|{\"n\":2}"));
    CHECK(parses_as(SL_TOOLS_FIREFUNCTION, NULL, "ok functools[{\"name\": \"f\", \"arguments\": {}}]", "ok", "f|{}"));
    /* functionary v3.1 */
    CHECK(parses_as(SL_TOOLS_FUNCTIONARY, NULL,
                    "<function=get_weather>{\"city\": \"Lima\"}</function><function=g>{}</function>", "",
                    "get_weather|{\"city\":\"Lima\"};g|{}"));
    /* DeepSeek V3.1, and R1's fenced form */
    CHECK(parses_as(SL_TOOLS_DEEPSEEK, NULL,
                    "Checking.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Oslo\"}"
                    "<｜tool▁call▁end｜><｜tool▁call▁begin｜>g<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
                    "Checking.", "get_weather|{\"city\":\"Oslo\"};g|{}"));
    CHECK(parses_as(SL_TOOLS_DEEPSEEK, NULL,
                    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
                    "{\"city\": \"Oslo\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
                    "", "get_weather|{\"city\":\"Oslo\"}"));
    CHECK(parses_as(SL_TOOLS_DEEPSEEK, NULL, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f{}", NULL, NULL));
    /* Kimi K2: the id names the function */
    CHECK(parses_as(SL_TOOLS_KIMI, NULL,
                    "Sure.<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0"
                    "<|tool_call_argument_begin|>{\"city\": \"Oslo\"}<|tool_call_end|><|tool_call_begin|>functions.g:1"
                    "<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>",
                    "Sure.", "get_weather|{\"city\":\"Oslo\"};g|{}"));
    /* no known syntax: Hermes blocks, or the whole answer a call or an array of calls */
    CHECK(parses_as(SL_TOOLS_JSON, NULL, "\n{\"name\": \"f\", \"arguments\": {\"a\": true}}\n", "", "f|{\"a\":true}"));
    CHECK(parses_as(SL_TOOLS_JSON, NULL, "[{\"name\": \"f\"}, {\"name\": \"g\", \"parameters\": {}}]", "", "f|{};g|{}"));
    CHECK(parses_as(SL_TOOLS_JSON, NULL, "x <tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>", "x", "f|{}"));
    CHECK(parses_as(SL_TOOLS_JSON, NULL, "{\"city\": \"Paris\"}", NULL, NULL));
    CHECK(parses_as(SL_TOOLS_JSON, NULL, "[]", NULL, NULL));
}

TEST(xml_syntaxes_type_values_by_the_schema) {
    json_t *tools = json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": "
                               "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, "
                               "\"days\": {\"type\": \"integer\"}, \"units\": {\"type\": \"array\"}}}}}]",
                               0, NULL);
    CHECK(tools != NULL);
    /* Qwen3-Coder: values on their own lines; "days" an integer by the schema, "city" stays a string */
    const bool xml = parses_as(
        SL_TOOLS_XML, tools,
        "Checking.\n<tool_call>\n<function=get_weather>\n<parameter=city>\n123\n</parameter>\n<parameter=days>\n3\n"
        "</parameter>\n<parameter=units>\n[\"C\"]\n</parameter>\n</function>\n</tool_call>",
        "Checking.", "get_weather|{\"city\":\"123\",\"days\":3,\"units\":[\"C\"]}");
    /* a value the schema types but that is not JSON stays a string; an undeclared key is a string */
    const bool xml2 = parses_as(SL_TOOLS_XML, tools,
                                "<tool_call>\n<function=get_weather>\n<parameter=days>\nthree\n</parameter>\n"
                                "<parameter=other>\n{}\n</parameter>\n</function>\n</tool_call>",
                                "", "get_weather|{\"days\":\"three\",\"other\":\"{}\"}");
    const bool xml_bad = parses_as(SL_TOOLS_XML, tools, "<tool_call>\n<function=f>\n<parameter=a>\n1\n", NULL, NULL);
    /* GLM 4.6 */
    const bool glm = parses_as(SL_TOOLS_GLM, tools,
                               "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n"
                               "<arg_key>days</arg_key>\n<arg_value>2</arg_value>\n</tool_call>",
                               "", "get_weather|{\"city\":\"Paris\",\"days\":2}");
    const bool glm0 = parses_as(SL_TOOLS_GLM, tools, "<tool_call>ping</tool_call>", "", "ping|{}");
    json_decref(tools);
    CHECK(xml);
    CHECK(xml2);
    CHECK(xml_bad);
    CHECK(glm);
    CHECK(glm0);
}

/* The syntaxes added for DeepSeek V3.2/V4, MiniMax-M1/M2, MiniCPM 5, Hunyuan 3, Solar Open, Apertus,
 * Command R7B, Nemotron Nano v2, GigaChat 3 and Apriel: each answer is written after the render of an
 * assistant turn with tool calls by the model's own template (../shared/golden/chat-templates). */
static bool holds_back(sl_tool_format f, const char *text, size_t expect_final);

TEST(further_syntaxes_parse_into_calls) {
    json_t *tools = json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": "
                               "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, "
                               "\"days\": {\"type\": \"integer\"}, \"opts\": {\"type\": \"object\"}}}}}]",
                               0, NULL);
    CHECK(tools != NULL);
    bool ok[24];
    int k = 0;
    /* DeepSeek V3.2 (function_calls) and V4 (tool_calls): string="false" values are JSON whatever the schema */
    ok[k++] = parses_as(SL_TOOLS_DSML, tools,
                        "Let me check.\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"get_weather\">\n"
                        "<｜DSML｜parameter name=\"city\" string=\"true\">Pa\"ris</｜DSML｜parameter>\n"
                        "<｜DSML｜parameter name=\"days\" string=\"false\">3</｜DSML｜parameter>\n"
                        "<｜DSML｜parameter name=\"opts\" string=\"false\">{\"u\": \"C\", \"x\": [1, 2.5]}</｜DSML｜parameter>\n"
                        "<｜DSML｜parameter name=\"flag\" string=\"false\">true</｜DSML｜parameter>\n"
                        "</｜DSML｜invoke>\n<｜DSML｜invoke name=\"get_time\">\n"
                        "<｜DSML｜parameter name=\"tz\" string=\"true\">123</｜DSML｜parameter>\n</｜DSML｜invoke>\n"
                        "</｜DSML｜function_calls>",
                        "Let me check.",
                        "get_weather|{\"city\":\"Pa\\\"ris\",\"days\":3,\"opts\":{\"u\":\"C\",\"x\":[1,2.5]},\"flag\":true};"
                        "get_time|{\"tz\":\"123\"}");
    ok[k++] = parses_as(SL_TOOLS_DSML, tools,
                        "<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_time\">\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>", "",
                        "get_time|{}");
    ok[k++] = parses_as(SL_TOOLS_DSML, tools, "<｜DSML｜function_calls>\n<｜DSML｜invoke name=get_time>", NULL, NULL);
    /* MiniMax-M2: values typed by the schema */
    ok[k++] = parses_as(SL_TOOLS_MINIMAX_M2, tools,
                        "<minimax:tool_call>\n<invoke name=\"get_weather\">\n<parameter name=\"city\">Paris</parameter>\n"
                        "<parameter name=\"days\">3</parameter>\n</invoke>\n<invoke name=\"get_time\">\n"
                        "<parameter name=\"tz\">CET</parameter>\n</invoke>\n</minimax:tool_call>",
                        "", "get_weather|{\"city\":\"Paris\",\"days\":3};get_time|{\"tz\":\"CET\"}");
    ok[k++] = parses_as(SL_TOOLS_MINIMAX_M2, tools,
                        "<minimax:tool_call>\n<invoke name=\"f\">\n<parameter name=\"a\">1", NULL, NULL);
    /* MiniCPM 5: no block around the calls */
    ok[k++] = parses_as(SL_TOOLS_MINICPM, tools,
                        "On it.\n<function name=\"get_weather\"><param name=\"city\">Paris</param><param name=\"days\">3"
                        "</param></function>\n<function name=\"get_time\"><param name=\"tz\">CET</param></function>",
                        "On it.", "get_weather|{\"city\":\"Paris\",\"days\":3};get_time|{\"tz\":\"CET\"}");
    /* Hunyuan 3 */
    ok[k++] = parses_as(SL_TOOLS_HY3, tools,
                        "<tool_calls:opensource>\n<tool_call:opensource>get_weather<tool_sep:opensource>\n"
                        "<arg_key:opensource>city</arg_key:opensource>\n<arg_value:opensource>Paris</arg_value:opensource>\n"
                        "<arg_key:opensource>days</arg_key:opensource>\n<arg_value:opensource>3</arg_value:opensource>\n"
                        "</tool_call:opensource>\n<tool_call:opensource>get_time<tool_sep:opensource>\n"
                        "<arg_key:opensource>tz</arg_key:opensource>\n<arg_value:opensource>CET</arg_value:opensource>\n"
                        "</tool_call:opensource>\n</tool_calls:opensource>",
                        "", "get_weather|{\"city\":\"Paris\",\"days\":3};get_time|{\"tz\":\"CET\"}");
    /* Solar Open: the id before the name is dropped (the server gives its own) */
    ok[k++] = parses_as(SL_TOOLS_SOLAR, tools,
                        "Sure.<|tool_calls|><|tool_call:begin|>a1b2c3d4e5<|tool_call:name|>get_weather<|tool_call:args|>"
                        "{\"city\": \"Paris\", \"days\": 3}<|tool_call:end|><|tool_call:begin|>x<|tool_call:name|>get_time"
                        "<|tool_call:args|>{\"tz\": \"CET\"}<|tool_call:end|><|calls|>",
                        "Sure.", "get_weather|{\"city\":\"Paris\",\"days\":3};get_time|{\"tz\":\"CET\"}");
    ok[k++] = parses_as(SL_TOOLS_SOLAR, tools, "<|tool_calls|>nothing", NULL, NULL);
    /* Apertus: the name is the key */
    ok[k++] = parses_as(SL_TOOLS_APERTUS, tools,
                        "<|tools_prefix|>[{\"get_weather\": {\"city\": \"Paris\", \"days\": 3}}, {\"get_time\": "
                        "{\"tz\": \"CET\"}}]<|tools_suffix|>",
                        "", "get_weather|{\"city\":\"Paris\",\"days\":3};get_time|{\"tz\":\"CET\"}");
    ok[k++] = parses_as(SL_TOOLS_APERTUS, tools, "<|tools_prefix|>[{\"a\": {}, \"b\": {}}]", NULL, NULL);
    /* Command R7B */
    ok[k++] = parses_as(SL_TOOLS_COMMAND_R7B, tools,
                        "<|START_THINKING|>I should look it up.<|END_THINKING|><|START_ACTION|>[\n"
                        "    {\"tool_call_id\": \"0\", \"tool_name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}},\n"
                        "    {\"tool_call_id\": \"1\", \"tool_name\": \"get_time\", \"parameters\": {\"tz\": \"CET\"}}\n"
                        "]<|END_ACTION|>",
                        "<|START_THINKING|>I should look it up.<|END_THINKING|>",
                        "get_weather|{\"city\":\"Paris\"};get_time|{\"tz\":\"CET\"}");
    ok[k++] = parses_as(SL_TOOLS_COMMAND_R7B, tools, "<|START_ACTION|>[{\"name\": \"f\"}]<|END_ACTION|>", NULL, NULL);
    /* Nemotron Nano v2: "arguments" may be an object or its JSON text */
    ok[k++] = parses_as(SL_TOOLS_NEMOTRON, tools,
                        "<TOOLCALL>[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, {\"name\": "
                        "\"get_time\", \"arguments\": \"{\\\"tz\\\": \\\"CET\\\"}\"}]</TOOLCALL>",
                        "", "get_weather|{\"city\":\"Paris\"};get_time|{\"tz\": \"CET\"}");
    /* GigaChat 3 (a "function call" turn after the assistant's) and 3.1 */
    ok[k++] = parses_as(SL_TOOLS_GIGACHAT, tools,
                        "Checking.<|message_sep|>\n\nfunction call<|role_sep|>\n{\"name\": \"get_weather\", \"arguments\": "
                        "{\"city\": \"Paris\", \"days\": 3}}",
                        "Checking.", "get_weather|{\"city\":\"Paris\",\"days\":3}");
    ok[k++] = parses_as(SL_TOOLS_GIGACHAT, tools,
                        "<|function_call|>{\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}}", "",
                        "get_time|{\"tz\":\"CET\"}");
    /* Apriel (an array in the tags) and MiniMax-M1 (one object per line) */
    ok[k++] = parses_as(SL_TOOLS_TAGGED_JSON, tools,
                        "Here.\n<tool_calls>[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": "
                        "\"call_1\"}, {\"name\": \"get_time\", \"arguments\": {}}]</tool_calls>",
                        "Here.", "get_weather|{\"city\":\"Paris\"};get_time|{}");
    ok[k++] = parses_as(SL_TOOLS_TAGGED_JSON, tools,
                        "<tool_calls>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}\n"
                        "{\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}}\n</tool_calls>",
                        "", "get_weather|{\"city\":\"Paris\",\"days\":3};get_time|{\"tz\":\"CET\"}");
    ok[k++] = parses_as(SL_TOOLS_TAGGED_JSON, tools, "<tool_calls>\n{\"name\": \"f\"} trailing</tool_calls>", NULL, NULL);
    /* MiniCPM 5 writes values other than strings in Python's notation (the template's repr) */
    ok[k++] = parses_as(SL_TOOLS_MINICPM, tools,
                        "<function name=\"get_weather\"><param name=\"city\">True</param><param name=\"opts\">{'u': 'C', "
                        "'x': [1, 2.5, None, True]}</param><param name=\"days\">3</param></function>",
                        "", "get_weather|{\"city\":\"True\",\"opts\":{\"u\":\"C\",\"x\":[1,2.5,null,true]},\"days\":3}");
    /* decimals keep the short form a model writes; a double that needs 17 digits keeps them */
    ok[k++] = parses_as(SL_TOOLS_HERMES, NULL,
                        "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": 0.1, \"b\": -2.5e-7, \"c\": 100}}</tool_call>",
                        "", "f|{\"a\":0.1,\"b\":-2.5e-7,\"c\":100}");
    ok[k++] = parses_as(SL_TOOLS_HERMES, NULL,
                        "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": 0.30000000000000004}}</tool_call>", "",
                        "f|{\"a\":0.30000000000000004}");
    json_decref(tools);
    for (int i = 0; i < k; i++) CHECK_MSG(ok[i], "case %d", i);
    /* the streaming hold-back knows both of GigaChat's markers */
    CHECK(holds_back(SL_TOOLS_GIGACHAT, "Hi.<|message_sep|>\n\nfunction call<|role_sep|>\n{}", 3));
    CHECK(holds_back(SL_TOOLS_GIGACHAT, "Hi.<|function_call|>{}", 3));
    CHECK(holds_back(SL_TOOLS_DSML, "Hi. <｜DSML｜tool_calls>", 3));
}

/* Fed one byte at a time, the content released never shrinks, never covers
 * a byte of a marker, and ends where the parsed content ends. */
static bool holds_back(sl_tool_format f, const char *text, size_t expect_final) {
    const size_t n = strlen(text);
    size_t prev = 0;
    for (size_t k = 0; k <= n; k++) {
        const size_t s = sl_tool_content_safe(f, text, k);
        if (s < prev || s > k) {
            fprintf(stderr, "   %s: safe %zu after %zu at %zu bytes of '%s'\n", sl_tool_format_name(f), s, prev, k, text);
            return false;
        }
        prev = s;
    }
    if (prev != expect_final) fprintf(stderr, "   %s: final safe %zu, expected %zu\n", sl_tool_format_name(f), prev, expect_final);
    return prev == expect_final;
}

TEST(streaming_holds_back_what_may_be_a_call) {
    CHECK(holds_back(SL_TOOLS_HERMES, "Sure <tool_call>{\"name\": \"f\"}</tool_call>", 4));
    CHECK(holds_back(SL_TOOLS_HERMES, "a <tool_cal", 1));
    CHECK(holds_back(SL_TOOLS_HERMES, "Sure.\n\n<tool_call>", 5));
    CHECK(holds_back(SL_TOOLS_HERMES, "a <tool_cab", 11));
    CHECK(holds_back(SL_TOOLS_HERMES, "plain text", 10));
    CHECK(holds_back(SL_TOOLS_HERMES, "plain text \n", 10)); /* trailing whitespace waits */
    CHECK(holds_back(SL_TOOLS_LLAMA3, "  {\"name\": \"f\"", 0));
    CHECK(holds_back(SL_TOOLS_LLAMA3, "Hello <|python_tag|>{}", 5));
    CHECK(holds_back(SL_TOOLS_LLAMA3, "Hello [1]", 9));
    CHECK(holds_back(SL_TOOLS_JSON, "[{\"name\": \"f\"}]", 0));
    CHECK(holds_back(SL_TOOLS_MISTRAL_ARGS, "ok[TOOL_CALLS]f[ARGS]{}", 2));
    CHECK(holds_back(SL_TOOLS_FIREFUNCTION, "fun", 0));
    CHECK(holds_back(SL_TOOLS_FIREFUNCTION, "funny", 5));
    /* a partial marker at the end holds back only those bytes */
    CHECK_EQ_INT(sl_tool_content_safe(SL_TOOLS_HERMES, "abc<", 4), 3);
    CHECK_EQ_INT(sl_tool_content_safe(SL_TOOLS_GRANITE, "abc<|tool_", 10), 3);
    CHECK_EQ_INT(sl_tool_content_safe(SL_TOOLS_JSON, "  ", 2), 0);
}

/* The last streamed call of text[0, k) (sl_tool_parse_partial) as "name|arguments", "" for none. */
static const char *streamed(sl_tool_format f, bool required, const json_t *tools, const char *text, const char *upto) {
    static char buf[512];
    const char *at = strstr(text, upto);
    json_t *p = at ? sl_tool_parse_partial(f, required, tools, text, (size_t)(at - text) + strlen(upto)) : NULL;
    const json_t *c = json_array_get(p, json_array_size(p) ? json_array_size(p) - 1 : 0);
    snprintf(buf, sizeof buf, "%s%s%s%s", c ? json_string_value(json_object_get(c, "name")) : "", c ? "|" : "",
             c ? json_string_value(json_object_get(c, "arguments")) : "",
             json_is_true(json_object_get(c, "partial")) ? "..." : "");
    json_decref(p);
    return buf;
}

/* Streamed calls: arguments go out as the answer fixes them — a JSON string as it is written, a tag
 * syntax's value as it is written when the schema makes it a string, a number or a typed value once
 * whole, a key once whole; a name once it ends. */
TEST(streamed_calls_follow_the_answer) {
    json_t *tools = json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": "
                               "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, "
                               "\"days\": {\"type\": \"integer\"}}}}}]",
                               0, NULL);
    CHECK(tools != NULL);
    static const char hermes[] = "Hi.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par\\u00e9s\", "
                                 "\"days\": 12, \"w\": [1.5, {\"x\": null}]}}\n</tool_call>";
    CHECK_STR(streamed(SL_TOOLS_HERMES, false, tools, hermes, "Hi."), "");
    CHECK_STR(streamed(SL_TOOLS_HERMES, false, tools, hermes, "\"get_w"), "");
    CHECK_STR(streamed(SL_TOOLS_HERMES, false, tools, hermes, "\"arguments\": "), "");
    CHECK_STR(streamed(SL_TOOLS_HERMES, false, tools, hermes, "\"arguments\": {"), "get_weather|{...");
    CHECK_STR(streamed(SL_TOOLS_HERMES, false, tools, hermes, "\"ci"), "get_weather|{...");
    CHECK_STR(streamed(SL_TOOLS_HERMES, false, tools, hermes, "\"city\""), "get_weather|{\"city\":...");
    CHECK_STR(streamed(SL_TOOLS_HERMES, false, tools, hermes, "\"Par"), "get_weather|{\"city\":\"Par...");
    CHECK_STR(streamed(SL_TOOLS_HERMES, false, tools, hermes, "\"Par\\u00"), "get_weather|{\"city\":\"Par...");
    CHECK_STR(streamed(SL_TOOLS_HERMES, false, tools, hermes, "\"Par\\u00e9"), "get_weather|{\"city\":\"Par\u00e9...");
    CHECK_STR(streamed(SL_TOOLS_HERMES, false, tools, hermes, "12"), "get_weather|{\"city\":\"Par\u00e9s\",\"days\":...");
    CHECK_STR(streamed(SL_TOOLS_HERMES, false, tools, hermes, "12,"), "get_weather|{\"city\":\"Par\u00e9s\",\"days\":12...");
    CHECK_STR(streamed(SL_TOOLS_HERMES, false, tools, hermes, "\"x\": nu"),
              "get_weather|{\"city\":\"Par\u00e9s\",\"days\":12,\"w\":[1.5,{\"x\":...");
    CHECK_STR(streamed(SL_TOOLS_HERMES, false, tools, hermes, "null}]}}"),
              "get_weather|{\"city\":\"Par\u00e9s\",\"days\":12,\"w\":[1.5,{\"x\":null}]}");
    /* Qwen3-Coder: "city" a string by the schema, streamed as written; "days" an integer, once whole */
    static const char xml[] = "<tool_call>\n<function=get_weather>\n<parameter=city>\nNew York\n</parameter>\n"
                              "<parameter=days>\n10\n</parameter>\n</function>\n</tool_call>";
    CHECK_STR(streamed(SL_TOOLS_XML, false, tools, xml, "<function=get_we"), "");
    CHECK_STR(streamed(SL_TOOLS_XML, false, tools, xml, "<function=get_weather>"), "get_weather|{...");
    CHECK_STR(streamed(SL_TOOLS_XML, false, tools, xml, "New Y"), "get_weather|{\"city\":\"New Y...");
    CHECK_STR(streamed(SL_TOOLS_XML, false, tools, xml, "York\n</para"), "get_weather|{\"city\":\"New York...");
    CHECK_STR(streamed(SL_TOOLS_XML, false, tools, xml, "<parameter=days>\n1"), "get_weather|{\"city\":\"New York\",\"days\":...");
    CHECK_STR(streamed(SL_TOOLS_XML, false, tools, xml, "10\n</parameter>"),
              "get_weather|{\"city\":\"New York\",\"days\":10...");
    /* GLM: the name is whole at its newline */
    static const char glm[] = "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Oslo</arg_value>\n</tool_call>";
    CHECK_STR(streamed(SL_TOOLS_GLM, false, tools, glm, "get_weather"), "");
    CHECK_STR(streamed(SL_TOOLS_GLM, false, tools, glm, "<arg_value>Os"), "get_weather|{\"city\":\"Os...");
    /* DSML: an attribute may make any value JSON: values once whole */
    static const char dsml[] = "<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter "
                               "name=\"city\" string=\"true\">Paris</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜function_calls>";
    CHECK_STR(streamed(SL_TOOLS_DSML, false, tools, dsml, ">Par"), "get_weather|{\"city\":...");
    CHECK_STR(streamed(SL_TOOLS_DSML, false, tools, dsml, "Paris</｜DSML｜parameter>"), "get_weather|{\"city\":\"Paris\"...");
    /* a second call begins once the first is whole; tool_choice "required"'s object */
    static const char req[] = "{\"get_weather\": {\"city\": \"Rome\"}, \"get_time\": {\"zone\": \"utc\"}}";
    CHECK_STR(streamed(SL_TOOLS_COUNT, true, tools, req, "\"Ro"), "get_weather|{\"city\":\"Ro...");
    CHECK_STR(streamed(SL_TOOLS_COUNT, true, tools, req, "\"get_time\": {\"zo"), "get_time|{...");
    fuzz_toolcall_partial(SL_TOOLS_COUNT, true, tools, req, strlen(req), NULL);
    /* LFM2 and Gemma 4: whole at the end */
    CHECK_STR(streamed(SL_TOOLS_LFM2, false, tools, "<|tool_call_start|>[get_weather(city='Oslo')]<|tool_call_end|>", "Os"), "");
    json_decref(tools);
}

static long calls_found(const uint8_t *data, size_t len) { return fuzz_toolcall_one(data, len); }

/* The fuzz corpus replayed with the target's invariants (fuzz_toolcall.c); some inputs hold calls. */
TEST(fuzz_corpus_replay) {
    long calls = 0;
    const int n = sl_test_each_file("tests/fuzz/corpus/toolcall", calls_found, &calls);
    printf("   corpus: %d inputs, %ld calls\n", n, calls);
    CHECK(n >= 10);
    CHECK(calls >= 10);
}

TEST(call_ids_have_the_shape_templates_accept) {
    char a[32], b[32], m[32];
    sl_tool_call_id(SL_TOOLS_HERMES, a);
    sl_tool_call_id(SL_TOOLS_HERMES, b);
    sl_tool_call_id(SL_TOOLS_MISTRAL, m);
    CHECK_EQ_INT(strlen(a), 29);
    CHECK(!strncmp(a, "call_", 5));
    CHECK(strcmp(a, b) != 0);
    CHECK_EQ_INT(strlen(m), 9);
    for (int i = 0; i < 9; i++) CHECK((m[i] >= '0' && m[i] <= '9') || (m[i] | 32) >= 'a');
}
