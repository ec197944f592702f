"""Concurrent and stale state changes, on SQLite and on a real PostgreSQL.

Each race fires several actions at one inquiry at once, then replays its timeline from
``new``: every event must be legal from the state the events before it left (a claim only
from an unowned ``new``, a status change only from the status it says it left, a reassign
only from the owner it names), the replay must end in the stored state, and each action
that reported success must have written exactly one event.

SQLite serialises write transactions (``BEGIN IMMEDIATE`` behind a per-process lock), so
there a claim written as check-then-update cannot lose its race; the PostgreSQL runs of
these races are the ones that catch it. The stale-writer test catches a change without the
version compare-and-set on both backends.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from bot.usecases.card_actions import perform
from cards.actions import Action, ActionOutcome, Verb
from connectors.webhooks import InboundForm
from store import inquiries as repo
from store.engine import transaction
from store.models import Event, Status

ROUNDS = 4

#: event kinds an action writes (one per successful action)
_ACTION_KINDS = {"claimed", "released", "reassigned", "status"}


def form(n: int) -> InboundForm:
    return InboundForm(
        webhook="website",
        email=f"racer{n}@buyer.example",
        name=f"Racer {n}",
        subject=f"Race {n}",
        message=f"Please quote item {n}",
        dedupe_key=f"race-{n}",
    )


def replay(events: list[Event]) -> tuple[str, str | None]:
    """The (status, assignee) the timeline leads to; fails on an event illegal at its point."""
    status, assignee = Status.NEW.value, None
    for event in events:
        where = f"event {event.id} {event.kind} {event.before}->{event.after} by {event.actor}"
        if event.kind == "claimed":
            assert (status, assignee) == (Status.NEW.value, None), f"{where} on {status}/{assignee}"
            status, assignee = Status.CLAIMED.value, event.actor
        elif event.kind == "released":
            assert status != Status.NEW.value, f"{where} on {status}"
            assert event.before == status, f"{where} but status was {status}"
            status, assignee = Status.NEW.value, None
        elif event.kind == "reassigned":
            assert event.before == (assignee or ""), f"{where} but owner was {assignee}"
            assignee = event.after
            if status == Status.NEW.value:
                status = Status.CLAIMED.value
        elif event.kind == "status":
            assert event.before == status, f"{where} but status was {status}"
            status = event.after
            if status == Status.NEW.value:
                assignee = None
            elif status == Status.CLAIMED.value and assignee is None:
                assignee = event.actor
    return status, assignee


async def race(service: Any, actions: list[Action]) -> list[ActionOutcome]:
    """Fire ``actions`` at once; check the timeline against the outcomes and the stored row."""
    inquiry_id = actions[0].inquiry_id
    async with transaction(service.ctx.sessions) as session:
        before = [e.id for e in await repo.timeline(session, inquiry_id)]
    outcomes = list(await asyncio.gather(*(perform(service.ctx, a) for a in actions)))
    async with transaction(service.ctx.sessions) as session:
        events = list(await repo.timeline(session, inquiry_id))
        stored = await repo.get_inquiry(session, inquiry_id)
    new_events = [e for e in events if e.id not in before]
    assert {e.kind for e in new_events} <= _ACTION_KINDS, [e.kind for e in new_events]
    assert len(new_events) == sum(o.ok for o in outcomes), (outcomes, new_events)
    # one event per successful action, by the person who did it
    done = Counter((a.user, _kind(a)) for a, o in zip(actions, outcomes, strict=True) if o.ok)
    assert Counter((e.actor, e.kind) for e in new_events) == done
    assert replay([e for e in events if e.kind != "received"]) == (stored.status, stored.assignee)
    return outcomes


def _kind(action: Action) -> str:
    return {
        Verb.CLAIM: "claimed",
        Verb.RELEASE: "released",
        Verb.REASSIGN: "reassigned",
        Verb.STATUS: "status",
        Verb.SPAM: "status",
    }[action.verb]


def web(inquiry_id: int, verb: Verb, user: str, value: str = "", reason: str = "") -> Action:
    return Action(inquiry_id, verb, "web", user, value=value, reason=reason)


async def test_claim_against_claim_has_one_winner_and_one_event(
    db_url: str, make_settings: Any, service_factory: Any
) -> None:
    service = await service_factory(make_settings(db_url))
    for n in range(ROUNDS):
        number = (await service.intake(form(n))).inquiry_id
        outcomes = await race(service, [web(number, Verb.CLAIM, f"rep{i}") for i in range(8)])
        assert sum(o.ok for o in outcomes) == 1


async def test_claim_against_release(db_url: str, make_settings: Any, service_factory: Any) -> None:
    service = await service_factory(make_settings(db_url))
    for n in range(ROUNDS):
        number = (await service.intake(form(n))).inquiry_id
        assert (await perform(service.ctx, web(number, Verb.CLAIM, "alice"))).ok
        outcomes = await race(
            service,
            [web(number, Verb.RELEASE, "alice")]
            + [web(number, Verb.CLAIM, f"rep{i}") for i in range(5)],
        )
        assert outcomes[0].ok  # nothing else may stop the owner's release
        assert sum(o.ok for o in outcomes[1:]) <= 1


async def test_claim_against_reassign(
    db_url: str, make_settings: Any, service_factory: Any
) -> None:
    service = await service_factory(make_settings(db_url))
    for n in range(ROUNDS):
        number = (await service.intake(form(n))).inquiry_id
        outcomes = await race(
            service,
            [web(number, Verb.REASSIGN, "lena", value="bob")]
            + [web(number, Verb.CLAIM, f"rep{i}") for i in range(5)],
        )
        assert sum(o.ok for o in outcomes[1:]) <= 1


async def test_claim_against_status_and_release(
    db_url: str, make_settings: Any, service_factory: Any
) -> None:
    service = await service_factory(make_settings(db_url))
    for n in range(ROUNDS):
        number = (await service.intake(form(n))).inquiry_id
        assert (await perform(service.ctx, web(number, Verb.CLAIM, "alice"))).ok
        await race(
            service,
            [
                web(number, Verb.STATUS, "alice", value="won", reason="PO received"),
                web(number, Verb.STATUS, "lena", value="lost", reason="price"),
                web(number, Verb.RELEASE, "alice"),
                web(number, Verb.REASSIGN, "lena", value="bob"),
                web(number, Verb.CLAIM, "rep0"),
                web(number, Verb.CLAIM, "rep1"),
            ],
        )


async def test_spam_against_claim(db_url: str, make_settings: Any, service_factory: Any) -> None:
    service = await service_factory(make_settings(db_url))
    for n in range(ROUNDS):
        number = (await service.intake(form(n))).inquiry_id
        outcomes = await race(
            service,
            [web(number, Verb.SPAM, "lena")]
            + [web(number, Verb.CLAIM, f"rep{i}") for i in range(4)],
        )
        assert sum(o.ok for o in outcomes[1:]) <= 1


async def test_a_stale_writer_loses(db_url: str, make_settings: Any, service_factory: Any) -> None:
    """A change computed from an old read must not overwrite the change made since."""
    service = await service_factory(make_settings(db_url))
    number = (await service.intake(form(1))).inquiry_id
    async with transaction(service.ctx.sessions) as session:
        stale = await repo.get_inquiry(session, number)
    assert (await perform(service.ctx, web(number, Verb.CLAIM, "alice"))).ok
    with pytest.raises(repo.Conflict):
        async with transaction(service.ctx.sessions) as session:
            await repo.change(session, stale, service.ctx.clock(), status=Status.SPAM.value)
    async with transaction(service.ctx.sessions) as session:
        current = await repo.get_inquiry(session, number)
    assert (current.status, current.assignee) == (Status.CLAIMED.value, "alice")
    assert current.version > stale.version
