"""Sending seller webhooks over the network."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from autokey.domain.model.outbound import SendOutcome


class WebhookSender(Protocol):
    def new_secret(self) -> str:
        """A fresh signing secret in the sender's wire format (shown to the seller once)."""
        ...

    async def send(
        self, url: str, *, message_id: str, timestamp: datetime, body: str, secret: str
    ) -> SendOutcome:
        """POST `body` to `url`, signed with `secret` over `message_id.timestamp.body` (the
        Standard Webhooks scheme). Never raises for a network, TLS or HTTP failure: the outcome
        says what happened. A URL whose host resolves to a non-public address fails with
        `private_target` unless private targets are allowed; every attempt is bounded in time
        and in the response bytes read."""
        ...
