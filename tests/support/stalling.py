"""A raw-socket ``/sse`` server that sends the answer so far in one write, then stalls:
for the clients' interrupted-iteration tests."""

from __future__ import annotations

import json
import socket
import threading


class StallingSSEServer:
    """A raw-socket ``/sse`` server: the whole answer so far in ONE write (as
    a server that flushes in batches sends it), then silence; ``POST
    /cancel`` is answered 200 and recorded."""

    def __init__(self, deltas: list[str]) -> None:
        events = [{"type": "start", "stream": "s1", "seq": 0, "model": "raw"}]
        events += [
            {"type": "delta", "stream": "s1", "seq": n, "content": text}
            for n, text in enumerate(deltas, 1)
        ]
        self.batch = "".join(
            f"id: s1:{e['seq']}\ndata: {json.dumps(e)}\n\n" for e in events
        ).encode()
        self.cancels: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)
            request = b""
            while b"\r\n\r\n" not in request:
                piece = connection.recv(4096)
                if not piece:
                    break
                request += piece
            line = request.split(b"\r\n", 1)[0].decode()
            if line.startswith("POST /cancel"):
                self.cancels.append(line)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                connection.close()
            else:  # GET /sse: the batch, then nothing (the connection stays open)
                head = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Connection: close\r\n\r\n"
                )
                connection.sendall(head + self.batch)

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for connection in self.connections:
            connection.close()
