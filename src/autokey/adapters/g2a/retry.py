"""Retries of G2A calls: one `RetryPolicy` value, `backoff.expo` with full jitter, and the
rules for what may be retried. Nothing outside this adapter retries G2A calls."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Generator
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import attrs
import backoff

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Bounded retries: at most `max_retries` more attempts, waits drawn uniformly from
    [0, min(cap_s, base_s * 2**n)], all of it within `total_cap_s`. A `Retry-After` answer
    replaces the drawn wait, capped at `retry_after_cap_s`."""

    max_retries: int = 3
    base_s: float = 0.25
    cap_s: float = 4.0
    total_cap_s: float = 20.0
    retry_after_cap_s: float = 10.0

    @classmethod
    def no_wait(cls, max_retries: int = 3) -> RetryPolicy:
        """Zero waits, for tests (Retry-After is still parsed but capped to 0)."""
        return cls(
            max_retries=max_retries, base_s=0.0, cap_s=0.0, total_cap_s=30.0, retry_after_cap_s=0.0
        )

    def retry_after_wait(self, retry_after_s: float) -> float:
        return max(0.0, min(retry_after_s, self.retry_after_cap_s))


class FailureKind(enum.StrEnum):
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"


class TransientFailure(Exception):
    """An attempt failed in a way that may pass: 429, 5xx, timeout or connection error.
    `request_sent` is False only when the connection was refused before anything was sent."""

    def __init__(
        self,
        kind: FailureKind,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
        request_sent: bool = True,
    ) -> None:
        super().__init__(kind.value)
        self.kind = kind
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s
        self.request_sent = request_sent


def is_transient_status(status: int) -> bool:
    """429 and every 5xx may pass; other statuses are answers, never retried."""
    return status == 429 or 500 <= status <= 599


def may_retry(failure: TransientFailure, *, idempotent: bool) -> bool:
    """Idempotent calls retry every transient failure; the others (POST /order) only when
    the connection was refused before the request was sent."""
    if idempotent:
        return True
    return failure.kind is FailureKind.CONNECTION and not failure.request_sent


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date); None if
    absent or unreadable. Never negative."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return (
            max(0.0, float(text)) if text.replace(".", "", 1).isdigit() else _date_wait(text, now)
        )
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _date_wait(text: str, now: datetime) -> float:
    when = parsedate_to_datetime(text)
    if when.tzinfo is None:
        raise ValueError(text)
    return max(0.0, (when - now).total_seconds())


def _wait_gen(policy: RetryPolicy) -> Callable[..., Generator[float, Any, None]]:
    """Full-jitter exponential waits, overridden by Retry-After when the failure carries one.
    backoff sends each failure into the generator before asking for the next wait."""

    def gen(**_: Any) -> Generator[float, Any, None]:
        expo = backoff.expo(base=2, factor=policy.base_s, max_value=policy.cap_s)
        next(expo)  # backoff's generators yield None once, for their priming send
        failure = yield 0.0
        while True:
            drawn = float(backoff.full_jitter(next(expo)))
            if isinstance(failure, TransientFailure) and failure.retry_after_s is not None:
                drawn = policy.retry_after_wait(failure.retry_after_s)
            failure = yield drawn

    return gen


async def run_with_retries(
    policy: RetryPolicy,
    attempt: Callable[[int], Awaitable[T]],
    *,
    idempotent: bool,
    on_retry: Callable[[TransientFailure, int, float], None] | None = None,
) -> T:
    """Call `attempt(n)` (n from 1) until it returns, retrying `TransientFailure` per the
    policy. Re-raises the last `TransientFailure` when giving up; anything else at once."""
    tries = 0

    async def once() -> T:
        nonlocal tries
        tries += 1
        return await attempt(tries)

    def give_up(exc: Exception) -> bool:
        return not isinstance(exc, TransientFailure) or not may_retry(exc, idempotent=idempotent)

    def backoff_handler(details: Any) -> None:
        if on_retry is not None:
            exc = details.get("exception")
            if isinstance(exc, TransientFailure):
                on_retry(exc, int(details["tries"]), float(details.get("wait", 0.0)))

    wrapped = backoff.on_exception(
        _wait_gen(policy),
        TransientFailure,
        max_tries=policy.max_retries + 1,
        max_time=policy.total_cap_s,
        giveup=give_up,
        jitter=None,
        on_backoff=backoff_handler,
        raise_on_giveup=True,
        logger=None,
    )(once)
    result: T = await wrapped()
    return result
