"""Applying the Alembic migrations shipped in ``store/migrations`` (on start and by ``claimdesk migrate``).

On PostgreSQL an advisory lock serialises concurrent starts of several
processes, so exactly one of them upgrades the schema.
"""

from __future__ import annotations

import importlib.util
import logging
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x636C6D64  # "clmd"


class _InfoAsDebug(logging.Filter):
    """Alembic's INFO lines ("setup plugin ...", "Context impl ...", "Running upgrade ...") are
    noise to a user: they become DEBUG records, shown only where DEBUG is on (``claimdesk -v``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def _alembic_at_debug() -> None:
    """Filter the logger of every alembic module before alembic is imported.

    A logger's filter sees only the records of that logger (not of its
    children), and alembic logs at import time, so the loggers are made here,
    by module name, from alembic's files (``find_spec`` does not import it).
    Alembic is imported only inside the functions below, after this ran.
    """
    spec = importlib.util.find_spec("alembic")
    if spec is None or not spec.submodule_search_locations:
        return
    demote = _InfoAsDebug()
    for location in spec.submodule_search_locations:
        root = Path(location)
        for path in root.rglob("*.py"):
            parts = ("alembic", *path.relative_to(root).with_suffix("").parts)
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            logging.getLogger(name).addFilter(demote)


_alembic_at_debug()


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("store").joinpath("migrations")))
    return cfg


def _upgrade(sync_connection: Any) -> None:
    from alembic import command

    cfg = _alembic_config()
    cfg.attributes["connection"] = sync_connection
    command.upgrade(cfg, "head")


def _current(sync_connection: Any) -> str | None:
    from alembic.runtime.migration import MigrationContext

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
    from alembic.script import ScriptDirectory

    async with engine.connect() as conn:
        current = await conn.run_sync(_current)
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    return current == head
