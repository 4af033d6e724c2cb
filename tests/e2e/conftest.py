"""Fixtures of the browser tests. Without Chromium or Playwright they skip, or fail when
AUTOKEY_REQUIRE_SERVICES=1 (CI installs both with .ci/install-browser.sh)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.browser import LiveServer, chromium, live_server, screenshots_dir

if TYPE_CHECKING:
    from playwright.async_api import Browser

_saved: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives a real headless Chromium (/usr/bin/chromium via Playwright)"
    )


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    async with live_server() as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
def screenshots() -> Path:
    folder = screenshots_dir()
    folder.mkdir(parents=True, exist_ok=True)
    _saved.append(folder)
    return folder


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for folder in dict.fromkeys(_saved):
        terminalreporter.write_line(f"console screenshots: {folder}")
