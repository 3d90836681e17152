"""The Server-Sent Events client: ``GET /sse`` over the standard library's
``http.client``, resumed with ``Last-Event-ID`` when the connection drops."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .base import Stream
from .errors import (
    ClientError,
    ConnectionLost,
    Dropped,
    HTTPStatusError,
    MalformedData,
    ResumeFailed,
    ServerUnreachable,
    Timeout,
    WrongContentType,
)
from .net import base_url, connect_timeout_message, unreachable_message
from .options import ClientSettings, Options
from .session import Reconnects, Verdict, gave_up, reconnecting_off
from .sse import SSEDecoder

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["SSEClient", "SSEStream"]

READ_SIZE = 64 * 1024
MAX_LINE = 1024 * 1024  # an event stream line longer than this is not ours
MAX_ERROR_BODY = 64 * 1024
#: longest prompt sent in the URL; longer ones go by POST /streams (the server
#: limits the request head, and percent-encoding can triple a prompt's size)
SHORTHAND_LIMIT = 2048


class SSEClient(ClientSettings):
    """Opens :class:`SSEStream` s on one server. Each stream is its own HTTP
    request; the client holds only settings, so it is cheap and thread-safe.
    Takes the connection options of :mod:`clients.options`."""

    transport = "sse"

    def __init__(self, url: str, **options: Unpack[Options]) -> None:
        super().__init__(url, **options)
        # Sent as a header, never in the URL (URLs end up in logs).
        self.auth = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def stream(
        self,
        prompt: str | None = None,
        max_tokens: int | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        **params: Any,
    ) -> SSEStream:
        """One completion: a ``prompt``, or a conversation (``messages``), with
        any Chat Completions parameters (``temperature=``, ``stop=``, ``seed=``,
        ``tools=``...). A lone short prompt goes in the URL (``GET
        /sse?prompt=``); anything more is sent with ``POST /streams`` first."""
        return SSEStream(self, prompt, max_tokens, messages=messages, **params)

    def close(self) -> None:
        """Nothing to release: streams close their own connections."""

    def __enter__(self) -> SSEClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SSEStream(Stream):
    """One ``GET /sse`` stream.

    On a drop (EOF, reset, read timeout) after the ``start`` event it
    reconnects with ``Last-Event-ID: S:seq``, waiting the server's ``retry``
    hint (doubled per failed attempt, with jitter); a ``204`` answer means
    nothing is left, a ``404`` that the stream expired (:class:`ResumeFailed`).
    A drop before ``start`` raises at once, since nothing could be resumed.

    :meth:`cancel` asks the server with ``POST /cancel?stream=S``; the server
    ends the stream with ``done`` (``finish_reason`` ``cancelled``), which
    iteration yields, as over WebSocket. If the server cannot be asked (an
    older server, or unreachable), the request is closed instead and
    iteration ends without ``done``; the server then stops generating only
    after its idle timeout.
    """

    transport = "sse"

    def __init__(
        self,
        client: SSEClient,
        prompt: str | None = None,
        max_tokens: int | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(prompt, max_tokens, messages=messages, **params)
        self.client = client
        self._created: str | None = None  # the id POST /streams answered
        self.server_retry_ms: int | None = None
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._reconnects = Reconnects(client.reconnect)

    # -- control -------------------------------------------------------------------------

    def cancel(self) -> None:
        """Ask the server to stop; without a stream id yet, the request goes
        out as soon as the ``start`` event arrives. Safe from another thread."""
        self.session.ask_cancel()
        self._send_cancel()

    def _send_cancel(self) -> None:
        """``POST /cancel`` once, when due; if the server cannot be asked,
        close the request instead: reading then stops without ``done``."""
        with self._lock:
            if not self.session.claim_cancel():
                return
        if not self._post_cancel():
            self.session.cancel_undelivered()
            self._close_transport()

    def _post_cancel(self) -> bool:
        """``POST /cancel?stream=S``; True if the server took it."""
        client = self.client
        scheme, netloc, prefix = base_url(client.url)
        connection_class = (
            http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(netloc, timeout=client.connect_timeout)
        path = f"{prefix}/cancel?{urlencode({'stream': self.stream_id})}"
        try:
            connection.request(
                "POST", path, body=b"", headers={"Content-Length": "0", **client.auth}
            )
            response = connection.getresponse()
            response.read(MAX_ERROR_BODY)
            return response.status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def reconnect(self) -> None:
        self._close_transport()

    def _close_transport(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is None:
            return
        sock = connection.sock
        if sock is not None:
            try:  # shutdown wakes a read blocked in another thread; close alone may not
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        connection.close()

    # -- reading -------------------------------------------------------------------------

    def _raw_events(self) -> Iterator[dict[str, Any]]:
        while not self.session.abandoned:
            try:
                yield from self._connection_events()
                return
            except (Dropped, Timeout, ServerUnreachable, HTTPStatusError) as exc:
                if self.session.abandoned:
                    return
                self._wait_to_resume(exc)
            finally:
                if self.ended or self.session.abandoned:
                    self._close_transport()

    def _connection_events(self) -> Iterator[dict[str, Any]]:
        """The events of one request: the first, or a resume after
        ``last_seq`` once the stream has an id."""
        seen = self.last_seq
        response = self._open(resuming=self.session.resumable)
        if response is None:  # 204: the server has no more events for this stream
            if not self.ended:
                raise ResumeFailed(
                    "the server has no more events for this stream, "
                    "but its last event never arrived",
                    self._reconnects.failures,
                )
            return
        for event in self._read(response):
            yield event
            self._send_cancel()  # if due: cancel() may have come before start
            if self.last_seq > seen:
                self._reconnects.delivered()
            if self.ended or self.session.abandoned:
                return
        raise Dropped("the server closed the connection before the stream ended")

    def _wait_to_resume(self, exc: ClientError) -> None:
        """Sleep before the next attempt, or raise what ends the stream."""
        retry = None if self.server_retry_ms is None else self.server_retry_ms / 1000
        decision = self._reconnects.decide(
            exc, resumable=self.session.resumable, server_retry=retry
        )
        verdict = decision.verdict
        if verdict is Verdict.RETRY:
            self._close_transport()
            time.sleep(decision.delay)
            self.stats.reconnects += 1
            return
        if verdict is Verdict.NOTHING_TO_RESUME and isinstance(exc, Dropped):
            raise ConnectionLost(f"{exc} (no event arrived, so none to resume)") from None
        if verdict is Verdict.REFUSED:
            raise ResumeFailed(f"cannot resume the stream: {exc}", decision.attempts) from exc
        if verdict is Verdict.RECONNECTING_OFF:
            raise reconnecting_off(exc)
        if verdict is Verdict.GAVE_UP:
            raise gave_up(exc, decision.attempts)
        raise exc

    def _open(self, resuming: bool) -> http.client.HTTPResponse | None:
        """Connect and send the request; return the 200 response (None for 204)."""
        client = self.client
        scheme, netloc, prefix = base_url(client.url)
        connection_class = (
            http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(netloc, timeout=client.connect_timeout)
        with self._lock:
            self._connection = connection
        try:
            connection.connect()
        except (socket.timeout, TimeoutError):
            raise Timeout(
                connect_timeout_message(scheme, netloc, client.connect_timeout),
                "connect",
                client.connect_timeout,
            ) from None
        except OSError as exc:
            raise ServerUnreachable(unreachable_message(scheme, netloc, exc)) from None
        if self.session.abandoned:
            raise Dropped("cancelled")
        assert connection.sock is not None
        connection.sock.settimeout(client.read_timeout)
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", **client.auth}
        query: dict[str, Any] = {}
        if resuming:
            headers["Last-Event-ID"] = f"{self.stream_id}:{self.last_seq}"
        elif self._created is None and self._shorthand() is not None:
            query = self._shorthand() or {}
        else:
            if self._created is None:
                self._created = self._post_stream(connection, prefix or "", netloc)
            query["stream"] = self._created
        path = (prefix or "") + "/sse" + ("?" + urlencode(query) if query else "")
        response = self._exchange(connection, netloc, "GET", path, headers)
        if response.status == 204:
            return None
        if response.status != 200:
            raise self._status_error(response)
        content_type = response.getheader("Content-Type", "") or ""
        if content_type.split(";")[0].strip().lower() != "text/event-stream":
            raise WrongContentType(content_type)
        return response

    def _shorthand(self) -> dict[str, Any] | None:
        """``GET /sse``'s query for a lone, short prompt; None if the request
        needs ``POST /streams`` (a conversation, parameters, or a prompt too
        long for a URL: servers limit the request head)."""
        short = self.shorthand()
        if short is None or len(short["prompt"]) > SHORTHAND_LIMIT:
            return None
        return short

    def _post_stream(self, connection: http.client.HTTPConnection, prefix: str, netloc: str) -> str:
        """``POST /streams`` with the whole request; the new stream's id."""
        body = json.dumps(self.request).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            **self.client.auth,
        }
        response = self._exchange(connection, netloc, "POST", prefix + "/streams", headers, body)
        if response.status != 201:
            raise self._status_error(response)
        try:
            stream_id = json.loads(response.read(MAX_ERROR_BODY))["stream"]
        except (ValueError, KeyError, TypeError, OSError, http.client.HTTPException):
            raise MalformedData(f"{netloc} answered POST /streams without a stream id") from None
        if not isinstance(stream_id, str):
            raise MalformedData(f"{netloc} answered POST /streams without a stream id")
        return stream_id

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        netloc: str,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None = None,
    ) -> http.client.HTTPResponse:
        """Send one request on ``connection``; its response (status not checked)."""
        client = self.client
        try:
            connection.request(method, path, body=body, headers=headers)
            return connection.getresponse()
        except (socket.timeout, TimeoutError):
            raise Timeout(
                f"{netloc} accepted the connection but sent no answer within "
                f"{client.read_timeout:g} s",
                "read",
                client.read_timeout,
            ) from None
        except (ConnectionError, http.client.IncompleteRead) as exc:
            # RemoteDisconnected is a ConnectionResetError: closed without answering
            raise Dropped(f"the connection closed before an answer: {exc}") from None
        except http.client.HTTPException as exc:
            raise MalformedData(f"{netloc} did not answer with valid HTTP ({exc!r:.80})") from None
        except OSError as exc:
            raise Dropped(f"the connection failed: {exc}") from None

    def _status_error(self, response: http.client.HTTPResponse) -> HTTPStatusError:
        try:
            body = response.read(MAX_ERROR_BODY)
        except (OSError, http.client.HTTPException):
            body = b""
        code: str | None = None
        detail = ""
        try:
            error = json.loads(body)["error"]
            code, detail = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            detail = body.decode("utf-8", "replace").strip().splitlines()[0][:200] if body else ""
            detail = detail or (response.reason or "")
        return HTTPStatusError(response.status, code, detail)

    def _read(self, response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
        decoder = SSEDecoder()
        timeout = self.client.read_timeout
        while True:
            try:
                chunk = response.read1(READ_SIZE)
            except (socket.timeout, TimeoutError):
                raise Timeout(
                    f"no data from the server for {timeout:g} s", "read", timeout
                ) from None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                # ValueError: read on a response closed by cancel() in another thread
                raise Dropped(f"the connection broke: {exc!r:.80}") from None
            if not chunk:
                if decoder.incomplete:
                    raise Dropped("the server closed the connection in the middle of an event")
                return
            self.stats.bytes_received += len(chunk)
            events = decoder.feed(chunk)
            if decoder.retry is not None:
                self.server_retry_ms = decoder.retry
            # one read often brings several events: they wait in self.queue, not in
            # this frame, so an interruption while they are handed out loses none
            malformed: MalformedData | None = None
            for sse_event in events:
                if sse_event.event != "message":
                    continue  # not part of our contract; a newer server's extra
                try:
                    event = json.loads(sse_event.data)
                except ValueError:
                    malformed = MalformedData(f"event data is not JSON: {sse_event.data[:80]!r}")
                    break
                if not isinstance(event, dict):
                    malformed = MalformedData(
                        f"event data is not a JSON object: {sse_event.data[:80]!r}"
                    )
                    break
                self.queue.append(event)
            yield from self._queued()
            if malformed is not None:
                raise malformed
            if decoder.pending_line_length > MAX_LINE:
                raise MalformedData(
                    f"a line longer than {MAX_LINE} characters: not an event stream"
                )
