"""Taking the buyer's money."""

from __future__ import annotations

from typing import Protocol

from autokey.domain.model.orders import Order


class PaymentGateway(Protocol):
    async def charge(self, order: Order) -> str:
        """Charge the order's total; returns the provider's reference.

        Idempotent per order id: charging the same order twice charges once.
        Raises PaymentsNotConfigured when the deployment has no provider.
        """
        ...
