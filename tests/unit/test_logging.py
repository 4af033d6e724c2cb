"""Every log line is one JSON object, stdlib loggers included, and exceptions are data."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import structlog

from autokey.domain.model.orders import OrderStatus
from autokey.entrypoints.logconfig import configure_logging
from tests import logs

SECRET = "ak_" + "Z" * 43


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("debug", "json", stream=buffer)
    try:
        yield buffer
    finally:
        logs.resume()


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def _fail_with_secret() -> None:
    try:
        raise ValueError(f"Invalid header value char: b'Authorization: Bearer {SECRET}\\x01'")
    except ValueError as exc:
        raise RuntimeError("wrapped") from exc


@pytest.mark.parametrize("name", ["aiohttp.server", "aiohttp.access", "psycopg.pool", "asyncio"])
def test_stdlib_loggers_write_one_json_object_per_line(out: io.StringIO, name: str) -> None:
    logging.getLogger(name).warning("connection %s lost", "pool-1")
    [line] = _lines(out)
    assert line["event"] == "connection pool-1 lost"
    assert (line["logger"], line["level"]) == (name, "warning")
    assert line["timestamp"].endswith("Z")


def test_a_logged_traceback_keeps_type_frames_and_causes_but_no_message(
    out: io.StringIO,
) -> None:
    try:
        _fail_with_secret()
    except RuntimeError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "::1")
        structlog.get_logger("autokey.test").exception("test.failed")
    stdlib, ours = _lines(out)
    for line in (stdlib, ours):
        exception = line["exception"]
        assert exception["type"] == "builtins.RuntimeError"
        assert exception["cause"]["type"] == "builtins.ValueError"
        assert any(frame.endswith(" _fail_with_secret") for frame in exception["frames"])
    assert SECRET not in out.getvalue()
    assert "wrapped" not in out.getvalue()


def test_python_warnings_are_json_lines_too(out: io.StringIO) -> None:
    logging.getLogger("py.warnings").warning("x.py:1: DeprecationWarning: old")
    assert _lines(out)[0]["logger"] == "py.warnings"


def test_reconfiguring_replaces_the_root_handler_instead_of_adding_one(
    out: io.StringIO,
) -> None:
    configure_logging("info", "json", stream=out)
    logging.getLogger("psycopg").warning("once")
    assert len(_lines(out)) == 1


def test_only_the_first_line_of_a_library_message_is_kept(out: io.StringIO) -> None:
    logging.getLogger("asyncio").error(
        "Task exception was never retrieved\nfuture: <Task exception=ValueError(%r)>", SECRET
    )
    [line] = _lines(out)
    assert line["event"] == "Task exception was never retrieved"


def test_an_os_error_is_named_by_its_errno(out: io.StringIO) -> None:
    try:
        raise OSError(98, "error while attempting to bind on address ('10.1.2.3', 9464)")
    except OSError:
        structlog.get_logger("autokey.test").exception("http.start_failed")
    [line] = _lines(out)
    assert line["exception"]["errno"] == "EADDRINUSE"
    assert "10.1.2.3" not in out.getvalue()


def test_ids_instants_and_enum_members_are_written_as_their_text(out: io.StringIO) -> None:
    order_id = uuid.UUID("0190a8b4-7c1e-7a3b-9f00-1234567890ab")
    at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    structlog.get_logger("autokey.test").info(
        "test.values", order_id=order_id, at=at, status=OrderStatus.PAID, amount=Decimal("1.50")
    )
    [line] = _lines(out)
    assert (line["order_id"], line["status"]) == (str(order_id), "PAID")
    assert datetime.fromisoformat(line["at"]) == at
    assert line["amount"] == "Decimal('1.50')"  # no JSON type: its repr, as before


def test_what_orjson_refuses_is_still_one_json_line(out: io.StringIO) -> None:
    log = structlog.get_logger("autokey.test")
    log.warning("test.refused", text="lone \ud800 surrogate")
    log.warning("test.refused", count=2**70)
    first, second = _lines(out)
    assert first["text"] == "lone \ud800 surrogate"
    assert second["count"] == 2**70


def test_a_line_stays_ascii_whatever_it_carries(out: io.StringIO) -> None:
    structlog.get_logger("autokey.test").info("test.title", title="Día de Muertos ™")
    assert out.getvalue().isascii()
    assert _lines(out)[0]["title"] == "Día de Muertos ™"
