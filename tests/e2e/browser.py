"""What the browser tests need: the real app on a loopback port, Debian's Chromium driven by
Playwright, a watcher for console errors and CSP violations, and the screenshot folder."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from autokey.adapters.crypto import HmacBlindIndex
from autokey.adapters.memory.store import MemoryStore
from autokey.domain.model.auth import Role
from autokey.entrypoints.container import Container
from autokey.entrypoints.settings import load_settings
from autokey.entrypoints.web.app import make_app
from tests.conftest import MASTER_KEY
from tests.services import unavailable

if TYPE_CHECKING:
    from playwright.async_api import Browser, ConsoleMessage, Page, Request

CHROMIUM = os.environ.get("AUTOKEY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def screenshots_dir() -> Path:
    folder = Path(os.environ.get("AUTOKEY_ARTIFACTS_DIR", "artifacts/screenshots"))
    return folder if folder.is_absolute() else REPO / folder


class LiveServer:
    """The real app (memory store) listening on 127.0.0.1, plus an API client for the test."""

    def __init__(self, base_url: str, container: Container, http: aiohttp.ClientSession) -> None:
        self.base_url, self.container, self.http = base_url, container, http

    async def token(self, role: Role) -> str:
        secret, _ = await self.container.auth().issue_token(role)
        return str(secret)

    async def call(self, method: str, path: str, token: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.http.request(
            method, self.base_url + path, json=body, headers=headers
        ) as response:
            payload = await response.json()
            assert response.status < 300, payload
            return payload

    async def buy(self, buyer: str, offer_id: str, quantity: int = 1) -> list[str]:
        """Order, pay and fulfil as a buyer; the delivered key plaintexts."""
        order = await self.call(
            "POST", "/orders", buyer, {"offerId": offer_id, "quantity": quantity}
        )
        await self.call("POST", f"/orders/{order['id']}/pay", buyer)
        done = await self.call("POST", f"/orders/{order['id']}/fulfill", buyer)
        assert done["status"] == "FULFILLED", done
        return [k["key"] for k in done["keys"]]


@asynccontextmanager
async def live_server() -> AsyncIterator[LiveServer]:
    settings = load_settings({"AUTOKEY_DATABASE_URL": "memory://"})
    container = Container(
        settings=settings,
        store=MemoryStore(),
        master_keys=(MASTER_KEY,),
        blind_index=HmacBlindIndex(MASTER_KEY),
    )
    runner = web.AppRunner(make_app(container))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession() as http:
            yield LiveServer(f"http://{host}:{port}", container, http)
    finally:
        await runner.cleanup()


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium under Playwright; never a downloaded browser."""
    try:
        from playwright.async_api import Error, async_playwright
    except ImportError as exc:
        unavailable("Playwright for Python (pip install playwright)", exc)
        raise
    if not shutil.which(CHROMIUM):
        unavailable("Chromium", FileNotFoundError(f"{CHROMIUM} (apt-get install chromium)"))
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
        except Error as exc:
            unavailable("Chromium", exc)
            raise
        try:
            yield browser
        finally:
            await browser.close()


# Records CSP violations from the first script that runs in every document of the page.
_CSP_PROBE = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""
# Chromium logs every non-2xx fetch as a console error; these are the ones a test provokes.
_EXPECTED_HTTP_ERRORS = re.compile(r"status of (400|401) ")


class PageWatch:
    """Console errors, uncaught exceptions, CSP violations and off-origin requests of a page."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.foreign_requests: list[str] = []

    async def attach(self, page: Page) -> None:
        await page.add_init_script(_CSP_PROBE)
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("request", self._on_request)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _on_request(self, request: Request) -> None:
        if not request.url.startswith((self.base_url + "/", "data:", f"blob:{self.base_url}/")):
            self.foreign_requests.append(request.url)

    def unexpected_console_errors(self) -> list[str]:
        return [m for m in self.console_errors if not _EXPECTED_HTTP_ERRORS.search(m)]

    async def csp_violations(self, page: Page) -> list[str]:
        return list(await page.evaluate("window.__cspViolations"))
