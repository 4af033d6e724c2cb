"""The problem table alone decides each answer: status, code, title, headers and body."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from autokey.domain.model import errors as e
from autokey.domain.model.webhooks import Rejection
from autokey.entrypoints.web.problems import problem_middleware


async def _answer(error: Exception) -> tuple[int, dict[str, str], dict[str, Any]]:
    async def handler(request: web.Request) -> web.Response:
        raise error

    app = web.Application(middlewares=[problem_middleware])
    app.router.add_get("/", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/")
        return response.status, dict(response.headers), await response.json()


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        (Rejection.INVALID_SIGNATURE, 401),
        (Rejection.STALE_TIMESTAMP, 401),
        (Rejection.REPLAYED_NONCE, 401),
        (Rejection.MALFORMED_EVENT, 400),
        (Rejection.PAYLOAD_TOO_LARGE, 413),
    ],
)
async def test_a_webhook_rejection_names_its_reason_and_echoes_nothing(
    reason: Rejection, status: int
) -> None:
    answer, headers, body = await _answer(e.WebhookRejected(reason=reason))
    assert (answer, body["status"], body["code"]) == (status, status, reason.value)
    assert set(body) == {"type", "title", "status", "code"}
    assert "WWW-Authenticate" not in headers


async def test_an_unauthenticated_caller_is_challenged_and_told_why() -> None:
    answer, headers, body = await _answer(e.Unauthenticated(reason="unknown_token"))
    assert (answer, body["code"], body["reason"]) == (401, "unauthenticated", "unknown_token")
    assert headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("domain", "wire"),
    [
        ("key_pool_id", "keyPoolId"),
        ("g2a_product_id", "g2aProductId"),
        ("low_stock_threshold", "lowStockThreshold"),
        ("quantity", "quantity"),
        ("idempotency_key", "Idempotency-Key"),
        ("body.low_stock_threshold", "body.low_stock_threshold"),  # a path cattrs wrote
        ("price.amount", "price.amount"),
    ],
)
async def test_the_edge_names_each_invalid_field_as_the_wire_does(domain: str, wire: str) -> None:
    answer, _, body = await _answer(e.InvalidInput.of(domain, "some_problem"))
    assert (answer, body["errors"]) == (400, [{"field": wire, "code": "some_problem"}])
