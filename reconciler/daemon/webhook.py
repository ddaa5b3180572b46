"""Push webhooks from GitHub, Gitea/Forgejo and GitLab: signature check and payload.

Owns: deciding whether a delivery is authentic (HMAC-SHA256 of the body with the shared
secret, compared in constant time: GitHub's and Gitea's ``X-Hub-Signature-256``, Gitea's
``X-Gitea-Signature``, GitLab's Standard-Webhooks ``webhook-signature``), whether it is
fresh (a Standard-Webhooks timestamp within ``TOLERANCE`` of now, a delivery id not seen
within that window) and which branch it pushed. Anything unsigned, wrongly signed, stale,
replayed or malformed (non-ASCII headers included) is refused without saying why.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

MAX_BODY = 1 << 20
#: How far a Standard-Webhooks timestamp may be from now, and how long delivery ids are
#: remembered for replay detection (seconds).
TOLERANCE = 300.0
#: The replay cache remembers at most this many delivery ids (oldest forgotten first).
REPLAY_CAPACITY = 10_000


@dataclass(frozen=True)
class Delivery:
    """An authentic push: the ref it moved (None when the payload names none)."""

    ref: str | None


def _raw(text: str) -> bytes:
    """Header text as the bytes that came over the wire (headers are decoded as latin-1;
    anything else is kept byte for byte), so comparisons never raise on odd input."""
    return text.encode("utf-8", "surrogateescape")


def _hex_ok(secret: bytes, body: bytes, given: str) -> bool:
    want = hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(want, _raw(given.strip().lower()))


def _standard_key(secret: bytes) -> bytes:
    if secret.startswith(b"whsec_"):
        try:
            return base64.b64decode(secret[6:], validate=True)
        except (binascii.Error, ValueError):
            return secret
    return secret


def _fresh(stamp: str, now: float) -> bool:
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        return False
    return abs(int(stamp) - now) <= TOLERANCE


def _standard_ok(secret: bytes, body: bytes, headers: Mapping[str, str], now: float) -> bool:
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not stamp or not _fresh(stamp, now):
        return False
    signed = _raw(msg_id) + b"." + _raw(stamp) + b"." + body
    want = base64.b64encode(hmac.new(_standard_key(secret), signed, hashlib.sha256).digest())
    ok = False
    for part in headers.get("webhook-signature", "").split():
        version, _, sig = part.partition(",")
        ok |= hmac.compare_digest(want, _raw(sig)) and version == "v1"
    return ok


def authentic(secret: bytes, body: bytes, headers: Mapping[str, str],
              now: float | None = None) -> bool:
    """True when one of the supported signature headers matches ``body`` (and, for
    Standard Webhooks, the signed timestamp is within ``TOLERANCE`` of ``now``)."""
    h = {k.lower(): v for k, v in headers.items()}
    if not secret:
        return False
    sig = h.get("x-hub-signature-256", "")
    if sig.startswith("sha256="):
        return _hex_ok(secret, body, sig[7:])
    if "x-gitea-signature" in h:
        return _hex_ok(secret, body, h["x-gitea-signature"])
    if "webhook-signature" in h:
        return _standard_ok(secret, body, h, time.time() if now is None else now)
    return False


def delivery_id(headers: Mapping[str, str]) -> str | None:
    """The sender's unique id of a delivery (Standard Webhooks' ``webhook-id``, GitHub's
    and Gitea's delivery GUIDs), namespaced by header; None when it sends none."""
    h = {k.lower(): v for k, v in headers.items()}
    for name in ("webhook-id", "x-github-delivery", "x-gitea-delivery"):
        if h.get(name):
            return f"{name}:{h[name]}"
    return None


class ReplayCache:
    """Delivery ids seen within the last ``window`` seconds, at most ``capacity`` of them.

    Only authentic deliveries are recorded, so an outsider cannot flush it; a sender
    that exceeds ``capacity`` deliveries per window loses replay protection for the
    oldest of them (never a refusal of a fresh one).
    """

    def __init__(self, window: float = TOLERANCE, capacity: int = REPLAY_CAPACITY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._window, self._capacity, self._clock = window, capacity, clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def first_time(self, key: str) -> bool:
        """Record ``key``; False when it was already seen within the window."""
        now = self._clock()
        with self._lock:
            while self._seen:
                oldest, at = next(iter(self._seen.items()))
                if now - at <= self._window and len(self._seen) < self._capacity:
                    break
                del self._seen[oldest]
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


def accept(secret: bytes, body: bytes, headers: Mapping[str, str], replay: ReplayCache,
           now: float | None = None) -> str:
    """Decide a delivery: ``"ok"``, ``"unauthorized"`` (unsigned, wrongly signed, stale
    or malformed) or ``"replayed"`` (an authentic delivery id seen within the window)."""
    try:
        if not authentic(secret, body, headers, now):
            return "unauthorized"
    except (TypeError, ValueError, UnicodeError):
        return "unauthorized"
    key = delivery_id(headers)
    if key is not None and not replay.first_time(key):
        return "replayed"
    return "ok"


def parse(body: bytes) -> Delivery:
    """The pushed ref of a push payload (tolerant of pings and other events)."""
    try:
        doc = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return Delivery(None)
    ref = doc.get("ref") if isinstance(doc, dict) else None
    return Delivery(ref if isinstance(ref, str) else None)


def concerns(delivery: Delivery, branch: str) -> bool:
    """Whether the delivery moved ``branch`` (pings and unnamed refs count: fetch anyway)."""
    return delivery.ref is None or delivery.ref in (branch, f"refs/heads/{branch}")
