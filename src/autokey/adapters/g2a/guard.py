"""What guards every G2A call, buying and selling alike, outside the retry loop: a client-side
rate limit (`limits`, moving window) and a circuit breaker (`purgatory`) that opens after
repeated 5xx or timeouts, so a G2A outage costs one fast refusal instead of retries piling up.
Both packages stay behind this seam (ADR 0024)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from autokey.domain.model.errors import UpstreamError, UpstreamRateLimited, UpstreamUnavailable

T = TypeVar("T")
UPSTREAM = "g2a"
CIRCUIT = "g2a"


@attrs.frozen(kw_only=True)
class GuardPolicy:
    rate: str = "10/second"
    """G2A's limits are not published; a `limits` rate string (ADR 0024)."""
    max_wait_s: float = 5.0
    """How long a call may wait for a slot before it is refused as rate limited."""
    failure_threshold: int = 5
    """Consecutive failed calls (5xx or timeouts after retries) that open the circuit."""
    open_s: float = 30.0
    """How long the circuit stays open before one trial call (half-open)."""


def _not_an_outage(error: BaseException) -> bool:
    return isinstance(error, UpstreamError) and not isinstance(error, UpstreamUnavailable)


class CallGuard:
    def __init__(self, policy: GuardPolicy) -> None:
        self._policy = policy
        self._rate: RateLimitItem = parse(policy.rate)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        # Only outages count: a 404 or a refused order is G2A working as it should.
        self._breakers = AsyncCircuitBreakerFactory(
            default_threshold=policy.failure_threshold,
            default_ttl=policy.open_s,
            exclude=[(UpstreamError, _not_an_outage)],
        )

    async def run(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one logical call (its retries included) under the rate limit and the breaker.
        Raises UpstreamRateLimited (code client_rate_limit) when no slot frees in time,
        UpstreamUnavailable (code circuit_open) while the circuit is open."""
        await self._slot(operation)
        try:
            async with await self._breakers.get_breaker(CIRCUIT):
                return await call()
        except OpenedState:
            raise UpstreamUnavailable(
                upstream=UPSTREAM, operation=operation, code="circuit_open", attempts=0
            ) from None

    async def _slot(self, operation: str) -> None:
        deadline = time.monotonic() + self._policy.max_wait_s
        while not await self._limiter.hit(self._rate, CIRCUIT):
            stats = await self._limiter.get_window_stats(self._rate, CIRCUIT)
            wait = max(0.01, stats.reset_time - time.time())
            if time.monotonic() + wait > deadline:
                raise UpstreamRateLimited(
                    upstream=UPSTREAM,
                    operation=operation,
                    code="client_rate_limit",
                    retry_after_s=wait,
                )
            await asyncio.sleep(wait)

    async def circuit_state(self) -> str:
        """`closed`, `opened` or `half-opened` (purgatory's names)."""
        breaker = await self._breakers.get_breaker(CIRCUIT)
        return str(breaker.context.state)
