from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autokey.adapters.g2a.retry import (
    FailureKind,
    RetryPolicy,
    TransientFailure,
    is_transient_status,
    may_retry,
    parse_retry_after,
    run_with_retries,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (599, True),
        (200, False),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (409, False),
    ],
)
def test_only_429_and_5xx_are_transient(status: int, transient: bool) -> None:
    assert is_transient_status(status) is transient


def test_idempotent_calls_retry_every_transient_failure() -> None:
    for kind in FailureKind:
        assert may_retry(TransientFailure(kind), idempotent=True)


def test_create_order_retries_only_when_the_connection_was_refused_before_sending() -> None:
    assert may_retry(TransientFailure(FailureKind.CONNECTION, request_sent=False), idempotent=False)
    assert not may_retry(TransientFailure(FailureKind.CONNECTION), idempotent=False)
    assert not may_retry(TransientFailure(FailureKind.TIMEOUT), idempotent=False)
    assert not may_retry(TransientFailure(FailureKind.SERVER_ERROR, status=503), idempotent=False)
    assert not may_retry(TransientFailure(FailureKind.RATE_LIMITED, status=429), idempotent=False)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (None, None),
        ("", None),
        ("soon", None),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),
    ],
)
def test_retry_after_is_read_as_seconds_or_http_date(
    value: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_retry_after_wait_is_capped() -> None:
    policy = RetryPolicy(retry_after_cap_s=5.0)
    assert policy.retry_after_wait(120.0) == 5.0
    assert policy.retry_after_wait(2.0) == 2.0


async def test_transient_failures_are_retried_up_to_the_limit_then_reraised() -> None:
    attempts: list[int] = []

    async def attempt(n: int) -> str:
        attempts.append(n)
        raise TransientFailure(FailureKind.SERVER_ERROR, status=503)

    with pytest.raises(TransientFailure):
        await run_with_retries(RetryPolicy.no_wait(max_retries=2), attempt, idempotent=True)
    assert attempts == [1, 2, 3]


async def test_a_call_that_recovers_returns_its_result() -> None:
    async def attempt(n: int) -> str:
        if n < 3:
            raise TransientFailure(FailureKind.TIMEOUT)
        return "ok"

    assert await run_with_retries(RetryPolicy.no_wait(), attempt, idempotent=True) == "ok"


async def test_non_idempotent_calls_are_not_retried_after_sending() -> None:
    attempts: list[int] = []

    async def attempt(n: int) -> str:
        attempts.append(n)
        raise TransientFailure(FailureKind.SERVER_ERROR, status=502)

    with pytest.raises(TransientFailure):
        await run_with_retries(RetryPolicy.no_wait(), attempt, idempotent=False)
    assert attempts == [1]


async def test_other_errors_pass_through_without_retry() -> None:
    attempts: list[int] = []

    async def attempt(n: int) -> str:
        attempts.append(n)
        raise KeyError("boom")

    with pytest.raises(KeyError):
        await run_with_retries(RetryPolicy.no_wait(), attempt, idempotent=True)
    assert attempts == [1]


async def test_retry_after_replaces_the_drawn_wait_within_its_cap() -> None:
    waits: list[float] = []
    policy = RetryPolicy(max_retries=2, base_s=0.0, cap_s=0.0, retry_after_cap_s=0.01)

    async def attempt(n: int) -> str:
        if n == 1:
            raise TransientFailure(FailureKind.RATE_LIMITED, status=429, retry_after_s=0.005)
        if n == 2:
            raise TransientFailure(FailureKind.RATE_LIMITED, status=429, retry_after_s=60)
        return "ok"

    result = await run_with_retries(
        policy, attempt, idempotent=True, on_retry=lambda f, n, wait: waits.append(wait)
    )
    assert result == "ok"
    assert waits == [0.005, 0.01]


async def test_full_jitter_waits_stay_within_the_exponential_bound() -> None:
    waits: list[float] = []
    policy = RetryPolicy(max_retries=4, base_s=0.001, cap_s=0.004, total_cap_s=5)

    async def attempt(n: int) -> str:
        raise TransientFailure(FailureKind.SERVER_ERROR)

    with pytest.raises(TransientFailure):
        await run_with_retries(
            policy, attempt, idempotent=True, on_retry=lambda f, n, wait: waits.append(wait)
        )
    bounds = [0.001, 0.002, 0.004, 0.004]
    assert len(waits) == 4
    assert all(0 <= w <= b for w, b in zip(waits, bounds, strict=True))
