"""WeCom callbacks: the documented event table, real ``WeChatCrypto`` encryption, the
``/wecom/callback`` routes (echostr, bad signatures refused, retries applied once, the
click's response_code handed to the channel, the reply link sent to the clicker)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from wechatpy.work.crypto import WeChatCrypto

from cards.actions import Action, ActionOutcome, BadActionId
from connectors.platform import ReplyDraftView
from connectors.wecom.callback import (
    BadCallback,
    decrypt,
    parse_event,
    to_action,
    verify_url,
)
from connectors.wecom.platform import WeComPlatform
from tests.fakes.wecom_api import FakeWeCom
from tests.support.wecom import (
    AES_KEY,
    CORP,
    TOKEN,
    click_xml,
    echostr_query,
    encrypted_post,
    wecom_settings,
)

CASES = json.loads((Path(__file__).parent / "fixtures" / "wecom" / "events.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_event_table(case: dict[str, Any]) -> None:
    event = parse_event(case["xml"])
    if case["event"] is None:
        assert event is None
        return
    assert event is not None
    for key, expected in case["event"].items():
        got = getattr(event, key)
        if key == "selected":
            got = {k: list(v) for k, v in got.items()}
        assert got == expected, key
    if case["action"] is None:
        with pytest.raises(BadActionId):
            to_action(event)
        return
    action = to_action(event)
    assert action.platform == "wecom"
    assert action.extra["response_code"] == case["event"]["response_code"]
    assert action.extra["task_id"] == case["event"]["task_id"]
    for key, expected in case["action"].items():
        value = getattr(action, key)
        assert (value.value if key == "verb" else value) == expected, key


def test_real_crypto_round_trip_and_refusals() -> None:
    crypto = WeChatCrypto(TOKEN, AES_KEY, CORP)
    xml = click_xml("wangli", "cd1:claim:1042", "t1", "RC")
    body, q = encrypted_post(xml)
    assert decrypt(crypto, TOKEN, body.encode(), **q) == xml
    with pytest.raises(BadCallback):
        decrypt(crypto, TOKEN, body.encode(), **{**q, "msg_signature": "0" * 40})
    with pytest.raises(BadCallback):
        decrypt(crypto, TOKEN, body.encode(), **{**q, "nonce": "other"})
    other_corp = WeChatCrypto(TOKEN, AES_KEY, "ww-someone-else")
    with pytest.raises(BadCallback):  # signature fine, but encrypted for another corp
        decrypt(other_corp, TOKEN, body.encode(), **q)
    with pytest.raises(BadCallback):
        decrypt(crypto, TOKEN, b"<not xml", **q)
    assert verify_url(crypto, TOKEN, **echostr_query("echo-123")) == "echo-123"


@dataclass
class RecordingInteractions:
    """The application side, written for the test: first claim wins, records every act."""

    acts: list[Action] = field(default_factory=list)
    seen: dict[str, ActionOutcome] = field(default_factory=dict)
    owner: dict[int, str] = field(default_factory=dict)
    delay: float = 0.0

    async def act(self, action: Action) -> ActionOutcome:
        if action.request_id in self.seen:
            return self.seen[action.request_id]
        if self.delay:
            await asyncio.sleep(self.delay)
        self.acts.append(action)
        if action.verb.value == "claim":
            winner = self.owner.setdefault(action.inquiry_id, action.user)
            outcome = (
                ActionOutcome(True, "claimed", action.inquiry_id)
                if winner == action.user
                else ActionOutcome(False, f"{winner} 已认领", action.inquiry_id, code="lost_race")
            )
        else:
            outcome = ActionOutcome(True, "", action.inquiry_id)
        self.seen[action.request_id] = outcome
        return outcome

    async def rep_for(self, platform: str, user: str) -> str | None:
        return {"wangli": "li", "zhangwei": "wei"}.get(user)

    async def reply_link(self, inquiry_id: int, rep_id: str) -> str:
        return f"http://claimdesk.test/reply/{inquiry_id}?as={rep_id}&sig=abc"

    async def draft_reply(
        self, inquiry_id: int, rep_id: str, template: str = ""
    ) -> ReplyDraftView | ActionOutcome:
        return ActionOutcome(False, "unused", inquiry_id)

    async def send_reply(
        self, inquiry_id: int, rep_id: str, *, subject: str, body: str, template: str = ""
    ) -> ActionOutcome:
        return ActionOutcome(False, "unused", inquiry_id)


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeCom]:
    server = FakeWeCom()
    await server.start()
    yield server
    await server.stop()


@dataclass
class Harness:
    client: TestClient[Any, Any]
    platform: WeComPlatform
    interactions: RecordingInteractions


@pytest.fixture
async def harness(fake: FakeWeCom) -> AsyncIterator[Harness]:
    platform = WeComPlatform(wecom_settings(fake.base_url))
    interactions = RecordingInteractions()
    app = web.Application()
    app.add_routes(platform.routes(interactions))
    await platform.start(interactions)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    yield Harness(client, platform, interactions)
    await client.close()
    await platform.stop()


async def post_click(h: Harness, xml: str) -> tuple[int, str]:
    body, q = encrypted_post(xml)
    response = await h.client.post("/wecom/callback", params=q, data=body.encode())
    return response.status, await response.text()


async def wait_until(condition: Any, what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_echostr_verification(harness: Harness) -> None:
    response = await harness.client.get("/wecom/callback", params=echostr_query("8843292837"))
    assert response.status == 200
    assert await response.text() == "8843292837"
    bad = {**echostr_query("x"), "msg_signature": "f" * 40}
    response = await harness.client.get("/wecom/callback", params=bad)
    assert response.status == 401


async def test_bad_signature_is_refused_and_changes_nothing(harness: Harness) -> None:
    body, q = encrypted_post(click_xml("wangli", "cd1:claim:1042", "t1", "RC-x"))
    for params in (
        {**q, "msg_signature": "0" * 40},
        {k: v for k, v in q.items() if k != "msg_signature"},
        {**q, "timestamp": "1"},
    ):
        response = await harness.client.post("/wecom/callback", params=params, data=body.encode())
        assert response.status == 401
    response = await harness.client.post("/wecom/callback", params=q, data=b"garbage")
    assert response.status == 401
    assert harness.interactions.acts == []
    assert harness.platform.channel._usable_codes({}, "t1") == []


async def test_click_reaches_the_application_and_retries_apply_once(harness: Harness) -> None:
    xml = click_xml("wangli", "cd1:claim:1042", "task-1", "RC-1")
    for _ in range(4):  # the first delivery and WeCom's three retries
        status, text = await post_click(harness, xml)
        assert (status, text) == (200, "")
    acts = harness.interactions.acts
    assert len(acts) == 1
    assert acts[0].user == "wangli" and acts[0].verb.value == "claim" and acts[0].inquiry_id == 1042
    assert acts[0].extra["response_code"] == "RC-1"
    # The click's fresh code is ready for the card update the click causes.
    assert [c for c, _ in harness.platform.channel._usable_codes({}, "task-1")] == ["RC-1"]


async def test_late_clicker_is_told_who_won(harness: Harness, fake: FakeWeCom) -> None:
    await post_click(harness, click_xml("wangli", "cd1:claim:1042", "task-1", "RC-1"))
    await post_click(harness, click_xml("zhangwei", "cd1:claim:1042", "task-1", "RC-2"))
    await wait_until(lambda: fake.direct.get("zhangwei"), "the late clicker's message")
    told = fake.direct["zhangwei"][0]
    assert told["msgtype"] == "markdown" and "wangli" in told["markdown"]["content"]
    assert "wangli" not in fake.direct  # the winner is not bothered


async def test_reply_click_sends_the_signed_link_to_the_clicker(
    harness: Harness, fake: FakeWeCom
) -> None:
    await post_click(harness, click_xml("wangli", "cd1:reply:1042", "task-1", "RC-9"))
    await wait_until(lambda: fake.direct.get("wangli"), "the reply link")
    content = fake.direct["wangli"][0]["markdown"]["content"]
    assert "(http://claimdesk.test/reply/1042?as=li&sig=abc)" in content


async def test_status_choice_travels_in_selected_items(harness: Harness) -> None:
    selected = (
        "<SelectedItems><SelectedItem><QuestionKey><![CDATA[cd1:status:1042]]></QuestionKey>"
        "<OptionIds><OptionId><![CDATA[won]]></OptionId></OptionIds></SelectedItem></SelectedItems>"
    )
    await post_click(
        harness, click_xml("wangli", "cd1:status:1042", "task-1", "RC-3", selected=selected)
    )
    assert harness.interactions.acts[-1].value == "won"


async def test_slow_application_still_answers_in_budget_and_applies_once(
    harness: Harness, fake: FakeWeCom
) -> None:
    handler = harness.platform._handler
    assert handler is not None
    handler._budget = 0.05
    harness.interactions.delay = 0.3
    xml = click_xml("wangli", "cd1:claim:77", "task-7", "RC-7")
    status, _ = await post_click(harness, xml)  # answered before the act finished
    assert status == 200
    await wait_until(lambda: harness.interactions.acts, "the act to finish")
    await post_click(harness, xml)  # WeCom's retry
    await handler.drain()
    assert len(harness.interactions.acts) == 1


async def test_other_events_and_foreign_keys_are_acknowledged_quietly(harness: Harness) -> None:
    text_msg = (
        "<xml><ToUserName><![CDATA[ww-test-corp]]></ToUserName><FromUserName><![CDATA[wangli]]>"
        "</FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[hi]]></Content><MsgId>1</MsgId><AgentID>1</AgentID></xml>"
    )
    assert await post_click(harness, text_msg) == (200, "")
    assert await post_click(harness, click_xml("wangli", "key111", "t", "RC")) == (200, "")
    assert harness.interactions.acts == []
    garbled = click_xml("wangli", "cd1:claim:1042", "t", "RC").replace("</xml>", "")
    status, _ = await post_click(harness, garbled)
    assert status == 400


@pytest.mark.parametrize("chosen", ["lost|price", "won|?", "waiting"])
async def test_a_listed_lost_reason_travels_with_the_status(harness: Harness, chosen: str) -> None:
    selected = (
        "<SelectedItems><SelectedItem><QuestionKey><![CDATA[cd1:status:1042]]></QuestionKey>"
        f"<OptionIds><OptionId><![CDATA[{chosen}]]></OptionId></OptionIds>"
        "</SelectedItem></SelectedItems>"
    )
    await post_click(
        harness, click_xml("wangli", "cd1:status:1042", "task-1", f"RC-{chosen}", selected=selected)
    )
    assert harness.interactions.acts[-1].value == chosen  # split by the application
