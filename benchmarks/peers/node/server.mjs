// The Node.js reference server: twinstream's wire contract for new streams, written
// the way a Node developer would -- node:http with a handler per request and one
// res.write per SSE event, the ws package with one ws.send per WebSocket event --
// serving the same synthetic model as every other server of the benchmark (the same
// tokens, synthetic.mjs; the same pace: the first token first_token_latency after the
// start, then one every 1/tokens_per_second on an absolute schedule, each delta
// stamped with the wall-clock time the model released it). It keeps no streams:
// `resume` answers stream_not_found, as the Python peers do.
//
// Run: node benchmarks/peers/node/server.mjs --port 0 [--tokens-per-second 30]
//      [--first-token-latency 0.25] [--max-prompt-bytes 32768]
// Prints "node serving on http://HOST:PORT/" once it listens.
import { randomBytes } from "node:crypto";
import http from "node:http";
import { parseArgs } from "node:util";
import { WebSocketServer } from "ws";

import { syntheticReply } from "./synthetic.mjs";

const { values: options } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    "tokens-per-second": { type: "string", default: "30" },
    "first-token-latency": { type: "string", default: "0.25" },
    "max-prompt-bytes": { type: "string", default: "32768" },
  },
});
const TOKENS_PER_SECOND = Number(options["tokens-per-second"]);
const INTERVAL_MS = TOKENS_PER_SECOND ? 1000 / TOKENS_PER_SECOND : 0;
const FIRST_TOKEN_MS = TOKENS_PER_SECOND ? 1000 * Number(options["first-token-latency"]) : 0;
const MAX_PROMPT_BYTES = Number(options["max-prompt-bytes"]);
const MAX_TOKENS_LIMIT = 4096;
const DEFAULT_MAX_TOKENS = 256;
const MODEL = "twinstream-synthetic";

class ProtocolError extends Error {
  constructor(code, message, status = 400) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

// -- the model ---------------------------------------------------------------------

const now = () => Math.round((performance.timeOrigin + performance.now()) * 1000) / 1e6;
const wait = (ms) => new Promise((resolve) => (ms > 0 ? setTimeout(resolve, ms) : setImmediate(resolve)));

/** The events of one completion, in order; `live()` false stops it at the next token. */
async function* completionEvents(streamId, prompt, maxTokens, live) {
  yield { type: "start", stream: streamId, seq: 0, model: MODEL, created: Math.floor(Date.now() / 1000), t: now() };
  const reply = syntheticReply(prompt, maxTokens);
  let due = performance.now() + FIRST_TOKEN_MS;
  let seq = 1;
  for (const content of reply.tokens) {
    await wait(due - performance.now());
    if (!live()) return;
    due += INTERVAL_MS;
    yield { type: "delta", stream: streamId, seq: seq++, content, t: now() };
  }
  yield { type: "done", stream: streamId, seq, finish_reason: reply.finishReason, usage: reply.usage, t: now() };
}

// -- the two values every transport takes ----------------------------------------

function validatePrompt(prompt) {
  if (prompt === undefined || prompt === null) throw new ProtocolError("missing_prompt", "'prompt' is required and must not be empty");
  if (typeof prompt !== "string") throw new ProtocolError("invalid_prompt", "'prompt' must be a string");
  if (!prompt.trim()) throw new ProtocolError("missing_prompt", "'prompt' is required and must not be empty");
  const size = Buffer.byteLength(prompt, "utf8");
  if (size > MAX_PROMPT_BYTES) {
    throw new ProtocolError("prompt_too_long", `'prompt' is ${size} bytes; the limit is ${MAX_PROMPT_BYTES} bytes`, 413);
  }
  return prompt;
}

function validateMaxTokens(value, fromQuery) {
  if (value === undefined || value === null) return DEFAULT_MAX_TOKENS;
  if (fromQuery) {
    if (!/^[0-9]{1,9}$/.test(value.trim())) {
      throw new ProtocolError("invalid_max_tokens", `'max_tokens' must be an integer from 1 to ${MAX_TOKENS_LIMIT}`);
    }
    value = Number(value.trim());
  }
  if (!Number.isInteger(value)) {
    throw new ProtocolError("invalid_max_tokens", `'max_tokens' must be an integer from 1 to ${MAX_TOKENS_LIMIT}`);
  }
  if (value < 1 || value > MAX_TOKENS_LIMIT) {
    throw new ProtocolError("invalid_max_tokens", `'max_tokens' is ${value}; it must be from 1 to ${MAX_TOKENS_LIMIT}`);
  }
  return value;
}

const newStreamId = () => randomBytes(16).toString("base64url");

// -- SSE: GET /sse?prompt=...&max_tokens=... ----------------------------------------

async function sse(req, res, query) {
  let prompt;
  let maxTokens;
  try {
    prompt = validatePrompt(query.get("prompt") ?? undefined);
    maxTokens = validateMaxTokens(query.get("max_tokens") ?? undefined, true);
  } catch (error) {
    res.writeHead(error.status, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ error: { code: error.code, message: error.message } }));
    return;
  }
  const streamId = newStreamId();
  let open = true;
  res.on("close", () => {
    open = false;
  });
  res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no" });
  const heartbeat = setInterval(() => res.write(": ping\n\n"), 15000);
  try {
    for await (const event of completionEvents(streamId, prompt, maxTokens, () => open)) {
      res.write(`id: ${streamId}:${event.seq}\ndata: ${JSON.stringify(event)}\n\n`);
    }
  } finally {
    clearInterval(heartbeat);
    res.end();
  }
}

// a prompt of up to --max-prompt-bytes rides in the query: room for it past Node's 16 KiB
const server = http.createServer({ maxHeaderSize: 4 * MAX_PROMPT_BYTES }, (req, res) => {
  const url = new URL(req.url, "http://peer");
  if (req.method === "GET" && url.pathname === "/sse") {
    sse(req, res, url.searchParams);
  } else if (url.pathname === "/healthz") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ status: "ok" }));
  } else {
    res.writeHead(404, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ error: { code: "not_found", message: "no such path" } }));
  }
});
server.keepAliveTimeout = 30000;

// -- WebSocket: GET /ws, start / cancel messages -------------------------------------

const errorEvent = (stream, seq, code, message, extra = {}) => ({ type: "error", stream, seq, code, message, ...extra });

async function relay(ws, streams, streamId, prompt, maxTokens, ref) {
  const stream = { live: true, seq: 0 };
  streams.set(streamId, stream);
  try {
    for await (const event of completionEvents(streamId, prompt, maxTokens, () => stream.live)) {
      if (ws.readyState !== ws.OPEN) return;
      stream.seq = event.seq;
      ws.send(JSON.stringify(event.type === "start" && ref !== undefined ? { ...event, ref } : event));
    }
    if (!stream.live && ws.readyState === ws.OPEN) {
      ws.send(JSON.stringify({ type: "done", stream: streamId, seq: stream.seq + 1, finish_reason: "cancelled", t: now() }));
    }
  } finally {
    streams.delete(streamId);
  }
}

function onMessage(ws, streams, data, isBinary) {
  if (isBinary) return;
  let message;
  try {
    message = JSON.parse(data.toString("utf8"));
  } catch {
    ws.send(JSON.stringify(errorEvent(null, null, "invalid_json", "message is not valid JSON (RFC 8259, UTF-8)")));
    return;
  }
  const ref = message && typeof message === "object" ? message.ref : undefined;
  try {
    if (!message || typeof message !== "object" || Array.isArray(message)) {
      throw new ProtocolError("invalid_message", "message must be a JSON object");
    }
    if (message.type === "start") {
      const prompt = validatePrompt(message.prompt);
      const maxTokens = validateMaxTokens(message.max_tokens, false);
      relay(ws, streams, newStreamId(), prompt, maxTokens, ref);
    } else if (message.type === "cancel" && streams.has(message.stream)) {
      streams.get(message.stream).live = false;
    } else if (message.type === "cancel" || message.type === "resume") {
      ws.send(JSON.stringify(errorEvent(message.stream ?? null, null, "stream_not_found", "this server keeps no streams")));
    } else {
      throw new ProtocolError("unknown_type", "unknown message type; use start, resume or cancel");
    }
  } catch (error) {
    const extra = ref !== undefined ? { ref } : {};
    ws.send(JSON.stringify(errorEvent(null, null, error.code ?? "invalid_message", error.message, extra)));
  }
}

// no permessage-deflate: like twinstream by default and the websockets peer
const wss = new WebSocketServer({ server, path: "/ws", perMessageDeflate: false, maxPayload: MAX_PROMPT_BYTES * 8 });
wss.on("connection", (ws) => {
  const streams = new Map();
  ws.on("message", (data, isBinary) => onMessage(ws, streams, data, isBinary));
  ws.on("close", () => {
    for (const stream of streams.values()) stream.live = false;
  });
  ws.on("error", () => {});
});

const stop = () => {
  for (const client of wss.clients) client.terminate();
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

server.listen({ host: options.host, port: Number(options.port), backlog: 2048 }, () => {
  console.log(`node serving on http://${options.host}:${server.address().port}/`);
});
