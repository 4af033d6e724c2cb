"""The audit log as CSV, for `GET /key-pools/{id}/events` (Accept: text/csv) and
`autokey audit export`: one header line, then one line per event, streamed."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterable, AsyncIterator

from autokey.domain.model.audit import AuditEvent

COLUMNS = ("id", "occurredAt", "action", "actor", "poolId", "orderId", "keyIds", "details")


def _line(values: tuple[object, ...]) -> str:
    # Every cell is an id, a time, an action name or a JSON object: none can start like a
    # spreadsheet formula, so no cell needs quoting as text.
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(["" if v is None else v for v in values])
    return out.getvalue()


async def csv_lines(events: AsyncIterable[AuditEvent]) -> AsyncIterator[str]:
    yield _line(COLUMNS)
    async for e in events:
        yield _line(
            (
                e.id,
                e.occurred_at.isoformat(),
                e.action.value,
                e.actor,
                e.pool_id,
                e.order_id,
                " ".join(str(k) for k in e.key_ids),
                json.dumps(dict(e.details), sort_keys=True) if e.details else "",
            )
        )
