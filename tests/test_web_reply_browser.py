"""The reply page, statuses, away and the escalated view in a real headless Chromium.

Each test walks an item of issue 13 as a rep, a lead or a manager would, on a desktop
and (where layout matters) a phone viewport, and asserts what the person sees:

- the reply page shows the customer's message being answered, tells a rep who does not
  own the inquiry so when it opens ("Claim and reply" where unclaimed), asks before a
  template replaces typed text, and after Send shows "delivery failed — retrying" with
  the server's words until the mail server accepted the reply;
- "Follow-up" in the status menu asks for a date, "Lost" for one of the team's reasons;
  the reason box and the date appear only for the choice that needs them; times are in
  the team's zone with the zone named;
- "I'm away" says what will happen and lists the items; "I'm back" offers them back;
- a lead's "Escalated to me" view, with Reassign on the card.

Timing: only bounded waits on conditions (Playwright's ``expect``, bounded polls).
"""

# ruff: noqa: F811  (the browser and live_server fixtures are imported from test_web_browser)
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.app import Service
from bot.runtime.outbox_worker import WorkerSettings
from cards.strings import zoned_time
from connectors.web.auth import login_link
from store import inquiries as repo
from store.engine import transaction
from tests.conftest import MovableClock
from tests.support.clock import berlin
from tests.test_web_browser import (  # noqa: F401  (fixtures used by name)
    FORM,
    PHONE,
    WAIT_MS,
    LiveServer,
    browser,
    live_server,
    post_webhook,
    wait_live,
)

pytestmark = pytest.mark.browser
BERLIN = ZoneInfo("Europe/Berlin")

VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {
        "viewport": PHONE,
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}
# Retries far enough apart that a person (and the test) sees the "retrying" state.
SLOW_RETRY = WorkerSettings(
    lease_seconds=30, poll_seconds=0.05, base_backoff=4.0, max_backoff=8.0, max_attempts=4
)


async def serve(
    live_server: LiveServer,
    make_settings: Callable[..., Any],
    service_factory: Any,
    db_url: str,
    **kwargs: Any,
) -> Service:
    settings = make_settings(
        db_url, server={"host": "127.0.0.1", "port": 8080, "public_url": live_server.base_url}
    )
    service: Service = await service_factory(settings, **kwargs)
    await live_server.start(service.web_app(background=True))
    return service


async def signed_in(browser: Any, service: Service, base: str, rep: str, view: str) -> Any:
    context = await browser.new_context(**VIEWPORTS[view])
    page = await context.new_page()
    await page.goto(login_link(service.signer, base, rep))
    return page


async def inquiry(service: Service, number: int) -> Any:
    async with transaction(service.ctx.sessions) as session:
        return await repo.get_inquiry(session, number)


def next_wednesday() -> date:
    """A working day 8 to 14 days ahead in the team's zone (the server checks real today)."""
    day = datetime.now(BERLIN).date() + timedelta(days=8)
    while day.weekday() != 2:
        day += timedelta(days=1)
    return day


async def no_sideways_scroll(page: Any) -> None:
    widths = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"page scrolls sideways: {widths}"


@pytest.mark.parametrize("view", ["desktop", "phone"])
async def test_reply_page_as_reps_use_it(
    view: str,
    browser: Any,
    live_server: LiveServer,
    sqlite_url: str,
    make_settings: Any,
    service_factory: Any,
    smtp: Any,
) -> None:
    from playwright.async_api import expect

    service = await serve(
        live_server, make_settings, service_factory, sqlite_url, worker=SLOW_RETRY
    )
    base = live_server.base_url
    nameless = {**FORM, "name": "", "email": "buyer@lopez.example"}
    number = await post_webhook(base, nameless, f"reply-page-{view}")

    # bob opens the reply page of an unclaimed inquiry: told so, offered "Claim and reply"
    bob = await signed_in(browser, service, base, "bob", view)
    await bob.goto(f"{base}/web/inquiries/{number}/reply")
    notice = bob.locator("#owner-notice")
    await expect(notice).to_contain_text(f"#{number} is unclaimed")
    # the customer's message being answered is on the page
    await expect(bob.locator("#answering")).to_contain_text("please quote 2x40HQ")
    await expect(bob.locator("#answering")).to_contain_text("Replying to")
    # a customer without a name: the built-in template's fallback, no error
    await expect(bob.locator("textarea#body")).to_have_value(re.compile(r"^Dear Sir or Madam,"))
    await expect(bob.locator("#template-error")).to_have_count(0)
    await no_sideways_scroll(bob)
    await bob.locator("#claim-and-reply").click()
    await expect(bob.locator("#owner-notice")).to_have_count(0, timeout=WAIT_MS)
    assert (await inquiry(service, number)).assignee == "bob"

    # typed text is never thrown away silently: switching templates asks first
    editor = bob.locator("textarea#body")
    await editor.fill("Dear buyer,\nmy own words.\nBob")
    picker = bob.locator("select#template")
    chosen = await picker.input_value()
    other = next(
        v
        for v in await picker.locator("option").evaluate_all("os => os.map(o => o.value)")
        if v != chosen
    )
    questions: list[str] = []

    async def decline(dialog: Any) -> None:
        questions.append(dialog.message)
        await dialog.dismiss()

    bob.once("dialog", decline)
    await picker.select_option(other)
    await expect(editor).to_have_value("Dear buyer,\nmy own words.\nBob")
    await expect(picker).to_have_value(chosen)
    assert questions and "Your changes would be lost" in questions[0]

    # alice, not the owner, is told when the page opens, and Send is not offered
    alice = await signed_in(browser, service, base, "alice", view)
    await alice.goto(f"{base}/web/inquiries/{number}/reply")
    await expect(alice.locator("#owner-notice")).to_contain_text(
        f"Bob owns #{number}: only Bob or a team lead can send a reply"
    )
    await expect(alice.locator("#send")).to_be_disabled()
    await alice.context.close()

    # bob sends; the mail server refuses the first attempt: the page says so, in its words
    smtp.handler.refuse_next = ["451 4.3.0 Mailbox temporarily unavailable"]
    await bob.locator("#send").click()
    await bob.wait_for_url(f"{base}/web/inquiries/{number}", timeout=WAIT_MS)
    await wait_live(bob)
    card = bob.locator(f"#card-{number}")
    await expect(card.locator(".note")).to_contain_text(
        re.compile(r"Reply delivery failed — retrying: .*Mailbox temporarily unavailable"),
        timeout=WAIT_MS,
    )
    # ... until the retry is accepted: then the message says so and the first response counts
    await expect(bob.locator("ol.messages .delivery")).to_have_text(
        "accepted by the mail server", timeout=3 * WAIT_MS
    )
    await expect(card.locator(".note")).to_have_count(0, timeout=WAIT_MS)
    await expect(bob.locator("ol.timeline")).to_contain_text("first response after")
    await expect(bob.locator("ol.timeline")).to_contain_text("(Europe/Berlin)")
    await expect(bob.locator("ol.timeline")).not_to_contain_text("UTC")
    assert len(smtp.messages) == 1
    assert "my own words." in smtp.messages[0].message.get_content()
    assert (await inquiry(service, number)).first_reply_at is not None


@pytest.mark.parametrize("view", ["desktop", "phone"])
async def test_status_menu_follow_up_date_and_lost_reason(
    view: str,
    browser: Any,
    live_server: LiveServer,
    sqlite_url: str,
    make_settings: Any,
    service_factory: Any,
    smtp: Any,
) -> None:
    from playwright.async_api import expect

    service = await serve(live_server, make_settings, service_factory, sqlite_url)
    base = live_server.base_url
    number = await post_webhook(base, FORM, f"status-{view}")
    page = await signed_in(browser, service, base, "alice", view)
    await wait_live(page)
    card = page.locator(f"#card-{number}")
    await card.locator(f'button[data-action="cd1:claim:{number}"]').click()
    await expect(card.locator(".badge")).to_have_text("Claimed", timeout=WAIT_MS)

    # no separate follow-up menu; the reason box and the date field wait for their choice
    await expect(card.locator('[data-action^="cd1:follow_up:"]')).to_have_count(0)
    status_form = card.locator(f'form[data-action="cd1:status:{number}"]')
    await expect(status_form.locator(".reason-box")).to_be_hidden()
    await expect(status_form.locator(".date-box")).to_be_hidden()
    await expect(status_form.locator(".lost-box")).to_be_hidden()

    await status_form.locator("select[name=value]").select_option("follow_up")
    await expect(status_form.locator(".date-box")).to_be_visible()
    await expect(status_form.locator(".reason-box")).to_be_hidden()
    day = next_wednesday()
    await status_form.locator("input[name=date]").fill(day.isoformat())
    await status_form.locator("button[type=submit]").click()
    shown = zoned_time(datetime.combine(day, time(9, 0), tzinfo=BERLIN), "Europe/Berlin")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d 09:00 CES?T \(Europe/Berlin\)", shown), shown
    await expect(page.locator("#toast")).to_contain_text(shown, timeout=WAIT_MS)
    await expect(card.locator(".badge")).to_have_text("Follow-up", timeout=WAIT_MS)
    await expect(card.locator(".note")).to_contain_text(f"Follow-up due {shown}")
    await no_sideways_scroll(page)

    status_form = card.locator(f'form[data-action="cd1:status:{number}"]')
    await status_form.locator("select[name=value]").select_option("lost")
    await expect(status_form.locator(".lost-box")).to_be_visible()
    await expect(status_form.locator(".reason-box")).to_be_visible()
    await expect(status_form.locator(".date-box")).to_be_hidden()
    reasons = await status_form.locator("select[name=reason_code] option").all_inner_texts()
    assert reasons == ["Price", "Lead time", "MOQ", "No answer", "Competitor", "Other"]
    await status_form.locator("select[name=reason_code]").select_option("price")
    await status_form.locator("input[name=reason]").fill("20% above the budget")
    await status_form.locator("button[type=submit]").click()
    await expect(card.locator(".badge")).to_have_text("Lost", timeout=WAIT_MS)
    await expect(card.locator("dl.fields")).to_contain_text("Price: 20% above the budget")
    async with transaction(service.ctx.sessions) as session:
        events = await repo.timeline(session, number)
    assert events[-1].data["lost_reason"] == "price"


async def test_away_confirms_and_back_offers_the_items(
    browser: Any,
    live_server: LiveServer,
    sqlite_url: str,
    make_settings: Any,
    service_factory: Any,
    smtp: Any,
) -> None:
    from playwright.async_api import expect

    service = await serve(live_server, make_settings, service_factory, sqlite_url)
    base = live_server.base_url
    first = await post_webhook(base, FORM, "away-1")
    second = await post_webhook(base, {**FORM, "subject": "Second question"}, "away-2")
    page = await signed_in(browser, service, base, "alice", "phone")
    await wait_live(page)
    for number in (first, second):
        card = page.locator(f"#card-{number}")
        await card.locator(f'button[data-action="cd1:claim:{number}"]').click()
        await expect(card.locator(".badge")).to_have_text("Claimed", timeout=WAIT_MS)

    # "I'm away" asks first and says what will happen
    await page.locator("#away-toggle").click()
    await page.wait_for_url(re.compile(r"/web/away\?"), timeout=WAIT_MS)
    await expect(page.locator("#away-will")).to_have_text(
        "Your 2 claimed inquiries will be handed to your backup or back to the pool within 15 s:"
    )
    await expect(page.locator("#away-items li")).to_have_count(2)
    await no_sideways_scroll(page)
    await page.locator("#away-confirm").click()
    await page.wait_for_url(f"{base}/web/teams/sales", timeout=WAIT_MS)
    await expect(page.locator("#away-note")).to_be_visible()
    assert service.scheduler is not None
    await service.scheduler.tick()  # the clock's next tick (at most 15 s away) hands them over
    for number in (first, second):
        assert (await inquiry(service, number)).assignee is None

    # "I'm back" offers them back: one click each, or all
    await page.locator("#away-toggle").click()
    await page.wait_for_url(re.compile(r"/web/back\?"), timeout=WAIT_MS)
    await expect(page.locator("#handed-items li")).to_have_count(2)
    await expect(page.locator("#handed-items")).to_contain_text("in the pool")
    await page.locator("#handed-items li").first.get_by_role("button").click()
    await expect(page.locator("#taken")).to_have_text("You took back 1 of 1 inquiries.")
    await expect(page.locator("#handed-items li")).to_have_count(1)
    await page.locator("#take-all").click()
    await expect(page.locator("#taken")).to_have_text("You took back 1 of 1 inquiries.")
    await expect(page.locator("#back-none")).to_be_visible()
    for number in (first, second):
        taken = await inquiry(service, number)
        assert (taken.assignee, taken.status) == ("alice", "claimed")


async def escalate(service: Service, clock: MovableClock, number: int) -> None:
    """Move the clock on, ten minutes a tick, until ``number`` is escalated."""
    assert service.scheduler is not None
    for _ in range(40):
        if (await inquiry(service, number)).escalation_level:
            return
        clock.advance(minutes=10)
        await service.scheduler.tick()
    raise AssertionError(f"#{number} was not escalated")


@pytest.mark.parametrize("view", ["desktop", "phone"])
async def test_lead_sees_what_is_escalated_and_reassigns(
    view: str,
    browser: Any,
    live_server: LiveServer,
    sqlite_url: str,
    make_settings: Any,
    service_factory: Any,
    smtp: Any,
) -> None:
    from playwright.async_api import expect

    clock = MovableClock(berlin(2026, 11, 24, 10, 0))
    service = await serve(live_server, make_settings, service_factory, sqlite_url, clock=clock)
    base = live_server.base_url
    number = await post_webhook(base, FORM, f"escalated-{view}")
    await escalate(service, clock, number)

    # a rep has no such view; the lead has it in the top bar
    alice = await signed_in(browser, service, base, "alice", view)
    await expect(alice.locator("#escalated-link")).to_have_count(0)
    await alice.context.close()
    lena = await signed_in(browser, service, base, "lena", view)
    await lena.locator("#escalated-link").click()
    await lena.wait_for_url(f"{base}/web/escalated", timeout=WAIT_MS)
    await wait_live(lena)  # the view's stream is connected before anything changes
    card = lena.locator(f"#card-{number}")
    await expect(card).to_contain_text("Escalated")
    await no_sideways_scroll(lena)
    reassign = card.locator(f'form[data-action="cd1:reassign:{number}"]')
    await reassign.locator("select[name=value]").select_option("alice")
    await reassign.locator("button[type=submit]").click()
    await expect(lena.locator("#toast")).to_have_text(
        f"#{number} reassigned to Alice.", timeout=WAIT_MS
    )
    assert (await inquiry(service, number)).assignee == "alice"
    # the view is live: the reassigned item leaves it without a reload ...
    await expect(card).to_have_count(0, timeout=WAIT_MS)
    await expect(lena.locator("#empty")).to_be_visible()
    # ... and an item escalated while the lead looks at it enters it
    later = await post_webhook(
        base, {**FORM, "message": "A second one, escalated live."}, f"escalated-{view}-2"
    )
    await escalate(service, clock, later)
    arrived = lena.locator(f"#card-{later}")
    await expect(arrived).to_contain_text("Escalated", timeout=WAIT_MS)
    await expect(arrived.locator(f'form[data-action="cd1:reassign:{later}"]')).to_have_count(1)
    await expect(lena.locator("#empty")).to_be_hidden()
    await lena.reload()  # what the stream showed is what the page shows
    await expect(lena.locator(f"#card-{later}")).to_have_count(1)
    await expect(lena.locator(f"#card-{number}")).to_have_count(0)
