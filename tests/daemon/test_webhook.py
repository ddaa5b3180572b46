"""Webhook signatures: every supported header, and every way of getting it wrong."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from reconciler.daemon import webhook

SECRET = b"s3cret-webhook-key"
BODY = b'{"ref": "refs/heads/main", "after": "abc"}'


def _hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def _std(secret: bytes, body: bytes, msg_id: str = "msg_1", ts: str = "1700000000") -> str:
    mac = hmac.new(secret, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


CASES = [
    ("github", {"X-Hub-Signature-256": "sha256=" + _hex(SECRET, BODY)}, True),
    ("github upper-case hex", {"X-Hub-Signature-256": "sha256=" + _hex(SECRET, BODY).upper()},
     True),
    ("gitea", {"X-Gitea-Signature": _hex(SECRET, BODY)}, True),
    ("gitlab standard webhooks", {"webhook-id": "msg_1", "webhook-timestamp": "1700000000",
                                  "webhook-signature": "v1,bogus " + _std(SECRET, BODY)}, True),
    ("no signature", {}, False),
    ("wrong secret", {"X-Hub-Signature-256": "sha256=" + _hex(b"other", BODY)}, False),
    ("other body", {"X-Hub-Signature-256": "sha256=" + _hex(SECRET, BODY + b" ")}, False),
    ("sha1 only", {"X-Hub-Signature": "sha1=" + hmac.new(SECRET, BODY, "sha1").hexdigest()},
     False),
    ("empty sha256", {"X-Hub-Signature-256": "sha256="}, False),
    ("gitlab plain token", {"X-Gitlab-Token": SECRET.decode()}, False),
    ("standard webhooks without id", {"webhook-timestamp": "1",
                                      "webhook-signature": _std(SECRET, BODY)}, False),
]


@pytest.mark.parametrize(("name", "headers", "ok"), CASES, ids=[c[0] for c in CASES])
def test_signatures(name: str, headers: dict[str, str], ok: bool) -> None:
    assert webhook.authentic(SECRET, BODY, headers) is ok


def test_no_secret_configured_refuses_everything() -> None:
    assert not webhook.authentic(b"", BODY, {"X-Hub-Signature-256": "sha256=" + _hex(b"", BODY)})


@pytest.mark.parametrize(("body", "branch", "concerns"), [
    (b'{"ref": "refs/heads/main"}', "main", True),
    (b'{"ref": "refs/heads/dev"}', "main", False),
    (b'{"zen": "ping"}', "main", True),
    (b"not json", "main", True),
])
def test_which_branch(body: bytes, branch: str, concerns: bool) -> None:
    assert webhook.concerns(webhook.parse(body), branch) is concerns
