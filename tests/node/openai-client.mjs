// Drives a shardlm server with the official OpenAI JavaScript client.
// usage: node openai-client.mjs BASE_URL   (e.g. http://127.0.0.1:8080/v1)
// Prints one JSON object with what the client received; exits 1 on any error.
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
}));
