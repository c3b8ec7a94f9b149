// Drives a shardlm server with the official OpenAI JavaScript client.
// usage: node openai-client.mjs BASE_URL   (e.g. http://127.0.0.1:8080/v1)
// Prints one JSON object with what the client received; exits 1 on any error.
// Tool calls: see "tool calling" below.
import OpenAI from 'openai';

const baseURL = process.argv[2];
const client = new OpenAI({ baseURL, apiKey: 'unused', timeout: 30000, maxRetries: 0 });

const models = await client.models.list();
const model = models.data[0].id;
const retrieved = await client.models.retrieve(model);

const messages = [{ role: 'user', content: 'Tell me a story about a dog.' }];
const plain = await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0 });

const stream = await client.chat.completions.create({
  model, messages, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let streamed = '';
let finish = null;
let usage = null;
let chunks = 0;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.delta?.content) streamed += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
}

const completion = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 16, temperature: 0 });

// scoring texts as lm-evaluation-harness does: several prompts, echo, their tokens' logprobs, nothing generated
const scored = await client.completions.create({
  model, prompt: ['Once upon a time', 'Lily and Ben'], max_tokens: 0, echo: true, logprobs: 1, temperature: 0,
});

// tool calling: a forced function (whole), "required" streamed through the client's accumulating helper,
// and runTools: the client parses the arguments, calls the function, sends the result back
const weather = {
  name: 'get_weather',
  description: 'Weather in a city',
  parameters: {
    type: 'object',
    properties: { city: { type: 'string', maxLength: 10 }, unit: { enum: ['celsius', 'fahrenheit'] } },
    required: ['city', 'unit'],
    additionalProperties: false,
  },
};
const forced = { type: 'function', function: { name: 'get_weather' } };
const toolPlain = await client.chat.completions.create({
  model, messages, tools: [{ type: 'function', function: weather }], tool_choice: forced, max_tokens: 100, temperature: 0,
});
const toolStream = client.beta.chat.completions.stream({
  model, messages, tools: [{ type: 'function', function: weather }], tool_choice: 'required', parallel_tool_calls: false,
  max_tokens: 100, temperature: 0,
});
const toolStreamed = await toolStream.finalChatCompletion();
let called = null;
const runner = client.beta.chat.completions.runTools({
  model, messages, max_tokens: 100, temperature: 0, tool_choice: forced,
  tools: [{ type: 'function', function: { ...weather, parse: JSON.parse, function: (args) => { called = args; return 'sunny'; } } }],
});
await runner.done();
const history = runner.messages;
const after = await client.chat.completions.create({
  model, messages: history, tools: [{ type: 'function', function: weather }], max_tokens: 8, temperature: 0,
});
const call = (c) => ({
  finish: c.choices[0].finish_reason,
  content: c.choices[0].message.content ?? null,
  calls: (c.choices[0].message.tool_calls ?? []).map((t) => ({ id: t.id, name: t.function.name, arguments: t.function.arguments })),
});

// the Responses API: whole, streamed through the client's accumulating helper, and a forced function call
const resp = await client.responses.create({ model, input: 'Tell me a story about a dog.', max_output_tokens: 24, temperature: 0 });
const rstream = client.responses.stream({
  model, input: [{ role: 'user', content: [{ type: 'input_text', text: 'Tell me a story about a dog.' }] }],
  max_output_tokens: 24, temperature: 0,
});
let rdeltas = '';
const rtypes = [];
let rlastStatus = null;
rstream.on('event', (e) => { rtypes.push(e.type); if (e.response) rlastStatus = e.response.status; });
rstream.on('response.output_text.delta', (e) => { rdeltas += e.delta; });
const rfinal = await rstream.finalResponse();
const rtool = await client.responses.create({
  model, input: 'Weather?', tools: [{ type: 'function', ...weather }], tool_choice: { type: 'function', name: 'get_weather' },
  max_output_tokens: 100, temperature: 0,
});

// a second turn by previous_response_id, and the first read back
const resp2 = await client.responses.create({ model, previous_response_id: resp.id, input: 'And then?', max_output_tokens: 8, temperature: 0 });
const again = await client.responses.retrieve(resp.id);

// embeddings: the client asks for base64 unless told (and decodes it); as floats, the same numbers
const emb = await client.embeddings.create({ model, input: ['Once upon a time', 'Lily and Ben'] });
const embFloat = await client.embeddings.create({ model, input: 'Once upon a time', encoding_format: 'float' });
const e0 = emb.data[0].embedding, f0 = embFloat.data[0].embedding;

let notFound = null;
try {
  await client.chat.completions.create({ model: 'no-such-model', messages, max_tokens: 4 });
} catch (e) {
  notFound = { status: e.status, param: e.param ?? e.error?.param ?? null };
}

console.log(JSON.stringify({
  model,
  retrieved: retrieved.id,
  plain: plain.choices[0].message.content,
  plain_finish: plain.choices[0].finish_reason,
  plain_usage: plain.usage,
  streamed,
  stream_finish: finish,
  stream_usage: usage,
  chunks,
  completion: completion.choices[0].text,
  scored: scored.choices.map((c) => ({
    index: c.index, text: c.text, finish: c.finish_reason, n: c.logprobs.token_logprobs.length,
    first: c.logprobs.token_logprobs[0], last: c.logprobs.token_logprobs[c.logprobs.token_logprobs.length - 1],
  })),
  not_found: notFound,
  embeddings: {
    n: emb.data.length, dims: e0.length, index1: emb.data[1].index, prompt_tokens: emb.usage.prompt_tokens,
    same: e0.length === f0.length && e0.every((x, i) => x === Math.fround(f0[i])),
    norm: Math.sqrt(e0.reduce((a, x) => a + x * x, 0)),
    differ: e0.some((x, i) => x !== emb.data[1].embedding[i]),
  },
  tool_plain: call(toolPlain),
  tool_streamed: call(toolStreamed),
  tool_called: called,
  tool_history: history.map((m) => m.role),
  tool_after: { finish: after.choices[0].finish_reason, content: after.choices[0].message.content },
  responses: {
    text: resp.output_text, status: resp.status, object: resp.object, usage: resp.usage,
    // (the helper's snapshot: the items the events built; its status is the last one the events gave)
    streamed: rfinal.output.filter((o) => o.type === 'message').flatMap((o) => o.content)
      .filter((c) => c.type === 'output_text').map((c) => c.text).join(''),
    deltas: rdeltas, stream_status: rlastStatus, first: rtypes[0], last: rtypes[rtypes.length - 1],
    tool: rtool.output.filter((o) => o.type === 'function_call').map((o) => ({ name: o.name, arguments: o.arguments, call_id: o.call_id })),
    second: { previous: resp2.previous_response_id, text: resp2.output_text, input_tokens: resp2.usage.input_tokens },
    retrieved: { id: again.id, text: again.output.filter((o) => o.type === 'message').flatMap((o) => o.content).map((c) => c.text).join('') },
  },
}));
