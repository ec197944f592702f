"""Helpers of the clock tests: a small team with a working calendar, a recording Slack-like
channel, inquiries ingested directly, and a clock walked in steps with a tick at each step."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.app import Service
from bot.usecases.ingest import InboundMessage, ingest
from connectors.memory import RecordedCall, RecordingChannel

BERLIN = ZoneInfo("Europe/Berlin")
CHANNEL = "C-SALES"


def berlin(*args: int) -> datetime:
    """A Berlin wall-clock time as an aware UTC instant."""
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)  # type: ignore[misc]


def clock_config(**sla: Any) -> dict[str, Any]:
    """Overrides for ``make_settings``: team sales (alice, bob, carol away -> bob), lead lena, manager max."""
    levels = {
        "claim_within": "15m",
        "nudge_every": "15m",
        "escalate_after": "20m",
        "first_reply_within": "2h",
        "return_to_pool": True,
    }
    levels.update(sla)
    return {
        "teams": [
            {
                "name": "sales",
                "display_name": "Sales EU",
                "locale": "en",
                "timezone": "Europe/Berlin",
                "members": ["alice", "bob", "carol"],
                "leads": ["lena"],
                "managers": ["max"],
                "mailbox": "sales",
                "business_hours": {"mon-fri": ["09:00-18:00"]},
                "holidays": ["2026-11-30"],
                "sla": levels,
            },
            {
                "name": "asia",
                "display_name": "亚洲组",
                "locale": "zh-CN",
                "members": ["chen"],
                "mailbox": "sales",
            },
        ],
        "reps": [
            {"id": "alice", "name": "Alice", "email": "alice@seller.test", "slack_id": "UALICE"},
            {"id": "bob", "name": "Bob", "email": "bob@seller.test", "slack_id": "UBOB"},
            {"id": "carol", "name": "Carol", "slack_id": "UCAROL", "away": True, "backup": "bob"},
            {"id": "lena", "name": "Lena Lead", "slack_id": "ULENA"},
            {"id": "max", "name": "Max Manager", "slack_id": "UMAX"},
            {"id": "chen", "name": "陈"},
        ],
    }


def recording_channel() -> RecordingChannel:
    return RecordingChannel(name="slack", team_destinations={"sales": [CHANNEL]})


async def new_inquiry(
    service: Service, key: str, *, subject: str = "40HQ LED panels", country: str = "ES"
) -> int:
    result = await ingest(
        service.ctx,
        InboundMessage(
            source="website",
            source_kind="webhook",
            dedupe_key=key,
            email=f"{key}@buyer.example",
            name="Maria Lopez",
            country=country,
            subject=subject,
            text="Please quote 2,000 pcs.",
            team="sales",
            mailbox="sales",
        ),
    )
    return result.inquiry_id


@dataclass
class Walk:
    """Moves the clock in steps, ticking and delivering at each; records each call with the clock time."""

    service: Service
    clock: Any
    channel: RecordingChannel
    seen: int = 0
    log: list[tuple[datetime, RecordedCall]] = field(default_factory=list)

    async def settle(self) -> list[tuple[datetime, RecordedCall]]:
        await self.service.worker.drain()
        fresh = [(self.clock.now, c) for c in self.channel.calls[self.seen :]]
        self.seen = len(self.channel.calls)
        self.log.extend(fresh)
        return fresh

    async def until(
        self, target: datetime, step: timedelta = timedelta(minutes=5)
    ) -> list[tuple[datetime, RecordedCall]]:
        assert self.service.scheduler is not None
        out: list[tuple[datetime, RecordedCall]] = []
        while self.clock.now < target:
            self.clock.now = min(target, self.clock.now + step)
            report = await self.service.scheduler.tick()
            if report.steps or report.handovers or report.digests:
                out.extend(await self.settle())
        return out


def summary(calls: list[tuple[datetime, RecordedCall]]) -> list[tuple[str, str, str]]:
    """(Berlin time, method, destination) of each call, card updates left out.

    Calls at the same instant to different destinations are delivered
    concurrently, so their relative order is not defined: they are listed by
    destination (a stable sort keeps the order within one destination).
    """
    rows = [
        (at, at.astimezone(BERLIN).strftime("%a %H:%M"), c.method, c.destination)
        for at, c in calls
        if c.method != "update_card"
    ]
    rows.sort(key=lambda row: (row[0], row[3]))
    return [(label, method, dest) for _, label, method, dest in rows]
