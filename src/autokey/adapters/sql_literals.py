"""Enum values written into SQL text, so that no status literal in a statement is untied
from its domain enum.

Statements keep enum values as literals rather than bound parameters where a partial index
must match them (`WHERE status = 'AVAILABLE'`). They are built with these helpers, in
f-strings, from the enum member or from the model's named transition they perform
(`KeyTransition.RESERVE`), and `tests/unit/adapters/test_sql_literals.py` fails on a quoted
status value in a statement's source that does not come from here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


def literal(member: enum.StrEnum) -> str:
    """`'AVAILABLE'`: one enum value as an SQL string literal."""
    value = member.value
    if "'" in value:  # never true of autokey's enums; a quote would need escaping
        raise ValueError(f"{type(member).__name__} value holds a quote")
    return f"'{value}'"


def literals(members: Iterable[enum.StrEnum]) -> str:
    """`'PAID', 'FULFILLING'`: enum values for an `IN (…)` list, in a stable order."""
    return ", ".join(sorted(literal(m) for m in members))
