"""G2A's side of the merchant stock contract, simulated: the calls G2A makes to a seller's
merchant server (ours or anyone's) when one of its customers buys. Used by
`autokey g2a-sandbox` (admin endpoint) and `autokey smoke --merchant`."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import attrs


@attrs.frozen(kw_only=True)
class Answer:
    """A merchant server's answer: HTTP status and JSON body (None for 204)."""

    status: int
    body: Any = None


class G2ACustomer:
    """Drives a merchant server at `base_url` (e.g. `https://seller/g2a/merchant`) as G2A does."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        client_id: str,
        client_secret: str,
    ) -> None:
        self._session, self._base = session, base_url.rstrip("/")
        self._client_id, self._client_secret = client_id, client_secret
        self._token: str | None = None

    async def _call(self, method: str, path: str, **kw: Any) -> Answer:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        async with self._session.request(
            method, self._base + path, headers=headers, **kw
        ) as response:
            body = None if response.status == 204 else await response.json(content_type=None)
            return Answer(status=response.status, body=body)

    async def authorize(self) -> Answer:
        """GET /oauth/token with the credentials in the query, as G2A's reference does."""
        answer = await self._call(
            "GET",
            "/oauth/token",
            params={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            },
        )
        if answer.status == 200:
            self._token = answer.body["access_token"]
        return answer

    async def healthcheck(self) -> Answer:
        return await self._call("GET", "/healthcheck")

    async def reserve(self, product_id: int, quantity: int, unit_price: str = "5.98") -> Answer:
        item = {
            "product_id": product_id,
            "quantity": quantity,
            "additional_data": {"unit_price": unit_price, "auction_base_price": unit_price},
        }
        return await self._call("POST", "/reservation", json=[item])

    async def renew(self, reservation_id: str) -> Answer:
        return await self._call("PUT", f"/reservation/{reservation_id}")

    async def release(self, reservation_id: str) -> Answer:
        return await self._call("DELETE", f"/reservation/{reservation_id}")

    async def order(self, reservation_id: str, g2a_order_id: int) -> Answer:
        body = {"reservation_id": reservation_id, "g2a_order_id": g2a_order_id}
        return await self._call("POST", "/order", json=body)

    async def inventory(self, order_id: str) -> Answer:
        return await self._call("GET", f"/order/{order_id}/inventory")

    async def return_keys(self, order_id: str, key_ids: list[str]) -> Answer:
        params = [("id[]", key_id) for key_id in key_ids]
        return await self._call("DELETE", f"/order/{order_id}/inventory", params=params)

    # -- fault injection -------------------------------------------------------------------

    async def duplicate_order(self, reservation_id: str, g2a_order_id: int) -> Answer:
        """The same POST /order again (G2A retrying after a lost answer)."""
        return await self.order(reservation_id, g2a_order_id)

    async def release_racing_order(
        self, reservation_id: str, g2a_order_id: int
    ) -> tuple[Answer, Answer]:
        """DELETE /reservation and POST /order at the same time: (order, release)."""
        order, release = await asyncio.gather(
            self.order(reservation_id, g2a_order_id), self.release(reservation_id)
        )
        return order, release
