// The AI SDK's own client code (the `ai` package, unchanged) against twinstream's
// /api/chat, on both of its transports: DefaultChatTransport (SSE) and
// WebSocketChatTransport (with the `ws` package as its WebSocket). Run by
// tests/server/handlers/test_ui_chat_sdk.py:
//   node ui_chat_check.mjs SCENARIO TRANSPORT BASE_A BASE_B [JSON options]
// BASE_A and BASE_B are http://host:port of two processes sharing a store (or the
// same one twice). Prints one JSON object on stdout.
import {
  AbstractChat,
  DefaultChatTransport,
  WebSocketChatTransport,
  lastAssistantMessageIsCompleteWithToolCalls,
  readUIMessageStream,
} from "ai";
import WebSocket from "ws";

const [scenario, transportName, baseA, baseB, rawOptions] = process.argv.slice(2);
const options = JSON.parse(rawOptions ?? "{}");
const chatPath = options.chatPath ?? "/api/chat";
const body = options.body ?? { max_tokens: 12 };
const opened = [];

function transport(base) {
  const made =
    transportName === "ws"
      ? new WebSocketChatTransport({
          url: base.replace(/^http/, "ws") + chatPath,
          webSocket: WebSocket,
          body,
        })
      : new DefaultChatTransport({ api: base + chatPath, body });
  opened.push(made);
  return made;
}

const user = (id, text) => ({ id, role: "user", parts: [{ type: "text", text }] });
const textOf = (message) =>
  (message?.parts ?? []).filter((p) => p.type === "text").map((p) => p.text).join("");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The final UI message of a chunk stream, and the chunk types seen.
async function finalMessage(stream) {
  const types = [];
  const counted = stream.pipeThrough(
    new TransformStream({
      transform(chunk, controller) {
        types.push(chunk.type);
        controller.enqueue(chunk);
      },
    }),
  );
  let last;
  for await (const message of readUIMessageStream({ stream: counted })) last = message;
  return { message: last, types };
}

async function send(t, chatId, messages, abortSignal) {
  return t.sendMessages({
    chatId,
    messages,
    trigger: "submit-message",
    messageId: undefined,
    abortSignal,
  });
}

// Read `count` chunks of a stream, then drop: abort the request (SSE: the fetch is
// aborted, which the server treats as a disconnect) or close the socket (WS).
async function readThenDrop(t, stream, count, controller) {
  const reader = stream.getReader();
  const seen = [];
  while (seen.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    seen.push(value);
  }
  if (transportName === "ws") t.close();
  else controller.abort();
  reader.releaseLock();
  return seen;
}

async function twoTurns() {
  const t = transport(baseA);
  const chatId = `two-${Date.now()}`;
  const first = [user("u1", options.prompt ?? "Hello from the AI SDK")];
  const one = await finalMessage(await send(t, chatId, first));
  const second = [...first, one.message, user("u2", "And a second question")];
  const two = await finalMessage(await send(t, chatId, second));
  return { one, two };
}

async function resumeAfterDrop() {
  const chatId = `drop-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const messages = [user("u1", options.prompt ?? "Tell me a long story")];
  const uncut = await finalMessage(await send(transport(baseA), `uncut-${chatId}`, messages));
  const a = transport(baseA);
  const controller = new AbortController();
  const stream = await send(a, chatId, messages, controller.signal);
  const seen = await readThenDrop(a, stream, options.dropAt ?? 5, controller);
  const again = await transport(baseB).reconnectToStream({ chatId });
  const resumed = again == null ? null : await finalMessage(again);
  return { uncut, resumed, seenBeforeDrop: seen.length };
}

// `count` answers, each dropped after a random number of chunks on A and resumed
// with reconnectToStream on B; every final message compared with the uncut one.
async function manyDrops() {
  const count = options.count ?? 100;
  const prompts = Array.from({ length: 10 }, (_, n) => `many drops ${n}`);
  const uncut = [];
  for (const [n, prompt] of prompts.entries()) {
    const stream = await send(transport(baseA), `uncut-${n}-${Date.now()}`, [user("u1", prompt)]);
    uncut.push(await finalMessage(stream));
  }
  const total = uncut[0].types.length;
  const tag = Math.random().toString(36).slice(2);
  const mismatches = [];
  let next = 0;
  async function worker() {
    const a = transport(baseA);
    const b = transport(baseB);
    while (next < count) {
      const n = next++;
      const chatId = `many-${tag}-${n}`;
      const want = uncut[n % prompts.length];
      const controller = new AbortController();
      // after 1 chunk .. the last text delta (the end's chunks come in one write)
      const dropAt = 1 + Math.floor(Math.random() * (total - 4));
      const stream = await send(a, chatId, [user("u1", prompts[n % prompts.length])], controller.signal);
      await readThenDrop(a, stream, dropAt, controller);
      const again = await b.reconnectToStream({ chatId });
      const got = again == null ? null : await finalMessage(again);
      const same =
        got != null &&
        JSON.stringify(got.types) === JSON.stringify(want.types) &&
        JSON.stringify(got.message.parts) === JSON.stringify(want.message.parts) &&
        JSON.stringify(got.message.metadata) === JSON.stringify(want.message.metadata);
      if (!same) mismatches.push({ chatId, dropAt, got });
    }
  }
  await Promise.all(Array.from({ length: options.concurrency ?? 10 }, worker));
  return { count, total, mismatches: mismatches.slice(0, 5), mismatchCount: mismatches.length };
}

async function stop() {
  const chatId = `stop-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const messages = [user("u1", "Tell me a long story")];
  const a = transport(baseA);
  const controller = new AbortController();
  const stream = await send(a, chatId, messages, controller.signal);
  const reader = stream.getReader();
  const chunks = [];
  while (chunks.length < (options.stopAt ?? 6)) chunks.push((await reader.read()).value);
  let stoppedAt;
  let answer = null;
  if (transportName === "ws") {
    // the other process: drop this socket, resume there, abort there (the SDK's stop())
    a.close();
    reader.releaseLock();
    const b = transport(baseB);
    const resumeController = new AbortController();
    const resumed = await b.reconnectToStream({ chatId, abortSignal: resumeController.signal });
    const resumedReader = resumed.getReader();
    const replayed = [];
    while (replayed.length < chunks.length + 2) replayed.push((await resumedReader.read()).value);
    // a witness: the same answer followed over SSE, to see generation end with abort
    const witness = (
      await new DefaultChatTransport({ api: baseB + chatPath }).reconnectToStream({ chatId })
    ).getReader();
    for (let i = 0; i < replayed.length; i++) await witness.read();
    stoppedAt = performance.now();
    resumeController.abort();
    chunks.splice(0, chunks.length, ...replayed.slice(0, -1));
    for (;;) {
      const { value, done } = await witness.read();
      if (done) break;
      chunks.push(value);
    }
  } else {
    stoppedAt = performance.now();
    const response = await fetch(`${baseB}${chatPath}/${chatId}/stop`, { method: "POST" });
    answer = await response.json();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
  }
  const endedAfterMs = performance.now() - stoppedAt;
  await sleep(50);
  const after = await transport(baseB).reconnectToStream({ chatId });
  const text = chunks.filter((c) => c?.type === "text-delta").map((c) => c.delta).join("");
  return {
    answer,
    types: chunks.map((c) => c?.type),
    text,
    endedAfterMs,
    resumeAfterStop: after == null ? null : (await finalMessage(after)).types,
  };
}

class State {
  constructor(messages = []) {
    this.status = "ready";
    this.error = undefined;
    this.messages = messages;
  }
  pushMessage(message) {
    this.messages = [...this.messages, message];
  }
  popMessage() {
    this.messages = this.messages.slice(0, -1);
  }
  replaceMessage(index, message) {
    this.messages = [...this.messages.slice(0, index), message, ...this.messages.slice(index + 1)];
  }
  snapshot(thing) {
    return structuredClone(thing);
  }
}

function chat(base, id, messages = [], extra = {}) {
  const errors = [];
  const made = new AbstractChat({
    id,
    transport: transport(base),
    state: new State(messages),
    onError: (error) => errors.push(String(error?.message ?? error)),
    ...extra,
  });
  made.errors = errors;
  return made;
}

const view = (c) => ({
  status: c.status,
  errors: [...c.errors],
  messages: c.messages.map((m) => ({
    id: m.id,
    role: m.role,
    text: textOf(m),
    parts: m.parts.map((p) => p.type),
    metadata: m.metadata,
  })),
});

async function abstractChat() {
  const chatId = `chat-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const a = chat(baseA, chatId);
  await a.sendMessage({ text: "Hello from AbstractChat" });
  await a.sendMessage({ text: "A second turn" });
  const sent = view(a);
  // A page load in the middle of the next answer: a new chat (on the other
  // process) with the messages persisted so far resumes it.
  const third = a.sendMessage({ text: "A third turn, please tell a long story" });
  while (a.messages.length < 6 || textOf(a.messages[5]).length === 0) await sleep(5);
  const persisted = structuredClone(a.messages.slice(0, 5));
  if (transportName === "ws") a.transport.close();
  else await a.stop(); // SSE: aborts the fetch; the server keeps generating
  await third;
  const b = chat(baseB, chatId, persisted);
  await b.resumeStream();
  const resumed = view(b);
  const uncut = await finalMessage(
    await send(transport(baseA), `${chatId}-uncut`, a.messages.slice(0, 5)),
  );
  await sleep(options.graceMs ?? 0);
  const c = chat(baseB, chatId, structuredClone(b.messages));
  await c.resumeStream();
  const unknown = chat(baseB, `${chatId}-never`);
  await unknown.resumeStream();
  return { sent, resumed, uncut: textOf(uncut.message), afterEnd: view(c), unknown: view(unknown) };
}

// What the README tells a useChat app to do: stop() and, over SSE, the stop
// endpoint (on the other process); over WebSocket stop() alone (its abort frame).
// A witness follows the same answer over SSE on B to see generation end.
async function abstractStop() {
  const chatId = `astop-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const a = chat(baseA, chatId);
  const sending = a.sendMessage({ text: "Tell me a very long story" });
  while (a.messages.length < 2 || textOf(a.messages[1]).length === 0) await sleep(5);
  const witness = (
    await new DefaultChatTransport({ api: baseB + chatPath }).reconnectToStream({ chatId })
  ).getReader();
  const started = performance.now();
  if (transportName === "ws") await a.stop();
  else await Promise.all([a.stop(), fetch(`${baseB}${chatPath}/${chatId}/stop`, { method: "POST" })]);
  await sending;
  const seen = [];
  for (;;) {
    const { value, done } = await witness.read();
    if (done) break;
    seen.push(value.type);
  }
  const endedAfterMs = performance.now() - started;
  const later = chat(baseB, chatId, structuredClone(a.messages));
  await later.resumeStream();
  return { stopped: view(a), witness: seen.slice(-3), endedAfterMs, later: view(later) };
}

async function toolRoundTrip() {
  const chatId = `tool-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const calls = [];
  const c = chat(baseA, chatId, [], {
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithToolCalls,
    onToolCall: async ({ toolCall }) => {
      calls.push(toolCall);
      c.addToolOutput({
        tool: toolCall.toolName,
        toolCallId: toolCall.toolCallId,
        output: { forecast: "sunny", city: toolCall.input?.city },
      });
    },
  });
  await c.sendMessage({ text: "What does get_weather say for Paris?" });
  while (c.status !== "ready" && c.status !== "error") await sleep(5);
  await sleep(20);
  while (c.status !== "ready" && c.status !== "error") await sleep(5);
  const parts = c.messages.map((m) => m.parts);
  return { calls, ...view(c), rawParts: parts };
}

const scenarios = {
  twoTurns,
  resumeAfterDrop,
  manyDrops,
  stop,
  abstractChat,
  abstractStop,
  toolRoundTrip,
};
try {
  const result = await scenarios[scenario]();
  process.stdout.write(JSON.stringify(result) + "\n");
} finally {
  for (const t of opened) t.close?.();
}
