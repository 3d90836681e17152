// The demo page: a conversation over SSE or WebSocket (each turn may take either);
// type the reply out as it arrives, measure the run, keep a table and a chart of past runs.
// Server text only ever goes through textContent / text nodes.

import { accessToken, keyRequired } from "./access.js";
import { renderChart } from "./chart.js";
import { SseRun, WsRun } from "./transports.js";

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("compose-form"),
  prompt: $("prompt"),
  apiKeyRow: $("api-key-row"),
  apiKey: $("api-key"),
  maxTokens: $("max-tokens"),
  offerTool: $("offer-tool"),
  send: $("send"),
  stop: $("stop"),
  drop: $("drop"),
  dropHint: $("drop-hint"),
  status: $("status"),
  statusText: $("status-text"),
  response: $("response"),
  error: $("error"),
  runMeta: $("run-meta"),
  chart: $("chart"),
  historyBody: $("history-body"),
  conversation: $("conversation"),
  newConversation: $("new-conversation"),
  clearHistory: $("clear-history"),
  metrics: {
    ttft: $("metric-ttft"),
    rate: $("metric-rate"),
    tokens: $("metric-tokens"),
    events: $("metric-events"),
    bytes: $("metric-bytes"),
    reconnects: $("metric-reconnects"),
  },
};

const TRANSPORT_NAMES = { sse: "SSE", ws: "WebSocket" };
const DROP_HINTS = {
  sse:
    "Drop connection cuts the SSE connection mid-stream; EventSource resumes with " +
    "Last-Event-ID.",
  ws: "Drop connection closes the socket mid-stream; a new socket sends resume with the last seq.",
};
const HISTORY_LIMIT = 8;
// Offered to the model when "Offer a weather tool" is ticked. The synthetic model
// calls a tool whose name the prompt mentions ("What is the weather?"); a real
// model decides for itself. The page only shows the call: it runs no tool.
const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "weather",
    description: "The current weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const CHART_RUNS = 6;

const history = []; // finished runs, newest last
// The chat so far ({role, content} messages): each finished answer is appended after its
// question and the whole conversation goes with the next prompt, over either transport.
const conversation = [];
let current = null; // {record, runner}
let runCounter = 0;
let renderQueued = false;

const selectedTransport = () => ui.form.elements.transport.value;
const elapsed = (record, at = performance.now()) => at - record.sentAt;
const formatMs = (ms) => (ms == null ? "–" : ms < 10000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);
const formatCount = (n) => n.toLocaleString("en-US");

function tokensPerSecond(record) {
  if (record.tokens < 2 || record.lastTokenAt === record.firstTokenAt) return null;
  return (record.tokens - 1) / ((record.lastTokenAt - record.firstTokenAt) / 1000);
}

// --- status line and controls ----------------------------------------------------

function setStatus(status, detail = "") {
  ui.status.dataset.status = status;
  ui.statusText.textContent = detail ? `${status} — ${detail}` : status;
  const active = ["connecting", "streaming", "reconnecting"].includes(status);
  ui.send.disabled = active;
  ui.stop.disabled = !active;
  ui.drop.disabled = status !== "streaming";
  ui.response.setAttribute("aria-busy", String(active));
  ui.response.classList.toggle("typing", active);
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = !message;
}

function updateDropHint() {
  ui.dropHint.textContent = DROP_HINTS[selectedTransport()];
}

// --- a run -------------------------------------------------------------------

function newRecord(transport, prompt, maxTokens) {
  runCounter += 1;
  return {
    id: runCounter,
    transport,
    prompt,
    maxTokens,
    sentAt: performance.now(),
    firstTokenAt: null,
    lastTokenAt: null,
    endedAt: null,
    tokens: 0,
    events: 0,
    bytes: 0,
    reconnects: 0,
    arrivals: [],
    reconnectMarks: [],
    streamId: "",
    model: "",
    result: "",
  };
}

let sending = false; // a token is being fetched for the next run

async function send() {
  if (current || sending) return;
  const prompt = ui.prompt.value;
  if (!prompt.trim()) {
    showError("Type a prompt first.");
    ui.prompt.focus();
    return;
  }
  let token;
  sending = true;
  try {
    token = await accessToken(ui.apiKey.value.trim());
  } catch (error) {
    showError(error.message);
    ui.apiKeyRow.hidden = false;
    ui.apiKey.focus();
    return;
  } finally {
    sending = false;
  }
  const maxTokens = Number.parseInt(ui.maxTokens.value, 10) || 256;
  const transport = selectedTransport();
  const record = newRecord(transport, prompt, maxTokens);
  ui.response.replaceChildren();
  showError("");
  const handlers = {
    onStatus: (status, detail) => setStatus(status, detail),
    onEvent: (event, wireBytes) => onEvent(record, event, wireBytes),
    onReconnect: () => {
      record.reconnects += 1;
      record.reconnectMarks.push([elapsed(record), record.tokens]);
      queueRender();
    },
    onFailure: (message) => finish(record, "error", message),
    onAbandoned: (message) => finish(record, "cancelled", message),
  };
  const Runner = transport === "sse" ? SseRun : WsRun;
  const params = ui.offerTool.checked ? { tools: [WEATHER_TOOL] } : null;
  const messages =
    conversation.length || params ? [...conversation, { role: "user", content: prompt }] : null;
  const runner = new Runner({ prompt, maxTokens, messages, params, token }, handlers);
  current = { record, runner };
  ui.runMeta.textContent = `Run #${record.id} over ${TRANSPORT_NAMES[transport]}`;
  queueRender();
  runner.start();
}

function onEvent(record, event, wireBytes) {
  const now = performance.now();
  record.events += 1;
  record.bytes += wireBytes;
  if (event.type === "start") {
    record.streamId = event.stream;
    record.model = event.model ?? "";
    ui.runMeta.textContent =
      `Run #${record.id} over ${TRANSPORT_NAMES[record.transport]} · model ${record.model} · ` +
      `stream ${event.stream}`;
  } else if (event.type === "delta") {
    record.tokens += 1;
    record.firstTokenAt ??= now;
    record.lastTokenAt = now;
    record.arrivals.push([elapsed(record, now), record.tokens]);
    const box = ui.response;
    const following = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
    if (event.content) box.append(document.createTextNode(event.content));
    for (const call of event.tool_calls ?? []) showToolCall(call);
    if (following) box.scrollTop = box.scrollHeight; // keep the newest text in view
  } else if (event.type === "done") {
    const reason = event.finish_reason;
    const lastCall = ui.response.lastElementChild;
    if (reason === "tool_calls" && lastCall?.classList.contains("tool-call")) lastCall.append(")");
    if (reason === "cancelled") finish(record, "cancelled");
    else if (reason === "tool_calls") finish(record, "done", "the model called a tool");
    else finish(record, "done", reason === "length" ? "stopped at max tokens" : "");
    return;
  } else if (event.type === "error") {
    finish(record, "error", `The stream failed: ${event.message} (${event.code})`);
    return;
  }
  queueRender();
}

/** A tool-call fragment: the first names the function, the rest carry its arguments. */
function showToolCall(call) {
  const box = ui.response;
  let shown = box.lastElementChild;
  const open = shown?.classList.contains("tool-call");
  if (call.function?.name || !open) {
    if (open) shown.append(")"); // the previous call is complete
    shown = document.createElement("span");
    shown.className = "tool-call";
    if (box.textContent) box.append(document.createTextNode("\n"));
    box.append(shown);
    shown.append(`${call.function?.name ?? "tool"}(`);
  }
  shown.append(call.function?.arguments ?? "");
}

function finish(record, status, detail = "") {
  if (!current || current.record !== record) return;
  record.endedAt = performance.now();
  record.result = status;
  current.runner.dispose();
  current = null;
  if (status === "error") {
    showError(detail);
    setStatus("error");
  } else {
    setStatus(status, detail);
  }
  history.push(record);
  if (history.length > HISTORY_LIMIT) history.shift();
  if (status === "done") {
    // A finished answer joins the conversation; a stopped or failed one does not.
    conversation.push(
      { role: "user", content: record.prompt },
      { role: "assistant", content: ui.response.textContent },
    );
    renderConversation();
  }
  queueRender();
}

function renderConversation() {
  ui.newConversation.disabled = conversation.length === 0;
  const items = conversation.map((message) => {
    const item = document.createElement("li");
    item.className = `turn turn-${message.role}`;
    const who = document.createElement("span");
    who.className = "turn-role";
    who.textContent = message.role === "user" ? "You" : "Model";
    const text = document.createElement("span");
    text.className = "turn-text";
    text.textContent = message.content;
    item.append(who, text);
    return item;
  });
  ui.conversation.replaceChildren(...items);
  ui.conversation.hidden = items.length === 0;
  ui.conversation.scrollTop = ui.conversation.scrollHeight;
}

// --- rendering -----------------------------------------------------------------

function queueRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function render() {
  const record = current?.record ?? history.at(-1);
  const m = ui.metrics;
  if (record) {
    m.ttft.textContent = record.firstTokenAt ? formatMs(record.firstTokenAt - record.sentAt) : "–";
    const rate = tokensPerSecond(record);
    m.rate.textContent = rate == null ? "–" : rate.toFixed(1);
    m.tokens.textContent = formatCount(record.tokens);
    m.events.textContent = formatCount(record.events);
    m.bytes.textContent = formatCount(record.bytes);
    m.reconnects.textContent = formatCount(record.reconnects);
  }
  renderHistory();
  const shown = history.slice(-CHART_RUNS);
  const runs = current ? [...shown, current.record] : shown;
  renderChart(
    ui.chart,
    runs.map((run, index) => ({
      label: `#${run.id}`,
      transport: run.transport,
      arrivals: run.arrivals,
      reconnects: run.reconnectMarks,
      faded: index < runs.length - 2,
    })),
  );
}

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function bytesCell(record, mostBytes) {
  const td = cell(formatCount(record.bytes), "num bytes-cell");
  const bar = document.createElement("span");
  bar.className = `bytes-bar swatch-${record.transport}`;
  bar.style.width = `${Math.round((record.bytes / mostBytes) * 5)}em`;
  bar.setAttribute("aria-hidden", "true");
  td.append(bar);
  return td;
}

function renderHistory() {
  ui.clearHistory.disabled = history.length === 0;
  if (!history.length) return;
  const mostBytes = Math.max(1, ...history.map((record) => record.bytes));
  const rows = history
    .slice()
    .reverse()
    .map((record) => {
      const row = document.createElement("tr");
      row.dataset.transport = record.transport;
      const transport = cell("", "transport-cell");
      const swatch = document.createElement("span");
      swatch.className = `swatch swatch-${record.transport}`;
      swatch.setAttribute("aria-hidden", "true");
      transport.append(swatch, TRANSPORT_NAMES[record.transport]);
      const prompt = cell(record.prompt.length > 40 ? `${record.prompt.slice(0, 39)}…` : record.prompt, "prompt-cell");
      prompt.title = record.prompt.slice(0, 500);
      const rate = tokensPerSecond(record);
      row.append(
        cell(`#${record.id}`),
        transport,
        prompt,
        cell(record.result, `result result-${record.result}`),
        cell(record.firstTokenAt ? formatMs(record.firstTokenAt - record.sentAt) : "–", "num"),
        cell(rate == null ? "–" : rate.toFixed(1), "num"),
        cell(formatCount(record.tokens), "num"),
        cell(formatCount(record.events), "num"),
        bytesCell(record, mostBytes),
        cell(formatCount(record.reconnects), "num"),
        cell(formatMs(record.endedAt - record.sentAt), "num"),
      );
      return row;
    });
  ui.historyBody.replaceChildren(...rows);
}

// --- wiring --------------------------------------------------------------------

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});
ui.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});
ui.stop.addEventListener("click", () => current?.runner.stop());
ui.drop.addEventListener("click", () => current?.runner.drop());
ui.clearHistory.addEventListener("click", () => {
  history.length = 0;
  const empty = document.createElement("tr");
  empty.className = "empty";
  empty.append(
    cell("Send a prompt, press New conversation, send it over the other transport: compare here."),
  );
  empty.firstChild.colSpan = 11;
  ui.historyBody.replaceChildren(empty);
  queueRender();
});
for (const radio of ui.form.elements.transport) radio.addEventListener("change", updateDropHint);
ui.newConversation.addEventListener("click", () => {
  if (current) return;
  conversation.length = 0;
  ui.response.replaceChildren();
  renderConversation();
  ui.prompt.focus();
});

// On phones the explanation starts folded, below the numbers.
if (matchMedia("(max-width: 859px)").matches) document.querySelector("details.how").open = false;
updateDropHint();
renderConversation();
setStatus("idle");
render();
// The key field shows only when the server asks for a key.
keyRequired().then((needed) => {
  ui.apiKeyRow.hidden = !needed;
  document.documentElement.dataset.ready = "true"; // for tests: the module has loaded
});
