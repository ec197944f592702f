"""The WeCom story end to end at the connector boundary: a card reaches the group and every
rep; two reps press Claim at once through ``/wecom/callback`` (real encryption); the first
wins, every rep's card then reads "已认领: 王丽" (updated with a click's fresh response_code),
the group gets one line, and the late clicker is told who won.

The application side is the recording ``Interactions`` of the callback tests (first claim
wins); the outbox step that follows a state change is the channel's ``update_card``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.wecom.platform import WeComPlatform
from tests.fakes.wecom_api import FakeWeCom
from tests.support.wecom import CHAT, click_xml, encrypted_post, inquiry_card, wecom_settings
from tests.test_wecom_callback import RecordingInteractions, wait_until


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeCom]:
    server = FakeWeCom()
    await server.start()
    yield server
    await server.stop()


async def test_claim_race_updates_every_rep_and_tells_the_group_once(fake: FakeWeCom) -> None:
    platform = WeComPlatform(wecom_settings(fake.base_url))
    interactions = RecordingInteractions()
    app = web.Application()
    app.add_routes(platform.routes(interactions))
    await platform.start(interactions)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    try:
        channel = platform.channel
        posted = await channel.post_card(
            CHAT, inquiry_card(), locale="zh-CN", idempotency_key="inq-1042"
        )
        task = posted.ref
        # Both reps press Claim on their own copy at the same moment.
        clicks = [
            encrypted_post(click_xml(user, "cd1:claim:1042", task, fake.click(task), create_time=t))
            for user, t in (("wangli", 1764400000), ("zhangwei", 1764400001))
        ]
        answers = await asyncio.gather(
            *(client.post("/wecom/callback", params=q, data=body.encode()) for body, q in clicks)
        )
        assert [a.status for a in answers] == [200, 200]
        winner = interactions.owner[1042]
        loser = "zhangwei" if winner == "wangli" else "wangli"
        assert winner == "wangli" or winner == "zhangwei"
        # What the outbox does after the winning claim commits.
        name = {"wangli": "王丽", "zhangwei": "张伟"}[winner]
        new_card = inquiry_card(status="claimed", owner=name, version=2)
        updated = await channel.update_card(CHAT, posted, new_card, locale="zh-CN")
        assert updated is not None
        (update,) = fake.called("message/update_template_card")
        assert update.body["atall"] == 1
        assert update.body["response_code"] != posted.data["codes"][0][0]  # a click's code
        card = fake.tasks[task].card
        assert any(i["value"] == name for i in card["horizontal_content_list"])
        assert "认领" not in [b["text"] for b in card["button_list"]]
        lines = [line for line in fake.groups[CHAT] if f"已认领: {name}" in line]
        assert len(lines) == 1
        await wait_until(lambda: fake.direct.get(loser), "the late clicker's answer")
        assert winner in fake.direct[loser][-1]["markdown"]["content"]
        assert len(interactions.acts) == 2
    finally:
        await client.close()
        await platform.stop()
