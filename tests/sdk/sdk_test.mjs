// The official SDKs, unmodified, pointed at a running Redline (REDLINE_URL). Each check
// throws on a wrong answer; the process exits non-zero on the first failure.
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const base = process.env.REDLINE_URL;
const key = process.env.REDLINE_KEY;
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
const anthropic = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0 });
let passed = 0;
async function check(name, fn) {
  await fn();
  passed++;
  console.log(`ok - ${name}`);
}

await check('openai chat.completions.create', async () => {
  const r = await openai.chat.completions.create({
    model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello from the SDK' }],
  });
  assert.equal(r.object, 'chat.completion');
  assert.ok(r.choices[0].message.content.length > 0);
  assert.ok(r.usage.total_tokens > 0);
});

await check('openai chat.completions.create stream', async () => {
  const stream = await openai.chat.completions.create({
    model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'Stream please' }],
  });
  let text = '';
  let chunks = 0;
  let usage = null;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.choices.length) text += chunk.choices[0].delta.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(chunks > 2, `only ${chunks} chunks`);
  assert.ok(text.length > 0);
  assert.ok(usage && usage.completion_tokens > 0);
});

await check('openai embeddings.create', async () => {
  const r = await openai.embeddings.create({ model: 'text-embedding-3-small', input: 'hi' });
  assert.ok(r.data[0].embedding.length > 0);
});

await check('openai models.list', async () => {
  const page = await openai.models.list();
  assert.ok(page.data.length > 0);
});

await check('openai error surfaces as APIError with status', async () => {
  const bad = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-not-a-key', maxRetries: 0 });
  await assert.rejects(
    bad.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.APIError && e.status === 401 && e.code === 'invalid_api_key');
});

await check('anthropic messages.create', async () => {
  const r = await anthropic.messages.create({
    model: 'claude-3-5-haiku-latest', max_tokens: 64,
    messages: [{ role: 'user', content: 'Hello Claude' }],
  });
  assert.equal(r.type, 'message');
  assert.equal(r.content[0].type, 'text');
  assert.ok(r.usage.output_tokens > 0);
});

await check('anthropic messages.stream', async () => {
  const stream = anthropic.messages.stream({
    model: 'claude-3-5-haiku-latest', max_tokens: 64,
    messages: [{ role: 'user', content: 'Stream, Claude' }],
  });
  let deltas = 0;
  stream.on('text', () => deltas++);
  const final = await stream.finalMessage();
  assert.ok(deltas > 1, `only ${deltas} text deltas`);
  assert.equal(final.stop_reason, 'end_turn');
});

// --- the response cache: one entry serves both forms, and the SDKs cannot tell ---

async function openaiStreamText(params) {
  const { data: stream, response } = await openai.chat.completions
    .create({ ...params, stream: true, stream_options: { include_usage: true } }).withResponse();
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.choices.length) {
      text += chunk.choices[0].delta.content ?? '';
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  return { text, finish, usage, cache: response.headers.get('x-redline-cache') };
}

async function openaiJson(params) {
  const { data, response } = await openai.chat.completions.create(params).withResponse();
  return {
    text: data.choices[0].message.content, finish: data.choices[0].finish_reason,
    usage: data.usage, cache: response.headers.get('x-redline-cache'),
  };
}

await check('openai: a JSON answer replayed as a stream (cache hit)', async () => {
  const params = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'cache json first' }] };
  const first = await openaiJson(params);
  const replay = await openaiStreamText(params);
  assert.equal(first.cache, 'miss');
  assert.equal(replay.cache, 'hit');
  assert.equal(replay.text, first.text);
  assert.equal(replay.finish, first.finish);
  assert.deepEqual(replay.usage, first.usage);
});

await check('openai: a streamed answer replayed as JSON (cache hit)', async () => {
  const params = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'cache stream first' }] };
  const first = await openaiStreamText(params);
  const replay = await openaiJson(params);
  assert.equal(first.cache, 'miss');
  assert.equal(replay.cache, 'hit');
  assert.equal(replay.text, first.text);
  assert.equal(replay.finish, first.finish);
  assert.deepEqual(replay.usage, first.usage);
  const again = await openaiStreamText(params);
  assert.equal(again.cache, 'hit');
  assert.equal(again.text, first.text);
});

async function anthropicStream(params) {
  const stream = anthropic.messages.stream(params);
  const final = await stream.finalMessage();
  return final;
}

await check('anthropic: JSON and stream answers replay in the other form (cache hits)', async () => {
  const p1 = { model: 'claude-3-5-haiku-latest', max_tokens: 64,
    messages: [{ role: 'user', content: 'cache claude json first' }] };
  const { data: j1, response: r1 } = await anthropic.messages.create(p1).withResponse();
  assert.equal(r1.headers.get('x-redline-cache'), 'miss');
  const s1 = await anthropicStream(p1);
  assert.deepEqual(s1.content, j1.content);
  assert.equal(s1.stop_reason, j1.stop_reason);
  assert.equal(s1.usage.output_tokens, j1.usage.output_tokens);

  const p2 = { ...p1, messages: [{ role: 'user', content: 'cache claude stream first' }] };
  const s2 = await anthropicStream(p2);
  const { data: j2, response: r2 } = await anthropic.messages.create(p2).withResponse();
  assert.equal(r2.headers.get('x-redline-cache'), 'hit');
  assert.deepEqual(j2.content, s2.content);
  assert.equal(j2.stop_reason, s2.stop_reason);
  assert.equal(j2.id, s2.id);
  assert.equal(j2.usage.output_tokens, s2.usage.output_tokens);
});

// --- translation: any model through either API (src/translate) ---

await check('openai SDK -> Anthropic-type provider: chat.completions.create', async () => {
  const r = await openai.chat.completions.create({
    model: 'claude-3-5-haiku-latest', max_tokens: 64,
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello via translation' }],
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'claude-3-5-haiku-latest');
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.ok(r.choices[0].message.content.length > 0);
  assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
});

await check('openai SDK -> Anthropic-type provider: streamed, event by event', async () => {
  const stream = await openai.chat.completions.create({
    model: 'claude-3-5-haiku-latest', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'Stream via translation' }],
  });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.choices.length) {
      text += chunk.choices[0].delta.content ?? '';
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(text.length > 0);
  assert.equal(finish, 'stop');
  assert.ok(usage && usage.completion_tokens > 0);
});

await check('anthropic SDK -> OpenAI-type provider: messages.create and stream', async () => {
  const r = await anthropic.messages.create({
    model: 'gpt-4o-mini', max_tokens: 64, system: 'Be brief.',
    messages: [{ role: 'user', content: 'Hello GPT, via translation' }],
  });
  assert.equal(r.type, 'message');
  assert.equal(r.role, 'assistant');
  assert.equal(r.content[0].type, 'text');
  assert.equal(r.stop_reason, 'end_turn');
  assert.ok(r.usage.output_tokens > 0);
  const stream = anthropic.messages.stream({
    model: 'gpt-4o-mini', max_tokens: 64,
    messages: [{ role: 'user', content: 'Stream, GPT, via translation' }],
  });
  let deltas = 0;
  stream.on('text', () => deltas++);
  const final = await stream.finalMessage();
  assert.ok(deltas > 1, `only ${deltas} text deltas`);
  assert.equal(final.stop_reason, 'end_turn');
  assert.ok(final.usage.output_tokens > 0);
});

await check('a field that cannot be translated is a 400 naming it', async () => {
  await assert.rejects(
    openai.chat.completions.create({
      model: 'claude-3-5-haiku-latest', n: 2, messages: [{ role: 'user', content: 'x' }],
    }),
    (e) => e instanceof OpenAI.APIError && e.status === 400 && /\bn\b/.test(e.message));
});

console.log(`sdk: ${passed} checks passed`);
