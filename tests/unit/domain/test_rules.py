"""Rules that each have one home on the model: who owns what, stock shortfalls, what
fulfilling means for an order, and G2A's one key per order."""

from __future__ import annotations

import pytest

from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.errors import NotFound
from tests import builders as b


def test_only_the_owner_or_an_admin_may_manage_a_resource_and_others_learn_nothing() -> None:
    owner = b.seller()
    pool = b.pool(owner)
    assert Principal(subject=owner, role=Role.SELLER).must_own(pool, "key_pool", pool.id) is pool
    assert Principal(subject=b.seller(), role=Role.ADMIN).must_own(pool, "key_pool", pool.id)
    stranger = Principal(subject=b.seller(), role=Role.SELLER)
    with pytest.raises(NotFound) as foreign:
        stranger.must_own(pool, "key_pool", pool.id)
    with pytest.raises(NotFound) as absent:
        stranger.must_own(None, "key_pool", pool.id)
    for refused in (foreign.value, absent.value):
        assert (refused.resource, refused.id) == ("key_pool", str(pool.id))


def test_an_order_belongs_to_its_buyer_not_to_the_seller() -> None:
    seller, buyer = b.seller(), b.seller()
    order = b.order(b.offer(seller, b.pool(seller).id), buyer)
    assert Principal(subject=buyer, role=Role.BUYER).must_own(order, "order", order.id) is order
    with pytest.raises(NotFound):
        Principal(subject=seller, role=Role.SELLER).must_own(order, "order", order.id)
