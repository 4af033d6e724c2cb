"""The SQLite connection as one transaction sees it, with sqlite3 errors translated into
port errors, and the paging helpers every SQLite repository shares."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar

import aiosqlite

from autokey.adapters.store_errors import failed_statement, refused_value
from autokey.domain.model.errors import Conflict, DuplicateResource, StoreUnavailable
from autokey.domain.model.pages import Page, PageRequest

T = TypeVar("T")

STORE_NAME: Final = "sqlite"
_UNIQUE_VIOLATIONS = frozenset(
    {sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY}
)
# Primary result codes that mean the file or its lock is unusable now, not that the
# statement is wrong: busy/locked past the timeout, I/O, disk full, unopenable, not a database.
_OUTAGES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_INTERRUPT,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOTADB,
    }
)


@contextmanager
def translated(resource: str = "", resource_id: str = "") -> Iterator[None]:
    """Turn sqlite3 (and aiosqlite "connection closed") errors into port errors."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorcode in _UNIQUE_VIOLATIONS:
            raise DuplicateResource(resource=resource, id=resource_id) from exc
        if exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
            raise Conflict(resource=resource, id=resource_id) from exc
        raise refused_value(STORE_NAME, exc, exc.sqlite_errorname) from exc
    except (sqlite3.DataError, OverflowError, UnicodeEncodeError) as exc:
        raise refused_value(STORE_NAME, exc, getattr(exc, "sqlite_errorname", None)) from exc
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _OUTAGES:
            raise StoreUnavailable(store=STORE_NAME) from exc
        raise failed_statement(STORE_NAME, exc, getattr(exc, "sqlite_errorname", None)) from exc
    except ValueError as exc:
        # aiosqlite's "no active connection" / "Connection closed".
        raise StoreUnavailable(store=STORE_NAME) from exc


class Session:
    """The connection as one transaction sees it: every call translated, and unusable once
    the transaction has ended (a repository kept past its block must not write in autocommit)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn: aiosqlite.Connection | None = conn

    def _open(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("the transaction of this repository has ended")
        return self._conn

    def end(self) -> None:
        self._conn = None

    async def fetchall(
        self, statement: str, params: Any = (), *, resource: str = "", resource_id: str = ""
    ) -> list[sqlite3.Row]:
        conn = self._open()
        with translated(resource, resource_id):
            return list(await conn.execute_fetchall(statement, params))

    async def fetchone(self, statement: str, params: Any = ()) -> sqlite3.Row | None:
        found = await self.fetchall(statement, params)
        return found[0] if found else None

    async def execute(
        self, statement: str, params: Any = (), *, resource: str = "", resource_id: str = ""
    ) -> int:
        """Run one statement; returns how many rows it changed."""
        conn = self._open()
        with translated(resource, resource_id):
            async with conn.execute(statement, params) as cursor:
                return cursor.rowcount

    async def executemany(
        self, statement: str, params: Iterable[Any], *, resource: str = "", resource_id: str = ""
    ) -> int:
        """Run one statement per parameter set; returns the rows changed by all of them."""
        conn = self._open()
        with translated(resource, resource_id):
            async with conn.executemany(statement, params) as cursor:
                return cursor.rowcount


def page_of(items: list[T], page: PageRequest, key: Any) -> Page[T]:
    """`items` were fetched with LIMIT page.limit + 1: one extra row means another page."""
    chunk = items[: max(page.limit, 0)]
    more = len(items) > len(chunk)
    return Page(items=chunk, next_after=key(chunk[-1]) if more and chunk else None)


def limit_of(page: PageRequest) -> int:
    return max(page.limit, 0) + 1
