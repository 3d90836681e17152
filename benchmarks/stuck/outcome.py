"""What happened to one stuck reader, and its results' JSON shape."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..clients import expected_text
from .plan import STUCK_MAX_TOKENS

__all__ = ["StuckOutcome", "account"]


@dataclass
class StuckOutcome:
    """What happened to one stuck reader."""

    transport: str
    started_at: float = 0.0
    disconnected_at: float | None = None
    how: str | None = None  # how the client saw the end: close code, response end, reset
    sent_messages: int = 0
    send_blocked: int = 0
    max_kernel_queue: int = 0
    queue_samples: list[tuple[float, int]] = field(default_factory=list)
    bytes_drained: int = 0
    close_code: int | None = None
    close_reason: str | None = None
    streams_seen: int = 0  # streams whose start event reached the reader
    refused: int = 0  # start messages answered with an error (e.g. too_many_streams)
    resumed: int = 0
    complete_before_cut: int = 0  # streams the reader had whole, so not resumed
    resume_failures: list[str] = field(default_factory=list)
    events_lost: int = 0
    events_duplicated: int = 0
    text_mismatches: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The outcome as the results record it."""
        seconds = (
            round(self.disconnected_at - self.started_at, 3)
            if self.disconnected_at is not None
            else None
        )
        # when the kernel's buffer for this reader was (nearly) full: from then on only
        # the server's own bounds can act
        full_at = next(
            (at for at, queue in self.queue_samples if queue >= 0.9 * self.max_kernel_queue),
            None,
        )
        after_full = (
            round(self.disconnected_at - full_at, 3)
            if full_at is not None and self.disconnected_at is not None and self.max_kernel_queue
            else None
        )
        return {
            "transport": self.transport,
            "disconnected": self.disconnected_at is not None,
            "seconds_to_disconnect": seconds,
            "seconds_to_kernel_full": (
                round(full_at - self.started_at, 3) if full_at is not None else None
            ),
            "seconds_after_kernel_full": after_full,
            "how": self.how,
            "close_code": self.close_code,
            "close_reason": self.close_reason,
            "sent_messages": self.sent_messages,
            "send_blocked": self.send_blocked,
            "max_server_kernel_queue_kib": round(self.max_kernel_queue / 1024, 1),
            "bytes_drained": self.bytes_drained,
            "streams_seen": self.streams_seen,
            "refused": self.refused,
            "resumed": self.resumed,
            "complete_before_cut": self.complete_before_cut,
            "resume_failures": self.resume_failures[:3],
            "events_lost": self.events_lost,
            "events_duplicated": self.events_duplicated,
            "text_mismatches": self.text_mismatches,
            "error": self.error,
        }


def account(outcome: StuckOutcome, seqs: Sequence[int], text: str, prompt: str) -> None:
    """Add one stream's losses (seqs never received) and duplicates to ``outcome``."""
    last = max(seqs) if seqs else -1
    outcome.events_lost += len(set(range(last + 1)) - set(seqs))
    outcome.events_duplicated += len(seqs) - len(set(seqs))
    if text != expected_text(prompt, STUCK_MAX_TOKENS):
        outcome.text_mismatches += 1
