"""Repository operations on inquiries, contacts, messages and the timeline.

Every function works inside the caller's transaction (an ``AsyncSession`` in
``session.begin()``), so a use case commits state, events and outbox rows
together. Changes to an inquiry are compare-and-set UPDATEs: the claim
succeeds for exactly one of any number of concurrent claimers, and any other
change fails with ``Conflict`` when someone changed the row in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.bulk import (
    PendingRows,
    column_values,
    insert_rows,
    insert_values,
    row_values,
)
from store.models import Contact, ContactEmail, Event, Inquiry, Message, Status


class Conflict(Exception):
    """The inquiry changed under us (its version moved on); reload and decide again."""


class NotFound(LookupError):
    """No inquiry with that number."""


@dataclass(frozen=True)
class ClaimOutcome:
    """Result of an atomic claim: the winner, or who holds it now."""

    won: bool
    inquiry: Inquiry


async def get_inquiry(
    session: AsyncSession, inquiry_id: int, *, for_update: bool = False
) -> Inquiry:
    stmt = (
        select(Inquiry)
        .where(col(Inquiry.id) == inquiry_id)
        .execution_options(populate_existing=True)
    )
    if for_update:
        stmt = stmt.with_for_update()
    inquiry = (await session.exec(stmt)).first()
    if inquiry is None:
        raise NotFound(inquiry_id)
    return inquiry


async def find_by_dedupe_key(session: AsyncSession, key: str) -> Inquiry | None:
    return (await session.exec(select(Inquiry).where(col(Inquiry.dedupe_key) == key))).first()


async def existing_dedupe_keys(session: AsyncSession, keys: list[str]) -> set[str]:
    """Which of ``keys`` an inquiry already has, in one query."""
    if not keys:
        return set()
    rows = await session.exec(
        select(Inquiry.dedupe_key).where(col(Inquiry.dedupe_key).in_(sorted(set(keys))))
    )
    return set(rows.all())


async def known_addresses(session: AsyncSession, addresses: list[str]) -> set[str]:
    """Which of ``addresses`` (lower case) a contact already has, in one query."""
    wanted = sorted({a.strip().lower() for a in addresses if a})
    if not wanted:
        return set()
    rows = await session.exec(
        select(ContactEmail.address).where(col(ContactEmail.address).in_(wanted))
    )
    return set(rows.all())


async def find_contact(session: AsyncSession, email: str) -> Contact | None:
    """The contact owning ``email`` (followed through merges), or None."""
    link = (
        await session.exec(
            select(ContactEmail).where(col(ContactEmail.address) == email.strip().lower())
        )
    ).first()
    if link is None:
        return None
    contact = await session.get(Contact, link.contact_id)
    while contact is not None and contact.merged_into is not None:
        contact = await session.get(Contact, contact.merged_into)
    return contact


async def resolve_contact(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    company: str,
    country: str,
    language: str,
    phone: str,
    now: datetime,
    known_new: bool = False,
    pending: PendingRows | None = None,
) -> int:
    """The id of the contact owning ``email`` (created when new); blanks filled in from this
    message.

    ``known_new``: the caller read, in this transaction, that no contact has the address
    (a batch writer asks once for the whole batch), so it is not looked up again."""
    address = email.strip().lower()
    link = (
        None
        if known_new
        else (
            await session.exec(select(ContactEmail).where(col(ContactEmail.address) == address))
        ).first()
    )
    if link is not None:
        contact = await session.get(Contact, link.contact_id)
        assert contact is not None
        while contact.merged_into is not None:
            merged = await session.get(Contact, contact.merged_into)
            assert merged is not None
            contact = merged
        for attr, value in (
            ("name", name),
            ("company", company),
            ("country", country),
            ("language", language),
            ("phone", phone),
        ):
            if value and not getattr(contact, attr):
                setattr(contact, attr, value)
        session.add(contact)
        assert contact.id is not None
        return contact.id
    fields: dict[str, Any] = dict(
        name=name, company=company, country=country, language=language, phone=phone
    )
    if known_new:  # Core statements, no objects: nothing reads these rows back here
        contact_id = await insert_values(
            session, *column_values(Contact, **fields, created_at=now, tags=[])
        )
        if address:
            row = column_values(ContactEmail, address=address, contact_id=contact_id)
            if pending is not None:
                pending.add(row)
            else:
                await insert_rows(session, [row])
        return contact_id
    contact = Contact(**fields, created_at=now, tags=[])
    session.add(contact)
    await session.flush()
    assert contact.id is not None
    if address:
        session.add(ContactEmail(address=address, contact_id=contact.id))
        await session.flush()
    return contact.id


async def insert_row(session: AsyncSession, row: Inquiry) -> int:
    """Insert ``row`` with one Core ``INSERT ... RETURNING id`` on the session's connection
    (no unit of work, no flush of other pending objects); returns its id. ``row`` stays out
    of the session: read it again to have it tracked."""
    return await insert_values(session, *row_values(row))


async def contact_addresses(session: AsyncSession, contact_id: int) -> list[str]:
    rows = await session.exec(
        select(ContactEmail.address).where(col(ContactEmail.contact_id) == contact_id)
    )
    return sorted(rows.all())


def add_event(
    session: AsyncSession,
    inquiry: Inquiry,
    *,
    at: datetime,
    actor: str,
    kind: str,
    before: str = "",
    after: str = "",
    data: dict[str, Any] | None = None,
) -> Event:
    assert inquiry.id is not None
    event = Event(
        inquiry_id=inquiry.id,
        team=inquiry.team,
        at=at,
        actor=actor,
        kind=kind,
        before=before,
        after=after,
        data=data or {},
    )
    session.add(event)
    return event


async def claim(session: AsyncSession, inquiry_id: int, rep_id: str, now: datetime) -> ClaimOutcome:
    """Atomic claim: one conditional UPDATE; exactly one concurrent caller wins."""
    stmt = (
        update(Inquiry)
        .where(
            col(Inquiry.id) == inquiry_id,
            col(Inquiry.status) == Status.NEW.value,
            col(Inquiry.assignee).is_(None),
        )
        .values(
            status=Status.CLAIMED.value,
            assignee=rep_id,
            claimed_at=func.coalesce(col(Inquiry.claimed_at), now),
            updated_at=now,
            version=col(Inquiry.version) + 1,
        )
    )
    result = await session.exec(stmt)
    inquiry = await get_inquiry(session, inquiry_id)
    return ClaimOutcome(won=result.rowcount == 1, inquiry=inquiry)


async def change(session: AsyncSession, inquiry: Inquiry, now: datetime, **values: Any) -> Inquiry:
    """Compare-and-set update of ``inquiry`` at the version we read; ``Conflict`` otherwise."""
    assert inquiry.id is not None
    stmt = (
        update(Inquiry)
        .where(col(Inquiry.id) == inquiry.id, col(Inquiry.version) == inquiry.version)
        .values(**values, updated_at=now, version=inquiry.version + 1)
    )
    result = await session.exec(stmt)
    if result.rowcount != 1:
        raise Conflict(inquiry.id)
    return await get_inquiry(session, inquiry.id)


async def timeline(session: AsyncSession, inquiry_id: int) -> Sequence[Event]:
    rows = await session.exec(
        select(Event).where(col(Event.inquiry_id) == inquiry_id).order_by(col(Event.id))
    )
    return rows.all()


async def messages(session: AsyncSession, inquiry_id: int) -> Sequence[Message]:
    rows = await session.exec(
        select(Message).where(col(Message.inquiry_id) == inquiry_id).order_by(col(Message.id))
    )
    return rows.all()


async def list_inquiries(
    session: AsyncSession,
    *,
    team: str | None = None,
    statuses: Sequence[str] = (),
    since: datetime | None = None,
    updated_since: datetime | None = None,
    limit: int = 100,
    newest_first: bool = True,
) -> Sequence[Inquiry]:
    stmt = select(Inquiry)
    if team:
        stmt = stmt.where(col(Inquiry.team) == team)
    if statuses:
        stmt = stmt.where(col(Inquiry.status).in_(list(statuses)))
    if since is not None:
        stmt = stmt.where(col(Inquiry.received_at) >= since)
    if updated_since is not None:
        stmt = stmt.where(col(Inquiry.updated_at) >= updated_since)
    order = col(Inquiry.id).desc() if newest_first else col(Inquiry.id)
    return (await session.exec(stmt.order_by(order).limit(limit))).all()


async def inquiries_by_id(session: AsyncSession, ids: Sequence[int]) -> dict[int, Inquiry]:
    """The inquiries of ``ids`` that exist, by id, in one statement per 500."""
    found: dict[int, Inquiry] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), 500):
        rows = await session.exec(
            select(Inquiry).where(col(Inquiry.id).in_(unique[start : start + 500]))
        )
        found.update((i.id, i) for i in rows.all() if i.id is not None)
    return found


async def contacts_by_id(session: AsyncSession, ids: Sequence[int]) -> dict[int, Contact]:
    if not ids:
        return {}
    rows = await session.exec(select(Contact).where(col(Contact.id).in_(list(set(ids)))))
    return {c.id: c for c in rows.all() if c.id is not None}


async def find_thread(session: AsyncSession, message_ids: Sequence[str]) -> Inquiry | None:
    """The inquiry a message with these In-Reply-To/References ids belongs to, if any."""
    ids = [m for m in message_ids if m]
    if not ids:
        return None
    row = (
        await session.exec(
            select(Message)
            .where(or_(*[col(Message.message_id) == m for m in ids]))
            .order_by(col(Message.id).desc())
        )
    ).first()
    if row is None:
        return None
    return await session.get(Inquiry, row.inquiry_id)


async def changed_since(
    session: AsyncSession, since: datetime, *, limit: int
) -> Sequence[tuple[int, int, str, datetime]]:
    """(id, version, team, updated_at) of inquiries changed at or after ``since``, oldest change first."""
    stmt = (
        select(Inquiry.id, Inquiry.version, Inquiry.team, Inquiry.updated_at)
        .where(col(Inquiry.updated_at) >= since)
        .order_by(col(Inquiry.updated_at))
        .limit(limit)
    )
    rows = (await session.exec(stmt)).all()
    return [(int(i), int(v), str(t), u) for i, v, t, u in rows if i is not None]
