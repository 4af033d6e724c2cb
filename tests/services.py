"""Reaching the real services tests need. In CI (AUTOKEY_REQUIRE_SERVICES=1) an unreachable
service fails the test; on a developer machine without it the test is skipped."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

POSTGRES_URL = os.environ.get(
    "AUTOKEY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("AUTOKEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unavailable(service: str, error: BaseException) -> None:
    message = f"{service} is not reachable: {error}"
    if os.environ.get("AUTOKEY_REQUIRE_SERVICES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _with_database(url: str, name: str) -> str:
    """The same server URL with another database name (a URL, as AUTOKEY_DATABASE_URL wants)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@asynccontextmanager
async def scratch_postgres() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for the duration of the block; yields its URL."""
    name = f"autokey_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True)
    except psycopg.OperationalError as exc:
        unavailable("PostgreSQL", exc)
        raise
    async with admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _with_database(POSTGRES_URL, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def real_redis() -> AsyncIterator[Redis]:
    """A client of the test Redis (never flushed: use keys unique to the test)."""
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        unavailable("Redis", exc)
        raise
    try:
        yield client
    finally:
        await client.aclose()
