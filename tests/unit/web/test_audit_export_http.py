"""A pool's audit log as streamed CSV over HTTP, on the in-memory store."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from autokey.adapters.memory.store import MemoryStore
from autokey.domain.model.audit import AuditAction, AuditEvent
from autokey.domain.model.ids import EventId, PoolId
from autokey.domain.model.pages import MAX_PAGE_SIZE
from tests import builders as b
from tests.http import Api, running_api

CSV_ACCEPT = {"Accept": "text/csv"}


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running_api(MemoryStore()) as running:
        yield running


async def _rows(api: Api, pool: str, headers: dict[str, str], query: str = "") -> list[dict]:
    response = await api.client.get(
        f"/key-pools/{pool}/events{query}", headers={**headers, **CSV_ACCEPT}
    )
    assert response.status == 200, await response.text()
    assert response.content_type == "text/csv"
    assert f"pool-{pool}-events.csv" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(await response.text())))


async def _append(api: Api, pool: str, count: int) -> list[AuditEvent]:
    events = [
        AuditEvent(
            id=EventId(b.new_uuid()),
            occurred_at=b.T0 + timedelta(minutes=i),
            action=AuditAction.KEY_INVALIDATED,
            actor=None,
            pool_id=PoolId(uuid.UUID(pool)),
        )
        for i in range(count)
    ]
    async with api.container.store().transaction() as tx:
        await tx.audit.append(events)
    return events


async def test_the_whole_log_streams_past_one_page_in_order(api: Api) -> None:
    seller = await api.token()
    pool, _offer = await api.stocked_offer(seller, ["AAAAA-11111", "BBBBB-22222"])
    appended = await _append(api, pool, MAX_PAGE_SIZE + 7)
    rows = await _rows(api, pool, seller)
    assert rows[0]["action"] == "keys.uploaded"
    assert rows[0]["details"]  # the upload's counts, as JSON
    assert [r["id"] for r in rows[1:]] == [str(e.id) for e in appended]
    assert list(rows[0]) == [
        "id",
        "occurredAt",
        "action",
        "actor",
        "poolId",
        "orderId",
        "keyIds",
        "details",
    ]
    text = "".join(str(r) for r in rows)
    assert "AAAAA-11111" not in text
    assert "BBBBB-22222" not in text


async def test_since_keeps_only_later_events(api: Api) -> None:
    seller = await api.token()
    pool, _ = await api.stocked_offer(seller, [])
    appended = await _append(api, pool, 10)
    since = (b.T0 + timedelta(minutes=7)).isoformat()
    rows = await _rows(api, pool, seller, f"?since={since.replace('+', '%2B')}")
    assert [r["id"] for r in rows if r["action"] == "key.invalidated"] == [
        str(e.id) for e in appended[7:]
    ]
    bad = await api.client.get(
        f"/key-pools/{pool}/events?since=yesterday", headers={**seller, **CSV_ACCEPT}
    )
    assert bad.status == 400
    assert (await bad.json())["errors"][0]["code"] == "not_an_iso8601_time"


async def test_another_sellers_pool_is_a_404_problem_not_an_empty_file(api: Api) -> None:
    owner, other = await api.token(), await api.token()
    pool, _ = await api.stocked_offer(owner, [])
    response = await api.client.get(f"/key-pools/{pool}/events", headers={**other, **CSV_ACCEPT})
    assert response.status == 404
    assert response.content_type == "application/problem+json"


async def test_json_stays_the_default(api: Api) -> None:
    seller = await api.token()
    pool, _ = await api.stocked_offer(seller, ["AAAAA-11111"])
    response = await api.client.get(f"/key-pools/{pool}/events", headers=seller)
    assert response.content_type == "application/json"
    assert (await response.json())["items"][0]["action"] == "keys.uploaded"
