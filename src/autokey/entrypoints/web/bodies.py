"""Request bodies, with their Content-Encoding undone here rather than by aiohttp.

aiohttp's decoder (3.14) accepts a gzip stream that stops early: the body just ends, so a
truncated upload would store the keys that arrived and answer 200. The app therefore turns
aiohttp's decoding off (`HANDLER_ARGS`) and inflates here, a bounded piece at a time, and
requires every stream to reach its end. A body that stops early or does not decode raises
`Undecodable`; each reader turns that into its own answer (`corrupt_body` for uploads,
`unreadable_body` elsewhere).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

HANDLER_ARGS: Final = {"auto_decompress": False}
"""For `web.Application(handler_args=...)`: the app, not the server, undoes Content-Encoding."""
MAX_JSON_BODY: Final = 4 * 1024 * 1024
"""Decoded bytes of a JSON or form body (413 `payload_too_large` above)."""
PIECE_BYTES: Final = 256 * 1024

_GZIP: Final = 16 + zlib.MAX_WBITS
_WBITS: Final = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": zlib.MAX_WBITS}
_BODY: Final = web.RequestKey("autokey.body", bytes)


class Undecodable(Exception):
    """The body does not decode under its Content-Encoding, stops before its end, or names
    an encoding other than gzip and deflate."""

    def __init__(self, encoding: str) -> None:
        super().__init__(f"the body does not decode as {encoding!r}")
        self.encoding = encoding


async def decoded_pieces(request: web.Request, size: int = PIECE_BYTES) -> AsyncIterator[bytes]:
    """The body as meant, in pieces of at most `size` bytes, inflating no more than one piece
    ahead of the reader (so caps hold before a flood is inflated). Several gzip members in a
    row are one body, as in `gzip -c a b`. Undecodable as soon as that is known."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        async for piece in request.content.iter_chunked(size):
            yield piece
        return
    if encoding not in _WBITS:
        raise Undecodable(encoding)
    inflater: zlib._Decompress | None = None
    try:
        async for raw in request.content.iter_chunked(size):
            pending = raw
            while pending:
                if inflater is not None and inflater.eof and encoding == "deflate":
                    raise Undecodable(encoding)  # data after the end of the stream
                if inflater is None or inflater.eof:  # the first, or the next gzip member
                    inflater = zlib.decompressobj(_wbits(encoding, pending))
                piece = inflater.decompress(pending, size)
                pending = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
                if piece:
                    yield piece
    except zlib.error as exc:
        raise Undecodable(encoding) from exc
    if inflater is not None and not inflater.eof:  # cut short
        raise Undecodable(encoding)


def _wbits(encoding: str, first: bytes) -> int:
    """zlib's window bits for a stream that starts with `first`. "deflate" is meant to be
    zlib-wrapped (RFC 9110), but some clients send a raw deflate stream: as aiohttp does, a
    first byte without zlib's compression method (8) means raw."""
    if encoding == "deflate" and first[0] & 0x0F != 8:
        return -zlib.MAX_WBITS
    return _WBITS[encoding]


async def body_bytes(request: web.Request, limit: int = MAX_JSON_BODY) -> bytes:
    """The whole body as meant, read once per request (later calls get the same bytes).
    413 (`payload_too_large`) past `limit` decoded bytes; a body that does not decode is a
    `web.RequestPayloadError`, answered like one aiohttp could not read (`unreadable_body`)."""
    if _BODY in request:
        return request[_BODY]
    body = bytearray()
    try:
        async for piece in decoded_pieces(request):
            body += piece
            if len(body) > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    except Undecodable as exc:
        raise web.RequestPayloadError(str(exc)) from exc
    request[_BODY] = whole = bytes(body)
    return whole
