"""The marketplace (G2A) as autokey uses it: buying keys (Export API), publishing the stock
of our offers (Import API), and caching the Import API's access token.

Conventions for every `MarketplaceClient` method:
- failures raise `UpstreamError` subclasses, never driver or HTTP-library exceptions:
  `UpstreamAuthError` (credentials refused), `UpstreamRateLimited` (still 429 after the
  retries allowed), `UpstreamNotFound`, `UpstreamRejected` (any other 4xx, with the
  marketplace's `code`), `UpstreamUnavailable` (5xx, timeouts, connection errors after
  retries), `UpstreamProtocolError` (a body that does not match the contract);
- idempotent calls are retried inside the adapter; non-idempotent ones are not, so
  callers keep their own reference and look an order up before trying again.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Protocol

from autokey.domain.model.marketplace import (
    AccessToken,
    JobOutcome,
    MarketplaceEnvironment,
    MarketplaceOrder,
    MarketplaceOrderDetails,
    MarketplaceProduct,
    OfferStockPublication,
    PaymentResult,
    ProductFilters,
    ProductPage,
    TokenProbe,
)


class MarketplaceClient(Protocol):
    async def list_products(self, page: int, filters: ProductFilters | None = None) -> ProductPage:
        """One page (from 1) of the catalogue. Idempotent (retried).
        An empty page is a normal result, never an error."""
        ...

    async def get_product(self, product_id: str) -> MarketplaceProduct:
        """One product, with its current lowest price and stock. Idempotent (retried).
        Raises `UpstreamNotFound` when the marketplace does not list it."""
        ...

    async def create_order(
        self, product_id: str, max_price: Decimal | None = None, currency: str | None = None
    ) -> MarketplaceOrder:
        """Place an order (reserves stock for about 30 minutes). NOT idempotent: never
        retried once the request may have been sent. Raises `UpstreamRejected` (e.g. no
        offer under `max_price`) or `UpstreamNotFound` for an unknown product."""
        ...

    async def pay_order(self, order_id: str) -> PaymentResult:
        """Pay an order from the account balance. Idempotent at the marketplace (paying a
        paid order does not charge twice), so retried. Raises `UpstreamRejected` with code
        ORD112 (not enough funds) or ORD114 (too late), `UpstreamNotFound` for an unknown order."""
        ...

    async def order_details(self, order_id: str) -> MarketplaceOrderDetails:
        """The order's status and price; poll it until the key is ready. Idempotent (retried).
        Raises `UpstreamNotFound` for an unknown order."""
        ...

    async def order_key(self, order_id: str) -> str:
        """The key plaintext. Downloadable ONCE: the caller must persist it (encrypted) before
        doing anything else. Never logged. Retried only on transport failures before an answer.
        Raises `UpstreamRejected` with code ORD03 (not ready: try later) or ORD004 (already
        downloaded), `UpstreamNotFound` for an unknown order."""
        ...

    async def publish_offer_stock(
        self, offer_ref: str, inventory_size: int
    ) -> OfferStockPublication:
        """Set the stock (inventory size) of our offer `offer_ref` on the marketplace.
        Idempotent (sets an absolute size), so retried. Raises `UpstreamNotFound` for an
        unknown offer, `UpstreamAuthError` when the selling API refuses our token twice."""
        ...

    async def job_status(self, job_id: str) -> JobOutcome:
        """Where an asynchronous Import API job (e.g. a stock update) stands. Idempotent
        (retried). Raises `UpstreamNotFound` for an unknown job."""
        ...

    async def probe_token(self) -> TokenProbe:
        """Obtain the selling API token from the cache, or fetch it; for health checks.
        Idempotent. Raises `UpstreamAuthError` when the credentials are refused."""
        ...


class TokenCache(Protocol):
    """Where the selling API token is kept between calls and between processes.

    Storage failures never cross this port: an adapter whose store is unreachable degrades
    to a process-local cache and lock."""

    async def get(self, env: MarketplaceEnvironment, fingerprint: str) -> AccessToken | None:
        """The cached token of `env`; None when absent, expired, or cached under another
        credentials `fingerprint` (credentials were rotated). Never raises."""
        ...

    async def put(self, env: MarketplaceEnvironment, token: AccessToken, fingerprint: str) -> None:
        """Cache `token` for the rest of its lifetime, recording `fingerprint`. Idempotent;
        replaces any previous token of `env`. Never raises."""
        ...

    async def delete(self, env: MarketplaceEnvironment) -> None:
        """Forget the token of `env` (e.g. after the marketplace refused it). Idempotent."""
        ...

    def refresh_lock(
        self, env: MarketplaceEnvironment, *, ttl_s: float, wait_s: float
    ) -> AbstractAsyncContextManager[bool]:
        """A short lock shared by every process using this cache, so that one of them
        refreshes the token while the others wait and then read it. Waits up to `wait_s`;
        yields True when held, False when the wait ran out (the caller may then proceed
        unlocked). The lock frees itself after `ttl_s` if its holder dies. Never raises."""
        ...
