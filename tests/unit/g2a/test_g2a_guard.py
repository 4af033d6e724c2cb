"""The guard around every G2A call: client-side rate limit and circuit breaker."""

from __future__ import annotations

import pytest

from autokey.adapters.g2a.guard import CallGuard, GuardPolicy
from autokey.domain.model.errors import (
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamUnavailable,
)


async def _ok() -> str:
    return "ok"


async def _down() -> str:
    raise UpstreamUnavailable(upstream="g2a", operation="test", status=503)


async def _missing() -> str:
    raise UpstreamNotFound(upstream="g2a", operation="test", status=404)


async def test_calls_beyond_the_rate_are_refused_once_the_wait_runs_out() -> None:
    guard = CallGuard(GuardPolicy(rate="2/minute", max_wait_s=0.1))
    assert [await guard.run("test", _ok) for _ in range(2)] == ["ok", "ok"]
    with pytest.raises(UpstreamRateLimited) as refused:
        await guard.run("test", _ok)
    assert refused.value.code == "client_rate_limit"
    assert refused.value.retry_after_s is not None


async def test_outages_open_the_circuit_and_other_errors_do_not() -> None:
    guard = CallGuard(GuardPolicy(failure_threshold=2, open_s=60))
    for _ in range(5):
        with pytest.raises(UpstreamNotFound):
            await guard.run("test", _missing)
    assert await guard.circuit_state() == "closed"
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            await guard.run("test", _down)
    assert await guard.circuit_state() == "opened"
    with pytest.raises(UpstreamUnavailable) as refused:
        await guard.run("test", _ok)  # not even tried
    assert (refused.value.code, refused.value.attempts) == ("circuit_open", 0)
