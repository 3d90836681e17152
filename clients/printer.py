"""The CLI's output: one stream's events on stdout, as text or JSON lines,
with Ctrl-C held back while an event is being written (so whether it was
printed is known) and the events already received printed before exiting."""

from __future__ import annotations

import json
import signal
import threading
from types import FrameType
from typing import TextIO

from .base import Stream
from .errors import ClientError, StreamError

__all__ = ["Printer"]


class Printer:
    """Writes one stream's events to stdout, as text or JSON lines."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json
        self._last_seq = -1  # of the last event printed
        self._printing = False  # writing an event and recording that it was
        self._interrupted = False  # Ctrl-C came while _printing

    def run(self, stream: Stream) -> None:
        """Print the stream to its end. A ``StreamError``'s event is printed
        too (as JSON) before the error propagates; text ends with a newline.
        On Ctrl-C, the events already received are printed before the
        ``KeyboardInterrupt`` propagates."""
        self._last_seq = -1
        self._interrupted = False
        holding = self._hold_back_ctrl_c()
        try:
            try:
                for event in stream:
                    self._show(event)
            except KeyboardInterrupt:
                try:
                    for event in stream.drain():
                        self._show(event)
                except StreamError as exc:
                    if self.as_json:
                        self._json_line(exc.event)
                except ClientError:
                    pass  # the stream broke just before Ctrl-C, which is what ends it
                raise
        except StreamError as exc:
            if self.as_json:
                self._json_line(exc.event)
            raise
        finally:
            if holding:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            if not self.as_json and stream.stats.tokens:
                self.out.write("\n")
                self.out.flush()

    def _hold_back_ctrl_c(self) -> bool:
        """Hold back Ctrl-C while an event is being written, so that whether
        it was printed is known (Python may raise ``KeyboardInterrupt`` just
        after a write that went out, or in one that did not). A second
        Ctrl-C is not held back. Only from the main thread, and only if
        Ctrl-C has Python's default handler."""
        if threading.current_thread() is not threading.main_thread():
            return False
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return False
        signal.signal(signal.SIGINT, self._on_ctrl_c)
        return True

    def _on_ctrl_c(self, signum: int, frame: FrameType | None) -> None:
        if self._printing and not self._interrupted:
            self._interrupted = True  # raised as soon as this event is out
            return
        raise KeyboardInterrupt

    def _show(self, event: dict[str, object]) -> None:
        seq = event["seq"]
        assert isinstance(seq, int)
        if seq <= self._last_seq:
            return  # drain() hands back the event Ctrl-C interrupted, if it was printed
        self._printing = True
        try:
            if self.as_json:
                self.out.write(_json(event) + "\n")
            elif event["type"] == "delta":
                self.out.write(str(event["content"]))
            self.out.flush()
            self._last_seq = seq
        finally:
            self._printing = False
        if self._interrupted:
            self._interrupted = False
            raise KeyboardInterrupt

    def _json_line(self, event: dict[str, object]) -> None:
        self.out.write(_json(event) + "\n")
        self.out.flush()


def _json(event: dict[str, object]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))
