"""Replying, statuses, away and the escalated view through the application (no browser):

- a reply is "sending…" until the SMTP server accepted it, "delivery failed — retrying" with
  the server's words after a refused attempt, and the first response is counted when the
  mail was accepted (in words: "11 min"), not when it was queued;
- the reply draft tells a non-owner when it opens; a template without a value names it in
  words and marks where it belongs, and Send refuses the marker;
- Follow-up from the status menu with a date; lost reasons from the team's list, stored
  structured; snooze times in the team's zone with the zone named;
- I'm away / I'm back: what would be handed over, and taking items back;
- a lead's escalated view carries Reassign.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.interfaces.inbox_backend import WebInboxBackend
from bot.usecases.card_actions import perform
from bot.usecases.presence import claimed_items, handed_over, set_away, take_back
from bot.usecases.replies import ReplyTemplates, draft_reply, send_reply
from bot.usecases.timeline import describe_event
from bot.usecases.views import card_for
from cards.actions import Action, Verb
from connectors.webhooks import InboundForm
from store import inquiries as repo
from store.engine import transaction
from tests.conftest import MovableClock
from tests.support.clock import berlin, clock_config, new_inquiry


def _backend(service: Any) -> WebInboxBackend:
    return WebInboxBackend(service.ctx, service.feed, service.templates, service.interactions)


async def _card(service: Any, number: int) -> Any:
    async with transaction(service.ctx.sessions) as session:
        return await card_for(service.ctx, session, await repo.get_inquiry(session, number))


async def _inquiry(service: Any, number: int) -> Any:
    async with transaction(service.ctx.sessions) as session:
        return await repo.get_inquiry(session, number)


async def _events(service: Any, number: int) -> list[Any]:
    async with transaction(service.ctx.sessions) as session:
        return list(await repo.timeline(session, number))


async def test_reply_is_sending_then_retrying_then_counted_when_accepted(
    sqlite_url: str, make_settings: Any, service_factory: Any, smtp: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))
    service = await service_factory(make_settings(sqlite_url), clock=clock)
    number = await new_inquiry(service, "sending-1")
    assert (await perform(service.ctx, Action(number, Verb.CLAIM, "web", "alice"))).ok
    clock.advance(minutes=11)
    sent = await send_reply(
        service.ctx,
        inquiry_id=number,
        platform="web",
        user="alice",
        subject="Re: LED",
        body="Dear Maria,\nour offer follows.",
    )
    assert sent.ok and "Sending your reply" in sent.message
    queued = await _inquiry(service, number)
    assert queued.status == "replied" and queued.first_reply_at is None  # not counted yet
    assert (
        "Reply sending… (not yet accepted by the mail server)"
        in (await _card(service, number)).notes
    )

    smtp.handler.refuse_next = ["451 4.3.0 Mailbox temporarily unavailable, try later"]
    clock.advance(minutes=1)
    await service.worker.drain()
    assert len(smtp.messages) == 1  # retried and accepted, exactly once
    events = await _events(service, number)
    kinds = [e.kind for e in events]
    assert kinds[-2:] == ["delivery_retrying", "reply_delivered"]
    retrying = describe_event(events[-2], "en", service.ctx.rep_name)
    assert retrying.startswith("reply delivery failed — retrying:")
    assert "Mailbox temporarily unavailable" in retrying
    accepted = await _inquiry(service, number)
    assert accepted.first_reply_at == berlin(2026, 11, 24, 10, 12)
    assert events[-1].data["first_response_seconds"] == 12 * 60
    assert describe_event(events[-1], "en", service.ctx.rep_name) == (
        "reply accepted by the mail server (first response after 12 min)"
    )
    notes = (await _card(service, number)).notes
    assert not [n for n in notes if "sending" in n or "retrying" in n]

    # the inquiry page words for the rep
    backend = _backend(service)
    detail = await backend.inquiry_detail(number)
    assert detail is not None
    out = [m for m in detail.messages if m.direction == "out"]
    assert out[0].delivery == "accepted by the mail server"
    assert out[0].when == "2026-11-24 10:11 CET (Europe/Berlin)"
    assert [e.when for e in detail.timeline][0] == "2026-11-24 10:00 CET (Europe/Berlin)"


async def test_retrying_state_is_shown_while_the_server_refuses(
    sqlite_url: str, make_settings: Any, service_factory: Any, smtp: Any
) -> None:
    from bot.runtime.deliveries import deliver
    from connectors.channels import DeliveryError
    from store.models import Outbox

    service = await service_factory(make_settings(sqlite_url))
    number = await new_inquiry(service, "retry-1")
    assert (
        await send_reply(
            service.ctx, inquiry_id=number, platform="web", user="alice", subject="Re", body="Hi"
        )
    ).ok
    async with transaction(service.ctx.sessions) as session:
        from sqlmodel import col, select

        row = (await session.exec(select(Outbox).where(col(Outbox.kind) == "email.send"))).one()
    smtp.handler.refuse_next = ["421 4.7.0 Try again later, closing connection"]
    with pytest.raises(DeliveryError) as refused:
        await deliver(service.ctx, row)
    assert not refused.value.permanent
    card = await _card(service, number)
    assert any(
        n.startswith("Reply delivery failed — retrying:") and "Try again later" in n
        for n in card.notes
    ), card.notes
    assert (await _inquiry(service, number)).first_reply_at is None
    detail = await _backend(service).inquiry_detail(number)
    assert detail is not None
    out = [m for m in detail.messages if m.direction == "out"][0]
    assert out.delivery.startswith("delivery failed — retrying:") and "Try again" in out.delivery


async def test_draft_notice_and_missing_value_in_words(
    sqlite_url: str, make_settings: Any, service_factory: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "templates" / "en"
    folder.mkdir(parents=True)
    (folder / "fob.j2").write_text(
        "{# FOB offer #}\nDear {{ customer.company }} team,\nour FOB offer.\n{{ rep.name }}\n",
        encoding="utf-8",
    )
    service = await service_factory(
        make_settings(sqlite_url, templates={"directory": str(tmp_path / "templates")})
    )
    ctx = service.ctx
    templates = ReplyTemplates(str(tmp_path / "templates"))
    number = await new_inquiry(service, "draft-1")

    unclaimed = await draft_reply(ctx, templates, number, "bob", "en/thank_you")
    assert unclaimed.can_claim and unclaimed.may_send
    assert unclaimed.notice == f"#{number} is unclaimed: sending this reply claims it for you."

    assert (await perform(ctx, Action(number, Verb.CLAIM, "web", "alice"))).ok
    other = await draft_reply(ctx, templates, number, "bob", "en/thank_you")
    assert not other.may_send and not other.can_claim
    assert other.notice.startswith(f"Alice owns #{number}: only Alice or a team lead")
    lead = await draft_reply(ctx, templates, number, "lena", "en/thank_you")
    assert lead.may_send and "you are replying as team lead" in lead.notice
    own = await draft_reply(ctx, templates, number, "alice", "en/fob")
    assert own.notice == ""
    assert "the customer's company is not known for this inquiry" in own.error
    assert "'dict object'" not in own.error
    assert own.body.startswith("Dear ⟦the customer's company⟧ team,")
    refused = await send_reply(
        ctx, inquiry_id=number, platform="web", user="alice", subject="Re", body=own.body
    )
    assert not refused.ok and "⟦the customer's company⟧" in refused.message


async def test_builtin_templates_have_fallbacks_for_a_customer_without_a_name(
    sqlite_url: str, make_settings: Any, service_factory: Any
) -> None:
    service = await service_factory(make_settings(sqlite_url))
    result = await service.intake(_nameless_form())
    templates = ReplyTemplates()
    for language in ("en", "es", "ru", "zh"):
        for info in templates.for_language(language):
            draft = await draft_reply(
                service.ctx, templates, result.inquiry_id, "alice", f"{info.language}/{info.name}"
            )
            assert draft.error == "", (info.language, info.name, draft.error)
            assert "⟦" not in draft.body
    english = await draft_reply(service.ctx, templates, result.inquiry_id, "alice", "en/thank_you")
    assert english.body.startswith("Dear Sir or Madam,")


def _nameless_form() -> InboundForm:
    return InboundForm(
        webhook="website",
        email="noname@buyer.example",
        name="",
        subject="",
        message="Price?",
        dedupe_key="nameless",
    )


async def test_follow_up_with_a_date_lost_reasons_and_snooze_in_the_team_zone(
    sqlite_url: str, make_settings: Any, service_factory: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))  # Tuesday
    service = await service_factory(make_settings(sqlite_url, **clock_config()), clock=clock)
    ctx = service.ctx
    number = await new_inquiry(service, "status-1")
    assert (await perform(ctx, Action(number, Verb.CLAIM, "web", "alice"))).ok

    past = await perform(
        ctx, Action(number, Verb.STATUS, "web", "alice", value="follow_up:2026-11-24")
    )
    assert not past.ok and "after today" in past.message
    done = await perform(
        ctx, Action(number, Verb.STATUS, "web", "alice", value="follow_up:2026-12-03")
    )
    assert done.ok, done.message
    assert done.message == f"Follow-up of #{number} set for 2026-12-03 09:00 CET (Europe/Berlin)."
    inquiry = await _inquiry(service, number)
    assert inquiry.status == "follow_up" and inquiry.follow_up_at == berlin(2026, 12, 3, 9, 0)
    card = await _card(service, number)
    assert "Follow-up due 2026-12-03 09:00 CET (Europe/Berlin) (in 8 d)" in card.notes

    snoozed = await perform(ctx, Action(number, Verb.SNOOZE, "web", "alice", value="1h"))
    assert snoozed.message == f"#{number} snoozed until 2026-11-24 11:00 CET (Europe/Berlin)."

    other = await perform(ctx, Action(number, Verb.STATUS, "web", "alice", value="lost"))
    assert not other.ok and "reason" in other.message
    vague = await perform(
        ctx, Action(number, Verb.STATUS, "web", "alice", value="lost", reason="other")
    )
    assert not vague.ok  # "other" needs words
    lost = await perform(
        ctx,
        Action(
            number, Verb.STATUS, "web", "alice", value="lost", reason="lead time: needs 2 weeks"
        ),
    )
    assert lost.ok, lost.message
    inquiry = await _inquiry(service, number)
    assert inquiry.outcome_reason == "Lead time: needs 2 weeks"
    event = (await _events(service, number))[-1]
    assert event.data["lost_reason"] == "lead time" and event.data["lost_words"] == "needs 2 weeks"
    assert describe_event(event, "en", ctx.rep_name) == (
        "status: Follow-up → Lost (Lead time: needs 2 weeks)"
    )


async def test_team_lost_reasons_are_configurable_and_offered_only_with_lost(
    sqlite_url: str, make_settings: Any, service_factory: Any
) -> None:
    config = clock_config()
    config["teams"][0]["lost_reasons"] = ["price", "certification"]
    service = await service_factory(make_settings(sqlite_url, **config))
    assert service.ctx.settings.team("sales").lost_reasons == ("price", "certification", "other")
    number = await new_inquiry(service, "reasons-1")
    new_card = await _card(service, number)
    status = next(
        c for c in new_card.actions if getattr(c, "action_id", "").startswith("cd1:status")
    )
    assert "lost" not in [o.value for o in status.options]
    assert status.reasons == () and status.reason_for == ()  # no won/lost offered: no reason box
    assert (await perform(service.ctx, Action(number, Verb.CLAIM, "web", "alice"))).ok
    claimed = await _card(service, number)
    status = next(
        c for c in claimed.actions if getattr(c, "action_id", "").startswith("cd1:status")
    )
    assert [o.value for o in status.reasons] == ["price", "certification", "other"]
    assert [o.label for o in status.reasons] == ["Price", "certification", "Other"]
    free = await perform(
        service.ctx,
        Action(number, Verb.STATUS, "web", "alice", value="lost", reason="they went quiet"),
    )
    assert free.ok
    event = (await _events(service, number))[-1]
    assert event.data["lost_reason"] == "other" and event.data["lost_words"] == "they went quiet"


async def test_away_lists_what_is_handed_over_and_back_takes_it_back(
    sqlite_url: str, make_settings: Any, service_factory: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))
    service = await service_factory(make_settings(sqlite_url, **clock_config()), clock=clock)
    ctx = service.ctx
    first = await new_inquiry(service, "away-1", subject="First")
    second = await new_inquiry(service, "away-2", subject="Second")
    for number in (first, second):
        assert (await perform(ctx, Action(number, Verb.CLAIM, "web", "bob"))).ok
    assert [(i.number, i.subject) for i in await claimed_items(ctx, "bob")] == [
        (first, "First"),
        (second, "Second"),
    ]
    since = clock.now
    await set_away(ctx, "bob", True)
    clock.advance(seconds=10)
    await service.scheduler.tick()
    assert await claimed_items(ctx, "bob") == []
    await set_away(ctx, "bob", False)
    offered = await handed_over(ctx, "bob", since)
    assert sorted(i.number for i in offered) == [first, second]
    # someone works on the first meanwhile: it stays theirs
    first_now = await _inquiry(service, first)
    if first_now.assignee is None:
        assert (await perform(ctx, Action(first, Verb.CLAIM, "web", "alice"))).ok
    else:
        assert (
            await perform(
                ctx, Action(first, Verb.STATUS, "web", first_now.assignee, value="waiting")
            )
        ).ok
    assert [i.number for i in await handed_over(ctx, "bob", since)] == [second]
    assert await take_back(ctx, "bob", [first, second], since) == 1
    assert (await _inquiry(service, second)).assignee == "bob"
    assert (await _inquiry(service, first)).assignee != "bob"
    assert await handed_over(ctx, "bob", since) == []


async def test_escalated_view_for_leads_has_reassign(
    sqlite_url: str, make_settings: Any, service_factory: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))
    service = await service_factory(make_settings(sqlite_url, **clock_config()), clock=clock)
    backend = _backend(service)
    number = await new_inquiry(service, "esc-1")
    assert await backend.escalated_cards("lena") == []
    for _ in range(8):
        clock.advance(minutes=10)
        await service.scheduler.tick()
    assert (await _inquiry(service, number)).escalation_level > 0
    assert [t.name for t in backend.leads_teams("lena")] == ["sales"]
    assert backend.leads_teams("alice") == []
    (card,) = await backend.escalated_cards("lena")
    # the live view asks one card at a time: the same card, and none for a rep
    assert await backend.escalated_card("lena", number) == card
    assert await backend.escalated_card("alice", number) is None
    reassign = next(
        c for c in card.actions if getattr(c, "action_id", "") == f"cd1:reassign:{number}"
    )
    assert ("Alice", "alice") in [(o.label, o.value) for o in reassign.options]
    done = await perform(service.ctx, Action(number, Verb.REASSIGN, "web", "lena", value="alice"))
    assert done.ok, done.message
    assert (await _inquiry(service, number)).assignee == "alice"
    assert await backend.escalated_cards("lena") == []  # handled: off the list
    assert await backend.escalated_card("lena", number) is None  # the live view drops it


def test_slack_reply_modal_shows_the_notice_escaped() -> None:
    from connectors.platform import ReplyDraftView
    from connectors.slack.render import reply_modal

    draft = ReplyDraftView(
        inquiry_id=7,
        to="m@buyer.example",
        subject="Re: LED",
        body="Dear Maria",
        template="en/thank_you",
        templates=(("en/thank_you", "Thank you (en)"),),
        notice="<@U1> owns #7; you are replying as team lead.",
    )
    first = reply_modal(draft, locale="en")["blocks"][0]
    assert first["type"] == "context"
    shown = first["elements"][0]["text"]
    assert "you are replying as team lead" in shown and "<@U1>" not in shown
    assert "notice" not in json.dumps(reply_modal(replace(draft, notice=""), locale="en"))
