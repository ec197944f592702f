"""Commits other processes should hear of at once (a webhook process's new inquiries).

On PostgreSQL a writer calls ``announce`` inside its transaction: ``pg_notify`` is
delivered when (and only if) the transaction commits, to every session that
``LISTEN``s on ``CHANNEL`` (``bot.runtime.foreign_commits``). SQLite needs no
announcement: a reader sees another connection's commit in ``PRAGMA data_version``.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

#: The PostgreSQL notification channel of claimdesk's "something was committed".
CHANNEL = "claimdesk_changed"

_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', '')")


async def announce(session: AsyncSession) -> None:
    """Tell the other processes, when this transaction commits, that it changed something
    (PostgreSQL; nothing to do on SQLite)."""
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        await conn.execute(_NOTIFY)
