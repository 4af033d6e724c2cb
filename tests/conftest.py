"""Fixtures shared by every test: stores of each kind, crypto, a fixed clock."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from autokey.adapters.crypto import AesGcmKeyCipher, HmacBlindIndex
from autokey.adapters.g2a.auth import SANDBOX_CLIENT_SECRET
from autokey.adapters.memory.store import MemoryStore
from autokey.adapters.system import Uuid7Ids
from autokey.ports.store import Store
from tests import logs
from tests.integration.g2a.g2a_it_support import CLIENT_SECRET
from tests.integration.server import TEST_ENCRYPTION_KEY
from tests.services import scratch_postgres

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

MASTER_KEY = bytes(range(32))
_log_check: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Start the whole-suite log capture (tests/logs.py) before any test or fixture logs."""
    logs.register(
        MASTER_KEY.hex(),
        TEST_ENCRYPTION_KEY,
        SANDBOX_CLIENT_SECRET,
        CLIENT_SECRET,
        "schemathesis-webhook-secret",
        "not-the-secret",
    )
    worker = getattr(config, "workerinput", {}).get("workerid", "")
    _log_check.update(dirs=[str(logs.start_session(worker))], files=0, violations=[])


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The whole-suite log check, after the last test and fixture: a violation fails the run.
    A pytest-xdist worker hands its figures to the controller (`pytest_testnodedown`)."""
    files, found = logs.check_session()
    if (output := getattr(session.config, "workeroutput", None)) is not None:
        output["log_check"] = {"dirs": _log_check["dirs"], "files": files, "violations": found}
        return
    _add_log_check({"files": files, "violations": found})
    if _log_check["violations"]:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist, in the controller: a worker is done; add its log check to the run's."""
    worker = node.gateway.id
    checked = getattr(node, "workeroutput", {}).get("log_check")
    if checked is None:  # the worker crashed before its check: its logs are unchecked
        checked = {"violations": [f"{worker}: no log check (the worker did not finish)"]}
    else:
        checked["violations"] = [f"{worker}/{v}" for v in checked["violations"]]
    _add_log_check(checked)


def _add_log_check(checked: dict[str, Any]) -> None:
    _log_check["dirs"] = [*_log_check["dirs"], *checked.get("dirs", [])]
    _log_check["files"] += checked.get("files", 0)
    _log_check["violations"] = [*_log_check["violations"], *checked["violations"]]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    found = _log_check["violations"]
    terminalreporter.write_line(
        f"log check: {_log_check['files']} files in {', '.join(_log_check['dirs'])}, "
        f"{len(found)} violations (a clean temporary directory is removed)"
    )
    for violation in found[:50]:
        terminalreporter.write_line(f"  {violation}", red=True)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ids() -> Uuid7Ids:
    return Uuid7Ids()


@pytest.fixture
def cipher() -> AesGcmKeyCipher:
    return AesGcmKeyCipher([MASTER_KEY])


@pytest.fixture
def blind_index() -> HmacBlindIndex:
    return HmacBlindIndex(MASTER_KEY)


async def open_store(kind: str, tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated, empty store of `kind`, closed (and dropped) afterwards."""
    if kind == "memory":
        yield MemoryStore()
    elif kind == "sqlite":
        from autokey.adapters.sqlite.store import SqliteStore

        store = await SqliteStore.open(tmp_path / "contract.db")
        await store.migrate()
        try:
            yield store
        finally:
            await store.close()
    elif kind == "postgres":
        from autokey.adapters.postgres.store import PostgresStore

        async with scratch_postgres() as url:
            store = await PostgresStore.open(url, min_size=1, max_size=8)
            await store.migrate()
            try:
                yield store
            finally:
                await store.close()
    else:
        raise ValueError(kind)


STORE_KINDS = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async for opened in open_store(request.param, tmp_path):
        yield opened
