"""Benchmark: the cost of one scheduler tick with 100,000 open inquiries, 1,000 of them due.

On SQLite (a file in a temporary directory) and on PostgreSQL (``--postgres-url``, or a
private server started like the tests do when the binaries are installed). For each
backend: the median (and every run) of a tick that handles the due inquiries (each gets
its first nudge: an Event, an outbox row and a compare-and-set), the median of an idle
tick (nothing due: the cost of the indexed query alone), and the tracemalloc peak
during one more busy tick (measured apart: tracing slows the tick down). The time is a moved clock; the numbers are real seconds.

    .venv/bin/python bench/bench_clock.py --out bench/results.json [--inquiries 100000] [--due 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import pstats
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, update  # noqa: E402
from sqlmodel import col, select  # noqa: E402

from bench.results import merge_into  # noqa: E402
from bot.app import Service  # noqa: E402
from config.loading import settings_from_mapping  # noqa: E402
from connectors.memory import RecordingChannel  # noqa: E402
from store.engine import transaction  # noqa: E402
from store.models import Contact, Inquiry  # noqa: E402

log = logging.getLogger("bench.clock")


class Clock:
    """A clock the benchmark moves."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def settings(url: str) -> Any:
    return settings_from_mapping(
        {
            "store": {"url": url},
            "security": {"secret_key": "bench-secret-0123456789"},
            "teams": [
                {
                    "name": "sales",
                    "members": [f"rep{i}" for i in range(10)],
                    "leads": ["lead"],
                    "managers": ["boss"],
                    "business_hours": {"mon-sun": ["00:00-24:00"]},
                    "sla": {"claim_within": "15m", "nudge_every": "15m", "escalate_after": "2h"},
                }
            ],
            "reps": [{"id": f"rep{i}", "name": f"Rep {i}"} for i in range(10)]
            + [{"id": "lead", "name": "Lead"}, {"id": "boss", "name": "Boss"}],
        },
        source="bench",
        env={},
    )


async def seed(service: Service, total: int, due: int, now: datetime) -> list[int]:
    """``total`` open inquiries; the first ``due`` are due now, the rest in a week."""
    async with transaction(service.ctx.sessions) as session:
        contact = Contact(name="Buyer", created_at=now)
        session.add(contact)
        await session.flush()
        contact_id = contact.id
    later = now + timedelta(days=7)
    chunk = 5000
    for start in range(0, total, chunk):
        rows = []
        for i in range(start, min(total, start + chunk)):
            at = now - timedelta(minutes=1) if i < due else later
            rows.append(
                {
                    "team": "sales",
                    "status": "new",
                    "source": "bench",
                    "source_kind": "webhook",
                    "dedupe_key": f"bench-{i}",
                    "contact_id": contact_id,
                    "contact_email": "b@x.test",
                    "subject": f"Inquiry {i}",
                    "snippet": "",
                    "language": "en",
                    "country": "",
                    "category": "",
                    "priority": "normal",
                    "tags": [],
                    "rule": "",
                    "suggested_owner": "",
                    "mailbox": "",
                    "outcome_reason": "",
                    "received_at": now - timedelta(minutes=20),
                    "claim_due_at": at,
                    "next_due_at": at,
                    "escalation_level": 0,
                    "updated_at": now,
                    "version": 1,
                }
            )
        async with transaction(service.ctx.sessions) as session:
            await session.execute(insert(Inquiry), rows)
    async with service.ctx.sessions() as session:
        ids = (
            await session.exec(
                select(Inquiry.id).where(col(Inquiry.next_due_at) <= now).order_by(col(Inquiry.id))
            )
        ).all()
    return [i for i in ids if i is not None]


async def measure(
    url: str, total: int, due: int, repeat: int, profile: str = "", chunk: int = 0
) -> dict[str, Any]:
    clock = Clock()
    channel = RecordingChannel(name="memory", team_destinations={"sales": ["C-BENCH"]})
    service = await Service.create(settings(url), clock=clock, channels={"memory": channel})
    assert service.scheduler is not None
    service.scheduler.settings.digests = False
    service.scheduler.settings.batch = max(due, 500)
    if chunk:
        service.scheduler.settings.chunk = chunk
    try:
        began = time.perf_counter()
        due_ids = await seed(service, total, due, clock.now)
        seeded = time.perf_counter() - began
        busy: list[float] = []
        peaks: list[float] = []
        steps: list[int] = []
        idle: list[float] = []
        for run in range(repeat + 1):
            if run:
                clock.now += timedelta(hours=1)
                async with transaction(service.ctx.sessions) as session:
                    at = clock.now - timedelta(minutes=1)
                    await session.execute(
                        update(Inquiry)
                        .where(col(Inquiry.id).in_(due_ids))
                        .values(claim_due_at=at, next_due_at=at)
                    )
            traced = (
                run == repeat
            )  # the last run measures memory; tracemalloc slows everything down
            if traced:
                tracemalloc.start()
            profiler = cProfile.Profile() if profile and run == 0 else None
            if profiler is not None:
                profiler.enable()
            began = time.perf_counter()
            report = await service.scheduler.tick()
            elapsed = time.perf_counter() - began
            if profiler is not None:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
                profiler.dump_stats(profile)
            if traced:
                peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
                tracemalloc.stop()
            else:
                busy.append(elapsed)
            steps.append(report.steps)
            began = time.perf_counter()
            await service.scheduler.tick()
            idle.append(time.perf_counter() - began)
        return {
            "inquiries": total,
            "due": due,
            "seed_seconds": round(seeded, 2),
            "tick_seconds_median": round(statistics.median(busy), 4),
            "tick_seconds_runs": [round(x, 4) for x in busy],
            "per_due_inquiry_ms": round(statistics.median(busy) / max(1, due) * 1000, 3),
            "idle_tick_ms_median": round(statistics.median(idle) * 1000, 2),
            "tracemalloc_peak_mb": round(max(peaks), 2),
            "steps_per_tick": steps,
        }
    finally:
        await service.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="write the results as JSON here")
    parser.add_argument("--inquiries", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--postgres-url",
        default="",
        help="postgresql+asyncpg://... (default: start a private server)",
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--chunk", type=int, default=0, help="inquiries per transaction (default: the clock's)"
    )
    parser.add_argument(
        "--profile",
        default="",
        help="cProfile the first busy tick of each backend: print the top and dump stats here",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, Any] = {"benchmark": "clock tick", "python": sys.version.split()[0]}
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            results["sqlite"] = asyncio.run(
                measure(url, args.inquiries, args.due, args.repeat, args.profile, args.chunk)
            )
            print("sqlite:", json.dumps(results["sqlite"]))
    if not args.skip_postgres:
        server = None
        url = args.postgres_url
        if not url:
            from tests.support.postgres import PostgresServer, find_bindir

            if find_bindir() is not None:
                server = PostgresServer()
                server.start()
                url = server.new_database()
        try:
            if url:
                results["postgresql"] = asyncio.run(
                    measure(url, args.inquiries, args.due, args.repeat, args.profile, args.chunk)
                )
                print("postgresql:", json.dumps(results["postgresql"]))
            else:
                results["postgresql"] = {"skipped": "no PostgreSQL binaries and no --postgres-url"}
                print("postgresql: skipped (no server)")
        finally:
            if server is not None:
                server.stop()
    before = {"sqlite": 0.75, "postgresql": 0.61}  # issue 14, build machine, 100,000 / 1,000
    print("\nissue 14: tick with 1,000 due   before (the issue) | now (median) | target")
    for backend, seconds in before.items():
        now = results.get(backend, {}).get("tick_seconds_median")
        shown = f"{now:.3f} s" if isinstance(now, float) else "skipped"
        print(f"  {backend:<30}  {seconds:.2f} s             | {shown:<12} | < 0.25 s")
    load = os.getloadavg()[0]
    results["load_average_1m"] = round(load, 2)
    print(
        f"  ({args.inquiries} open, {args.due} due; load average {load:.2f} on {os.cpu_count()} CPUs)"
    )
    merge_into(args.out, {"clock": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
