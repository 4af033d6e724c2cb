"""Liveness (`GET /health`) and readiness (`GET /health/ready`, the container's
`ReadinessChecker`)."""

from __future__ import annotations

from aiohttp import web

from autokey.entrypoints.web.context import container
from autokey.entrypoints.web.operations import Operation

routes = web.RouteTableDef()


@routes.get("/health")
@Operation(
    summary="Liveness: answers while the process runs; checks no dependency",
    tag="operations",
    response="Liveness",
    authenticated=False,
)
async def health(_request: web.Request) -> web.Response:
    """Liveness: answers while the process is up; checks no dependency."""
    return web.json_response({"status": "ok"})


@routes.get("/health/ready")
@Operation(
    summary="Readiness: every dependency's state; 503 when a required one is down",
    tag="operations",
    response="Readiness",
    also=(503,),
    authenticated=False,
)
async def ready(request: web.Request) -> web.Response:
    """Readiness: 200 when ready or degraded, 503 when a required component is down."""
    report = await container(request).readiness().check()
    return web.json_response(
        report.to_json(), status=report.http_status, headers={"Cache-Control": "no-store"}
    )
