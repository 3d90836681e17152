"""``python -m server``: serve twinstream.

Every flag can also be set by the environment variable named in ``--help``;
a flag on the command line wins over the variable. The settings themselves
are declared once, in :mod:`server.config`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from tornado.netutil import bind_sockets

from .app import http_server_options, make_app
from .config import Settings, build_parser, settings_from_args
from .edge.redaction import install_log_redaction
from .edge.server import Edge, make_server
from .store.redis import StoreUnavailable, connect_check
from .workers import check_processes, drain, run_on_loop, serve_processes

__all__ = ["main", "serve"]


async def serve(
    settings: Settings,
    ready: Callable[[int], None] | None = None,
    reuse_port: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM, then drain (:func:`server.workers.drain`): stop
    accepting, let generations run up to ``--drain-timeout``, end every response
    and socket the way its protocol says, exit.
    ``reuse_port``: listen with SO_REUSEPORT beside other workers (``--processes``)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    log = logging.getLogger("twinstream")
    app = make_app(settings)
    store = app.settings["store"]

    def on_signal() -> None:
        if not stop.is_set():
            stop.set()
            log.info(
                "shutting down: live streams may finish for up to %gs (signal again to end now)",
                settings.drain_timeout,
            )
        else:
            log.info("ending the live streams now")
            store.hurry()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
        except (NotImplementedError, RuntimeError):  # not the main thread / platform
            pass
    if hasattr(store, "connect"):
        await store.connect()  # a shared store: StoreUnavailable if it cannot be reached
    server = make_server(app, http_server_options(settings))  # the edge (issue 10)
    sockets = bind_sockets(settings.port, settings.host, reuse_port=reuse_port)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    # What start-up made (modules, the app, its routes) lives as long as the
    # process: move it out of the cyclic collector's generations, so its full
    # passes walk only what connections and streams made.
    gc.freeze()
    log.info("backend=%s store=%s", settings.backend, settings.store)
    app.settings["edge"].log_summary()
    if ready is not None:
        ready(port)
    await stop.wait()
    server.stop()
    await drain(app, settings)  # generations finish or end with server_shutdown, delivered
    await server.close_all_connections()
    app.settings["metrics"].close()  # the log line of each stream still recorded


def main(argv: Sequence[str] | None = None) -> int:
    settings = settings_from_args(build_parser().parse_args(argv))
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_log_redaction()  # Tornado's own messages quote request lines
    try:  # keys (and their file) and host names: refused here, with a sentence
        Edge.from_settings(settings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    upstream = settings.openai_api_key or settings.openai_base_url
    if settings.backend == "openai" and not upstream:
        print(
            "error: --backend openai needs OPENAI_API_KEY (and OPENAI_BASE_URL for a "
            "non-OpenAI server)",
            file=sys.stderr,
        )
        return 2
    problem = check_processes(settings)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    def ready(port: int) -> None:
        # The ready line goes to stdout so scripts (benchmarks) can read the
        # port chosen for --port 0.
        print(f"twinstream serving on http://{settings.host}:{port}/", flush=True)

    try:
        if settings.store != "memory":
            asyncio.run(connect_check(settings.store))
        if settings.processes != 1:
            return serve_processes(settings, ready, serve)
        run_on_loop(serve(settings, ready=ready), settings.loop)
    except StoreUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"error: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
