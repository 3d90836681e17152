"""Reference WebSocket server: the ``websockets`` library, same wire contract as
twinstream's ``GET /ws`` for new streams (``start`` and ``cancel``; ``resume``
answers ``stream_not_found`` because nothing is kept).

Run: ``python -m benchmarks.peers.websockets_server --port 0``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from server.backends.synthetic import SyntheticBackend
from server.config import Settings
from server.wire import errors, events, messages
from server.workers import run_on_loop

from . import build_parser, completion_events, new_stream_id

LIMITS = Settings().limits  # twinstream's own, so both sides refuse the same


async def relay(
    websocket: ServerConnection,
    backend: SyntheticBackend,
    stream_id: str,
    request: messages.StartRequest,
) -> None:
    seq = 0
    with contextlib.suppress(ConnectionClosed):
        try:
            async for event in completion_events(
                backend, stream_id, request.prompt, request.max_tokens
            ):
                if event["type"] == "start" and request.ref is not None:
                    event = {**event, "ref": request.ref}
                seq = event["seq"]
                await websocket.send(events.dumps(event))
        except asyncio.CancelledError:  # a cancel message
            await websocket.send(events.dumps(events.done_event(stream_id, seq + 1, "cancelled")))


def _forget(relays: dict[str, asyncio.Task[None]], stream_id: str, _task: object) -> None:
    relays.pop(stream_id, None)


async def handle(websocket: ServerConnection, backend: SyntheticBackend) -> None:
    relays: dict[str, asyncio.Task[None]] = {}
    try:
        async for message in websocket:
            if isinstance(message, bytes):
                continue
            try:
                request = messages.parse_client_message(message, LIMITS)
            except errors.ProtocolError as exc:
                extra: dict[str, Any] = {"ref": exc.ref} if exc.ref is not None else {}
                error = events.error_event(None, None, exc.code, exc.message, **extra)
                await websocket.send(events.dumps(error))
                continue
            if isinstance(request, messages.StartRequest):
                stream_id = new_stream_id()
                relays[stream_id] = asyncio.create_task(
                    relay(websocket, backend, stream_id, request)
                )
                relays[stream_id].add_done_callback(functools.partial(_forget, relays, stream_id))
            elif isinstance(request, messages.CancelRequest) and request.stream in relays:
                relays[request.stream].cancel()
            else:
                await websocket.send(
                    json.dumps(
                        events.error_event(
                            request.stream, None, "stream_not_found", "this server keeps no streams"
                        )
                    )
                )
    except ConnectionClosed:
        pass
    finally:
        for task in list(relays.values()):
            task.cancel()


async def main_async(host: str, port: int, backend: SyntheticBackend) -> None:
    async def handler(websocket: ServerConnection) -> None:
        await handle(websocket, backend)

    # compression=None: like twinstream by default, no permessage-deflate.
    async with serve(
        handler, host, port, compression=None, max_size=LIMITS.max_prompt_bytes * 8, backlog=2048
    ) as server:
        bound_port = next(iter(server.sockets)).getsockname()[1]
        print(f"websockets serving on http://{host}:{bound_port}/", flush=True)
        await server.serve_forever()


def main() -> None:
    args = build_parser(__doc__ or "").parse_args()
    backend = SyntheticBackend(
        tokens_per_second=args.tokens_per_second,
        first_token_latency=args.first_token_latency,
        fail_after_tokens=None,
    )
    with contextlib.suppress(KeyboardInterrupt):
        run_on_loop(main_async(args.host, args.port, backend), args.loop)


if __name__ == "__main__":
    main()
