"""Follow-ups reach the owner in the customer's working hours; snoozed items come back when the
snooze ends, with a fresh claim window."""

from __future__ import annotations

from typing import Any

from bot.runtime.clock import set_follow_up
from bot.usecases.card_actions import perform
from cards.actions import Action, Verb
from tests.conftest import MovableClock
from tests.support.clock import (
    CHANNEL,
    Walk,
    berlin,
    clock_config,
    new_inquiry,
    recording_channel,
    summary,
)


async def test_follow_up_in_the_customers_working_hours(
    sqlite_url: str, make_settings: Any, service_factory: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))
    channel = recording_channel()
    service = await service_factory(
        make_settings(sqlite_url, **clock_config()), channels={"slack": channel}, clock=clock
    )
    service.scheduler.settings.digests = False
    walk = Walk(service, clock, channel)
    number = await new_inquiry(service, "fu-1", country="US")  # New York: 6 hours behind Berlin
    assert (await perform(service.ctx, Action(number, Verb.CLAIM, "web", "alice"))).ok
    assert (
        await perform(service.ctx, Action(number, Verb.STATUS, "web", "alice", value="waiting"))
    ).ok
    await set_follow_up(service.ctx, number, "alice", berlin(2026, 11, 24, 11, 0))
    await walk.settle()
    calls = await walk.until(berlin(2026, 11, 24, 17, 0))
    assert summary(calls) == [("Tue 15:00", "send_direct", "UALICE")]  # 09:00 in New York
    assert f"Follow up on #{number}" in calls[0][1].text


async def test_snoozed_item_wakes_with_a_fresh_window(
    sqlite_url: str, make_settings: Any, service_factory: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))
    channel = recording_channel()
    service = await service_factory(
        make_settings(sqlite_url, **clock_config()), channels={"slack": channel}, clock=clock
    )
    service.scheduler.settings.digests = False
    walk = Walk(service, clock, channel)
    number = await new_inquiry(service, "sn-1")
    clock.now = berlin(2026, 11, 24, 10, 5)
    assert (await perform(service.ctx, Action(number, Verb.SNOOZE, "web", "alice", value="1h"))).ok
    await walk.settle()
    calls = await walk.until(berlin(2026, 11, 24, 11, 30))
    texts = [(at, c) for at, c in calls if c.method == "post_thread"]
    assert summary(texts) == [
        ("Tue 11:05", "post_thread", CHANNEL),
        ("Tue 11:05", "post_thread", CHANNEL),
        ("Tue 11:20", "post_thread", CHANNEL),
    ]
    assert "back from snooze" in texts[0][1].text and "<@UALICE>" in texts[0][1].text
    assert "waiting to be claimed" in texts[2][1].text
