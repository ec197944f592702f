"""The web inbox end to end in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

A real claimdesk server (the full ``Service.web_app`` with its outbox worker and live
feed) on a SQLite file and a real SMTP server. Two reps in two browser contexts:

- a signed webhook posted by the test appears on alice's open team page without a
  reload (server-sent events);
- alice claims it: the badge turns "Claimed" and the owner "Alice" in place;
- bob, whose page still shows the unclaimed card, clicks Claim and is told who won;
- alice replies from the reply page (template picker, pre-filled editor), edits and
  sends; the SMTP server receives her text and the card turns "Replied";
- a phone-sized screenshot (390x844) is written to /tmp/claimdesk-phone.png and the
  page must not scroll sideways on a phone;
- the zh-CN team renders in Chinese.

Timing: only generous bounded waits (Playwright's auto-waiting ``expect`` and a
bounded poll); nothing asserts how fast anything happened.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import ClientSession, web

from bot.app import Service
from connectors.web.auth import login_link
from connectors.webhooks import sign_body
from tests.conftest import WEBHOOK_SECRET, need

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CLAIMDESK_CHROMIUM", "/usr/bin/chromium")
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WAIT_MS = 15_000
PHONE = {"width": 390, "height": 844}
SCREENSHOT = "/tmp/claimdesk-phone.png"

FORM = {
    "email": "Maria.Lopez@Buyer.example",
    "name": "Maria Lopez",
    "company": "Lopez Importaciones",
    "country": "ES",
    "subject": "Quotation for 2 containers of LED panels",
    "message": "Hello, please quote 2x40HQ of 600x600 LED panels, delivery to Valencia.",
}
FORM_ZH = {
    "email": "wang@buyer.example.cn",
    "name": "王先生",
    "company": "宁波贸易有限公司",
    "country": "CN",
    "subject": "询价：LED 面板",
    "message": "您好，请报价两个四十尺高柜的 LED 面板，送到宁波港，谢谢。",
}


class LiveServer:
    """The service's aiohttp app on a socket bound to 127.0.0.1 port 0 (so the public URL is known first)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.runner: web.AppRunner | None = None

    async def start(self, app: web.Application) -> None:
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()

    async def stop(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            await runner.cleanup()
        self.sock.close()


@pytest.fixture
async def live_server() -> AsyncIterator[LiveServer]:
    server = LiveServer()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    need(HAVE_CHROMIUM, f"{CHROMIUM} not installed (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover - depends on the environment
        need(False, "the playwright Python package is not installed")
        raise
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def post_webhook(base_url: str, body: dict[str, Any], key: str) -> int:
    raw = json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Claimdesk-Signature": sign_body(WEBHOOK_SECRET, raw),
        "Idempotency-Key": key,
    }
    async with (
        ClientSession() as http,
        http.post(f"{base_url}/webhooks/website", data=raw, headers=headers) as response,
    ):
        assert response.status == 202, await response.text()
        return int((await response.json())["inquiry"])


async def start(
    live_server: LiveServer, make_settings: Callable[..., Any], service_factory: Any, db_url: str
) -> Service:
    settings = make_settings(
        db_url,
        server={"host": "127.0.0.1", "port": 8080, "public_url": live_server.base_url},
    )
    service: Service = await service_factory(settings)
    await live_server.start(service.web_app(background=True))
    return service


async def open_team(
    browser: Any, service: Service, base_url: str, rep: str, team: str, **context_options: Any
) -> Any:
    """A fresh browser context signed in as ``rep`` through a login link, on ``team``'s page."""
    context = await browser.new_context(**context_options)
    page = await context.new_page()
    await page.goto(login_link(service.signer, base_url, rep))
    if not page.url.endswith(f"/web/teams/{team}"):
        await page.goto(f"{base_url}/web/teams/{team}")
    assert page.url == f"{base_url}/web/teams/{team}"
    return page


async def wait_live(page: Any) -> None:
    await page.wait_for_selector('body[data-live="1"]', state="attached", timeout=WAIT_MS)


async def test_live_inbox_claim_race_and_reply(
    browser: Any,
    live_server: LiveServer,
    sqlite_url: str,
    make_settings: Any,
    service_factory: Any,
    smtp: Any,
) -> None:
    from playwright.async_api import expect

    service = await start(live_server, make_settings, service_factory, sqlite_url)
    base = live_server.base_url
    alice = await open_team(browser, service, base, "alice", "sales")
    await expect(alice.locator("#empty")).to_be_visible()
    await wait_live(alice)

    # bob's page is open too, but his live stream is cut (a proxy that buffers it):
    # he keeps seeing the card as it was when his page loaded.
    bob_context = await browser.new_context()
    await bob_context.route(re.compile(r".*/events(\?.*)?$"), lambda route: route.abort())
    bob = await bob_context.new_page()
    await bob.goto(login_link(service.signer, base, "bob"))

    # a webhook arrives: the card appears on alice's page without a reload
    marker = await alice.evaluate("() => { window.__noReload = 'still-here'; return 1; }")
    assert marker == 1
    number = await post_webhook(base, FORM, "browser-form-1")
    card = alice.locator(f"#card-{number}")
    await expect(card).to_be_visible(timeout=WAIT_MS)
    await expect(card.locator(".badge")).to_have_text("New")
    await expect(card).to_contain_text("Quotation for 2 containers of LED panels")
    await expect(card).to_contain_text("Lopez Importaciones")
    await expect(alice.locator("#empty")).to_be_hidden()
    assert await alice.evaluate("() => window.__noReload") == "still-here"

    # bob loads his page now: the card is there, unclaimed, and stays so for him
    await bob.reload()
    bob_card = bob.locator(f"#card-{number}")
    await expect(bob_card.locator(".badge")).to_have_text("New")

    # alice claims: her card changes in place
    await card.locator(f'button[data-action="cd1:claim:{number}"]').click()
    await expect(card.locator(".badge")).to_have_text("Claimed", timeout=WAIT_MS)
    await expect(card.locator("dl.fields")).to_contain_text("Alice")
    await expect(card.locator(f'button[data-action="cd1:claim:{number}"]')).to_have_count(0)
    await expect(alice.locator("#toast")).to_contain_text(f"#{number}")
    assert await alice.evaluate("() => window.__noReload") == "still-here"

    # bob clicks his stale Claim button and is told who won
    await bob_card.locator(f'button[data-action="cd1:claim:{number}"]').click()
    await expect(bob.locator("#toast")).to_have_text(
        re.compile(r"^Alice claimed it "), timeout=WAIT_MS
    )
    await expect(bob.locator("#toast")).to_have_class(re.compile(r"\bbad\b"))
    await bob_context.close()

    # alice replies: the reply page has the template picker and a pre-filled editor
    await card.locator(f'button[data-action="cd1:reply:{number}"]').click()
    await alice.wait_for_url(f"{base}/web/inquiries/{number}/reply", timeout=WAIT_MS)
    picker = alice.locator("select#template")
    await expect(picker).to_be_visible()
    options = await picker.locator("option").all_inner_texts()
    assert len(options) >= 2
    assert any(o.startswith("en") for o in options)
    editor = alice.locator("textarea#body")
    await expect(editor).to_have_value(re.compile(r"Dear Maria Lopez"))
    await expect(alice.locator("input#subject")).to_have_value(re.compile(r"LED panels"))

    # picking another template reloads the editor with it
    chosen = await picker.input_value()
    other = next(
        v
        for v in await picker.locator("option").evaluate_all("os => os.map(o => o.value)")
        if v != chosen
    )
    await picker.select_option(other)
    await alice.wait_for_url(re.compile(r"template="), timeout=WAIT_MS)
    await expect(alice.locator("select#template")).to_have_value(other)
    await expect(alice.locator("textarea#body")).not_to_be_empty()

    await alice.locator("textarea#body").fill(
        "Dear Maria,\nour offer for 2x40HQ follows today.\nAlice"
    )
    await alice.locator("#send").click()
    await expect(alice.locator("#toast")).to_be_visible(timeout=WAIT_MS)
    # after Send the inquiry page shows where the reply stands ("sending…" until accepted)
    await alice.wait_for_url(f"{base}/web/inquiries/{number}", timeout=WAIT_MS)

    # the running worker delivers the email (bounded wait; no timing is asserted)
    for _ in range(200):
        if smtp.messages:
            break
        await asyncio.sleep(0.05)
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail.rcpt_tos == ["maria.lopez@buyer.example"]
    assert "our offer for 2x40HQ follows today." in mail.message.get_content()

    card = alice.locator(f"#card-{number}")
    await expect(card.locator(".badge")).to_have_text("Replied", timeout=WAIT_MS)
    await expect(card.locator("dl.fields")).to_contain_text("Alice")
    await wait_live(alice)

    # the inquiry page shows the conversation and the timeline
    await card.locator("h2 a").click()
    await alice.wait_for_url(f"{base}/web/inquiries/{number}", timeout=WAIT_MS)
    await expect(alice.locator("ol.messages")).to_contain_text(
        "our offer for 2x40HQ follows today."
    )
    # received, claimed, replied, accepted by the mail server
    await expect(alice.locator("ol.timeline li")).to_have_count(4)

    # the server stops promptly although a live stream is open (the page then shows "offline")
    await alice.goto(f"{base}/web/teams/sales")
    await wait_live(alice)
    await asyncio.wait_for(live_server.stop(), timeout=30)
    await alice.wait_for_selector('body[data-live="0"]', state="attached", timeout=WAIT_MS)
    await expect(alice.locator("#live")).to_have_text("reconnecting…")


async def test_phone_layout_and_chinese_team(
    browser: Any,
    live_server: LiveServer,
    sqlite_url: str,
    make_settings: Any,
    service_factory: Any,
    smtp: Any,
) -> None:
    from playwright.async_api import expect

    service = await start(live_server, make_settings, service_factory, sqlite_url)
    base = live_server.base_url
    number = await post_webhook(base, FORM, "phone-1")
    zh_number = await post_webhook(base, FORM_ZH, "phone-zh-1")

    phone = await open_team(
        browser,
        service,
        base,
        "alice",
        "sales",
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    await wait_live(phone)
    card = phone.locator(f"#card-{number}")
    await expect(card).to_be_visible()
    await phone.screenshot(path=SCREENSHOT, full_page=True)

    # usable on a phone: nothing wider than the screen, buttons big enough to tap
    widths = await phone.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"page scrolls sideways on a phone: {widths}"
    for element in await card.locator("button, select, .btn").all():
        box = await element.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, box
        assert box["height"] >= 40, box  # big enough to tap
    claim = card.locator(f'button[data-action="cd1:claim:{number}"]')
    await claim.tap()
    await expect(card.locator(".badge")).to_have_text("Claimed", timeout=WAIT_MS)

    # the zh-CN team: chen sees the Chinese inquiry in Chinese
    chen = await open_team(browser, service, base, "chen", "asia")
    await wait_live(chen)
    assert await chen.locator("html").get_attribute("lang") == "zh-CN"
    await expect(chen.locator("h1")).to_have_text("亚洲组 · 询盘")
    await expect(chen.locator("#live")).to_have_text("实时")
    zh_card = chen.locator(f"#card-{zh_number}")
    await expect(zh_card.locator(".badge")).to_have_text("新询盘")
    await expect(zh_card).to_contain_text("宁波贸易有限公司")
    await expect(zh_card.locator(f'button[data-action="cd1:claim:{zh_number}"]')).to_have_text(
        "认领"
    )
    await zh_card.locator(f'button[data-action="cd1:claim:{zh_number}"]').click()
    await expect(zh_card.locator(".badge")).to_have_text("已认领", timeout=WAIT_MS)
    await expect(zh_card.locator("dl.fields")).to_contain_text("陈")
    await expect(chen.locator(f"#card-{number}")).to_have_count(0)
