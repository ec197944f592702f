"""The channel page's queries: filtered, sorted, paged listing, counts per status and search.

Full-text search (``q``) runs on the index that migration ``0007w`` keeps in
sync by triggers: SQLite FTS5 (trigram tokenizer) or PostgreSQL ``tsvector``.
Each whitespace-separated term must match somewhere in the subject, the body of
any message or the contact (name, company, addresses):

- SQLite: a term of three characters or more is an FTS5 phrase (the trigram
  index finds substrings, in any script); a shorter one ("宁波", "EU") cannot
  use trigrams and is found by ``instr`` over the indexed text.
- PostgreSQL: a plain word is a prefix query on the ``tsvector`` (GIN index);
  a term with CJK characters or punctuation (an address, "2x40HQ") is an
  ``ILIKE`` substring over the same document, since the ``simple`` parser keeps
  a Chinese run or an address as one token.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal_column, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import Inquiry, Status

SORTS = ("due", "oldest", "newest", "updated")
MAX_TERMS = 8
_PLAIN_WORD = re.compile(r"^[^\W_]+$", re.ASCII)


@dataclass(frozen=True)
class ListFilter:
    """What the channel page asks for; blank fields do not filter.

    ``owner``: a rep id, ``""`` for any owner, ``"-"`` for unclaimed (no assignee).
    """

    team: str
    statuses: tuple[str, ...] = ()
    owner: str = ""
    priority: str = ""
    country: str = ""
    language: str = ""
    source: str = ""
    q: str = ""
    sort: str = "due"


@dataclass(frozen=True)
class ListPage:
    """One page of the listing and how many match in all."""

    rows: Sequence[Inquiry]
    total: int
    offset: int
    limit: int


def search_terms(q: str) -> list[str]:
    """The terms of a query: split on white space, quotes dropped, at most ``MAX_TERMS``."""
    return [t for t in q.replace('"', " ").split() if t][:MAX_TERMS]


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _search_condition(dialect: str, terms: list[str]) -> ColumnElement[bool]:
    inquiry_id = col(Inquiry.id)
    if dialect == "postgresql":
        parts: list[Any] = []
        for i, term in enumerate(terms):
            if _PLAIN_WORD.match(term):
                cond = text(f"s.tsv @@ to_tsquery('simple', :tsq{i})").bindparams(
                    **{f"tsq{i}": f"{term}:*"}
                )
            else:
                cond = text(f"s.document ILIKE :like{i} ESCAPE '\\'").bindparams(
                    **{f"like{i}": _like(term)}
                )
            parts.append(cond)
        sub: Any = (
            select(literal_column("s.inquiry_id"))
            .select_from(text("inquiry_search AS s"))
            .where(and_(*parts))
        )
        return inquiry_id.in_(sub)
    long_terms = [t for t in terms if len(t) >= 3]
    short_terms = [t for t in terms if len(t) < 3]
    parts = []
    if long_terms:
        match = " AND ".join('"' + t.replace('"', '""') + '"' for t in long_terms)
        parts.append(text("inquiry_fts MATCH :fts_match").bindparams(fts_match=match))
    for i, term in enumerate(short_terms):
        parts.append(
            text(
                f"(instr(lower(subject), :short{i}) > 0 OR instr(lower(body), :short{i}) > 0"
                f" OR instr(lower(contact), :short{i}) > 0)"
            ).bindparams(**{f"short{i}": term.lower()})
        )
    sub_fts: Any = (
        select(literal_column("rowid")).select_from(text("inquiry_fts")).where(and_(*parts))
    )
    return inquiry_id.in_(sub_fts)


def _due_expr() -> Any:
    """The due time the card counts down to: claim for new, first reply for claimed."""
    return case(
        (col(Inquiry.status) == Status.NEW.value, col(Inquiry.claim_due_at)),
        (
            and_(
                col(Inquiry.status) == Status.CLAIMED.value,
                col(Inquiry.first_reply_at).is_(None),
            ),
            col(Inquiry.reply_due_at),
        ),
        else_=None,
    )


def _conditions(
    dialect: str, f: ListFilter, *, with_status: bool = True
) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [col(Inquiry.team) == f.team]
    if with_status and f.statuses:
        conds.append(col(Inquiry.status).in_(list(f.statuses)))
    if f.owner == "-":
        conds.append(col(Inquiry.assignee).is_(None))
    elif f.owner:
        conds.append(col(Inquiry.assignee) == f.owner)
    for attr, value in (
        (Inquiry.priority, f.priority),
        (Inquiry.country, f.country),
        (Inquiry.language, f.language),
        (Inquiry.source, f.source),
    ):
        if value:
            conds.append(col(attr) == value)
    terms = search_terms(f.q)
    if terms:
        conds.append(_search_condition(dialect, terms))
    return conds


def _order(sort: str) -> list[Any]:
    received, ident = col(Inquiry.received_at), col(Inquiry.id)
    if sort == "oldest":
        return [received, ident]
    if sort == "newest":
        return [received.desc(), ident.desc()]
    if sort == "updated":
        return [col(Inquiry.updated_at).desc(), ident.desc()]
    due = _due_expr()
    # most overdue first; items without a running clock after them, oldest first
    return [case((due.is_(None), 1), else_=0), due, received, ident]


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


async def list_page(session: AsyncSession, f: ListFilter, *, offset: int, limit: int) -> ListPage:
    """The inquiries matching ``f`` in its order, ``limit`` of them from ``offset``."""
    conds = _conditions(_dialect(session), f)
    total = (await session.exec(select(func.count()).select_from(Inquiry).where(*conds))).one()
    rows = (
        await session.exec(
            select(Inquiry).where(*conds).order_by(*_order(f.sort)).offset(offset).limit(limit)
        )
    ).all()
    return ListPage(rows=rows, total=int(total), offset=offset, limit=limit)


async def matches(session: AsyncSession, f: ListFilter, inquiry_id: int) -> bool:
    """Whether inquiry ``inquiry_id`` belongs in the listing ``f`` (for live updates)."""
    conds = _conditions(_dialect(session), f)
    found = (
        await session.exec(select(col(Inquiry.id)).where(col(Inquiry.id) == inquiry_id, *conds))
    ).first()
    return found is not None


async def status_counts(session: AsyncSession, f: ListFilter) -> dict[str, int]:
    """How many inquiries match ``f`` per status (every other filter applies)."""
    conds = _conditions(_dialect(session), f, with_status=False)
    rows = (
        await session.exec(
            select(col(Inquiry.status), func.count()).where(*conds).group_by(col(Inquiry.status))
        )
    ).all()
    counts = {s.value: 0 for s in Status}
    for status, count in rows:
        counts[str(status)] = int(count)
    return counts


async def facet_values(session: AsyncSession, team: str) -> dict[str, list[str]]:
    """The distinct priorities, countries, languages and sources in ``team``, for the filters."""
    facets: dict[str, list[str]] = {}
    for name, column in (
        ("priority", Inquiry.priority),
        ("country", Inquiry.country),
        ("language", Inquiry.language),
        ("source", Inquiry.source),
    ):
        rows = (
            await session.exec(
                select(col(column))
                .where(col(Inquiry.team) == team, col(column) != "")
                .distinct()
                .order_by(col(column))
                .limit(200)
            )
        ).all()
        facets[name] = [str(r) for r in rows]
    return facets


__all__ = [
    "SORTS",
    "ListFilter",
    "ListPage",
    "facet_values",
    "list_page",
    "matches",
    "search_terms",
    "status_counts",
]
