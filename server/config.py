"""Every setting, declared once: its default, its flag, its environment variable
and its help text live together in :class:`Settings` (the model is Tornado's
``options.define``). ``python -m server --help`` and the environment are both
derived from these declarations, so nothing here is repeated elsewhere.

A field ``foo_bar`` is the flag ``--foo-bar`` and the variable
``TWINSTREAM_FOO_BAR`` unless its :class:`Spec` says otherwise. Booleans get
``--foo``/``--no-foo``; tuples take a comma-separated list and may repeat.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config_values import (
    boolean,
    comma_list,
    non_negative,
    port,
    positive_int,
    size,
    store_url,
    url_path,
)
from .wire import limits

__all__ = ["Settings", "Spec", "build_parser", "settings_from_args", "env_name", "ENV_PREFIX"]

ENV_PREFIX = "TWINSTREAM_"


@dataclass(frozen=True)
class Spec:
    """How one setting is exposed. ``env`` overrides the variable's name;
    ``flag=False`` makes it environment-only, a string names the flag;
    ``secret`` hides the value from ``--help`` (which says only whether it is set)."""

    help: str
    parse: Callable[[str], Any] = str
    choices: tuple[str, ...] = ()
    env: str | None = None
    flag: bool | str = True
    secret: bool = False
    metavar: str | None = None


def setting(default: Any, help: str, parse: Callable[[str], Any] = str, **spec: Any) -> Any:
    """A dataclass field carrying its :class:`Spec`."""
    return field(default=default, metadata={"spec": Spec(help, parse, **spec)})


@dataclass
class Settings:
    """Everything the server can be told. Construct it directly in code and
    tests (``Settings(tokens_per_second=0)``); ``python -m server`` builds it
    from flags and ``TWINSTREAM_*`` variables."""

    # where it listens
    host: str = setting("127.0.0.1", "interface to listen on")
    port: int = setting(8888, "TCP port to listen on; 0 picks a free one", port)
    # where tokens come from
    backend: str = setting(
        "synthetic",
        "where tokens come from: 'synthetic' (embedded deterministic model, no key) or "
        "'openai' (any OpenAI-compatible API; uses OPENAI_API_KEY and OPENAI_BASE_URL)",
        choices=("synthetic", "openai"),
    )
    model: str | None = setting(
        None, "model name (openai default: gpt-4o-mini; synthetic default: twinstream-synthetic)"
    )
    tokens_per_second: float = setting(
        30.0, "synthetic model pacing; 0 = as fast as possible", non_negative(float)
    )
    first_token_latency: float = setting(
        0.25,
        "synthetic model: seconds before the first token (ignored when pacing is 0)",
        non_negative(float),
    )
    fail_after_tokens: int | None = setting(
        None,
        "synthetic model: fail every stream after N tokens (to exercise clients' error paths)",
        non_negative(int),
    )
    openai_api_key: str | None = setting(
        None, "key for --backend openai", env="OPENAI_API_KEY", flag=False, secret=True
    )
    openai_base_url: str | None = setting(
        None,
        "base URL of an OpenAI-compatible API for --backend openai",
        env="OPENAI_BASE_URL",
        flag=False,
    )
    openai_max_retries: int = setting(
        2, "retries of a failed upstream request before a stream errors", non_negative(int)
    )
    # streams
    store: str = setting(
        "memory",
        "where streams are kept: 'memory' (this process), redis://HOST:PORT/DB or "
        "redis-cluster://HOST:PORT[,HOST:PORT...] (shared by processes and machines; needed "
        "for --processes other than 1)",
        store_url,
        metavar="memory|redis://HOST:PORT/DB|redis-cluster://HOST:PORT,...",
    )
    processes: int = setting(
        1,
        "worker processes serving one port; 0 = one per CPU core (needs a redis store)",
        non_negative(int),
    )
    # the event loop (issue 25): uvloop is libuv's loop for asyncio (the uvloop package)
    loop: str = setting(
        "asyncio", "event loop each process runs: asyncio or uvloop", choices=("asyncio", "uvloop")
    )
    drain_timeout: float = setting(
        30.0,
        "on SIGTERM or SIGINT, seconds this process's generations may go on before they end "
        "with error server_shutdown (a second signal ends them at once); with a shared store "
        "its readers are sent elsewhere at once, with the memory store they read on to the end",
        non_negative(float),
    )
    retention: float = setting(
        300.0, "seconds an ended stream stays resumable", non_negative(float)
    )
    redis_wait_ms: int = setting(
        0,
        "with a Redis store: show each batch of events to readers only once a replica holds "
        "it (WAIT 1 <ms> per batch, on the batch's node): a failover then loses nothing any "
        "reader saw, at the cost of a replication round trip per batch; 0 = off (events are "
        "shown once the master holds them)",
        non_negative(int),
    )
    redis_batch_ms: float = setting(
        3.0,
        "with a Redis store: at most one batch of appends every this many milliseconds "
        "(what is appended meanwhile joins the next batch): fewer round trips, and less CPU "
        "per event, most on a cluster (a call per master per batch), for at most this much "
        "more delivery delay under load; an append after a quiet spell is sent at once; "
        "0 = each batch as soon as the last one is answered",
        non_negative(float),
    )
    idle_timeout: float = setting(
        60.0, "seconds a stream may go unread before it is cancelled", non_negative(float)
    )
    max_streams: int = setting(
        10_000,
        "most streams generating at once; more get too_many_streams (HTTP 503)",
        positive_int,
    )
    max_streams_per_socket: int = setting(
        100, "most streams one WebSocket may have generating at once", positive_int
    )
    max_retained_streams: int = setting(
        100_000,
        "most streams kept (live and ended); past it the oldest ended ones are forgotten",
        positive_int,
    )
    max_retained_bytes: int = setting(
        256 << 20,
        "most event bytes kept in all streams; past it the oldest ended streams are "
        "forgotten (K, M, G suffixes)",
        size,
    )
    # connections
    heartbeat: float = setting(
        15.0,
        "seconds between SSE comment heartbeats while a stream is idle; 0 = none",
        non_negative(float),
    )
    retry_ms: int = setting(
        1000, "reconnect delay hint sent to SSE clients (the 'retry:' field)", non_negative(int)
    )
    ws_ping_interval: float = setting(
        20.0, "seconds between WebSocket keepalive pings; 0 = none", non_negative(float)
    )
    ws_compression: bool = setting(
        False, "offer permessage-deflate on /ws to clients that ask for it", boolean
    )
    sse_compression: bool = setting(
        False,
        "gzip /sse and /v1 streams for clients that send Accept-Encoding: gzip, "
        "flushed after every write so no event waits for the next",
        boolean,
    )
    max_pending_bytes: int = setting(
        1 << 20,
        "most bytes a connection may have written but not yet taken by the kernel; a reader "
        "past it is disconnected as a slow consumer (K, M, G suffixes)",
        size,
    )
    write_timeout: float = setting(
        10.0,
        "seconds a connection may make no write progress before it is disconnected as a "
        "slow consumer; 0 = never",
        non_negative(float),
    )
    allowed_origins: tuple[str, ...] = setting(
        (),
        "origins besides the server's own whose pages may use it: /ws, and the HTTP "
        "endpoints through CORS, which is off without them (comma-separated; '*' = any)",
        comma_list,
        flag="--allowed-origin",
        metavar="ORIGIN",
    )
    debug_drop: bool = setting(
        False,
        "serve POST /debug/drop?stream=S, which cuts that stream's connections so clients "
        "can show recovery (the demo's Drop connection)",
        boolean,
        flag="--debug",
        env="TWINSTREAM_DEBUG",
    )
    max_prompt_bytes: int = setting(
        32 * 1024, "longest prompt accepted, in UTF-8 bytes", non_negative(int)
    )
    # access and the edge (server/edge/access.py, server/edge/policy.py, server/edge/server.py)
    api_key: str | None = setting(
        None,
        "API key required by every endpoint but /, /healthz, /static: 'Authorization: "
        "Bearer KEY' or ?access_token=T from POST /auth/token; prefer the variable",
        secret=True,
    )
    api_keys_file: str | None = setting(
        None, "a file of API keys, one a line ('#' comments), accepted as --api-key is"
    )
    token_ttl: float = setting(
        600.0, "seconds a token from POST /auth/token stays valid", non_negative(float)
    )
    allowed_hosts: tuple[str, ...] = setting(
        (),
        "host names clients may use in the Host header besides the listening address and "
        "localhost (comma-separated; '*' = any, which gives up DNS-rebinding protection)",
        comma_list,
        flag="--allowed-host",
        metavar="HOST",
    )
    trusted_proxies: tuple[str, ...] = setting(
        (),
        "addresses of reverse proxies whose X-Forwarded-For/-Proto and X-Real-IP are "
        "believed (comma-separated); nobody else's are",
        comma_list,
        flag="--trusted-proxy",
        metavar="ADDRESS",
    )
    max_body_bytes: int = setting(
        0,
        "largest request body, refused from Content-Length before it is read "
        "(K, M, G suffixes); 0 = 8 x --max-prompt-bytes",
        size,
    )
    idle_connection_timeout: float = setting(
        30.0,
        "seconds a connection may take to send a request's headers, or stay idle between "
        "requests (slowloris); 0 = no limit",
        non_negative(float),
    )
    body_timeout: float = setting(
        30.0,
        "seconds a client may take to send a request body; 0 = no limit",
        non_negative(float),
    )
    max_connections: int = setting(
        0,
        "most open connections; at the cap the one idle longest is closed, or the newcomer "
        "gets 503; 0 = the open-file limit less 64",
        non_negative(int),
    )
    streams_per_minute: float = setting(
        600.0,
        "streams one client address may start per minute (bursts up to that many); more get "
        "429 with Retry-After; 0 = no limit",
        non_negative(float),
    )
    public_metrics: bool = setting(
        False, "serve GET /metrics without the API key (it needs one when keys are set)", boolean
    )
    log_level: str = setting("info", "logging level", choices=("debug", "info", "warning", "error"))
    # the AI SDK's chat transports (server/handlers/ui_chat.py, issue 23)
    chat_path: str = setting(
        "/api/chat",
        "where the AI SDK's chat transports are served: POST PATH (DefaultChatTransport), "
        "GET PATH/{chatId}/stream (its resume), POST PATH/{chatId}/stop, GET PATH upgraded "
        "(WebSocketChatTransport)",
        url_path,
    )
    chat_resume_grace: float = setting(
        5.0,
        "seconds after its last token an ended chat answer is still replayed to a resume "
        "(a client cut just before the end gets the end); later resumes get 204 / no-active",
        non_negative(float),
    )
    # the Responses API (server/core/responses_state.py, server/handlers/responses.py)
    response_generation_ttl: float = setting(
        3600.0,
        "seconds a response's record outlives --retention while its stream still generates "
        "(once it ends, the record lives --retention)",
        non_negative(float),
    )
    response_cancel_wait: float = setting(
        5.0,
        "seconds POST /v1/responses/{id}/cancel waits for the response to end before answering",
        non_negative(float),
    )

    @property
    def limits(self) -> limits.Limits:
        return limits.Limits(
            max_prompt_bytes=self.max_prompt_bytes, max_body_bytes=self.max_body_bytes
        )


def env_name(item: dataclasses.Field[Any]) -> str:
    spec: Spec = item.metadata["spec"]
    return spec.env or ENV_PREFIX + item.name.upper()


def _from_env(item: dataclasses.Field[Any], environ: Mapping[str, str]) -> Any:
    spec: Spec = item.metadata["spec"]
    name = env_name(item)
    raw = environ.get(name)
    if raw is None or raw == "":
        return item.default
    try:
        value = spec.parse(raw)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        shown = "(hidden)" if spec.secret else repr(raw)
        raise SystemExit(
            f"error: environment variable {name}={shown} is not valid: {exc}"
        ) from None
    if spec.choices and value not in spec.choices:
        raise SystemExit(
            f"error: environment variable {name}={raw!r} must be one of " + ", ".join(spec.choices)
        )
    return value


def _shown_default(spec: Spec, value: Any) -> str:
    if spec.secret:
        return "set" if value else "not set"
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    return "none" if value is None else str(value)


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The command line, with each default taken from the environment."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description=(
            "Stream one LLM chat completion over Server-Sent Events (GET /sse), "
            "WebSocket (GET /ws) and an OpenAI-compatible API (POST /v1/chat/completions). "
            "Open http://HOST:PORT/ for the browser demo. Every flag can also be set by the "
            "environment variable named in brackets; the flag wins."
        ),
    )
    env_only: list[str] = []
    for item in dataclasses.fields(Settings):
        spec: Spec = item.metadata["spec"]
        value = _from_env(item, environ)
        shown = _shown_default(spec, value)
        if not spec.flag:
            env_only.append(f"{env_name(item)}: {spec.help} (now {shown})")
            parser.set_defaults(**{item.name: value})
            continue
        flag = spec.flag if isinstance(spec.flag, str) else "--" + item.name.replace("_", "-")
        text = f"{spec.help} (default: {shown}) [env {env_name(item)}]"
        if isinstance(item.default, bool):
            parser.add_argument(
                flag,
                dest=item.name,
                default=value,
                action=argparse.BooleanOptionalAction,
                help=text,
            )
        elif isinstance(item.default, tuple):
            parser.add_argument(
                flag,
                dest=item.name,
                default=list(value),
                type=spec.parse,
                action="extend",
                metavar=spec.metavar,
                help=text,
            )
        else:
            parser.add_argument(
                flag,
                dest=item.name,
                default=value,
                type=spec.parse,
                choices=spec.choices or None,
                metavar=spec.metavar,
                help=text,
            )
    parser.epilog = "Environment only: " + "; ".join(env_only)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    values: dict[str, Any] = {}
    for item in dataclasses.fields(Settings):
        value = getattr(args, item.name)
        if isinstance(item.default, tuple):
            # ``extend`` collects lists of tuples from repeated flags
            flat: list[str] = []
            for part in value:
                flat.extend(part if isinstance(part, tuple) else (part,))
            value = tuple(flat)
        values[item.name] = value
    return Settings(**values)


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    return settings_from_args(build_parser().parse_args(argv))
