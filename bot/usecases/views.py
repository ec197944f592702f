"""From stored rows to cards: the one place that turns an Inquiry into an ``InquiryView``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import AppContext
from cards.inquiry_card import InquiryView, build_inquiry_card
from cards.model import Card
from config.schema import LOST_REASONS
from connectors.web.channel import CardClock
from store import inquiries as repo
from store.models import Contact, Event, Inquiry, Message, Status


async def delivery_error(session: AsyncSession, inquiry_id: int) -> str:
    """The error of the newest outbound message, if its delivery failed."""
    state, error = await delivery_state(session, inquiry_id)
    return error if state == "failed" else ""


async def delivery_state(session: AsyncSession, inquiry_id: int) -> tuple[str, str]:
    """Where the newest outbound message stands: ("sending" | "retrying" | "failed" | "", words).

    "sending" until the SMTP server accepted it; "retrying" with the server's words after
    a failed attempt; "failed" once the retries gave up."""
    row = (
        await session.exec(
            select(Message.delivery)
            .where(col(Message.inquiry_id) == inquiry_id, col(Message.direction) == "out")
            .order_by(col(Message.id).desc())
            .limit(1)
        )
    ).first()
    return _delivery_words(row)


def _delivery_words(row: str | None) -> tuple[str, str]:
    if not row:
        return "", ""
    if row.startswith("failed"):
        return "failed", row.removeprefix("failed").removeprefix(": ")
    if row.startswith("retrying"):
        return "retrying", row.removeprefix("retrying").removeprefix(": ")
    if row == "queued":
        return "sending", ""
    return "", ""


async def customer_name(session: AsyncSession, inquiry_id: int) -> str:
    """The name the customer gave in *this* inquiry: its newest inbound message naming one.

    Never the contact's stored name: that is whatever the first message from the
    address said, and anyone can post a form with someone else's address.
    """
    row = (
        await session.exec(
            select(Message.from_name)
            .where(
                col(Message.inquiry_id) == inquiry_id,
                col(Message.direction) == "in",
                col(Message.from_name) != "",
            )
            .order_by(col(Message.id).desc())
            .limit(1)
        )
    ).first()
    return row or ""


async def current_escalation(session: AsyncSession, inquiry: Inquiry) -> int:
    """The escalation level still worth showing: 0 once what was escalated is done.

    A claim escalation ends with the claim; a reply escalation (escalated after the
    claim) ends with the first reply. The stored level is kept for the record.
    """
    if not _asks_when_escalated(inquiry):
        return _escalation_shown(inquiry, None)
    escalated_at = (
        await session.exec(
            select(Event.at)
            .where(col(Event.inquiry_id) == inquiry.id, col(Event.kind) == "escalated")
            .order_by(col(Event.id).desc())
            .limit(1)
        )
    ).first()
    return _escalation_shown(inquiry, escalated_at)


def _asks_when_escalated(inquiry: Inquiry) -> bool:
    """Whether the level ``inquiry`` shows depends on when it was last escalated: it is
    claimed, not yet answered, and was escalated at some point."""
    return (
        bool(inquiry.escalation_level)
        and inquiry.id is not None
        and inquiry.status == Status.CLAIMED.value
        and inquiry.first_reply_at is None
    )


def _escalation_shown(inquiry: Inquiry, escalated_at: datetime | None) -> int:
    """The level ``inquiry`` shows, ``escalated_at`` its last escalation (when it asks)."""
    if not inquiry.escalation_level or inquiry.id is None:
        return 0
    if inquiry.status == Status.NEW.value:
        return inquiry.escalation_level
    if not _asks_when_escalated(inquiry):
        return 0
    if escalated_at is None or inquiry.claimed_at is None:
        return inquiry.escalation_level
    return inquiry.escalation_level if escalated_at > inquiry.claimed_at else 0


def card_clock(inquiry: Inquiry) -> CardClock:
    """The absolute times behind the card's clock line (the web page keeps them live)."""
    if inquiry.status == Status.NEW.value:
        return CardClock(inquiry.received_at, inquiry.claim_due_at, "claim")
    if inquiry.status == Status.CLAIMED.value and inquiry.first_reply_at is None:
        return CardClock(inquiry.received_at, inquiry.reply_due_at, "reply")
    return CardClock(inquiry.received_at)


def inquiry_view(
    ctx: AppContext,
    inquiry: Inquiry,
    contact: Contact | None,
    *,
    error: str = "",
    name: str | None = None,
    escalation_level: int | None = None,
    delivery: str = "",
) -> InquiryView:
    """The card's view of ``inquiry``; ``name`` is the inquiry's own customer name when known."""
    assert inquiry.id is not None
    try:
        team = ctx.settings.team(inquiry.team)
        zone, reasons = team.timezone, team.lost_reasons
    except KeyError:  # a team removed from the config: its old items still render
        zone, reasons = "UTC", LOST_REASONS
    return InquiryView(
        number=inquiry.id,
        version=inquiry.version,
        team=inquiry.team,
        status=inquiry.status,
        priority=inquiry.priority,
        subject=inquiry.subject,
        snippet=inquiry.snippet,
        source=inquiry.source,
        contact_name=name if name is not None else (contact.name if contact else ""),
        contact_email=inquiry.contact_email,
        company=contact.company if contact else "",
        country=inquiry.country or (contact.country if contact else ""),
        language=inquiry.language,
        received_at=inquiry.received_at,
        owner_name=ctx.rep_name(inquiry.assignee),
        claimed_at=inquiry.claimed_at,
        claim_due_at=inquiry.claim_due_at,
        reply_due_at=inquiry.reply_due_at,
        first_reply_at=inquiry.first_reply_at,
        last_customer_message_at=inquiry.last_customer_message_at,
        snoozed_until=inquiry.snoozed_until,
        escalation_level=inquiry.escalation_level if escalation_level is None else escalation_level,
        outcome_reason=inquiry.outcome_reason,
        delivery_error=error,
        delivery_state=delivery,
        timezone=zone,
        follow_up_at=inquiry.follow_up_at,
        lost_reasons=reasons,
        link_url=ctx.link(f"/web/inquiries/{inquiry.id}"),
        flags=tuple(tag.removeprefix("flag:") for tag in inquiry.tags if tag.startswith("flag:")),
    )


async def card_for(ctx: AppContext, session: AsyncSession, inquiry: Inquiry) -> Card:
    """The current card of ``inquiry`` in its team's locale."""
    return (await cards_for(ctx, session, [inquiry]))[0]


async def cards_for(
    ctx: AppContext, session: AsyncSession, inquiries: Sequence[Inquiry]
) -> list[Card]:
    """The current cards of ``inquiries``, in their order, each in its team's locale.

    What a card shows beside the inquiry's own row (its contact, the newest reply's
    delivery, the name the customer gave, when it was last escalated) is read for all of
    them in four statements, not four per card: the live feed renders every card a
    burst of intake makes, and each statement is a trip to the database's thread.
    """
    cards: list[Card] = []
    for start in range(0, len(inquiries), _CARDS_AT_ONCE):
        part = inquiries[start : start + _CARDS_AT_ONCE]
        ids = [i.id for i in part if i.id is not None]
        contacts = await repo.contacts_by_id(session, [i.contact_id for i in part])
        deliveries = await _newest(session, Message.delivery, ids, col(Message.direction) == "out")
        names = await _newest(
            session,
            Message.from_name,
            ids,
            col(Message.direction) == "in",
            col(Message.from_name) != "",
        )
        asked = [i.id for i in part if i.id is not None and _asks_when_escalated(i)]
        escalated = await _last_escalated(session, asked)
        now = ctx.clock()
        for inquiry in part:
            assert inquiry.id is not None
            state, words = _delivery_words(deliveries.get(inquiry.id))
            level = _escalation_shown(inquiry, escalated.get(inquiry.id))
            view = inquiry_view(
                ctx,
                inquiry,
                contacts.get(inquiry.contact_id) if inquiry.contact_id is not None else None,
                error=words if state == "failed" else "",
                name=names.get(inquiry.id, ""),
                escalation_level=level,
                delivery=f"{state}: {words}" if state == "retrying" else state,
            )
            cards.append(build_inquiry_card(view, now=now, locale=ctx.locale(inquiry.team)))
    return cards


_CARDS_AT_ONCE = 500  # inquiries per statement (bound parameters stay far below the limits)


async def _newest(
    session: AsyncSession, column: Any, ids: Sequence[int], *where: Any
) -> dict[int, Any]:
    """``column`` of the newest message of each of ``ids`` that meets ``where``."""
    if not ids:
        return {}
    newest = (
        select(func.max(Message.id))
        .where(col(Message.inquiry_id).in_(ids), *where)
        .group_by(col(Message.inquiry_id))
    )
    rows = await session.exec(select(Message.inquiry_id, column).where(col(Message.id).in_(newest)))
    return {int(inquiry_id): value for inquiry_id, value in rows.all()}


async def _last_escalated(session: AsyncSession, ids: Sequence[int]) -> dict[int, datetime]:
    """When each of ``ids`` was last escalated (its newest "escalated" event)."""
    if not ids:
        return {}
    newest = (
        select(func.max(Event.id))
        .where(col(Event.inquiry_id).in_(ids), col(Event.kind) == "escalated")
        .group_by(col(Event.inquiry_id))
    )
    rows = await session.exec(select(Event.inquiry_id, Event.at).where(col(Event.id).in_(newest)))
    return {int(inquiry_id): at for inquiry_id, at in rows.all()}
