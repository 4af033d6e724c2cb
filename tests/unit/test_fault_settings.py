"""The time bounds and leases that keep requests from hanging are settings with sane defaults."""

from __future__ import annotations

import pytest

from autokey.entrypoints.settings import SettingsError, load_settings

PG = {"AUTOKEY_DATABASE_URL": "postgresql://u@127.0.0.1/db", "ENCRYPTION_KEY": "ab" * 32}


def test_defaults_bound_every_wait() -> None:
    settings = load_settings(PG)
    db = settings.database
    assert (db.connect_timeout_s, db.statement_timeout_ms, db.pool_timeout_s) == (5, 5000, 5)
    assert db.tcp_user_timeout_ms == 10000
    assert settings.idempotency_lease_s == 10
    assert settings.http.keepalive_timeout_s == 15


def test_bounds_are_settable() -> None:
    settings = load_settings(
        {
            **PG,
            "AUTOKEY_DB_CONNECT_TIMEOUT_S": "3",
            "AUTOKEY_DB_STATEMENT_TIMEOUT_MS": "750",
            "AUTOKEY_DB_POOL_TIMEOUT_S": "2",
            "AUTOKEY_DB_TCP_USER_TIMEOUT_MS": "4000",
            "AUTOKEY_IDEMPOTENCY_LEASE_S": "4",
            "AUTOKEY_HTTP_KEEPALIVE_TIMEOUT_S": "7",
        }
    )
    db = settings.database
    assert (db.connect_timeout_s, db.statement_timeout_ms, db.pool_timeout_s) == (3, 750, 2)
    assert (db.tcp_user_timeout_ms, settings.idempotency_lease_s) == (4000, 4)
    assert settings.http.keepalive_timeout_s == 7


def test_unbounded_or_nonsense_values_are_refused_all_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {
                **PG,
                "AUTOKEY_DB_STATEMENT_TIMEOUT_MS": "0",
                "AUTOKEY_DB_CONNECT_TIMEOUT_S": "forever",
                "AUTOKEY_IDEMPOTENCY_LEASE_S": "0",
                "AUTOKEY_HTTP_KEEPALIVE_TIMEOUT_S": "-1",
            }
        )
    named = " ".join(caught.value.problems)
    for variable in (
        "AUTOKEY_DB_STATEMENT_TIMEOUT_MS",
        "AUTOKEY_DB_CONNECT_TIMEOUT_S",
        "AUTOKEY_IDEMPOTENCY_LEASE_S",
        "AUTOKEY_HTTP_KEEPALIVE_TIMEOUT_S",
    ):
        assert variable in named
