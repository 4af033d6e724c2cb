"""Contract of the store ports for tokens, pools and keys: memory, SQLite and PostgreSQL
must all behave exactly like this."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import attrs
import pytest

from autokey.domain.model.auth import Role
from autokey.domain.model.errors import DuplicateResource
from autokey.domain.model.ids import OrderId
from autokey.domain.model.keys import KeyStatus, PoolCounts
from autokey.domain.model.pages import PageRequest
from autokey.ports.store import Store
from tests import builders as b


class _Boom(Exception):
    pass


async def test_token_is_found_by_its_secret_hash_only(store: Store) -> None:
    token = b.token(Role.BUYER)
    async with store.transaction() as tx:
        await tx.tokens.add(token)
    async with store.transaction() as tx:
        assert await tx.tokens.find_by_secret_hash(token.secret_hash) == token
        assert await tx.tokens.find_by_secret_hash(b"\x00" * 32) is None


async def test_adding_a_token_with_a_known_hash_is_a_duplicate(store: Store) -> None:
    token = b.token()
    async with store.transaction() as tx:
        await tx.tokens.add(token)
    clash = attrs.evolve(token, id=b.token().id, name="again")
    with pytest.raises(DuplicateResource):
        async with store.transaction() as tx:
            await tx.tokens.add(clash)


async def test_a_token_is_revoked_once(store: Store) -> None:
    token = b.token()
    async with store.transaction() as tx:
        await tx.tokens.add(token)
        assert await tx.tokens.revoke(token.id, b.T0) is True
        assert await tx.tokens.revoke(token.id, b.T0) is False
        assert await tx.tokens.revoke(b.token().id, b.T0) is False
    async with store.transaction() as tx:
        found = await tx.tokens.find_by_secret_hash(token.secret_hash)
    assert found is not None
    assert found.revoked_at == b.T0


async def test_tokens_are_listed_in_creation_order_with_their_last_use(store: Store) -> None:
    first, second = b.token(Role.SELLER), b.token(Role.BUYER)
    async with store.transaction() as tx:
        await tx.tokens.add(second)  # stored out of id order
        await tx.tokens.add(first)
    later = b.T0 + timedelta(minutes=5)
    async with store.transaction() as tx:
        await tx.tokens.record_use({first.id: later, b.token().id: later})
        await tx.tokens.record_use({first.id: b.T0})  # never moves backwards
    async with store.transaction() as tx:
        listed = await tx.tokens.list_all()
    assert [t.id for t in listed] == sorted([first.id, second.id])
    by_id = {t.id: t for t in listed}
    assert by_id[first.id].last_used_at == later
    assert by_id[second.id].last_used_at is None
    assert by_id[first.id].secret_hash == first.secret_hash


async def test_pool_round_trips_and_unknown_pool_is_none(store: Store) -> None:
    pool = b.pool(name="Steam keys")
    async with store.transaction() as tx:
        await tx.pools.add(pool)
    async with store.transaction() as tx:
        assert await tx.pools.get(pool.id) == pool
        assert await tx.pools.get(b.pool().id) is None
        assert await tx.pools.counts(b.pool().id) == PoolCounts()


async def test_pools_are_listed_per_seller_in_pages(store: Store) -> None:
    owner = b.seller()
    mine = [b.pool(owner, name=f"p{i}") for i in range(5)]
    async with store.transaction() as tx:
        for p in [*mine, b.pool()]:
            await tx.pools.add(p)
    async with store.transaction() as tx:
        first = await tx.pools.list_for_seller(owner, PageRequest(limit=3))
        assert [p.id for p in first.items] == [p.id for p in mine[:3]]
        assert first.next_after == mine[2].id
        rest = await tx.pools.list_for_seller(owner, PageRequest(limit=3, after=first.next_after))
        assert [p.id for p in rest.items] == [p.id for p in mine[3:]]
        assert rest.next_after is None


async def test_a_rolled_back_transaction_leaves_nothing(store: Store) -> None:
    pool = b.pool()
    with pytest.raises(_Boom):
        async with store.transaction() as tx:
            await tx.pools.add(pool)
            await tx.keys.add_new([b.key(pool.id)])
            raise _Boom
    async with store.transaction() as tx:
        assert await tx.pools.get(pool.id) is None
        assert await tx.pools.counts(pool.id) == PoolCounts()


async def test_add_new_skips_fingerprints_stored_in_any_pool(store: Store) -> None:
    p1, p2 = b.pool(), b.pool()
    first = [b.key(p1.id, "AAAAA-1"), b.key(p1.id, "AAAAA-2")]
    async with store.transaction() as tx:
        await tx.pools.add(p1)
        await tx.pools.add(p2)
        assert await tx.keys.add_new(first) == {k.id for k in first}
    again = [b.key(p2.id, "AAAAA-2"), b.key(p2.id, "AAAAA-3")]
    async with store.transaction() as tx:
        assert await tx.keys.add_new(again) == {again[1].id}
        assert await tx.pools.counts(p1.id) == PoolCounts(available=2)
        assert await tx.pools.counts(p2.id) == PoolCounts(available=1)


async def test_a_key_round_trips_with_its_material(store: Store) -> None:
    pool = b.pool()
    key = b.key(pool.id)
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.keys.add_new([key])
    async with store.transaction() as tx:
        assert await tx.keys.get(key.id) == key
        assert await tx.keys.get(b.key(pool.id).id) is None


async def test_save_persists_status_but_not_material(store: Store) -> None:
    pool = b.pool()
    key = b.key(pool.id)
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.keys.add_new([key])
    async with store.transaction() as tx:
        loaded = await tx.keys.get(key.id, for_update=True)
        assert loaded is not None
        loaded.invalidate()
        await tx.keys.save(loaded)
    async with store.transaction() as tx:
        again = await tx.keys.get(key.id)
        assert again is not None
        assert again.status is KeyStatus.INVALID
        assert again.sealed == key.sealed
        assert await tx.pools.counts(pool.id) == PoolCounts(invalid=1)


async def test_keys_list_by_status_in_id_order_with_cursor(store: Store) -> None:
    pool = b.pool()
    keys = [b.key(pool.id) for _ in range(7)]
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.keys.add_new(keys)
        doomed = await tx.keys.get(keys[1].id)
        assert doomed is not None
        doomed.invalidate()
        await tx.keys.save(doomed)
    async with store.transaction() as tx:
        page = await tx.keys.list_in_pool(pool.id, KeyStatus.AVAILABLE, PageRequest(limit=4))
        assert [k.id for k in page.items] == [keys[i].id for i in (0, 2, 3, 4)]
        tail = await tx.keys.list_in_pool(
            pool.id, KeyStatus.AVAILABLE, PageRequest(limit=4, after=page.next_after)
        )
        assert [k.id for k in tail.items] == [keys[5].id, keys[6].id]
        assert tail.next_after is None
        everything = await tx.keys.list_in_pool(pool.id, None, PageRequest(limit=100))
        assert len(everything.items) == 7


async def test_claim_reserves_oldest_keys_for_the_order(store: Store) -> None:
    pool, keys = await b.stored_keys(store, 5)
    order_id = OrderId(b.new_uuid())
    async with store.transaction() as tx:
        claimed = await tx.keys.claim(pool.id, order_id, 3, b.T0)
    assert list(claimed) == [k.id for k in keys[:3]]
    async with store.transaction() as tx:
        assert await tx.pools.counts(pool.id) == PoolCounts(available=2, reserved=3)
        mine = await tx.keys.for_order(order_id)
        assert [k.id for k in mine] == [k.id for k in keys[:3]]
        assert all(k.status is KeyStatus.RESERVED and k.order_id == order_id for k in mine)
        assert await tx.keys.count_available(pool.id) == 2


async def test_keys_a_rolled_back_transaction_claimed_or_set_aside_are_claimed_again(
    store: Store,
) -> None:
    pool, keys = await b.stored_keys(store, 3)
    with pytest.raises(_Boom):
        async with store.transaction() as tx:
            oldest = await tx.keys.get(keys[0].id)
            assert oldest is not None
            oldest.invalidate()
            await tx.keys.save(oldest)
            assert await tx.keys.claim(pool.id, OrderId(b.new_uuid()), 1, b.T0) == [keys[1].id]
            raise _Boom
    order_id = OrderId(b.new_uuid())
    async with store.transaction() as tx:
        claimed = await tx.keys.claim(pool.id, order_id, 3, b.T0)
    assert list(claimed) == [k.id for k in keys]
    async with store.transaction() as tx:
        assert [k.id for k in await tx.keys.for_order(order_id)] == [k.id for k in keys]
        assert await tx.pools.counts(pool.id) == PoolCounts(reserved=3)


async def test_a_key_added_and_claimed_in_a_rolled_back_transaction_is_in_no_order(
    store: Store,
) -> None:
    pool, _ = await b.stored_keys(store, 0)
    order_id = OrderId(b.new_uuid())
    with pytest.raises(_Boom):
        async with store.transaction() as tx:
            await tx.keys.add_new([b.key(pool.id)])
            assert len(await tx.keys.claim(pool.id, order_id, 1, b.T0)) == 1
            raise _Boom
    async with store.transaction() as tx:
        assert await tx.keys.for_order(order_id) == []
        assert await tx.keys.delivered_to([order_id]) == {}
        assert await tx.keys.claim(pool.id, order_id, 1, b.T0) == []


async def test_claim_returns_fewer_when_the_pool_runs_dry(store: Store) -> None:
    pool = b.pool()
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.keys.add_new([b.key(pool.id), b.key(pool.id)])
        claimed = await tx.keys.claim(pool.id, OrderId(b.new_uuid()), 5, b.T0)
        assert len(claimed) == 2
        assert await tx.keys.claim(pool.id, OrderId(b.new_uuid()), 1, b.T0) == []


async def test_release_and_deliver_move_only_the_orders_reserved_keys(store: Store) -> None:
    pool = b.pool()
    keys = [b.key(pool.id) for _ in range(4)]
    first, second = OrderId(b.new_uuid()), OrderId(b.new_uuid())
    later = b.T0 + timedelta(minutes=5)
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.keys.add_new(keys)
        await tx.keys.claim(pool.id, first, 2, b.T0)
        await tx.keys.claim(pool.id, second, 1, b.T0)
    async with store.transaction() as tx:
        assert list(await tx.keys.release_order(first)) == [keys[0].id, keys[1].id]
        delivered = await tx.keys.deliver_order(second, later)
        assert [(k.id, k.status, k.order_id, k.delivered_at, k.sealed) for k in delivered] == [
            (keys[2].id, KeyStatus.DELIVERED, second, later, keys[2].sealed)
        ]
        assert await tx.keys.release_order(second) == []
    async with store.transaction() as tx:
        assert await tx.pools.counts(pool.id) == PoolCounts(available=3, delivered=1)
        delivered = await tx.keys.for_order(second)
        assert [(k.status, k.delivered_at) for k in delivered] == [(KeyStatus.DELIVERED, later)]
        released = await tx.keys.get(keys[0].id)
        assert released is not None
        assert (released.order_id, released.status) == (None, KeyStatus.AVAILABLE)


async def test_available_counts_covers_every_pool_asked(store: Store) -> None:
    full, empty = b.pool(), b.pool()
    async with store.transaction() as tx:
        await tx.pools.add(full)
        await tx.pools.add(empty)
        await tx.keys.add_new([b.key(full.id) for _ in range(3)])
    async with store.transaction() as tx:
        counts = await tx.pools.available_counts([full.id, empty.id])
    assert dict(counts) == {full.id: 3, empty.id: 0}


async def test_a_key_is_found_by_its_fingerprint_in_any_pool(store: Store) -> None:
    pool = b.pool()
    key = b.key(pool.id, "FOUND-BY-INDEX")
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.keys.add_new([key])
    async with store.transaction() as tx:
        assert await tx.keys.find_by_fingerprint(key.fingerprint) == key
        assert await tx.keys.find_by_fingerprint(b.key(pool.id).fingerprint) is None


async def test_counts_stay_exact_across_rollbacks_saves_and_folds(store: Store) -> None:
    pool, other = b.pool(), b.pool()
    keys = [b.key(pool.id) for _ in range(4)]
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.pools.add(other)
        await tx.keys.add_new([*keys, b.key(other.id)])
        await tx.keys.claim(pool.id, OrderId(b.new_uuid()), 1, b.T0)
    with pytest.raises(_Boom):
        async with store.transaction() as tx:
            await tx.keys.claim(pool.id, OrderId(b.new_uuid()), 2, b.T0)
            raise _Boom
    async with store.transaction() as tx:
        assert await tx.pools.fold_counts() >= 0
        invalid = attrs.evolve(keys[3], status=KeyStatus.INVALID)
        await tx.keys.save(invalid)
        await tx.keys.save(invalid)  # saving the same status again moves nothing
    expected = PoolCounts(available=2, reserved=1, invalid=1)
    for _ in range(2):  # before and after folding, twice
        async with store.transaction() as tx:
            assert await tx.pools.counts(pool.id) == expected
            assert await tx.pools.counts(other.id) == PoolCounts(available=1)
            assert dict(await tx.pools.available_counts([pool.id])) == {pool.id: 2}
        async with store.transaction() as tx:
            await tx.pools.fold_counts()


async def test_released_keys_are_claimed_first_after_housekeeping_moved_on(store: Store) -> None:
    pool = b.pool()
    keys = [b.key(pool.id) for _ in range(4)]
    first = OrderId(b.new_uuid())
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.keys.add_new(keys)
        await tx.keys.claim(pool.id, first, 2, b.T0)
    async with store.transaction() as tx:  # claims may now start past the first two keys
        await tx.keys.advance_claim_marks()
    async with store.transaction() as tx:
        assert list(await tx.keys.release_order(first)) == [keys[0].id, keys[1].id]
    async with store.transaction() as tx:
        claimed = await tx.keys.claim(pool.id, OrderId(b.new_uuid()), 3, b.T0)
    assert list(claimed) == [k.id for k in keys[:3]]


async def test_a_stage_stores_its_new_keys_and_names_the_positions_it_skips(
    store: Store,
) -> None:
    p1, p2 = b.pool(), b.pool()
    stored_before = b.key(p1.id, "STAGE-OLD")
    async with store.transaction() as tx:
        await tx.pools.add(p1)
        await tx.pools.add(p2)
        await tx.keys.add_new([stored_before])
    staged = [
        b.key(p2.id, "STAGE-1"),
        b.key(p2.id, "STAGE-OLD"),  # stored before, in another pool
        b.key(p2.id, "STAGE-2"),
        b.key(p2.id, "STAGE-1"),  # repeats position 0: the earlier one wins
    ]
    stage = store.stage_keys()
    try:
        stage.put(staged[:2])
        stage.put(staged[2:])
        stage.end()
        assert len(stage) == 4
        async with store.bulk_transaction() as tx:
            assert list(await tx.keys.add_staged(stage)) == [1, 3]
    finally:
        stage.close()
    async with store.transaction() as tx:
        assert await tx.pools.counts(p2.id) == PoolCounts(available=2)
        for key in (staged[0], staged[2]):
            assert await tx.keys.get(key.id) == key
        assert await tx.keys.get(staged[3].id) is None


async def test_a_stage_of_only_new_keys_skips_none(store: Store) -> None:
    pool = b.pool()
    keys = [b.key(pool.id) for _ in range(50)]
    stage = store.stage_keys()
    try:
        stage.put(keys)
        stage.end()
        async with store.bulk_transaction() as tx:
            await tx.pools.add(pool)
            assert list(await tx.keys.add_staged(stage)) == []
    finally:
        stage.close()
    async with store.transaction() as tx:
        assert await tx.pools.counts(pool.id) == PoolCounts(available=50)
        assert await tx.keys.get(keys[-1].id) == keys[-1]


@pytest.mark.parametrize("repeat_late", [False, True], ids=["copy", "merge"])
async def test_a_stage_is_stored_while_it_fills_and_only_once_it_ends(
    store: Store, repeat_late: bool
) -> None:
    pool = b.pool()
    async with store.transaction() as tx:
        await tx.pools.add(pool)
    batches = [[b.key(pool.id, f"FILLING-{n}-{i}") for i in range(30)] for n in range(4)]
    if repeat_late:  # the last batch repeats the first key: found only after the others
        batches[-1][-1] = b.key(pool.id, "FILLING-0-0")
    stage = store.stage_keys()
    try:
        async with store.bulk_transaction() as tx:
            storing = asyncio.ensure_future(tx.keys.add_staged(stage))
            for batch in batches:
                await asyncio.to_thread(stage.put, batch)
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
            assert not storing.done()  # everything is put, but the stage has not ended
            stage.end()
            skipped = await asyncio.wait_for(storing, timeout=10)
    finally:
        stage.close()
    assert list(skipped) == ([119] if repeat_late else [])
    async with store.transaction() as tx:
        assert await tx.pools.counts(pool.id) == PoolCounts(available=120 - len(skipped))
        assert await tx.keys.get(batches[2][7].id) == batches[2][7]


@pytest.mark.parametrize("with_repeat", [False, True], ids=["copy", "merge"])
async def test_a_rolled_back_stage_leaves_nothing(store: Store, with_repeat: bool) -> None:
    pool = b.pool()
    async with store.transaction() as tx:
        await tx.pools.add(pool)
    keys = [b.key(pool.id, f"ROLLED-BACK-{i}") for i in range(20)]
    stage = store.stage_keys()
    try:
        stage.put([*keys, b.key(pool.id, "ROLLED-BACK-0")] if with_repeat else keys)
        stage.end()
        with pytest.raises(_Boom):
            async with store.bulk_transaction() as tx:
                await tx.keys.add_staged(stage)
                raise _Boom
    finally:
        stage.close()
    async with store.transaction() as tx:
        assert await tx.pools.counts(pool.id) == PoolCounts()
