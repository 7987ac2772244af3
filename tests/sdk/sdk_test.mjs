// The official SDKs, unmodified, pointed at a running Redline (REDLINE_URL). Each check
// throws on a wrong answer; the process exits non-zero on the first failure.
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const base = process.env.REDLINE_URL;
const key = process.env.REDLINE_KEY;
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
const anthropic = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0 });
// SDK_PHASE=after-restart: only the checks that continue conversations begun before the
// gateway was restarted (ids in SDK_STATE); run.sh restarts the gateway in between.
const phase = process.env.SDK_PHASE ?? 'main';
const mockUrl = process.env.MOCK_URL;
const stateFile = process.env.SDK_STATE;
let passed = 0;
async function check(name, fn) {
  await fn();
  passed++;
  console.log(`ok - ${name}`);
}
// The body of the last model request the mock provider received (what went upstream).
async function lastUpstreamBody() {
  const r = await fetch(`${mockUrl}/mock/last-request`);
  assert.equal(r.status, 200);
  return (await r.json()).body;
}
const fs = await import('node:fs');
const responseModels = ['gpt-4o-mini', 'claude-3-5-haiku-latest'];  // OpenAI- and Anthropic-type

if (phase === 'main') {

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

// --- tools round trips, translated both ways ---

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather', description: 'Weather in a city',
    parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] },
  },
};

await check('openai SDK -> Anthropic-type provider: tools round trip (JSON and stream)', async () => {
  const messages = [{ role: 'user', content: 'What is the weather in Paris? Use get_weather.' }];
  const r = await openai.chat.completions.create({
    model: 'claude-3-5-haiku-latest', tools: [weatherTool], tool_choice: 'auto', messages,
  });
  const choice = r.choices[0];
  assert.equal(choice.finish_reason, 'tool_calls');
  const call = choice.message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { q: 'mock' });
  // The provider saw an Anthropic tool definition.
  const sent = JSON.parse(await lastUpstreamBody());
  assert.equal(sent.tools[0].name, 'get_weather');
  assert.equal(sent.tools[0].input_schema.type, 'object');

  const r2 = await openai.chat.completions.create({
    model: 'claude-3-5-haiku-latest', tools: [weatherTool],
    messages: [...messages, choice.message,
      { role: 'tool', tool_call_id: call.id, content: 'sunny, 21 C' }],
  });
  assert.equal(r2.choices[0].finish_reason, 'stop');
  assert.ok(r2.choices[0].message.content.length > 0);
  const sent2 = JSON.parse(await lastUpstreamBody());
  const toolUse = sent2.messages[1].content.find((b) => b.type === 'tool_use');
  const toolResult = sent2.messages[2].content.find((b) => b.type === 'tool_result');
  assert.equal(toolUse.id, call.id);
  assert.deepEqual(toolUse.input, { q: 'mock' });
  assert.equal(toolResult.tool_use_id, call.id);
  assert.match(JSON.stringify(toolResult.content), /sunny, 21 C/);

  const stream = await openai.chat.completions.create({
    model: 'claude-3-5-haiku-latest', tools: [weatherTool], stream: true,
    messages: [{ role: 'user', content: 'Stream a get_weather call for Rome' }],
  });
  let name = '', args = '', id = '', finish = null;
  for await (const chunk of stream) {
    if (!chunk.choices.length) continue;
    for (const tc of chunk.choices[0].delta.tool_calls ?? []) {
      id = tc.id ?? id;
      name += tc.function?.name ?? '';
      args += tc.function?.arguments ?? '';
    }
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.equal(name, 'get_weather');
  assert.ok(id.length > 0);
  assert.deepEqual(JSON.parse(args), { q: 'mock' });
  assert.equal(finish, 'tool_calls');
});

await check('anthropic SDK -> OpenAI-type provider: tools round trip (JSON and stream)', async () => {
  const tools = [{
    name: 'get_weather', description: 'Weather in a city',
    input_schema: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] },
  }];
  const messages = [{ role: 'user', content: 'Weather in Oslo? Use get_weather.' }];
  const r = await anthropic.messages.create({ model: 'gpt-4o-mini', max_tokens: 64, tools, messages });
  assert.equal(r.stop_reason, 'tool_use');
  const use = r.content.find((b) => b.type === 'tool_use');
  assert.equal(use.name, 'get_weather');
  assert.deepEqual(use.input, { q: 'mock' });
  const sent = JSON.parse(await lastUpstreamBody());
  assert.equal(sent.tools[0].type, 'function');
  assert.equal(sent.tools[0].function.name, 'get_weather');

  const r2 = await anthropic.messages.create({
    model: 'gpt-4o-mini', max_tokens: 64, tools,
    messages: [...messages, { role: 'assistant', content: r.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'cold, -3 C' }] }],
  });
  assert.equal(r2.stop_reason, 'end_turn');
  assert.equal(r2.content[0].type, 'text');
  const sent2 = JSON.parse(await lastUpstreamBody());
  const toolMsg = sent2.messages.find((m) => m.role === 'tool');
  assert.equal(toolMsg.tool_call_id, use.id);
  assert.match(JSON.stringify(toolMsg.content), /cold, -3 C/);
  const assistant = sent2.messages.find((m) => m.role === 'assistant');
  assert.equal(assistant.tool_calls[0].function.name, 'get_weather');

  const stream = anthropic.messages.stream({
    model: 'gpt-4o-mini', max_tokens: 64, tools,
    messages: [{ role: 'user', content: 'Stream a get_weather call for Lima' }],
  });
  const final = await stream.finalMessage();
  assert.equal(final.stop_reason, 'tool_use');
  const streamedUse = final.content.find((b) => b.type === 'tool_use');
  assert.equal(streamedUse.name, 'get_weather');
  assert.deepEqual(streamedUse.input, { q: 'mock' });
});

// --- the Responses API on both provider types, state kept by the gateway ---

const state = {};
for (const model of responseModels) {
  await check(`responses (${model}): two turns with previous_response_id, JSON then stream`, async () => {
    const r1 = await openai.responses.create({
      model, instructions: 'Be brief.', input: `My name is Ada. Turn one for ${model}.`,
    });
    assert.equal(r1.object, 'response');
    assert.equal(r1.status, 'completed');
    assert.ok(r1.id.startsWith('resp_'));
    assert.ok(r1.output_text.length > 0);
    assert.ok(r1.usage.output_tokens > 0);

    const stream = await openai.responses.create({
      model, previous_response_id: r1.id, input: 'Turn two: what is my name?', stream: true,
    });
    let text = '', completed = null;
    const types = [];
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.output_text.delta') text += event.delta;
      if (event.type === 'response.completed') completed = event.response;
    }
    assert.equal(types[0], 'response.created');
    assert.ok(completed, `no response.completed in ${types.join(',')}`);
    assert.equal(completed.previous_response_id, r1.id);
    assert.equal(completed.output_text ?? completed.output[0].content[0].text, text);
    // The whole chain went upstream: turn one, its answer, turn two.
    const sent = await lastUpstreamBody();
    assert.ok(sent.includes(`Turn one for ${model}`), sent);
    assert.ok(sent.includes(r1.output_text), sent);
    assert.ok(sent.includes('Turn two'), sent);
    assert.ok(!sent.includes('previous_response_id'), sent);

    const got = await openai.responses.retrieve(completed.id);
    assert.equal(got.id, completed.id);
    assert.equal(got.output_text, text);
    // The SDK's auto-paging list of the turn's input (limit 2: it follows `after` to page 2):
    // newest first, typed message items with content parts.
    const items = [];
    for await (const item of openai.responses.inputItems.list(completed.id, { limit: 2 })) {
      items.push(item);
    }
    assert.equal(items.length, 3, JSON.stringify(items));
    assert.equal(new Set(items.map((i) => i.id)).size, 3);
    assert.deepEqual(items.map((i) => i.role), ['user', 'assistant', 'user']);
    assert.equal(items[0].type, 'message');
    assert.deepEqual(items[0].content, [{ type: 'input_text', text: 'Turn two: what is my name?' }]);
    assert.equal(items[1].content[0].text, r1.output_text);
    assert.ok(items[2].content[0].text.includes(`Turn one for ${model}`));
    const asc = await openai.responses.inputItems.list(completed.id, { order: 'asc' });
    assert.deepEqual(asc.data.map((i) => i.id), items.map((i) => i.id).reverse());
    state[model] = { id: completed.id, first: r1.output_text };
  });

  await check(`responses (${model}): function tool call and its output`, async () => {
    const tools = [{
      type: 'function', name: 'get_weather', description: 'Weather in a city',
      parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] },
      strict: false,
    }];
    const r1 = await openai.responses.create({ model, tools, input: 'Use get_weather for Nairobi' });
    const call = r1.output.find((o) => o.type === 'function_call');
    assert.ok(call, JSON.stringify(r1.output));
    assert.equal(call.name, 'get_weather');
    const r2 = await openai.responses.create({
      model, tools, previous_response_id: r1.id,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: 'warm, 24 C' }],
    });
    assert.equal(r2.status, 'completed');
    assert.ok(r2.output_text.length > 0);
    const sent = await lastUpstreamBody();
    assert.ok(sent.includes('warm, 24 C'), sent);
    assert.ok(sent.includes(call.call_id), sent);
  });
}

await check('responses: an unknown previous_response_id or id is a NotFoundError (404)', async () => {
  await assert.rejects(
    openai.responses.create({ model: 'gpt-4o-mini', previous_response_id: 'resp_nope', input: 'x' }),
    (e) => e instanceof OpenAI.NotFoundError && /resp_nope/.test(e.message));
  await assert.rejects(openai.responses.retrieve('resp_nope'),
    (e) => e instanceof OpenAI.NotFoundError);
});

fs.writeFileSync(stateFile, JSON.stringify(state));
} else {
  const saved = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
  for (const model of responseModels) {
    await check(`responses (${model}): turn three after a gateway restart, then delete`, async () => {
      const r3 = await openai.responses.create({
        model, previous_response_id: saved[model].id, input: 'Turn three, after the restart.',
      });
      assert.equal(r3.status, 'completed');
      assert.equal(r3.previous_response_id, saved[model].id);
      const sent = await lastUpstreamBody();
      for (const part of [`Turn one for ${model}`, saved[model].first, 'Turn two', 'Turn three']) {
        assert.ok(sent.includes(part), `${part} missing from ${sent}`);
      }
      const deleted = await openai.responses.delete(r3.id);
      assert.equal(deleted?.deleted ?? true, true);
      await assert.rejects(openai.responses.retrieve(r3.id), (e) => e instanceof OpenAI.NotFoundError);
    });
  }
}

console.log(`sdk: ${passed} checks passed`);
