"""`autokey token revoke` and `autokey g2a merchant-credentials revoke` in one process: the
server process answers 401 from the next request on, although it caches principals and
merchant access tokens (ADR 0017)."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.integration.server import autokey, serve, server_env
from tests.services import scratch_postgres

pytestmark = pytest.mark.postgres


async def test_a_token_revoked_by_the_cli_gets_401_from_the_next_request_on() -> None:
    async with scratch_postgres() as url:
        env = server_env(url)
        autokey("migrate", env=env)
        created = json.loads(autokey("token", "create", "--role", "buyer", env=env))
        headers = {"Authorization": f"Bearer {created['token']}"}
        async with serve(env) as api, aiohttp.ClientSession() as session:
            for _ in range(3):  # the principal is cached from the first call on
                async with session.get(f"{api}/orders", headers=headers) as r:
                    assert r.status == 200
            autokey("token", "revoke", created["id"], env=env)
            async with session.get(f"{api}/orders", headers=headers) as r:
                assert r.status == 401
                assert (await r.json())["code"] == "unauthenticated"


async def test_merchant_credentials_revoked_by_the_cli_get_401_from_the_next_call_on() -> None:
    async with scratch_postgres() as url:
        env = server_env(url)
        autokey("migrate", env=env)
        seller = json.loads(autokey("token", "create", "--role", "seller", env=env))
        created = json.loads(
            autokey("g2a", "merchant-credentials", "create", "--seller", seller["subject"], env=env)
        )
        query = {
            "grant_type": "client_credentials",
            "client_id": created["clientId"],
            "client_secret": created["clientSecret"],
        }
        async with serve(env) as api, aiohttp.ClientSession() as session:
            merchant = f"{api}/g2a/merchant"
            async with session.get(f"{merchant}/oauth/token", params=query) as r:
                headers = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
            for _ in range(3):  # the token is cached from the first call on
                async with session.get(f"{merchant}/healthcheck", headers=headers) as r:
                    assert r.status == 204
            autokey("g2a", "merchant-credentials", "revoke", created["clientId"], env=env)
            async with session.get(f"{merchant}/healthcheck", headers=headers) as r:
                assert r.status == 401
