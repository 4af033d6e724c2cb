"""Streaming a text/plain upload as numbered lines with bounded memory."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import StreamReader

from autokey.domain.model.keys import MAX_KEY_LENGTH

MAX_LINE_BYTES = 4 * MAX_KEY_LENGTH + 4
"""Keep at most this much of one line: anything longer is invalid anyway (too long)."""
CHUNK_BYTES = 256 * 1024


async def numbered_lines(stream: StreamReader) -> AsyncIterator[tuple[int, str]]:
    """Yield (1-based line number, text) for every line, blank ones included.

    Invalid UTF-8 is kept as lone surrogates, which key validation rejects as invalid
    characters; overlong lines are cut at MAX_LINE_BYTES (still reported too long).
    """
    number = 0
    pending = bytearray()
    overflow = False
    async for chunk in stream.iter_chunked(CHUNK_BYTES):
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            if not overflow:
                pending += chunk[start : start + MAX_LINE_BYTES - len(pending)][: end - start]
            number += 1
            yield number, _decode(pending)
            pending.clear()
            overflow = False
            start = end + 1
        if not overflow:
            room = MAX_LINE_BYTES - len(pending)
            pending += chunk[start : start + room]
            overflow = len(chunk) - start > room
    if pending:
        yield number + 1, _decode(pending)


def _decode(raw: bytearray) -> str:
    return bytes(raw).decode("utf-8", "surrogateescape").removesuffix("\r")
