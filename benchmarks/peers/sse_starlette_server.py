"""Reference SSE server: ``sse-starlette`` on ``uvicorn``, same wire contract as
twinstream's ``GET /sse`` for new streams (no ``Last-Event-ID`` resume).

Run: ``python -m benchmarks.peers.sse_starlette_server --port 0``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import uvicorn
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.backends.synthetic import SyntheticBackend
from server.config import Settings
from server.wire import errors, ids, limits
from server.wire.events import dumps
from server.workers import run_on_loop

from . import build_parser, completion_events, new_stream_id

LIMITS = Settings().limits  # twinstream's own, so both sides refuse the same


def make_app(backend: SyntheticBackend) -> Starlette:
    async def sse(request: Request) -> Response:
        try:
            prompt = limits.validate_prompt(request.query_params.get("prompt"), LIMITS)
            max_tokens = limits.validate_max_tokens(
                request.query_params.get("max_tokens"), LIMITS, from_query=True
            )
        except errors.ProtocolError as exc:
            return JSONResponse(
                {"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status
            )
        stream_id = new_stream_id()

        async def events() -> AsyncIterator[ServerSentEvent]:
            async for event in completion_events(backend, stream_id, prompt, max_tokens):
                yield ServerSentEvent(
                    data=dumps(event),
                    id=ids.format_event_id(stream_id, event["seq"]),
                )

        return EventSourceResponse(events(), ping=15, headers={"Cache-Control": "no-cache"})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/sse", sse), Route("/healthz", health)])


async def serve(host: str, port: int, backend: SyntheticBackend, loop: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(
        make_app(backend),
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=2048,
        timeout_graceful_shutdown=1,
        loop=loop,  # what uvicorn --loop says; the loop itself is run_on_loop's
    )
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if server.started:  # listening now
        print(f"sse-starlette serving on http://{host}:{sock.getsockname()[1]}/", flush=True)
    await serving


def main() -> None:
    args = build_parser(__doc__ or "").parse_args()
    backend = SyntheticBackend(
        tokens_per_second=args.tokens_per_second,
        first_token_latency=args.first_token_latency,
        fail_after_tokens=None,
    )
    run_on_loop(serve(args.host, args.port, backend, args.loop), args.loop)


if __name__ == "__main__":
    main()
