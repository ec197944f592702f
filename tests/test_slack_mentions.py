"""The clock's nudges mention the reps on duty for real in Slack (``<@U…>`` kept live), while
customer text in the same note stays escaped (no ``<!channel>``, no ping of someone not listed)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from connectors.channels import Pacing
from connectors.slack.channel import SlackChannel
from connectors.slack.render import render_note
from tests.conftest import MovableClock
from tests.fakes.slack_api import FakeSlack
from tests.support.clock import berlin, clock_config, new_inquiry
from tests.support.slack import CHANNEL

EVIL = "<!channel> <@UMAX> <http://x|win> @here"


def test_render_note_keeps_only_listed_mentions_live() -> None:
    note = render_note(f"#7 “{EVIL}” waits. <@UALICE> <@UBOB>", ("UALICE", "UBOB", "<!here>"))
    assert "<@UALICE>" in note and "<@UBOB>" in note
    assert "<!channel>" not in note and "&lt;!channel&gt;" in note
    assert "<@UMAX>" not in note and "&lt;@UMAX&gt;" in note  # typed by the customer, not listed
    assert "<http" not in note and "@here" not in note
    assert render_note("<@UALICE>") == "&lt;@UALICE&gt;"  # nothing listed: nothing live


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = FakeSlack(channels={CHANNEL: {"is_member": True, "name": "sales"}})
    await server.start()
    yield server
    await server.stop()


async def test_nudge_thread_note_mentions_on_duty_reps(
    sqlite_url: str, make_settings: Any, service_factory: Any, fake: FakeSlack
) -> None:
    config = clock_config()
    teams = copy.deepcopy(config["teams"])
    teams[0]["destinations"] = {"slack_channel": CHANNEL}
    config["teams"] = teams
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))  # Tuesday, in hours
    channel = SlackChannel(
        bot_token=fake.token,
        api_base_url=fake.base_url,
        pacing=Pacing(post_interval=0.0),
        timeout=2.0,
    )
    try:
        service = await service_factory(
            make_settings(sqlite_url, **config), channels={"slack": channel}, clock=clock
        )
        assert service.scheduler is not None
        service.scheduler.settings.digests = False
        number = await new_inquiry(service, "mention-1", subject=EVIL)
        await service.worker.drain()
        card = next(m for m in fake.messages(CHANNEL) if f"#{number}" in m["text"])
        clock.now += timedelta(minutes=16)  # past the 15-minute claim deadline
        report = await service.scheduler.tick()
        assert report.kinds.get("nudge") == 1
        await service.worker.drain()
    finally:
        await channel.close()
    notes = [m["text"] for m in fake.thread(CHANNEL, card["ts"])]
    nudge = next(n for n in notes if "waiting to be claimed" in n)
    assert "<@UALICE>" in nudge and "<@UBOB>" in nudge  # live mentions of the reps on duty
    assert "UCAROL" not in nudge  # away (config): not mentioned
    assert "<!channel>" not in nudge and "&lt;!channel&gt;" in nudge
    assert "<@UMAX>" not in nudge and "&lt;@UMAX&gt;" in nudge
    assert "<http" not in nudge
