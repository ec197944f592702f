"""The channel page at volume, as a rep uses it, in a real headless Chromium (issue 13).

A real claimdesk server on a SQLite file with 62 open inquiries. alice, on a desktop:

- sees the counts per status, the first page of 50 with the most overdue first, and
  reaches the rest on the next page;
- searches (``?q=``) and filters (mine, country), and sees cards enter and leave her
  filtered page live (a new inquiry that matches appears, a claimed one leaves the
  "New" view) and the per-status counts follow without a reload;
- sees "claim due in …" turn into a highlighted "overdue by …" without a reload, and an
  "Escalated" note clear when the item is claimed;
- marks one won with a reason and finds it in the archive.

Accessibility (desktop and phone): every status badge >= 4.5:1 and each status its own
colour, every input and select labelled, every button's accessible name unique, a skip
link first in the tab order that moves focus to the list; axe-core (WCAG 2 A/AA rules)
when ``scripts/test-assets.sh`` installed it.

``CLAIMDESK_SCREENSHOTS=DIR`` (``scripts/screenshots.sh``) also writes the README's
screenshots: channel page, inquiry page, reply page (desktop) and the channel on a phone.
Only bounded waits on conditions; nothing asserts how fast anything happened.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.usecases.ingest import ingest
from store import inquiries as repo
from store.engine import transaction
from tests import test_web_browser as wb
from tests.conftest import IN_CI
from tests.test_web_channel import inbound

pytestmark = pytest.mark.browser
browser = wb.browser
live_server = wb.live_server

AXE = Path(__file__).resolve().parent.parent / ".cache/npm/node_modules/axe-core/axe.min.js"
SHOTS = os.environ.get("CLAIMDESK_SCREENSHOTS", "")
WAIT_MS = wb.WAIT_MS
if SHOTS:
    Path(SHOTS).mkdir(parents=True, exist_ok=True)


async def change(service: Any, number: int, **values: Any) -> None:
    async with transaction(service.ctx.sessions) as session:
        inquiry = await repo.get_inquiry(session, number)
        await repo.change(session, inquiry, service.ctx.clock(), **values)


async def seed(service: Any, count: int) -> list[int]:
    countries = ["ES", "DE", "FR", "IT"]
    return [
        (
            await ingest(
                service.ctx,
                inbound(
                    n,
                    country=countries[n % 4],
                    name=f"Buyer {n}",
                    company=f"Company {n}",
                    subject=f"Quote {n} for LED panels",
                ),
            )
        ).inquiry_id
        for n in range(count)
    ]


async def shot(page: Any, name: str) -> None:
    if SHOTS:
        await page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=False)


async def test_channel_page_at_volume(
    browser: Any,
    live_server: Any,
    sqlite_url: str,
    make_settings: Any,
    service_factory: Any,
    smtp: Any,
) -> None:
    from playwright.async_api import expect

    service = await wb.start(live_server, make_settings, service_factory, sqlite_url)
    base = live_server.base_url
    made = await seed(service, 60)
    zebra = (
        await ingest(
            service.ctx,
            inbound(
                100,
                email="olga@zebra.example",
                name="Olga Petrova",
                company="Zebracrossing GmbH",
                country="DE",
                subject="Traffic lights",
                text="We need 300 pedestrian lights for Hamburg.",
            ),
        )
    ).inquiry_id
    now = service.ctx.clock()
    await change(service, made[45], claim_due_at=now - timedelta(hours=2))
    await change(service, made[7], claim_due_at=now - timedelta(minutes=30))
    soon = made[59]
    await change(service, soon, claim_due_at=now + timedelta(seconds=8))
    escalated = made[58]
    async with transaction(service.ctx.sessions) as session:
        inquiry = await repo.get_inquiry(session, escalated)
        repo.add_event(session, inquiry, at=now, actor="system", kind="escalated", after="1")
        await repo.change(session, inquiry, now, escalation_level=1)

    page = await wb.open_team(
        browser, service, base, "alice", "sales", viewport={"width": 1280, "height": 900}
    )
    await wb.wait_live(page)
    views = page.locator("nav.views")
    await expect(views.locator('[data-view="open"] .count')).to_have_text("61")
    await expect(views.locator('[data-view="new"] .count')).to_have_text("61")
    await expect(views.locator('[data-view="archive"] .count')).to_have_text("0")
    await expect(page.locator("#showing")).to_have_text("1–50 of 61")
    cards = page.locator("#cards article.card")
    await expect(cards).to_have_count(50)
    # most overdue first, and "overdue" stands out
    await expect(cards.nth(0)).to_have_id(f"card-{made[45]}")
    await expect(cards.nth(1)).to_have_id(f"card-{made[7]}")
    await expect(cards.nth(0).locator(".due.overdue")).to_contain_text("overdue by 2 h")
    assert "is-overdue" in (await cards.nth(0).get_attribute("class") or "")
    # third: due in 8 s. The relative time stays live: "claim due in 8 s" becomes "overdue by …" without a reload
    countdown = page.locator(f"#card-{soon} .due")
    await expect(countdown).to_have_text(re.compile(r"^claim due in \d+ s$"))
    await expect(countdown).to_have_text(re.compile(r"^overdue by \d+ s$"), timeout=WAIT_MS)
    await expect(countdown).to_have_class(re.compile(r"\boverdue\b"))
    first_page = set(await cards.evaluate_all("cs => cs.map(c => c.dataset.key)"))
    await shot(page, "channel")

    # the rest is on the next page: every open inquiry is reachable
    await page.locator("#next-page").click()
    await expect(page.locator("#showing")).to_have_text("51–61 of 61")
    second_page = set(await cards.evaluate_all("cs => cs.map(c => c.dataset.key)"))
    assert first_page | second_page == {str(n) for n in [*made, zebra]}
    assert not first_page & second_page
    # "Escalated" shows until the item is claimed
    esc = page.locator(f"#card-{escalated}")
    await expect(esc.locator(".note")).to_contain_text("Escalated")

    # full-text search over the message body, from the search box
    await page.locator("#f-q").fill("pedestrian hamburg")
    await page.locator("#apply-filters").click()
    await expect(page).to_have_url(re.compile(r"q=pedestrian\+hamburg"))
    await expect(cards).to_have_count(1)
    await expect(cards.first).to_contain_text("Zebracrossing GmbH")
    await page.goto(f"{base}/web/teams/sales?q=Olga+Petrova")
    await expect(cards).to_have_count(1)

    # "New" for Japan: empty; a matching inquiry arrives and enters the page live,
    # is claimed from it and leaves it
    await page.goto(f"{base}/web/teams/sales?view=new&country=JP")
    await wb.wait_live(page)
    await expect(page.locator("#empty")).to_be_visible()
    await expect(page.locator("#empty")).to_have_text("No inquiries match these filters.")
    tabs = page.locator("nav.views")
    await expect(tabs.locator('[data-view="new"] .count')).to_have_text("0")
    await expect(tabs.locator('[data-view="claimed"] .count')).to_have_text("0")
    japan = await wb.post_webhook(
        base,
        {
            "email": "sato@osaka.example",
            "name": "Sato Kenji",
            "country": "JP",
            "subject": "Samples of LED panels",
            "message": "Please send 3 samples to Osaka.",
        },
        "chan-jp-1",
    )
    japan_card = page.locator(f"#card-{japan}")
    await expect(japan_card).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#empty")).to_be_hidden()
    # the per-status counts (for Japan: this page's other filters apply) follow live
    await expect(tabs.locator('[data-view="new"] .count')).to_have_text("1", timeout=WAIT_MS)
    await expect(tabs.locator('[data-view="open"] .count')).to_have_text("1")
    await expect(page.locator("#showing")).to_have_text("1–1 of 1", timeout=WAIT_MS)  # live too
    await japan_card.locator(f'button[data-action="cd1:claim:{japan}"]').click()
    await expect(page.locator("#toast")).to_contain_text(f"#{japan}", timeout=WAIT_MS)
    await expect(japan_card).to_have_count(0, timeout=WAIT_MS)
    await expect(page.locator("#empty")).to_be_visible()
    await expect(tabs.locator('[data-view="new"] .count')).to_have_text("0", timeout=WAIT_MS)
    await expect(tabs.locator('[data-view="claimed"] .count')).to_have_text("1")
    await expect(tabs.locator('[data-view="open"] .count')).to_have_text("1")
    await expect(page.locator("#showing")).to_have_text("0–0 of 0", timeout=WAIT_MS)

    # "Mine": alice's claimed item; its Escalated note is gone once claimed
    await page.goto(f"{base}/web/teams/sales?view=all&owner=mine")
    await expect(cards).to_have_count(1)
    await page.goto(f"{base}/web/teams/sales?view=new&sort=newest")
    await wb.wait_live(page)
    esc = page.locator(f"#card-{escalated}")
    await esc.locator(f'button[data-action="cd1:claim:{escalated}"]').click()
    await expect(esc).to_have_count(0, timeout=WAIT_MS)  # left the "New" view live
    await page.goto(f"{base}/web/teams/sales?owner=mine")
    esc = page.locator(f"#card-{escalated}")
    await expect(esc.locator(".badge")).to_have_text("Claimed")
    await expect(esc).not_to_contain_text("Escalated")

    # won with a reason: it leaves the open view and is found in the archive
    form = esc.locator(f'form[data-action="cd1:status:{escalated}"]')
    await form.locator('select[name="value"]').select_option("won")
    await form.get_by_label(f"Reason for #{escalated}").fill("Order of 2 containers")
    await form.get_by_role("button", name=f"Apply Set status for #{escalated}").click()
    await expect(esc).to_have_count(0, timeout=WAIT_MS)
    await page.locator('nav.views [data-view="archive"]').click()
    await expect(page.locator('nav.views [data-view="archive"] .count')).to_have_text("1")
    await expect(page.locator('nav.views [data-view="won"] .count')).to_have_text("1")
    await expect(cards).to_have_count(1)
    await expect(cards.first.locator(".badge")).to_have_text("Won")
    await page.goto(f"{base}/web/teams/sales?view=archive&q=Order+of+2")
    await expect(cards).to_have_count(0)  # the reason is not customer text; the subject is
    await page.goto(f"{base}/web/teams/sales?view=archive&q=Quote+58")
    await expect(cards).to_have_count(1)

    # a bad page number or filter value is a page, never an error
    response = await page.goto(f"{base}/web/teams/sales?page=999&sort=evil&view=nope")
    assert response is not None and response.status == 200
    await expect(page.locator("#showing")).to_have_text("51–61 of 61")  # the last page

    # the default page's counts follow live too
    await page.goto(f"{base}/web/teams/sales")
    await wb.wait_live(page)
    open_count = page.locator('nav.views [data-view="open"] .count')
    before = int(await open_count.inner_text())
    await wb.post_webhook(
        base,
        {"email": "li@shop.example", "name": "Li Wei", "country": "CN", "subject": "MOQ?"},
        "chan-default-1",
    )
    await expect(open_count).to_have_text(str(before + 1), timeout=WAIT_MS)

    if SHOTS:
        await page.goto(f"{base}/web/inquiries/{zebra}")
        await shot(page, "inquiry")
        await page.goto(f"{base}/web/inquiries/{zebra}/reply")
        await shot(page, "reply")


CONTRAST = """
() => {
  function rgb(s) { const m = s.match(/[\\d.]+/g).map(Number); return m.slice(0, 3); }
  function lum(c) {
    const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }
  return [...document.querySelectorAll(".badge")].map(b => {
    const st = getComputedStyle(b);
    const fg = lum(rgb(st.color)), bg = lum(rgb(st.backgroundColor));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    return { status: b.closest("article").dataset.status, bg: st.backgroundColor, ratio };
  });
}
"""

NAMES = """
() => {
  function name(el) {
    if (el.getAttribute("aria-label")) return el.getAttribute("aria-label").trim();
    if (el.id) { const l = document.querySelector(`label[for="${el.id}"]`); if (l) return l.textContent.trim(); }
    const wrap = el.closest("label"); if (wrap) return wrap.textContent.trim();
    return (el.textContent || "").trim();
  }
  const controls = [...document.querySelectorAll("main input:not([type=hidden]), main select, main textarea")];
  const unlabeled = controls.filter(c => !name(c)).map(c => c.outerHTML.slice(0, 80));
  const buttons = [...document.querySelectorAll("main button, main a.btn")].map(name);
  const seen = {}; const dupes = [];
  for (const b of buttons) { if (seen[b]) dupes.push(b); seen[b] = 1; }
  return { unlabeled, dupes, buttons: buttons.length };
}
"""


@pytest.mark.parametrize(
    "viewport",
    [{"width": 1280, "height": 900}, wb.PHONE],
    ids=["desktop", "phone"],
)
async def test_channel_page_accessibility(
    browser: Any,
    live_server: Any,
    sqlite_url: str,
    make_settings: Any,
    service_factory: Any,
    smtp: Any,
    viewport: dict[str, int],
) -> None:
    from playwright.async_api import expect

    service = await wb.start(live_server, make_settings, service_factory, sqlite_url)
    base = live_server.base_url
    made = await seed(service, 9)
    statuses = [
        "new",
        "claimed",
        "replied",
        "waiting",
        "follow_up",
        "won",
        "lost",
        "spam",
        "closed",
    ]
    for number, status in zip(made, statuses, strict=True):
        if status != "new":
            await change(service, number, status=status, assignee="alice")

    # bypass_csp: only so the test can inject axe-core; the page itself runs under its CSP
    page = await wb.open_team(
        browser, service, base, "alice", "sales", viewport=viewport, bypass_csp=True
    )
    await page.goto(f"{base}/web/teams/sales?view=all")
    await expect(page.locator("#cards article.card")).to_have_count(9)

    badges = await page.evaluate(CONTRAST)
    assert {b["status"] for b in badges} == set(statuses)
    low = [b for b in badges if b["ratio"] < 4.5]
    assert not low, f"badges below 4.5:1: {low}"
    colours = {b["status"]: b["bg"] for b in badges}
    assert len(set(colours.values())) == len(statuses), f"statuses share a colour: {colours}"

    found = await page.evaluate(NAMES)
    assert found["buttons"] > 20
    assert not found["unlabeled"], found["unlabeled"]
    assert not found["dupes"], f"buttons with the same accessible name: {found['dupes']}"
    claim = page.get_by_role("button", name=f"Claim #{made[0]}")
    await expect(claim).to_have_count(1)

    # the skip link is the first stop of the keyboard and takes focus to the list
    await page.keyboard.press("Tab")
    focused = page.locator(":focus")
    await expect(focused).to_have_class(re.compile(r"\bskip-link\b"))
    await expect(focused).to_be_visible()
    await page.keyboard.press("Enter")
    await expect(page.locator("#cards")).to_be_focused()
    # then the filters come before the cards in the tab order (search box first)
    await page.focus("#f-q")
    order = await page.evaluate(
        "() => [...document.querySelectorAll('main a[href], main button, main input:not([type=hidden]), main select')]"
        ".filter(e => e.tabIndex >= 0).map(e => e.id || e.closest('article')?.id || e.className)"
    )
    assert order.index("f-q") < order.index(next(o for o in order if str(o).startswith("card-")))

    if viewport == wb.PHONE:
        widths = await page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], f"page scrolls sideways on a phone: {widths}"
        await shot(page, "channel-phone")

    if not AXE.exists():
        if IN_CI and shutil.which("npm"):
            pytest.fail("axe-core missing: run scripts/test-assets.sh (make system-deps)")
        return
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "async () => { const r = await axe.run(document, {runOnly: {type: 'tag', values:"
        " ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}); return r.violations.map(v =>"
        " ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.html.slice(0, 120))})); }"
    )
    assert result == [], result
