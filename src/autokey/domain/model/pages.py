"""Keyset pagination values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar
from uuid import UUID

import attrs

T = TypeVar("T")

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100


@attrs.frozen(kw_only=True)
class PageRequest:
    """Ask for up to `limit` items strictly after the item whose id is `after`."""

    limit: int = DEFAULT_PAGE_SIZE
    after: UUID | None = None


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_after: UUID | None
    """Id to pass as `after` for the next page; None on the last page."""
