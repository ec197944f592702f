"""Migration 0008: a new inquiry is indexed for search once, when its first message is
stored, and stays findable by subject, text and customer; 0008 goes down and up again
(SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import select

from store.engine import transaction
from store.migrate import _alembic_config
from store.models import Inquiry
from store.search import ListFilter, list_page
from tests.test_intake_hygiene import form


def _to(revision: str) -> Any:
    def run(sync_connection: Any) -> None:
        from alembic import command

        cfg = _alembic_config()
        cfg.attributes["connection"] = sync_connection
        if revision == "head":
            command.upgrade(cfg, revision)
        else:
            command.downgrade(cfg, revision)

    return run


async def _insert_triggers(conn: AsyncConnection) -> set[str]:
    if conn.dialect.name == "postgresql":
        rows = await conn.execute(
            text(
                "SELECT trigger_name FROM information_schema.triggers"
                " WHERE event_object_table = 'inquiry' AND event_manipulation = 'INSERT'"
            )
        )
    else:
        rows = await conn.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'inquiry'")
        )
        return {r[0] for r in rows if r[0].endswith("_ai")}
    return {r[0] for r in rows}


async def _found(service: Any, words: str) -> list[int]:
    async with transaction(service.ctx.readers) as session:
        team = (await session.exec(select(Inquiry.team))).first() or ""
        page = await list_page(session, ListFilter(team=team, q=words), offset=0, limit=10)
    return [row.id for row in page.rows if row.id is not None]


async def test_a_new_inquiry_is_found_by_subject_text_and_customer(
    db_url: str, make_settings: Any, service_factory: Any
) -> None:
    service = await service_factory(make_settings(db_url))
    number = (
        await service.intake(
            form("li@buyer.cn", "Li Wei", key="s1", message="需要报价 LED 面板 600x600")
        )
    ).inquiry_id
    assert await _found(service, "Quote request") == [number]
    assert await _found(service, "LED 面板") == [number]
    assert await _found(service, "Li Wei") == [number]
    assert await _found(service, "buyer.cn") == [number]
    async with service.ctx.engine.connect() as conn:
        assert await _insert_triggers(conn) == set()
        await conn.run_sync(_to("0007r"))
        old = "inquiry_fts_ai" if conn.dialect.name == "sqlite" else "inquiry_search_ai"
        assert await _insert_triggers(conn) == {old}
        await conn.run_sync(_to("head"))
        assert await _insert_triggers(conn) == set()
        await conn.commit()
