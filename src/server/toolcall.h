/*
 * toolcall.h — OpenAI tool calling on the answer side: which tool-call
 * syntax a chat template teaches its model, where in a streamed answer a
 * call may begin (so the text before it streams as content and the call is
 * held back), the parsing of a finished answer into `tool_calls`, and of an
 * unfinished one as far as it goes, for streamed argument deltas
 * (toolcall_stream.c).
 *
 * The syntaxes, chosen from markers in the template source (the order of
 * sl_tool_format_detect):
 *   DEEPSEEK     <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>...
 *                (DeepSeek V3.1), or ...begin｜>function<｜tool▁sep｜>NAME\n```json\n{...}\n```<｜tool▁call▁end｜>
 *                (DeepSeek R1 and V3)                                     ("<｜tool▁sep｜>")
 *   KIMI         <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:0<|tool_call_argument_begin|>
 *                {...}<|tool_call_end|>...  (Kimi K2)                     ("<|tool_call_argument_begin|>")
 *   XML          <tool_call>\n<function=NAME>\n<parameter=K>\nV\n</parameter>\n</function>\n</tool_call>
 *                (Qwen3-Coder, Qwen3.5, Nemotron 3: template has "<parameter=")
 *   GLM          <tool_call>NAME\n<arg_key>K</arg_key>\n<arg_value>V</arg_value>\n</tool_call>   ("<arg_key>")
 *   MISTRAL_ARGS [TOOL_CALLS]NAME[ARGS]{...}, repeated                      ("[ARGS]")
 *   MISTRAL      [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]       ("[TOOL_CALLS]")
 *   GRANITE      <|tool_call|>[{"name": ..., "arguments": {...}}, ...]      ("<|tool_call|>")
 *   FIREFUNCTION functools[{"name": ..., "arguments": {...}}, ...]          ("functools")
 *   FUNCTIONARY  <function=NAME>{...}</function>, repeated                  ("<function=")
 *   HERMES       <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>, repeated ("<tool_call>")
 *   LLAMA3       {"name": ..., "parameters": {...}} as the whole answer, or after <|python_tag|>
 *                (objects may be separated by ';')                         ("<|python_tag|>", or
 *                "parameters" in a template with <|start_header_id|>)
 *   DSML         <｜DSML｜function_calls> (V3.2; <｜DSML｜tool_calls> in V4) then <｜DSML｜invoke name="NAME">
 *                <｜DSML｜parameter name="K" string="true|false">V</｜DSML｜parameter>...</｜DSML｜invoke>
 *                (DeepSeek V3.2, V4: string="false" values are JSON)      ("｜DSML｜")
 *   MINIMAX_M2   <minimax:tool_call><invoke name="NAME"><parameter name="K">V</parameter>...</invoke>
 *                ...</minimax:tool_call>  (MiniMax-M2)                  ("<minimax:tool_call>")
 *   MINICPM      <function name="NAME"><param name="K">V</param>...</function>, repeated; values other
 *                than strings in Python's notation (MiniCPM 5)           ("<function name=")
 *   HY3          <tool_calls:opensource><tool_call:opensource>NAME<tool_sep:opensource>
 *                <arg_key:opensource>K</arg_key:opensource><arg_value:opensource>V</arg_value:opensource>
 *                ...</tool_call:opensource>...  (Tencent Hunyuan 3)      (":opensource" and "<tool_call")
 *   SOLAR        <|tool_calls|><|tool_call:begin|>ID<|tool_call:name|>NAME<|tool_call:args|>{...}
 *                <|tool_call:end|>...  (Upstage Solar Open)              ("<|tool_call:begin|>")
 *   APERTUS      <|tools_prefix|>[{"NAME": {...}}, ...]<|tools_suffix|>  (Apertus) ("<|tools_prefix|>")
 *   COMMAND_R7B  <|START_ACTION|>[{"tool_call_id": ..., "tool_name": NAME, "parameters": {...}}, ...]
 *                <|END_ACTION|>  (Command R7B, Command A)              ("<|START_ACTION|>")
 *   NEMOTRON     <TOOLCALL>[{"name": ..., "arguments": {...}}, ...]</TOOLCALL>  (Nemotron Nano v2)
 *                                                                        ("<TOOLCALL>")
 *   GIGACHAT     <|message_sep|>\n\nfunction call<|role_sep|>\n{"name": ..., "arguments": {...}} (GigaChat 3),
 *                or <|function_call|>{...} (GigaChat 3.1)  ("<|role_sep|>" and "function call", or
 *                "<|function_call|>")
 *   TAGGED_JSON  <tool_calls>[{"name": ..., "arguments": {...}}, ...]</tool_calls> (Apriel), or one
 *                call object per line inside the tags (MiniMax-M1)       ("<tool_calls>")
 *   LFM2         <|tool_call_start|>[NAME(K=V, ...), ...]<|tool_call_end|>, Python literals (LFM2, LFM2.5)
 *                                          ("<|tool_call_start|>", "<|tool_list_start|>" or
 *                                          "List of tools: [")
 *   GEMMA4       <|tool_call>call:NAME{K:V,...}<tool_call|>, repeated; strings between <|"|> tokens
 *                (Gemma 4)                                               ("<|tool_call>")
 *   JSON         anything else: HERMES blocks, or the whole answer a call object or an array of them
 * A call object is {"name": string, "arguments" or "parameters": object or a
 * string holding a JSON object}. XML-like values (XML, GLM, MINIMAX_M2,
 * MINICPM, HY3, and DSML's string="true") are strings unless the tool's
 * schema gives the parameter another type and the value parses (as JSON;
 * MINICPM also in Python's notation). Text before the first call is the
 * message's content; a call that does not parse leaves the whole answer as
 * content, as vLLM's parsers do.
 *
 * Markers that are control tokens in the model's vocabulary (<|python_tag|>,
 * [TOOL_CALLS], <|START_ACTION|>, ...) are hidden from a detokenized text
 * unless shown: a request with tools shows those of its syntax
 * (sl_tool_format_markers), and no other control token.
 */
#ifndef SL_SERVER_TOOLCALL_H
#define SL_SERVER_TOOLCALL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum sl_tool_format {
    SL_TOOLS_JSON,
    SL_TOOLS_HERMES,
    SL_TOOLS_LLAMA3,
    SL_TOOLS_MISTRAL,
    SL_TOOLS_MISTRAL_ARGS,
    SL_TOOLS_GRANITE,
    SL_TOOLS_FIREFUNCTION,
    SL_TOOLS_FUNCTIONARY,
    SL_TOOLS_XML,
    SL_TOOLS_GLM,
    SL_TOOLS_DEEPSEEK,
    SL_TOOLS_KIMI,
    SL_TOOLS_DSML,
    SL_TOOLS_MINIMAX_M2,
    SL_TOOLS_MINICPM,
    SL_TOOLS_HY3,
    SL_TOOLS_SOLAR,
    SL_TOOLS_APERTUS,
    SL_TOOLS_COMMAND_R7B,
    SL_TOOLS_NEMOTRON,
    SL_TOOLS_GIGACHAT,
    SL_TOOLS_TAGGED_JSON,
    SL_TOOLS_LFM2,
    SL_TOOLS_GEMMA4,
    SL_TOOLS_COUNT
} sl_tool_format;

/* The syntax a chat template's source teaches (NULL: the built-in fallback, JSON). */
sl_tool_format sl_tool_format_detect(const char *template_src);
const char *sl_tool_format_name(sl_tool_format f);
/* The texts of the syntax's markers (where calls begin and end, separators), NULL-terminated: the
 * server shows those that are control tokens of the model's vocabulary in a tool request's text. */
const char *const *sl_tool_format_markers(sl_tool_format f);

/* How many bytes of text[0, n) are content whatever comes next: those
 * before the first place a call begins or may still begin (a marker, the
 * start of one at the end of the text, or for LLAMA3 and JSON an answer
 * that opens with '{' or '['), less the whitespace just before that place
 * (or at the end), which sl_tool_parse leaves out of the content. Grows
 * with the text, never shrinks. */
size_t sl_tool_content_safe(sl_tool_format f, const char *text, size_t n);

/* Parse a finished answer. Returns a new JSON array of {"name": string,
 * "arguments": string (a JSON object's text)}, and in *content_len the
 * length of the text before the first call with trailing whitespace
 * dropped; NULL when the text holds no call that parses. `tools` (the
 * request's tools, may be NULL) types XML and GLM parameter values. */
json_t *sl_tool_parse(sl_tool_format f, const json_t *tools, const char *text, size_t n, size_t *content_len);

/* Streaming: the calls of an unfinished answer text[0, n) as far as the text so far fixes them, for
 * tool_calls deltas (vLLM and llama.cpp stream the arguments as they come). A new array of {"name",
 * "arguments"}, the last call with "partial": true when its arguments may still grow; NULL when no
 * call can be told yet. Every call but a partial one has the arguments sl_tool_parse gives; a partial
 * one's are a start (maybe empty) of them: if the finished answer parses into calls, each call here is
 * there under the same index and name, with arguments that begin with these. `required`: the answer
 * is tool_choice "required"'s object (sl_tool_parse_required; f is not used). LFM2 and Gemma 4 calls
 * (Python-like values) are not read before the answer ends: NULL. */
json_t *sl_tool_parse_partial(sl_tool_format f, bool required, const json_t *tools, const char *text, size_t n);

/* tool_choice "required": the schema of an answer {"NAME": arguments, ...}
 * with at least one of the tools' names as keys (at most one without
 * parallel calls), each value guided by that function's parameters (any
 * object where it declares none). The tools' $defs / definitions move to the
 * root, where their $refs point. NULL (message in sl_last_error) when two
 * tools define the same $defs name differently. */
json_t *sl_tool_required_schema(const json_t *tools, bool parallel);
/* Such an answer as calls (the format of sl_tool_parse), NULL when it is not a complete object. */
json_t *sl_tool_parse_required(const char *text, size_t n);

/* A fresh tool-call id: "call_" and 24 random letters and digits, or 9 of
 * them for the Mistral syntaxes (their templates refuse other ids). */
void sl_tool_call_id(sl_tool_format f, char out[32]);

/* An OpenAI tool call's arguments ({"function": {"arguments": TEXT}}) as a JSON object (a new reference; {}
 * when the text is not one), for the APIs whose calls carry objects (Anthropic's input, Ollama's arguments). */
json_t *sl_tool_call_args(const json_t *call);

#endif
