"""Webhook ``Idempotency-Key`` records: remember a key with its body hash, link its inquiry."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import WebhookKey


async def find_key(session: AsyncSession, webhook: str, key: str) -> WebhookKey | None:
    return await session.get(WebhookKey, (webhook, key))


async def existing_keys(session: AsyncSession, webhook: str, keys: list[str]) -> set[str]:
    """Which of ``keys`` of ``webhook`` are recorded already, in one query."""
    if not keys:
        return set()
    rows = await session.exec(
        select(WebhookKey.key).where(
            col(WebhookKey.webhook) == webhook, col(WebhookKey.key).in_(sorted(set(keys)))
        )
    )
    return set(rows.all())


async def add_key(
    session: AsyncSession, webhook: str, key: str, body_sha256: str, now: datetime
) -> None:
    """Insert the key (the caller's transaction fails with ``IntegrityError`` if it exists)."""
    session.add(WebhookKey(webhook=webhook, key=key, body_sha256=body_sha256, created_at=now))
    await session.flush()


async def link_inquiry(session: AsyncSession, webhook: str, key: str, inquiry_id: int) -> None:
    row = await session.get(WebhookKey, (webhook, key))
    if row is not None and row.inquiry_id is None:
        row.inquiry_id = inquiry_id
        session.add(row)


async def record_key(
    session: AsyncSession, webhook: str, key: str, body_sha256: str, now: datetime, inquiry_id: int
) -> None:
    """Insert the key already linked to its inquiry: one Core statement, no ORM flush
    (the group-committed intake writes the inquiry and its key in one transaction)."""
    conn = await session.connection()  # Core on the connection: not the ORM's bulk-insert path
    await conn.execute(
        insert(WebhookKey).values(
            webhook=webhook, key=key, body_sha256=body_sha256, created_at=now, inquiry_id=inquiry_id
        )
    )
