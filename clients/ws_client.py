"""The WebSocket client: ``GET /ws`` with ``websocket-client``; one socket
carries any number of streams, and a dropped socket is replaced and every
unfinished stream resumed on the new one."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import websocket

from .base import Stream
from .errors import (
    ClientError,
    ConnectionLost,
    Dropped,
    HTTPStatusError,
    MalformedData,
    ResumeFailed,
    ServerUnreachable,
    StreamError,
    Timeout,
)
from .net import base_url, connect_timeout_message, endpoint_url, unreachable_message
from .options import ClientSettings, Options
from .session import Decision, Reconnects, Verdict, gave_up, reconnecting_off

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["WebSocketClient", "WebSocketStream"]

#: a start message this large may be past the server's frame limit (twinstream's
#: default is 256 KiB); when the socket dies right after one, say so
LARGE_REQUEST = 64 * 1024


class WebSocketClient(ClientSettings):
    """One WebSocket connection, opened on first use, shared by its streams.

    Streams may be read one after another (a conversation) or interleaved
    from one thread; events for a stream not being read wait in its queue.
    Not for concurrent reading from several threads (``cancel`` is fine from
    any thread). When the socket drops, the next read opens a new one and
    sends ``resume`` for every unfinished stream (bounded attempts, backoff
    with jitter); a stream whose ``start`` had not arrived yet cannot be
    resumed and raises :class:`ConnectionLost`. Takes the connection
    options of :mod:`clients.options`.
    """

    transport = "ws"

    def __init__(self, url: str, **options: Unpack[Options]) -> None:
        super().__init__(url, **options)
        self.headers = [f"Authorization: Bearer {self.api_key}"] if self.api_key else []
        self.ws_url = endpoint_url(url, "/ws", websocket=True)
        self.connections = 0
        self._socket: websocket.WebSocket | None = None
        self._send_lock = threading.Lock()
        self._next_ref = 0
        self._unbound: dict[str, WebSocketStream] = {}  # ref -> stream awaiting its start
        self._bound: dict[str, WebSocketStream] = {}  # stream id -> unfinished stream
        self._reconnects = Reconnects(self.reconnect)  # one count for the socket
        self._closed = False

    def stream(
        self,
        prompt: str | None = None,
        max_tokens: int | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        **params: Any,
    ) -> WebSocketStream:
        """A new stream for a ``prompt`` or a conversation (``messages``), with
        any Chat Completions parameters (``temperature=``, ``stop=``...);
        ``start`` is sent (connecting if needed) when reading begins."""
        if self._closed:
            raise ConnectionLost("this client was closed")
        self._next_ref += 1
        return WebSocketStream(
            self, prompt, max_tokens, f"c{self._next_ref}", messages=messages, **params
        )

    def _start(self, stream: WebSocketStream) -> None:
        fields = stream.shorthand() or stream.request
        message: dict[str, Any] = {"type": "start", **fields, "ref": stream.ref}
        try:
            self._ensure_connected()
            self._unbound[stream.ref] = stream
            self._send(message)
        except Dropped as exc:
            self._unbound.pop(stream.ref, None)
            self._drop_socket()
            raise ConnectionLost(f"could not start the stream: {exc}") from None

    def close(self) -> None:
        """Close the socket; no stream on it reconnects after this. Unfinished
        streams are left to the server, which cancels them once nobody reads
        them for its idle timeout."""
        self._closed = True
        self._drop_socket()

    def __enter__(self) -> WebSocketClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def reconnect_now(self) -> None:
        """Drop the socket on purpose; the next read reconnects and resumes."""
        self._drop_socket()

    # -- socket ----------------------------------------------------------------------------

    def _ensure_connected(self) -> websocket.WebSocket:
        if self._socket is not None:
            return self._socket
        try:
            ws = websocket.create_connection(
                self.ws_url,
                timeout=self.connect_timeout,
                enable_multithread=True,
                suppress_origin=True,  # not a browser page
                header=self.headers,
            )
        except websocket.WebSocketBadStatusException as exc:
            raise _status_error(exc) from None
        except (websocket.WebSocketTimeoutException, socket.timeout, TimeoutError):
            scheme, netloc, _ = base_url(self.url)
            message = f"no WebSocket handshake with {self.ws_url} within {self.connect_timeout:g} s"
            if scheme == "https":
                message = connect_timeout_message(scheme, netloc, self.connect_timeout)
            raise Timeout(message, "connect", self.connect_timeout) from None
        except websocket.WebSocketConnectionClosedException:
            raise Dropped("the server closed the connection during the handshake") from None
        except websocket.WebSocketException as exc:
            raise MalformedData(f"{self.ws_url} is not a WebSocket endpoint: {exc}") from None
        except ConnectionError as exc:
            if isinstance(exc, (ConnectionRefusedError, ConnectionAbortedError)):
                raise ServerUnreachable(
                    unreachable_message("ws", base_url(self.url)[1], exc)
                ) from None
            raise Dropped(f"the connection broke during the handshake: {exc}") from None
        except OSError as exc:
            raise ServerUnreachable(unreachable_message("ws", base_url(self.url)[1], exc)) from None
        ws.settimeout(self.read_timeout)
        self._socket = ws
        self.connections += 1
        return ws

    def _drop_socket(self) -> None:
        ws, self._socket = self._socket, None
        if ws is None:
            return
        try:
            if ws.sock is not None:
                ws.sock.shutdown(socket.SHUT_RDWR)  # wakes a reader in another thread
        except OSError:
            pass
        ws.close(timeout=0)

    def _send(self, message: dict[str, Any]) -> None:
        ws = self._socket
        if ws is None:
            raise Dropped("not connected")
        try:
            with self._send_lock:
                ws.send(json.dumps(message))
        except (websocket.WebSocketException, OSError) as exc:
            raise Dropped(f"send failed: {exc}") from None

    def _cancel(self, stream: WebSocketStream) -> None:
        """Send ``cancel`` (again on every resume: a cancel lost with the
        socket is not known to have arrived)."""
        if stream.stream_id is None or stream.ended:
            return  # sent once the start arrives (see _route)
        try:
            self._send({"type": "cancel", "stream": stream.stream_id})
        except Dropped:
            pass  # the resume after reconnecting sends it again

    # -- receiving -----------------------------------------------------------------------------

    def _pump(self, reader: WebSocketStream) -> None:
        """Receive one message and queue it for its stream; reconnect on a drop."""
        try:
            ws = self._socket
            if ws is None:
                raise Dropped("the connection was closed")
            try:
                opcode, payload = ws.recv_data()
            except (websocket.WebSocketTimeoutException, socket.timeout, TimeoutError):
                raise Timeout(
                    f"no message from the server for {self.read_timeout:g} s",
                    "read",
                    self.read_timeout,
                ) from None
            except (websocket.WebSocketException, OSError, AttributeError) as exc:
                # AttributeError: websocket-client after the socket was closed elsewhere
                raise Dropped(f"the connection broke: {exc!r:.80}") from None
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                if code == 1009:  # RFC 6455 7.4.1: message too big; resending would not help
                    self._drop_socket()
                    raise ConnectionLost(
                        "the server closed the WebSocket (1009, message too big): the request "
                        "is larger than the server accepts; shorten the prompt or conversation"
                    )
                raise Dropped("the server closed the WebSocket")
            if opcode != websocket.ABNF.OPCODE_TEXT:
                raise MalformedData("the server sent a binary message; events are JSON text")
            self._route(payload, reader)
        except (Dropped, Timeout) as exc:
            self._recover(exc, reader)

    def _route(self, payload: bytes, reader: WebSocketStream) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            raise MalformedData(f"message is not JSON: {payload[:80]!r}") from None
        if not isinstance(event, dict):
            raise MalformedData(f"message is not a JSON object: {payload[:80]!r}")
        stream_id, ref = event.get("stream"), event.get("ref")
        target: WebSocketStream | None = None
        if isinstance(stream_id, str) and stream_id in self._bound:
            target = self._bound[stream_id]
        elif isinstance(ref, str) and ref in self._unbound:
            target = self._unbound.pop(ref)
            if isinstance(stream_id, str) and event.get("type") == "start":
                self._bound[stream_id] = target
                target.session.bind(stream_id)
                if target.cancelled:
                    self._cancel(target)
        elif stream_id is None and event.get("type") == "error":
            raise StreamError(event)  # about a message of ours with no ref: nothing to route to
        if target is None:
            return  # a stream nobody here follows any more
        target.stats.bytes_received += len(payload)
        target.queue.append(event)
        self._reconnects.delivered()

    def _recover(self, exc: ClientError, reader: WebSocketStream) -> None:
        """Replace the socket and resume every unfinished stream on the new
        one, or set ``reader.failure`` (the reader raises it)."""
        self._drop_socket()
        self._fail_unstarted(exc)
        if reader.failure is not None or reader.cancelled and reader.stream_id is None:
            return
        if self._closed:
            reader.failure = reconnecting_off(exc)
            return
        while True:
            # the reader has its id (the streams without one failed above)
            decision = self._reconnects.decide(exc, resumable=True)
            if decision.verdict is not Verdict.RETRY:
                reader.failure = _recover_failure(decision, exc)
                return
            time.sleep(decision.delay)
            for stream in self._bound.values():
                stream.stats.reconnects += 1
            try:
                self._ensure_connected()
                self._resume_all()
                return
            except ClientError as retry_exc:
                self._drop_socket()
                exc = retry_exc

    def _fail_unstarted(self, exc: ClientError) -> None:
        """Streams whose ``start`` had not arrived have no id to resume by."""
        lost = list(self._unbound.values())
        self._unbound.clear()
        for stream in lost:
            size = len(json.dumps(stream.request))
            note = (
                f" (the request was {size} bytes: the server may refuse messages that large; "
                "shorten the prompt or conversation)"
                if size > LARGE_REQUEST
                else ""
            )
            stream.failure = ConnectionLost(
                f"{exc} before the stream started; nothing to resume{note}"
            )

    def _resume_all(self) -> None:
        """``resume`` after each stream's last event, and ``cancel`` again for
        the cancelled ones."""
        for stream in list(self._bound.values()):
            stream.resumed = True
            self._send({"type": "resume", "stream": stream.stream_id, "after": stream.last_seq})
            if stream.cancelled:
                self._send({"type": "cancel", "stream": stream.stream_id})

    def _finished(self, stream: WebSocketStream) -> None:
        if stream.stream_id is not None:
            self._bound.pop(stream.stream_id, None)
        self._unbound.pop(stream.ref, None)


def _recover_failure(decision: Decision, exc: ClientError) -> ClientError:
    """What the reader raises when the socket cannot be replaced."""
    if decision.verdict is Verdict.RECONNECTING_OFF:
        return reconnecting_off(exc)
    if decision.verdict is Verdict.GAVE_UP:
        return gave_up(exc, decision.attempts)
    failure = ResumeFailed(f"cannot reconnect: {exc}", decision.attempts)  # refused
    failure.__cause__ = exc
    return failure


def _status_error(exc: websocket.WebSocketBadStatusException) -> ClientError:
    status = int(getattr(exc, "status_code", 0) or 0)
    body: bytes = getattr(exc, "resp_body", None) or b""
    if status < 400:
        return MalformedData(f"the server did not switch to WebSocket (HTTP {status})")
    try:
        error = json.loads(body)["error"]
        return HTTPStatusError(status, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        text = body.decode("utf-8", "replace").strip()
        return HTTPStatusError(status, None, text.splitlines()[0][:200] if text else "")


class WebSocketStream(Stream):
    """One stream on a :class:`WebSocketClient`'s socket.

    :meth:`cancel` sends ``cancel``; the server then ends the stream with
    ``done`` (``finish_reason`` ``cancelled``), which iteration yields.
    """

    transport = "ws"

    def __init__(
        self,
        client: WebSocketClient,
        prompt: str | None,
        max_tokens: int | None,
        ref: str,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(prompt, max_tokens, messages=messages, **params)
        self.client = client
        self.ref = ref
        self.failure: ClientError | None = None
        self.resumed = False
        self.owns_client = False

    def cancel(self) -> None:
        """Send ``cancel`` now if the stream has its id, else as soon as its
        ``start`` arrives; it is sent again after a reconnect. Safe from
        another thread."""
        self.session.ask_cancel()
        self.client._cancel(self)

    def reconnect(self) -> None:
        """Drops the client's socket: every stream on it resumes."""
        self.client.reconnect_now()

    def _raw_events(self) -> Iterator[dict[str, Any]]:
        self.client._start(self)
        while True:
            for event in self._queued():
                if self.resumed and _not_found(event):
                    self.session.end()
                    raise ResumeFailed(
                        "the server no longer knows this stream; it cannot be resumed", 1
                    ) from StreamError(event)
                yield event
                if self.ended:
                    return
            if self.failure is not None:
                failure, self.failure = self.failure, None
                if self.cancelled:
                    return
                raise failure
            if self.cancelled and self.stream_id is None and self.ref not in self.client._unbound:
                return
            self.client._pump(self)

    def _close_transport(self) -> None:
        self.client._finished(self)
        if self.owns_client:
            self.client.close()


def _not_found(event: dict[str, Any]) -> bool:
    """The server's answer to a ``resume`` for a stream it no longer has."""
    return (
        event.get("type") == "error"
        and event.get("seq") is None
        and event.get("code") == "stream_not_found"
    )
