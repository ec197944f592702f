"""Soak: kill -9 during a webhook burst, and a platform that fails 30 % of its calls.

Everything is loopback: ``claimdesk serve`` runs as real subprocesses on 127.0.0.1
(ephemeral ports), the fake Slack Web API (``tests/fakes/slack_api.py``) runs in this
process on 127.0.0.1, PostgreSQL (when its binaries are installed) is started with the
recipe of ``tests/support/postgres.py``. Each phase is bounded in time and count.

1. **kills**: ``--webhooks`` signed-by-token webhooks (each with its own
   ``Idempotency-Key``) are sent by ``--senders`` concurrent senders; ``--kills`` times,
   at a random moment of the burst, one server process gets SIGKILL and is started again.
   A sender retries whatever was not answered 202 (same key, same body). On PostgreSQL two
   processes share the database and senders use either. At the end: every key answered
   202 is stored exactly once (and under the id it was given), and every inquiry has
   exactly one card in its Slack channel.
2. **faults**: no kills; ``--fault-rate`` of ``chat.postMessage``/``chat.update`` calls
   fail (429 with Retry-After, 500, a hang longer than the client's timeout — and some of
   them only *after* the fake accepted the call, the ambiguous case). Then ``--claims``
   cards are claimed by signed Slack clicks. At the end: every inquiry has exactly one card
   and every claimed inquiry's cards (all copies) show the claimer.

The fault injection is configured here (``FlakySlack``, a subclass of the fake), not in
the fake, so the fake stays a faithful model of Slack.

Cards go to ``--teams`` channels (one team and one webhook per channel) because Slack's
pacing (~1 post/s per channel) would otherwise make 1,000 cards take 1,000 s.

Run: ``.venv/bin/python bench/soak.py --out bench/soak.json`` (a few minutes), or
``--webhooks 200 --kills 5 --fault-webhooks 100 --claims 20`` for a quick run.
Duplicates found are reported, not raised: the exit status is 0 unless the harness itself
fails; ``--strict`` exits 1 when anything was lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench.results import merge_into  # noqa: E402
from store.engine import create_engine  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.support.postgres import PostgresServer, find_bindir, free_port  # noqa: E402
from tests.support.slack import SIGNING_SECRET, fixture, form_body, signed_headers  # noqa: E402

log = logging.getLogger("bench.soak")
HOOK_TOKEN = "soak-hook-token"
SECRET = "soak-secret-key-0123456789abcdef"
_NUMBER = re.compile(r"#(\d+)")


# -- the platform that fails -----------------------------------------------------------


class FlakySlack(FakeSlack):
    """The fake Slack with random faults on card posts and updates (harness-configured).

    Kinds, equally likely: 429 with Retry-After, 500 before doing anything, a hang past the
    client's timeout before doing anything, and the ambiguous two: the call is carried out
    and then answered 500, or carried out and then hangs."""

    fault_rate: float = 0.0
    hang_seconds: float = 16.0  # SlackChannel's client timeout is 15 s
    rng: random.Random
    faulted: Counter[str]

    def configure(self, *, rate: float, seed: int, hang_seconds: float = 16.0) -> None:
        self.fault_rate = rate
        self.rng = random.Random(seed)
        self.hang_seconds = hang_seconds
        self.faulted = Counter()

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if (
            method not in ("chat.postMessage", "chat.update")
            or self.rng.random() >= self.fault_rate
        ):
            return await super()._api(request)
        kind = self.rng.choice(["429", "500", "hang", "accept_500", "accept_hang"])
        self.faulted[kind] += 1
        if kind == "429":
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"}
            )
        if kind == "500":
            return web.Response(status=500, text="upstream error")
        if kind == "hang":
            await asyncio.sleep(self.hang_seconds)
            return web.Response(status=504, text="too late")
        await super()._api(request)  # the platform did it; the answer never arrives intact
        if kind == "accept_hang":
            await asyncio.sleep(self.hang_seconds)
            return web.Response(status=504, text="too late")
        return web.Response(status=500, text="upstream error after commit")


# -- claimdesk processes -----------------------------------------------------------------


def channel_of(team: int) -> str:
    return f"CSOAK{team:04d}"


def write_config(
    path: Path, *, port: int, db_url: str, slack_api: str, teams: int, assignment: str = "pool"
) -> None:
    parts = [
        f"""
[server]
host = "127.0.0.1"
port = {port}
public_url = "http://127.0.0.1:{port}"
[store]
url = "{db_url}"
[security]
secret_key = "{SECRET}"
api_tokens = ["soak-api"]
[slack]
bot_token = "xoxb-test-token"
signing_secret = "{SIGNING_SECRET}"
api_base_url = "{slack_api}"
[[reps]]
id = "alice"
name = "Alice"
email = "alice@seller.test"
slack_id = "UALICE"
"""
    ]
    for t in range(teams):
        parts.append(
            f"""
[[webhooks]]
name = "w{t}"
token = "{HOOK_TOKEN}"
team = "t{t}"
[[teams]]
name = "t{t}"
locale = "en"
members = ["alice"]
assignment = "{assignment}"
business_hours = {{ "mon-sun" = ["00:00-24:00"] }}
destinations = {{ slack_channel = "{channel_of(t)}" }}
"""
        )
    path.write_text("".join(parts), encoding="utf-8")


@dataclass
class ServerProcess:
    """One ``claimdesk serve`` subprocess on its own port (same port after a restart)."""

    config: Path
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, http: aiohttp.ClientSession, *, within: float = 60.0) -> None:
        self.proc = self._spawn()
        self.starts += 1
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"claimdesk exited with {self.proc.returncode}: {self.log_path}")
            with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                async with http.get(f"{self.url}/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"claimdesk did not answer /healthz within {within} s: {self.log_path}")

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "CLAIMDESK_CONFIG"}
        env["PYTHONPATH"] = str(ROOT)
        with self.log_path.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "--config", str(self.config), "serve"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=str(ROOT),
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


# -- senders ---------------------------------------------------------------------------


@dataclass
class Burst:
    """The senders' side: what each key was answered, how many tries it took."""

    run: str
    teams: int
    answered: dict[int, int] = field(default_factory=dict)  # key -> inquiry id
    mismatched: list[int] = field(default_factory=list)  # a key answered with two ids
    attempts: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    progress: asyncio.Event = field(default_factory=asyncio.Event)  # set on each 202


def body_of(k: int) -> dict[str, str]:
    return {
        "email": f"buyer{k}@soak.example",
        "name": f"Buyer {k}",
        "subject": f"Soak {k}",
        "message": f"Please quote item {k}, 100 pcs.",
    }


async def send_one(
    http: aiohttp.ClientSession, servers: list[ServerProcess], burst: Burst, k: int, deadline: float
) -> None:
    raw = json.dumps(body_of(k)).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Claimdesk-Token": HOOK_TOKEN,
        "Idempotency-Key": f"{burst.run}-{k}",
    }
    while time.monotonic() < deadline:
        server = random.choice(servers)
        burst.attempts += 1
        try:
            async with http.post(
                f"{server.url}/webhooks/w{k % burst.teams}", data=raw, headers=headers
            ) as response:
                if response.status == 202:
                    number = int((await response.json())["inquiry"])
                    if burst.answered.setdefault(k, number) != number:
                        burst.mismatched.append(k)
                    burst.progress.set()
                    return
                burst.failures[f"http {response.status}"] += 1
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            burst.failures[type(exc).__name__] += 1
        await asyncio.sleep(random.uniform(0.05, 0.3))


async def send_all(
    http: aiohttp.ClientSession,
    servers: list[ServerProcess],
    burst: Burst,
    count: int,
    senders: int,
    deadline: float,
) -> None:
    keys: asyncio.Queue[int] = asyncio.Queue()
    for k in range(count):
        keys.put_nowait(k)

    async def sender() -> None:
        while not keys.empty():
            await send_one(http, servers, burst, keys.get_nowait(), deadline)

    await asyncio.gather(*(sender() for _ in range(senders)))


async def killer(
    http: aiohttp.ClientSession,
    servers: list[ServerProcess],
    burst: Burst,
    count: int,
    kills: int,
    done: asyncio.Event,
) -> int:
    """SIGKILL a random server at ``kills`` random points of the burst, restart it each time."""
    marks = sorted(random.sample(range(1, max(count, kills + 1)), kills))
    made = 0
    for mark in marks:
        while len(burst.answered) < mark and not done.is_set():
            burst.progress.clear()
            await burst.progress.wait()
        await asyncio.sleep(random.uniform(0.0, 0.3))  # a random moment, not a round count
        victim = random.choice(servers)
        victim.kill()
        made += 1
        log.info("kill %d at %d answered (port %d)", made, len(burst.answered), victim.port)
        await victim.start(http)
    return made


# -- checks ----------------------------------------------------------------------------


async def stored(db_url: str) -> tuple[Counter[str], dict[str, int], dict[str, int]]:
    """(inquiries per subject, subject -> id, outbox rows per state)."""
    engine = create_engine(db_url, readonly=True)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT id, subject FROM inquiry"))).all()
            states = (
                await conn.execute(text("SELECT state, count(*) FROM outbox GROUP BY state"))
            ).all()
    finally:
        await engine.dispose()
    return (
        Counter(str(s) for _, s in rows),
        {str(s): int(i) for i, s in rows},
        {str(s): int(n) for s, n in states},
    )


def cards_by_inquiry(fake: FakeSlack, teams: int) -> dict[int, list[dict[str, Any]]]:
    cards: dict[int, list[dict[str, Any]]] = {}
    for t in range(teams):
        for message in fake.messages(channel_of(t)):
            match = _NUMBER.search(str(message.get("text", "")))
            if match:
                message = dict(message, channel=channel_of(t))
                cards.setdefault(int(match.group(1)), []).append(message)
    return cards


async def settle(db_url: str, fake: FakeSlack, teams: int, expect: int, within: float) -> bool:
    """Wait until every inquiry has a card and the outbox has nothing pending (bounded)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        _, _, states = await stored(db_url)
        if len(cards_by_inquiry(fake, teams)) >= expect and not states.get("pending"):
            return True
        await asyncio.sleep(0.5)
    return False


def verdict(
    burst: Burst, count: int, subjects: Counter[str], ids: dict[str, int], cards: dict[int, Any]
) -> dict[str, Any]:
    stored_ids = set(ids.values())
    twice = sum(1 for k in burst.answered if subjects[f"Soak {k}"] > 1)
    lost = sum(1 for k in burst.answered if subjects[f"Soak {k}"] == 0)
    wrong_id = sum(1 for k, n in burst.answered.items() if ids.get(f"Soak {k}") not in (None, n))
    card_counts = Counter(len(cards.get(i, [])) for i in stored_ids)
    return {
        "webhooks": count,
        "answered_202": len(burst.answered),
        "unanswered": count - len(burst.answered),
        "send_attempts": burst.attempts,
        "send_failures": dict(burst.failures),
        "stored": sum(subjects.values()),
        "stored_twice": twice,
        "lost": lost,
        "answered_with_another_id": wrong_id + len(burst.mismatched),
        "inquiries_without_card": card_counts.get(0, 0),
        "inquiries_with_duplicate_cards": sum(n for c, n in card_counts.items() if c > 1),
        "duplicate_cards": sum((c - 1) * n for c, n in card_counts.items() if c > 1),
    }


# -- phases ----------------------------------------------------------------------------


async def start_servers(
    tmp: Path,
    name: str,
    db_url: str,
    fake: FakeSlack,
    teams: int,
    processes: int,
    assignment: str = "pool",
) -> list[ServerProcess]:
    servers = []
    for p in range(processes):
        port = free_port()
        config = tmp / f"{name}-{p}.toml"
        write_config(
            config,
            port=port,
            db_url=db_url,
            slack_api=fake.base_url,
            teams=teams,
            assignment=assignment,
        )
        servers.append(ServerProcess(config, port, tmp / f"{name}-{p}.log"))
    return servers


def new_fake(teams: int) -> FlakySlack:
    fake = FlakySlack(
        channels={channel_of(t): {"name": f"t{t}", "is_member": True} for t in range(teams)},
        users={"UALICE": {"email": "alice@seller.test", "name": "Alice"}},
    )
    fake.configure(rate=0.0, seed=0)
    return fake


async def kill_phase(args: argparse.Namespace, tmp: Path, db_url: str, processes: int) -> Any:
    fake = new_fake(args.teams)
    await fake.start()
    servers = await start_servers(
        tmp, f"kills-{processes}", db_url, fake, args.teams, processes, args.assignment
    )
    timeout = aiohttp.ClientTimeout(total=10)
    burst = Burst(run=f"kills{processes}-{random.randrange(10**9)}", teams=args.teams)
    began = time.monotonic()
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for server in servers:
                await server.start(http)
            done = asyncio.Event()
            kill_task = asyncio.create_task(
                killer(http, servers, burst, args.webhooks, args.kills, done)
            )
            await send_all(
                http, servers, burst, args.webhooks, args.senders, began + args.time_limit
            )
            done.set()
            burst.progress.set()
            kills = await kill_task
            settled = await settle(
                db_url, fake, args.teams, len(burst.answered), within=args.settle
            )
    finally:
        for server in servers:
            server.stop()
        await fake.stop()
    subjects, ids, states = await stored(db_url)
    result = verdict(burst, args.webhooks, subjects, ids, cards_by_inquiry(fake, args.teams))
    result.update(
        processes=processes,
        assignment=args.assignment,
        kills=kills,
        settled=settled,
        outbox=states,
        seconds=round(time.monotonic() - began, 1),
    )
    return result


async def fault_phase(args: argparse.Namespace, tmp: Path, db_url: str, processes: int) -> Any:
    fake = new_fake(args.teams)
    fake.configure(rate=args.fault_rate, seed=args.seed)
    await fake.start()
    servers = await start_servers(tmp, f"faults-{processes}", db_url, fake, args.teams, processes)
    timeout = aiohttp.ClientTimeout(total=10)
    count = args.fault_webhooks
    burst = Burst(run=f"faults{processes}-{random.randrange(10**9)}", teams=args.teams)
    began = time.monotonic()
    claimed: dict[int, str] = {}
    clicks_refused = 0
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for server in servers:
                await server.start(http)
            await send_all(http, servers, burst, count, args.senders, began + args.time_limit)
            await settle(db_url, fake, args.teams, len(burst.answered), within=args.settle)
            cards = cards_by_inquiry(fake, args.teams)
            targets = random.sample(sorted(cards), min(args.claims, len(cards)))
            for number in targets:
                # click on one of its cards (an orphan copy's button must work as well)
                card = random.choice(cards[number])
                payload = fixture(
                    "block_actions_button.json",
                    action_id=f"cd1:claim:{number}",
                    user="UALICE",
                    channel=card["channel"],
                    message_ts=card["ts"],
                )
                body = form_body(payload)
                server = random.choice(servers)
                async with http.post(
                    f"{server.url}/slack/events", data=body.encode(), headers=signed_headers(body)
                ) as response:
                    if response.status == 200:
                        claimed[number] = "Alice"
                    else:
                        clicks_refused += 1
            settled = await settle(
                db_url, fake, args.teams, len(burst.answered), within=args.settle
            )
    finally:
        for server in servers:
            server.stop()
        await fake.stop()
    subjects, ids, states = await stored(db_url)
    cards = cards_by_inquiry(fake, args.teams)
    result = verdict(burst, count, subjects, ids, cards)
    not_shown = [
        n
        for n, name in claimed.items()
        if not cards.get(n) or any(name not in json.dumps(c, ensure_ascii=False) for c in cards[n])
    ]
    result.update(
        processes=processes,
        fault_rate=args.fault_rate,
        faults=dict(fake.faulted),
        claims=len(claimed),
        clicks_refused=clicks_refused,
        claims_not_shown_on_every_copy=len(not_shown),
        settled=settled,
        outbox=states,
        seconds=round(time.monotonic() - began, 1),
    )
    return result


def bad(result: dict[str, Any]) -> bool:
    keys = (
        "unanswered",
        "stored_twice",
        "lost",
        "answered_with_another_id",
        "inquiries_without_card",
        "duplicate_cards",
        "claims_not_shown_on_every_copy",
    )
    return any(result.get(k) for k in keys) or not result.get("settled", False)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    random.seed(args.seed)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="claimdesk-soak-") as name:
        tmp = Path(name)
        results["sqlite_kills"] = await kill_phase(
            args, tmp, f"sqlite+aiosqlite:///{tmp / 'kills.db'}", 1
        )
        log.warning("sqlite kills: %s", results["sqlite_kills"])
        results["sqlite_faults"] = await fault_phase(
            args, tmp, f"sqlite+aiosqlite:///{tmp / 'faults.db'}", 1
        )
        log.warning("sqlite faults: %s", results["sqlite_faults"])
        if args.no_postgres or find_bindir() is None:
            results["postgres"] = "skipped (no PostgreSQL binaries or --no-postgres)"
            return results
        pg = PostgresServer()
        pg.start()
        try:
            results["postgres_kills"] = await kill_phase(args, tmp, pg.new_database(), 2)
            log.warning("postgres kills: %s", results["postgres_kills"])
            results["postgres_faults"] = await fault_phase(args, tmp, pg.new_database(), 2)
            log.warning("postgres faults: %s", results["postgres_faults"])
        finally:
            pg.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="", help="write the results as JSON (merged by key)")
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--teams", type=int, default=40, help="channels the cards spread over")
    parser.add_argument("--fault-webhooks", type=int, default=300)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--claims", type=int, default=50)
    parser.add_argument(
        "--assignment",
        default="pool",
        choices=["pool", "round_robin", "least_open"],
        help="the teams' strategy in the kill bursts (round_robin: each inquiry is assigned"
        " at intake and its owner told by DM)",
    )
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=600.0, help="per burst, seconds")
    parser.add_argument("--settle", type=float, default=300.0, help="wait for cards, seconds")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--strict", action="store_true", help="exit 1 on any loss/duplicate")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    results = asyncio.run(run(args))
    key = "soak" if args.assignment == "pool" else f"soak_{args.assignment}"
    text_out = json.dumps({key: results}, indent=2)
    sys.stdout.write(text_out + "\n")
    if args.out:
        merge_into(args.out, {key: results})
    failed = any(isinstance(r, dict) and bad(r) for r in results.values())
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
