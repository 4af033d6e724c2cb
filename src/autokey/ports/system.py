"""Time and identity: injected so the domain never reads the wall clock."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant as an aware UTC datetime."""
        ...


class IdGenerator(Protocol):
    def new_id(self) -> UUID:
        """A fresh, unique, time-ordered id (UUIDv7): later calls sort after earlier ones."""
        ...
