"""Token revocations announced by PostgreSQL (LISTEN/NOTIFY), for the principal cache.

Migration 0007's trigger notifies `autokey_token_revoked` when a revocation commits, in
whichever process wrote it. One dedicated connection per server process listens; every
notification moves the epoch, and so does every (re)connection, because announcements sent
while nobody listened are lost. While not listening the epoch is None: nothing is cached.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

import psycopg
import structlog

from autokey.ports.store import RevocationWatch

CHANNEL: Final = "autokey_token_revoked"
_LISTEN: Final = "LISTEN autokey_token_revoked"

log = structlog.get_logger("autokey.auth")


class PostgresRevocationWatch(RevocationWatch):
    def __init__(self, dsn: str, *, retry_s: float = 1.0) -> None:
        """Listen on `dsn` once `start()`ed; after a lost connection, retry every `retry_s`."""
        self._dsn, self._retry_s = dsn, retry_s
        self._counter = 0
        self._listening = False
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        """Set while LISTEN is in effect (start-up waits on it)."""
        self._changes = asyncio.Condition()

    def epoch(self) -> int | None:
        return self._counter if self._listening else None

    async def start(self, *, wait_s: float = 5.0) -> None:
        """Start listening in the background; wait up to `wait_s` for the first LISTEN (the
        process serves uncached meanwhile, so a slow database never blocks start-up)."""
        self._task = asyncio.create_task(self._listen_forever(), name="revocation-watch")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.listening.wait(), wait_s)

    async def moved(self, since: int | None) -> None:
        """Return once the epoch differs from `since` (callers bound the wait)."""
        async with self._changes:
            await self._changes.wait_for(lambda: self.epoch() != since)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _moved(self, *, listening: bool) -> None:
        self._counter += 1
        self._listening = listening
        if listening:
            self.listening.set()
        else:
            self.listening.clear()
        async with self._changes:
            self._changes.notify_all()

    async def _listen_forever(self) -> None:
        while True:
            try:
                # Keepalives: a silently dead connection is noticed in about 10 s, and
                # caching stops until a new one listens.
                async with await psycopg.AsyncConnection.connect(
                    self._dsn,
                    autocommit=True,
                    connect_timeout=5,
                    keepalives=1,
                    keepalives_idle=5,
                    keepalives_interval=2,
                    keepalives_count=2,
                ) as conn:
                    await conn.execute(_LISTEN)
                    await self._moved(listening=True)
                    async for _ in conn.notifies():
                        await self._moved(listening=True)
            except psycopg.Error as exc:
                log.warning("auth.revocation_watch_lost", error=type(exc).__name__)
            finally:
                await self._moved(listening=False)
            await asyncio.sleep(self._retry_s)
