"""A tiny OpenAI-compatible upstream for tests: a real Tornado app on loopback
that speaks ``POST /v1/chat/completions`` (``stream: true``) with what real
models send back (text honouring ``stop``, tool calls, structured output,
refusals, logprobs, usage) and records every request body it got.

Deterministic, so tests can state the exact reply:

* ``tools`` (and ``tool_choice`` not ``"none"``), last message from the user:
  a call of the named (or first) tool, arguments filled from its schema,
  finish ``tool_calls``;
* ``response_format`` ``json_schema``: an object of the schema;
  ``json_object``: ``{"answer": "ok"}``;
* a user message containing ``refuse``: a refusal, finish ``content_filter``;
* otherwise :func:`reply_text`, cut at the first ``stop`` sequence.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import tornado.httpserver
import tornado.testing
import tornado.web

__all__ = ["OpenAIUpstream", "reply_text", "schema_value"]


def reply_text(request: dict[str, Any]) -> str:
    """The text reply to ``request`` before any ``stop`` cut."""
    last = request["messages"][-1]
    if last["role"] == "tool":
        return f"The tool said {last['content']}."
    return (
        f"Upstream heard {last.get('content')!r} at temperature {request.get('temperature')} "
        f"with seed {request.get('seed')}. The end."
    )


def schema_value(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {k: schema_value(v) for k, v in (schema.get("properties") or {}).items()}
    if "enum" in schema:
        return schema["enum"][0]
    return {"string": "Paris", "integer": 3, "number": 2.5, "boolean": True, "array": []}.get(
        str(kind), None
    )


class _Completions(tornado.web.RequestHandler):
    def initialize(self, upstream: OpenAIUpstream) -> None:
        self.upstream = upstream

    async def post(self) -> None:
        request = json.loads(self.request.body)
        self.upstream.requests.append(request)
        self.set_header("Content-Type", "text/event-stream")
        base = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1}
        base["model"] = request["model"]

        async def send(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> None:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, **extra}
            self.write(f"data: {json.dumps({**base, 'choices': [choice]})}\n\n")
            await self.flush()

        await send({"role": "assistant", "content": ""})
        finish = await self._answer(request, send)
        await send({}, finish)
        if (request.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
            self.write(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n")
        self.write("data: [DONE]\n\n")

    async def _answer(self, request: dict[str, Any], send: Any) -> str:
        last = request["messages"][-1]
        tools = request.get("tools") or []
        choice = request.get("tool_choice", "auto")
        if tools and choice != "none" and last["role"] == "user":
            function = tools[0]["function"]
            if isinstance(choice, dict):
                name = choice["function"]["name"]
                function = next(t["function"] for t in tools if t["function"]["name"] == name)
            arguments = json.dumps(schema_value(function.get("parameters") or {}))
            middle = len(arguments) // 2
            head = {"index": 0, "id": "call_up1", "type": "function"}
            await send({"tool_calls": [{**head, "function": {"name": function["name"]}}]})
            for part in (arguments[:middle], arguments[middle:]):
                await send({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
            return "tool_calls"
        if "refuse" in str(last.get("content")):
            for part in ("I can't", " help with that."):
                await send({"refusal": part})
            return "content_filter"
        response_format = request.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            text = json.dumps(schema_value(response_format["json_schema"]["schema"]))
        elif response_format.get("type") == "json_object":
            text = '{"answer": "ok"}'
        else:
            text = reply_text(request)
        stop = request.get("stop") or []
        cuts = [text.find(s) for s in ([stop] if isinstance(stop, str) else stop)]
        cut = min((c for c in cuts if c >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
        words = text.split(" ")
        for index, word in enumerate(words):
            piece = word if index == 0 else " " + word
            extra: dict[str, Any] = {}
            if request.get("logprobs"):
                token = {"token": piece, "logprob": -0.5, "bytes": list(piece.encode())}
                extra["logprobs"] = {"content": [{**token, "top_logprobs": []}]}
            await send({"content": piece}, **extra)
        return "stop"


class _Models(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"object": "list", "data": [{"id": "up-model", "object": "model"}]})


class OpenAIUpstream:
    """The upstream in its own thread and event loop (so blocking SDK clients
    may call a server that calls it). ``base_url`` ends in ``/v1``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.base_url = ""
        self._loop = asyncio.new_event_loop()
        self._server: tornado.httpserver.HTTPServer | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openai-upstream", daemon=True)

    def start(self) -> OpenAIUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("upstream did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def boot() -> None:
            app = tornado.web.Application(
                [
                    (r"/v1/chat/completions", _Completions, {"upstream": self}),
                    (r"/v1/models", _Models),
                ]
            )
            sock, port = tornado.testing.bind_unused_port()
            self._server = tornado.httpserver.HTTPServer(app)
            self._server.add_sockets([sock])
            self.base_url = f"http://127.0.0.1:{port}/v1"

        self._loop.run_until_complete(boot())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    def stop(self) -> None:
        server = self._server
        if server is None:
            return

        async def shutdown() -> None:
            server.stop()
            await server.close_all_connections()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
