// Drives `shardlm serve` with Ollama's official JavaScript client (its native API): a chat answer whole and
// streamed, generate whole and streamed, a raw generate beside the OpenAI completion of the same prompt, a
// chat with a JSON schema as its format, a conversation with a tool call and its result, embeddings (current
// and legacy), the model list, details, running models and version, an unknown model's error and a missing
// key's. Prints one JSON object for the C test.
import { Ollama } from 'ollama';

const host = process.argv[2];
const key = process.argv[3];
const ollama = new Ollama({ host, headers: { Authorization: `Bearer ${key}` } });
const model = 'stories260K';
const options = { temperature: 0, num_predict: 24 };
const messages = [{ role: 'user', content: 'Tell me a story about a dog.' }];

const chat = await ollama.chat({ model, messages, options });
let chatStreamed = '';
let chatLast = null;
for await (const part of await ollama.chat({ model, messages, options, stream: true })) {
  chatStreamed += part.message.content;
  chatLast = part;
}

const gen = await ollama.generate({ model: `${model}:latest`, prompt: 'Once upon a time', system: 'You tell stories.', options });
let genStreamed = '';
let genParts = 0;
let genLast = null;
for await (const part of await ollama.generate({ model, prompt: 'Once upon a time', system: 'You tell stories.', options, stream: true })) {
  genStreamed += part.response;
  genParts += 1;
  genLast = part;
}

// raw: the prompt as it is, as OpenAI's completion of it (Ollama's default repeat_penalty 1.1 set to 1 as there)
const raw = await ollama.generate({ model, prompt: 'Once upon a time', raw: true, options: { ...options, repeat_penalty: 1 } });
const oai = await (await fetch(`${host}/v1/completions`, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
  body: JSON.stringify({ model, prompt: 'Once upon a time', temperature: 0, max_tokens: 24 }),
})).json();

const schema = { type: 'object', properties: { age: { type: 'integer' } }, required: ['age'] };
const formatted = await ollama.chat({ model, messages, format: schema, options: { temperature: 0, num_predict: 40 } });
let parsed = null;
try {
  parsed = JSON.parse(formatted.message.content);
} catch (e) {
  parsed = { error: String(e), content: formatted.message.content };
}

const tools = [{
  type: 'function',
  function: { name: 'get_weather', description: 'The weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
}];
const withTool = await ollama.chat({
  model, tools, options: { temperature: 0, num_predict: 8 },
  messages: [...messages, { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }] },
    { role: 'tool', tool_name: 'get_weather', content: '21 degrees' }],
});

const embed = await ollama.embed({ model, input: ['a dog', 'a cat'] });
const norms = embed.embeddings.map((v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0)));
const legacy = await ollama.embeddings({ model, prompt: 'a dog' });

const list = await ollama.list();
const show = await ollama.show({ model });
const ps = await ollama.ps();
const version = await ollama.version();

let notFound = null;
try {
  await ollama.chat({ model: 'no-such-model', messages });
} catch (e) {
  notFound = { status: e.status_code ?? null, error: e.error ?? String(e) };
}
let noKey = null;
try {
  await new Ollama({ host }).chat({ model, messages });
} catch (e) {
  noKey = { status: e.status_code ?? null };
}

console.log(JSON.stringify({
  chat: chat.message.content, chat_role: chat.message.role, chat_done: chat.done, chat_reason: chat.done_reason,
  chat_eval: chat.eval_count, chat_prompt: chat.prompt_eval_count, chat_total: chat.total_duration,
  chat_streamed: chatStreamed, chat_last: { done: chatLast?.done, reason: chatLast?.done_reason, eval: chatLast?.eval_count },
  gen: gen.response, gen_model: gen.model, gen_eval: gen.eval_count, gen_streamed: genStreamed, gen_parts: genParts,
  gen_last: { done: genLast?.done, reason: genLast?.done_reason, eval: genLast?.eval_count, prompt: genLast?.prompt_eval_count },
  raw: raw.response, raw_eval: raw.eval_count, openai: oai.choices?.[0]?.text ?? null,
  formatted: parsed,
  with_tool: { done: withTool.done, eval: withTool.eval_count, prompt: withTool.prompt_eval_count },
  embed_n: embed.embeddings.length, embed_norms: norms, embed_prompt: embed.prompt_eval_count,
  legacy_dim: legacy.embedding.length, embed_dim: embed.embeddings[0].length,
  list: list.models.map((m) => ({ name: m.name, size: m.size })), show_template: typeof show.template,
  ps: ps.models.map((m) => m.name), version: version.version,
  not_found: notFound, no_key: noKey,
}));
