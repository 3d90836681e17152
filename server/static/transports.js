// The two ways of receiving one stream. Both runners take the same handlers and
// report the same wire events (see docs/protocol.md), so the page can treat them alike:
//
//   onStatus(status, detail)   "connecting" | "streaming" | "reconnecting"
//   onEvent(event, wireBytes)  every new event once, in seq order (duplicates are dropped)
//   onReconnect(how)           a connection was lost and is being replaced
//   onFailure(message)         the run cannot go on (a readable sentence)
//   onAbandoned(message)       Stop before the server named the stream: given up locally
//
// and offer start(), drop(), stop() and dispose().

import { withToken } from "./access.js";

const encoder = new TextEncoder();
const byteLength = (text) => encoder.encode(text).length;

/** Reads a JSON error body ({"error": {"code", "message"}}) into a sentence. */
async function describeErrorResponse(response) {
  let code = "";
  let message = "";
  try {
    const body = await response.json();
    code = body?.error?.code ?? "";
    message = body?.error?.message ?? "";
  } catch {
    // not JSON: fall back to the status line
  }
  const status = `${response.status}${response.statusText ? " " + response.statusText : ""}`;
  return message
    ? `The server refused the request: ${message} (HTTP ${status}, ${code})`
    : `The server answered HTTP ${status}.`;
}

/** POST to /cancel or /debug/drop (with the run's token, if any); returns {ok, message}. */
async function postHelper(path, token) {
  let response;
  try {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    response = await fetch(path, { method: "POST", headers });
  } catch (error) {
    return { ok: false, message: `network error: ${error.message}` };
  }
  if (response.ok) return { ok: true, message: "" };
  return { ok: false, message: await describeErrorResponse(response) };
}

function webSocketUrl(token) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return withToken(`${scheme}//${location.host}/ws`, token);
}

/** Shared bookkeeping: stream id, last seq, de-duplication, terminal state. */
class BaseRun {
  /** `messages`: the conversation so far plus the new prompt (null for a first turn);
   * `params`: more Chat Completions parameters (e.g. tools), or null;
   * `token`: access token for ?access_token= ("" when the server needs none). */
  constructor({ prompt, maxTokens, messages = null, params = null, token = "" }, handlers) {
    this.prompt = prompt;
    this.maxTokens = maxTokens;
    this.messages = messages;
    this.params = params;
    this.token = token;
    this.handlers = handlers;
    this.streamId = null;
    this.lastSeq = -1;
    this.finished = false;
    this.stopRequested = false;
  }

  /** Accepts an event once; returns false for duplicates and strays. */
  accept(event, wireBytes) {
    if (this.finished) return false;
    if (event.type === "start" && this.streamId === null) {
      this.streamId = event.stream;
    } else if (event.stream !== this.streamId || event.seq <= this.lastSeq) {
      return false;
    }
    this.lastSeq = event.seq;
    if (event.type === "done" || event.type === "error") this.finished = true;
    this.handlers.onEvent(event, wireBytes);
    if (this.finished) this.dispose();
    return true;
  }

  fail(message) {
    if (this.finished) return;
    this.finished = true;
    this.dispose();
    this.handlers.onFailure(message);
  }

  /** Stop before the start event: wait a moment for the stream id (to cancel it on the
   * server), then give up locally; an unread stream is cancelled by the server's idle timeout. */
  stopBeforeStart() {
    this.stopRequested = true;
    setTimeout(() => {
      if (this.finished || this.streamId) return;
      this.finished = true;
      this.dispose();
      this.handlers.onAbandoned("stopped before the server started the stream");
    }, 1500);
  }
}

/**
 * Server-Sent Events through the browser's EventSource.
 *
 * Drop connection asks the server to cut this stream's response
 * (POST /debug/drop?stream=S): the EventSource then reconnects by itself after the
 * server's `retry` and sends Last-Event-ID. If the server has no such endpoint,
 * the page does what the browser would: it closes the EventSource and opens a new
 * one at /sse?last_event_id=S:seq after the same one-second retry.
 */
export class SseRun extends BaseRun {
  constructor(params, handlers) {
    super(params, handlers);
    this.source = null;
    this.lastEventId = "";
    this.retryTimer = 0;
    this.dropMode = "";
    this.dropping = false;
  }

  start() {
    if (this.messages) {
      this.startConversation();
      return;
    }
    const query = new URLSearchParams({ prompt: this.prompt, max_tokens: String(this.maxTokens) });
    const url = withToken(`/sse?${query}`, this.token);
    if (url.length > 8000) {
      // Long request lines are refused by HTTP servers and proxies: POST it instead.
      this.messages = [{ role: "user", content: this.prompt }];
      this.startConversation();
      return;
    }
    this.handlers.onStatus("connecting");
    this.open(url);
  }

  /** A conversation (or a long prompt) does not fit in a URL: POST it to /streams, then
   * follow the new stream with EventSource at the URL the server answers (/sse?stream=S). */
  async startConversation() {
    this.handlers.onStatus("connecting");
    let response;
    try {
      response = await fetch("/streams", {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}),
        },
        body: JSON.stringify({
          messages: this.messages,
          max_tokens: this.maxTokens,
          ...this.params,
        }),
      });
    } catch (error) {
      this.fail(`Could not reach the server (${error.message}).`);
      return;
    }
    if (response.status !== 201) {
      this.fail(await describeErrorResponse(response));
      return;
    }
    const created = await response.json();
    if (this.finished) return; // stopped meanwhile: the idle timeout ends the unread stream
    this.open(withToken(created.urls.sse, this.token));
  }

  open(url) {
    const source = new EventSource(url);
    this.source = source;
    source.onopen = () => {
      if (!this.finished) this.handlers.onStatus("streaming");
    };
    source.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        this.fail("The server sent an event that is not JSON.");
        return;
      }
      const frame = `id: ${message.lastEventId}\ndata: ${message.data}\n\n`;
      this.lastEventId = message.lastEventId;
      const fresh = event.type === "start" && this.streamId === null;
      if (this.accept(event, byteLength(frame)) && fresh && this.stopRequested) this.stop();
    };
    source.onerror = () => {
      if (this.finished || source !== this.source) return;
      if (source.readyState === EventSource.CONNECTING) {
        // The browser's own reconnect: it will send Last-Event-ID after `retry` ms.
        const how =
          this.dropMode === "server"
            ? `EventSource reconnecting with Last-Event-ID ${this.lastEventId}`
            : `connection lost; EventSource reconnecting with Last-Event-ID ${this.lastEventId}`;
        this.dropMode = "";
        this.handlers.onReconnect(how);
        this.handlers.onStatus("reconnecting", how);
      } else {
        this.explainClosed(url);
      }
    };
  }

  /** EventSource gives up without telling why; ask the same URL for its JSON error. */
  async explainClosed(url) {
    const retryUrl = this.lastEventId
      ? withToken(`/sse?last_event_id=${encodeURIComponent(this.lastEventId)}`, this.token)
      : url;
    const abort = new AbortController();
    try {
      const response = await fetch(retryUrl, { signal: abort.signal });
      if (!response.ok) {
        this.fail(await describeErrorResponse(response));
        return;
      }
      this.fail(`The event stream closed unexpectedly (HTTP ${response.status}).`);
    } catch (error) {
      this.fail(`Could not reach the server (${error.message}).`);
    } finally {
      abort.abort(); // if the server did start streaming, do not keep reading
    }
  }

  async drop() {
    if (this.finished || !this.streamId || this.retryTimer || this.dropping) return;
    this.dropping = true;
    const asked = await postHelper(
      `/debug/drop?stream=${encodeURIComponent(this.streamId)}`,
      this.token,
    );
    this.dropping = false;
    if (this.finished) return;
    if (asked.ok) {
      this.dropMode = "server"; // onerror reports the reconnect
      return;
    }
    // No server help: close and reopen with the id, as EventSource itself would.
    this.source.close();
    const how = `EventSource closed by the page; reopening with ?last_event_id=${this.lastEventId}`;
    this.handlers.onReconnect(how);
    this.handlers.onStatus("reconnecting", how);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = 0;
      if (!this.finished) {
        this.open(
          withToken(`/sse?last_event_id=${encodeURIComponent(this.lastEventId)}`, this.token),
        );
      }
    }, 1000);
  }

  async stop() {
    if (this.finished) return;
    if (!this.streamId) {
      this.stopBeforeStart(); // cancelled as soon as the start event names the stream
      return;
    }
    this.stopRequested = true;
    // SSE has no way back to the server, so Stop is a separate request.
    const asked = await postHelper(
      `/cancel?stream=${encodeURIComponent(this.streamId)}`,
      this.token,
    );
    if (!asked.ok) this.fail(`Stop failed: ${asked.message}`);
    // The done/cancelled event arrives on the EventSource.
  }

  dispose() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    this.source?.close();
  }
}

/**
 * One stream over a WebSocket. Any close before the stream ends (Drop connection,
 * or a real network failure) opens a new socket and sends
 * {"type": "resume", "stream": S, "after": lastSeq}.
 */
export class WsRun extends BaseRun {
  static maxRetries = 5;

  constructor(params, handlers) {
    super(params, handlers);
    this.socket = null;
    this.ref = `run-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    this.retries = 0;
    this.retryTimer = 0;
  }

  start() {
    this.handlers.onStatus("connecting");
    const request = this.messages ? { messages: this.messages } : { prompt: this.prompt };
    this.connect({
      type: "start",
      ...request,
      ...this.params,
      max_tokens: this.maxTokens,
      ref: this.ref,
    });
  }

  connect(firstMessage) {
    const socket = new WebSocket(webSocketUrl(this.token));
    this.socket = socket;
    socket.onopen = () => {
      socket.send(JSON.stringify(firstMessage));
      if (this.stopRequested && this.streamId) this.sendCancel();
      if (firstMessage.type === "resume") this.handlers.onStatus("streaming");
    };
    socket.onmessage = (message) => {
      if (socket !== this.socket) return;
      this.retries = 0;
      this.receive(message.data);
    };
    socket.onclose = (close) => {
      if (socket !== this.socket || this.finished) return;
      if (!this.streamId) {
        this.fail(
          `The WebSocket closed before the stream started (code ${close.code}` +
            `${close.reason ? ": " + close.reason : ""}).`,
        );
        return;
      }
      if (this.retries >= WsRun.maxRetries) {
        this.fail(`The WebSocket keeps closing (code ${close.code}); gave up resuming.`);
        return;
      }
      const dropped = close.code === 4000;
      const delay = dropped ? 0 : 250 * 2 ** this.retries;
      this.retries += 1;
      const how = `${dropped ? "socket closed by the page" : "socket lost"}; new socket sends resume after seq ${this.lastSeq}`;
      this.handlers.onReconnect(how);
      this.handlers.onStatus("reconnecting", how);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = 0;
        if (!this.finished) {
          this.connect({ type: "resume", stream: this.streamId, after: this.lastSeq });
        }
      }, delay);
    };
  }

  receive(text) {
    let event;
    try {
      event = JSON.parse(text);
    } catch {
      this.fail("The server sent a message that is not JSON.");
      return;
    }
    const length = byteLength(text);
    const header = length < 126 ? 2 : length < 65536 ? 4 : 10; // server frames are unmasked
    if (event.type === "error" && (event.stream === null || event.stream === undefined)) {
      // An error about our message (e.g. an over-long prompt) rather than a stream.
      this.fail(`The server refused the message: ${event.message} (${event.code})`);
      return;
    }
    if (event.type === "error" && event.seq === null && event.stream === this.streamId) {
      this.fail(`Could not resume: ${event.message} (${event.code})`); // e.g. stream_not_found
      return;
    }
    const fresh = event.type === "start" && this.streamId === null && event.ref === this.ref;
    if (event.type === "start" && !fresh) return;
    if (this.accept(event, length + header)) {
      if (fresh) this.handlers.onStatus("streaming");
      if (fresh && this.stopRequested) this.sendCancel();
    }
  }

  sendCancel() {
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ type: "cancel", stream: this.streamId }));
    }
  }

  drop() {
    if (this.finished || !this.streamId || this.socket?.readyState !== WebSocket.OPEN) return;
    this.socket.close(4000, "dropped by the demo");
  }

  stop() {
    if (this.finished) return;
    if (!this.streamId) {
      this.stopBeforeStart();
      return;
    }
    this.stopRequested = true;
    this.sendCancel(); // if the socket is down: right after the resume
  }

  dispose() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    const socket = this.socket;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000);
  }
}
