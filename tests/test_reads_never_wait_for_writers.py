"""Pure reads never take SQLite's write lock (issue 14).

The scheduler's "what is due?", the away hand-over's look-up, the escalation DM's card and
the digest read the store only. They opened sessions on the write engine, whose every
transaction begins ``BEGIN IMMEDIATE`` outside the in-process write queue and the
cross-process write token: each waited in SQLite's sleeping busy handler for any writer
(up to its 30 s timeout), and while it held the lock, for no write at all, every click and
webhook batch waited for it the same way. Here another writer (a second process, an
admin's ``sqlite3`` shell, a backup) holds the write lock while each read runs: each must
answer at once.
"""

from __future__ import annotations

import ast
import asyncio
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

from bot.runtime.clock.escalation_card import direct_card
from bot.runtime.clock.hand_over import hand_over_from_away
from bot.usecases.digest import compute_digest
from store.models import Outbox
from tests.conftest import MovableClock
from tests.support.clock import berlin, clock_config, new_inquiry, recording_channel

#: far below SQLite's 30 s busy timeout: a read that queued for the write lock fails here
AT_ONCE = 5.0


async def test_reads_answer_while_another_writer_holds_the_lock(
    sqlite_url: str, make_settings: Any, service_factory: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 20, 8, 30))  # before the team's hours: nothing due
    settings = make_settings(sqlite_url, **clock_config())
    service = await service_factory(settings, channels={"slack": recording_channel()}, clock=clock)
    number = await new_inquiry(service, "reads-1", subject="LED panels")
    assert service.scheduler is not None
    service.scheduler.settings.digests = False

    other = sqlite3.connect(
        sqlite_url.split("///", 1)[1], isolation_level=None, check_same_thread=False
    )
    other.execute("BEGIN IMMEDIATE")  # held until the end of the reads
    try:
        report = await asyncio.wait_for(service.scheduler.tick(), AT_ONCE)
        assert (report.due, report.steps, report.handovers) == (0, 0, 0)
        away = frozenset({"carol"})  # clock_config: carol is away and holds nothing
        assert await asyncio.wait_for(hand_over_from_away(service.ctx, clock(), away), AT_ONCE) == 0
        row = Outbox(
            key="dm:test",
            channel="slack",
            kind="dm",
            destination="U-LENA",
            inquiry_id=number,
            payload={"card": "escalation", "text": f"#{number} waits for a claim"},
        )
        card = await asyncio.wait_for(direct_card(service.ctx, row), AT_ONCE)
        assert card is not None and f"#{number} waits for a claim" in str(card)
        team = settings.team("sales")
        digest = await asyncio.wait_for(
            compute_digest(service.ctx, team, date(2026, 11, 21), now=clock()), AT_ONCE
        )
        assert digest.new == 1  # Friday's inquiry, read while the lock was held
    finally:
        other.rollback()
        other.close()


def test_no_session_is_opened_beside_transaction() -> None:
    """``ctx.sessions()`` opened directly is a write-engine session outside the write queue
    (the defect above); every session goes through ``store.engine.transaction``."""
    root = Path(__file__).resolve().parents[1]
    found = []
    for package in ("bot", "connectors", "store", "cards", "routing"):
        for path in sorted((root / package).rglob("*.py")):
            if path == root / "store" / "engine.py":
                continue  # transaction() itself
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in {"sessions", "read_sessions", "readers"}
                ):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert found == [], "open sessions with transaction(ctx.sessions | ctx.readers): " + ", ".join(
        found
    )
