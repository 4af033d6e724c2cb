"""Payment adapters: a simulated gateway for development, and the refusal for production."""

from __future__ import annotations

from autokey.domain.model.errors import PaymentsNotConfigured
from autokey.domain.model.orders import Order
from autokey.ports.payments import PaymentGateway


class SimulatedPaymentGateway(PaymentGateway):
    """Accepts every charge. Enabled by default only outside production."""

    async def charge(self, order: Order) -> str:
        return f"sim_{order.id.hex}"


class UnconfiguredPaymentGateway(PaymentGateway):
    async def charge(self, order: Order) -> str:
        raise PaymentsNotConfigured()
