"""File-backed key stages: `Filling`, which every store's stage builds on (keys are put by
worker threads while the store may already be reading them on the event loop), and
`SpooledKeys`, the stage of the stores that load it through their own `add_new` (memory and
SQLite; PostgreSQL spools rows in COPY format instead)."""

from __future__ import annotations

import asyncio
import os
import pickle
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from typing import IO

from autokey.domain.model.ids import KeyId
from autokey.domain.model.keys import Key
from autokey.ports.store import KeyStage


class Filling:
    """An anonymous temporary file (unlinked at creation, so nothing is left behind, even by
    a kill -9) written by worker threads and read on the event loop while it grows.

    Writers call `_wrote` after each flushed write; readers wait with `_grown` for more bytes
    or for `end`, and read at explicit offsets (`_read_at`), so they never move the writers'
    file position. Create it on the event loop that reads it."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._written = 0
        self._count = 0
        self._ended = False

    def __len__(self) -> int:
        return self._count

    def _wrote(self, keys: int) -> None:
        """After a write of `keys` keys, from any thread: flush it and wake the reader."""
        self._file.flush()
        self._count += keys
        self._written = self._file.tell()
        self._loop.call_soon_threadsafe(self._changed.set)

    def end(self) -> None:
        self._ended = True
        self._changed.set()

    def close(self) -> None:
        self.end()
        self._file.close()

    async def until_ended(self) -> None:
        while not self._ended:
            self._changed.clear()
            if not self._ended:
                await self._changed.wait()

    async def _grown(self, offset: int) -> tuple[int, bool]:
        """Once more than `offset` bytes are written or the stage has ended: (bytes written,
        whether the stage has ended, so that is all)."""
        while True:
            self._changed.clear()
            ended, written = self._ended, self._written
            if written > offset or ended:
                return written, ended
            await self._changed.wait()

    def _read_at(self, offset: int, size: int) -> bytes:
        return os.pread(self._file.fileno(), size, offset)


class SpooledKeys(Filling, KeyStage):
    """Batches of keys pickled to a `Filling` file, loaded once the stage has ended."""

    def put(self, keys: Sequence[Key]) -> None:
        if keys:
            pickle.dump(list(keys), self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._wrote(len(keys))

    def rewind(self) -> None:
        self._file.flush()
        self._file.seek(0)

    def next_batch(self) -> list[Key] | None:
        """The next batch after `rewind`, None at the end."""
        try:
            # Our own anonymous file, written above by this process: not untrusted input.
            batch: list[Key] = pickle.load(self._file)  # noqa: S301
        except EOFError:
            return None
        return batch


async def add_staged_in_batches(
    stage: KeyStage, add_new: Callable[[Sequence[Key]], Awaitable[frozenset[KeyId]]]
) -> list[int]:
    """`KeyRepository.add_staged` on top of `add_new`, batch by batch (which must skip a
    fingerprint repeated within its batch as it skips one stored before)."""
    if not isinstance(stage, SpooledKeys):
        raise TypeError(f"a stage of another store: {type(stage).__name__}")
    await stage.until_ended()
    skipped: list[int] = []
    offset = 0
    stage.rewind()
    while (batch := await asyncio.to_thread(stage.next_batch)) is not None:
        stored = await add_new(batch)
        skipped.extend(offset + i for i, key in enumerate(batch) if key.id not in stored)
        offset += len(batch)
    return skipped
