"""Seller webhooks over HTTP: Standard Webhooks signatures (the `standardwebhooks` package),
and a session that refuses to connect to non-public addresses after DNS resolution."""

from __future__ import annotations

import base64
import ipaddress
import os
import socket
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from standardwebhooks.webhooks import Webhook

from autokey import __version__
from autokey.domain.model.outbound import SendOutcome, is_public
from autokey.ports.outbound import WebhookSender

MAX_RESPONSE_BYTES = 64 * 1024
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret


class PrivateTarget(OSError):
    """A webhook host resolved only to addresses autokey may not call."""


class PublicOnlyResolver(AbstractResolver):
    """Resolves names, then drops every non-public address: the check applies to the very
    addresses the connection uses, so a name that later rebinds to 127.0.0.1 cannot pass."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [r for r in found if is_public(ipaddress.ip_address(r["host"]))]
        if not public:
            raise PrivateTarget(f"{host} resolves to no public address")
        return public

    async def close(self) -> None:
        await self._inner.close()


def open_webhook_session(*, allow_private: bool, timeout_s: float) -> aiohttp.ClientSession:
    """The session seller webhooks go out on (never the G2A one): bounded in time, no cookies,
    and, unless private targets are allowed, connecting only to public addresses."""
    connector = aiohttp.TCPConnector(
        resolver=None if allow_private else PublicOnlyResolver(), limit=50
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": f"autokey-webhooks/{__version__}"},
    )


class StandardWebhookSender(WebhookSender):
    def __init__(self, session: aiohttp.ClientSession | None, *, allow_private: bool) -> None:
        """`session` from `open_webhook_session`; None where nothing is ever sent (the CLI,
        handler tests): then every send fails with `sender_closed`."""
        self._session, self._allow_private = session, allow_private

    def new_secret(self) -> str:
        return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()

    async def send(
        self, url: str, *, message_id: str, timestamp: datetime, body: str, secret: str
    ) -> SendOutcome:
        if self._session is None:
            return SendOutcome(error="sender_closed")
        if not self._allow_private and _literal_private(url):
            return SendOutcome(error="private_target")
        signature = Webhook(secret).sign(msg_id=message_id, timestamp=timestamp, data=body)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": signature,
        }
        try:
            async with self._session.post(
                url, data=body.encode(), headers=headers, allow_redirects=False
            ) as response:
                await response.content.read(MAX_RESPONSE_BYTES)  # never more than this
                return SendOutcome(status_code=response.status)
        except aiohttp.ClientConnectorError as exc:
            private = isinstance(exc.os_error, PrivateTarget)
            return SendOutcome(error="private_target" if private else "connect_failed")
        except TimeoutError:
            return SendOutcome(error="timeout")
        except aiohttp.ClientError as exc:
            return SendOutcome(error=_error_code(exc))


def _literal_private(url: str) -> bool:
    """aiohttp does not resolve an IP literal, so the resolver never sees it: check it here."""
    try:
        return not is_public(ipaddress.ip_address(urlsplit(url).hostname or ""))
    except ValueError:
        return False


def _error_code(exc: BaseException) -> str:
    names: dict[type[Any], str] = {
        aiohttp.ClientSSLError: "tls_failed",
        aiohttp.ServerDisconnectedError: "disconnected",
        aiohttp.ClientPayloadError: "bad_response",
    }
    return next((code for kind, code in names.items() if isinstance(exc, kind)), "http_failed")
