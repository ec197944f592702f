"""DingTalkChannel against the fake DingTalk OpenAPI (127.0.0.1, ephemeral port)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from cards.inquiry_card import InquiryView, build_inquiry_card
from cards.model import Card
from connectors.channels import DeliveryError
from connectors.dingtalk.channel import DingTalkChannel
from connectors.dingtalk.escaping import pings_anyone
from connectors.dingtalk.openapi import DingTalkOpenApi
from tests.fakes.dingtalk_api import CLIENT_ID, CLIENT_SECRET, FakeDingTalk

NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
GROUP = "cid5o+bbZdK/80y1V5ESE5Trw=="


def card(status: str = "new", owner: str = "") -> Card:
    view = InquiryView(
        number=1042,
        version=1,
        team="sales",
        status=status,
        priority="normal",
        subject="40HQ @所有人",
        snippet="price?",
        source="website",
        contact_name="Ana",
        contact_email="ana@buyer.test",
        company="",
        country="BR",
        language="pt",
        received_at=NOW - timedelta(minutes=1),
        owner_name=owner,
    )
    return build_inquiry_card(view, now=NOW, locale="zh-CN")


@pytest.fixture
async def fake() -> AsyncIterator[FakeDingTalk]:
    server = FakeDingTalk()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def channel(fake: FakeDingTalk) -> AsyncIterator[DingTalkChannel]:
    api = DingTalkOpenApi(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=fake.base_url)
    await api.start()
    yield DingTalkChannel(api, robot_code=CLIENT_ID, card_template_id="tpl.schema")
    await api.stop()


async def test_post_then_update_changes_everyones_copy(
    fake: FakeDingTalk, channel: DingTalkChannel
) -> None:
    posted = await channel.post_card(GROUP, card(), locale="zh-CN", idempotency_key="k1")
    instance = fake.cards[posted.ref]
    assert instance["conversation"] == GROUP
    body = instance["body"]
    assert body["callbackType"] == "STREAM"
    assert body["openSpaceId"] == "dtv1.card//IM_GROUP." + GROUP
    assert body["imGroupOpenDeliverModel"]["robotCode"] == CLIENT_ID
    assert not pings_anyone(instance["params"]["title"])
    await channel.update_card(GROUP, posted, card("claimed", "Alice"), locale="zh-CN")
    assert fake.cards[posted.ref]["params"]["show_claim"] == "false"
    assert "Alice" in fake.cards[posted.ref]["params"]["fields_md"]


async def test_repost_with_the_same_key_is_one_card(
    fake: FakeDingTalk, channel: DingTalkChannel
) -> None:
    first = await channel.post_card(GROUP, card(), locale="zh-CN", idempotency_key="k1")
    second = await channel.post_card(GROUP, card(), locale="zh-CN", idempotency_key="k1")
    assert first == second
    assert len(fake.deliveries) == 1
    other = await channel.post_card(GROUP, card(), locale="zh-CN", idempotency_key="k2")
    assert other.ref != first.ref and len(fake.deliveries) == 2
    assert (
        await channel.find_posted(GROUP, "k1", since=datetime.now(UTC)) is None
    )  # cannot confirm: caller re-posts


async def test_thread_note_is_a_group_message_with_live_mentions(
    fake: FakeDingTalk, channel: DingTalkChannel
) -> None:
    posted = await channel.post_card(GROUP, card(), locale="zh-CN", idempotency_key="k1")
    await channel.post_thread(
        GROUP, posted, "#1042 waiting @all", locale="zh-CN", mentions=("manager4220",)
    )
    [message] = fake.group_messages
    assert message["openConversationId"] == GROUP and message["msgKey"] == "sampleMarkdown"
    assert isinstance(message["msgParam"], str)
    assert message["param"]["atUserIds"] == ["manager4220"]
    assert message["param"]["text"].endswith("@manager4220")
    assert not pings_anyone(message["param"]["text"].removesuffix("@manager4220"))


async def test_direct_message_carries_the_card(
    fake: FakeDingTalk, channel: DingTalkChannel
) -> None:
    await channel.send_direct("lead01", card(), "Escalation #1042", locale="zh-CN")
    [message] = fake.direct_messages
    assert message["userIds"] == ["lead01"]
    assert "#1042" in message["param"]["text"]
    with pytest.raises(DeliveryError) as caught:
        await channel.send_direct("", None, "x", locale="zh-CN")
    assert caught.value.permanent


async def test_expired_token_is_refreshed_once_and_the_call_retried(
    fake: FakeDingTalk, channel: DingTalkChannel
) -> None:
    posted = await channel.post_card(GROUP, card(), locale="zh-CN", idempotency_key="k1")
    assert fake.tokens_issued == 1
    fake.expire_tokens()
    await channel.update_card(GROUP, posted, card("claimed", "Alice"), locale="zh-CN")
    assert fake.tokens_issued == 2
    assert [c[2] for c in fake.calls_to("/v1.0/card/instances")] == [401, 200]


async def test_refused_twice_is_permanent(fake: FakeDingTalk, channel: DingTalkChannel) -> None:
    await channel.post_card(GROUP, card(), locale="zh-CN", idempotency_key="k1")
    fake.fail("/v1.0/robot/groupMessages/send", 401, "InvalidAuthentication", times=2)
    with pytest.raises(DeliveryError) as caught:
        await channel.group_markdown(GROUP, "hi", locale="zh-CN")
    assert caught.value.permanent and CLIENT_SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (403, "Forbidden.AccessDenied.QpsLimitForApi"),
        (429, "Throttling"),
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
    ],
)
async def test_throttling_and_5xx_are_retryable_then_recover(
    fake: FakeDingTalk, channel: DingTalkChannel, status: int, code: str
) -> None:
    fake.fail("/v1.0/card/instances/createAndDeliver", status, code)
    with pytest.raises(DeliveryError) as caught:
        await channel.post_card(GROUP, card(), locale="zh-CN", idempotency_key="k1")
    assert not caught.value.permanent
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    posted = await channel.post_card(GROUP, card(), locale="zh-CN", idempotency_key="k1")
    assert posted.ref in fake.cards and len(fake.deliveries) == 1


async def test_bad_request_is_permanent_with_dingtalks_code(
    fake: FakeDingTalk, channel: DingTalkChannel
) -> None:
    bad = DingTalkChannel(channel.api, robot_code=CLIENT_ID, card_template_id="")
    with pytest.raises(DeliveryError) as caught:
        await bad.post_card(GROUP, card(), locale="zh-CN", idempotency_key="k1")
    assert caught.value.permanent and "param.cardTemplateIdEmpty" in str(caught.value)


async def test_group_without_the_robot_is_permanent(
    fake: FakeDingTalk, channel: DingTalkChannel
) -> None:
    fake.groups_without_robot.add(GROUP)
    with pytest.raises(DeliveryError) as caught:
        await channel.post_card(GROUP, card(), locale="zh-CN", idempotency_key="k1")
    assert caught.value.permanent and "robot" in str(caught.value)


async def test_wrong_secret_is_permanent_and_not_logged(fake: FakeDingTalk) -> None:
    api = DingTalkOpenApi(client_id=CLIENT_ID, client_secret="wrong-secret", base_url=fake.base_url)
    try:
        with pytest.raises(DeliveryError) as caught:
            await api.access_token()
        assert caught.value.permanent and "wrong-secret" not in str(caught.value)
    finally:
        await api.stop()


async def test_token_is_cached_and_renewed_before_expiry(fake: FakeDingTalk) -> None:
    now = [1000.0]
    api = DingTalkOpenApi(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        base_url=fake.base_url,
        clock=lambda: now[0],
    )
    try:
        first = await api.access_token()
        assert await api.access_token() == first
        now[0] += 7200 - 299  # inside the 5-minute margin
        assert await api.access_token() != first
        assert fake.tokens_issued == 2
    finally:
        await api.stop()
