"""The master keys and the blind-index key a store needs (ADR 0011).

`unlock` is the startup check every entry point runs before it serves anything: it refuses
master keys that cannot open what the store holds, and returns the blind index keyed by the
store's pinned index key. `reseal` moves every sealed value onto the current master key, so
that older ones can be retired. `set_aside_unreadable` deals with a paid order whose keys
fail to decrypt all the same (a corrupted row).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import attrs
import structlog

from autokey.domain.model.audit import AuditAction, AuditEvent
from autokey.domain.model.errors import KeyMaterialUnreadable, KeyringMismatch, KeyringProblem
from autokey.domain.model.ids import KeyId, OrderId
from autokey.domain.model.keys import Key, MasterKeyId, PinnedIndexKey, sealed_with
from autokey.domain.model.orders import KEYS_UNREADABLE, Order, OrderStatus
from autokey.domain.model.outbound import secret_context
from autokey.domain.services.audit import order_event
from autokey.domain.services.inventory import key_context
from autokey.ports.crypto import BlindIndex, BlindIndexKeys, KeyCipher
from autokey.ports.store import Store, UnitOfWork
from autokey.ports.system import Clock, IdGenerator

log = structlog.get_logger("autokey.keyring")

INDEX_KEY_CONTEXT = b"autokey/index-key"
"""Associated data of the sealed index key: it opens nowhere else."""
RESEAL_BATCH = 500
UNREADABLE = {"reason": KEYS_UNREADABLE}
RESEAL_PASSES = 5
"""Walks over the store: a later one catches keys that order traffic held (skipped) before."""


@attrs.define(kw_only=True)
class ResealReport:
    resealed: int = 0
    index_key_resealed: bool = False
    unreadable: list[KeyId] = attrs.Factory(list)
    """Keys under a retired master key that fail to open: left as they are, for an operator."""
    still_needed: tuple[str, ...] = ()
    """Retired master key ids some value still needs afterwards (unreadable or held keys)."""


Progress = Callable[[ResealReport], None]


class KeyringService:
    def __init__(
        self,
        store: Store,
        cipher: KeyCipher,
        index_keys: BlindIndexKeys,
        clock: Clock,
        ids: IdGenerator,
    ) -> None:
        self._store, self._cipher, self._index_keys = store, cipher, index_keys
        self._clock, self._ids = clock, ids

    def _mismatch(
        self,
        problem: KeyringProblem,
        missing: Collection[str] = (),
        index_key_id: str | None = None,
    ) -> KeyringMismatch:
        return KeyringMismatch(
            problem=problem,
            missing=tuple(sorted(missing)),
            configured=tuple(self._cipher.key_ids),
            index_key_id=index_key_id,
        )

    async def unlock(self) -> BlindIndex:
        """The blind index of this store. KeyringMismatch when a stored value is sealed under
        a master key that is not configured, or the configured keys cannot recover the index
        key the fingerprints were made with. Pins an index key at first use (idempotent)."""
        async with self._store.transaction() as tx:
            in_use = await tx.keyring.master_key_ids()
            if missing := in_use - set(self._cipher.key_ids):
                raise self._mismatch(KeyringProblem.MASTER_KEYS_MISSING, missing=missing)
            pinned = await tx.keyring.index_key()
            if pinned is None:
                pinned = await tx.keyring.pin_index_key(await self._first_index_key(tx, in_use))
        try:
            index_key = self._cipher.open(pinned.sealed, context=INDEX_KEY_CONTEXT)
        except KeyMaterialUnreadable:
            index_key = ""
        if not index_key or self._index_keys.key_id(index_key) != pinned.id:
            raise self._mismatch(KeyringProblem.INDEX_KEY_NOT_REPRODUCIBLE, index_key_id=pinned.id)
        return self._index_keys.blind_index(index_key)

    async def _first_index_key(
        self, tx: UnitOfWork, in_use: Collection[MasterKeyId]
    ) -> PinnedIndexKey:
        """A new random key for an empty store. A store filled before ADR 0011 keeps the key
        its fingerprints were made with: the legacy key that reproduces a stored fingerprint
        (if every key is held by other transactions right now, no key can be chosen safely)."""
        if not in_use:
            index_key = self._index_keys.new_key()
        else:
            sample = await tx.keyring.sealed_under(self._cipher.key_ids, None, 1)
            plain = [
                self._cipher.open(k.sealed, context=key_context(k.pool_id, k.id)) for k in sample
            ]
            matching = [
                legacy
                for legacy in self._index_keys.legacy_keys()
                for key, text in zip(sample, plain, strict=True)
                if self._index_keys.blind_index(legacy).fingerprint(text) == key.fingerprint
            ]
            if not matching:
                raise self._mismatch(KeyringProblem.INDEX_KEY_NOT_REPRODUCIBLE)
            index_key = matching[0]
        return PinnedIndexKey(
            id=self._index_keys.key_id(index_key),
            sealed=self._cipher.seal(index_key, context=INDEX_KEY_CONTEXT),
        )

    async def reseal(self, progress: Progress, batch: int = RESEAL_BATCH) -> ResealReport:
        """Seal every value still under an older configured master key anew under the current
        one, `batch` keys per transaction. Resumable (each batch commits; a rerun finds only
        what is left), idempotent, and safe beside live traffic (held keys are skipped and
        retried on a later pass). Run `unlock` first."""
        current, *retired = self._cipher.key_ids
        report = ResealReport()
        async with self._store.transaction() as tx:
            pinned = await tx.keyring.index_key()
            if pinned is not None and sealed_with(pinned.sealed) != current:
                opened = self._cipher.open(pinned.sealed, context=INDEX_KEY_CONTEXT)
                await tx.keyring.reseal_index_key(
                    self._cipher.seal(opened, context=INDEX_KEY_CONTEXT)
                )
                report.index_key_resealed = True
            for endpoint in await tx.endpoints.sealed_under(retired):
                context = secret_context(endpoint.id)
                secret = self._cipher.open(endpoint.sealed_secret, context=context)
                await tx.endpoints.reseal(endpoint.id, self._cipher.seal(secret, context=context))
        for _ in range(RESEAL_PASSES if retired else 0):
            done = report.resealed
            await self._pass(retired, batch, report, progress)
            async with self._store.transaction() as tx:
                left = await tx.keyring.master_key_ids() & set(retired)
            report.still_needed = tuple(sorted(left))
            if not left or report.resealed == done:
                break
        return report

    async def _pass(
        self, retired: list[MasterKeyId], batch: int, report: ResealReport, progress: Progress
    ) -> None:
        """One walk over the keys under a retired master key, in id order."""
        after: KeyId | None = None
        while True:
            async with self._store.transaction() as tx:
                keys = await tx.keyring.sealed_under(retired, after, batch)
                for key in keys:
                    context = key_context(key.pool_id, key.id)
                    try:
                        plaintext = self._cipher.open(key.sealed, context=context)
                    except KeyMaterialUnreadable:
                        if key.id not in report.unreadable:
                            report.unreadable.append(key.id)
                        continue
                    await tx.keyring.reseal_key(
                        key.id, self._cipher.seal(plaintext, context=context)
                    )
                    report.resealed += 1
            if keys:
                after = keys[-1].id
                progress(report)
            if len(keys) < batch:
                return

    def _readable(self, key: Key) -> bool:
        """False when the key's material fails to open under the master key that sealed it.
        A key sealed under a master key this process lacks is not damaged: that raises
        KeyringMismatch (the process is misconfigured) and nothing is set aside."""
        if (needed := sealed_with(key.sealed)) not in self._cipher.key_ids:
            raise self._mismatch(KeyringProblem.MASTER_KEYS_MISSING, missing=(needed,))
        try:
            self._cipher.open(key.sealed, context=key_context(key.pool_id, key.id))
        except KeyMaterialUnreadable:
            return False
        return True

    async def set_aside_unreadable(self, order_id: OrderId) -> Order | None:
        """For a PAID order some of whose reserved keys fail to decrypt: set those keys aside
        (INVALID, audited with reason `key_material_unreadable`) and reserve readable
        replacements from the pool; when it has too few, release the rest and cancel the order
        with that reason (the buyer is owed a refund). Logs `orders.key_material_unreadable`
        for the operator (ids only). Any other order, or one whose keys all open: unchanged.
        KeyringMismatch, changing nothing, when a key is sealed under a master key this process
        is not configured with. Returns the order (None if unknown)."""
        async with self._store.transaction() as tx:
            order = await tx.orders.get(order_id, for_update=True)
            if order is None or order.status is not OrderStatus.PAID:
                return order
            needed, set_aside, replaced = await self._replace_unreadable(tx, order)
            if not needed:
                return order
            events = [self._event(AuditAction.KEY_INVALIDATED, order, set_aside)]
            outcome = "replaced" if len(replaced) == needed else "canceled"
            if outcome == "canceled":
                order.abandon(self._clock.now(), KEYS_UNREADABLE)
                released = await tx.keys.release_order(order.id)
                await tx.orders.save(order)
                events += [
                    self._event(AuditAction.KEYS_RELEASED, order, released),
                    self._event(AuditAction.ORDER_CANCELED, order, ()),
                ]
            else:
                events.append(self._event(AuditAction.KEYS_RESERVED, order, replaced))
            await tx.audit.append(events)
        log.error(
            "orders.key_material_unreadable",
            order_id=str(order.id),
            pool_id=str(order.pool_id),
            key_ids=[str(k) for k in set_aside],
            outcome=outcome,
        )
        return order

    async def _replace_unreadable(
        self, tx: UnitOfWork, order: Order
    ) -> tuple[int, list[KeyId], list[KeyId]]:
        """Set the order's unreadable keys aside and claim replacements until every claimed
        key opens or the pool runs dry: (how many were unreadable, set aside, replacements)."""
        bad = [k for k in await tx.keys.for_order(order.id) if not self._readable(k)]
        needed, set_aside, replaced = len(bad), list[KeyId](), list[KeyId]()
        while bad:  # ends: every round takes keys out of the pool for good
            for key in bad:
                key.set_aside()
                await tx.keys.save(key)
            set_aside += [k.id for k in bad]
            claimed = await tx.keys.claim(order.pool_id, order.id, len(bad), self._clock.now())
            fresh = [k for k in await tx.keys.for_order(order.id) if k.id in claimed]
            readable = {k.id: self._readable(k) for k in fresh}
            replaced += [k.id for k in fresh if readable[k.id]]
            bad = [k for k in fresh if not readable[k.id]]
        return needed, set_aside, replaced

    def _event(self, action: AuditAction, order: Order, key_ids: Sequence[KeyId]) -> AuditEvent:
        """An event about keys set aside as unreadable (the reason is among its details)."""
        return order_event(
            self._ids, self._clock, action, order, key_ids=key_ids, details=UNREADABLE
        )
