"""Rate limiting: how many times a caller may do something in a window."""

from __future__ import annotations

from typing import Protocol

from autokey.domain.model.limits import Limit


class RateLimiter(Protocol):
    async def spend(self, limit: Limit, who: str) -> None:
        """Count one use of `limit` by `who` (a principal or a client address). Raises
        RateLimited, with the whole seconds until a use is allowed again, when `who` has
        none left (the refused use is not counted). A limit that is not configured never
        refuses. Trouble in a shared storage never refuses either: the count falls back
        to this process."""
        ...

    async def check(self, limit: Limit, who: str) -> None:
        """Raise RateLimited exactly when `spend` would, without counting anything."""
        ...
