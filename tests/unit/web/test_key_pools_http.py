"""The key pool API over HTTP, on the in-memory store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from autokey.adapters.memory.store import MemoryStore
from autokey.domain.model.auth import Role
from tests.http import Api, captured_logs, running_api

PROBLEM = "application/problem+json"


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running_api(MemoryStore()) as running:
        yield running


async def _pool(api: Api, seller: dict[str, str]) -> str:
    response = await api.client.post("/key-pools", json={"name": "Steam"}, headers=seller)
    assert response.status == 201
    return str((await response.json())["id"])


async def test_health_answers_without_authentication(api: Api) -> None:
    response = await api.client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_missing_or_unknown_token_is_401_problem(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        response = await api.client.post("/key-pools", json={}, headers=headers)
        assert response.status == 401
        assert response.content_type == PROBLEM
        assert (await response.json())["code"] == "unauthenticated"


async def test_a_buyer_cannot_create_pools(api: Api) -> None:
    response = await api.client.post("/key-pools", headers=await api.token(Role.BUYER))
    assert response.status == 403
    assert (await response.json())["code"] == "forbidden"


async def test_create_pool_then_read_it_with_zero_counts(api: Api) -> None:
    seller = await api.token()
    response = await api.client.post("/key-pools", json={"name": "Steam"}, headers=seller)
    created = await response.json()
    assert created["name"] == "Steam"
    assert created["sellerId"] == seller["X-Subject"]
    read = await (await api.client.get(f"/key-pools/{created['id']}", headers=seller)).json()
    assert read == created
    assert (read["totalKeys"], read["availableKeys"], read["invalidKeys"]) == (0, 0, 0)


async def test_upload_reports_added_duplicates_and_invalid_per_line(api: Api) -> None:
    seller = await api.token()
    pool = await _pool(api, seller)
    keys = ["AAAAA-11111", " BBBBB-22222 ", "AAAAA-11111", "abc", "", "CC CC-333", "x" * 257]
    response = await api.client.post(
        f"/key-pools/{pool}/keys/upload", json={"keys": keys}, headers=seller
    )
    assert response.status == 200
    report = await response.json()
    assert (report["added"], report["duplicates"], report["invalid"]) == (2, 1, 3)
    assert report["errors"] == [
        {"line": 3, "code": "duplicate"},
        {"line": 4, "code": "invalid_length"},
        {"line": 6, "code": "invalid_characters"},
        {"line": 7, "code": "invalid_length"},
    ]
    assert report["availableKeys"] == 2
    assert report["totalKeys"] == 2
    again = await api.client.post(
        f"/key-pools/{pool}/keys/upload",
        data="BBBBB-22222\r\nDDDDD-44444\n",
        headers={**seller, "Content-Type": "text/plain"},
    )
    second = await again.json()
    assert (second["added"], second["duplicates"], second["availableKeys"]) == (1, 1, 3)


async def test_a_key_in_another_sellers_pool_is_a_duplicate(api: Api) -> None:
    first, second = await api.token(), await api.token()
    pool_a, pool_b = await _pool(api, first), await _pool(api, second)
    uploaded = await api.client.post(
        f"/key-pools/{pool_a}/keys/upload", json={"keys": ["SHARED-KEY"]}, headers=first
    )
    assert uploaded.status == 200
    report = await uploaded.json()
    assert (report["added"], report["duplicates"], report["invalid"]) == (1, 0, 0)
    response = await api.client.post(
        f"/key-pools/{pool_b}/keys/upload", json={"keys": ["SHARED-KEY"]}, headers=second
    )
    assert response.status == 200
    report = await response.json()
    assert (report["added"], report["duplicates"], report["invalid"]) == (0, 1, 0)
    assert report["errors"] == [{"line": 1, "code": "duplicate"}]


async def test_json_upload_over_the_cap_says_so(api: Api) -> None:
    seller = await api.token()
    pool = await _pool(api, seller)
    keys = [f"KEY-{i:06d}" for i in range(10_001)]
    response = await api.client.post(
        f"/key-pools/{pool}/keys/upload", json={"keys": keys}, headers=seller
    )
    assert response.status == 413
    problem = await response.json()
    assert problem["code"] == "too_many_keys"
    assert problem["limit"] == 10_000


async def test_other_sellers_pool_is_404_everywhere(api: Api) -> None:
    owner, stranger = await api.token(), await api.token()
    pool = await _pool(api, owner)
    for method, path in [
        ("GET", f"/key-pools/{pool}"),
        ("GET", f"/key-pools/{pool}/keys"),
        ("POST", f"/key-pools/{pool}/keys/upload"),
        ("DELETE", f"/key-pools/{pool}/keys/00000000-0000-0000-0000-000000000000"),
    ]:
        response = await api.client.request(
            method, path, json={"keys": ["ZZZZZ-1"]}, headers=stranger
        )
        assert response.status == 404, (method, path)
        assert (await response.json())["code"] == "not_found"
    admin = await api.token(Role.ADMIN)
    assert (await api.client.get(f"/key-pools/{pool}", headers=admin)).status == 200


async def test_key_list_is_metadata_only_and_paginated(api: Api) -> None:
    seller = await api.token()
    pool = await _pool(api, seller)
    secrets = [f"SECRET-{i:04d}-PLAIN" for i in range(5)]
    await api.client.post(f"/key-pools/{pool}/keys/upload", json={"keys": secrets}, headers=seller)
    first = await api.client.get(f"/key-pools/{pool}/keys?limit=3", headers=seller)
    body = await first.text()
    page = await first.json()
    assert len(page["items"]) == 3
    assert set(page["items"][0]) == {
        "id",
        "status",
        "createdAt",
        "reservedAt",
        "deliveredAt",
        "orderId",
    }
    rest = await (
        await api.client.get(
            f"/key-pools/{pool}/keys?limit=3&cursor={page['nextCursor']}", headers=seller
        )
    ).json()
    assert len(rest["items"]) == 2
    assert rest["nextCursor"] is None
    assert not any(s in body for s in secrets)


async def test_invalidate_available_key_then_conflict_on_reserved(api: Api) -> None:
    seller = await api.token()
    pool = await _pool(api, seller)
    await api.client.post(
        f"/key-pools/{pool}/keys/upload", json={"keys": ["K1-AAAA", "K2-BBBB"]}, headers=seller
    )
    keys = (await (await api.client.get(f"/key-pools/{pool}/keys", headers=seller)).json())["items"]
    response = await api.client.delete(f"/key-pools/{pool}/keys/{keys[0]['id']}", headers=seller)
    assert response.status == 204
    counts = await (await api.client.get(f"/key-pools/{pool}", headers=seller)).json()
    assert (counts["availableKeys"], counts["invalidKeys"]) == (1, 1)
    invalid = await api.client.get(f"/key-pools/{pool}/keys?status=invalid", headers=seller)
    assert [k["id"] for k in (await invalid.json())["items"]] == [keys[0]["id"]]
    async with api.container.store().transaction() as tx:
        from autokey.domain.model.ids import OrderId, PoolId
        from tests.builders import T0, new_uuid

        await tx.keys.claim(PoolId(__import__("uuid").UUID(pool)), OrderId(new_uuid()), 1, T0)
    conflict = await api.client.delete(f"/key-pools/{pool}/keys/{keys[1]['id']}", headers=seller)
    assert conflict.status == 409
    assert (await conflict.json())["code"] == "key_not_available"


async def test_bad_input_is_a_problem_never_a_500(api: Api) -> None:
    seller = await api.token()
    pool = await _pool(api, seller)
    cases = [
        ("POST", "/key-pools", "{not json", "application/json", 400),
        ("POST", "/key-pools", '{"name": 5}', "application/json", 400),
        ("POST", "/key-pools", '{"color": "red"}', "application/json", 400),
        ("POST", f"/key-pools/{pool}/keys/upload", '{"keys": "x"}', "application/json", 400),
        ("POST", f"/key-pools/{pool}/keys/upload", "[]", "application/json", 400),
        ("POST", f"/key-pools/{pool}/keys/upload", "<x/>", "application/xml", 415),
        ("GET", f"/key-pools/{pool}/keys?limit=0", "", "text/plain", 400),
        ("GET", f"/key-pools/{pool}/keys?cursor=!!", "", "text/plain", 400),
        ("GET", f"/key-pools/{pool}/keys?status=lost", "", "text/plain", 400),
        ("GET", "/key-pools/not-a-uuid", "", "text/plain", 404),
        ("GET", "/nowhere", "", "text/plain", 404),
        ("PUT", "/key-pools", "", "text/plain", 405),
    ]
    for method, path, body, ctype, status in cases:
        response = await api.client.request(
            method, path, data=body, headers={**seller, "Content-Type": ctype}
        )
        assert response.status == status, (method, path, body)
        assert response.content_type == PROBLEM
        problem = await response.json()
        assert problem["status"] == status
        assert problem["type"].startswith("https://autokey.dev/problems/")


async def test_plaintext_never_reaches_logs_reports_lists_or_reprs(api: Api) -> None:
    seller = await api.token()
    secret = "TOPSECRET-PLAINTEXT-KEY"
    async with captured_logs() as logs:
        pool = await _pool(api, seller)
        upload = await api.client.post(
            f"/key-pools/{pool}/keys/upload",
            json={"keys": [secret, secret, "bad key"]},
            headers=seller,
        )
        listing = await api.client.get(f"/key-pools/{pool}/keys", headers=seller)
        texts = [await upload.text(), await listing.text()]
        async with api.container.store().transaction() as tx:
            from uuid import UUID

            from autokey.domain.model.ids import PoolId
            from autokey.domain.model.pages import PageRequest

            keys = await tx.keys.list_in_pool(PoolId(UUID(pool)), None, PageRequest())
        texts.append(repr(keys.items))
    texts.append(logs.getvalue())
    assert all(secret not in text for text in texts)
    assert "sealed" not in texts[-2]


async def test_a_revoked_token_is_refused_at_once(api: Api) -> None:
    secret, token = await api.container.auth().issue_token(Role.SELLER)
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await api.client.post("/key-pools", json={}, headers=headers)).status == 201
    assert await api.container.auth().revoke(token.id) is True
    response = await api.client.post("/key-pools", json={}, headers=headers)
    assert response.status == 401
