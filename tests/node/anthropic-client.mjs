// Drives `shardlm serve` with Anthropic's official TypeScript SDK (Messages API): a message, the same
// streamed through the SDK's accumulating helper, count_tokens, a forced tool call (plain and streamed),
// the tool's result sent back, and an unknown model's error. Prints one JSON object for the C test.
import Anthropic from '@anthropic-ai/sdk';

const baseURL = process.argv[2];
const client = new Anthropic({ baseURL, apiKey: process.argv[3] ?? 'unused', timeout: 30000, maxRetries: 0 });
const model = 'stories260K';
const messages = [{ role: 'user', content: 'Tell me a story about a dog.' }];

const msg = await client.messages.create({ model, max_tokens: 24, temperature: 0, system: 'You tell stories.', messages });
const stream = client.messages.stream({ model, max_tokens: 24, temperature: 0, system: 'You tell stories.', messages });
const types = [];
let streamedText = '';
stream.on('streamEvent', (e) => types.push(e.type));
stream.on('text', (t) => { streamedText += t; });
const final = await stream.finalMessage();
const count = await client.messages.countTokens({ model, system: 'You tell stories.', messages });

const weather = {
  name: 'get_weather',
  description: 'The weather of a city',
  input_schema: {
    type: 'object',
    properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } },
    required: ['city', 'unit'],
  },
};
const forcedReq = { model, max_tokens: 96, temperature: 0, tools: [weather], tool_choice: { type: 'tool', name: 'get_weather' }, messages };
const forced = await client.messages.create(forcedReq);
const forcedFinal = await client.messages.stream(forcedReq).finalMessage();
const use = forced.content.find((b) => b.type === 'tool_use');
const after = await client.messages.create({
  model, max_tokens: 8, temperature: 0, tools: [weather],
  messages: [...messages, { role: 'assistant', content: forced.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use?.id ?? 'x', content: '21 degrees' }] }],
});

let notFound = null;
try {
  await client.messages.create({ model: 'no-such-model', max_tokens: 4, messages });
} catch (e) {
  notFound = { status: e.status, type: e.error?.error?.type ?? null };
}

const text = (m) => m.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
const tool = (m) => m.content.filter((b) => b.type === 'tool_use').map((b) => ({ name: b.name, input: b.input, id: b.id }));
console.log(JSON.stringify({
  text: text(msg), stop: msg.stop_reason, usage: msg.usage, id: msg.id, role: msg.role, type: msg.type,
  streamed: text(final), streamed_events: streamedText, stream_stop: final.stop_reason, stream_usage: final.usage,
  first: types[0], last: types[types.length - 1],
  count: count.input_tokens,
  forced: tool(forced), forced_stop: forced.stop_reason, forced_streamed: tool(forcedFinal),
  after: { stop: after.stop_reason, input_tokens: after.usage.input_tokens },
  not_found: notFound,
}));
