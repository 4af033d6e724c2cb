"""How the SQL stores report what their database refused, the same way on every engine.

Each adapter sorts its driver's exceptions into three kinds: an outage (`StoreUnavailable`,
503, raised by the adapter itself), a value the database refuses as data
(`refused_value`: 400) and a statement it refuses as wrong (`failed_statement`: a bug, 500).
The log line names the driver's exception type and code, never the statement's parameters
or the driver's message (which may quote them).
"""

from __future__ import annotations

from uuid import UUID

import structlog

from autokey.domain.model.errors import NotFound, StoreFault, UnstorableValue

log = structlog.get_logger("autokey.store")


def refused_value(store: str, error: BaseException, code: str | None) -> UnstorableValue:
    log.warning("store.value_refused", store=store, error=type(error).__name__, code=code)
    return UnstorableValue()


def failed_statement(store: str, error: BaseException, code: str | None) -> StoreFault:
    log.error("store.statement_failed", store=store, error=type(error).__name__, code=code)
    return StoreFault(store=store)


def require_saved(changed: int, resource: str, entity_id: UUID) -> None:
    """A `save` updates a stored row: no row changed means the entity is not stored."""
    if changed == 0:
        raise NotFound(resource=resource, id=str(entity_id))
