"""A text/plain upload: spooled to an anonymous temporary file under its caps (memory stays
bounded and no database connection waits on a slow client), then read back as numbered
lines in a worker thread."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from typing import IO

from aiohttp import web

from autokey.domain.model.errors import (
    BodyTooLarge,
    CorruptBody,
    FieldProblem,
    TooManyLines,
    UploadTooLarge,
)
from autokey.domain.model.keys import MAX_KEY_LENGTH
from autokey.entrypoints.settings import UploadLimits
from autokey.entrypoints.web.bodies import Undecodable, decoded_pieces

MAX_LINE_BYTES = 4 * MAX_KEY_LENGTH + 4
"""Keep at most this much of one line: anything longer is invalid anyway (too long)."""
CHUNK_BYTES = 256 * 1024


async def spool_body(request: web.Request, limits: UploadLimits) -> IO[bytes]:
    """The body in a temporary file positioned at its start. Its Content-Encoding (gzip,
    deflate) is undone a bounded piece at a time (`bodies.decoded_pieces`), so the caps count
    decoded bytes and lines: BodyTooLarge or TooManyLines as soon as one is passed, before
    the rest is inflated; CorruptBody when the body does not decode or stops early."""
    spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
    try:
        size = newlines = 0
        last = b"\n"
        try:
            async for piece in decoded_pieces(request, CHUNK_BYTES):
                size += len(piece)
                newlines += piece.count(b"\n")
                if newlines > limits.max_lines:
                    raise TooManyLines(problems=(_TOO_LARGE,), limit=limits.max_lines)
                if size > limits.max_bytes:
                    raise BodyTooLarge(problems=(_TOO_LARGE,), limit=limits.max_bytes)
                spool.write(piece)
                last = piece[-1:]
                # Buffered pieces are handed over without suspending: let others run.
                await asyncio.sleep(0)
        except (web.RequestPayloadError, Undecodable) as exc:  # broken framing or encoding
            _abandon(request)
            encoding = request.headers.get("Content-Encoding", "")
            raise CorruptBody(problems=(_CORRUPT,), encoding=encoding) from exc
        except UploadTooLarge:
            _abandon(request)
            raise
        if last != b"\n" and newlines + 1 > limits.max_lines:  # an unterminated last line
            raise TooManyLines(problems=(_TOO_LARGE,), limit=limits.max_lines)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


def _abandon(request: web.Request) -> None:
    """Read no more of the body. At EOF, aiohttp does not drain the rest after our answer:
    it would, without yielding, for as long as a flood lasts, or fail again on a corrupt
    stream. The answer closes the connection (problems.py), so the unread bytes are
    never parsed as a next request."""
    request.content.feed_eof()


_TOO_LARGE = FieldProblem(field="body", code="too_large")
_CORRUPT = FieldProblem(field="body", code="corrupt_encoding")


def numbered_lines(body: IO[bytes]) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) for every line, blank ones included.

    Invalid UTF-8 is kept as lone surrogates, which key validation rejects as invalid
    characters; overlong lines are cut at MAX_LINE_BYTES (still reported too long).
    """
    number = 0
    pending = bytearray()
    overflow = False
    while chunk := body.read(CHUNK_BYTES):
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
