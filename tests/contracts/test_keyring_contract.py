"""Contract of the keyring port and the startup key check (ADR 0011): memory, SQLite and
PostgreSQL must all report the master keys their rows need and keep one pinned index key."""

from __future__ import annotations

import os

import attrs
import pytest

from autokey.adapters.crypto import AesGcmKeyCipher, HmacBlindIndexKeys, master_key_id
from autokey.adapters.system import Uuid7Ids
from autokey.domain.model.audit import AuditAction
from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.errors import KeyringMismatch, KeyringProblem, OrderKeysUnreadable
from autokey.domain.model.ids import KeyId, OrderId, PoolId
from autokey.domain.model.keys import KeyStatus, PinnedIndexKey, sealed_with
from autokey.domain.model.orders import KEYS_UNREADABLE, OrderStatus
from autokey.domain.model.outbound import secret_context
from autokey.domain.model.pages import PageRequest
from autokey.domain.services.inventory import InventoryService, key_context
from autokey.domain.services.keyring import KeyringService, ResealReport
from autokey.ports.store import Store
from tests import builders as b
from tests.conftest import FakeClock

OLD, NEW = os.urandom(32), os.urandom(32)


def _keyring(store: Store, *masters: bytes) -> KeyringService:
    return KeyringService(
        store, AesGcmKeyCipher(masters), HmacBlindIndexKeys(masters), FakeClock(), Uuid7Ids()
    )


async def _upload(store: Store, masters: tuple[bytes, ...], pool_id: PoolId, text: str) -> int:
    """Upload one key as the process configured with `masters` would (after the check)."""
    keyring = _keyring(store, *masters)
    inventory = InventoryService(
        store, AesGcmKeyCipher(masters), await keyring.unlock(), FakeClock(), Uuid7Ids()
    )

    seller = Principal(subject=SELLER, role=Role.SELLER)
    report, _ = await inventory.upload(seller, pool_id, iter([(1, text)]))
    return report.added


SELLER = b.seller()


@pytest.fixture
async def pool_id(store: Store) -> PoolId:
    pool = b.pool(SELLER)
    async with store.transaction() as tx:
        await tx.pools.add(pool)
    return pool.id


async def test_master_key_ids_name_every_sealed_value(store: Store, pool_id: PoolId) -> None:
    async with store.transaction() as tx:
        assert await tx.keyring.master_key_ids() == frozenset()
        assert await tx.keyring.index_key() is None
    old_key, new_key = b.key(pool_id), b.key(pool_id)
    new_key.sealed = AesGcmKeyCipher([NEW]).seal("X-1-NEW", context=b"c")
    pinned = PinnedIndexKey(id="0a0b0c0d", sealed=AesGcmKeyCipher([OLD]).seal("k", context=b"c"))
    async with store.transaction() as tx:
        await tx.keys.add_new([old_key, new_key])
        assert await tx.keyring.pin_index_key(pinned) == pinned
    async with store.transaction() as tx:
        assert await tx.keyring.master_key_ids() == {
            sealed_with(old_key.sealed),
            master_key_id(NEW),
            master_key_id(OLD),
        }


async def test_the_first_pinned_index_key_stays_pinned(store: Store) -> None:
    first = PinnedIndexKey(id="11111111", sealed=b"\x01first")
    async with store.transaction() as tx:
        assert await tx.keyring.pin_index_key(first) == first
    async with store.transaction() as tx:
        assert await tx.keyring.pin_index_key(attrs.evolve(first, id="22222222")) == first
        await tx.keyring.reseal_index_key(b"\x01again")
    async with store.transaction() as tx:
        assert await tx.keyring.index_key() == attrs.evolve(first, sealed=b"\x01again")


async def test_sealed_under_walks_in_id_order_and_reseal_changes_only_the_sealed_value(
    store: Store, pool_id: PoolId
) -> None:
    keys = [b.key(pool_id) for _ in range(5)]
    other = b.key(pool_id)
    other.sealed = AesGcmKeyCipher([NEW]).seal("OTHER-1", context=b"c")
    under = sealed_with(keys[0].sealed)
    async with store.transaction() as tx:
        await tx.keys.add_new([*keys, other])
    async with store.transaction() as tx:
        first = await tx.keyring.sealed_under([under], None, 2)
        rest = await tx.keyring.sealed_under([under], first[-1].id, 10)
        assert [k.id for k in [*first, *rest]] == sorted(k.id for k in keys)
        assert await tx.keyring.sealed_under([master_key_id(OLD)], None, 10) == []
        await tx.keyring.reseal_key(keys[0].id, other.sealed)
    async with store.transaction() as tx:
        moved = await tx.keys.get(keys[0].id)
        assert moved == attrs.evolve(keys[0], sealed=other.sealed)
        assert len(await tx.keyring.sealed_under([master_key_id(NEW)], None, 10)) == 2


async def test_a_store_refuses_master_keys_that_cannot_open_its_rows(
    store: Store, pool_id: PoolId
) -> None:
    assert await _upload(store, (OLD,), pool_id, "ABCDE-12345") == 1
    with pytest.raises(KeyringMismatch) as caught:
        await _keyring(store, NEW).unlock()
    assert caught.value.problem is KeyringProblem.MASTER_KEYS_MISSING
    assert caught.value.missing == (master_key_id(OLD),)
    assert caught.value.configured == (master_key_id(NEW),)
    assert OLD.hex() not in repr(caught.value)
    assert NEW.hex() not in repr(caught.value)


async def test_a_store_refuses_keys_that_cannot_reproduce_its_index_key(store: Store) -> None:
    async with store.transaction() as tx:
        sealed = AesGcmKeyCipher([OLD]).seal(os.urandom(32).hex(), context=b"autokey/index-key")
        await tx.keyring.pin_index_key(PinnedIndexKey(id="00000000", sealed=sealed))
    with pytest.raises(KeyringMismatch) as caught:
        await _keyring(store, OLD).unlock()
    assert caught.value.problem is KeyringProblem.INDEX_KEY_NOT_REPRODUCIBLE
    assert caught.value.index_key_id == "00000000"


async def test_deduplication_holds_across_a_rotation_and_a_reseal(
    store: Store, pool_id: PoolId
) -> None:
    assert await _upload(store, (OLD,), pool_id, "ROTATE-0001") == 1
    assert await _upload(store, (NEW, OLD), pool_id, "ROTATE-0001") == 0
    assert await _upload(store, (NEW, OLD), pool_id, "ROTATE-0002") == 1
    reports: list[int] = []
    report = await _keyring(store, NEW, OLD).reseal(lambda r: reports.append(r.resealed), 1)
    assert (report.resealed, report.index_key_resealed, report.still_needed) == (1, True, ())
    assert reports == [1]
    # The old key is retired: the check passes without it and duplicates are still caught.
    assert await _upload(store, (NEW,), pool_id, "ROTATE-0001") == 0
    assert await _upload(store, (NEW,), pool_id, "ROTATE-0002") == 0
    async with store.transaction() as tx:
        assert await tx.keyring.master_key_ids() == {master_key_id(NEW)}
        keys = (await tx.keys.list_in_pool(pool_id, None, PageRequest())).items
    cipher = AesGcmKeyCipher([NEW])
    opened = {cipher.open(k.sealed, context=key_context(k.pool_id, k.id)) for k in keys}
    assert opened == {"ROTATE-0001", "ROTATE-0002"}


async def test_an_interrupted_reseal_resumes_where_it_stopped(
    store: Store, pool_id: PoolId
) -> None:
    for n in range(7):
        await _upload(store, (OLD,), pool_id, f"RESUME-{n:04}")

    class Interrupted(Exception):
        pass

    def stop_after_first_batch(report: ResealReport) -> None:
        raise Interrupted(report.resealed)

    with pytest.raises(Interrupted):
        await _keyring(store, NEW, OLD).reseal(stop_after_first_batch, 3)
    async with store.transaction() as tx:
        assert len(await tx.keyring.sealed_under([master_key_id(NEW)], None, 10)) == 3
    report = await _keyring(store, NEW, OLD).reseal(lambda _: None, 3)
    assert (report.resealed, report.still_needed) == (4, ())
    assert (await _keyring(store, NEW, OLD).reseal(lambda _: None, 3)).resealed == 0
    await _keyring(store, NEW).unlock()


async def test_a_store_filled_before_the_pinned_index_key_keeps_its_fingerprints(
    store: Store, pool_id: PoolId
) -> None:
    legacy = HmacBlindIndexKeys([OLD])
    key = b.key(pool_id, "LEGACY-0001")
    key.sealed = AesGcmKeyCipher([OLD]).seal(
        "LEGACY-0001", context=key_context(key.pool_id, key.id)
    )
    key.fingerprint = legacy.blind_index(legacy.legacy_keys()[0]).fingerprint("LEGACY-0001")
    async with store.transaction() as tx:
        await tx.keys.add_new([key])
    index = await _keyring(store, NEW, OLD).unlock()
    assert index.fingerprint("LEGACY-0001") == key.fingerprint
    assert await _upload(store, (NEW, OLD), pool_id, "LEGACY-0001") == 0


async def test_legacy_fingerprints_no_configured_key_reproduces_are_refused(
    store: Store, pool_id: PoolId
) -> None:
    key = b.key(pool_id)  # its fingerprint is made under an unrelated index key
    async with store.transaction() as tx:
        await tx.keys.add_new([key])
    masters = (bytes(range(32)),)  # the builders' master key, so the rows open
    with pytest.raises(KeyringMismatch) as caught:
        await _keyring(store, *masters).unlock()
    assert caught.value.problem is KeyringProblem.INDEX_KEY_NOT_REPRODUCIBLE
    async with store.transaction() as tx:
        assert await tx.keyring.index_key() is None


async def _paid_order_with_keys(
    store: Store, stock: int, damaged: int = 1
) -> tuple[OrderId, list[KeyId]]:
    """A paid order holding the oldest of `stock` keys; the oldest `damaged` keys (its own
    first) have one flipped bit in their ciphertext, so they no longer open. Returns the order
    and the key ids, its own first, then the others in claim order."""
    owner, buyer = b.seller(), b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    order = b.order(offer, buyer)
    keys = [b.key(pool.id) for _ in range(stock)]
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
        await tx.keys.add_new(keys)
        await tx.orders.add(order)
        claimed = await tx.keys.claim(pool.id, order.id, 1, b.T0)
        order.pay(b.T0)
        await tx.orders.save(order)
        assert claimed == [keys[0].id]
        for key in keys[:damaged]:
            await tx.keyring.reseal_key(key.id, key.sealed[:-1] + bytes([key.sealed[-1] ^ 1]))
    return order.id, [k.id for k in keys]


async def test_an_unreadable_reserved_key_is_set_aside_and_replaced_from_stock(
    store: Store,
) -> None:
    order_id, (bad, spare) = await _paid_order_with_keys(store, stock=2)
    order = await _keyring(store, bytes(range(32))).set_aside_unreadable(order_id)
    assert order is not None
    assert order.status is OrderStatus.PAID
    async with store.transaction() as tx:
        assert [k.id for k in await tx.keys.for_order(order_id)] == [spare]
        set_aside = await tx.keys.get(bad)
        events = (await tx.audit.list_events(None, PageRequest())).items
    assert set_aside is not None
    assert set_aside.status is KeyStatus.INVALID
    assert [(e.action, e.key_ids, e.details) for e in events] == [
        (AuditAction.KEY_INVALIDATED, (bad,), {"channel": "api", "reason": KEYS_UNREADABLE}),
        (AuditAction.KEYS_RESERVED, (spare,), {"channel": "api", "reason": KEYS_UNREADABLE}),
    ]


async def test_an_unreadable_key_without_replacement_cancels_the_paid_order(store: Store) -> None:
    order_id, (bad,) = await _paid_order_with_keys(store, stock=1)
    order = await _keyring(store, bytes(range(32))).set_aside_unreadable(order_id)
    assert order is not None
    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELED, KEYS_UNREADABLE)
    with pytest.raises(OrderKeysUnreadable):
        order.fulfill(b.T0)
    async with store.transaction() as tx:
        assert await tx.orders.get(order_id) == order
        key = await tx.keys.get(bad)
    assert key is not None
    assert (key.status, key.order_id) == (KeyStatus.INVALID, None)


async def test_unreadable_replacements_are_set_aside_too_until_one_opens(store: Store) -> None:
    order_id, (own, first_spare, second_spare) = await _paid_order_with_keys(store, 3, damaged=2)
    order = await _keyring(store, bytes(range(32))).set_aside_unreadable(order_id)
    assert order is not None
    assert order.status is OrderStatus.PAID
    async with store.transaction() as tx:
        assert [k.id for k in await tx.keys.for_order(order_id)] == [second_spare]
        statuses = [(await tx.keys.get(k)).status for k in (own, first_spare)]  # type: ignore[union-attr]
        (invalidated, *_) = (await tx.audit.list_events(None, PageRequest())).items
    assert statuses == [KeyStatus.INVALID, KeyStatus.INVALID]
    assert invalidated.key_ids == (own, first_spare)


async def test_webhook_secrets_are_needed_keys_and_a_reseal_moves_them_to_the_new_key(
    store: Store,
) -> None:
    await _keyring(store, OLD).unlock()  # a server started once: the index key is pinned
    middle = os.urandom(32)
    endpoint = b.endpoint(SELLER)
    endpoint.sealed_secret = AesGcmKeyCipher([middle]).seal(
        "whsec_c2VjcmV0", context=secret_context(endpoint.id)
    )
    async with store.transaction() as tx:
        await tx.endpoints.add(endpoint)
        assert await tx.keyring.master_key_ids() == {master_key_id(OLD), master_key_id(middle)}
    rotated = _keyring(store, NEW, middle, OLD)
    await rotated.unlock()
    await rotated.reseal(lambda _report: None)
    async with store.transaction() as tx:
        assert await tx.keyring.master_key_ids() == {master_key_id(NEW)}
        resealed = await tx.endpoints.get(endpoint.id)
    assert resealed is not None
    opened = AesGcmKeyCipher([NEW]).open(
        resealed.sealed_secret, context=secret_context(endpoint.id)
    )
    assert opened == "whsec_c2VjcmV0"
    assert attrs.evolve(resealed, sealed_secret=endpoint.sealed_secret) == endpoint
