"""``python -m server``: serve twinstream.

Every flag can also be set by the environment variable named in ``--help``;
a flag on the command line wins over the variable.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import protocol
from .app import Settings, http_server_options, make_app

_ENV_PREFIX = "TWINSTREAM_"


def _env(name: str, default: Any, convert: Callable[[str], Any] = str) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return convert(raw)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise SystemExit(
            f"error: environment variable {name}={raw!r} is not valid: {exc}"
        ) from None


def _non_negative(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def check(text: str) -> Any:
        value = convert(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return value

    check.__name__ = convert.__name__
    return check


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _port(text: str) -> int:
    value = _whole_number(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 0..65535, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description=(
            "Stream one LLM chat completion over Server-Sent Events (GET /sse), "
            "WebSocket (GET /ws) and an OpenAI-compatible API (POST /v1/chat/completions). "
            "Open http://HOST:PORT/ for the browser demo."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    def add(
        flag: str, env: str, default: Any, convert: Callable[[str], Any], help: str, **kw: Any
    ) -> None:
        value = _env(env, default, convert)
        if "choices" in kw and value not in kw["choices"]:
            # argparse checks choices on the command line only, not on defaults.
            raise SystemExit(
                f"error: environment variable {env}={value!r} must be one of "
                + ", ".join(kw["choices"])
            )
        parser.add_argument(
            flag,
            default=value,
            type=convert,
            help=f"{help} [env {env}]",
            **kw,
        )

    p = _ENV_PREFIX
    add("--host", p + "HOST", "127.0.0.1", str, "interface to listen on")
    add("--port", p + "PORT", 8888, _port, "TCP port to listen on; 0 picks a free one")
    add(
        "--backend",
        p + "BACKEND",
        "synthetic",
        str,
        "where tokens come from: 'synthetic' (embedded deterministic model, no key) or "
        "'openai' (any OpenAI-compatible API; uses OPENAI_API_KEY and OPENAI_BASE_URL)",
        choices=("synthetic", "openai"),
    )
    add(
        "--model",
        p + "MODEL",
        None,
        str,
        "model name (openai default: gpt-4o-mini; synthetic default: twinstream-synthetic)",
    )
    add(
        "--tokens-per-second",
        p + "TOKENS_PER_SECOND",
        30.0,
        _non_negative(float),
        "synthetic model pacing; 0 = as fast as possible",
    )
    add(
        "--first-token-latency",
        p + "FIRST_TOKEN_LATENCY",
        0.25,
        _non_negative(float),
        "synthetic model: seconds before the first token (ignored when pacing is 0)",
    )
    add(
        "--fail-after-tokens",
        p + "FAIL_AFTER_TOKENS",
        None,
        _non_negative(int),
        "synthetic model: fail every stream after N tokens (to exercise clients' error paths)",
    )
    add("--store", p + "STORE", "memory", str, "where streams are kept", choices=("memory",))
    add(
        "--retention",
        p + "RETENTION",
        300.0,
        _non_negative(float),
        "seconds an ended stream stays resumable",
    )
    add(
        "--idle-timeout",
        p + "IDLE_TIMEOUT",
        60.0,
        _non_negative(float),
        "seconds a stream may go unread before it is cancelled",
    )
    add(
        "--heartbeat",
        p + "HEARTBEAT",
        15.0,
        _non_negative(float),
        "seconds between SSE comment heartbeats while a stream is idle; 0 = none",
    )
    add(
        "--retry-ms",
        p + "RETRY_MS",
        1000,
        _non_negative(int),
        "reconnect delay hint sent to SSE clients (the 'retry:' field)",
    )
    add(
        "--ws-ping-interval",
        p + "WS_PING_INTERVAL",
        20.0,
        _non_negative(float),
        "seconds between WebSocket keepalive pings; 0 = none",
    )
    parser.add_argument(
        "--ws-compression",
        action=argparse.BooleanOptionalAction,
        default=_env(p + "WS_COMPRESSION", False, lambda s: s.lower() in ("1", "true", "yes")),
        help=f"offer permessage-deflate on /ws to clients that ask for it [env {p}WS_COMPRESSION]",
    )
    parser.add_argument(
        "--debug-drop",
        action=argparse.BooleanOptionalAction,
        default=_env(p + "DEBUG_DROP", True, lambda s: s.lower() in ("1", "true", "yes")),
        help="serve POST /debug/drop?stream=S, which cuts that stream's connections so "
        f"clients can show recovery (the demo's Drop connection) [env {p}DEBUG_DROP]",
    )
    add(
        "--max-streams",
        p + "MAX_STREAMS",
        10_000,
        _positive_int,
        "most streams generating at once; more get too_many_streams (HTTP 503)",
    )
    add(
        "--max-streams-per-socket",
        p + "MAX_STREAMS_PER_SOCKET",
        100,
        _positive_int,
        "most streams one WebSocket may have generating at once",
    )
    add(
        "--allowed-origin",
        p + "ALLOWED_ORIGINS",
        [],
        lambda s: s.split(","),
        "extra origins allowed to open /ws (comma-separated; '*' = any); same-origin always is",
        action="extend",
    )
    add(
        "--max-prompt-bytes",
        p + "MAX_PROMPT_BYTES",
        32 * 1024,
        _non_negative(int),
        "longest prompt accepted, in UTF-8 bytes",
    )
    add("--api-key", p + "API_KEY", None, str, "if set, /v1 requires 'Authorization: Bearer KEY'")
    add(
        "--log-level",
        p + "LOG_LEVEL",
        "info",
        str,
        "logging level",
        choices=("debug", "info", "warning", "error"),
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    origins = tuple(o.strip() for o in args.allowed_origin if o.strip())
    return Settings(
        host=args.host,
        port=args.port,
        backend=args.backend,
        model=args.model,
        tokens_per_second=args.tokens_per_second,
        first_token_latency=args.first_token_latency,
        fail_after_tokens=args.fail_after_tokens,
        openai_api_key=os.environ.get("OPENAI_API_KEY"),
        openai_base_url=os.environ.get("OPENAI_BASE_URL") or None,
        store=args.store,
        retention=args.retention,
        idle_timeout=args.idle_timeout,
        heartbeat=args.heartbeat,
        retry_ms=args.retry_ms,
        ws_ping_interval=args.ws_ping_interval,
        ws_compression=args.ws_compression,
        debug_drop=args.debug_drop,
        max_streams=args.max_streams,
        max_streams_per_socket=args.max_streams_per_socket,
        allowed_origins=origins,
        api_key=args.api_key,
        limits=protocol.Limits(max_prompt_bytes=args.max_prompt_bytes),
    )


async def serve(settings: Settings, ready: Callable[[int], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM, then cancel live streams and stop."""
    app = make_app(settings)
    server = app.listen(settings.port, settings.host, **http_server_options(settings))
    port = next(iter(server._sockets.values())).getsockname()[1]
    logging.getLogger("twinstream").info("backend=%s store=%s", settings.backend, settings.store)
    if ready is not None:
        ready(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread / platform
            pass
    await stop.wait()
    server.stop()
    await app.settings["store"].close()  # every live stream ends with done/cancelled...
    await app.settings["connections"].wait_idle(timeout=5)  # ...which the relays deliver
    await server.close_all_connections()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if (
        args.backend == "openai"
        and not os.environ.get("OPENAI_API_KEY")
        and not os.environ.get("OPENAI_BASE_URL")
    ):
        print(
            "error: --backend openai needs OPENAI_API_KEY (and OPENAI_BASE_URL for a "
            "non-OpenAI server)",
            file=sys.stderr,
        )
        return 2
    try:
        # The ready line goes to stdout so scripts (benchmarks) can read the
        # port chosen for --port 0.
        asyncio.run(
            serve(
                settings_from_args(args),
                ready=lambda port: print(
                    f"twinstream serving on http://{args.host}:{port}/", flush=True
                ),
            )
        )
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
