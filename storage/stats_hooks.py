"""Hooks through which the durability path reports what it measured (node/ turns it into metrics).

storage/ must not import prometheus or node/, so the group committer and the segment writer
call a :class:`CommitObserver`; the default does nothing. Calls come from the event loop
(batch sizes) and from worker threads (fsyncs), so implementations must be thread-safe,
cheap, and must not raise.
"""

from __future__ import annotations

from typing import Protocol


class CommitObserver(Protocol):
    def fsynced(self, seconds: float) -> None:
        """One fsync of segment data (a group commit's, or a full segment's at rotation)."""

    def committed(self, mutations: int) -> None:
        """A group commit made ``mutations`` mutations durable in one transaction."""


class NoCommitObserver:
    def fsynced(self, seconds: float) -> None:
        pass

    def committed(self, mutations: int) -> None:
        pass


NO_COMMIT_OBSERVER: CommitObserver = NoCommitObserver()
