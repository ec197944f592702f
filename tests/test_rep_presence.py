"""Reps away from chat: the web inbox toggle (CSRF, stored in rep_presence), and the clock treating
a self-declared away rep like one marked away in the config (hand-over, no mentions)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.usecases.card_actions import perform
from bot.usecases.presence import is_away
from cards.actions import Action, Verb
from store import inquiries as repo
from store.engine import transaction
from store.migrate import schema_is_current
from tests.conftest import MovableClock
from tests.support.clock import Walk, berlin, clock_config, new_inquiry, recording_channel
from tests.test_flow_end_to_end import sign_in


async def test_away_toggle_hands_over_and_silences_mentions(
    db_url: str, make_settings: Any, service_factory: Any, client_factory: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))  # Tuesday, in hours
    channel = recording_channel()
    service = await service_factory(
        make_settings(db_url, **clock_config()), channels={"slack": channel}, clock=clock
    )
    assert await schema_is_current(service.ctx.engine)
    service.scheduler.settings.digests = False
    walk = Walk(service, clock, channel)
    client = await client_factory(service, background=False)
    csrf = await sign_in(client, service, "alice")
    page = await (await client.get("/web/teams/sales")).text()
    assert 'id="away-toggle"' in page and "I&#39;m away" in page and "away-note" not in page

    owned = await new_inquiry(service, "presence-owned")
    assert (await perform(service.ctx, Action(owned, Verb.CLAIM, "web", "alice"))).ok
    await walk.settle()

    forged = await client.post(
        "/web/away", data={"away": "1", "csrf": "nope"}, allow_redirects=False
    )
    assert forged.status == 403 and not await is_away(service.ctx, "alice")
    went = await client.post(
        "/web/away",
        data={"away": "1", "csrf": csrf, "next": "/web/teams/sales"},
        allow_redirects=False,
    )
    assert went.status == 303 and went.headers["Location"] == "/web/teams/sales"
    assert await is_away(service.ctx, "alice")
    page = await (await client.get("/web/teams/sales")).text()
    assert "I&#39;m back" in page and 'id="away-note"' in page
    evil = await client.post(
        "/web/away",
        data={"away": "1", "csrf": csrf, "next": "//evil.example/"},
        allow_redirects=False,
    )
    assert evil.headers["Location"] == "/web/"

    # the next tick hands alice's item back to the pool (she has no backup)
    assert service.scheduler is not None
    report = await service.scheduler.tick()
    assert report.handovers == 1
    notes = [c.text for _, c in await walk.settle() if c.method == "post_thread"]
    assert f"#{owned} is back in the pool: Alice is away." in notes
    async with transaction(service.ctx.sessions) as session:
        inquiry = await repo.get_inquiry(session, owned)
    assert (inquiry.status, inquiry.assignee) == ("new", None)

    # nudges mention the reps on duty: bob, not alice (away by her own flag) nor carol (config)
    clock.now += timedelta(minutes=1)
    calls = await walk.until(clock.now + timedelta(minutes=20))
    nudges = [
        c.text for _, c in calls if c.method == "post_thread" and "waiting to be claimed" in c.text
    ]
    assert nudges and "<@UBOB>" in nudges[0]
    assert "<@UALICE>" not in nudges[0] and "<@UCAROL>" not in nudges[0]

    back = await client.post("/web/away", data={"away": "0", "csrf": csrf}, allow_redirects=False)
    assert back.status == 303 and not await is_away(service.ctx, "alice")
    later = await walk.until(clock.now + timedelta(minutes=15))
    nudges = [
        c.text for _, c in later if c.method == "post_thread" and "waiting to be claimed" in c.text
    ]
    assert nudges and "<@UALICE>" in nudges[-1] and "<@UBOB>" in nudges[-1]


async def test_away_needs_a_signed_in_rep(
    sqlite_url: str, make_settings: Any, service_factory: Any, client_factory: Any
) -> None:
    service = await service_factory(make_settings(sqlite_url, **clock_config()), channels={})
    client = await client_factory(service, background=False)
    response = await client.post("/web/away", data={"away": "1"}, allow_redirects=False)
    assert response.status == 401
