"""100,000 keys as text/plain in one request to a real server, streamed from the client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.integration.server import autokey, metrics_url, serve, server_env, token, with_metrics
from tests.services import scratch_postgres

COUNT = 100_000


async def _lines() -> AsyncIterator[bytes]:
    batch = []
    for i in range(COUNT):
        batch.append(f"BULK-{i:06d}-ABCDE\n")
        if len(batch) == 5000:
            yield "".join(batch).encode()
            batch.clear()
    yield b"bad line\n\nBULK-000000-ABCDE\n"  # one invalid, one blank, one duplicate


async def _upload(env: dict[str, str]) -> None:
    env = with_metrics(env)
    seller = token("seller", env)
    auth = {"Authorization": f"Bearer {seller}"}
    async with serve(env) as api, aiohttp.ClientSession() as s:
        async with s.post(f"{api}/key-pools", json={}, headers=auth) as r:
            pool = (await r.json())["id"]
        async with s.post(
            f"{api}/key-pools/{pool}/keys/upload",
            data=_lines(),
            headers={**auth, "Content-Type": "text/plain"},
        ) as r:
            report = await r.json()
            assert r.status == 200, report
        assert (report["added"], report["invalid"], report["duplicates"]) == (COUNT, 1, 1)
        assert report["errors"] == [
            {"line": COUNT + 1, "code": "invalid_characters"},
            {"line": COUNT + 3, "code": "duplicate"},
        ]
        assert report["availableKeys"] == COUNT
        async with s.get(metrics_url(env)) as r:
            assert "autokey_keys" in await r.text()


async def test_100k_keys_in_one_text_upload_on_sqlite(tmp_path: Path) -> None:
    env = server_env(f"sqlite:///{tmp_path / 'bulk.db'}")
    autokey("migrate", env=env)
    await _upload(env)


@pytest.mark.postgres
async def test_100k_keys_in_one_text_upload_on_postgres() -> None:
    async with scratch_postgres() as url:
        env = server_env(url)
        autokey("migrate", env=env)
        await _upload(env)
