"""Every enum value in a PostgreSQL statement is tied to its domain enum.

In the source of `adapters/postgres`, no quoted SQL literal may spell a value of a domain
StrEnum: such values are written with `sql_literals.literal()` from the member or from the
model transition. In the final text of every statement, each quoted literal compared with an
enum-typed column must be a member of that column's enum.
"""

from __future__ import annotations

import ast
import enum
import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import autokey.adapters.postgres as postgres_package
import autokey.domain.model as model_package
from autokey.domain.model.idempotency import IdempotencyState
from autokey.domain.model.keys import KeyStatus
from autokey.domain.model.merchant import ReservationState
from autokey.domain.model.offers import DeliveryType, OfferStatus
from autokey.domain.model.orders import OrderStatus, UpstreamState
from autokey.domain.model.outbound import DeliveryStatus, EndpointStatus

POSTGRES_SOURCES = sorted(Path(postgres_package.__file__).parent.glob("*.py"))

# The enum of each enum-typed column a statement may compare with a literal.
COLUMN_ENUMS: dict[tuple[str, str], type[enum.StrEnum]] = {
    ("keys", "status"): KeyStatus,
    ("key_counts", "status"): KeyStatus,
    ("key_count_deltas", "status"): KeyStatus,
    ("orders", "status"): OrderStatus,
    ("orders", "upstream_state"): UpstreamState,
    ("offers", "status"): OfferStatus,
    ("offers", "delivery_type"): DeliveryType,
    ("idempotency_records", "state"): IdempotencyState,
    ("webhook_deliveries", "status"): DeliveryStatus,
    ("webhook_endpoints", "status"): EndpointStatus,
    ("g2a_reservations", "state"): ReservationState,
}
# Literals that are no enum's value: a time zone, a setting, a table name, a timestamp.
NOT_ENUM_VALUES = frozenset({"UTC", "statement_timeout", "schema_migrations", "-infinity"})

_QUOTED = re.compile(r"'([^']*)'")
_TABLE = re.compile(r"\b(?:FROM|UPDATE|INTO|JOIN)\s+(\w+)", re.IGNORECASE)
_COMPARED_COLUMN = re.compile(r"(\w+)\s*(?:=|<>|!=)\s*$")


def _domain_enum_values() -> dict[str, str]:
    """Each value of a domain StrEnum -> the enum that has it."""
    values: dict[str, str] = {}
    for info in pkgutil.iter_modules(model_package.__path__):
        module = importlib.import_module(f"{model_package.__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, enum.StrEnum) and obj is not enum.StrEnum:
                values.update({member.value: obj.__name__ for member in obj})
    return values


def _string_constants(source: str) -> Iterator[str]:
    """The literal text of every string in `source`, f-string parts included (no comments)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


@pytest.mark.parametrize("path", POSTGRES_SOURCES, ids=lambda p: p.name)
def test_no_quoted_enum_value_is_written_by_hand(path: Path) -> None:
    enum_values = _domain_enum_values()
    by_hand = [
        f"'{quoted}' ({enum_values[quoted]})"
        for text in _string_constants(path.read_text(encoding="utf-8"))
        for quoted in _QUOTED.findall(text)
        if quoted in enum_values
    ]
    assert not by_hand, f"use sql_literals.literal() in {path.name}: {', '.join(by_hand)}"


def _statements() -> Iterator[tuple[str, str]]:
    for path in POSTGRES_SOURCES:
        module: ModuleType = importlib.import_module(f"{postgres_package.__name__}.{path.stem}")
        for name, value in vars(module).items():
            # Public constants are whole statements; private ones are fragments of them.
            if name.isupper() and not name.startswith("_") and isinstance(value, str):
                yield f"{path.stem}.{name}", value


STATEMENTS = dict(_statements())


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_every_literal_in_a_statement_is_a_member_of_its_columns_enum(name: str) -> None:
    text = STATEMENTS[name]
    tables = {t.lower() for t in _TABLE.findall(text)}
    for match in _QUOTED.finditer(text):
        value = match[1]
        if value in NOT_ENUM_VALUES:
            continue
        compared = _COMPARED_COLUMN.search(text[: match.start()])
        # A literal compared with no column (a VALUES list) may belong to any enum column of
        # the statement's tables.
        enums = {
            enum_type
            for (table, column), enum_type in COLUMN_ENUMS.items()
            if table in tables and (compared is None or compared[1] == column)
        }
        assert enums, f"{name}: '{value}' is tied to no enum column of {sorted(tables)}"
        assert any(value in {m.value for m in e} for e in enums), (
            f"{name}: '{value}' is no member of {sorted(e.__name__ for e in enums)}"
        )


def test_the_statements_that_move_keys_and_orders_are_checked() -> None:
    assert {"sql.KEY_RESERVE", "sql.KEY_RELEASE_OF_ORDER", "sql.LOCK_EXPIRED_ORDERS"} <= set(
        STATEMENTS
    )
