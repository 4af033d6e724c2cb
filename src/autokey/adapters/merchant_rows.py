"""The row edge of the merchant tables shared by the SQL adapters: a reservation's lines are
stored as one JSON array (written once, read whole)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import cattrs

from autokey.domain.model.ids import OrderId, PoolId
from autokey.domain.model.merchant import ReservationLine


def make_lines_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_unstructure_hook(UUID, str)
    converter.register_structure_hook(UUID, lambda value, _: UUID(value))
    for new_type in (OrderId, PoolId):
        converter.register_structure_hook(new_type, lambda value, _: UUID(value))
    return converter


_LINES = make_lines_converter()


def lines_value(lines: tuple[ReservationLine, ...]) -> list[dict[str, Any]]:
    """The JSON-ready value of `lines`."""
    value: list[dict[str, Any]] = _LINES.unstructure(lines, tuple[ReservationLine, ...])
    return value


def lines_text(lines: tuple[ReservationLine, ...]) -> str:
    return json.dumps(lines_value(lines), separators=(",", ":"))


def lines_from(value: str | list[Any]) -> tuple[ReservationLine, ...]:
    """Lines from their JSON text (SQLite) or already decoded value (PostgreSQL jsonb)."""
    decoded = json.loads(value) if isinstance(value, str) else value
    lines: tuple[ReservationLine, ...] = _LINES.structure(decoded, tuple[ReservationLine, ...])
    return lines
