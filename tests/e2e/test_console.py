"""The seller console end to end: the real app, a real headless Chromium, the public API."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from autokey.domain.model.auth import Role
from autokey.entrypoints.web.console import CONTENT_SECURITY_POLICY
from tests.e2e.browser import LAPTOP, PHONE, REPO, LiveServer, PageWatch

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator, Page

PASTED = ["KEY-AAAAA-1", "KEY-AAAAA-1", "bad"]
FILE_KEYS = [f"KEY-FILE-{n:04d}" for n in range(1, 31)]
DOCS_SCREENSHOT = REPO / "docs" / "img" / "console.png"


async def test_console_is_public_static_and_locked_down(server: LiveServer) -> None:
    expected = {
        "/console": "text/html",
        "/console/console.js": "text/javascript",
        "/console/console.css": "text/css",
        "/console/favicon.svg": "image/svg+xml",
    }
    for path, content_type in expected.items():
        async with server.http.get(server.base_url + path) as response:
            assert response.status == 200, path
            assert response.content_type == content_type
            assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            body = await response.text()
            assert "http://" not in body.replace("http://www.w3.org/2000/svg", "")
            assert "https://" not in body
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    for path in ("/console/console.py", "/console/..%2Fconsole.py", "/console/nope.js"):
        async with server.http.get(server.base_url + path) as response:
            assert response.status == 404, path
    async with server.http.get(server.base_url + "/console") as response:
        html = await response.text()
    assert "<script>" not in html
    assert " style=" not in html
    assert " onclick=" not in html


@pytest.mark.browser
async def test_seller_manages_pools_keys_and_offers_in_the_console(
    server: LiveServer, browser: Browser, screenshots: Path, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    seller = await server.token(Role.SELLER)
    buyer = await server.token(Role.BUYER)
    secrets = set(PASTED[:1] + FILE_KEYS)
    watch = PageWatch(server.base_url)
    context = await browser.new_context(viewport=LAPTOP, device_scale_factor=1)
    page = await context.new_page()
    await watch.attach(page)

    async def no_plaintext_anywhere() -> None:
        html = await page.content()
        leaked = sorted(s for s in secrets if s in html)
        assert not leaked, f"key plaintext rendered: {leaked}"

    async def shot(name: str, *, full_page: bool = True) -> None:
        await no_plaintext_anywhere()
        await page.screenshot(path=screenshots / f"{name}.png", full_page=full_page)

    count = page.locator("#pool-counts dd[data-count]")

    async def expect_counts(**expected: int) -> None:
        for name, value in expected.items():
            await expect(count.and_(page.locator(f'[data-count="{name}Keys"]'))).to_have_text(
                str(value)
            )

    response = await page.goto(server.base_url + "/console?refresh=1")
    assert response is not None
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"

    # A wrong token is refused in a sentence that says so; the right one, typed and submitted
    # with the keyboard only, opens the workspace.
    token_input = page.get_by_label("Seller API token")
    await token_input.fill("not-a-token")
    await page.get_by_role("button", name="Use token").click()
    await expect(page.locator("#token-problem")).to_contain_text(
        "The server refused this token (401)"
    )
    await shot("01-sign-in")
    await token_input.fill(seller)
    await token_input.press("Enter")
    await expect(page.get_by_role("heading", name="Key pools")).to_be_visible()
    await expect(page.get_by_text("No pools yet")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 1

    # A pool needs a name: an empty one is not sent. Then create one with the keyboard.
    await page.get_by_role("button", name="Create pool").click()
    await expect(page.locator("#pool-problem")).to_contain_text("Give the pool a name")
    await expect(page.get_by_text("No pools yet")).to_be_visible()
    await page.get_by_label("New pool name").fill("Steam keys · EU")
    await page.get_by_label("New pool name").press("Enter")
    await expect(page.get_by_role("heading", name="Steam keys · EU")).to_be_visible()
    await expect(page.locator("#out-of-stock")).to_be_visible()
    await expect_counts(total=0, available=0)
    await expect(page.locator("#pool-problem")).to_be_hidden()

    # A webhook endpoint: a private target is refused in a sentence; a public one shows its
    # signing secret once, then only in the list without it.
    hook_url = page.get_by_label("Endpoint URL")
    await hook_url.fill("http://127.0.0.1:9/hook")
    await page.get_by_role("button", name="Add endpoint").click()
    hook_problem = page.locator("#hook-problem")
    await expect(hook_problem).to_contain_text(
        "The endpoint URL points to a private or local address"
    )
    assert "private_target" not in await hook_problem.inner_text()
    await hook_url.fill("https://hooks.example.com/autokey")
    await page.get_by_role("button", name="Add endpoint").click()
    secret = page.locator("#hook-secret-value")
    await expect(secret).to_contain_text("whsec_")
    await expect(hook_problem).to_be_hidden()
    hook_row = page.locator("#hooks-body tr", has_text="hooks.example.com")
    await expect(hook_row).to_have_attribute("data-status", "active")
    await shot("02-webhook-secret-once")
    shown_secret = await secret.inner_text()
    await page.get_by_role("button", name="I stored it").click()
    await expect(page.locator("#hook-secret")).to_be_hidden()
    assert shown_secret not in await page.content()

    # Paste three lines: one added, one duplicate, one invalid; the report names lines, not keys.
    await page.get_by_label("Paste keys, one per line").fill("\n".join(PASTED))
    await page.get_by_role("button", name="Upload keys").click()
    report = page.locator("#upload-report")
    await expect(report.locator('[data-report="added"]')).to_have_text("1")
    await expect(report.locator('[data-report="duplicates"]')).to_have_text("1")
    await expect(report.locator('[data-report="invalid"]')).to_have_text("1")
    lines = report.locator("#report-lines tr")
    await expect(lines).to_have_count(2)
    await expect(lines.nth(0)).to_contain_text("2")
    await expect(lines.nth(0)).to_contain_text("duplicate")
    await expect(lines.nth(1)).to_contain_text("3")
    await expect(lines.nth(1)).to_contain_text("invalid_length")
    assert await page.get_by_label("Paste keys, one per line").input_value() == ""
    await expect_counts(total=1, available=1, reserved=0, delivered=0, invalid=0)
    await expect(page.locator("#out-of-stock")).to_be_hidden()
    await expect(page.locator("#low-stock-hint")).to_be_hidden()  # no offer sets a threshold
    await shot("03-pasted-upload-report")

    # A .txt file goes up as text/plain with a progress bar; 30 new keys and one duplicate.
    key_file = tmp_path / "keys.txt"
    key_file.write_text("\n".join([*FILE_KEYS, PASTED[0]]) + "\n")
    await page.get_by_label("Or upload a .txt file").set_input_files(key_file)
    async with page.expect_request(lambda r: r.url.endswith("/keys/upload")) as sent:
        await page.get_by_role("button", name="Upload file").click()
    assert (await (await sent.value).all_headers())["content-type"] == "text/plain"
    await expect(report.locator('[data-report="added"]')).to_have_text("30")
    await expect(report.locator('[data-report="duplicates"]')).to_have_text("1")
    await expect(lines).to_have_count(1)
    await expect(lines.nth(0)).to_contain_text("31")
    await expect(page.locator("#upload-progress-line")).to_be_hidden()  # done: the bar goes
    await expect_counts(total=31, available=31)
    await expect(page.locator("#low-stock-hint")).to_be_hidden()

    # Keys are listed 25 at a time, metadata only.
    keys = page.locator("#keys-body tr")
    await expect(keys).to_have_count(25)
    await page.get_by_role("button", name="Load more keys").click()
    await expect(keys).to_have_count(31)
    await expect(page.get_by_role("button", name="Load more keys")).to_be_hidden()
    await shot("04-file-upload-and-keys")

    # Offers: a bad price is explained in a sentence, never a raw code or JSON.
    await page.get_by_label("Title").fill("The Witcher 3: GOTY (Steam)")
    await page.get_by_label("Price").fill("nine")
    await page.get_by_role("button", name="Save draft").click()
    problem = page.locator("#offer-problem")
    await expect(problem).to_contain_text("The price must be a number such as 9.99.")
    for raw in ("{", "price.amount", "not_a_decimal"):
        assert raw not in await problem.inner_text()
    await page.get_by_label("Title").fill("The Witcher 3: GOTY (Steam)")
    await page.get_by_label("Price").fill("9.99")
    await page.get_by_role("button", name="Save draft").click()
    await expect(problem).to_be_hidden()
    offer_row = page.locator("#offers-body tr", has_text="The Witcher 3")
    await expect(offer_row).to_have_attribute("data-status", "draft")
    await expect(offer_row).to_contain_text("Steam keys · EU")
    await offer_row.get_by_role("button", name="Publish").click()
    await expect(offer_row).to_have_attribute("data-status", "active")
    availability = offer_row.locator('[data-role="availability"]')
    stock_level = offer_row.locator('[data-role="stock-level"]')
    await expect(availability).to_have_text("In stock · 31 keys")
    await expect(stock_level).to_have_text("In stock")
    # The notice of the publish stays clear of the row's next action.
    await expect(page.locator("#announcer")).to_contain_text("is now active")
    await expect_uncovered(offer_row.get_by_role("button", name="Deactivate"))
    await shot("05-offer-published")
    offer_id = await offer_row.get_attribute("data-offer-id")
    assert offer_id

    # A buyer buys one key through the API; the page catches up on its own.
    delivered = await server.buy(buyer, offer_id)
    assert delivered[0] in secrets
    await expect_counts(total=31, available=30, delivered=1)
    await expect(availability).to_have_text("In stock · 30 keys")
    # Sales: the order with its key ids (never keys), filtered by status and offer.
    sale = page.locator("#sales-body tr")
    await expect(sale).to_have_count(1)
    await expect(sale.first).to_have_attribute("data-status", "FULFILLED")
    await expect(sale.first).to_contain_text("The Witcher 3")
    await expect(sale.first.locator('[data-role="key-ids"] code')).to_have_count(1)
    await page.get_by_label("Sale status").select_option("CANCELED")
    await expect(page.get_by_text("No sales match")).to_be_visible()
    await page.get_by_label("Sale status").select_option("")
    await page.get_by_label("Sold offer").select_option(offer_id)
    await expect(sale).to_have_count(1)
    await page.get_by_label("Key status").select_option("delivered")
    await expect(keys).to_have_count(1)
    await expect(keys.first).to_have_attribute("data-status", "DELIVERED")

    # Invalidate an available key: Escape cancels the confirmation, the button confirms.
    await page.get_by_label("Key status").select_option("available")
    await expect(keys).to_have_count(25)
    first_key = await keys.first.get_attribute("data-key-id")
    await keys.first.get_by_role("button", name="Invalidate").click()
    dialog = page.get_by_role("dialog", name="Invalidate this key?")
    await expect(dialog).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect_counts(available=30, invalid=0)
    await keys.first.get_by_role("button", name="Invalidate").click()
    await expect(dialog).to_be_visible()
    await shot("06-confirm-invalidate", full_page=False)
    await dialog.get_by_role("button", name="Invalidate key").click()
    await expect_counts(total=31, available=29, delivered=1, invalid=1)
    await expect(availability).to_have_text("In stock · 29 keys")
    await expect(page.locator(f'#keys-body tr[data-key-id="{first_key}"]')).to_have_count(0)

    # A low-stock threshold on the offer: its level, the pool's badge and hint follow; the
    # housekeeping pass records the crossing once in the pool's audit log.
    threshold = offer_row.get_by_label("Low-stock threshold of “The Witcher 3: GOTY (Steam)”")
    await threshold.fill("50")
    await threshold.press("Tab")
    await expect(stock_level).to_have_text("Low stock")
    await expect(page.locator("#low-stock-hint")).to_contain_text("Only 29 keys left")
    await expect(page.locator("#pools-body tr").first).to_contain_text("Low stock")
    assert await server.container.offers().sweep_stock_levels() == 1
    audit = page.locator("#audit-body tr")
    await expect(audit.first).to_have_attribute("data-action", "offer.low_stock")
    await offer_row.get_by_role("button", name="Deactivate").click()
    await expect(offer_row).to_have_attribute("data-status", "inactive")
    await offer_row.get_by_role("button", name="Activate").click()
    await expect(offer_row).to_have_attribute("data-status", "active")

    # Deplete the pool through the API: the out-of-stock warning and availability follow.
    await server.buy(buyer, offer_id, quantity=29)
    await expect(page.locator("#out-of-stock")).to_be_visible()
    await expect_counts(total=31, available=0, delivered=30, invalid=1)
    await expect(availability).to_have_text("Out of stock · 0 keys")
    await expect(stock_level).to_have_text("Out of stock")
    await expect(page.locator("#pools-body tr").first).to_contain_text("Out of stock")
    assert await server.container.offers().sweep_stock_levels() == 1
    await expect(audit.first).to_have_attribute("data-action", "offer.out_of_stock")
    await expect(sale).to_have_count(2)
    await expect(sale.first.locator('[data-role="key-ids"] code')).to_have_count(3)
    await expect(sale.first.locator('[data-role="key-ids"]')).to_contain_text("+26 more")

    # The audit log downloads as CSV, fetched with the token and saved from a Blob.
    async with page.expect_download() as downloading:
        await page.get_by_role("button", name="Download CSV").click()
    download = await downloading.value
    assert download.suggested_filename.endswith(".csv")
    exported = await asyncio.to_thread(Path(await download.path()).read_text)
    assert exported.startswith("id,occurredAt,action")
    for action in ("keys.uploaded", "key.invalidated", "offer.low_stock", "offer.out_of_stock"):
        assert action in exported
    assert not [s for s in secrets if s in exported]
    await shot("07-sales-and-audit")

    # Webhook deliveries: two uploads, two sales and two stock crossings; one is replayed.
    await hook_row.get_by_role("button", name="Deliveries").click()
    deliveries = page.locator("#deliveries-body tr")
    await expect(deliveries).to_have_count(6)
    for event_type in ("upload.completed", "order.fulfilled", "offer.low_stock"):
        await expect(deliveries.filter(has_text=event_type)).not_to_have_count(0)
    await expect(deliveries.first).to_contain_text("offer.out_of_stock")
    await deliveries.first.get_by_role("button", name="Replay").click()
    await expect(page.locator("#announcer")).to_contain_text("will be sent again")
    await shot("08-webhook-deliveries")
    if os.environ.get("AUTOKEY_UPDATE_DOCS_SCREENSHOT") == "1":
        await page.evaluate("document.getElementById('announcer').textContent = ''")
        await page.locator("section.offers").evaluate("(el) => el.scrollIntoView()")
        await no_plaintext_anywhere()
        await page.screenshot(path=DOCS_SCREENSHOT)
    await page.get_by_label("Key status").select_option("")
    await expect(keys).to_have_count(25)
    await page.get_by_role("button", name="Load more keys").click()
    await expect(keys).to_have_count(31)
    await page.evaluate("window.scrollTo(0, 0)")
    await shot("09-out-of-stock")

    await page.set_viewport_size(PHONE)
    await expect(page.locator("#out-of-stock")).to_be_visible()
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways on a phone: {await too_wide(page)}"
    # Row actions stay reachable at 390 px: inside the screen, not hidden by the notice.
    await offer_row.get_by_role("button", name="Deactivate").click()
    await expect(offer_row).to_have_attribute("data-status", "inactive")
    await expect(page.locator("#announcer")).to_contain_text("is now inactive")
    for action in (
        offer_row.get_by_role("button", name="Activate"),
        offer_row.get_by_label("Low-stock threshold of “The Witcher 3: GOTY (Steam)”"),
        deliveries.first.get_by_role("button", name="Replay"),
        hook_row.get_by_role("button", name="Deliveries"),
    ):
        await expect_uncovered(action)
    await shot("10-phone")
    for card in ("offers", "sales", "hooks"):
        await page.locator(f"section.{card}").screenshot(path=screenshots / f"11-phone-{card}.png")

    assert watch.foreign_requests == []
    assert watch.page_errors == []
    assert watch.unexpected_console_errors() == []
    assert await watch.csp_violations(page) == []

    # Forgetting the token wipes it from the tab.
    await page.get_by_role("button", name="Forget token").click()
    await expect(page.get_by_label("Seller API token")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('autokey.console.token')") is None
    await no_plaintext_anywhere()
    await context.close()
    print(f"\nconsole screenshots saved to {screenshots}")


# The control is on screen and nothing is drawn over its middle.
_UNCOVERED = """(el) => {
    const box = el.getBoundingClientRect();
    const hit = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
    const fits = box.left >= 0 && box.right <= window.innerWidth;
    return fits && el.contains(hit) ? "" : `${JSON.stringify(box)} under ${hit && hit.outerHTML}`;
}"""


async def expect_uncovered(control: Locator) -> None:
    await control.scroll_into_view_if_needed()
    problem = await control.evaluate(_UNCOVERED)
    assert not problem, f"covered or off screen: {problem}"


# Elements sticking out to the right of the viewport. Inside a scrollable table region only
# positioned ones count: the region clips the rest.
_TOO_WIDE = """() => [...document.querySelectorAll("body *")]
    .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
    .filter((el) => ["absolute", "fixed"].includes(getComputedStyle(el).position)
        || !el.parentElement.closest(".table-wrap, dialog:not([open])"))
    .map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className}`)"""


async def too_wide(page: Page) -> list[str]:
    return list(await page.evaluate(_TOO_WIDE))


@pytest.mark.browser
async def test_the_csp_blocks_injected_inline_script(server: LiveServer, browser: Browser) -> None:
    page: Page = await browser.new_page()
    watch = PageWatch(server.base_url)
    await watch.attach(page)
    await page.goto(server.base_url + "/console")
    await page.get_by_label("Seller API token").wait_for()
    await page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.__injected = true";
            document.body.append(script);
        }"""
    )
    assert await page.evaluate("window.__injected === undefined")
    assert any(v.startswith("script-src") for v in await watch.csp_violations(page))
    await page.close()


@pytest.mark.browser
async def test_a_refresh_answered_after_load_more_does_not_put_the_first_page_back(
    server: LiveServer, browser: Browser
) -> None:
    """A refresh of the key list that was sent before "Load more keys" but answered after it
    (the poll, or "Refresh now") must not replace the longer list with its first page."""
    from playwright.async_api import Route, expect

    seller = await server.token(Role.SELLER)
    pool = await server.call("POST", "/key-pools", seller, {"name": "Paged"})
    keys = [f"KEY-PAGED-{n:04d}" for n in range(30)]
    await server.call("POST", f"/key-pools/{pool['id']}/keys/upload", seller, {"keys": keys})
    page = await browser.new_page()
    held, holding, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def hold_refreshes(route: Route) -> None:
        if held.is_set() and "cursor=" not in route.request.url:
            holding.set()
            await release.wait()  # answered only after "Load more keys" has been
        await route.continue_()

    await page.route("**/key-pools/*/keys?*", hold_refreshes)
    await page.goto(server.base_url + "/console")  # polls every 5 s: the test drives refreshes
    await page.get_by_label("Seller API token").fill(seller)
    await page.get_by_label("Seller API token").press("Enter")
    rows = page.locator("#keys-body tr")
    await expect(rows).to_have_count(25)

    held.set()
    await page.evaluate("document.getElementById('refresh-state').textContent = 'held'")
    await page.get_by_role("button", name="Refresh now").click()
    await asyncio.wait_for(holding.wait(), timeout=10)  # the refresh's key list is held
    await page.get_by_role("button", name="Load more keys").click()
    await expect(rows).to_have_count(30)
    release.set()
    await expect(page.locator("#refresh-state")).not_to_have_text("held")  # refresh is over
    await expect(rows).to_have_count(30)
    await expect(page.get_by_role("button", name="Load more keys")).to_be_hidden()
    await page.close()
