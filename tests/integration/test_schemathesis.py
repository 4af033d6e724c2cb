"""schemathesis over /api/openapi.json against a real loopback server on the in-memory store:
every operation, a bounded number of generated requests each; no 5xx, and every response
(problems included) conforms to the document."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from autokey.adapters.crypto import HmacBlindIndex
from autokey.adapters.memory.store import MemoryStore
from autokey.domain.model.auth import Role
from autokey.entrypoints.container import Container
from autokey.entrypoints.settings import load_settings
from autokey.entrypoints.web.app import make_app
from autokey.entrypoints.web.openapi import OPERATIONS
from tests.conftest import MASTER_KEY

EXAMPLES_PER_OPERATION = 40
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    status_code_conformance,
]


class LoopbackServer:
    """The real app on 127.0.0.1:<free port>, its event loop in a thread of its own (the
    schemathesis pytest integration calls the API synchronously)."""

    def __init__(self) -> None:
        settings_ = load_settings(
            {"AUTOKEY_DATABASE_URL": "memory://", "G2A_API_HASH": "schemathesis-webhook-secret"}
        )
        self.container = Container(
            settings=settings_,
            store=MemoryStore(),
            master_keys=(MASTER_KEY,),
            blind_index=HmacBlindIndex(MASTER_KEY),
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner = web.AppRunner(make_app(self.container), access_log=None)
        self.base_url = ""

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def start(self) -> None:
        self.thread.start()
        self.run(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.run(site.start())
        host, port = self.runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    def token(self, role: Role) -> str:
        secret, _ = self.run(self.container.auth().issue_token(role))
        return str(secret)

    def stop(self) -> None:
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    running = LoopbackServer()
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def tokens(server: LoopbackServer) -> dict[str, str]:
    """A seller and a buyer, with a stocked offer and an order, so list operations answer
    with real items (the documented item schemas get checked too, not only empty pages)."""
    made = {role.value: server.token(role) for role in (Role.SELLER, Role.BUYER)}
    seller = {"Authorization": f"Bearer {made['seller']}"}
    buyer = {"Authorization": f"Bearer {made['buyer']}"}
    base = server.base_url
    with requests.Session() as http:
        pool = http.post(f"{base}/key-pools", json={"name": "seed"}, headers=seller).json()
        keys = {"keys": ["AAAAA-BBBBB-CCCCC", "DDDDD-EEEEE-FFFFF", "GGGGG-HHHHH-JJJJJ"]}
        http.post(f"{base}/key-pools/{pool['id']}/keys/upload", json=keys, headers=seller)
        draft = {
            "title": "Seed game",
            "price": {"amount": "9.99", "currency": "EUR"},
            "deliveryType": "AUTO_KEY",
            "keyPoolId": pool["id"],
        }
        offer = http.post(f"{base}/offers/draft", json=draft, headers=seller).json()
        http.post(f"{base}/offers/publish", json={"offerId": offer["id"]}, headers=seller)
        order = http.post(f"{base}/orders", json={"offerId": offer["id"]}, headers=buyer)
        assert order.status_code == 201, order.text
    return made


@pytest.fixture(scope="module")
def api_schema(server: LoopbackServer) -> Any:
    return schemathesis.openapi.from_url(f"{server.base_url}/api/openapi.json")


@pytest.mark.parametrize(
    ("method", "path"), [(op.method, op.path) for op in OPERATIONS], ids=lambda v: str(v)
)
def test_operation_conforms_to_the_openapi_document(
    method: str,
    path: str,
    api_schema: Any,
    server: LoopbackServer,
    tokens: dict[str, str],
) -> None:
    if path not in api_schema.raw_schema["paths"]:
        pytest.skip(f"{method} {path} is not routed in this build")
    operation = api_schema[path][method]
    # Orders are a buyer's; everything else a seller's. Operations without security get the
    # header too, which they must ignore.
    role = Role.BUYER if "orders" in operation.tags else Role.SELLER
    headers = {"Authorization": f"Bearer {tokens[role.value]}"}

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def conforms(case: Any) -> None:
        case.call_and_validate(base_url=server.base_url, headers=headers, checks=CHECKS)

    conforms()
