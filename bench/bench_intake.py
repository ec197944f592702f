"""Webhook intake benchmark: claimdesk's ``POST /webhooks/website`` against a bare aiohttp ceiling.

What is measured (see bench/README.md for how to read it):

- **claimdesk**: the full ``Service.web_app`` (webhook auth by HMAC-SHA256, parse,
  validation, language/spam/priority classification, routing, one SQLite transaction
  with inquiry + message + events + outbox, outbox worker, live feed and scheduler
  running in the background), SQLite file database in a temp dir, no chat channels.
- **bare**: an aiohttp handler that parses the JSON body and answers 202: the ceiling
  of the HTTP stack on this machine, measured in the same run.

Each server runs in its own process (``multiprocessing``, spawn), the load generator in
this one, so they never share an event loop. Every request is signed and carries a
unique ``Idempotency-Key`` and a unique body (no request is a duplicate).

- **open loop** at fixed offered loads (default 50, 100, 200 req/s, 5 s each): requests
  are sent on schedule whether or not earlier ones have been answered; latency is taken
  from the scheduled send time (so a server that falls behind is charged for the queue),
  throughput is the number of 202s divided by the time from the first send to the last answer.
- **closed loop**: 16 concurrent senders, each sending its next request when the previous
  one is answered, for a fixed time: the maximum throughput.

Every measurement is repeated ``--repeats`` times (default 3), each time on a fresh server
process and a fresh database; the medians are printed and written to ``--out`` (merged
into the file under the key ``"intake"``).

Run: ``.venv/bin/python -m bench.bench_intake`` (about 2.5 min) or ``--quick`` (about 30 s).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import multiprocessing as mp
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.results import merge_into  # noqa: E402
from bot.runtime.heap import freeze_startup_heap  # noqa: E402

SECRET = "bench-hook-secret"
KEY = "bench-secret-key-0123456789abcdef"
TIMEOUT = 10.0
DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"


# -- the servers (child processes) ---------------------------------------------------


def settings_for(url: str, assignment: str = "pool") -> Any:
    """The benches' claimdesk: one signed webhook into one team assigning by ``assignment``,
    no chat channels (the reps take no notice emails: there is no mailbox to send them)."""
    from config.loading import settings_from_mapping

    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 8080},
        "store": {"url": url},
        "security": {"secret_key": KEY},
        "webhooks": [{"name": "website", "secret": SECRET, "team": "sales"}],
        "teams": [
            {
                "name": "sales",
                "display_name": "Sales",
                "locale": "en",
                "timezone": "Europe/Berlin",
                "members": ["alice", "bob"],
                "assignment": assignment,
            }
        ],
        "reps": [
            {"id": "alice", "name": "Alice", "email": "alice@seller.test", "email_notices": False},
            {"id": "bob", "name": "Bob", "email": "bob@seller.test", "email_notices": False},
        ],
    }
    return settings_from_mapping(data, source="bench", env={})


_bare_ids = itertools.count(1)


async def _bare_handler(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response(
        {"inquiry": next(_bare_ids), "status": "accepted", "email": body.get("email")}, status=202
    )


async def _serve(
    kind: str,
    conn: Connection,
    background: bool,
    db_path: str = "",
    role: str = "all",
    assignment: str = "pool",
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    service: Any = None
    tmp: Any = None
    if kind == "bare":
        app = web.Application()
        app.router.add_post("/webhooks/{name}", _bare_handler)
    else:
        from bot.app import Service

        if db_path:  # shared with another server process (``role``)
            db = Path(db_path)
        else:
            tmp = tempfile.TemporaryDirectory(prefix="claimdesk-bench-")
            db = Path(tmp.name) / "claimdesk.db"
        service = await Service.create(
            settings_for(f"sqlite+aiosqlite:///{db}", assignment), role=role
        )
        app = service.web_app(background=background)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    freeze_startup_heap()  # as ``claimdesk serve`` does
    await web.SockSite(runner, sock).start()
    conn.send(sock.getsockname()[1])
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # wait for "stop"
    stored = -1
    if service is not None:
        from sqlalchemy import text

        async with service.ctx.engine.connect() as db:
            stored = int((await db.execute(text("SELECT COUNT(*) FROM inquiry"))).scalar_one())
    rss = _rss_mb()
    await runner.cleanup()
    if service is not None:
        await service.close()
    if tmp is not None:
        tmp.cleanup()
    conn.send((stored, rss))


def _rss_mb() -> tuple[float, float]:
    """This process's resident set size now and at its peak, in MB (Linux ``/proc``)."""
    now = peak = 0.0
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return round(now, 1), round(peak, 1)


def _server_main(
    kind: str,
    conn: Connection,
    background: bool,
    profile: str = "",
    db_path: str = "",
    role: str = "all",
    assignment: str = "pool",
) -> None:
    logging.basicConfig(level=logging.WARNING)
    if not profile or kind == "bare":
        asyncio.run(_serve(kind, conn, background, db_path, role, assignment))
        return
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(_serve(kind, conn, background, assignment=assignment))
    finally:
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(45)
        stats.sort_stats("cumulative").print_stats(70)
        Path(profile).write_text(out.getvalue(), encoding="utf-8")


class ServerProcess:
    """One server (``claimdesk`` or ``bare``) in a child process on an ephemeral port."""

    def __init__(
        self,
        kind: str,
        *,
        background: bool = True,
        profile: str = "",
        db_path: str = "",
        role: str = "all",
        assignment: str = "pool",
    ) -> None:
        """``db_path``: a SQLite file shared with another server (default: a fresh one of
        its own); ``role``: ``Service.role`` (``webhooks`` beside an ``all`` server);
        ``assignment``: the team's strategy."""
        ctx = mp.get_context("spawn")
        self.kind = kind
        self.rss_mb = (0.0, 0.0)
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_server_main,
            args=(kind, child, background, profile, db_path, role, assignment),
            daemon=True,
        )

    def start(self) -> str:
        self.process.start()
        if not self.conn.poll(60):
            raise RuntimeError(f"{self.kind} server did not start")
        return f"http://127.0.0.1:{self.conn.recv()}/webhooks/website"

    def stop(self) -> int:
        """Stops the server; returns how many inquiries it stored (-1 for bare)."""
        self.conn.send("stop")
        stored = -2
        if self.conn.poll(120):
            stored, self.rss_mb = self.conn.recv()
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()
        return stored


# -- the load generator -------------------------------------------------------------


class Requests:
    """Pre-built, signed, unique request bodies (so building them costs nothing during a run)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.n = 0

    def next(self) -> tuple[bytes, dict[str, str]]:
        self.n += 1
        i = self.n
        body = json.dumps(
            {
                "email": f"buyer{i}@importer{i % 97}.example",
                "name": f"Buyer {i}",
                "company": f"Importer {i % 97} Ltd",
                "country": "DE",
                "subject": f"Quotation request {self.prefix}-{i}: LED panels 600x600",
                "message": f"Hello, please quote {100 + i} pcs of 600x600 LED panels, "
                "delivery to Hamburg. Thank you.",
            }
        ).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        return body, {
            "Content-Type": "application/json",
            "X-Claimdesk-Signature": signature,
            "Idempotency-Key": f"{self.prefix}-{i}",
        }

    def batch(self, count: int) -> list[tuple[bytes, dict[str, str]]]:
        return [self.next() for _ in range(count)]


@dataclass
class Result:
    """One measurement."""

    offered: float  # req/s offered (0 for closed loop)
    sent: int = 0
    ok: int = 0
    errors: int = 0
    throughput: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)

    def finish(self, elapsed: float) -> Result:
        self.throughput = self.ok / elapsed if elapsed > 0 else 0.0
        if self.latencies:
            ordered = sorted(self.latencies)
            self.p50_ms = 1000 * ordered[len(ordered) // 2]
            self.p99_ms = 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return self


async def send_request(
    http: aiohttp.ClientSession, url: str, request: tuple[bytes, dict[str, str]]
) -> bool:
    body, headers = request
    try:
        async with http.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status == 202
    except (TimeoutError, aiohttp.ClientError):
        return False


async def open_loop(
    http: aiohttp.ClientSession,
    url: str | list[str],
    requests: Requests,
    rate: float,
    seconds: float,
) -> Result:
    """``rate`` requests a second on schedule (round robin over several ``url``)."""
    urls = [url] if isinstance(url, str) else url
    count = max(1, int(rate * seconds))
    batch = requests.batch(count)
    result = Result(offered=rate, sent=count)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    last_done = start

    async def one(i: int) -> None:
        nonlocal last_done
        due = start + i / rate
        ok = await send_request(http, urls[i % len(urls)], batch[i])
        done = loop.time()
        last_done = max(last_done, done)
        if ok:
            result.ok += 1
            result.latencies.append(done - due)
        else:
            result.errors += 1

    tasks = []
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return result.finish(last_done - start)


async def closed_loop(
    http: aiohttp.ClientSession,
    url: str | list[str],
    requests: Requests,
    concurrency: int,
    seconds: float,
) -> Result:
    """``concurrency`` senders, each sending its next request once the last is answered;
    with several ``url`` the senders are spread over them round robin."""
    urls = [url] if isinstance(url, str) else url
    result = Result(offered=0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + seconds

    async def sender(target: str) -> None:
        while loop.time() < deadline:
            sent_at = loop.time()
            ok = await send_request(http, target, requests.next())
            result.sent += 1
            if ok:
                result.ok += 1
                result.latencies.append(loop.time() - sent_at)
            else:
                result.errors += 1

    await asyncio.gather(*(sender(urls[n % len(urls)]) for n in range(concurrency)))
    return result.finish(loop.time() - start)


async def measure_server(
    kind: str,
    repeat: int,
    rates: list[float],
    seconds: float,
    concurrency: int,
    closed_seconds: float,
    *,
    background: bool = True,
    profile: str = "",
    webhook_processes: int = 0,
    assignment: str = "pool",
) -> tuple[dict[str, Result], int, tuple[float, float]]:
    shared = None
    db_path = ""
    if kind != "bare" and webhook_processes:  # one SQLite file for all of them
        shared = tempfile.TemporaryDirectory(prefix="claimdesk-bench-")
        db_path = str(Path(shared.name) / "claimdesk.db")
    server = ServerProcess(
        kind, background=background, profile=profile, db_path=db_path, assignment=assignment
    )
    url = server.start()
    helpers = [
        ServerProcess(kind, db_path=db_path, role="webhooks", assignment=assignment)
        for _ in range(webhook_processes if kind != "bare" else 0)
    ]
    targets = [url] + [helper.start() for helper in helpers]
    results: dict[str, Result] = {}
    requests = Requests(f"{kind}-{repeat}-{os.getpid()}")
    probes_ok = 0
    try:
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            # warm up: connections, imports, first database pages
            await asyncio.gather(*(send_request(http, url, requests.next()) for _ in range(20)))
            # the closed loop first, on a server with no backlog; after each load a probe
            # request waits behind whatever the server still holds (answered requests the
            # client gave up on), so no measurement inherits the previous one's queue
            results["closed"] = await closed_loop(
                http, targets, requests, concurrency, closed_seconds
            )
            probes_ok = await _drain(http, url, requests)
            for rate in rates:
                results[f"open_{rate:g}"] = await open_loop(http, targets, requests, rate, seconds)
                probes_ok += await _drain(http, url, requests)
    finally:
        for helper in helpers:
            helper.stop()
        stored = server.stop()
        if shared is not None:
            shared.cleanup()
    sent_ok = 20 + probes_ok + sum(r.ok for r in results.values())
    return results, (stored - sent_ok if stored >= 0 else 0), server.rss_mb


async def _drain(http: aiohttp.ClientSession, url: str, requests: Requests) -> int:
    """Wait until the server has worked off its queue; how many probes it accepted."""
    accepted = 0
    for _ in range(30):
        try:
            body, headers = requests.next()
            async with http.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=120)
            ) as response:
                await response.read()
                accepted += int(response.status == 202)
                return accepted
        except (TimeoutError, aiohttp.ClientError):
            continue
    return accepted


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def summarize(runs: list[dict[str, Result]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in runs[0]:
        rs = [run[name] for run in runs]
        out[name] = {
            "offered_rps": rs[0].offered,
            "throughput_rps": round(_median([r.throughput for r in rs]), 1),
            "p50_ms": round(_median([r.p50_ms for r in rs]), 2),
            "p99_ms": round(_median([r.p99_ms for r in rs]), 2),
            "errors": int(_median([float(r.errors) for r in rs])),
            "sent": int(_median([float(r.sent) for r in rs])),
        }
    return out


#: Issue 14's figures for claimdesk before the work (build machine, medians of 3).
ISSUE_BEFORE = {
    "closed": "92-135 req/s, p99 ~200 ms, 0.01x bare",
    "open_100": "p99 71-93 ms",
    "open_200": "saturated at 90-136 req/s, p99 2.5 s",
    "rss": "217 MB (after ~1,000 fuzzed requests)",
}


def print_issue_table(
    summary: dict[str, dict[str, dict[str, float]]], rss: dict[str, float], load: float
) -> None:
    """Issue 14's table: its 'before' figures beside this run's."""
    print("\nissue 14: before (the issue) | now (this run, medians) | target")
    rows: list[tuple[str, str, str, str]] = []
    cd, bare = summary["claimdesk"], summary["bare"]
    if "closed" in cd:
        ratio = cd["closed"]["throughput_rps"] / bare["closed"]["throughput_rps"]
        rows.append(
            (
                "closed, 16 senders",
                ISSUE_BEFORE["closed"],
                f"{cd['closed']['throughput_rps']:.0f} req/s, p99 {cd['closed']['p99_ms']:.0f} ms, "
                f"{ratio:.2f}x bare ({bare['closed']['throughput_rps']:.0f})",
                ">= 0.25x bare",
            )
        )
    for name in ("open_100", "open_200", "open_500"):
        if name in cd:
            row = cd[name]
            rows.append(
                (
                    f"open {row['offered_rps']:g}/s",
                    ISSUE_BEFORE.get(name, "-"),
                    f"{row['throughput_rps']:.0f} req/s, p99 {row['p99_ms']:.0f} ms",
                    "p99 < 50 ms at 500/s",
                )
            )
    rows.append(
        ("RSS after the run", ISSUE_BEFORE["rss"], f"{rss['claimdesk']:.0f} MB", "< 200 MB")
    )
    for label, before, now, target in rows:
        print(f"  {label:<20}| {before:<40}| {now:<48}| {target}")
    print(f"  (load average {load:.2f} on {os.cpu_count()} CPUs during this run)")


def print_table(summary: dict[str, dict[str, dict[str, float]]], concurrency: int) -> None:
    names = list(summary["bare"])
    print()
    print(f"{'load':<16}{'server':<11}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for name in names:
        label = (
            f"open {summary['bare'][name]['offered_rps']:g}/s"
            if name != "closed"
            else f"closed c={concurrency}"
        )
        for kind in ("bare", "claimdesk"):
            row = summary[kind][name]
            print(
                f"{label:<16}{kind:<11}{row['throughput_rps']:>9.1f}{row['p50_ms']:>9.2f}"
                f"{row['p99_ms']:>9.2f}{int(row['errors']):>8}"
            )
            label = ""
        bare, cd = summary["bare"][name], summary["claimdesk"][name]
        ratio = cd["throughput_rps"] / bare["throughput_rps"] if bare["throughput_rps"] else 0.0
        print(f"{'':<16}{'ratio':<11}{ratio:>9.2f}  (claimdesk/bare throughput)")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    runs: dict[str, list[dict[str, Result]]] = {"bare": [], "claimdesk": []}
    lost = 0
    rss: dict[str, list[float]] = {"bare": [], "claimdesk": []}
    started = time.monotonic()
    for repeat in range(args.repeats):
        for kind in ("bare", "claimdesk"):
            print(f"repeat {repeat + 1}/{args.repeats}: {kind} ...", flush=True)
            results, missing, (rss_now, _peak) = await measure_server(
                kind,
                repeat,
                rates,
                args.seconds,
                args.concurrency,
                args.closed_seconds,
                background=not args.no_background,
                profile=args.profile if repeat == 0 else "",
                webhook_processes=args.webhook_processes,
                assignment=args.assignment,
            )
            runs[kind].append(results)
            rss[kind].append(rss_now)
            if kind == "claimdesk" and missing:
                lost += missing
                print(
                    f"  stored - accepted = {missing} ("
                    + (
                        "requests the client gave up on, stored after its timeout)"
                        if missing > 0
                        else "WARNING: acknowledged requests missing)"
                    )
                )
    summary = {kind: summarize(r) for kind, r in runs.items()}
    print_table(summary, args.concurrency)
    ratios = {
        name: round(
            summary["claimdesk"][name]["throughput_rps"] / summary["bare"][name]["throughput_rps"],
            3,
        )
        if summary["bare"][name]["throughput_rps"]
        else 0.0
        for name in summary["bare"]
    }
    elapsed = time.monotonic() - started
    rss_median = {kind: round(_median(v), 1) for kind, v in rss.items()}
    print(
        f"\nRSS after the run: claimdesk {rss_median['claimdesk']:.0f} MB, "
        f"bare {rss_median['bare']:.0f} MB (medians)"
    )
    load = os.getloadavg()
    print(f"{args.repeats} repeat(s), medians; total {elapsed:.0f} s; load average {load[0]:.2f}")
    print_issue_table(summary, rss_median, load[0])
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(sys.argv),
        "settings": {
            "repeats": args.repeats,
            "rates_rps": rates,
            "open_loop_seconds": args.seconds,
            "closed_loop_concurrency": args.concurrency,
            "closed_loop_seconds": args.closed_seconds,
            "client_timeout_s": TIMEOUT,
            "database": "SQLite file (temp dir), fresh per repeat",
            "claimdesk_background_tasks": not args.no_background,
            "webhook_processes": args.webhook_processes,
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "aiohttp": aiohttp.__version__,
        },
        "results": summary,
        "ratio_claimdesk_over_bare": ratios,
        "stored_minus_accepted": lost,
        "rss_after_run_mb": rss_median,
        "load_average_1m": round(load[0], 2),
        "raw": {
            kind: [
                {
                    name: {k: v for k, v in asdict(r).items() if k != "latencies"}
                    for name, r in run.items()
                }
                for run in rs
            ]
            for kind, rs in runs.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rates", default="50,100,200", help="open-loop offered loads, req/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="per open-loop load")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--closed-seconds", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="1 repeat, 2 s per load (~30 s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--no-background",
        action="store_true",
        help="diagnostic: claimdesk without its worker, live feed and scheduler",
    )
    parser.add_argument(
        "--webhook-processes",
        type=int,
        default=0,
        help="also K 'serve --role webhooks' processes on the same SQLite file; the load is"
        " spread round robin over them and the main one",
    )
    parser.add_argument(
        "--assignment",
        default="pool",
        choices=["pool", "round_robin", "least_open"],
        help="the team's strategy (pool: claimed in chat; the others assign at intake)",
    )
    parser.add_argument(
        "--profile",
        default="",
        help="diagnostic: cProfile the first claimdesk server, top functions into this file",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.seconds, args.closed_seconds = 1, 2.0, 2.0
    report = asyncio.run(run(args))
    key = (
        f"intake_webhook_processes_{args.webhook_processes}" if args.webhook_processes else "intake"
    )
    if args.assignment != "pool":
        key += f"_{args.assignment}"
    merge_into(args.out, {key: report})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
