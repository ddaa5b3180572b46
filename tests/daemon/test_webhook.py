"""Webhook signatures: every supported header, and every way of getting it wrong
(non-ASCII headers, stale Standard-Webhooks timestamps and replayed delivery ids too)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from reconciler.daemon import webhook

SECRET = b"s3cret-webhook-key"
NOW = 1700000000.0
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
    assert webhook.authentic(SECRET, BODY, headers, now=NOW) is ok


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


def _std_headers(msg_id: str, ts: int) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": _std(SECRET, BODY, msg_id, str(ts))}


@pytest.mark.parametrize(("skew", "ok"), [(0, True), (-299, True), (299, True),
                                          (-301, False), (301, False), (-86400, False)])
def test_standard_webhooks_timestamp_tolerance(skew: int, ok: bool) -> None:
    """A correctly signed Standard-Webhooks delivery is only fresh within ±5 minutes."""
    headers = _std_headers("msg_t", int(NOW) + skew)
    assert webhook.authentic(SECRET, BODY, headers, now=NOW) is ok


FULLWIDTH = "\uff11\uff17" + "\uff10" * 8  # 1700000000 in full-width digits


@pytest.mark.parametrize("stamp", ["", "-1", "1e9", FULLWIDTH, "9" * 40, "17000000.0"])
def test_standard_webhooks_malformed_timestamp(stamp: str) -> None:
    headers = {"webhook-id": "m", "webhook-timestamp": stamp,
               "webhook-signature": _std(SECRET, BODY, "m", stamp)}
    assert webhook.authentic(SECRET, BODY, headers, now=NOW) is False


def test_standard_webhooks_whsec_secret() -> None:
    key = b"0123456789abcdef0123456789abcdef"
    secret = b"whsec_" + base64.b64encode(key)
    headers = {"webhook-id": "m", "webhook-timestamp": str(int(NOW)),
               "webhook-signature": _std(key, BODY, "m", str(int(NOW)))}
    assert webhook.authentic(secret, BODY, headers, now=NOW)


NON_ASCII = [
    {"X-Hub-Signature-256": "sha256=" + "é" * 64},
    {"X-Hub-Signature-256": "sha256=" + _hex(SECRET, BODY)[:-1] + "\u00ff"},
    {"X-Gitea-Signature": "ß" * 64},
    {"webhook-id": "mé", "webhook-timestamp": str(int(NOW)), "webhook-signature": "v1,ÿÿÿÿ"},
    {"webhook-id": "m", "webhook-timestamp": str(int(NOW)),
     "webhook-signature": "v1," + "\udcff" * 44},
]


@pytest.mark.parametrize("headers", NON_ASCII)
def test_non_ascii_signature_headers_are_refused_not_raised(headers: dict[str, str]) -> None:
    """Headers arrive decoded as latin-1: comparing them used to raise TypeError."""
    assert webhook.authentic(SECRET, BODY, headers, now=NOW) is False
    assert webhook.accept(SECRET, BODY, headers, webhook.ReplayCache(), now=NOW) == (
        "unauthorized")


def test_replayed_standard_webhook_is_refused() -> None:
    cache = webhook.ReplayCache()
    headers = _std_headers("msg_replay", int(NOW))
    assert webhook.accept(SECRET, BODY, headers, cache, now=NOW) == "ok"
    assert webhook.accept(SECRET, BODY, headers, cache, now=NOW + 10) == "replayed"
    assert webhook.accept(SECRET, BODY, _std_headers("msg_other", int(NOW)), cache,
                          now=NOW) == "ok"


def test_replayed_github_delivery_is_refused() -> None:
    cache = webhook.ReplayCache()
    headers = {"X-Hub-Signature-256": "sha256=" + _hex(SECRET, BODY),
               "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    assert webhook.accept(SECRET, BODY, headers, cache) == "ok"
    assert webhook.accept(SECRET, BODY, headers, cache) == "replayed"
    # without a delivery id there is nothing to remember
    bare = {"X-Hub-Signature-256": "sha256=" + _hex(SECRET, BODY)}
    assert webhook.accept(SECRET, BODY, bare, cache) == "ok"
    assert webhook.accept(SECRET, BODY, bare, cache) == "ok"


def test_forged_deliveries_do_not_enter_the_replay_cache() -> None:
    cache = webhook.ReplayCache()
    forged = {"X-Hub-Signature-256": "sha256=" + "0" * 64, "X-GitHub-Delivery": "d1"}
    assert webhook.accept(SECRET, BODY, forged, cache) == "unauthorized"
    assert len(cache) == 0
    real = {"X-Hub-Signature-256": "sha256=" + _hex(SECRET, BODY), "X-GitHub-Delivery": "d1"}
    assert webhook.accept(SECRET, BODY, real, cache) == "ok"


def test_replay_cache_is_bounded_in_time_and_size() -> None:
    clock = [0.0]
    cache = webhook.ReplayCache(window=300, capacity=100, clock=lambda: clock[0])
    assert cache.first_time("a")
    assert not cache.first_time("a")
    clock[0] = 301.0
    assert cache.first_time("a")  # the window has passed: remembered afresh
    for i in range(1000):
        assert cache.first_time(f"id-{i}")
    assert len(cache) <= 100
    assert not cache.first_time("id-999")
