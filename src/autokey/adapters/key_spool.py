"""A file-backed `KeyStage` for the stores that load a stage through their own `add_new`
(memory and SQLite; PostgreSQL spools rows in COPY format instead)."""

from __future__ import annotations

import asyncio
import pickle
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from typing import IO

from autokey.domain.model.ids import KeyId
from autokey.domain.model.keys import Key
from autokey.ports.store import KeyStage


class SpooledKeys(KeyStage):
    """Batches of keys pickled to an anonymous temporary file (unlinked at creation, so
    nothing is left behind, even by a kill -9)."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self._count = 0

    def put(self, keys: Sequence[Key]) -> None:
        if keys:
            pickle.dump(list(keys), self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._count += len(keys)

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        self._file.close()

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
    skipped: list[int] = []
    offset = 0
    stage.rewind()
    while (batch := await asyncio.to_thread(stage.next_batch)) is not None:
        stored = await add_new(batch)
        skipped.extend(offset + i for i, key in enumerate(batch) if key.id not in stored)
        offset += len(batch)
    return skipped
