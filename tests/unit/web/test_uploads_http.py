"""Caps and Content-Encoding of text/plain uploads, on the in-memory store."""

from __future__ import annotations

import gzip
import zlib

from autokey.adapters.memory.store import MemoryStore
from tests.http import Api, running_api

PROBLEM = "application/problem+json"
CAPS = {"AUTOKEY_UPLOAD_MAX_LINES": "5", "AUTOKEY_UPLOAD_MAX_BYTES": "1000"}


async def _upload(api: Api, body: bytes, **headers: str) -> tuple[int, dict[str, object], str]:
    """Upload `body` into a new pool: (status, JSON answer, pool's available keys)."""
    seller = await api.token()
    created = await api.client.post("/key-pools", json={}, headers=seller)
    pool = (await created.json())["id"]
    response = await api.client.post(
        f"/key-pools/{pool}/keys/upload",
        data=body,
        headers={**seller, "Content-Type": "text/plain", **headers},
    )
    answer = await response.json()
    if response.status != 200:
        assert response.content_type == PROBLEM
    read = await (await api.client.get(f"/key-pools/{pool}", headers=seller)).json()
    return response.status, answer, read["availableKeys"]


async def test_blank_lines_count_against_the_line_cap() -> None:
    async with running_api(MemoryStore(), environ=CAPS) as api:
        status, answer, stored = await _upload(api, b"AAAAA-11111\n\n\n\n\n\n")
        assert (status, answer["code"], answer["limit"], stored) == (413, "too_many_lines", 5, 0)
        # Five lines, the last one unterminated: at the cap, so accepted.
        status, answer, stored = await _upload(api, b"BBBBB-11111\n\n\n\nBBBBB-22222")
        assert (status, answer["added"], stored) == (200, 2, 2)
        status, answer, _ = await _upload(api, b"\n\n\n\n\nCCCCC-11111")
        assert (status, answer["code"]) == (413, "too_many_lines")


async def test_a_body_over_the_byte_cap_is_refused_whole() -> None:
    async with running_api(MemoryStore(), environ=CAPS) as api:
        status, answer, stored = await _upload(api, b"DDDDD-" + b"1" * 1000 + b"\n")
        assert (status, answer["code"], answer["limit"], stored) == (
            413,
            "upload_too_large",
            1000,
            0,
        )


async def test_gzip_and_deflate_bodies_are_decoded() -> None:
    async with running_api(MemoryStore()) as api:
        plain = b"".join(b"ZIPPED-%05d\n" % i for i in range(1000))
        status, answer, stored = await _upload(
            api, gzip.compress(plain), **{"Content-Encoding": "gzip"}
        )
        assert (status, answer["added"], stored) == (200, 1000, 1000)
        deflated = zlib.compress(plain.replace(b"ZIPPED", b"DEFLAT"))
        status, answer, stored = await _upload(api, deflated, **{"Content-Encoding": "deflate"})
        assert (status, answer["added"], stored) == (200, 1000, 1000)


async def test_caps_count_the_decompressed_body() -> None:
    async with running_api(MemoryStore(), environ=CAPS) as api:
        lines_bomb = gzip.compress(b"\n" * 10_000_000)  # about 10 KB inflating to 10 MB
        status, answer, _ = await _upload(api, lines_bomb, **{"Content-Encoding": "gzip"})
        assert (status, answer["code"]) == (413, "too_many_lines")
        bytes_bomb = gzip.compress(b"E" * 10_000_000)  # one line
        status, answer, _ = await _upload(api, bytes_bomb, **{"Content-Encoding": "gzip"})
        assert (status, answer["code"]) == (413, "upload_too_large")


async def test_a_corrupt_compressed_body_is_a_400_problem() -> None:
    async with running_api(MemoryStore()) as api:
        corrupt = gzip.compress(b"FFFFF-11111\n" * 100)[:12] + b"\x00not deflate at all" * 50
        status, answer, stored = await _upload(api, corrupt, **{"Content-Encoding": "gzip"})
        assert (status, answer["code"], stored) == (400, "corrupt_body", 0)
        assert answer["errors"] == [{"field": "body", "code": "corrupt_encoding"}]


async def test_a_compressed_body_that_stops_early_stores_nothing() -> None:
    plain = b"".join(b"CUT-%06d\n" % i for i in range(100_000))
    packed = gzip.compress(plain)
    async with running_api(MemoryStore()) as api:
        for encoding, cut in (
            ("gzip", packed[: len(packed) // 2]),  # half the stream
            ("gzip", packed[:-8]),  # every key, but not the trailer (CRC and length)
            ("deflate", zlib.compress(plain)[:-4]),  # every key, but not the checksum
        ):
            status, answer, stored = await _upload(api, cut, **{"Content-Encoding": encoding})
            assert (status, answer["code"], stored) == (400, "corrupt_body", 0), encoding
            assert answer["errors"] == [{"field": "body", "code": "corrupt_encoding"}]


async def test_gzip_members_in_a_row_and_raw_deflate_are_decoded_whole() -> None:
    first = b"".join(b"MEMBER-A-%05d\n" % i for i in range(700))
    second = b"".join(b"MEMBER-B-%05d\n" % i for i in range(300))
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    async with running_api(MemoryStore()) as api:
        members = gzip.compress(first) + gzip.compress(second)  # as `gzip -c a b` writes
        status, answer, stored = await _upload(api, members, **{"Content-Encoding": "gzip"})
        assert (status, answer["added"], stored) == (200, 1000, 1000)
        deflated = raw.compress(first.replace(b"MEMBER", b"RAWDEF")) + raw.flush()
        status, answer, stored = await _upload(api, deflated, **{"Content-Encoding": "deflate"})
        assert (status, answer["added"], stored) == (200, 700, 700)


async def test_an_unknown_encoding_is_refused_not_stored_as_text() -> None:
    async with running_api(MemoryStore()) as api:
        status, answer, stored = await _upload(api, b"BROTLI-1\n", **{"Content-Encoding": "br"})
        assert (status, answer["code"], stored) == (400, "corrupt_body", 0)
