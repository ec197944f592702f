"""Follow up from the card: one way in, "Follow-up" in the status menu with a date (the web
shows a date field; Slack sets tomorrow), the action (status follow_up, reminder at the
team's next opening), the old follow-up menu still accepted, and Slack end to end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from bot.usecases.card_actions import perform
from bot.usecases.views import card_for
from cards.actions import Action, Verb
from cards.inquiry_card import InquiryView, build_inquiry_card
from cards.model import Select
from config.loading import settings_from_mapping
from connectors.channels import Pacing
from connectors.slack.channel import SlackChannel
from connectors.slack.render import render_card
from connectors.web.render import render_card_html
from store import inquiries as repo
from store.engine import transaction
from tests.conftest import MovableClock, base_config
from tests.fakes.slack_api import FakeSlack
from tests.support.clock import (
    Walk,
    berlin,
    clock_config,
    new_inquiry,
    recording_channel,
    summary,
)
from tests.support.slack import CHANNEL, fixture, slack_config
from tests.test_slack_events import click, eventually, new_card


def _view(status: str) -> InquiryView:
    return InquiryView(
        number=7,
        version=1,
        team="sales",
        status=status,
        priority="normal",
        subject="LED",
        snippet="quote",
        source="website",
        contact_name="Maria",
        contact_email="m@buyer.example",
        company="",
        country="ES",
        language="en",
        received_at=berlin(2026, 11, 23, 10, 0),
    )


def _status_select(status: str, locale: str = "en") -> Select | None:
    card = build_inquiry_card(_view(status), now=berlin(2026, 11, 23, 10, 0), locale=locale)
    return next(
        (c for c in card.actions if isinstance(c, Select) and c.action_id == "cd1:status:7"),
        None,
    )


def test_follow_up_is_one_status_choice_with_a_date() -> None:
    for status in ("claimed", "replied", "waiting"):
        card = build_inquiry_card(_view(status), now=berlin(2026, 11, 23, 10, 0), locale="en")
        assert not [
            c for c in card.actions if getattr(c, "action_id", "").startswith("cd1:follow_up")
        ]
        select = _status_select(status)
        assert select is not None and not select.overflow
        assert ("follow_up", "Follow-up") in [(o.value, o.label) for o in select.options]
        assert select.date_for == "follow_up"
    zh = _status_select("claimed", "zh-CN")
    assert zh is not None and "follow_up" in [o.value for o in zh.options]


def test_web_shows_the_date_field_and_slack_the_choice() -> None:
    card = build_inquiry_card(_view("claimed"), now=berlin(2026, 11, 23, 10, 0), locale="en")
    html = render_card_html(card)
    assert 'data-action="cd1:status:7"' in html
    assert '<label class="extra date-box" data-for="follow_up" hidden>' in html
    assert 'type="date" name="date"' in html
    blocks = render_card(card, locale="en")
    elements = {e["action_id"]: e for b in blocks if b["type"] == "actions" for e in b["elements"]}
    assert "cd1:follow_up:7" not in elements
    assert "follow_up" in [o["value"] for o in elements["cd1:status:7"]["options"]]


async def test_tomorrow_on_friday_evening_reminds_at_the_next_opening(
    sqlite_url: str, make_settings: Any, service_factory: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 27, 17, 30))  # Friday
    channel = recording_channel()
    service = await service_factory(
        make_settings(sqlite_url, **clock_config()), channels={"slack": channel}, clock=clock
    )
    service.scheduler.settings.digests = False
    walk = Walk(service, clock, channel)
    number = await new_inquiry(service, "fu-card", country="")
    ctx = service.ctx
    assert (await perform(ctx, Action(number, Verb.CLAIM, "web", "alice"))).ok
    refused = await perform(ctx, Action(number, Verb.FOLLOW_UP, "web", "bob", value="1d"))
    assert not refused.ok and refused.code == "forbidden"
    bad = await perform(ctx, Action(number, Verb.FOLLOW_UP, "web", "alice", value="2y"))
    assert not bad.ok and bad.code == "invalid"
    done = await perform(ctx, Action(number, Verb.FOLLOW_UP, "web", "alice", value="1d"))
    assert done.ok
    async with transaction(ctx.sessions) as session:
        inquiry = await repo.get_inquiry(session, number)
        card = await card_for(ctx, session, inquiry)
    assert inquiry.status == "follow_up"
    assert inquiry.follow_up_at == berlin(2026, 12, 1, 9, 0)  # Sat -> Mon is a holiday -> Tue
    assert "2026-12-01 09:00 CET (Europe/Berlin)" in done.message
    assert any("Follow-up due 2026-12-01 09:00 CET (Europe/Berlin)" in n for n in card.notes)
    await walk.settle()
    clock.now = berlin(2026, 11, 27, 18, 0)
    calls = await walk.until(berlin(2026, 12, 1, 10, 0), step=timedelta(hours=1))
    assert summary(calls) == [("Tue 09:00", "send_direct", "UALICE")]
    assert f"Follow up on #{number}" in calls[0][1].text


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack(
        channels={CHANNEL: {"name": "sales-inquiries", "is_member": True}},
        users={"UALICE": {"email": "alice@seller.test", "name": "alice"}},
    )
    await fake.start()
    yield fake
    await fake.stop()


async def test_slack_follow_up_select_sets_the_follow_up(
    sqlite_url: str, smtp: Any, fake_slack: FakeSlack, service_factory: Any, client_factory: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 24, 11, 0))  # Tuesday, in hours
    settings = settings_from_mapping(
        slack_config(base_config(smtp.port, sqlite_url), fake_slack.base_url),
        source="test.toml",
        env={},
    )
    channel = SlackChannel.from_settings(settings.slack, pacing=Pacing(post_interval=0.0))
    service = await service_factory(settings, channels={"slack": channel}, clock=clock)
    service.scheduler.settings.digests = False
    client = await client_factory(service)
    number, ts = await new_card(client, fake_slack, key="fu-slack")
    assert (
        await click(
            client,
            fixture(
                "block_actions_button.json",
                action_id=f"cd1:claim:{number}",
                user="UALICE",
                message_ts=ts,
            ),
        )
    ).status == 200

    def claimed_card() -> Any:
        blocks = fake_slack.message(CHANNEL, ts)["blocks"]
        return next(
            (
                e
                for b in blocks
                if b["type"] == "actions"
                for e in b["elements"]
                if e["action_id"] == f"cd1:status:{number}"
                and "follow_up" in [o["value"] for o in e["options"]]
            ),
            None,
        )

    select = await eventually(claimed_card, what="status select with Follow-up on the card")
    assert select["type"] == "static_select"
    payload = fixture(
        "block_actions_static_select.json",
        action_id=f"cd1:status:{number}",
        value="follow_up",
        user="UALICE",
        message_ts=ts,
    )
    assert (await click(client, payload)).status == 200

    async def state() -> Any:
        async with transaction(service.ctx.sessions) as session:
            return await repo.get_inquiry(session, number)

    for _ in range(500):
        inquiry = await state()
        if inquiry.status == "follow_up":
            break
        await asyncio.sleep(0.02)
    assert inquiry.status == "follow_up"
    assert inquiry.follow_up_at == berlin(2026, 11, 25, 11, 0)  # no date on Slack: tomorrow
    await eventually(
        lambda: "Follow-up" in json.dumps(fake_slack.thread(CHANNEL, ts)), what="thread note"
    )
