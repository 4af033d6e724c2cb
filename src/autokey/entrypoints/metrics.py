"""Prometheus metrics of the service, all registered in the ONE registry the container holds.

With `serve --workers N` the counters and histograms of every worker live in one directory
(`share_between_workers`, prometheus_client's multiprocess mode), and /metrics shows their
sums over all workers (`exposition`).

- `HttpMetrics`: request duration by method, route template and status class (middleware).
- `DomainMetrics`: counters other code increments: order transitions, webhook outcomes.
- `KeyStockCollector`: keys by status per pool, refreshed at scrape time, bounded cardinality.

Label values are always from bounded sets (route templates, status classes, fixed vocabularies),
never raw paths, ids or caller-supplied text.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from uuid import UUID

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from autokey.domain.model.audit import AuditAction
from autokey.domain.model.ids import PoolId
from autokey.domain.model.keys import KeyStatus, PoolCounts
from autokey.domain.model.orders import OrderStatus
from autokey.domain.model.pages import MAX_PAGE_SIZE, PageRequest
from autokey.domain.model.webhooks import Rejection, WebhookOutcome
from autokey.ports.store import Store, UnitOfWork

UNMATCHED_ROUTE = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


SHARED_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_SHARED_DIR_PREFIX = "autokey-metrics-"
_SHARED_DIR_OWNER = re.compile(rf"{_SHARED_DIR_PREFIX}(\d+)-")


def shared_directory() -> tempfile.TemporaryDirectory[str]:
    """A directory for the workers' metrics of this supervisor, named after its pid and
    removed when it exits. Those of supervisors that no longer run (SIGKILL leaves them
    behind) are removed first."""
    parent = tempfile.gettempdir()
    for name in os.listdir(parent):
        owner = _SHARED_DIR_OWNER.match(name)
        if owner is not None and not _running(int(owner[1])):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=f"{_SHARED_DIR_PREFIX}{os.getpid()}-")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process
    return True


def share_between_workers(directory: str) -> None:
    """Keep the counters and histograms of this process and of the processes forked from it
    in `directory` (one file per process), so that any of them can expose the sums."""
    os.environ[SHARED_DIR_VARIABLE] = directory
    # prometheus_client picks its value class at import: pick again.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def exposition(registry: CollectorRegistry, live: Collector) -> CollectorRegistry:
    """What /metrics renders: `registry` in a process of its own; when the workers share
    their metrics, the sums of every worker's counters and histograms (the workers that died
    and were restarted included, so counters never go back) and the `live` collector, which
    reads the store at scrape time."""
    directory = os.environ.get(SHARED_DIR_VARIABLE)
    if directory is None:
        return registry
    summed = CollectorRegistry()
    MultiProcessCollector(summed, path=directory)  # type: ignore[no-untyped-call]
    summed.register(live)
    return summed


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.request_duration = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP requests served, by route template and status class.",
            ["method", "route", "status_class"],
            registry=registry,
            buckets=HTTP_BUCKETS,
        )
        # labels() looks its child up under a lock on every call; the label sets are few
        # (bounded by the routes), so each child is looked up once.
        self._children: dict[tuple[str, str, str], Histogram] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """`route` must be a route template or UNMATCHED_ROUTE, never a raw path."""
        labels = (method if method in KNOWN_METHODS else "other", route, status_class(status))
        if (child := self._children.get(labels)) is None:
            child = self._children[labels] = self.request_duration.labels(*labels)
        child.observe(seconds)


ORDER_TRANSITIONS = tuple(
    [status.value.lower() for status in OrderStatus if status is not OrderStatus.PENDING]
    + ["created", "expired"]
)
"""Label values of `autokey_order_transitions_total`: the state an order moved to
(`canceled` for a cancel by a person, `expired` for the sweeper) or `created`."""

G2A_TRANSITIONS = ("created", "fulfilled", "canceled")
"""Label values of `autokey_g2a_order_transitions_total`."""

WEBHOOK_OUTCOMES = (
    *(outcome.value for outcome in WebhookOutcome),
    "duplicate",
    *(rejection.value for rejection in Rejection),
)
"""Label values of `autokey_webhook_outcomes_total`, pre-created at zero: what an accepted event
did (applied, stale, unmatched, recorded), `duplicate`, or why a delivery was rejected."""


class DomainMetrics:
    """Business counters. Call `order_transition("paid")` after the transaction that moved an
    order committed, and `webhook_outcome("replayed_nonce")` once per webhook delivery."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.orders_transitions = Counter(
            "autokey_order_transitions_total",
            "Orders moved to a new state, by the state reached.",
            ["transition"],
            registry=registry,
        )
        self.webhook_outcomes = Counter(
            "autokey_webhook_outcomes_total",
            "G2A webhook deliveries, by outcome (accepted or the reason of the rejection).",
            ["reason"],
            registry=registry,
        )
        self.g2a_transitions = Counter(
            "autokey_g2a_order_transitions_total",
            "Orders of the g2a channel (G2A's merchant API) moved to a new state: created "
            "(reserved), fulfilled (ordered), canceled (released). Expiries count as expired "
            "in autokey_order_transitions_total.",
            ["transition"],
            registry=registry,
        )
        self.group_commit_batches = Histogram(
            "autokey_group_commit_batch_size",
            "Calls per group-commit batch (ADR 0032), by call: create, pay, fulfill, "
            "g2a_reserve, g2a_order.",
            ["call"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=registry,
        )
        # Series exist at 0 from the start, so rate() and absent() behave before the first event.
        for transition in ORDER_TRANSITIONS:
            self.orders_transitions.labels(transition)
        for transition in G2A_TRANSITIONS:
            self.g2a_transitions.labels(transition)
        for reason in WEBHOOK_OUTCOMES:
            self.webhook_outcomes.labels(reason)

    def order_transition(self, transition: str, count: int = 1) -> None:
        self.orders_transitions.labels(transition).inc(count)

    def group_commit_batch(self, call: str, size: int) -> None:
        self.group_commit_batches.labels(call).observe(size)

    def g2a_transition(self, transition: str, count: int) -> None:
        self.g2a_transitions.labels(transition).inc(count)

    def webhook_outcome(self, reason: str) -> None:
        self.webhook_outcomes.labels(reason).inc()


StockSource = Callable[[], Awaitable[Mapping[str, PoolCounts]]]
"""Keys per status for every pool with keys, by pool id (as text)."""
PoolNames = Callable[[], Mapping[str, str]]
"""The seller-given name of each known pool, by pool id (as text)."""

MAX_NAME_LABEL = 64


def name_label(name: str) -> str:
    """A seller's pool name as a label value: control characters replaced, at most
    MAX_NAME_LABEL characters (the exposition format escapes quotes, backslashes, newlines)."""
    shown = "".join(c if c.isprintable() else "?" for c in name)
    return shown if len(shown) <= MAX_NAME_LABEL else shown[: MAX_NAME_LABEL - 1] + "…"


OTHER_POOLS = "other"
_STATUS_FIELDS = {
    KeyStatus.AVAILABLE: "available",
    KeyStatus.RESERVED: "reserved",
    KeyStatus.DELIVERED: "delivered",
    KeyStatus.INVALID: "invalid",
}


class KeyStockCollector(Collector):
    """`autokey_keys{pool, status}` for the `top` pools with the most keys; the rest are summed
    under pool="other", so the number of series never exceeds (top + 1) x 4.

    Prometheus collectors are synchronous and the store is not, so the /metrics handler awaits
    `refresh()` before rendering; `collect()` then reads the last snapshot. A refresh runs at
    most every `min_interval_s` (scrapes from several Prometheus servers share it) and a failed
    one keeps the previous snapshot, reported by `autokey_keys_snapshot_age_seconds`.

    Pool names are seller text, so they are not a label of every series: `autokey_pool_info
    {pool, name} 1` names each pool shown, to join on `pool` in a query."""

    def __init__(
        self,
        source: StockSource,
        *,
        names: PoolNames = dict,
        registry: CollectorRegistry | None = None,
        top: int = 50,
        min_interval_s: float = 10.0,
        timeout_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source, self._top, self._names = source, top, names
        self._min_interval_s, self._timeout_s = min_interval_s, timeout_s
        self._monotonic = monotonic
        self._snapshot: list[tuple[str, PoolCounts]] = []
        self._refreshed_at: float | None = None
        self._lock = asyncio.Lock()
        if registry is not None:
            registry.register(self)

    async def refresh(self) -> bool:
        """Re-read the stock unless a recent snapshot exists; False when the source failed."""
        async with self._lock:
            now = self._monotonic()
            if self._refreshed_at is not None and now - self._refreshed_at < self._min_interval_s:
                return True
            try:
                stock = await asyncio.wait_for(self._source(), self._timeout_s)
            except Exception:  # a scrape must still render the other metrics
                return False
            self._snapshot = self._bounded(stock)
            self._refreshed_at = self._monotonic()
            return True

    def _bounded(self, stock: Mapping[str, PoolCounts]) -> list[tuple[str, PoolCounts]]:
        ranked = sorted(stock.items(), key=lambda item: (-item[1].total, item[0]))
        head, tail = ranked[: self._top], ranked[self._top :]
        if tail:
            head.append((OTHER_POOLS, _sum(counts for _, counts in tail)))
        return head

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return ()  # contents change with the stock; nothing to check at registration time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        keys = GaugeMetricFamily(
            "autokey_keys",
            'Keys by status in the pools with the most keys (the rest as pool="other").',
            labels=["pool", "status"],
        )
        for pool, counts in self._snapshot:
            for status, field in _STATUS_FIELDS.items():
                keys.add_metric([pool, status.value.lower()], getattr(counts, field))
        yield keys
        info = GaugeMetricFamily(
            "autokey_pool_info",
            "1 per pool in autokey_keys, naming it (join on pool); names cut to 64 characters.",
            labels=["pool", "name"],
        )
        names = self._names()
        for pool, _ in self._snapshot:
            if pool in names:
                info.add_metric([pool, name_label(names[pool])], 1)
        yield info
        totals = _sum(counts for _, counts in self._snapshot)
        total = GaugeMetricFamily(
            "autokey_keys_total_by_status", "Keys by status over all pools.", labels=["status"]
        )
        for status, field in _STATUS_FIELDS.items():
            total.add_metric([status.value.lower()], getattr(totals, field))
        yield total
        if self._refreshed_at is not None:
            yield GaugeMetricFamily(
                "autokey_keys_snapshot_age_seconds",
                "Age of the key stock snapshot the autokey_keys series come from.",
                value=self._monotonic() - self._refreshed_at,
            )


def _sum(many: Iterable[PoolCounts]) -> PoolCounts:
    total = dict.fromkeys(_STATUS_FIELDS.values(), 0)
    for counts in many:
        for field in total:
            total[field] += getattr(counts, field)
    return PoolCounts(**total)


class AuditedPoolStock:
    """A `StockSource` over the existing store ports, which have no "all pools" query.

    Keys only ever enter a pool through an upload, and every upload that adds keys appends a
    `keys.uploaded` audit event naming the pool; so the pools with keys are exactly the pools
    named by those events. The audit log is append-only and paged in id (time) order, so this
    reads it incrementally: each refresh reads only the events appended since the last one
    (at most `max_events` per refresh; a long backlog is caught up over several scrapes), then
    asks `PoolRepository.counts` for each known pool in one transaction.

    Cost per refresh: one audit page per 500 new events + one counts query per pool. Fine for
    hundreds of pools; a store with many thousands wants a single aggregate query behind a
    new port method, plugged in instead of this class (the collector takes any StockSource)."""

    def __init__(
        self,
        store: Store,
        *,
        max_events: int = 20 * MAX_PAGE_SIZE,
        settle: timedelta = timedelta(minutes=5),
    ) -> None:
        self._store, self._max_events, self._settle = store, max_events, settle
        self._after: UUID | None = None
        self._pools: set[PoolId] = set()
        self._names: dict[str, str] = {}

    async def __call__(self) -> Mapping[str, PoolCounts]:
        async with self._store.transaction() as tx:
            await self._discover(tx)
            for pool_id in self._pools.difference(PoolId(UUID(p)) for p in self._names):
                if (pool := await tx.pools.get(pool_id)) is not None:
                    self._names[str(pool_id)] = pool.name  # names never change: read once
            return {str(pool): await tx.pools.counts(pool) for pool in sorted(self._pools)}

    def names(self) -> Mapping[str, str]:
        """The names of the pools read so far (a `PoolNames`)."""
        return self._names

    async def _discover(self, tx: UnitOfWork) -> None:
        # Event ids are taken before their transaction commits, so an event may become
        # visible after a later one has been read: the saved cursor stays `settle` behind the
        # newest event, and the events of that window are read again on the next refresh.
        cursor, read = self._after, 0
        seen: list[tuple[UUID, datetime]] = []
        while read < self._max_events:
            page = await tx.audit.list_events(None, PageRequest(limit=MAX_PAGE_SIZE, after=cursor))
            for event in page.items:
                if event.action is AuditAction.KEYS_UPLOADED and event.pool_id is not None:
                    self._pools.add(event.pool_id)
                seen.append((event.id, event.occurred_at))
            read += len(page.items)
            if page.next_after is None or not page.items:
                break
            cursor = page.next_after
        if seen:
            horizon = seen[-1][1] - self._settle
            settled = [event_id for event_id, at in seen if at <= horizon]
            if settled:
                self._after = settled[-1]
