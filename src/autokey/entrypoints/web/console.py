"""The seller console: a static page packaged with autokey that talks to the public JSON API.

The page itself needs no token (the seller pastes one and the page's script sends it to the
API), so these routes are public. Only the files listed in ASSETS are served, each under a CSP
that allows nothing inline and no origin but our own.
"""

from __future__ import annotations

import functools
from importlib import resources

from aiohttp import web

from autokey.entrypoints.web.static import page_headers

SECURITY_HEADERS = page_headers()
CONTENT_SECURITY_POLICY = SECURITY_HEADERS["Content-Security-Policy"]
ASSETS = {
    "index.html": "text/html",
    "console.css": "text/css",
    "console.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}

routes = web.RouteTableDef()


@functools.cache
def _asset(name: str) -> bytes:
    return resources.files("autokey.entrypoints.web").joinpath("console", name).read_bytes()


def _serve(name: str) -> web.Response:
    if name not in ASSETS:
        raise web.HTTPNotFound()
    charset = None if name.endswith(".svg") else "utf-8"
    return web.Response(
        body=_asset(name), content_type=ASSETS[name], charset=charset, headers=SECURITY_HEADERS
    )


@routes.get("/console")
async def console_page(_request: web.Request) -> web.Response:
    return _serve("index.html")


@routes.get("/console/{asset}")
async def console_asset(request: web.Request) -> web.Response:
    return _serve(request.match_info["asset"])
