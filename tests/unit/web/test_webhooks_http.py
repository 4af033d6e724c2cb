"""Webhook verification as a payment provider would test it: every edge, 0 false accepts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

from autokey.adapters.memory.store import MemoryStore
from autokey.domain.model.ids import OrderId
from autokey.domain.model.orders import UpstreamState
from autokey.domain.model.webhooks import WebhookEvent, WebhookOutcome, webhook_signature
from tests import builders as b
from tests.conftest import FakeClock
from tests.http import Api, captured_logs, running_api

SECRET, PREVIOUS = "current-hash-secret", "previous-hash-secret"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TS = str(int(NOW.timestamp()))


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    env = {"G2A_API_HASH": SECRET, "G2A_API_HASH_PREVIOUS": PREVIOUS}
    async with running_api(MemoryStore(), FakeClock(NOW), env) as running:
        yield running


def event(event_id: str = "evt_1", order: str = "G2A-100", kind: str = "order.paid") -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "type": kind,
            "order_id": order,
            "occurred_at": "2026-01-01T11:59:00+00:00",
            "data": {},
        }
    ).encode()


def signed(
    body: bytes, ts: str = TS, nonce: str = "n-1", secret: str = SECRET, **override: str | None
) -> dict[str, str]:
    headers: dict[str, str | None] = {
        "X-G2A-Timestamp": ts,
        "X-G2A-Nonce": nonce,
        "X-G2A-Signature": webhook_signature(secret.encode(), body, ts, nonce),
        "Content-Type": "application/json",
    }
    headers.update(override)
    return {k: v for k, v in headers.items() if v is not None}


async def post(api: Api, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    response = await api.client.post("/webhooks/g2a", data=body, headers=headers)
    return response.status, await response.json(content_type=None)


async def _linked_order(api: Api, upstream_id: str = "G2A-100") -> OrderId:
    return (await b.sourced_order(api.container.store(), upstream_id)).id


async def _stored_event(api: Api, event_id: str) -> WebhookEvent | None:
    async with api.container.store().transaction() as tx:
        return await tx.webhooks.get_event(event_id)


async def _upstream_state(api: Api, order_id: OrderId) -> UpstreamState | None:
    async with api.container.store().transaction() as tx:
        order = await tx.orders.get(order_id)
    assert order is not None
    return order.upstream_state


BODY = event()
WRONG_SIG = webhook_signature(SECRET.encode(), b"{}", TS, "n-1")
REJECTIONS = [
    ("body changed by one byte", BODY[:-1] + b" ", signed(BODY), 401, "invalid_signature"),
    (
        "signature of another body",
        BODY,
        signed(BODY, **{"X-G2A-Signature": WRONG_SIG}),
        401,
        "invalid_signature",
    ),
    ("wrong secret", BODY, signed(BODY, secret="not-the-secret"), 401, "invalid_signature"),
    ("timestamp +301 s", BODY, signed(BODY, ts=str(int(TS) + 301)), 401, "stale_timestamp"),
    ("timestamp -301 s", BODY, signed(BODY, ts=str(int(TS) - 301)), 401, "stale_timestamp"),
    ("far future", BODY, signed(BODY, ts="99999999999"), 401, "stale_timestamp"),
    ("zero timestamp", BODY, signed(BODY, ts="0"), 401, "stale_timestamp"),
    ("non-numeric timestamp", BODY, signed(BODY, ts="yesterday"), 401, "stale_timestamp"),
    ("negative timestamp", BODY, signed(BODY, ts="-5"), 401, "stale_timestamp"),
    ("fractional timestamp", BODY, signed(BODY, ts=TS + ".5"), 401, "stale_timestamp"),
    ("timestamp in ms", BODY, signed(BODY, ts=TS + "000"), 401, "stale_timestamp"),
    (
        "missing timestamp",
        BODY,
        signed(BODY, **{"X-G2A-Timestamp": None}),
        401,
        "invalid_signature",
    ),
    ("missing nonce", BODY, signed(BODY, **{"X-G2A-Nonce": None}), 401, "invalid_signature"),
    (
        "missing signature",
        BODY,
        signed(BODY, **{"X-G2A-Signature": None}),
        401,
        "invalid_signature",
    ),
    ("empty signature", BODY, signed(BODY, **{"X-G2A-Signature": ""}), 401, "invalid_signature"),
    (
        "upper-case hex signature",
        BODY,
        signed(
            BODY, **{"X-G2A-Signature": webhook_signature(SECRET.encode(), BODY, TS, "n-1").upper()}
        ),
        401,
        "invalid_signature",
    ),
    (
        "truncated signature",
        BODY,
        signed(
            BODY, **{"X-G2A-Signature": webhook_signature(SECRET.encode(), BODY, TS, "n-1")[:-2]}
        ),
        401,
        "invalid_signature",
    ),
    (
        "signature with prefix",
        BODY,
        signed(
            BODY,
            **{"X-G2A-Signature": "sha256=" + webhook_signature(SECRET.encode(), BODY, TS, "n-1")},
        ),
        401,
        "invalid_signature",
    ),
    (
        "nonce swapped after signing",
        BODY,
        {**signed(BODY), "X-G2A-Nonce": "n-2"},
        401,
        "invalid_signature",
    ),
    (
        "timestamp swapped after signing",
        BODY,
        {**signed(BODY), "X-G2A-Timestamp": str(int(TS) + 1)},
        401,
        "invalid_signature",
    ),
    ("overlong nonce", BODY, signed(BODY, nonce="n" * 129), 401, "invalid_signature"),
    ("empty body, valid signature", b"", signed(b""), 400, "malformed_event"),
    ("not JSON, valid signature", b"hello", signed(b"hello"), 400, "malformed_event"),
    ("JSON array", b"[]", signed(b"[]"), 400, "malformed_event"),
    (
        "unknown type",
        event(kind="order.exploded"),
        signed(event(kind="order.exploded")),
        400,
        "malformed_event",
    ),
    (
        "missing event_id",
        b'{"type":"order.paid","order_id":"1"}',
        signed(b'{"type":"order.paid","order_id":"1"}'),
        400,
        "malformed_event",
    ),
    (
        "order event without order_id",
        b'{"event_id":"e","type":"order.paid"}',
        signed(b'{"event_id":"e","type":"order.paid"}'),
        400,
        "malformed_event",
    ),
    (
        "naive occurred_at",
        b'{"event_id":"e","type":"order.paid","order_id":"1","occurred_at":"2026-01-01T00:00:00"}',
        signed(
            b'{"event_id":"e","type":"order.paid",'
            b'"order_id":"1","occurred_at":"2026-01-01T00:00:00"}'
        ),
        400,
        "malformed_event",
    ),
    (
        "1 MiB + 1 byte",
        b"x" * (1024 * 1024 + 1),
        signed(b"x" * (1024 * 1024 + 1)),
        413,
        "payload_too_large",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "code"), REJECTIONS, ids=[r[0] for r in REJECTIONS]
)
async def test_rejections_are_refused_with_a_distinct_code(
    api: Api, case: str, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    order_id = await _linked_order(api)
    got_status, problem = await post(api, body, headers)
    assert (got_status, problem["code"]) == (status, code), case
    assert await _upstream_state(api, order_id) is UpstreamState.CREATED
    assert await _stored_event(api, "evt_1") is None


@pytest.mark.parametrize("offset", [-300, 0, 300])
async def test_valid_within_tolerance_including_the_exact_edges(api: Api, offset: int) -> None:
    order_id = await _linked_order(api)
    status, body = await post(api, BODY, signed(BODY, ts=str(int(TS) + offset)))
    assert (status, body) == (200, {"status": "accepted", "outcome": "applied"})
    assert await _upstream_state(api, order_id) is UpstreamState.PAID


async def test_the_previous_secret_is_accepted_during_rotation(api: Api) -> None:
    order_id = await _linked_order(api)
    status, body = await post(api, BODY, signed(BODY, secret=PREVIOUS))
    assert (status, body) == (200, {"status": "accepted", "outcome": "applied"})
    assert await _upstream_state(api, order_id) is UpstreamState.PAID
    stored = await _stored_event(api, "evt_1")
    assert stored is not None
    assert (stored.outcome, stored.payload) == (WebhookOutcome.APPLIED, BODY)


async def test_a_replayed_nonce_is_refused(api: Api) -> None:
    order_id = await _linked_order(api)
    assert await post(api, BODY, signed(BODY)) == (
        200,
        {"status": "accepted", "outcome": "applied"},
    )
    status, problem = await post(api, BODY, signed(BODY))
    assert (status, problem["code"]) == (401, "replayed_nonce")
    other = event("evt_2", kind="order.complete")
    status, problem = await post(api, other, signed(other))
    assert (status, problem["code"]) == (401, "replayed_nonce")
    assert await _stored_event(api, "evt_2") is None
    assert await _upstream_state(api, order_id) is UpstreamState.PAID


async def test_twenty_concurrent_replays_accept_exactly_one(api: Api) -> None:
    order_id = await _linked_order(api)
    results = await asyncio.gather(*(post(api, BODY, signed(BODY)) for _ in range(20)))
    replies = sorted((status, body.get("code")) for status, body in results)
    assert replies == [(200, None)] + [(401, "replayed_nonce")] * 19
    assert await _upstream_state(api, order_id) is UpstreamState.PAID


async def test_a_duplicate_event_with_a_new_nonce_is_a_duplicate_with_no_second_effect(
    api: Api,
) -> None:
    order_id = await _linked_order(api)
    assert (await post(api, BODY, signed(BODY, nonce="n-1")))[0] == 200
    status, body = await post(api, BODY, signed(BODY, nonce="n-2"))
    assert (status, body) == (200, {"status": "duplicate"})
    # the duplicate's nonce is spent too
    assert (await post(api, BODY, signed(BODY, nonce="n-2")))[1]["code"] == "replayed_nonce"
    assert await _upstream_state(api, order_id) is UpstreamState.PAID


async def test_a_late_event_never_moves_an_order_backwards(api: Api) -> None:
    order_id = await _linked_order(api)
    done = event("evt_done", kind="order.complete")
    late = event("evt_late", kind="order.paid")
    async with api.container.store().transaction() as tx:
        order = await tx.orders.get(order_id)
        assert order is not None
        order.record_upstream(UpstreamState.COMPLETE, b.T0)
        await tx.orders.save(order)
    status, body = await post(api, late, signed(late, nonce="n-late"))
    assert (status, body["outcome"]) == (200, WebhookOutcome.STALE)
    assert await _upstream_state(api, order_id) is UpstreamState.COMPLETE
    assert (await post(api, done, signed(done, nonce="n-done")))[1]["outcome"] == "stale"


async def test_events_for_unknown_orders_are_stored_and_reported(api: Api) -> None:
    body = event("evt_orphan", order="NOBODY")
    status, reply = await post(api, body, signed(body))
    assert (status, reply["outcome"]) == (200, "unmatched")
    async with api.container.store().transaction() as tx:
        stored = await tx.webhooks.get_event("evt_orphan")
    assert stored is not None
    assert stored.payload == body
    assert attrs.asdict(stored)["upstream_order_id"] == "NOBODY"


async def test_rejections_are_logged_without_the_body_or_secrets(api: Api) -> None:
    marker = event("evt-SECRET-MARKER")
    async with captured_logs() as logs:
        await post(api, marker, signed(marker, secret="wrong"))
        await post(api, marker, signed(marker))
    text = logs.getvalue()
    rejected = [line for line in text.splitlines() if "webhooks.rejected" in line]
    assert len(rejected) == 1
    assert "invalid_signature" in rejected[0]
    assert "SECRET-MARKER" not in rejected[0]
    assert SECRET not in text


async def test_without_a_secret_webhooks_are_refused() -> None:
    async with running_api(MemoryStore(), FakeClock(NOW)) as bare:
        status, problem = await post(bare, BODY, signed(BODY))
    assert (status, problem["code"]) == (503, "webhooks_not_configured")


async def test_webhook_outcomes_are_counted_by_reason(api: Api) -> None:
    await _linked_order(api)
    await post(api, BODY, signed(BODY))
    await post(api, BODY, signed(BODY))
    await post(api, BODY, signed(BODY, secret="wrong"))
    text = await (await api.metrics.get("/metrics")).text()
    for reason, value in {
        "applied": 1.0,
        "replayed_nonce": 1.0,
        "invalid_signature": 1.0,
        "duplicate": 0.0,
        "stale_timestamp": 0.0,
    }.items():
        assert f'autokey_webhook_outcomes_total{{reason="{reason}"}} {value}' in text
