"""Key pool routes: thin handlers over InventoryService."""

from __future__ import annotations

from aiohttp import web

from autokey.domain.model import errors as e
from autokey.domain.model.errors import UploadTooLarge
from autokey.domain.model.ids import KeyId, PoolId
from autokey.domain.model.keys import KeyStatus
from autokey.entrypoints.audit_csv import csv_lines
from autokey.entrypoints.web.context import (
    container,
    json_response,
    page_body,
    page_request,
    path_id,
    principal,
    read_json,
    status_filter,
    time_param,
)
from autokey.entrypoints.web.operations import (
    JSON_BODY,
    Operation,
    param,
    status_param,
)
from autokey.entrypoints.web.schemas import (
    AuditEventOut,
    CreatePoolIn,
    KeyOut,
    PoolOut,
    UploadJsonIn,
    UploadReportOut,
)
from autokey.entrypoints.web.uploads import numbered_lines, spool_body

MAX_JSON_KEYS = 10_000
SINCE = "With `Accept: text/csv`: only events at or after this time."
routes = web.RouteTableDef()


def _pool_id(request: web.Request) -> PoolId:
    return PoolId(path_id(request, "pool_id", "key_pool"))


@routes.post("/key-pools")
@Operation(
    summary="Create a key pool (seller)",
    tag="key pools",
    status=201,
    response=PoolOut,
    request=CreatePoolIn,
    request_required=False,
    raises=JSON_BODY,
)
async def create_pool(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await read_json(request, CreatePoolIn, optional=True)
    view = await container(request).inventory().create_pool(who, body.name)
    return json_response(request, PoolOut.of_view(view), status=201)


@routes.get("/key-pools")
@Operation(
    summary="The seller's key pools, with counts per status",
    tag="key pools",
    response=PoolOut,
    paged=True,
)
async def list_pools(request: web.Request) -> web.Response:
    who = await principal(request)
    page = await container(request).inventory().list_pools(who, page_request(request))
    return json_response(
        request, page_body(request, page, [PoolOut.of_view(v) for v in page.items])
    )


@routes.get("/key-pools/{pool_id}")
@Operation(
    summary="One key pool with its counts",
    tag="key pools",
    response=PoolOut,
    raises=(e.NotFound,),
)
async def get_pool(request: web.Request) -> web.Response:
    who = await principal(request)
    view = await container(request).inventory().get_pool(who, _pool_id(request))
    return json_response(request, PoolOut.of_view(view))


@routes.post("/key-pools/{pool_id}/keys/upload")
@Operation(
    summary="Upload keys as a JSON array or as text/plain, one key per line",
    tag="key pools",
    response=UploadReportOut,
    request=UploadJsonIn,
    text_upload="One key per line; Content-Encoding gzip or deflate accepted. Capped in"
    " bytes and lines (blank lines count) after decoding.",
    raises=(
        *JSON_BODY,
        e.UploadTooLarge,
        e.TooManyLines,
        e.BodyTooLarge,
        e.CorruptBody,
        web.HTTPUnsupportedMediaType,
        e.NotFound,
    ),
)
async def upload_keys(request: web.Request) -> web.Response:
    who = await principal(request)
    pool_id = _pool_id(request)
    inventory = container(request).inventory()
    if request.content_type == "text/plain":
        with await spool_body(request, container(request).settings().uploads) as body:
            report, counts = await inventory.upload(who, pool_id, numbered_lines(body))
    elif request.content_type == "application/json":
        keys = (await read_json(request, UploadJsonIn)).keys
        if len(keys) > MAX_JSON_KEYS:
            raise UploadTooLarge(problems=(), limit=MAX_JSON_KEYS)
        report, counts = await inventory.upload(who, pool_id, enumerate(keys, start=1))
    else:
        raise web.HTTPUnsupportedMediaType(reason="Send application/json or text/plain")
    return json_response(request, UploadReportOut.from_report(report, counts))


@routes.get("/key-pools/{pool_id}/keys")
@Operation(
    summary="Key metadata of a pool (never the key itself)",
    tag="key pools",
    response=KeyOut,
    paged=True,
    query=(status_param(KeyStatus, "keys"),),
    raises=(e.NotFound,),
)
async def list_keys(request: web.Request) -> web.Response:
    who = await principal(request)
    status = status_filter(request, KeyStatus)
    page = (
        await container(request)
        .inventory()
        .list_keys(who, _pool_id(request), status, page_request(request))
    )
    return json_response(request, page_body(request, page, [KeyOut.of(k) for k in page.items]))


@routes.delete("/key-pools/{pool_id}/keys/{key_id}")
@Operation(
    summary="Invalidate an available key",
    tag="key pools",
    status=204,
    raises=(e.NotFound, e.KeyNotAvailable, e.IllegalTransition, e.Conflict),
)
async def invalidate_key(request: web.Request) -> web.Response:
    who = await principal(request)
    key_id = KeyId(path_id(request, "key_id", "key"))
    await container(request).inventory().invalidate_key(who, _pool_id(request), key_id)
    return web.Response(status=204)


@routes.get("/key-pools/{pool_id}/events")
@Operation(
    summary="The pool's audit trail",
    tag="key pools",
    response=AuditEventOut,
    paged=True,
    query=(param("since", SINCE, format="date-time"),),
    raises=(e.NotFound,),
    csv="The whole trail from `since` on, streamed: a header line "
    "(id,occurredAt,action,actor,poolId,orderId,keyIds,details), then one line per event.",
)
async def pool_events(request: web.Request) -> web.StreamResponse:
    """A page of JSON; with `Accept: text/csv`, the whole log (from `?since=`) streamed."""
    who, pool_id = await principal(request), _pool_id(request)
    inventory = container(request).inventory()
    if "text/csv" not in request.headers.get("Accept", ""):
        page = await inventory.pool_events(who, pool_id, page_request(request))
        return json_response(
            request, page_body(request, page, [AuditEventOut.of(e) for e in page.items])
        )
    events = await inventory.export_pool_events(who, pool_id, time_param(request, "since"))
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="pool-{pool_id}-events.csv"',
        }
    )
    await response.prepare(request)
    async for line in csv_lines(events):
        await response.write(line.encode())
    await response.write_eof()
    return response
