"""Push webhooks from GitHub, Gitea/Forgejo and GitLab: signature check and payload.

Owns: deciding whether a delivery is authentic (HMAC-SHA256 of the body with the shared
secret, compared in constant time: GitHub's and Gitea's ``X-Hub-Signature-256``, Gitea's
``X-Gitea-Signature``, GitLab's Standard-Webhooks ``webhook-signature``) and which branch
it pushed. Anything unsigned or wrongly signed is refused without saying why.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Delivery:
    """An authentic push: the ref it moved (None when the payload names none)."""

    ref: str | None


def _hex_ok(secret: bytes, body: bytes, given: str) -> bool:
    want = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, given.strip().lower())


def _standard_ok(secret: bytes, body: bytes, headers: Mapping[str, str]) -> bool:
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not stamp:
        return False
    key = secret
    text = secret.decode(errors="replace")
    if text.startswith("whsec_"):
        key = base64.b64decode(text[6:])
    want = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body,
                                     hashlib.sha256).digest()).decode()
    ok = False
    for part in headers.get("webhook-signature", "").split():
        version, _, sig = part.partition(",")
        ok |= version == "v1" and hmac.compare_digest(want, sig)
    return ok


def authentic(secret: bytes, body: bytes, headers: Mapping[str, str]) -> bool:
    """True when one of the supported signature headers matches ``body``."""
    h = {k.lower(): v for k, v in headers.items()}
    if not secret:
        return False
    sig = h.get("x-hub-signature-256", "")
    if sig.startswith("sha256="):
        return _hex_ok(secret, body, sig[7:])
    if "x-gitea-signature" in h:
        return _hex_ok(secret, body, h["x-gitea-signature"])
    if "webhook-signature" in h:
        return _standard_ok(secret, body, h)
    return False


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
