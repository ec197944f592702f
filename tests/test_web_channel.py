"""The channel page's store queries on SQLite and PostgreSQL: filters, counts, sort, paging
and full-text search kept in sync by the migration's triggers (issue 13, "real volume")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col

from bot.usecases.ingest import InboundMessage, ingest
from store import inquiries as repo
from store import search
from store.engine import transaction
from store.models import Contact, Inquiry, Message
from store.search import ListFilter

OPEN = ("new", "claimed", "replied", "waiting", "follow_up")


def inbound(n: int, **kw: Any) -> InboundMessage:
    data: dict[str, Any] = {
        "source": "website",
        "source_kind": "webhook",
        "dedupe_key": f"chan-{n}",
        "email": f"buyer{n}@shop{n % 3}.example",
        "name": f"Buyer {n}",
        "subject": f"Quote {n} for panels",
        "text": f"Please quote item {n}.",
        "team": "sales",
        "mailbox": "sales",
    }
    data.update(kw)
    return InboundMessage(**data)


async def ids(service: Any, f: ListFilter, *, limit: int = 100, offset: int = 0) -> list[int]:
    async with transaction(service.ctx.readers) as session:
        page = await search.list_page(session, f, offset=offset, limit=limit)
    return [int(r.id) for r in page.rows if r.id is not None]


async def test_search_filters_counts_and_sync(
    db_url: str, make_settings: Any, service_factory: Any
) -> None:
    service = await service_factory(make_settings(db_url))
    ctx = service.ctx
    maria = (
        await ingest(
            ctx,
            inbound(
                1,
                email="Maria.Lopez@Buyer.example",
                name="Maria Lopez",
                company="Lopez Importaciones",
                country="ES",
                subject="Quotation for 2 containers of LED panels",
                text="Delivery to Valencia, 2x40HQ please.",
            ),
        )
    ).inquiry_id
    wang = (
        await ingest(
            ctx,
            inbound(
                2,
                email="wang@buyer.example.cn",
                name="王先生",
                company="宁波贸易有限公司",
                country="CN",
                language="zh",
                subject="询价：LED 面板",
                text="请报价，送到宁波港。",
                team="asia",
            ),
        )
    ).inquiry_id
    other = (await ingest(ctx, inbound(3, country="DE", subject="Catalogue request"))).inquiry_id

    sales = ListFilter(team="sales", statuses=OPEN)
    asia = ListFilter(team="asia", statuses=OPEN)

    async def find(f: ListFilter, q: str) -> list[int]:
        return await ids(service, ListFilter(**{**f.__dict__, "q": q}))

    assert await find(sales, "LED") == [maria]  # subject
    assert await find(sales, "valencia") == [maria]  # body, any case
    assert await find(sales, "Lopez Importaciones") == [maria]  # company, every term
    assert await find(sales, "maria.lopez@buyer") == [maria]  # part of the address
    assert await find(sales, "2x40HQ") == [maria]
    assert await find(sales, "Valencia nowhere") == []  # all terms must match
    assert await find(sales, "catalogue") == [other]
    assert await find(asia, "宁波") == [wang]  # two CJK characters
    assert await find(asia, "宁波贸易") == [wang]
    assert await find(asia, "王先生") == [wang]
    assert await find(sales, "宁波") == []  # another team's inquiry never shows
    assert await find(sales, "%") == []  # wildcards are text
    assert await find(sales, '"') == sorted([maria, other], key=lambda i: i)  # no terms at all

    # a customer reply threads in: its text becomes findable
    async with transaction(ctx.sessions) as session:
        session.add(
            Message(
                inquiry_id=other,
                direction="in",
                channel="email",
                from_address="buyer3@shop0.example",
                subject="Re: Catalogue request",
                text="Also interested in Zebracrossing lights",
                created_at=ctx.clock(),
            )
        )
    assert await find(sales, "zebracrossing") == [other]

    # the contact's name is corrected: the index follows
    async with transaction(ctx.sessions) as session:
        inquiry = await repo.get_inquiry(session, other)
        await session.exec(
            update(Contact)
            .where(col(Contact.id) == inquiry.contact_id)
            .values(name="Quintessa Vandermeer")
        )
    assert await find(sales, "Vandermeer") == [other]

    # filters and counts per status
    async with transaction(ctx.sessions) as session:
        outcome = await repo.claim(session, maria, "alice", ctx.clock())
        assert outcome.won
    assert await ids(service, ListFilter(team="sales", statuses=OPEN, owner="alice")) == [maria]
    assert await ids(service, ListFilter(team="sales", statuses=OPEN, owner="-")) == [other]
    assert await ids(service, ListFilter(team="sales", statuses=("claimed",))) == [maria]
    assert await ids(service, ListFilter(team="sales", country="DE")) == [other]
    assert await ids(service, ListFilter(team="asia", language="zh")) == [wang]
    assert await ids(service, ListFilter(team="sales", source="shop")) == []
    async with transaction(ctx.readers) as session:
        counts = await search.status_counts(session, ListFilter(team="sales"))
        facets = await search.facet_values(session, "sales")
        assert await search.matches(session, ListFilter(team="sales", owner="alice"), maria)
        assert not await search.matches(session, ListFilter(team="sales", owner="-"), maria)
    assert counts["new"] == 1 and counts["claimed"] == 1 and counts["won"] == 0
    assert facets["country"] == ["DE", "ES"]

    # archive: a won item stays findable
    async with transaction(ctx.sessions) as session:
        await session.exec(update(Inquiry).where(col(Inquiry.id) == maria).values(status="won"))
    assert await find(
        ListFilter(team="sales", statuses=("won", "lost", "spam", "closed")), "LED"
    ) == [maria]
    assert await find(sales, "LED") == []


async def test_every_open_item_is_reachable_most_overdue_first(
    db_url: str, make_settings: Any, service_factory: Any
) -> None:
    service = await service_factory(make_settings(db_url))
    ctx = service.ctx
    made = [(await ingest(ctx, inbound(n))).inquiry_id for n in range(45)]
    # make a few overdue by different amounts, the oldest due first
    now = ctx.clock()
    async with transaction(ctx.sessions) as session:
        for minutes, number in ((90, made[30]), (60, made[10]), (5, made[40])):
            await session.exec(
                update(Inquiry)
                .where(col(Inquiry.id) == number)
                .values(claim_due_at=now - timedelta(minutes=minutes))
            )
    f = ListFilter(team="sales", statuses=OPEN)
    seen: list[int] = []
    for offset in range(0, 45, 20):
        seen += await ids(service, f, limit=20, offset=offset)
    assert sorted(seen) == sorted(made)  # every one reachable, none twice
    assert seen[:3] == [made[30], made[10], made[40]]
    newest = await ids(service, ListFilter(team="sales", statuses=OPEN, sort="newest"), limit=3)
    assert newest == sorted(made, reverse=True)[:3]
    async with transaction(ctx.readers) as session:
        page = await search.list_page(session, f, offset=40, limit=20)
    assert page.total == 45 and len(page.rows) == 5
