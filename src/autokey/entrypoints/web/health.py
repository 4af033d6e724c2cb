"""Liveness."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()


@routes.get("/health")
async def health(_request: web.Request) -> web.Response:
    """Liveness: answers while the process is up; checks no dependency."""
    return web.json_response({"status": "ok"})
