"""Seller webhooks against a real local receiver: Standard Webhooks signatures checked by an
independent implementation, at-least-once across kill -9, no duplicates from two
dispatchers, and private targets refused after DNS resolution."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import signal
import socket
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from autokey.adapters.webhook_sender import (
    PublicOnlyResolver,
    StandardWebhookSender,
    open_webhook_session,
)
from autokey.domain.model.outbound import SendOutcome
from tests.integration.server import autokey, serve, serve_process, server_env, token
from tests.services import scratch_postgres


def signature_is_valid(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """Standard Webhooks, written from the specification: HMAC-SHA256 over
    `id.timestamp.body` with the base64-decoded secret, sent as `v1,<base64>`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = b".".join(
        [headers["webhook-id"].encode(), headers["webhook-timestamp"].encode(), body]
    )
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    fresh = abs(time.time() - int(headers["webhook-timestamp"])) <= 300
    return fresh and any(
        hmac.compare_digest(expected, given) for given in headers["webhook-signature"].split()
    )


class Receiver:
    """A seller's HTTP endpoint on loopback that records every request."""

    def __init__(self, hang_first: int = 0) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.hang_first = hang_first
        self.arrived = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        self.arrived.set()
        if len(self.requests) <= self.hang_first:
            await asyncio.sleep(3600)  # a seller whose server never answers
        return web.Response(status=204)

    def ids(self) -> list[str]:
        return [headers["webhook-id"] for headers, _ in self.requests]

    async def wait_for(self, count: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"{len(self.requests)} of {count} arrived"
            await asyncio.sleep(0.1)


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()


async def _json(
    s: aiohttp.ClientSession, method: str, url: str, auth: str, body: Any = None
) -> Any:
    async with s.request(
        method, url, json=body, headers={"Authorization": f"Bearer {auth}"}
    ) as response:
        payload = await response.json()
        assert response.status < 300, payload
        return payload


def _env(url: str, **extra: str) -> dict[str, str]:
    return server_env(url, AUTOKEY_WEBHOOK_ALLOW_PRIVATE="1", **extra)


async def _register(s: aiohttp.ClientSession, api: str, seller: str, target: str) -> Any:
    body = {"url": target, "eventTypes": ["order.fulfilled", "upload.completed"]}
    return await _json(s, "POST", f"{api}/seller/webhooks", seller, body)


async def _sell_one(s: aiohttp.ClientSession, api: str, seller: str, buyer: str) -> Any:
    pool = (await _json(s, "POST", f"{api}/key-pools", seller, {"name": "hooked"}))["id"]
    key = f"HOOK-{time.monotonic_ns()}"
    await _json(s, "POST", f"{api}/key-pools/{pool}/keys/upload", seller, {"keys": [key]})
    draft = {
        "title": "Game",
        "price": {"amount": "5.00", "currency": "EUR"},
        "deliveryType": "AUTO_KEY",
        "keyPoolId": pool,
    }
    offer = (await _json(s, "POST", f"{api}/offers/draft", seller, draft))["id"]
    await _json(s, "POST", f"{api}/offers/publish", seller, {"offerId": offer})
    order = (await _json(s, "POST", f"{api}/orders", buyer, {"offerId": offer}))["id"]
    await _json(s, "POST", f"{api}/orders/{order}/pay", buyer)
    return await _json(s, "POST", f"{api}/orders/{order}/fulfill", buyer), key


async def test_events_arrive_signed_with_key_ids_and_never_plaintext(tmp_path: Path) -> None:
    env = _env(f"sqlite:///{tmp_path / 'hooks.db'}")
    autokey("migrate", env=env)
    seller, buyer = token("seller", env), token("buyer", env)
    async with (
        receiving(Receiver()) as receiver,
        serve(env) as api,
        aiohttp.ClientSession() as s,
    ):
        made = await _register(s, api, seller, receiver.url)
        (fulfilled, key) = await _sell_one(s, api, seller, buyer)
        await receiver.wait_for(2)
        endpoint = made["endpoint"]["id"]
        deliveries = await _json(s, "GET", f"{api}/seller/webhooks/{endpoint}/deliveries", seller)
    events = {json.loads(body)["type"]: (headers, body) for headers, body in receiver.requests}
    assert set(events) == {"upload.completed", "order.fulfilled"}
    for headers, body in events.values():
        assert signature_is_valid(made["secret"], headers, body)
        assert not signature_is_valid(
            "whsec_" + base64.b64encode(b"x" * 32).decode(), headers, body
        )
        assert key.encode() not in body
    data = json.loads(events["order.fulfilled"][1])["data"]
    assert data["orderId"] == fulfilled["id"]
    assert data["keyIds"] == [k["id"] for k in fulfilled["keys"]]
    assert sorted(receiver.ids()) == sorted(d["id"] for d in deliveries["items"])
    assert {(d["status"], d["attempts"]) for d in deliveries["items"]} == {("delivered", 1)}


@pytest.mark.postgres
async def test_a_delivery_survives_a_kill_9_of_its_dispatcher() -> None:
    async with scratch_postgres() as url, receiving(Receiver(hang_first=1)) as receiver:
        env = _env(url, AUTOKEY_WEBHOOK_TIMEOUT_S="3")  # lease: 2 x 3 s + 5 s
        autokey("migrate", env=env)
        seller, buyer = token("seller", env), token("buyer", env)
        async with aiohttp.ClientSession() as s:
            async with serve_process(env) as (api, process):
                made = await _register(s, api, seller, receiver.url)
                await _sell_one(s, api, seller, buyer)
                await receiver.wait_for(1)  # the first attempt hangs in the receiver
                process.send_signal(signal.SIGKILL)
                await process.wait()
            first = receiver.ids()[0]
            async with serve(env) as api:
                await receiver.wait_for(3, timeout_s=60)
                endpoint = made["endpoint"]["id"]
                listed = await _json(
                    s, "GET", f"{api}/seller/webhooks/{endpoint}/deliveries", seller
                )
    assert receiver.ids().count(first) == 2  # sent again after the lease ran out
    assert all(d["status"] == "delivered" for d in listed["items"])


@pytest.mark.postgres
async def test_two_dispatchers_never_send_one_delivery_twice() -> None:
    uploads = 40
    async with scratch_postgres() as url, receiving(Receiver()) as receiver:
        env = _env(url)
        autokey("migrate", env=env)
        seller = token("seller", env)
        async with serve(env) as api_a, serve(env) as api_b, aiohttp.ClientSession() as s:
            made = await _register(s, api_a, seller, receiver.url)
            pool = (await _json(s, "POST", f"{api_a}/key-pools", seller, {"name": "p"}))["id"]
            for i in range(uploads):
                api = api_a if i % 2 else api_b
                body = {"keys": [f"TWO-DISPATCHERS-{i:04d}"]}
                await _json(s, "POST", f"{api}/key-pools/{pool}/keys/upload", seller, body)
            await receiver.wait_for(uploads)
            await asyncio.sleep(2.5)  # two more dispatch rounds in each process
            endpoint = made["endpoint"]["id"]
            listed = await _json(
                s, "GET", f"{api_a}/seller/webhooks/{endpoint}/deliveries?limit=100", seller
            )
    assert len(receiver.ids()) == uploads
    assert len(set(receiver.ids())) == uploads
    assert {(d["status"], d["attempts"]) for d in listed["items"]} == {("delivered", 1)}


class _Rebinding(AbstractResolver):
    """A name server that answers a public-looking name with a loopback address."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


async def _send(resolver: AbstractResolver, url: str, *, allow_private: bool) -> SendOutcome:
    connector = aiohttp.TCPConnector(resolver=resolver)
    async with aiohttp.ClientSession(connector=connector) as session:
        sender = StandardWebhookSender(session, allow_private=allow_private)
        return await sender.send(
            url,
            message_id="msg_1",
            timestamp=datetime.now(UTC),
            body="{}",
            secret=sender.new_secret(),
        )


async def test_a_name_that_resolves_to_loopback_is_refused_after_resolution() -> None:
    async with receiving(Receiver()) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        rebound = f"http://hooks.rebinding.example:{port}/hook"
        refused = await _send(PublicOnlyResolver(_Rebinding()), rebound, allow_private=False)
        literal = await _send(_Rebinding(), receiver.url, allow_private=False)
        assert receiver.requests == []
        allowed = await _send(_Rebinding(), rebound, allow_private=True)  # the control
    assert refused == SendOutcome(error="private_target")
    assert literal == SendOutcome(error="private_target")
    assert allowed == SendOutcome(status_code=204)
    assert len(receiver.requests) == 1


async def test_a_silent_endpoint_times_out_and_a_huge_answer_is_not_read_whole() -> None:
    async def huge(_request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(_request)
        for _ in range(1000):  # 64 MiB if it were all read
            await response.write(b"x" * 65536)
        return response

    async with receiving(Receiver(hang_first=1)) as receiver:
        session = open_webhook_session(allow_private=True, timeout_s=1)
        sender = StandardWebhookSender(session, allow_private=True)
        started = time.monotonic()
        outcome = await sender.send(
            receiver.url,
            message_id="m",
            timestamp=datetime.now(UTC),
            body="{}",
            secret=sender.new_secret(),
        )
        assert outcome == SendOutcome(error="timeout")
        assert time.monotonic() - started < 5
        await session.close()
    app = web.Application()
    app.router.add_post("/huge", huge)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        session = open_webhook_session(allow_private=True, timeout_s=5)
        sender = StandardWebhookSender(session, allow_private=True)
        outcome = await sender.send(
            f"http://127.0.0.1:{runner.addresses[0][1]}/huge",
            message_id="m",
            timestamp=datetime.now(UTC),
            body="{}",
            secret=sender.new_secret(),
        )
        await session.close()
    finally:
        await runner.cleanup()
    assert outcome == SendOutcome(status_code=200)


async def test_a_seller_hears_each_stock_crossing_once(tmp_path: Path) -> None:
    env = _env(f"sqlite:///{tmp_path / 'stock.db'}", AUTOKEY_SWEEP_INTERVAL_S="1")
    autokey("migrate", env=env)
    seller, buyer = token("seller", env), token("buyer", env)
    stock_events = ["offer.low_stock", "offer.out_of_stock", "offer.back_in_stock"]
    async with (
        receiving(Receiver()) as receiver,
        serve(env) as api,
        aiohttp.ClientSession() as s,
    ):
        body = {"url": receiver.url, "eventTypes": stock_events}
        made = await _json(s, "POST", f"{api}/seller/webhooks", seller, body)
        pool = (await _json(s, "POST", f"{api}/key-pools", seller, {"name": "stock"}))["id"]
        upload = {"keys": [f"STOCK-{time.monotonic_ns()}-{i}" for i in range(2)]}
        await _json(s, "POST", f"{api}/key-pools/{pool}/keys/upload", seller, upload)
        draft = {
            "title": "Game",
            "price": {"amount": "5.00", "currency": "EUR"},
            "deliveryType": "AUTO_KEY",
            "keyPoolId": pool,
            "lowStockThreshold": 1,
        }
        offer = (await _json(s, "POST", f"{api}/offers/draft", seller, draft))["id"]
        await _json(s, "POST", f"{api}/offers/publish", seller, {"offerId": offer})
        for expected in (1, 2):  # each sale is noticed by the next sweep
            order = (await _json(s, "POST", f"{api}/orders", buyer, {"offerId": offer}))["id"]
            await _json(s, "POST", f"{api}/orders/{order}/pay", buyer)
            await _json(s, "POST", f"{api}/orders/{order}/fulfill", buyer)
            await receiver.wait_for(expected)
        level = (await _json(s, "GET", f"{api}/offers/{offer}", seller))["stockLevel"]
        upload = {"keys": [f"STOCK-{time.monotonic_ns()}-{i}" for i in range(3)]}
        await _json(s, "POST", f"{api}/key-pools/{pool}/keys/upload", seller, upload)
        await receiver.wait_for(3)
        await asyncio.sleep(2.5)  # two more sweeps: nothing new to announce
    assert level == "out_of_stock"
    payloads = [json.loads(body) for _, body in receiver.requests]
    assert [p["type"] for p in payloads] == stock_events
    assert [(p["data"]["stockLevel"], p["data"]["availableKeys"]) for p in payloads] == [
        ("low", 1),
        ("out_of_stock", 0),
        ("in_stock", 3),
    ]
    assert all(p["data"]["offerId"] == offer for p in payloads)
    assert all(signature_is_valid(made["secret"], h, b) for h, b in receiver.requests)
