"""The Kubernetes client's token bucket (QPS and burst) on a fake clock."""

from __future__ import annotations

from reconciler.adapters.kubernetes.ratelimit import TokenBucket


class Clock:
    """A clock that moves only when slept on (records the sleeps)."""

    def __init__(self) -> None:
        self.now, self.slept = 100.0, list[float]()

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(round(s, 6))
        self.now += s


def test_burst_then_qps() -> None:
    clock = Clock()
    bucket = TokenBucket(10.0, 3, clock=clock, sleep=clock.sleep)
    waits = [bucket.take() for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]  # the burst goes at once
    assert [round(w, 6) for w in waits[3:]] == [0.1, 0.1]  # then one per 1/qps


def test_tokens_refill_up_to_the_burst_only() -> None:
    clock = Clock()
    bucket = TokenBucket(10.0, 2, clock=clock, sleep=clock.sleep)
    bucket.take(), bucket.take()
    clock.now += 60  # a long idle time refills two tokens, not 600
    assert [bucket.take(), bucket.take()] == [0.0, 0.0]
    assert round(bucket.take(), 6) == 0.1


def test_zero_qps_is_unlimited() -> None:
    clock = Clock()
    bucket = TokenBucket(0.0, 1, clock=clock, sleep=clock.sleep)
    assert [bucket.take() for _ in range(1000)] == [0.0] * 1000
    assert clock.slept == []
