"""The project's own error tree for I/O: every adapter raises only these."""

from __future__ import annotations


class AdapterError(Exception):
    """Base class of every error an adapter raises."""


class TemporaryError(AdapterError):
    """May succeed if retried later (connection refused, 429, 5xx, conflict, held lock)."""

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(AdapterError):
    """Will fail again until something changes (invalid input, forbidden, bad credentials)."""
