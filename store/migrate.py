"""Applying the Alembic migrations shipped in ``store/migrations`` (on start and by ``claimdesk migrate``).

On PostgreSQL an advisory lock serialises concurrent starts of several
processes, so exactly one of them upgrades the schema.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x636C6D64  # "clmd"


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("store").joinpath("migrations")))
    return cfg


def _upgrade(sync_connection: Any) -> None:
    cfg = _alembic_config()
    cfg.attributes["connection"] = sync_connection
    command.upgrade(cfg, "head")


def _current(sync_connection: Any) -> str | None:
    rev = MigrationContext.configure(sync_connection).get_current_revision()
    return rev


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        before = await conn.run_sync(_current)
        await conn.run_sync(_upgrade)
        after = await conn.run_sync(_current)
    if before != after:
        log.info("database schema migrated", extra={"from_revision": before, "to_revision": after})


async def schema_is_current(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        current = await conn.run_sync(_current)
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    return current == head
