"""Benchmark: IMAP mailbox ingest through a real Dovecot, and APPEND-to-inquiry latency with IDLE.

A private Dovecot (``tests.support.dovecot.DovecotServer``, 127.0.0.1, free port) gets a
backlog of ``--messages`` mails by IMAP APPEND (varied senders and subjects, about a
quarter in Chinese or Russian, one in eight with a small PDF attachment). Then:

- **throughput**: ``MailboxIntake.sync_once`` ingests the whole backlog into a fresh
  database (parse, dedupe, thread lookup, route, one transaction per message; per batch
  of 50 one UID STORE of the processed flag and one mailbox state save): messages/s,
  repeated ``--repeat`` times with a fresh database each (the processed flags are
  cleared between runs, untimed), median reported. On SQLite (a file in a temp dir) and on PostgreSQL (a
  private server as the tests start it, ``fsync=off``) when its binaries are installed.
- **latency**: the service runs with its background tasks (mailbox loop in IDLE, outbox
  worker, live feed, scheduler) on an empty mailbox; ``--probes`` times one mail is
  APPENDed (stdlib imaplib, from a thread) and the database is polled every 5 ms until
  its inquiry row exists. Median and p90 of APPEND-start to row, in milliseconds.
  About 500 ms of it is Dovecot's own: it batches mailbox changes for 500 ms
  (``NOTIFY_DELAY_MSECS``) before it tells an IDLE session about them.

    .venv/bin/python bench/bench_imap.py --out bench/results.json [--messages 2000] [--probes 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func  # noqa: E402
from sqlmodel import col, select  # noqa: E402

from bench.results import merge_into  # noqa: E402
from bot.app import Service  # noqa: E402
from bot.runtime.mail_intake import MailboxIntake, open_mailbox  # noqa: E402
from config.loading import settings_from_mapping  # noqa: E402
from config.schema import Settings  # noqa: E402
from store.engine import transaction  # noqa: E402
from store.models import Inquiry, MailboxState  # noqa: E402
from tests.support.dovecot import DovecotServer, find_dovecot  # noqa: E402

log = logging.getLogger("bench.imap")

SUBJECTS_EN = (
    "Quotation for {n} pcs LED panel 600x600",
    "RFQ: solar street lights, order {n}",
    "Price inquiry - stainless steel fittings ({n})",
    "Samples and MOQ for item {n}",
)
SUBJECTS_ZH = ("询价：LED面板 {n} 件", "关于订单 {n} 的报价请求", "请报价 太阳能路灯 {n}")
SUBJECTS_RU = ("Запрос цены на панели, заказ {n}", "Коммерческое предложение {n}")
BODY_EN = "Dear sales team,\n\nplease quote {n} pieces, delivery to Valencia, CIF.\n\nBest regards,\n{name}\n"
BODY_ZH = "您好，\n\n请报价 {n} 件，交货地点上海，FOB 价格。\n\n谢谢！\n{name}\n"
BODY_RU = (
    "Здравствуйте!\n\nПросим прислать цену на {n} шт., доставка в Москву.\n\nС уважением,\n{name}\n"
)
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 12  # ~3 KB, binary: base64 on the wire


def message_id(n: int, tag: str = "bench") -> str:
    return f"<{tag}{n}@bench.example>"


def backlog_message(n: int, *, tag: str = "bench") -> bytes:
    """One varied customer mail; ``n`` makes it unique (Message-ID, subject)."""
    msg = EmailMessage()
    person = n % 311
    domain = ("buyer.example", "import.example.com", "trade.example.cn", "mail.example.ru")[n % 4]
    name = f"Buyer {person}"
    if n % 8 in (1, 5):
        subject, body = SUBJECTS_ZH[n % len(SUBJECTS_ZH)], BODY_ZH
        name = f"王{person}"
    elif n % 10 == 3:
        subject, body = SUBJECTS_RU[n % len(SUBJECTS_RU)], BODY_RU
        name = f"Ольга {person}"
    else:
        subject, body = SUBJECTS_EN[n % len(SUBJECTS_EN)], BODY_EN
    msg["From"] = f"{name} <buyer{person}@{domain}>"
    msg["To"] = "sales@seller.test"
    msg["Subject"] = subject.format(n=n)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id(n, tag)
    msg.set_content(body.format(n=n + 1, name=name))
    if n % 8 == 0:
        msg.add_attachment(PDF, maintype="application", subtype="pdf", filename=f"spec-{n}.pdf")
    return msg.as_bytes()


def settings(url: str, server: DovecotServer, user: str) -> Settings:
    return settings_from_mapping(
        {
            "store": {"url": url},
            "security": {"secret_key": "bench-secret-0123456789"},
            "teams": [
                {
                    "name": "sales",
                    "members": [f"rep{i}" for i in range(10)],
                    "business_hours": {"mon-sun": ["00:00-24:00"]},
                }
            ],
            "reps": [{"id": f"rep{i}", "name": f"Rep {i}"} for i in range(10)],
            "mailboxes": [
                {
                    "name": "sales",
                    "from_address": "sales@seller.test",
                    "team": "sales",
                    "imap_host": server.host,
                    "imap_port": server.port,
                    "imap_tls": "none",
                    "imap_user": user,
                    "imap_password": server.users[user],
                    "backfill_days": 100000,
                }
            ],
        },
        source="bench",
        env={},
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear-interpolation percentile (``fraction`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def clear_processed_flags(server: DovecotServer, user: str) -> None:
    with server.imap(user) as client:
        client.select("INBOX")
        client.uid("STORE", "1:*", "-FLAGS.SILENT", "($Claimdesk)")


async def ingest_backlog(url: str, server: DovecotServer, user: str) -> dict[str, Any]:
    """One timed ``sync_once`` of the whole backlog into the (fresh) database at ``url``."""
    service = await Service.create(settings(url, server, user))
    try:
        intake = MailboxIntake(service.ctx, service.ctx.settings.mailboxes[0])
        mailbox = open_mailbox(intake.box)
        await mailbox.connect()
        try:
            started = time.perf_counter()
            outcomes = await intake.sync_once(mailbox)
            elapsed = time.perf_counter() - started
        finally:
            await mailbox.close()
        async with transaction(service.ctx.sessions) as session:
            stored = (await session.exec(select(func.count()).select_from(Inquiry))).one()
    finally:
        await service.close()
    actions: dict[str, int] = {}
    for outcome in outcomes:
        actions[outcome.action] = actions.get(outcome.action, 0) + 1
    return {
        "seconds": round(elapsed, 3),
        "messages_per_s": round(len(outcomes) / elapsed, 1),
        "outcomes": actions,
        "inquiries": int(stored),
    }


def throughput(
    new_url: Callable[[int], str], server: DovecotServer, user: str, repeat: int
) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for run in range(repeat):
        clear_processed_flags(server, user)
        result = asyncio.run(ingest_backlog(new_url(run), server, user))
        print(f"  run {run + 1}: {result}")
        runs.append(result)
    rates = [r["messages_per_s"] for r in runs]
    return {
        "messages_per_s_median": round(statistics.median(rates), 1),
        "seconds_median": round(statistics.median(r["seconds"] for r in runs), 3),
        "runs": runs,
    }


async def idle_latency(url: str, server: DovecotServer, user: str, probes: int) -> dict[str, Any]:
    """APPEND one mail at a time while the service's IDLE loop runs; ms until its inquiry row."""
    service = await Service.create(settings(url, server, user))
    service.start_background()
    loop = asyncio.get_running_loop()
    try:
        deadline = loop.time() + 30
        while True:  # wait until the loop has synced once (then it IDLEs)
            async with transaction(service.ctx.sessions) as session:
                if await session.get(MailboxState, ("sales", "INBOX")) is not None:
                    break
            if loop.time() > deadline:
                raise RuntimeError("the mailbox loop did not start")
            await asyncio.sleep(0.05)
        samples: list[float] = []
        for probe in range(probes):
            await asyncio.sleep(0.5)  # back in IDLE
            raw = backlog_message(100_000 + probe, tag=f"probe{probe}-")
            key = "mail:" + message_id(100_000 + probe, tag=f"probe{probe}-")
            started = time.perf_counter()
            appending = asyncio.create_task(asyncio.to_thread(server.append, user, raw))
            give_up = time.perf_counter() + 30
            while True:
                async with transaction(service.ctx.sessions) as session:
                    found = (
                        await session.exec(select(Inquiry.id).where(col(Inquiry.dedupe_key) == key))
                    ).first()
                if found is not None:
                    samples.append((time.perf_counter() - started) * 1000)
                    break
                if time.perf_counter() > give_up:
                    raise RuntimeError(f"probe {probe} never became an inquiry")
                await asyncio.sleep(0.005)
            await appending
    finally:
        await service.close()
    return {
        "probes": len(samples),
        "median_ms": round(statistics.median(samples), 1),
        "p90_ms": round(percentile(samples, 0.9), 1),
        "all_ms": [round(s, 1) for s in samples],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--out", default="", help="merge the results into this JSON file (key 'imap')"
    )
    parser.add_argument("--messages", type=int, default=2000, help="backlog size")
    parser.add_argument("--probes", type=int, default=10, help="single-message latency probes")
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per database")
    parser.add_argument("--quick", action="store_true", help="200 messages, 3 probes, 1 run")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.probes, args.repeat = min(args.messages, 200), min(args.probes, 3), 1
    logging.basicConfig(level=logging.WARNING)
    if find_dovecot() is None:
        print("dovecot not installed (apt-get install dovecot-imapd); nothing measured")
        return 1

    results: dict[str, Any] = {
        "benchmark": "imap ingest (Dovecot, MailboxIntake)",
        "python": sys.version.split()[0],
        "messages": args.messages,
        "repeat": args.repeat,
    }
    postgres: Any = None
    if not args.skip_postgres:
        from tests.support.postgres import PostgresServer, find_bindir

        if find_bindir() is not None:
            postgres = PostgresServer()
            postgres.start()
    with DovecotServer() as server, tempfile.TemporaryDirectory() as tmp:
        server.add_user("backlog", "bench-backlog")
        server.add_user("probe", "bench-probe")
        raws = [backlog_message(n) for n in range(args.messages)]
        started = time.perf_counter()
        server.append_many("backlog", raws)
        append_seconds = time.perf_counter() - started
        results["backlog"] = {
            "append_seconds": round(append_seconds, 2),
            "megabytes": round(sum(len(r) for r in raws) / 1e6, 2),
            "with_attachment": sum(1 for n in range(args.messages) if n % 8 == 0),
        }
        print(f"backlog: {args.messages} messages appended in {append_seconds:.1f} s")

        print("throughput, sqlite:")
        results["sqlite"] = throughput(
            lambda run: f"sqlite+aiosqlite:///{Path(tmp) / f'ingest{run}.db'}",
            server,
            "backlog",
            args.repeat,
        )
        print(f"  median {results['sqlite']['messages_per_s_median']} messages/s")
        if postgres is not None:
            print("throughput, postgresql:")
            results["postgresql"] = throughput(
                lambda run: str(postgres.new_database()), server, "backlog", args.repeat
            )
            print(f"  median {results['postgresql']['messages_per_s_median']} messages/s")
        else:
            results["postgresql"] = {"skipped": "PostgreSQL binaries not installed"}
            print("throughput, postgresql: skipped (PostgreSQL binaries not installed)")

        latency: dict[str, Any] = {}
        latency["sqlite"] = asyncio.run(
            idle_latency(
                f"sqlite+aiosqlite:///{Path(tmp) / 'latency.db'}", server, "probe", args.probes
            )
        )
        print(f"APPEND -> inquiry with IDLE, sqlite: {latency['sqlite']}")
        if postgres is not None:
            server.add_user("probe-pg", "bench-probe-pg")
            latency["postgresql"] = asyncio.run(
                idle_latency(str(postgres.new_database()), server, "probe-pg", args.probes)
            )
            print(f"APPEND -> inquiry with IDLE, postgresql: {latency['postgresql']}")
        results["append_to_inquiry"] = latency
    if postgres is not None:
        postgres.stop()

    if args.out:
        merge_into(args.out, {"imap": results})
        print(f"written to {args.out} (key 'imap')")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
