"""Round robin under concurrency: two service instances (two processes' worth of engines and
pools) on one database, 200 inquiries at once: every on-duty rep gets their share (±1), never
an away or a full one; the turn counter ends at exactly the number of round-robin draws."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from sqlmodel import col, select

from bot.usecases.ingest import InboundMessage, ingest
from config.loading import settings_from_mapping
from store.engine import transaction
from store.models import AssignmentTurn, Event, Inquiry
from tests.conftest import API_TOKEN, SECRET

ON_DUTY = ("ann", "bea", "cid", "dan")


def config(db_url: str) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": 8080, "public_url": "http://claimdesk.test"},
        "store": {"url": db_url},
        "security": {"secret_key": SECRET, "api_tokens": [API_TOKEN]},
        "teams": [
            {
                "name": "sales",
                "locale": "en",
                "timezone": "UTC",
                "business_hours": {"mon-sun": ["00:00-24:00"]},
                "members": [*ON_DUTY, "eve", "fay"],
                "assignment": "round_robin",
            }
        ],
        "reps": [
            *({"id": r, "name": r.title()} for r in ON_DUTY),
            {"id": "eve", "name": "Eve", "away": True},
            {"id": "fay", "name": "Fay", "max_open": 3},
        ],
        "rules": [{"name": "fay's", "when": {"keywords": ["prefill"]}, "then": {"assign": "fay"}}],
    }


def inquiry(n: int, text: str = "Please quote 300 valves for our plant.") -> InboundMessage:
    return InboundMessage(
        source="website",
        source_kind="webhook",
        dedupe_key=f"rr-{n}",
        email=f"buyer{n}@factory{n % 7}.example",
        subject=f"Quote {n}",
        text=text,
        language="en",
        team="sales",
    )


async def test_round_robin_is_fair_and_atomic_across_two_services(
    db_url: str, service_factory: Any
) -> None:
    settings = settings_from_mapping(config(db_url), source="rr.toml", env={})
    first = await service_factory(settings, channels={})
    second = await service_factory(settings, channels={})
    for n in range(3):  # fay gets three by name: she is full from then on
        await ingest(first.ctx, inquiry(10_000 + n, "prefill: quote 10 valves"))
    results = await asyncio.gather(
        *(ingest((first, second)[n % 2].ctx, inquiry(n)) for n in range(200))
    )
    assert all(r.created for r in results)
    async with transaction(first.ctx.sessions) as session:
        rows = (
            await session.exec(
                select(Inquiry).where(col(Inquiry.dedupe_key).in_([f"rr-{n}" for n in range(200)]))
            )
        ).all()
        turn = await session.get(AssignmentTurn, "sales")
        assigned = (await session.exec(select(Event).where(col(Event.kind) == "assigned"))).all()
    share = Counter(r.assignee for r in rows)
    assert set(share) == set(ON_DUTY), share  # never eve (away) nor fay (full)
    assert max(share.values()) - min(share.values()) <= 1, share
    assert all(r.status == "claimed" for r in rows)
    assert len(assigned) == 203
    assert turn is not None and turn.n == 200  # fay's three by name drew no turn
