"""JSON text on the hot path (autokey.adapters.json_text, ADR 0035): orjson's output where it
can, and exactly `json.dumps`'s where orjson refuses the value."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autokey.adapters import json_text

ID = UUID("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
AT = datetime(2026, 11, 30, 14, 5, 6, 789, tzinfo=UTC)


def test_ids_instants_and_amounts_are_written_as_postgresql_reads_them() -> None:
    written = json_text.dumps([{"id": ID, "at": AT, "amount": Decimal("9.99")}], str)
    assert written == (
        b'[{"id":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",'
        b'"at":"2026-11-30T14:05:06.000789+00:00","amount":"9.99"}]'
    )


def test_utc_instants_can_end_in_z() -> None:
    assert json_text.dumps({"at": AT}, str, utc_z=True) == b'{"at":"2026-11-30T14:05:06.000789Z"}'


@pytest.mark.parametrize("refused", ["half a pair \ud800 here", 1 << 70])
def test_what_orjson_refuses_is_written_as_json_dumps_writes_it(refused: object) -> None:
    value = {"name": refused, "n": 1}
    assert json_text.dumps(value, str) == json.dumps(value, separators=(",", ":")).encode()


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_any_json_value_reads_back_as_itself(value: object) -> None:
    assert json.loads(json_text.dumps(value, str)) == value
