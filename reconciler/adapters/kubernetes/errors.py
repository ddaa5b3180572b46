"""Translating HTTP statuses and transport failures into the adapter error tree.

Temporary (retried with a delay): connection refused / reset / timeouts, 429 (honouring
Retry-After), 5xx, 409 conflicts. Permanent: 400, 401, 403, 404, 422, a 500 that names a
mistyped apply patch, and anything else; always with the API server's own message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from reconciler.adapters.errors import PermanentError, TemporaryError

#: 500 answers that are really invalid input: a typed server-side apply patch whose
#: field types do not match the schema.
_INVALID_500 = ("failed to create typed patch object",)


class NotFound(PermanentError):
    """The object (or its namespace, or its kind) does not exist."""


class Forbidden(PermanentError):
    """The credentials may not do this (HTTP 403)."""


def api_message(body: bytes) -> str:
    """The ``message`` of a Status body, else the body text (shortened)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")[:500]
    if isinstance(doc, dict) and doc.get("message"):
        return str(doc["message"])
    return body.decode(errors="replace")[:500]


def _retry_after(headers: Mapping[str, str], default: float) -> float:
    try:
        return max(0.1, float(headers.get("Retry-After", default)))
    except ValueError:
        return default


def from_status(status: int, body: bytes, headers: Mapping[str, str], what: str) -> Exception:
    """The error for a failed response (status ≥ 400)."""
    msg = f"{what}: HTTP {status}: {api_message(body)}"
    if status == 429:
        return TemporaryError(msg, _retry_after(headers, 1.0))
    if status == 500 and any(m in msg for m in _INVALID_500):
        return PermanentError(msg)  # the API server reports some invalid input as 500
    if status >= 500:
        return TemporaryError(msg, _retry_after(headers, 5.0))
    if status == 409:
        return TemporaryError(msg, 1.0)
    if status == 404:
        return NotFound(msg)
    if status == 403:
        return Forbidden(msg)
    return PermanentError(msg)


def from_transport(exc: BaseException, what: str) -> TemporaryError:
    """The error for a request that never got an HTTP answer."""
    return TemporaryError(f"{what}: {type(exc).__name__}: {exc}", 2.0)
