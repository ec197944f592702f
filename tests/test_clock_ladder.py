"""The whole ladder of one inquiry across business hours, a weekend and a holiday, on SQLite and
PostgreSQL: every message's time and recipient, the timeline, and what the card shows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.usecases.card_actions import perform
from cards.actions import Action, Verb
from cards.model import Button, Select
from store import inquiries as repo
from tests.conftest import MovableClock
from tests.support.clock import (
    BERLIN,
    CHANNEL,
    Walk,
    berlin,
    clock_config,
    new_inquiry,
    recording_channel,
    summary,
)


async def test_unclaimed_then_unanswered_ladder(
    db_url: str, make_settings: Any, service_factory: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 27, 17, 20))  # a Friday, 40 minutes before closing
    channel = recording_channel()
    service = await service_factory(
        make_settings(db_url, **clock_config()), channels={"slack": channel}, clock=clock
    )
    assert service.scheduler is not None
    service.scheduler.settings.digests = False  # digests have their own tests
    walk = Walk(service, clock, channel)
    number = await new_inquiry(service, "ladder-1")
    assert summary(await walk.settle()) == [("Fri 17:20", "post_card", CHANNEL)]

    # Friday: claim due 17:35; nudges every 15 min; the lead after 20 min
    friday = await walk.until(berlin(2026, 11, 27, 23, 0))
    assert summary(friday) == [
        ("Fri 17:35", "post_thread", CHANNEL),
        ("Fri 17:50", "post_thread", CHANNEL),
        ("Fri 17:55", "post_thread", CHANNEL),  # "Escalated to Lena Lead" under the card
        ("Fri 17:55", "send_direct", "ULENA"),
    ]
    said = [c for _, c in friday if c.method != "update_card"]
    first_nudge = said[0].text
    assert f"#{number}" in first_nudge
    assert "<@UALICE>" in first_nudge and "<@UBOB>" in first_nudge
    assert "UCAROL" not in first_nudge  # away: not mentioned
    lena = next(c for c in said if c.destination == "ULENA")
    assert f"#{number}" in lena.text and "has not been claimed" in lena.text
    assert lena.card is not None
    controls = {c.action_id: c for c in lena.card.actions}
    assert isinstance(controls[f"cd1:claim:{number}"], Button)
    reassign = controls[f"cd1:reassign:{number}"]
    assert isinstance(reassign, Select)
    assert [o.value for o in reassign.options] == ["alice", "bob"]
    assert "Escalated to Lena Lead" in [c for c in said if c.method == "post_thread"][-1].text
    assert any(c.method == "update_card" for _, c in walk.log)  # the card shows the escalation

    # the weekend and Monday's holiday: nothing at all, not at 3 a.m. either
    quiet = await walk.until(berlin(2026, 12, 1, 9, 0), step=timedelta(minutes=15))
    assert quiet == []

    # Tuesday: the third nudge and the manager, 20 min of business time after the lead
    tuesday = await walk.until(berlin(2026, 12, 1, 10, 0))
    assert summary(tuesday) == [
        ("Tue 09:05", "post_thread", CHANNEL),
        ("Tue 09:15", "post_thread", CHANNEL),
        ("Tue 09:15", "send_direct", "UMAX"),
    ]
    assert (
        "Escalated to Max Manager" in [c for _, c in tuesday if c.method == "post_thread"][-1].text
    )
    assert not any("(late" in c.text for _, c in tuesday), [
        c.text for _, c in tuesday
    ]  # on time: the business clock stood still

    # alice claims at 10:00: the owner is reminded at 12:00, the lead at 12:20, then back to the pool
    outcome = await perform(service.ctx, Action(number, Verb.CLAIM, "web", "alice"))
    assert outcome.ok
    await walk.settle()
    unanswered = await walk.until(berlin(2026, 12, 1, 12, 55))
    assert summary(unanswered) == [
        ("Tue 12:00", "send_direct", "UALICE"),
        ("Tue 12:20", "post_thread", CHANNEL),
        ("Tue 12:20", "send_direct", "ULENA"),
        ("Tue 12:40", "post_thread", CHANNEL),  # back in the pool
        ("Tue 12:55", "post_thread", CHANNEL),  # a fresh claim ladder: first nudge
    ]
    said = [c for _, c in unanswered if c.method != "update_card"]
    dms = [c for c in said if c.method == "send_direct"]
    notes = [c for c in said if c.method == "post_thread"]
    assert "waiting for your first reply" in dms[0].text
    assert "(owner Alice)" in dms[1].text
    assert "back in the pool" in notes[1].text

    async with service.ctx.sessions() as session:
        inquiry = await repo.get_inquiry(session, number)
        events = await repo.timeline(session, number)
    assert inquiry.status == "new" and inquiry.assignee is None
    kinds = [e.kind for e in events]
    assert kinds == [
        "received",
        "nudged",
        "nudged",
        "escalated",
        "nudged",
        "escalated",
        "claimed",
        "reminded",
        "escalated",
        "returned_to_pool",
        "nudged",
    ]
    escalations = [e for e in events if e.kind == "escalated"]
    assert [e.data["to"] for e in escalations] == [["lena"], ["max"], ["lena"]]
    assert [e.data["phase"] for e in escalations] == ["claim", "claim", "reply"]
    system = [e for e in events if e.actor == "system"]
    assert len(system) == 9 and all(e.data["late"] is False for e in system)
    times = [e.at.astimezone(BERLIN).strftime("%a %H:%M") for e in system]
    assert times == [
        "Fri 17:35",
        "Fri 17:50",
        "Fri 17:55",
        "Tue 09:05",
        "Tue 09:15",
        "Tue 12:00",
        "Tue 12:20",
        "Tue 12:40",
        "Tue 12:55",
    ]
