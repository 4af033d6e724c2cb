"""Status values in SQL are tied to their domain enums (issue 13).

Three checks over both SQL adapters and both engines' migrations:
- a statement's source never spells an enum value as a quoted literal: it writes
  `{literal(KeyStatus.AVAILABLE)}` so that renaming a member breaks the build, not the data;
- every literal compared with, or assigned to, an enum column in the final statement text is a
  member of that column's enum;
- each `CHECK (column IN (…))` of the schema the migrations leave lists exactly its enum.
"""

from __future__ import annotations

import ast
import enum
import importlib
import pkgutil
import re
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from types import ModuleType

import pytest

import autokey.adapters.postgres
import autokey.adapters.sqlite
import autokey.domain.model
from autokey.domain.model.auth import Role
from autokey.domain.model.idempotency import IdempotencyState
from autokey.domain.model.keys import KeyStatus
from autokey.domain.model.merchant import ReservationState
from autokey.domain.model.offers import DeliveryType, OfferStatus, StockLevel
from autokey.domain.model.orders import OrderStatus, UpstreamState
from autokey.domain.model.outbound import DeliveryStatus, EndpointStatus
from autokey.domain.model.webhooks import WebhookEventType, WebhookOutcome

STATEMENT_MODULES = tuple(
    importlib.import_module(f"{package.__name__}.{info.name}")
    for package in (autokey.adapters.sqlite, autokey.adapters.postgres)
    for info in pkgutil.iter_modules(package.__path__)
)
"""Every module of the SQL adapters: statements, repositories, connections, migrations."""

ENUM_COLUMNS: Mapping[tuple[str, str], type[enum.StrEnum]] = {
    ("api_tokens", "role"): Role,
    ("keys", "status"): KeyStatus,
    ("key_counts", "status"): KeyStatus,
    ("key_count_deltas", "status"): KeyStatus,
    ("offers", "status"): OfferStatus,
    ("offers", "delivery_type"): DeliveryType,
    ("offers", "stock_level"): StockLevel,
    ("orders", "status"): OrderStatus,
    ("orders", "delivery_type"): DeliveryType,
    ("orders", "upstream_state"): UpstreamState,
    ("idempotency_records", "state"): IdempotencyState,
    ("webhook_events", "type"): WebhookEventType,
    ("webhook_events", "outcome"): WebhookOutcome,
    ("g2a_reservations", "state"): ReservationState,
    ("webhook_endpoints", "status"): EndpointStatus,
    ("webhook_deliveries", "status"): DeliveryStatus,
}
"""The columns that hold a domain enum's values, by (table, column)."""

_QUOTED = re.compile(r"'([^']*)'")
_TABLE = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO|TABLE)\s+(\w+)", re.IGNORECASE)
_COMPARED = re.compile(r"\b(?:\w+\.)?(\w+)\s*(?:=|<>|!=)\s*'([^']*)'")
_LISTED = re.compile(r"\b(?:\w+\.)?(\w+)\s+(?:NOT\s+)?IN\s*\(([^()]*)\)", re.IGNORECASE)
_CHECK_IN = re.compile(r"CHECK\s*\(\s*(\w+)\s+IN\s*\(([^()]*)\)\s*\)", re.IGNORECASE)
_DDL = re.compile(
    r"\b(?:CREATE\s+TABLE|ALTER\s+TABLE)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)"
    r"|\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(\w+)"
    r"|\bRENAME\s+TO\s+(\w+)",
    re.IGNORECASE,
)


def _domain_values() -> dict[str, str]:
    """Every value of every domain StrEnum -> the enum it belongs to (for messages)."""
    values: dict[str, str] = {}
    for info in pkgutil.iter_modules(autokey.domain.model.__path__):
        module = importlib.import_module(f"autokey.domain.model.{info.name}")
        for item in vars(module).values():
            if isinstance(item, type) and issubclass(item, enum.StrEnum):
                values.update({member.value: item.__name__ for member in item})
    return values


def _code_strings(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of the string constants in Python source, docstrings left out."""
    tree = ast.parse(source)
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            yield node.lineno, node.value


def _statements(module: ModuleType) -> Iterator[tuple[str, str]]:
    """(name, final text) of a module's statement constants."""
    for name, value in vars(module).items():
        if name.lstrip("_").isupper() and isinstance(value, str):
            yield name, value


def _table_at(text: str, position: int) -> str | None:
    """The table a column at `position` belongs to: the nearest one named before it."""
    tables = [m.group(1) for m in _TABLE.finditer(text, 0, position)]
    return tables[-1] if tables else None


def enum_literals_in_source(where: str, source: str) -> list[str]:
    values = _domain_values()
    return [
        f"{where}:{line}: '{value}' is {values[value]} spelled out; use literal()"
        for line, text in _code_strings(source)
        for value in _QUOTED.findall(text)
        if value in values
    ]


def literals_outside_their_enum(name: str, text: str) -> list[str]:
    found = [(m.start(), m.group(1), [m.group(2)]) for m in _COMPARED.finditer(text)]
    found += [
        (m.start(), m.group(1), _QUOTED.findall(m.group(2)))
        for m in _LISTED.finditer(text)
        if "'" in m.group(2)
    ]
    problems = []
    for position, column, quoted in found:
        table = _table_at(text, position)
        kind = ENUM_COLUMNS.get((table or "", column))
        if kind is None:
            if column in {"status", "state"}:
                problems.append(f"{name}: {table}.{column} holds {quoted}: no enum is mapped")
            continue
        problems += [
            f"{name}: '{value}' is not a {kind.__name__} ({table}.{column})"
            for value in quoted
            if value not in {m.value for m in kind}
        ]
    return problems


def schema_checks(scripts: list[str]) -> dict[tuple[str, str], set[str]]:
    """The `CHECK (column IN (…))` lists of the schema the scripts leave, by (table, column):
    a later script's CHECK on a column replaces an earlier one, a dropped table loses its
    checks and a renamed one takes them along."""
    checks: dict[tuple[str, str], set[str]] = {}
    for script in scripts:
        text = re.sub(r"--[^\n]*", "", script)
        events = [(m.start(), "table", m) for m in _DDL.finditer(text)]
        events += [(m.start(), "check", m) for m in _CHECK_IN.finditer(text)]
        table = ""
        for _, kind, match in sorted(events, key=lambda event: event[0]):
            if kind == "check":
                checks[(table, match.group(1))] = set(_QUOTED.findall(match.group(2)))
            elif match.group(1):
                table = match.group(1)
            elif match.group(2):
                checks = {k: v for k, v in checks.items() if k[0] != match.group(2)}
            else:
                renamed = {(match.group(3), c): v for (t, c), v in checks.items() if t == table}
                checks = {k: v for k, v in checks.items() if k[0] != table} | renamed
    return checks


def checks_unlike_their_enum(checks: Mapping[tuple[str, str], set[str]]) -> list[str]:
    problems = []
    for (table, column), listed in sorted(checks.items()):
        kind = ENUM_COLUMNS.get((table, column))
        if kind is None:
            problems.append(f"CHECK on {table}.{column} lists {sorted(listed)}: no enum is mapped")
        elif listed != {m.value for m in kind}:
            problems.append(
                f"CHECK on {table}.{column} lists {sorted(listed)}, "
                f"{kind.__name__} has {sorted(m.value for m in kind)}"
            )
    return problems


def _migrations(engine: str) -> list[str]:
    folder = resources.files(f"autokey.adapters.{engine}") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [f.read_text() for f in files]


@pytest.mark.parametrize("module", STATEMENT_MODULES, ids=lambda m: m.__name__)
def test_statement_sources_take_enum_values_from_their_enums(module: ModuleType) -> None:
    source = Path(str(module.__file__)).read_text()
    assert enum_literals_in_source(module.__name__, source) == []


@pytest.mark.parametrize("module", STATEMENT_MODULES, ids=lambda m: m.__name__)
def test_status_literals_in_statements_are_members_of_their_enums(module: ModuleType) -> None:
    problems = [
        p for name, text in _statements(module) for p in literals_outside_their_enum(name, text)
    ]
    assert problems == []


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_migration_checks_list_exactly_their_enums_values(engine: str) -> None:
    checks = schema_checks(_migrations(engine))
    assert checks, "no CHECK (column IN (…)) found: the parser no longer sees them"
    assert checks_unlike_their_enum(checks) == []


def test_each_check_finds_what_it_is_for() -> None:
    assert enum_literals_in_source("x", "X = \"UPDATE keys SET status = 'RESERVED'\"")
    assert literals_outside_their_enum("X", "UPDATE keys SET status = 'RESERVD' WHERE id = :id")
    assert literals_outside_their_enum("X", "SELECT id FROM orders WHERE status IN ('PAID', 'X')")
    assert checks_unlike_their_enum(
        schema_checks(["CREATE TABLE orders (status TEXT CHECK (status IN ('PAID')));"])
    )
