"""Data export and erasure (data-protection requests): ``claimdesk export`` and ``claimdesk erase``.

Erasure keeps the shape of the record (inquiry numbers, statuses, timestamps,
who on our side did what) so team statistics stay true, and removes what
identifies the person: contact fields and addresses, message bodies, subjects,
snippets and quotes in the timeline. The erasure itself is a timeline event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, delete, select

from bot.context import AppContext
from bot.usecases.inquiry_json import inquiry_json
from store import inquiries as repo
from store.engine import transaction
from store.models import Contact, ContactEmail, Event, Inquiry, Message

log = logging.getLogger(__name__)

ERASED = "[erased]"


@dataclass(frozen=True)
class ErasureReport:
    """What an erasure touched."""

    contacts: int
    inquiries: int
    messages: int


async def erase_person(ctx: AppContext, email: str) -> ErasureReport:
    """Erase everything identifying the contact that owns ``email`` (all their addresses)."""
    address = email.strip().lower()
    now = ctx.clock()
    async with transaction(ctx.sessions) as session:
        link = await session.get(ContactEmail, address)
        if link is None:
            return ErasureReport(0, 0, 0)
        contact = await session.get(Contact, link.contact_id)
        assert contact is not None
        assert contact.id is not None
        addresses = await repo.contact_addresses(session, contact.id)
        inquiries = (
            await session.exec(select(Inquiry).where(col(Inquiry.contact_id) == contact.id))
        ).all()
        message_count = 0
        for inquiry in inquiries:
            assert inquiry.id is not None
            for message in await repo.messages(session, inquiry.id):
                message.text, message.html, message.subject = ERASED, "", ERASED
                message.attachments = []
                if message.from_address in addresses:
                    message.from_address, message.from_name = ERASED, ""
                if message.to_address in addresses:
                    message.to_address = ERASED
                if message.reply_to or message.sender:  # headers naming the customer
                    message.reply_to, message.sender = "", ""
                message.headers = {}
                session.add(message)
                message_count += 1
            for event in await repo.timeline(session, inquiry.id):
                if any(k in event.data for k in ("snippet", "quote", "subject", "to", "explain")):
                    event.data = {
                        k: v
                        for k, v in event.data.items()
                        if k not in ("snippet", "quote", "subject", "to", "explain")
                    }
                    session.add(event)
            updated = await repo.change(
                session, inquiry, now, subject=ERASED, snippet=ERASED, contact_email=""
            )
            repo.add_event(
                session,
                updated,
                at=now,
                actor="system",
                kind="erased",
                data={"reason": "data-protection request"},
            )
        contact.name, contact.company, contact.phone, contact.tags = ERASED, "", "", []
        session.add(contact)
        await session.exec(delete(ContactEmail).where(col(ContactEmail.contact_id) == contact.id))
    ctx.changed.fire()
    log.info("contact erased", extra={"contact": contact.id, "inquiries": len(inquiries)})
    return ErasureReport(1, len(inquiries), message_count)


async def export_inquiries(ctx: AppContext, *, team: str | None = None) -> AsyncIterator[str]:
    """Every inquiry as one JSON line, with its messages and timeline."""
    last = 0
    while True:
        async with transaction(ctx.sessions) as session:
            stmt = (
                select(Inquiry).where(col(Inquiry.id) > last).order_by(col(Inquiry.id)).limit(200)
            )
            if team:
                stmt = stmt.where(col(Inquiry.team) == team)
            rows = (await session.exec(stmt)).all()
            if not rows:
                return
            contacts = await repo.contacts_by_id(session, [r.contact_id for r in rows])
            for inquiry in rows:
                assert inquiry.id is not None
                last = inquiry.id
                body: dict[str, Any] = inquiry_json(ctx, inquiry, contacts.get(inquiry.contact_id))
                body["messages"] = [_message(m) for m in await repo.messages(session, inquiry.id)]
                body["timeline"] = [_event(e) for e in await repo.timeline(session, inquiry.id)]
                yield json.dumps(body, ensure_ascii=False)


def _message(m: Message) -> dict[str, Any]:
    return {
        "direction": m.direction,
        "message_id": m.message_id,
        "from": m.from_address,
        "to": m.to_address,
        "subject": m.subject,
        "text": m.text,
        "at": m.created_at.isoformat(),
        "delivery": m.delivery,
    }


def _event(e: Event) -> dict[str, Any]:
    return {
        "at": e.at.isoformat(),
        "actor": e.actor,
        "kind": e.kind,
        "before": e.before,
        "after": e.after,
        "data": e.data,
    }
