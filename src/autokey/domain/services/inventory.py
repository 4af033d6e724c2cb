"""Key pools: creation, bulk upload, listing and invalidation of keys."""

from __future__ import annotations

import asyncio
import itertools
from array import array
from collections.abc import AsyncIterator, Awaitable, Iterator
from datetime import datetime

import attrs

from autokey.domain.model.audit import AuditAction, AuditEvent
from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.errors import NotFound
from autokey.domain.model.ids import EventId, KeyId, PoolId
from autokey.domain.model.keys import (
    Key,
    KeyPool,
    KeyStatus,
    LineProblem,
    PoolCounts,
    UploadReport,
    check_key_text,
)
from autokey.domain.model.outbound import OutboundEventType
from autokey.domain.model.pages import MAX_PAGE_SIZE, Page, PageRequest
from autokey.domain.services.outbound import announce
from autokey.domain.services.stock import check_pool_offers
from autokey.ports.crypto import BlindIndex, KeyCipher
from autokey.ports.store import KeyStage, Store, UnitOfWork
from autokey.ports.system import Clock, IdGenerator


def key_context(pool_id: PoolId, key_id: KeyId) -> bytes:
    """Associated data that binds sealed key material to its row."""
    return pool_id.bytes + key_id.bytes


@attrs.frozen(kw_only=True)
class PoolView:
    pool: KeyPool
    counts: PoolCounts


async def owned_pool(tx: UnitOfWork, principal: Principal, pool_id: PoolId) -> KeyPool:
    """The pool if the principal may manage it; NotFound otherwise (existence is not revealed)."""
    principal.require(Role.SELLER, action="manage_key_pools")
    return principal.must_own(await tx.pools.get(pool_id), "key_pool", pool_id)


class InventoryService:
    def __init__(
        self,
        store: Store,
        cipher: KeyCipher,
        blind_index: BlindIndex,
        clock: Clock,
        ids: IdGenerator,
        batch_size: int = 5000,
    ) -> None:
        self._store, self._cipher, self._index = store, cipher, blind_index
        self._clock, self._ids, self._batch_size = clock, ids, batch_size

    def _event(
        self, principal: Principal, action: AuditAction, pool_id: PoolId, **details: str | int
    ) -> AuditEvent:
        return AuditEvent(
            id=EventId(self._ids.new_id()),
            occurred_at=self._clock.now(),
            action=action,
            actor=principal.subject,
            pool_id=pool_id,
            details=details,
        )

    async def create_pool(self, principal: Principal, name: str | None) -> PoolView:
        principal.require(Role.SELLER, action="create_key_pool")
        name = (name or "").strip() or "Key pool"
        pool = KeyPool(
            id=PoolId(self._ids.new_id()),
            seller_id=principal.subject,
            name=name,
            created_at=self._clock.now(),
        )
        async with self._store.transaction() as tx:
            await tx.pools.add(pool)
        return PoolView(pool=pool, counts=PoolCounts())

    async def get_pool(self, principal: Principal, pool_id: PoolId) -> PoolView:
        async with self._store.transaction() as tx:
            pool = await owned_pool(tx, principal, pool_id)
            return PoolView(pool=pool, counts=await tx.pools.counts(pool_id))

    async def list_pools(self, principal: Principal, page: PageRequest) -> Page[PoolView]:
        principal.require(Role.SELLER, action="list_key_pools")
        async with self._store.transaction() as tx:
            pools = await tx.pools.list_for_seller(principal.subject, page)
            views = [PoolView(pool=p, counts=await tx.pools.counts(p.id)) for p in pools.items]
        return Page(items=views, next_after=pools.next_after)

    async def upload(
        self, principal: Principal, pool_id: PoolId, lines: Iterator[tuple[int, str]]
    ) -> tuple[UploadReport, PoolCounts]:
        """Store every valid, new key of `lines` ((line number, raw text) pairs) or none.

        Lines are trimmed; blank ones are ignored. Keys are validated and sealed in a worker
        thread, `batch_size` lines at a time (`lines` is read there, so it may block), into a
        stage that one transaction streams to the store while it is filled: the database
        writes while Python seals. Memory stays flat but for the line number of each key
        (4 bytes).
        """
        async with self._store.transaction() as tx:
            pool = await owned_pool(tx, principal, pool_id)
        report, numbers = UploadReport(), array("I")  # 4 bytes a key: line numbers
        stage, stop = self._store.stage_keys(), asyncio.Event()
        filling = asyncio.ensure_future(self._fill(stage, stop, pool_id, lines, report, numbers))
        try:
            counts = await self._store_stage(principal, pool, stage, filling, report, numbers)
        finally:
            stop.set()  # the batch in its thread finishes first: the stage is closed after it
            try:
                await asyncio.gather(filling, return_exceptions=True)
            finally:
                stage.close()
        report.errors.sort(key=lambda e: e.line)
        return report, counts

    async def _fill(
        self,
        stage: KeyStage,
        stop: asyncio.Event,
        pool_id: PoolId,
        lines: Iterator[tuple[int, str]],
        report: UploadReport,
        numbers: array[int],
    ) -> None:
        try:
            while not stop.is_set() and await asyncio.to_thread(
                self._stage_batch, pool_id, lines, stage, report, numbers
            ):
                pass
        finally:
            stage.end()

    async def _store_stage(
        self,
        principal: Principal,
        pool: KeyPool,
        stage: KeyStage,
        filled: Awaitable[None],
        report: UploadReport,
        numbers: array[int],
    ) -> PoolCounts:
        """Store the staged keys in one transaction once `filled` (which failing rolls it
        back), the ones already stored reported as duplicates, and announce the upload; the
        pool's counts after it."""
        async with self._store.bulk_transaction() as tx:
            skipped = await tx.keys.add_staged(stage)
            await filled
            for position in skipped:
                report.reject(numbers[position], LineProblem.DUPLICATE)
            report.added = added = len(numbers) - report.duplicates
            if added:
                event = self._event(principal, AuditAction.KEYS_UPLOADED, pool.id, count=added)
                await tx.audit.append([event])
            counts = await tx.pools.counts(pool.id)
            await announce(
                tx,
                self._ids,
                self._clock,
                pool.seller_id,
                OutboundEventType.UPLOAD_COMPLETED,
                {
                    "poolId": pool.id,
                    "added": report.added,
                    "duplicates": report.duplicates,
                    "invalid": report.invalid,
                    "availableKeys": counts.available,
                },
            )
            await check_pool_offers(tx, self._ids, self._clock, pool.id)
        return counts

    def _stage_batch(
        self,
        pool_id: PoolId,
        lines: Iterator[tuple[int, str]],
        stage: KeyStage,
        report: UploadReport,
        numbers: array[int],
    ) -> bool:
        """Validate and seal up to `batch_size` lines into `stage`; False once `lines` ends."""
        keys: list[Key] = []
        read = 0
        for number, raw in itertools.islice(lines, self._batch_size):
            read += 1
            text = raw.strip()
            if not text:
                continue
            problem = check_key_text(text)
            if problem is not None:
                report.reject(number, problem)
                continue
            keys.append(self._seal(pool_id, text, self._index.fingerprint(text)))
            numbers.append(number)
        stage.put(keys)
        return read == self._batch_size

    def _seal(self, pool_id: PoolId, text: str, fingerprint: bytes) -> Key:
        key_id = KeyId(self._ids.new_id())
        return Key(
            id=key_id,
            pool_id=pool_id,
            status=KeyStatus.AVAILABLE,
            sealed=self._cipher.seal(text, context=key_context(pool_id, key_id)),
            fingerprint=fingerprint,
            created_at=self._clock.now(),
        )

    async def list_keys(
        self, principal: Principal, pool_id: PoolId, status: KeyStatus | None, page: PageRequest
    ) -> Page[Key]:
        async with self._store.transaction() as tx:
            await owned_pool(tx, principal, pool_id)
            return await tx.keys.list_in_pool(pool_id, status, page)

    async def invalidate_key(self, principal: Principal, pool_id: PoolId, key_id: KeyId) -> None:
        """AVAILABLE -> INVALID. KeyNotAvailable for a reserved or delivered key."""
        async with self._store.transaction() as tx:
            await owned_pool(tx, principal, pool_id)
            key = await tx.keys.get(key_id, for_update=True)
            if key is None or key.pool_id != pool_id:
                raise NotFound(resource="key", id=str(key_id))
            if key.status is KeyStatus.INVALID:
                return  # invalidating twice is a no-op
            key.invalidate()
            await tx.keys.save(key)
            event = self._event(principal, AuditAction.KEY_INVALIDATED, pool_id)
            await tx.audit.append([attrs.evolve(event, key_ids=(key_id,))])
            await check_pool_offers(tx, self._ids, self._clock, pool_id)

    async def housekeeping(self) -> None:
        """Keep reads and claims cheap as pools age: fold appended count changes into
        per-pool totals and move the claim marks past the keys claimed since."""
        async with self._store.transaction() as tx:
            await tx.pools.fold_counts()
            await tx.keys.advance_claim_marks()

    async def pool_events(
        self, principal: Principal, pool_id: PoolId, page: PageRequest
    ) -> Page[AuditEvent]:
        async with self._store.transaction() as tx:
            await owned_pool(tx, principal, pool_id)
            return await tx.audit.list_events(pool_id, page)

    async def export_pool_events(
        self, principal: Principal, pool_id: PoolId, since: datetime | None = None
    ) -> AsyncIterator[AuditEvent]:
        """Every event of the pool in id order (from `since` on, when given). Ownership is
        checked now; then a page per transaction, so an export of any size holds no
        transaction open while it is read."""
        async with self._store.transaction() as tx:
            await owned_pool(tx, principal, pool_id)
        return self._event_pages(principal, pool_id, since)

    async def _event_pages(
        self, principal: Principal, pool_id: PoolId, since: datetime | None
    ) -> AsyncIterator[AuditEvent]:
        page = PageRequest(limit=MAX_PAGE_SIZE)
        while True:
            chunk = await self.pool_events(principal, pool_id, page)
            for event in chunk.items:
                if since is None or event.occurred_at >= since:
                    yield event
            if chunk.next_after is None:
                return
            page = PageRequest(limit=MAX_PAGE_SIZE, after=chunk.next_after)
