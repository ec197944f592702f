"""WeComChannel against the fake qyapi: group post + rep cards, response_code rotation, a
fresh card when no code is left, idempotent retries, per-member limits, token expiry,
errcode translation, robots, DMs, digests, and ``claimdesk check``'s WeCom part."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from cards.escalation_card import build_escalation_card
from cards.model import Card, CardField, Option
from connectors.channels import DeliveryError, PostedCard
from connectors.registry import BUILTIN, build_platforms
from connectors.wecom.api import RecipientLimiter, WeComApi
from connectors.wecom.channel import WeComChannel
from connectors.wecom.platform import WeComPlatform, build_platform, recipients_by_chat
from tests.fakes.wecom_api import FakeWeCom
from tests.support.wecom import CHAT, NOW, inquiry_card, inquiry_view, wecom_settings

REPS = ["wangli", "zhangwei", "lijingli"]


@dataclass
class Clock:
    """A settable clock (wall time for code ages, monotonic for the limiter)."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeCom]:
    server = FakeWeCom()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def channel(fake: FakeWeCom, clock: Clock) -> AsyncIterator[WeComChannel]:
    settings = wecom_settings(fake.base_url)
    api = WeComApi(corp_id=fake.corp_id, secret=fake.secret, base_url=fake.base_url, timeout=2.0)
    await api.start()
    chat = WeComChannel(
        api,
        agent_id=fake.agent_id,
        recipients=recipients_by_chat(settings),
        limiter=RecipientLimiter(clock=clock),
        wall_clock=clock,
    )
    yield chat
    await api.stop()


def claimed(version: int = 2) -> Card:
    return inquiry_card(status="claimed", owner="王丽", version=version)


def owner_of(card: dict[str, object]) -> str:
    items = card["horizontal_content_list"]
    assert isinstance(items, list)
    return next(str(i["value"]) for i in items if i["keyname"] == "负责人")


async def test_new_card_goes_to_group_and_every_rep(fake: FakeWeCom, channel: WeComChannel) -> None:
    posted = await channel.post_card(CHAT, inquiry_card(), locale="zh-CN", idempotency_key="k1")
    (send,) = fake.called("message/send")
    assert send.body["touser"] == "|".join(REPS)
    assert send.body["msgtype"] == "template_card"
    assert send.body["template_card"]["task_id"] == posted.ref
    assert len(fake.groups[CHAT]) == 1 and "#⁠1042" in fake.groups[CHAT][0]
    assert posted.data["task_id"] == posted.ref
    assert posted.data["users"] == REPS
    (code,) = posted.data["codes"]
    assert fake.codes[code[0]][0] == posted.ref  # the send's own code, unused
    assert await channel.find_posted(CHAT, "k1", since=datetime.now(UTC)) == posted
    assert await channel.find_posted(CHAT, "other", since=datetime.now(UTC)) is None
    again = await channel.post_card(CHAT, inquiry_card(), locale="zh-CN", idempotency_key="k1")
    assert again == posted
    assert len(fake.called("message/send")) == 1 and len(fake.groups[CHAT]) == 1


async def test_update_uses_the_click_code_and_tells_the_group_once(
    fake: FakeWeCom, channel: WeComChannel
) -> None:
    posted = await channel.post_card(CHAT, inquiry_card(), locale="zh-CN", idempotency_key="k1")
    send_code = posted.data["codes"][0][0]
    click_code = fake.click(posted.ref)
    channel.offer_code(posted.ref, click_code)
    updated = await channel.update_card(CHAT, posted, claimed(), locale="zh-CN")
    assert updated is not None and updated.ref == posted.ref
    (update,) = fake.called("message/update_template_card")
    assert update.body["response_code"] == click_code and update.body["atall"] == 1
    assert owner_of(fake.tasks[posted.ref].card) == "王丽"
    assert [c for c, _ in updated.data["codes"]] == [send_code]  # the unused one is kept
    assert len(fake.groups[CHAT]) == 2 and "已认领: 王丽" in fake.groups[CHAT][1]
    # The same state delivered again (an outbox retry) changes nothing anywhere.
    again = await channel.update_card(CHAT, updated, claimed(), locale="zh-CN")
    assert again is not None and len(fake.called("message/update_template_card")) == 1
    assert len(fake.groups[CHAT]) == 2
    # The next change spends the code that is left.
    won = inquiry_card(status="won", owner="王丽", version=3)
    later = await channel.update_card(CHAT, again, won, locale="zh-CN")
    assert later is not None and later.data["codes"] == []
    assert fake.called("message/update_template_card")[-1].body["response_code"] == send_code
    assert fake.tasks[posted.ref].updates == 2 and len(fake.groups[CHAT]) == 3


async def test_used_codes_lead_to_a_fresh_card_and_the_old_one_marked_stale(
    fake: FakeWeCom, channel: WeComChannel
) -> None:
    posted = await channel.post_card(CHAT, inquiry_card(), locale="zh-CN", idempotency_key="k1")
    fake.codes.clear()  # every code spent elsewhere: WeCom answers 60140
    updated = await channel.update_card(CHAT, posted, claimed(), locale="zh-CN")
    assert updated is not None
    assert fake.called("message/update_template_card")[0].body["response_code"]
    assert updated.ref != posted.ref and updated.data["stale"] == [posted.ref]
    assert fake.tasks[updated.ref].users == REPS
    assert owner_of(fake.tasks[updated.ref].card) == "王丽"
    assert len(updated.data["codes"]) == 1


async def test_expired_codes_are_not_even_tried(
    fake: FakeWeCom, channel: WeComChannel, clock: Clock
) -> None:
    posted = await channel.post_card(CHAT, inquiry_card(), locale="zh-CN", idempotency_key="k1")
    clock.now += 72 * 3600
    updated = await channel.update_card(CHAT, posted, claimed(), locale="zh-CN")
    assert fake.called("message/update_template_card") == []
    assert updated is not None and updated.data["stale"] == [posted.ref]


async def test_codes_expired_on_wecom_side_fall_back_to_a_fresh_card(
    fake: FakeWeCom, channel: WeComChannel
) -> None:
    posted = await channel.post_card(CHAT, inquiry_card(), locale="zh-CN", idempotency_key="k1")
    fake.age_codes(73 * 3600)
    updated = await channel.update_card(CHAT, posted, claimed(), locale="zh-CN")
    assert len(fake.called("message/update_template_card")) == 1  # answered 60140
    assert updated is not None and updated.ref in fake.tasks and updated.ref != posted.ref


async def test_token_expiry_refreshes_once_and_retries(
    fake: FakeWeCom, channel: WeComChannel
) -> None:
    await channel.post_card(CHAT, inquiry_card(), locale="zh-CN", idempotency_key="k1")
    fake.expire_tokens()
    await channel.post_card(CHAT, inquiry_card(7), locale="zh-CN", idempotency_key="k2")
    assert len(fake.called("gettoken")) == 2
    assert len(fake.tasks) == 2
    fake.fail("appchat/send", 40014)  # invalid token answered once more: refresh again
    await channel.post_thread(CHAT, PostedCard("x", {"chat": CHAT}), "note", locale="zh-CN")
    assert len(fake.called("gettoken")) == 3


async def test_rate_limit_pauses_and_a_retry_sends_nothing_twice(
    fake: FakeWeCom, channel: WeComChannel
) -> None:
    fake.fail("appchat/send", 45009)
    with pytest.raises(DeliveryError) as caught:
        await channel.post_card(CHAT, inquiry_card(), locale="zh-CN", idempotency_key="k1")
    assert caught.value.retry_after == 60.0 and not caught.value.permanent
    posted = await channel.post_card(CHAT, inquiry_card(), locale="zh-CN", idempotency_key="k1")
    assert len(fake.tasks) == 1 and len(fake.groups[CHAT]) == 1  # the reps' card went once
    assert posted.ref in fake.tasks


async def test_errcodes_that_retrying_cannot_fix_are_permanent(
    fake: FakeWeCom, channel: WeComChannel
) -> None:
    fake.fail("message/send", 60020)  # IP not trusted
    with pytest.raises(DeliveryError) as caught:
        await channel.post_card(CHAT, inquiry_card(), locale="zh-CN", idempotency_key="k1")
    assert caught.value.permanent
    fake.fail("message/send", -1)  # system busy: retry
    with pytest.raises(DeliveryError) as caught:
        await channel.post_card(CHAT, inquiry_card(), locale="zh-CN", idempotency_key="k1")
    assert not caught.value.permanent and caught.value.retry_after


async def test_per_member_limit_queues_instead_of_dropping(
    fake: FakeWeCom, channel: WeComChannel, clock: Clock
) -> None:
    for n in range(30):
        await channel.send_direct("wangli", None, f"reminder {n}", locale="zh-CN")
    with pytest.raises(DeliveryError) as caught:
        await channel.send_direct("wangli", None, "one too many", locale="zh-CN")
    assert caught.value.retry_after and 0 < caught.value.retry_after <= 60
    assert len(fake.direct["wangli"]) == 30  # nothing sent that WeCom would drop silently
    await channel.send_direct("zhangwei", None, "another member", locale="zh-CN")
    clock.now += caught.value.retry_after
    await channel.send_direct("wangli", None, "later", locale="zh-CN")
    assert len(fake.direct["wangli"]) == 31


async def test_hourly_member_limit() -> None:
    clock = Clock()
    limiter = RecipientLimiter(clock=clock)
    for _ in range(1000):
        assert limiter.wait_for(["u"]) == 0
        limiter.record(["u"])
        clock.now += 2.5  # well under 30/min
    assert limiter.wait_for(["u"]) > 0


async def test_group_robot_destination(fake: FakeWeCom, channel: WeComChannel) -> None:
    dest = "robot:abc-key"
    posted = PostedCard("x", {"chat": dest})
    for n in range(20):
        await channel.post_thread(dest, posted, f"line {n}", locale="zh-CN")
    with pytest.raises(DeliveryError) as caught:
        await channel.post_thread(dest, posted, "21st", locale="zh-CN")
    assert caught.value.retry_after and not caught.value.permanent
    assert len(fake.groups[dest]) == 20
    assert channel.pacing.post_interval >= 3.0  # 20/min per destination


async def test_escalation_direct_card_and_digest(fake: FakeWeCom, channel: WeComChannel) -> None:
    card = build_escalation_card(
        inquiry_view(),
        now=NOW,
        locale="zh-CN",
        headline="#1042 30 分钟无人认领",
        members=(Option("张伟", "wei"), Option("王丽", "li")),
    )
    await channel.send_direct("lijingli", card, "", locale="zh-CN")
    sent = fake.direct["lijingli"][0]
    tc = sent["template_card"]
    assert sent["touser"] == "lijingli" and tc["card_type"] == "button_interaction"
    keys = [b.get("key") for b in tc["button_list"]]
    assert "cd1:claim:1042" in keys and "cd1:reassign:1042" in keys
    assert [o["id"] for o in tc["button_selection"]["option_list"]] == ["wei", "li"]
    digest = Card(
        key="digest:sales:2026-11-23",
        version=1,
        title="日报 sales",
        badge=inquiry_card().badge,
        fields=(CardField("新询盘", "3"),),
    )
    before = len(fake.tasks)
    await channel.post_card(CHAT, digest, locale="zh-CN", idempotency_key="d1")
    assert len(fake.tasks) == before  # no rep card for a digest
    assert "日报 sales" in fake.groups[CHAT][-1]


async def test_platform_build_check_and_registry(fake: FakeWeCom) -> None:
    settings = wecom_settings(fake.base_url)
    assert BUILTIN["wecom"] == "connectors.wecom.platform"
    platform = build_platform(settings)
    assert isinstance(platform, WeComPlatform)
    assert "wecom" in build_platforms(settings)
    assert build_platform(wecom_settings(fake.base_url, corp_id="")) is None
    assert platform.user_id(settings.reps[-1]) == "" and platform.mention("wangli") == "<@wangli>"
    assert await platform.problems() == []
    await platform.stop()
    wrong = WeComPlatform(wecom_settings(fake.base_url, secret="nope"))
    (line,) = await wrong.problems()
    assert "[wecom] corp_id / secret" in line and "40001" in line
    await wrong.stop()
    no_agent = WeComPlatform(wecom_settings(fake.base_url, agent_id=42))
    (line,) = await no_agent.problems()
    assert "[wecom] agent_id 42" in line
    await no_agent.stop()
