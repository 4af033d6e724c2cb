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


def dumps(value: Any, default: Callable[[Any], Any], *, datetimes_as_str: bool = False) -> bytes:
    """Compact JSON of `value`; `default` turns what JSON has no type for into what it has.
    orjson writes datetimes in ISO 8601 itself; with `datetimes_as_str` they go to `default`
    (str(): the form `json.dumps(..., default=str)` gave)."""
    options = _OPTIONS | (orjson.OPT_PASSTHROUGH_DATETIME if datetimes_as_str else 0)
    try:
        return orjson.dumps(value, default=default, option=options)
    except orjson.JSONEncodeError:
        return json.dumps(value, default=default, separators=(",", ":")).encode()
