"""`GET /docs`: Swagger UI over /api/openapi.json, served from installed packages only.

The Swagger UI files come from the `swagger-ui-bundle-v2` wheel (ADR 0008); the page and its
start script are ours (`docs_static/`). Only the files named below are served, under a CSP
that allows no inline script and no origin but ours: the docs work with no internet access.
"""

from __future__ import annotations

import functools
from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

from autokey.entrypoints.web.operations import Operation
from autokey.entrypoints.web.static import page_headers

SECURITY_HEADERS = page_headers(inline_styles=True)
CONTENT_SECURITY_POLICY = SECURITY_HEADERS["Content-Security-Policy"]
OURS = {"index.html": "text/html", "init.js": "text/javascript"}
VENDORED = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}

routes = web.RouteTableDef()


@functools.cache
def _vendor_dir() -> Traversable | None:
    """`swagger_ui_bundle/vendor/swagger-ui-<version>/`, or None when not installed."""
    try:
        vendor = resources.files("swagger_ui_bundle") / "vendor"
    except ModuleNotFoundError:
        return None
    found = sorted(p.name for p in vendor.iterdir() if p.name.startswith("swagger-ui-"))
    return vendor / found[-1] if found else None


@functools.cache
def _asset(name: str) -> bytes | None:
    if name in OURS:
        here = resources.files("autokey.entrypoints.web") / "docs_static"
        return (here / name).read_bytes()
    vendor = _vendor_dir()
    if name not in VENDORED or vendor is None:
        return None
    return (vendor / name).read_bytes()


def _serve(name: str) -> web.Response:
    body = _asset(name)
    if body is None:
        raise web.HTTPNotFound()
    content_type = OURS.get(name) or VENDORED[name]
    charset = None if content_type.startswith("image/") else "utf-8"
    return web.Response(
        body=body, content_type=content_type, charset=charset, headers=SECURITY_HEADERS
    )


@routes.get("/docs")
@Operation(
    summary="Interactive API documentation (Swagger UI, served from the package)",
    tag="operations",
    response="Html",
    media="text/html",
    authenticated=False,
)
async def docs_page(_request: web.Request) -> web.Response:
    return _serve("index.html")


@routes.get("/docs/{name}")
async def docs_asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name == "index.html":
        raise web.HTTPNotFound()
    return _serve(name)
