"""SlackChannel against the fake Slack Web API: shapes of calls, error translation for the
outbox worker (429 -> retry_after, permanent codes, 5xx and timeouts retryable), and
``claimdesk check``'s Slack part."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from cards.escalation_card import build_escalation_card
from cards.inquiry_card import InquiryView, build_inquiry_card
from cards.model import Option
from config.loading import settings_from_mapping
from connectors.channels import DeliveryError, PostedCard
from connectors.slack.channel import SlackChannel
from connectors.slack.platform import slack_problems
from tests.conftest import base_config
from tests.fakes.slack_api import FakeSlack
from tests.support.slack import CHANNEL, slack_config

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = FakeSlack(
        channels={CHANNEL: {"is_member": True}, "CNOTIN": {"is_member": False}},
        users={"UMAX": {"email": "max@seller.test"}},
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def channel(fake: FakeSlack) -> AsyncIterator[SlackChannel]:
    chat = SlackChannel(bot_token=fake.token, api_base_url=fake.base_url, timeout=1.0)
    yield chat
    await chat.close()


def card(number: int = 7, status: str = "new") -> Any:
    view = InquiryView(
        number=number,
        version=1,
        team="sales",
        status=status,
        priority="normal",
        subject="Need 40HQ",
        snippet="Hello",
        source="website",
        contact_name="Maria",
        contact_email="m@b.example",
        company="",
        country="ES",
        language="en",
        received_at=NOW,
    )
    return build_inquiry_card(view, now=NOW, locale="en")


async def test_post_update_thread_and_dm(fake: FakeSlack, channel: SlackChannel) -> None:
    posted = await channel.post_card(CHANNEL, card(), locale="en")
    assert posted.data == {"channel": CHANNEL}
    call = fake.calls_of("chat.postMessage")[0]
    assert call.token == fake.token and call.args["unfurl_links"] is False and call.args["blocks"]
    assert await channel.update_card(CHANNEL, posted, card(status="claimed"), locale="en") is None
    assert "Claimed" in fake.message(CHANNEL, posted.ref)["text"]
    await channel.post_thread(CHANNEL, posted, "Alice claimed #7 <!here>", locale="en")
    note = fake.thread(CHANNEL, posted.ref)[0]
    assert "<!here>" not in note["text"] and "&lt;!here&gt;" in note["text"]
    await channel.send_direct("UMAX", card(), "Escalation", locale="en")
    assert fake.calls_of("conversations.open")[0].args["users"] == "UMAX"
    assert fake.calls_of("chat.postMessage")[-1].args["channel"].startswith("D")
    # the escalation DM of an unclaimed item (Claim + the team's members to reassign to):
    # accepted by Slack's block validation (one Reassign, no repeated action id)
    view = InquiryView(
        number=8,
        version=1,
        team="sales",
        status="new",
        priority="normal",
        subject="MOQ",
        snippet="",
        source="website",
        contact_name="Li",
        contact_email="li@b.example",
        company="",
        country="CN",
        language="en",
        received_at=NOW,
    )
    escalation = build_escalation_card(
        view, now=NOW, locale="en", headline="Escalated to you", members=(Option("Bob", "bob"),)
    )
    await channel.send_direct("UMAX", escalation, "Escalation", locale="en")
    blocks = fake.calls_of("chat.postMessage")[-1].args["blocks"]
    assert "cd1:reassign:8" in str(blocks) and "users_select" not in str(blocks)


async def test_errors_are_translated_for_the_worker(fake: FakeSlack, channel: SlackChannel) -> None:
    fake.fail("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(DeliveryError) as limited:
        await channel.post_card(CHANNEL, card(), locale="en")
    assert (limited.value.retry_after, limited.value.permanent) == (7.0, False)

    fake.fail("chat.postMessage", status=500)
    with pytest.raises(DeliveryError) as server_error:
        await channel.post_card(CHANNEL, card(), locale="en")
    assert (server_error.value.retry_after, server_error.value.permanent) == (None, False)

    for dest, code in (("CNOTIN", "not_in_channel"), ("CGONE", "channel_not_found")):
        with pytest.raises(DeliveryError) as gone:
            await channel.post_card(dest, card(), locale="en")
        assert gone.value.permanent and code in str(gone.value)
    with pytest.raises(DeliveryError) as missing:
        await channel.update_card(
            CHANNEL, PostedCard("1.000", {"channel": CHANNEL}), card(), locale="en"
        )
    assert missing.value.permanent

    fake.delays["chat.update"] = 3.0  # slower than the client's 1 s timeout
    posted = await channel.post_card(CHANNEL, card(), locale="en")
    with pytest.raises(DeliveryError) as slow:
        await channel.update_card(CHANNEL, posted, card(status="claimed"), locale="en")
    assert not slow.value.permanent and slow.value.retry_after is None

    bad = SlackChannel(bot_token="xoxb-wrong", api_base_url=fake.base_url)
    try:
        with pytest.raises(DeliveryError) as auth:
            await bad.post_card(CHANNEL, card(), locale="en")
        assert auth.value.permanent and "invalid_auth" in str(auth.value)
    finally:
        await bad.close()


async def test_lookup_and_membership(fake: FakeSlack, channel: SlackChannel) -> None:
    assert await channel.lookup_by_email("MAX@seller.test") == "UMAX"
    assert await channel.lookup_by_email("nobody@seller.test") is None
    assert await channel.is_member(CHANNEL) is True
    assert await channel.is_member("CNOTIN") is False
    me = await channel.auth_test()
    assert me.user_id and me.team_id == "T0FAKE"


async def test_check_verifies_token_and_channel_membership(
    fake: FakeSlack,
) -> None:
    data = slack_config(base_config(), fake.base_url, channel="CNOTIN")
    settings = settings_from_mapping(data, source="t.toml", env={})
    problems = await slack_problems(settings)
    assert len(problems) == 1 and "not in channel CNOTIN" in problems[0]
    data["slack"]["bot_token"] = "xoxb-revoked"
    problems = await slack_problems(settings_from_mapping(data, source="t.toml", env={}))
    assert (
        len(problems) == 1 and "auth.test failed" in problems[0] and "invalid_auth" in problems[0]
    )
    ok = slack_config(base_config(), fake.base_url)
    assert await slack_problems(settings_from_mapping(ok, source="t.toml", env={})) == []
