"""`G2AMarketplaceClient`: the one outbound G2A adapter (Export API to buy, Import API to
publish stock), over an already-open aiohttp session.

Every HTTP attempt logs one `g2a.request` line (method, path with ids, status, latency,
attempt, env, correlation id) and feeds the metrics. Credentials, tokens, the e-mail and
key plaintexts are never logged and never put in an error."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import aiohttp
import attrs
import cattrs
import structlog

from autokey.adapters.g2a.auth import (
    credentials_fingerprint,
    export_authorization,
    hash_headers,
    oauth_form,
)
from autokey.adapters.g2a.config import G2AConfig, TokenFlow
from autokey.adapters.g2a.converter import (
    ErrorWire,
    JobAccepted,
    JobWire,
    KeyWire,
    OrderDetailsWire,
    PaymentWire,
    TokenWire,
    decode_json,
    make_g2a_converter,
)
from autokey.adapters.g2a.guard import CallGuard
from autokey.adapters.g2a.metrics import G2AMetrics
from autokey.adapters.g2a.retry import (
    FailureKind,
    RetryPolicy,
    TransientFailure,
    is_transient_status,
    parse_retry_after,
    run_with_retries,
)
from autokey.domain.model.errors import (
    InvalidInput,
    UpstreamAuthError,
    UpstreamError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)
from autokey.domain.model.marketplace import (
    AccessToken,
    JobOutcome,
    MarketplaceOrder,
    MarketplaceOrderDetails,
    MarketplaceProduct,
    OfferStockPublication,
    PaymentResult,
    ProductFilters,
    ProductPage,
    TokenProbe,
    TokenSource,
)
from autokey.ports.marketplace import MarketplaceClient, TokenCache

UPSTREAM = "g2a"
T = TypeVar("T")

_SECRET_QUERY_KEYS = frozenset(
    {
        "client_id",
        "client_secret",
        "secret",
        "token",
        "access_token",
        "key",
        "hash",
        "email",
        "password",
        "api_key",
        "apikey",
    }
)


def redact_query(query: str) -> str:
    """The query string with every secret-looking parameter's value replaced by `***`."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs])


def current_correlation_id() -> str:
    """The request's correlation id from structlog's contextvars, or a fresh one."""
    value = structlog.contextvars.get_contextvars().get("correlation_id")
    return str(value) if value else uuid.uuid4().hex


@attrs.frozen(kw_only=True)
class _Call:
    operation: str
    endpoint: str
    """Low-cardinality label: method and path template."""
    method: str
    url: str
    idempotent: bool
    correlation_id: str
    params: Mapping[str, str] | None = None
    json_body: Any = None
    form: Mapping[str, str] | None = attrs.field(default=None, repr=False)
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)


@attrs.frozen(kw_only=True)
class _Response:
    status: int
    body: bytes = attrs.field(repr=False)


def _error_code(body: bytes) -> str | None:
    try:
        data = decode_json(body)
        wire = make_g2a_converter().structure(data, ErrorWire) if isinstance(data, dict) else None
    except (ValueError, cattrs.BaseValidationError, TypeError):
        return None
    return wire.code if wire is not None else None


def error_for_status(status: int, code: str | None, operation: str) -> UpstreamError:
    """Map a non-transient error answer: HTTP status class first, G2A code second.
    Unknown codes are kept as data on the error."""
    fields: dict[str, Any] = {
        "upstream": UPSTREAM,
        "operation": operation,
        "status": status,
        "code": code,
    }
    is_auth_code = code is not None and code.upper().startswith("AUTH")
    if status == 401 or (status == 403 and (code is None or is_auth_code)):
        return UpstreamAuthError(**fields)
    if status == 404:
        return UpstreamNotFound(**fields)
    if 400 <= status < 500:
        return UpstreamAuthError(**fields) if is_auth_code else UpstreamRejected(**fields)
    if status >= 500:
        return UpstreamUnavailable(**fields)
    return UpstreamProtocolError(**fields)


_ERROR_KINDS: tuple[tuple[type[UpstreamError], str], ...] = (
    (UpstreamAuthError, "auth"),
    (UpstreamRateLimited, "rate_limited"),
    (UpstreamNotFound, "not_found"),
    (UpstreamRejected, "rejected"),
    (UpstreamUnavailable, "unavailable"),
    (UpstreamProtocolError, "protocol"),
)


def _error_kind(exc: UpstreamError) -> str:
    return next((kind for cls, kind in _ERROR_KINDS if isinstance(exc, cls)), "other")


class G2AMarketplaceClient(MarketplaceClient):
    """G2A over HTTP. Takes an already-open session; never closes it."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        config: G2AConfig,
        token_cache: TokenCache,
        retry_policy: RetryPolicy,
        metrics: G2AMetrics,
        clock: Callable[[], datetime],
        guard: CallGuard | None = None,
    ) -> None:
        self._session = session
        self._guard = guard
        self._config = config
        self._cache = token_cache
        self._policy = retry_policy
        self._metrics = metrics
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_s)
        self._conv = make_g2a_converter()
        self._log = structlog.get_logger("autokey.adapters.g2a")
        self._export_auth = export_authorization(
            config.client_id, config.email, config.client_secret
        )
        self._fingerprint = credentials_fingerprint(
            config.env,
            config.token_flow,
            config.import_base_url,
            config.client_id,
            config.client_secret,
        )
        self._refresh_lock = asyncio.Lock()
        self._lock_ttl_s = config.timeout_s * 2 + 1

    # -- Export API ------------------------------------------------------------------------

    async def list_products(self, page: int, filters: ProductFilters | None = None) -> ProductPage:
        if page < 1:
            raise InvalidInput.of("page", "must_be_positive")
        params = {"page": str(page), **_filter_params(filters or ProductFilters())}
        data = await self._export("list_products", "GET", "products", {}, params=params)
        return self._structure(data, ProductPage, "list_products")

    async def get_product(self, product_id: str) -> MarketplaceProduct:
        data = await self._export("get_product", "GET", "products", {}, params={"id": product_id})
        page = self._structure(data, ProductPage, "get_product")
        if not page.items:
            raise UpstreamNotFound(upstream=UPSTREAM, operation="get_product", status=200)
        return next((p for p in page.items if p.id == product_id), page.items[0])

    async def create_order(
        self, product_id: str, max_price: Decimal | None = None, currency: str | None = None
    ) -> MarketplaceOrder:
        body: dict[str, Any] = {"product_id": product_id}
        if max_price is not None:
            body["max_price"] = float(max_price)
        if currency is not None:
            body["currency"] = currency
        data = await self._export(
            "create_order", "POST", "order", {}, json_body=body, idempotent=False
        )
        return self._structure(data, MarketplaceOrder, "create_order")

    async def pay_order(self, order_id: str) -> PaymentResult:
        data = await self._export("pay_order", "PUT", "order_pay", {"order_id": order_id})
        wire = self._structure(data, PaymentWire, "pay_order")
        return PaymentResult(
            order_id=order_id, paid=wire.status, transaction_id=wire.transaction_id
        )

    async def order_details(self, order_id: str) -> MarketplaceOrderDetails:
        data = await self._export("order_details", "GET", "order_details", {"order_id": order_id})
        wire = self._structure(data, OrderDetailsWire, "order_details")
        return MarketplaceOrderDetails(
            order_id=order_id, status=wire.status, price=wire.price, currency=wire.currency
        )

    async def order_key(self, order_id: str) -> str:
        data = await self._export("order_key", "GET", "order_key", {"order_id": order_id})
        wire = self._structure(data, KeyWire, "order_key")
        if not wire.key:
            raise UpstreamProtocolError(upstream=UPSTREAM, operation="order_key", status=200)
        return wire.key

    # -- Import API ------------------------------------------------------------------------

    async def publish_offer_stock(
        self, offer_ref: str, inventory_size: int
    ) -> OfferStockPublication:
        if inventory_size < 0:
            raise InvalidInput.of("inventory_size", "must_not_be_negative")
        path = self._config.paths.offer.format(offer_id=quote(offer_ref, safe=""))
        body = {"offerType": "dropshipping", "variant": {"inventory": {"size": inventory_size}}}
        call = self._call(
            "publish_offer_stock",
            "PATCH",
            f"PATCH {self._config.paths.offer}",
            self._config.import_base_url + path,
            json_body=body,
            idempotent=True,
        )
        response = await self._bearer_send(call)
        job_id: str | None = None
        if response.status in (200, 202) and response.body.strip():
            job_id = self._structure(
                self._decode(response, call), JobAccepted, call.operation
            ).data.job_id
        elif response.status not in (200, 202, 204):
            raise self._failed(
                call, error_for_status(response.status, _error_code(response.body), call.operation)
            )
        return OfferStockPublication(
            offer_ref=offer_ref, inventory_size=inventory_size, job_id=job_id
        )

    async def job_status(self, job_id: str) -> JobOutcome:
        path = self._config.paths.job.format(job_id=quote(job_id, safe=""))
        call = self._call(
            "job_status",
            "GET",
            f"GET {self._config.paths.job}",
            self._config.import_base_url + path,
            idempotent=True,
        )
        response = await self._bearer_send(call)
        if response.status != 200:
            raise self._failed(
                call, error_for_status(response.status, _error_code(response.body), call.operation)
            )
        data = self._structure(self._decode(response, call), JobWire, call.operation).data
        failed = [e.code or e.status for e in data.elements if e.code or e.status == "failed"]
        return JobOutcome(job_id=job_id, status=data.status, error_code=(failed or [None])[0])

    async def probe_token(self) -> TokenProbe:
        token, cached = await self._token()
        return TokenProbe(
            source=TokenSource.CACHE if cached else TokenSource.FETCHED,
            token_type=token.token_type,
            expires_at=token.expires_at,
        )

    # -- tokens ----------------------------------------------------------------------------

    async def _token(self, stale: AccessToken | None = None) -> tuple[AccessToken, bool]:
        """A usable token and whether it came from the cache. Single flight: one refresh per
        process (asyncio lock) and, through the cache's lock, one across processes."""
        env = self._config.env
        token = await self._cache.get(env, self._fingerprint)
        if self._usable(token, stale):
            assert token is not None
            self._metrics.token_cache_hit()
            return token, True
        self._metrics.token_cache_miss()
        async with (
            self._refresh_lock,
            self._cache.refresh_lock(env, ttl_s=self._lock_ttl_s, wait_s=self._lock_ttl_s),
        ):
            token = await self._cache.get(env, self._fingerprint)
            if self._usable(token, stale):
                assert token is not None
                return token, True
            token = await self._fetch_token()
            await self._cache.put(env, token, self._fingerprint)
            return token, False

    def _usable(self, token: AccessToken | None, stale: AccessToken | None) -> bool:
        return (
            token is not None
            and not token.needs_refresh(self._clock())
            and (stale is None or token.value != stale.value)
        )

    async def _fetch_token(self) -> AccessToken:
        cfg = self._config
        flow = cfg.token_flow
        if flow is TokenFlow.OAUTH2:
            call = self._call(
                "fetch_token",
                "POST",
                f"POST {cfg.paths.oauth_token}",
                cfg.import_base_url + cfg.paths.oauth_token,
                form=oauth_form(cfg.client_id, cfg.client_secret),
                idempotent=True,
            )
        else:
            timestamp = str(int(self._clock().timestamp()))
            call = self._call(
                "fetch_token",
                "GET",
                f"GET {cfg.paths.hash_token}",
                cfg.hash_token_base_url + cfg.paths.hash_token,
                headers=hash_headers(cfg.client_secret, cfg.client_id, timestamp),
                idempotent=True,
            )
        try:
            response = await self._send(call)
            if response.status != 200:
                code = _error_code(response.body)
                error = error_for_status(response.status, code, call.operation)
                if response.status in (400, 403):
                    error = UpstreamAuthError(
                        upstream=UPSTREAM,
                        operation=call.operation,
                        status=response.status,
                        code=code,
                    )
                raise self._failed(call, error)
            wire = self._structure(self._decode(response, call), TokenWire, call.operation)
            if wire.token_type.lower() != "bearer" or wire.expires_in <= 0 or not wire.access_token:
                raise self._failed(
                    call,
                    UpstreamProtocolError(
                        upstream=UPSTREAM, operation=call.operation, status=response.status
                    ),
                )
        except UpstreamError:
            self._metrics.token_fetched(flow, "failed")
            raise
        self._metrics.token_fetched(flow, "ok")
        self._log.info(
            "g2a.token_fetched",
            flow=str(flow),
            expires_in=wire.expires_in,
            env=str(cfg.env),
            correlation_id=call.correlation_id,
        )
        return AccessToken(
            value=wire.access_token,
            token_type=wire.token_type,
            expires_in=wire.expires_in,
            issued_at=self._clock(),
        )

    async def _bearer_send(self, call: _Call) -> _Response:
        """Send an Import API call with the bearer token; a 401 on a cached token drops it
        from the cache and retries once with a fresh one."""
        token, cached = await self._token()
        response = await self._send(attrs.evolve(call, headers=_bearer(token)))
        if response.status == 401 and cached:
            self._log.info(
                "g2a.token_rejected", env=str(self._config.env), correlation_id=call.correlation_id
            )
            await self._cache.delete(self._config.env)
            token, _ = await self._token(stale=token)
            response = await self._send(attrs.evolve(call, headers=_bearer(token)))
        return response

    # -- plumbing --------------------------------------------------------------------------

    def _call(self, operation: str, method: str, endpoint: str, url: str, **kw: Any) -> _Call:
        return _Call(
            operation=operation,
            method=method,
            endpoint=endpoint,
            url=url,
            correlation_id=current_correlation_id(),
            **kw,
        )

    async def _export(
        self,
        operation: str,
        method: str,
        resource: str,
        ids: Mapping[str, str],
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        idempotent: bool = True,
    ) -> Any:
        template: str = getattr(self._config.paths, resource)
        path = template.format(**{k: quote(v, safe="") for k, v in ids.items()})
        call = self._call(
            operation,
            method,
            f"{method} {template}",
            self._config.export_base_url + path,
            params=params,
            json_body=json_body,
            idempotent=idempotent,
            headers={"Authorization": self._export_auth},
        )
        response = await self._send(call)
        if response.status not in (200, 201):
            raise self._failed(
                call, error_for_status(response.status, _error_code(response.body), operation)
            )
        return self._decode(response, call)

    def _decode(self, response: _Response, call: _Call) -> Any:
        try:
            return decode_json(response.body)
        except (ValueError, UnicodeDecodeError):
            raise self._failed(
                call,
                UpstreamProtocolError(
                    upstream=UPSTREAM, operation=call.operation, status=response.status
                ),
            ) from None

    def _structure(self, data: Any, cls: type[T], operation: str) -> T:
        try:
            return self._conv.structure(data, cls)
        except (cattrs.BaseValidationError, ValueError, TypeError, KeyError, ArithmeticError):
            error = UpstreamProtocolError(upstream=UPSTREAM, operation=operation, status=200)
            self._metrics.error(operation, "protocol")
            self._log.warning("g2a.protocol_error", operation=operation, env=str(self._config.env))
            raise error from None

    def _failed(self, call: _Call, error: UpstreamError) -> UpstreamError:
        self._metrics.error(call.endpoint, _error_kind(error))
        return error

    async def _send(self, call: _Call) -> _Response:
        """One logical call under the guard (rate limit, circuit breaker), if any."""
        if self._guard is None:
            return await self._send_with_retries(call)
        return await self._guard.run(call.operation, lambda: self._send_with_retries(call))

    async def _send_with_retries(self, call: _Call) -> _Response:
        """One logical call: attempts with retries per the policy. Returns any non-transient
        answer; raises UpstreamRateLimited / UpstreamUnavailable after giving up."""

        def on_retry(failure: TransientFailure, tries: int, wait_s: float) -> None:
            self._metrics.retried(call.endpoint, failure.kind)
            self._log.info(
                "g2a.retry",
                endpoint=call.endpoint,
                attempt=tries,
                reason=str(failure.kind),
                status=failure.status,
                wait_ms=round(wait_s * 1000),
                correlation_id=call.correlation_id,
            )

        try:
            return await run_with_retries(
                self._policy,
                lambda n: self._attempt(call, n),
                idempotent=call.idempotent,
                on_retry=on_retry,
            )
        except TransientFailure as failure:
            error: UpstreamError
            if failure.kind is FailureKind.RATE_LIMITED:
                error = UpstreamRateLimited(
                    upstream=UPSTREAM,
                    operation=call.operation,
                    status=failure.status,
                    code=failure.code,
                    retry_after_s=failure.retry_after_s,
                )
            else:
                error = UpstreamUnavailable(
                    upstream=UPSTREAM,
                    operation=call.operation,
                    status=failure.status,
                    code=failure.code,
                    attempts=self._policy.max_retries + 1 if call.idempotent else 1,
                )
            raise self._failed(call, error) from None

    async def _attempt(self, call: _Call, attempt: int) -> _Response:
        headers = {
            **call.headers,
            "X-Correlation-ID": call.correlation_id,
            "Accept": "application/json",
        }
        data: Any = None
        if call.json_body is not None:
            data = json.dumps(call.json_body).encode()
            headers["Content-Type"] = "application/json"
        elif call.form is not None:
            data = dict(call.form)
        started = time.perf_counter()
        status: int | None = None
        failure: TransientFailure | None = None
        body = b""
        try:
            async with self._session.request(
                call.method,
                call.url,
                params=call.params,
                data=data,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                body = await resp.read()
                retry_after = resp.headers.get("Retry-After")
        except aiohttp.ClientConnectorError:
            failure = TransientFailure(FailureKind.CONNECTION, request_sent=False)
        except TimeoutError:
            failure = TransientFailure(FailureKind.TIMEOUT)
        except aiohttp.ClientError:
            failure = TransientFailure(FailureKind.CONNECTION)
        elapsed = time.perf_counter() - started
        self._metrics.observe_request(call.endpoint, status, elapsed)
        split = urlsplit(call.url)
        query = redact_query(urlencode(dict(call.params or {})))
        self._log.log(
            30 if failure is not None or (status is not None and status >= 400) else 20,
            "g2a.request",
            method=call.method,
            path=split.path + (f"?{query}" if query else ""),
            status=status,
            latency_ms=round(elapsed * 1000, 1),
            attempt=attempt,
            env=str(self._config.env),
            correlation_id=call.correlation_id,
            **({"error": str(failure.kind)} if failure is not None else {}),
        )
        if failure is not None:
            raise failure
        assert status is not None
        if is_transient_status(status):
            kind = FailureKind.RATE_LIMITED if status == 429 else FailureKind.SERVER_ERROR
            raise TransientFailure(
                kind,
                status=status,
                code=_error_code(body),
                retry_after_s=parse_retry_after(retry_after, self._clock()),
            )
        return _Response(status=status, body=body)


def _bearer(token: AccessToken) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.value}"}


def _filter_params(filters: ProductFilters) -> dict[str, str]:
    pairs = {
        "id": filters.product_id,
        "minQty": filters.min_qty,
        "minPriceFrom": filters.min_price_from,
        "minPriceTo": filters.min_price_to,
        "updatedAtFrom": filters.updated_at_from,
        "updatedAtTo": filters.updated_at_to,
    }
    return {k: str(v) for k, v in pairs.items() if v is not None}
