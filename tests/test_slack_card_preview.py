"""The README's "Slack card" screenshot, drawn from our real Block Kit output in headless Chromium.

``render_card`` (the renderer the Slack connector posts with) renders a new inquiry card
and the same inquiry claimed; ``tests.support.slack_preview`` lays the blocks out like a
Slack message. The test asserts what a rep would read on them (escaped customer text,
the actions of each state) and, with ``CLAIMDESK_SCREENSHOTS=DIR``
(``scripts/screenshots.sh``), writes ``slack-card.png``. Because it runs the real
renderer, the picture cannot drift from what is posted.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cards.inquiry_card import InquiryView, build_inquiry_card
from connectors.slack.render import render_card
from tests import test_web_browser as wb
from tests.support.slack_preview import UnknownBlock, mrkdwn_html, preview_page

browser = wb.browser
SHOTS = os.environ.get("CLAIMDESK_SCREENSHOTS", "")
if SHOTS:
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
NOW = datetime(2026, 11, 23, 9, 40, tzinfo=UTC)

VIEW = InquiryView(
    number=1042,
    version=1,
    team="sales",
    status="new",
    priority="high",
    subject="40HQ container of LED panels <urgent>",
    snippet="Hello,\nwe need 2,400 LED panels (600x600, 4000K) delivered to Valencia by March."
    "\nCould you quote FOB Ningbo and CIF Valencia?",
    source="website",
    contact_name="Maria Lopez",
    contact_email="maria.lopez@buyer.example",
    company="Lopez Importaciones S.L.",
    country="ES",
    language="en",
    received_at=NOW - timedelta(minutes=12),
    claim_due_at=NOW + timedelta(minutes=18),
    link_url="https://claimdesk.example.com/web/inquiries/1042",
    timezone="Asia/Shanghai",
    lost_reasons=("price", "lead time", "MOQ", "other"),
)


def _messages() -> list[list[dict[str, Any]]]:
    new = build_inquiry_card(VIEW, now=NOW, locale="en")
    claimed = build_inquiry_card(
        replace(
            VIEW,
            version=2,
            status="claimed",
            owner_name="Alice Chen",
            claimed_at=NOW - timedelta(minutes=2),
            reply_due_at=NOW + timedelta(minutes=58),
        ),
        now=NOW,
        locale="en",
    )
    return [render_card(new, locale="en"), render_card(claimed, locale="en")]


def test_preview_draws_slack_markup_and_refuses_unknown_blocks() -> None:
    assert mrkdwn_html("*Owner*\nAlice") == "<b>Owner</b><br>Alice"
    assert (
        mrkdwn_html("&lt;b&gt; &amp; <@U1>") == '&lt;b&gt; &amp; <span class="mention">@U1</span>'
    )
    assert mrkdwn_html("> quoted\n> twice") == "<blockquote>quoted<br>twice</blockquote>"
    assert mrkdwn_html("&gt; typed") == "&gt; typed"  # a customer's ">" quotes nothing
    with pytest.raises(UnknownBlock):
        preview_page([[{"type": "video"}]])


@pytest.mark.browser
async def test_slack_card_preview(browser: Any) -> None:
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 760, "height": 700})
    page = await context.new_page()
    await page.set_content(preview_page(_messages()))
    new, claimed = page.locator(".msg").nth(0), page.locator(".msg").nth(1)
    # the subject is shown as typed (escaped), not as markup
    await expect(new.locator(".section").first).to_contain_text(
        "New · #1042 40HQ container of LED panels <urgent>"
    )
    await expect(new.locator(".fields")).to_contain_text("Maria Lopez <maria.lopez@buyer.example>")
    await expect(new.locator(".fields")).to_contain_text("Lopez Importaciones S.L.")
    await expect(new.locator("blockquote")).to_contain_text("2,400 LED panels")
    await expect(new.locator(".context")).to_contain_text("claim due in 18 min")
    assert await new.locator(".btn").all_inner_texts() == ["Claim", "Reply", "Open ↗"]
    await expect(new.locator(".btn.primary")).to_have_text("Claim")
    await expect(new.locator(".select")).to_have_count(2)  # status, reassign
    await expect(new.locator(".overflow")).to_have_count(1)  # snooze
    # claimed: owner shown, Reply is the main action, Release offered, Claim gone
    await expect(claimed.locator(".section").first).to_contain_text("Claimed")
    await expect(claimed.locator(".fields")).to_contain_text("Alice Chen")
    assert await claimed.locator(".btn").all_inner_texts() == ["Reply", "Release", "Open ↗"]
    await expect(claimed.locator(".btn.primary")).to_have_text("Reply")
    await expect(claimed.locator(".context")).to_contain_text("reply due in 58 min")
    if SHOTS:
        await page.screenshot(path=os.path.join(SHOTS, "slack-card.png"), full_page=True)
    await context.close()
