"""Webhook intake on PostgreSQL with 1, 2 and 4 claimdesk processes: the scaling curve, exactly once.

Every process is a full ``Service.web_app`` (worker, live feed and scheduler on) on its own
ephemeral loopback port, all on one PostgreSQL database (a private server started like the
tests do, or ``--postgres-url``; a fresh database per point). A closed loop of
``--concurrency`` senders spreads signed, unique webhooks over the processes round robin.
Every ``--dup-every``-th request is also sent, at the same moment, to the next process
(same body, same Idempotency-Key): the two must answer the same inquiry, one of them as a
duplicate. At the end the database must hold exactly one inquiry per distinct request
accepted, and one Idempotency-Key row per key. Medians of ``--repeats`` runs per point,
merged into ``--out`` under ``"intake_postgresql"``.

    .venv/bin/python bench/bench_intake_pg.py --out bench/results.json [--processes 1,2,4]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_intake import TIMEOUT, Requests, settings_for  # noqa: E402
from bench.results import merge_into  # noqa: E402
from bot.runtime.heap import freeze_startup_heap  # noqa: E402

log = logging.getLogger("bench.intake_pg")

WARM_UP = 20  # requests per process before the measured loop


async def _serve(url: str, conn: Connection) -> None:
    from aiohttp import web

    from bot.app import Service

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # the parent migrated the database: processes starting together must not race on it
    service = await Service.create(settings_for(url), run_migrations=False)
    runner = web.AppRunner(service.web_app(background=True), access_log=None)
    await runner.setup()
    freeze_startup_heap()  # as ``claimdesk serve`` does
    await web.SockSite(runner, sock).start()
    conn.send(sock.getsockname()[1])
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # wait for "stop"
    await runner.cleanup()
    await service.close()
    conn.send("stopped")


def _server_main(url: str, conn: Connection) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_serve(url, conn))


async def _migrate(url: str) -> None:
    from store.engine import create_engine
    from store.migrate import migrate

    engine = create_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


async def _count(url: str) -> tuple[int, int]:
    from sqlalchemy import text

    from store.engine import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as db:
            inquiries = int((await db.execute(text("SELECT COUNT(*) FROM inquiry"))).scalar_one())
            keys = int((await db.execute(text("SELECT COUNT(*) FROM webhook_key"))).scalar_one())
    finally:
        await engine.dispose()
    return inquiries, keys


async def _load(
    urls: list[str], prefix: str, concurrency: int, seconds: float, dup_every: int
) -> dict[str, Any]:
    requests = Requests(prefix)
    latencies: list[float] = []
    accepted: set[int] = set()
    errors = 0
    pairs = 0
    pair_mismatch = 0
    sent = 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + seconds
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)

    async def post(http: aiohttp.ClientSession, url: str, request: Any) -> dict[str, Any] | None:
        try:
            async with http.post(url, data=request[0], headers=request[1]) as response:
                body = await response.json()
                return body if response.status == 202 else None
        except (TimeoutError, aiohttp.ClientError):
            return None

    async def sender(n: int, http: aiohttp.ClientSession) -> None:
        nonlocal errors, pairs, pair_mismatch, sent
        turn = n
        while loop.time() < deadline:
            request = requests.next()
            index = requests.n
            turn += 1
            sent_at = loop.time()
            if dup_every and index % dup_every == 0 and len(urls) > 1:
                one, two = await asyncio.gather(
                    post(http, urls[turn % len(urls)], request),
                    post(http, urls[(turn + 1) % len(urls)], request),
                )
                pairs += 1
                if one is None or two is None or one["inquiry"] != two["inquiry"]:
                    pair_mismatch += 1
                    continue
                if [one["duplicate"], two["duplicate"]].count(True) != 1:
                    pair_mismatch += 1
                answer: dict[str, Any] | None = one
            else:
                answer = await post(http, urls[turn % len(urls)], request)
            sent += 1
            if answer is None:
                errors += 1
                continue
            latencies.append(loop.time() - sent_at)
            accepted.add(int(answer["inquiry"]))

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        # warm up each process as bench_intake.py does (its pool's first connections, the
        # first statements): unmeasured, but counted as accepted for exactly-once
        for url in urls:
            for answer in await asyncio.gather(
                *(post(http, url, requests.next()) for _ in range(WARM_UP))
            ):
                if answer is None:
                    errors += 1
                else:
                    accepted.add(int(answer["inquiry"]))
        start = loop.time()
        deadline = start + seconds
        await asyncio.gather(*(sender(n, http) for n in range(concurrency)))
    elapsed = loop.time() - start
    ordered = sorted(latencies)
    return {
        "sent": sent,
        "accepted": len(accepted),
        "errors": errors,
        "req_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * ordered[len(ordered) // 2], 1) if ordered else 0.0,
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1)
        if ordered
        else 0.0,
        "duplicate_pairs": pairs,
        "pair_mismatches": pair_mismatch,
    }


def one_point(server: Any, processes: int, repeat: int, args: argparse.Namespace) -> dict[str, Any]:
    url = args.postgres_url or server.new_database()
    asyncio.run(_migrate(url))
    ctx = mp.get_context("spawn")
    children = []
    for _ in range(processes):
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_server_main, args=(url, child), daemon=True)
        process.start()
        children.append((process, parent))
    try:
        ports = [parent.recv() for _, parent in children]
        urls = [f"http://127.0.0.1:{port}/webhooks/website" for port in ports]
        result = asyncio.run(
            _load(
                urls,
                f"pg{processes}-{repeat}-{os.getpid()}",
                args.concurrency,
                args.seconds,
                args.dup_every,
            )
        )
    finally:
        for _, parent in children:
            parent.send("stop")
        for process, parent in children:
            if parent.poll(30):
                parent.recv()
            process.join(10)
            if process.is_alive():
                process.kill()
    stored, keys = asyncio.run(_count(url))
    result.update(stored=stored, keys=keys, processes=processes)
    # exactly once: one inquiry and one key row per distinct request answered 202 (a request
    # the client gave up on may have been stored after its timeout: counted apart)
    result["exactly_once"] = (
        stored >= result["accepted"]
        and stored - result["accepted"] <= result["errors"]
        and keys == stored
        and result["pair_mismatches"] == 0
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dup-every", type=int, default=10)
    parser.add_argument("--postgres-url", default="")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    server = None
    if not args.postgres_url:
        from tests.support.postgres import PostgresServer, find_bindir

        if find_bindir() is None:
            print("no PostgreSQL binaries and no --postgres-url: skipped")
            return 0
        server = PostgresServer()
        server.start()
    points: dict[str, Any] = {}
    try:
        for processes in (int(p) for p in args.processes.split(",")):
            runs = []
            for repeat in range(args.repeats):
                runs.append(one_point(server, processes, repeat, args))
                print(f"  {processes} process(es), run {repeat + 1}: {runs[-1]}", flush=True)
            points[str(processes)] = {
                "req_s_median": statistics.median(r["req_s"] for r in runs),
                "p99_ms_median": statistics.median(r["p99_ms"] for r in runs),
                "exactly_once": all(r["exactly_once"] for r in runs),
                "runs": runs,
            }
    finally:
        if server is not None:
            server.stop()
    load = os.getloadavg()[0]
    print(f"\nPostgreSQL intake, {args.concurrency} senders, medians of {args.repeats}:")
    print("processes   req/s   p99 ms   exactly once")
    for processes, point in points.items():
        print(
            f"{processes:>9}  {point['req_s_median']:>6.1f}  {point['p99_ms_median']:>7.1f}"
            f"   {'yes' if point['exactly_once'] else 'NO'}"
        )
    print(f"(load average {load:.2f} on {os.cpu_count()} CPUs)")
    merge_into(
        args.out,
        {
            "intake_postgresql": {
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "points": points,
                "load_average_1m": round(load, 2),
            }
        },
    )
    return 0 if all(p["exactly_once"] for p in points.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
