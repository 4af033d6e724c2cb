"""Issue 10, section 4, against a real `autokey serve` over raw sockets: what the HTTP parser
rejects is answered as problem+json without echoing the request, /metrics lives only on its own
listener, and no response names the server's versions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from autokey.adapters.memory.store import MemoryStore
from tests.http import captured_logs, running_api
from tests.integration.server import (
    autokey,
    metrics_url,
    serve,
    server_env,
    token,
    with_metrics,
)

SECRET = "ak_" + "S3cr3tT0ken" * 4
BAD_REQUESTS = {
    "a token followed by a control character": (
        f"GET /key-pools HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\x01\r\n\r\n"
    ),
    "a header over 8,190 bytes": (
        f"GET /key-pools HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}{'A' * 9000}\r\n\r\n"
    ),
    "a bad request line": f"GE T /{SECRET} HTTP/1.1\r\nHost: x\r\n\r\n",
    "two Content-Lengths": (
        f"POST /key-pools HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n"
        "Content-Length: 1\r\nContent-Length: 2\r\n\r\n{}"
    ),
}


async def exchange(base: str, raw: str) -> tuple[str, dict[str, str], bytes]:
    """Send `raw` bytes on a new connection; (status line, headers, body) of the answer."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(raw.encode("latin-1"))
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=30)  # the server closes
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    database = tmp_path_factory.mktemp("exposure") / "exposure.db"
    async with serve(server_env(f"sqlite:///{database}")) as base:
        yield base


@pytest.mark.parametrize("raw", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
@pytest.mark.asyncio(loop_scope="module")
async def test_what_the_parser_rejects_is_a_problem_that_echoes_nothing(api: str, raw: str) -> None:
    status, headers, body = await exchange(api, raw)
    assert status.split()[1] == "400"
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(body) == {
        "type": "https://autokey.dev/problems/malformed-request",
        "title": "The HTTP request could not be parsed",
        "status": 400,
        "code": "malformed_request",
    }
    assert headers["server"] == "autokey"
    assert b"S3cr3t" not in body
    assert "S3cr3t" not in json.dumps(headers)


@pytest.mark.asyncio(loop_scope="module")
async def test_no_response_names_the_server_software_or_its_version(api: str) -> None:
    for raw in (
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /no/such/thing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "POST /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        BAD_REQUESTS["a bad request line"],
    ):
        status, headers, _ = await exchange(api, raw)
        assert headers["server"] == "autokey", status
        assert "aiohttp" not in json.dumps(headers).lower()
        assert "python" not in json.dumps(headers).lower()


@pytest.mark.asyncio(loop_scope="module")
async def test_public_listener_answers_404_problem_for_metrics(api: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(f"{api}/metrics") as response:
        assert response.status == 404
        assert response.content_type == "application/problem+json"
        assert (await response.json())["code"] == "not_found"


async def test_metrics_listener_serves_prometheus_text_and_nothing_else(tmp_path: Path) -> None:
    env = with_metrics(server_env(f"sqlite:///{tmp_path / 'metrics.db'}"))
    autokey("migrate", env=env)
    seller = {"Authorization": f"Bearer {token('seller', env)}"}
    async with serve(env) as base, aiohttp.ClientSession() as s:
        async with s.post(f"{base}/key-pools", json={}, headers=seller) as created:
            pool = (await created.json())["id"]
        upload = {"keys": ["METRIC-KEY-0001"]}
        async with s.post(f"{base}/key-pools/{pool}/keys/upload", json=upload, headers=seller):
            pass
        async with s.get(metrics_url(env)) as scraped:
            assert scraped.status == 200
            assert scraped.headers["Server"] == "autokey"
            assert f'autokey_keys{{pool="{pool}",status="available"}} 1.0' in await scraped.text()
        async with s.get(metrics_url(env).replace("/metrics", "/health")) as other:
            assert other.status == 404
            assert other.content_type == "application/problem+json"
        async with s.get(f"{base}/metrics") as public:
            assert public.status == 404


async def test_a_parser_error_is_logged_as_one_json_line_without_the_request() -> None:
    async with running_api(MemoryStore()) as api, captured_logs() as buffer:
        for raw in BAD_REQUESTS.values():
            await exchange(f"http://{api.client.host}:{api.client.port}", raw)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["http.malformed_request"] * len(BAD_REQUESTS)
    assert {line["error"] for line in lines} >= {"BadHttpMessage", "LineTooLong"}
    assert "S3cr3t" not in buffer.getvalue()
