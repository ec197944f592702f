"""Exactly once: two claimdesk services on one database tick at the same moments (on PostgreSQL
their transactions really interleave); every nudge, escalation and digest happens once. And a
restart after a long stop does each due step once, late."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from sqlmodel import col, func, select

from bot.app import Service
from store import inquiries as repo
from store.models import Event, JobRun
from tests.conftest import MovableClock
from tests.support.clock import (
    BERLIN,
    CHANNEL,
    berlin,
    clock_config,
    new_inquiry,
    recording_channel,
)


async def _events(service: Service, kind: str) -> list[Event]:
    async with service.ctx.sessions() as session:
        return list((await session.exec(select(Event).where(col(Event.kind) == kind))).all())


async def test_two_services_do_each_step_once(
    db_url: str, make_settings: Any, service_factory: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))  # a Tuesday morning
    settings = make_settings(db_url, **clock_config(return_to_pool=False))
    channels = [recording_channel(), recording_channel()]
    one = await service_factory(settings, channels={"slack": channels[0]}, clock=clock)
    two = await service_factory(settings, channels={"slack": channels[1]}, clock=clock)
    numbers = [await new_inquiry(one, f"race-{i}") for i in range(12)]
    await asyncio.gather(one.worker.drain(), two.worker.drain())

    for _ in range(16):  # 10:05 .. 11:20: the whole unclaimed ladder
        clock.advance(minutes=5)
        reports = await asyncio.gather(one.scheduler.tick(), two.scheduler.tick())
        if any(r.steps for r in reports):
            await asyncio.gather(one.worker.drain(), two.worker.drain())
    clock.now = berlin(2026, 11, 25, 9, 0)  # Wednesday: the digest, from both at once
    digests = await asyncio.gather(one.scheduler.tick(), two.scheduler.tick())
    await asyncio.gather(one.worker.drain(), two.worker.drain())

    calls = [c for ch in channels for c in ch.calls]
    # per inquiry: nudges at 10:15, 10:30, 10:45 (none from 10:55: the managers have been told)
    nudges = Counter(
        c.text.split()[0]
        for c in calls
        if c.method == "post_thread" and "waiting to be claimed" in c.text
    )
    assert nudges == {f"#{n}": 3 for n in numbers}
    dms = Counter((c.destination, c.text.split()[1]) for c in calls if c.method == "send_direct")
    assert dms == {
        **{("ULENA", f"#{n}"): 1 for n in numbers},
        **{("UMAX", f"#{n}"): 1 for n in numbers},
    }
    escalated = await _events(one, "escalated")
    assert Counter((e.inquiry_id, e.data["level"]) for e in escalated) == {
        (n, lvl): 1 for n in numbers for lvl in (1, 2)
    }
    assert Counter(e.inquiry_id for e in await _events(one, "nudged")) == {n: 3 for n in numbers}
    posts = [
        c
        for c in calls
        if c.method == "post_card" and c.card is not None and c.card.key.startswith("digest:")
    ]
    assert [p.card.key for p in posts if p.card] == ["digest:sales:2026-11-25"]
    assert sum(r.digests for r in digests) == 2  # sales and asia, each by one of the two
    async with one.ctx.sessions() as session:
        keys = (
            await session.exec(select(JobRun.key).where(col(JobRun.key).like("digest:%")))
        ).all()
    assert sorted(keys) == [
        "digest:asia:2026-11-24",  # first start, recorded as skipped
        "digest:asia:2026-11-25",
        "digest:sales:2026-11-24",  # first start, recorded as skipped
        "digest:sales:2026-11-25",
    ]
    # every card was posted once
    assert Counter(
        c.card.key
        for c in calls
        if c.method == "post_card" and c.card and not c.card.key.startswith("digest:")
    ) == {str(n): 1 for n in numbers}
    assert all(c.destination == CHANNEL for c in calls if c.method in ("post_card", "post_thread"))


async def test_restart_after_a_long_stop_does_each_due_step_once_late(
    sqlite_url: str, make_settings: Any, service_factory: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))
    settings = make_settings(sqlite_url, **clock_config(return_to_pool=False))
    first = await service_factory(settings, channels={"slack": recording_channel()}, clock=clock)
    number = await new_inquiry(first, "restart-1")
    await first.worker.drain()
    await first.close()  # the process stops before anything is due

    clock.now = berlin(2026, 11, 24, 15, 0)  # five hours later, a new process starts
    channel = recording_channel()
    second = await service_factory(settings, channels={"slack": channel}, clock=clock)
    report = await second.scheduler.tick()
    assert report.kinds == {"nudge": 1, "escalate": 2}  # nudges coalesce; each ladder step once
    assert report.late == 3
    again = await second.scheduler.tick()
    assert again.steps == 0
    await second.worker.drain()
    said = [c for c in channel.calls if c.method in ("post_thread", "send_direct")]
    nudges = [c for c in said if "waiting to be claimed" in c.text]
    assert (
        len(nudges) == 1
        and "(late: this was due 2026-11-24 10:45 CET (Europe/Berlin))" in nudges[0].text
    )
    dms = {c.destination: c.text for c in said if c.method == "send_direct"}
    assert set(dms) == {"ULENA", "UMAX"}
    assert "(late: this was due 2026-11-24 10:35 CET (Europe/Berlin))" in dms["ULENA"]
    assert "(late: this was due 2026-11-24 10:55 CET (Europe/Berlin))" in dms["UMAX"]
    events = [e for e in await _events(second, "escalated")] + await _events(second, "nudged")
    assert all(e.data["late"] for e in events) and len(events) == 3
    assert {e.at.astimezone(BERLIN).hour for e in events} == {15}

    clock.advance(hours=3)  # nothing more: the ladder is done until someone claims it
    assert (await second.scheduler.tick()).steps == 0
    async with second.ctx.sessions() as session:
        inquiry = await repo.get_inquiry(session, number)
        runs = (
            await session.exec(
                select(func.count())
                .select_from(JobRun)
                .where(col(JobRun.key).like(f"%:{number}:%"))
            )
        ).one()
    assert inquiry.escalation_level == 2
    assert runs == 3


async def test_away_rep_hands_over_to_backup_or_pool(
    sqlite_url: str, make_settings: Any, service_factory: Any
) -> None:
    from bot.usecases.card_actions import perform
    from cards.actions import Action, Verb

    clock = MovableClock(berlin(2026, 11, 24, 10, 0))
    config = clock_config()
    config["reps"] = [dict(r, away=False) if r["id"] == "carol" else r for r in config["reps"]]
    settings = make_settings(sqlite_url, **config)
    service = await service_factory(settings, channels={"slack": recording_channel()}, clock=clock)
    backup_case = await new_inquiry(service, "away-1")
    pool_case = await new_inquiry(service, "away-2")
    assert (await perform(service.ctx, Action(backup_case, Verb.CLAIM, "web", "carol"))).ok
    assert (await perform(service.ctx, Action(pool_case, Verb.CLAIM, "web", "alice"))).ok
    await service.close()

    # carol goes away (backup bob); alice goes away without a backup
    config["reps"] = [
        dict(r, away=True) if r["id"] in ("carol", "alice") else r for r in config["reps"]
    ]
    settings = make_settings(sqlite_url, **config)
    channel = recording_channel()
    service = await service_factory(settings, channels={"slack": channel}, clock=clock)
    clock.advance(minutes=1)
    report = await service.scheduler.tick()
    assert report.handovers == 2
    assert (await service.scheduler.tick()).handovers == 0
    async with service.ctx.sessions() as session:
        handed = await repo.get_inquiry(session, backup_case)
        pooled = await repo.get_inquiry(session, pool_case)
    assert (handed.status, handed.assignee) == ("claimed", "bob")
    assert (pooled.status, pooled.assignee) == ("new", None)
    await service.worker.drain()
    notes = [c.text for c in channel.calls if c.method == "post_thread"]
    assert f"#{backup_case} handed over from Carol (away) to Bob." in notes
    assert f"#{pool_case} is back in the pool: Alice is away." in notes
    # the pooled item's nudge mentions only who is on duty: bob
    clock.now = berlin(2026, 11, 24, 10, 16)
    await service.scheduler.tick()
    await service.worker.drain()
    nudge = [c.text for c in channel.calls if "waiting to be claimed" in c.text]
    assert (
        len(nudge) == 1
        and "<@UBOB>" in nudge[0]
        and "UALICE" not in nudge[0]
        and "UCAROL" not in nudge[0]
    )
