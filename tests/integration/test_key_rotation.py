"""The startup key check, a master-key rotation, `autokey keys reseal` and the retirement of the
old key, with real `autokey` processes on SQLite and PostgreSQL (issue 10, section 1)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.server import autokey, run_autokey, serve, server_env, token
from tests.services import scratch_postgres

KEY_A, KEY_B = "a1" * 32, "b2" * 32
REFUSED = 3  # the documented exit code of the startup key check
ID = r"[0-9a-f]{8}"

Database = Callable[[Path], AbstractAsyncContextManager[str]]


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[str]:
    yield f"sqlite:///{tmp_path / 'autokey.db'}"


@asynccontextmanager
async def _postgres(_tmp_path: Path) -> AsyncIterator[str]:
    async with scratch_postgres() as url:
        yield url


STORES = [
    pytest.param(_sqlite, id="sqlite"),
    pytest.param(_postgres, id="postgres", marks=pytest.mark.postgres),
]


def _env(url: str, current: str | None, previous: str = "") -> dict[str, str]:
    env = server_env(url, ENCRYPTION_KEY_PREVIOUS=previous)
    if current is None:
        del env["ENCRYPTION_KEY"]  # the embedded default: a generated development key file
    else:
        env["ENCRYPTION_KEY"] = current
    return env


def _assert_refused(done: subprocess.CompletedProcess[str], *, missing: str) -> None:
    assert done.returncode == REFUSED, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("autokey:")]
    assert len(lines) == 1, done.stderr
    assert re.search(rf"master key id\(s\) {missing}, which are not configured", lines[0])
    assert "docs/runbook.md#when-autokey-refuses-to-start" in lines[0]
    for secret in (KEY_A, KEY_B):
        assert secret not in done.stderr


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, secret: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {secret}"}
    async with http.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json()


async def _upload(api: str, seller: str, pool: str, keys: list[str]) -> Any:
    async with aiohttp.ClientSession() as http:
        status, report = await _call(
            http, "POST", f"{api}/key-pools/{pool}/keys/upload", seller, {"keys": keys}
        )
    assert status == 200, report
    return report


async def _stocked_offer(api: str, seller: str, keys: list[str]) -> tuple[str, str]:
    async with aiohttp.ClientSession() as http:
        _, pool = await _call(http, "POST", f"{api}/key-pools", seller, {})
        draft = {
            "title": "Game",
            "price": {"amount": "5.00", "currency": "EUR"},
            "deliveryType": "AUTO_KEY",
            "keyPoolId": pool["id"],
        }
        _, offer = await _call(http, "POST", f"{api}/offers/draft", seller, draft)
        await _call(http, "POST", f"{api}/offers/publish", seller, {"offerId": offer["id"]})
    assert (await _upload(api, seller, pool["id"], keys))["added"] == len(keys)
    return pool["id"], offer["id"]


async def _buy_everything(api: str, buyer: str, offer: str, count: int) -> list[str]:
    delivered = []
    async with aiohttp.ClientSession() as http:
        for _ in range(count):
            status, order = await _call(http, "POST", f"{api}/orders", buyer, {"offerId": offer})
            assert status == 201, order
            await _call(http, "POST", f"{api}/orders/{order['id']}/pay", buyer)
            status, done = await _call(http, "POST", f"{api}/orders/{order['id']}/fulfill", buyer)
            assert status == 200, done
            delivered += [k["key"] for k in done["keys"]]
    return delivered


@pytest.mark.parametrize("database", STORES)
async def test_another_encryption_key_without_the_previous_one_refuses_to_start(
    database: Database, tmp_path: Path
) -> None:
    async with database(tmp_path) as url:
        first = _env(url, KEY_A if "postgres" in url else None)  # SQLite: the dev key file
        autokey("migrate", env=first)
        seller = token("seller", first)
        async with serve(first) as api:
            await _stocked_offer(api, seller, ["ISSUE-10-KEY-1"])
        first_id = json.loads(autokey("keys", "ids", env=first))["current"]
        wrong = _env(url, KEY_B)
        served = run_autokey("serve", "--port", "0", env=wrong)
        _assert_refused(served, missing=first_id)
        for command in (
            ("migrate",),
            ("sweep",),
            ("keys", "reseal"),
            ("token", "create", "--role", "buyer"),
        ):
            _assert_refused(run_autokey(*command, env=wrong), missing=first_id)


async def _reseal_killed_after_first_batch(env: Mapping[str, str]) -> None:
    """`autokey keys reseal --batch 1`, killed -9 once it has reported its first batch."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autokey",
        "keys",
        "reseal",
        "--batch",
        "1",
        env=dict(env),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        for _ in range(100):
            line = await asyncio.wait_for(process.stderr.readline(), timeout=60)
            if not line or b"resealed" in line:
                break
        assert b"autokey: resealed 1 keys" in line, line
    finally:
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("database", STORES)
async def test_rotation_reseal_and_retirement_keep_every_key_sellable_and_unique(
    database: Database, tmp_path: Path
) -> None:
    old_keys = [f"OLD-KEY-{n:04}" for n in range(12)]
    async with database(tmp_path) as url:
        before = _env(url, KEY_A)
        autokey("migrate", env=before)
        seller, buyer = token("seller", before), token("buyer", before)
        async with serve(before) as api:
            pool, offer = await _stocked_offer(api, seller, old_keys)

        rotated = _env(url, KEY_B, previous=KEY_A)
        async with serve(rotated) as api:
            again = await _upload(api, seller, pool, [old_keys[0], "NEW-KEY-0001"])
            assert (again["added"], again["duplicates"]) == (1, 1)
            # A reseal killed mid-way, then one that finishes, both beside a running server.
            await _reseal_killed_after_first_batch(rotated)
            _assert_refused(run_autokey("migrate", env=_env(url, KEY_B)), missing=ID)
            done = run_autokey("keys", "reseal", "--batch", "5", env=rotated)
            assert done.returncode == 0, done.stderr
            assert "resealed" in done.stderr
            assert KEY_A not in done.stderr + done.stdout

        retired = _env(url, KEY_B)
        assert run_autokey("migrate", env=retired).returncode == 0
        async with serve(retired) as api:
            assert (await _upload(api, seller, pool, old_keys[-1:]))["duplicates"] == 1
            delivered = await _buy_everything(api, buyer, offer, len(old_keys) + 1)
        assert sorted(delivered) == sorted([*old_keys, "NEW-KEY-0001"])
