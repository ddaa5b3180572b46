"""Client-side rate limiting of API requests (client-go's QPS and burst).

Owns: a token bucket per cluster connection: ``burst`` requests at once, refilled at
``qps`` per second; a request waits for a token rather than failing. ``qps`` 0 turns it
off. The API server's own priority and fairness still applies on top.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """``take()`` returns once the request may go (thread-safe)."""

    qps: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _tokens: float = field(init=False)
    _at: float = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.burst = max(1, self.burst)
        self._tokens, self._at = float(self.burst), self.clock()

    def take(self) -> float:
        """Take a token, waiting for one if needed; returns the seconds waited."""
        if self.qps <= 0:
            return 0.0
        with self._lock:  # reserve a token now (possibly negative: a queue), wait outside
            now = self.clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.qps)
            self._at = now
            self._tokens -= 1.0
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait > 0:
            self.sleep(wait)
        return wait
