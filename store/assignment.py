"""What routing and assignment read and write in the store, inside the ingest transaction.

- the round-robin turn: one row per team, taken (``lock_turn``) by every assignment
  and advanced (``next_turn``) only by a round-robin draw, each a single upsert
  ``INSERT ... ON CONFLICT (team) DO UPDATE SET n = n + 1 RETURNING n``. On
  PostgreSQL the row stays locked until the caller's transaction ends, so
  concurrent assignments for one team (any number of processes) take turns one
  after another and each sees the others' committed inquiries (open counts,
  ``max_open``); on SQLite writers are serialized anyway. A rolled-back ingest
  (a duplicate) gives its turn back.
- open counts per rep (``ix_inquiry_assignee_status``), a sender's recent
  messages (``ix_inquiry_contact_email_received``), a contact's last owner;
- the team's verdicts on senders: ``blocked`` ("Spam" on a card, an address or
  a whole domain) and ``allowed`` ("not spam"); an address verdict beats its
  domain's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.lifecycle import OPEN_STATUSES
from store.models import AssignmentTurn, Inquiry, SenderVerdict

BLOCKED = "blocked"
ALLOWED = "allowed"


async def _upsert_turn(session: AsyncSession, team: str, step: int) -> int:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = AssignmentTurn.__table__  # type: ignore[attr-defined]
    stmt = (
        insert(table)
        .values(team=team, n=step)
        .on_conflict_do_update(index_elements=[table.c.team], set_={"n": table.c.n + step})
        .returning(table.c.n)
    )
    result = await session.exec(stmt)
    return int(result.scalar_one())


async def lock_turn(session: AsyncSession, team: str) -> int:
    """Take ``team``'s turn row (created at 0) until the transaction ends; its value.

    Every assignment for the team takes it first, so they happen one after another
    even when only some of them draw a round-robin turn."""
    return await _upsert_turn(session, team, 0)


async def next_turn(session: AsyncSession, team: str) -> int:
    """Advance ``team``'s round-robin counter and return its new value (1, 2, 3 ...)."""
    return await _upsert_turn(session, team, 1)


async def advance_turn(session: AsyncSession, team: str, turns: int) -> int:
    """Advance ``team``'s counter by ``turns`` drawn at once (an intake batch); its new value."""
    return await _upsert_turn(session, team, turns)


async def open_counts(session: AsyncSession, reps: Sequence[str]) -> dict[str, int]:
    """Open inquiries held by each of ``reps`` (absent: none)."""
    if not reps:
        return {}
    statuses = [s.value for s in OPEN_STATUSES]
    rows = await session.exec(
        select(Inquiry.assignee, func.count())
        .where(col(Inquiry.assignee).in_(list(reps)), col(Inquiry.status).in_(statuses))
        .group_by(col(Inquiry.assignee))
    )
    return {str(rep): int(n) for rep, n in rows.all() if rep}


async def recent_from_sender(session: AsyncSession, address: str, since: datetime) -> int:
    """Inquiries from ``address`` received since ``since``."""
    if not address:
        return 0
    rows = await session.exec(
        select(func.count()).where(
            col(Inquiry.contact_email) == address.lower(), col(Inquiry.received_at) >= since
        )
    )
    return int(rows.one())


async def previous_owner(session: AsyncSession, contact_id: int) -> str:
    """The rep who had the contact's latest assigned inquiry ("" when none)."""
    rows = await session.exec(
        select(Inquiry.assignee)
        .where(col(Inquiry.contact_id) == contact_id, col(Inquiry.assignee).is_not(None))
        .order_by(col(Inquiry.received_at).desc(), col(Inquiry.id).desc())
        .limit(1)
    )
    return rows.first() or ""


def _patterns(address: str) -> tuple[str, str]:
    address = address.strip().lower()
    return address, "@" + address.rpartition("@")[2]


async def sender_verdict(session: AsyncSession, address: str) -> str:
    """``blocked``, ``allowed`` or "" for ``address`` (its own verdict, else its domain's)."""
    if not address or "@" not in address:
        return ""
    return verdict_of(await sender_verdicts(session, [address]), address)


async def sender_verdicts(session: AsyncSession, addresses: list[str]) -> dict[str, str]:
    """The verdicts (pattern -> verdict) that bear on any of ``addresses``, in one query."""
    patterns = {p for a in addresses if a and "@" in a for p in _patterns(a)}
    if not patterns:
        return {}
    rows = await session.exec(
        select(SenderVerdict).where(col(SenderVerdict.pattern).in_(sorted(patterns)))
    )
    return {row.pattern: row.verdict for row in rows.all()}


def verdict_of(found: dict[str, str], address: str) -> str:
    """``sender_verdict`` of ``address`` from ``found`` (``sender_verdicts`` of a list holding it)."""
    if not address or "@" not in address:
        return ""
    own, domain = _patterns(address)
    return found.get(own) or found.get(domain) or ""


async def set_sender_verdict(
    session: AsyncSession,
    address: str,
    verdict: str,
    *,
    whole_domain: bool = False,
    by: str = "",
    inquiry_id: int | None = None,
    now: datetime,
) -> str:
    """Record ``verdict`` on the address (or its whole domain); returns the pattern stored.

    "allowed" on an address also lifts a block of it; a domain block stays for the
    domain's other senders."""
    own, domain = _patterns(address)
    pattern = domain if whole_domain else own
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = SenderVerdict.__table__  # type: ignore[attr-defined]
    values = {"verdict": verdict, "by": by, "inquiry_id": inquiry_id, "at": now}
    stmt = (
        insert(table)
        .values(pattern=pattern, **values)
        .on_conflict_do_update(index_elements=[table.c.pattern], set_=values)
    )
    await session.exec(stmt)
    return pattern
