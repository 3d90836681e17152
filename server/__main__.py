"""``python -m server``: serve twinstream.

Every flag can also be set by the environment variable named in ``--help``;
a flag on the command line wins over the variable. The settings themselves
are declared once, in :mod:`server.config`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from .access import AccessPolicy, KeyFileError
from .app import http_server_options, make_app
from .config import Settings, build_parser, settings_from_args
from .edge_server import install_log_redaction, make_server

__all__ = ["main", "serve"]


async def serve(settings: Settings, ready: Callable[[int], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM, then cancel live streams and stop."""
    app = make_app(settings)
    server = make_server(app, http_server_options(settings))  # the edge (issue 10)
    server.listen(settings.port, settings.host)
    port = next(iter(server._sockets.values())).getsockname()[1]
    logging.getLogger("twinstream").info("backend=%s store=%s", settings.backend, settings.store)
    app.settings["edge"].log_summary()
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
    await app.settings["watch"].wait_idle(timeout=5)  # ...which the relays deliver
    await server.close_all_connections()
    app.settings["metrics"].close()  # the log line of each stream still recorded


def main(argv: Sequence[str] | None = None) -> int:
    settings = settings_from_args(build_parser().parse_args(argv))
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_log_redaction()  # Tornado's own messages quote request lines
    try:
        AccessPolicy.from_settings(settings.api_key, settings.api_keys_file, settings.token_ttl)
    except KeyFileError as exc:
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
    try:
        # The ready line goes to stdout so scripts (benchmarks) can read the
        # port chosen for --port 0.
        asyncio.run(
            serve(
                settings,
                ready=lambda port: print(
                    f"twinstream serving on http://{settings.host}:{port}/", flush=True
                ),
            )
        )
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
