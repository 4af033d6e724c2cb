"""Responses that carry key plaintext are never cacheable, and no response names the server
software; on the in-memory store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from autokey.adapters.memory.store import MemoryStore
from autokey.domain.model.auth import Role
from autokey.entrypoints.settings import SettingsError, load_settings
from tests.http import Api, ServedApp, captured_logs, route_keys, running_api

KEYS = ["NOSTORE-KEY-00001", "NOSTORE-KEY-00002"]


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running_api(MemoryStore()) as running:
        yield running


async def test_every_order_response_with_key_plaintext_is_no_store(api: Api) -> None:
    seller, buyer = await api.token(Role.SELLER), await api.token(Role.BUYER)
    _, offer = await api.stocked_offer(seller, KEYS)
    created = await api.client.post("/orders", json={"offerId": offer}, headers=buyer)
    order = (await created.json())["id"]
    keyed = {**buyer, "Idempotency-Key": "fulfil-once"}
    other = await api.client.post("/orders", json={"offerId": offer}, headers=buyer)
    responses = {
        "cancel": await api.client.post(
            f"/orders/{(await other.json())['id']}/cancel", headers=buyer
        ),
        "create": created,
        "pay": await api.client.post(f"/orders/{order}/pay", headers=buyer),
        "fulfill": await api.client.post(f"/orders/{order}/fulfill", headers=keyed),
        "fulfill replayed": await api.client.post(f"/orders/{order}/fulfill", headers=keyed),
        "read": await api.client.get(f"/orders/{order}", headers=buyer),
        "list": await api.client.get("/orders", headers=buyer),
    }
    carrying = {"fulfill", "fulfill replayed", "read"}
    for name, response in responses.items():
        assert response.status < 300, name
        assert response.headers["Cache-Control"] == "no-store", name
        assert (KEYS[0] in await response.text()) is (name in carrying), name
    assert responses["fulfill replayed"].headers["Idempotent-Replayed"] == "true"


async def test_every_route_answers_with_cache_control_and_no_server_version(api: Api) -> None:
    for method, path in sorted(route_keys(api.client.app.router)):
        concrete = path.replace("{", "").replace("}", "")  # ids that match nothing
        response = await api.client.request(method, concrete)
        assert "Cache-Control" in response.headers, (method, path)
        assert response.headers["Server"] == "autokey", (method, path)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ("127.0.0.1", 9464)),
        ("", None),
        ("  ", None),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),  # noqa: S104 - a parsed value, not a bind
        ("[::1]:9464", ("::1", 9464)),
    ],
)
def test_metrics_address_defaults_to_loopback_and_empty_disables(
    raw: str | None, expected: tuple[str, int] | None
) -> None:
    environ = {"AUTOKEY_DATABASE_URL": "memory://"}
    if raw is not None:
        environ["AUTOKEY_METRICS_ADDR"] = raw
    assert load_settings(environ).metrics_addr == expected


@pytest.mark.parametrize(
    "raw", ["9464", "localhost", "host:port", "127.0.0.1:0", ":9464", "h:99999"]
)
def test_a_bad_metrics_address_is_refused_at_start(raw: str) -> None:
    with pytest.raises(SettingsError, match="AUTOKEY_METRICS_ADDR must be host:port"):
        load_settings({"AUTOKEY_DATABASE_URL": "memory://", "AUTOKEY_METRICS_ADDR": raw})


async def test_an_error_past_every_middleware_is_a_500_problem_logged_as_data() -> None:
    async def broken(_request: web.Request) -> web.Response:
        raise RuntimeError("Bearer ak_" + "Q" * 43)

    app = web.Application()  # no problem middleware: aiohttp's own handle_error answers
    app.router.add_get("/broken", broken)
    async with TestClient(ServedApp(app)) as client, captured_logs() as buffer:
        response = await client.get("/broken")
        body = await response.json(content_type=None)
    assert response.status == 500
    assert response.content_type == "application/problem+json"
    assert body["code"] == "internal_error"
    [line] = [json.loads(text) for text in buffer.getvalue().splitlines()]
    assert line["event"] == "http.unhandled_error"
    assert line["exception"]["type"] == "builtins.RuntimeError"
    assert "QQQQ" not in buffer.getvalue()
