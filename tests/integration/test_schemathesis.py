"""schemathesis over /api/openapi.json against a real loopback server on SQLite and on
PostgreSQL: every operation, a bounded number of generated requests each, with valid (positive)
and invalid (negative) data over the whole of Unicode, NUL included, and header values that
are not UTF-8; no 5xx, and every response (problems included) conforms to the document."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from autokey.domain.model.auth import Role
from autokey.entrypoints.bootstrap import unlock
from autokey.entrypoints.container import Container
from autokey.entrypoints.settings import load_settings
from autokey.entrypoints.web.app import make_app
from tests.conftest import MASTER_KEY, open_store
from tests.http import documented_operations

EXAMPLES_PER_OPERATION = 25  # per generation mode and store: the suite stays within budget
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    status_code_conformance,
]


class LoopbackServer:
    """The real app on 127.0.0.1:<free port> over a real store, its event loop in a thread of
    its own (the schemathesis pytest integration calls the API synchronously)."""

    def __init__(self, store_kind: str, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.stores = open_store(store_kind, tmp_path)
        self.base_url = ""

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def start(self) -> None:
        self.thread.start()
        settings_ = load_settings(
            {"AUTOKEY_DATABASE_URL": "memory://", "G2A_API_HASH": "schemathesis-webhook-secret"}
        )
        store = self.run(anext(self.stores))
        self.container = Container(settings=settings_, store=store, master_keys=(MASTER_KEY,))
        self.run(unlock(self.container))
        self.runner = web.AppRunner(make_app(self.container), access_log=None)
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
        self.run(self.stores.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(
    scope="module",
    # The real stores: a database that refuses what the edge let through shows up as a 5xx.
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ],
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoopbackServer]:
    running = LoopbackServer(request.param, tmp_path_factory.mktemp("schemathesis"))
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
    schema = schemathesis.openapi.from_url(f"{server.base_url}/api/openapi.json")
    # Unusual characters, stated so that a changed default cannot drop them: NUL in strings,
    # which draw from all of Unicode (UTF-8), and in negative mode header values with any
    # Latin-1 byte, so not UTF-8 (only CR and LF are left out: no client can send them).
    schema.config.generation.update(allow_x00=True, codec="utf-8")
    return schema


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize(("method", "path"), list(documented_operations()), ids=lambda v: str(v))
def test_operation_conforms_to_the_openapi_document(
    method: str,
    path: str,
    mode: GenerationMode,
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

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def conforms(case: Any) -> None:
        case.call_and_validate(base_url=server.base_url, headers=headers, checks=CHECKS)

    conforms()
