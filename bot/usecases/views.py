"""From stored rows to cards: the one place that turns an Inquiry into an ``InquiryView``."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.context import AppContext
from cards.inquiry_card import InquiryView, build_inquiry_card
from cards.model import Card
from config.schema import LOST_REASONS
from connectors.web.channel import CardClock
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
    if not inquiry.escalation_level or inquiry.id is None:
        return 0
    if inquiry.status == Status.NEW.value:
        return inquiry.escalation_level
    if inquiry.status != Status.CLAIMED.value or inquiry.first_reply_at is not None:
        return 0
    escalated_at = (
        await session.exec(
            select(Event.at)
            .where(col(Event.inquiry_id) == inquiry.id, col(Event.kind) == "escalated")
            .order_by(col(Event.id).desc())
            .limit(1)
        )
    ).first()
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
    assert inquiry.id is not None
    contact = await session.get(Contact, inquiry.contact_id)
    state, words = await delivery_state(session, inquiry.id)
    view = inquiry_view(
        ctx,
        inquiry,
        contact,
        error=words if state == "failed" else "",
        name=await customer_name(session, inquiry.id),
        escalation_level=await current_escalation(session, inquiry),
        delivery=f"{state}: {words}" if state == "retrying" else state,
    )
    return build_inquiry_card(view, now=ctx.clock(), locale=ctx.locale(inquiry.team))
