"""JSON text on the hot path (batch parameters, response bodies): orjson (ADR 0035).

What orjson refuses and the standard library encodes (a lone surrogate in a string, an integer
beyond 64 bits) falls back to `json.dumps`, so the output, and the errors the store or client
then report for it, stay what they were."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

import orjson

_OPTIONS: Final = orjson.OPT_NON_STR_KEYS


def dumps(value: Any, default: Callable[[Any], Any], *, utc_z: bool = False) -> bytes:
    """Compact JSON of `value`; `default` turns what JSON has no type for into what it has.
    orjson writes UUIDs, enum members (their values) and datetimes (ISO 8601) itself, the
    fallback leaves them to `default`. With `utc_z`, a UTC instant ends in `Z`, not `+00:00`."""
    options = _OPTIONS | (orjson.OPT_UTC_Z if utc_z else 0)
    try:
        return orjson.dumps(value, default=default, option=options)
    except orjson.JSONEncodeError:
        return json.dumps(value, default=default, separators=(",", ":")).encode()
