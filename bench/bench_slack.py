"""Slack benchmark: webhook -> card, claim ack latency, click -> card update under a burst.

Everything runs in this process against the fake Slack Web API (tests/fakes/slack_api.py)
on 127.0.0.1, a SQLite file in a temp dir, and claimdesk's real HTTP app with Slack's
production pacing (1 post/s per channel) unless ``--pacing`` says otherwise:

- **webhook_to_post**: signed ``POST /webhooks/website`` -> ``chat.postMessage`` received
  by the fake, one webhook at a time, spaced by the pacing interval (p50, p99 seconds).
- **claim_ack**: ``--clicks`` concurrent signed Claim clicks on as many cards (distinct
  inquiries): HTTP answer time of ``/slack/events`` (p50, p99 seconds).
- **click_update_during_burst**: ``--burst`` new inquiries are ingested (bulk lane,
  paced), then ``--probes`` claims are clicked one per second while the burst is being
  posted; time from click to the card's ``chat.update`` at the fake (p50, p99, max).

    .venv/bin/python bench/bench_slack.py --out bench/slack.json [--cards 20] [--clicks 50] [--burst 500] [--probes 10] [--pacing 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from bot.app import Service  # noqa: E402
from bot.runtime.outbox_worker import WorkerSettings  # noqa: E402
from config.loading import settings_from_mapping  # noqa: E402
from connectors.channels import Pacing  # noqa: E402
from connectors.slack.channel import SlackChannel  # noqa: E402
from connectors.webhooks import InboundForm, sign_body  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.support.slack import CHANNEL, fixture, form_body, signed_headers, slack_config  # noqa: E402

log = logging.getLogger("bench.slack")
HOOK_SECRET = "bench-hook-secret"


def _config(db_url: str, api: str) -> dict[str, Any]:
    base = {
        "server": {"host": "127.0.0.1", "port": 8080, "public_url": "http://claimdesk.bench"},
        "store": {"url": db_url},
        "security": {"secret_key": "bench-secret-key-0123456789abcdef"},
        "webhooks": [{"name": "website", "secret": HOOK_SECRET, "team": "sales"}],
        "teams": [{"name": "sales", "locale": "en", "members": ["alice"]}],
        "reps": [
            {"id": "alice", "name": "Alice", "email": "alice@seller.test", "slack_id": "UALICE"}
        ],
    }
    return slack_config(base, api)


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"n": len(ordered), "p50": statistics.median(ordered), "p99": p99, "max": ordered[-1]}


async def _wait(check: Any, limit: float) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(0.002)
    raise TimeoutError("bench: condition not reached")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fake = FakeSlack(
        channels={CHANNEL: {"is_member": True}}, users={"UALICE": {"email": "alice@seller.test"}}
    )
    await fake.start()
    tmp = tempfile.TemporaryDirectory()
    settings = settings_from_mapping(
        _config(f"sqlite+aiosqlite:///{tmp.name}/bench.db", fake.base_url), source="bench", env={}
    )
    channel = SlackChannel.from_settings(settings.slack, pacing=Pacing(post_interval=args.pacing))
    service = await Service.create(
        settings,
        channels={"slack": channel},
        worker_settings=WorkerSettings(poll_seconds=0.05),
        feed_poll_seconds=1.0,
    )
    client: TestClient[Any, Any] = TestClient(TestServer(service.web_app(), host="127.0.0.1"))
    await client.start_server()
    results: dict[str, Any] = {"pacing_seconds": args.pacing}
    try:
        # 1. webhook -> chat.postMessage
        latencies = []
        for i in range(args.cards):
            raw = json.dumps(
                {
                    "email": f"b{i}@buyer.example",
                    "name": "B",
                    "subject": f"Bench card {i}",
                    "message": "Quote please",
                }
            ).encode()
            before = len(fake.messages(CHANNEL))
            started = time.monotonic()
            response = await client.post(
                "/webhooks/website",
                data=raw,
                headers={
                    "Content-Type": "application/json",
                    "X-Claimdesk-Signature": sign_body(HOOK_SECRET, raw),
                },
            )
            assert response.status == 202
            await _wait(lambda b=before: len(fake.messages(CHANNEL)) > b, 30)
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(args.pacing + 0.05)
        results["webhook_to_post"] = _quantiles(latencies)

        # 2. concurrent claim clicks: ack latency
        numbers = [
            (
                await service.intake(
                    InboundForm(
                        webhook="website",
                        email=f"c{i}@buyer.example",
                        name="C",
                        subject=f"Claim {i}",
                        message="x",
                        dedupe_key=f"claim-{i}",
                    )
                )
            ).inquiry_id
            for i in range(args.clicks)
        ]

        async def one_click(number: int) -> float:
            body = form_body(
                fixture(
                    "block_actions_button.json",
                    action_id=f"cd1:claim:{number}",
                    user="UALICE",
                    message_ts="1.000",
                )
            )
            started = time.monotonic()
            response = await client.post(
                "/slack/events", data=body.encode(), headers=signed_headers(body)
            )
            await response.read()
            assert response.status == 200
            return time.monotonic() - started

        results["claim_ack"] = _quantiles(
            list(await asyncio.gather(*(one_click(n) for n in numbers)))
        )

        # 3. click -> chat.update while a burst is being posted
        probes = [
            (
                await service.intake(
                    InboundForm(
                        webhook="website",
                        email=f"p{i}@buyer.example",
                        name="P",
                        subject=f"Probe {i}",
                        message="x",
                        dedupe_key=f"probe-{i}",
                    )
                )
            ).inquiry_id
            for i in range(args.probes)
        ]
        await _wait(
            lambda: all(any(f"#{n} " in m["text"] for m in fake.messages(CHANNEL)) for n in probes),
            # the probes' cards queue behind the earlier steps' posts (paced per channel)
            30 + (args.cards + args.clicks + args.probes) * args.pacing * 2,
        )
        probe_ts = {
            n: next(m["ts"] for m in fake.messages(CHANNEL) if f"#{n} " in m["text"])
            for n in probes
        }
        for i in range(args.burst):
            await service.intake(
                InboundForm(
                    webhook="website",
                    email=f"u{i}@buyer.example",
                    name="U",
                    subject=f"Burst {i}",
                    message="x",
                    dedupe_key=f"burst-{i}",
                )
            )
        update_latency = []
        for n in probes:
            before = len(fake.calls_of("chat.update"))
            body = form_body(
                fixture(
                    "block_actions_button.json",
                    action_id=f"cd1:claim:{n}",
                    user="UALICE",
                    message_ts=probe_ts[n],
                )
            )
            started = time.monotonic()
            await client.post("/slack/events", data=body.encode(), headers=signed_headers(body))
            await _wait(
                lambda b=before, ts=probe_ts[n]: any(
                    c.args.get("ts") == ts for c in fake.calls_of("chat.update")[b:]
                ),
                60,
            )
            update_latency.append(time.monotonic() - started)
            await asyncio.sleep(1.0)
        results["click_update_during_burst"] = _quantiles(update_latency)
        results["burst_posted_during_probes"] = (
            len(fake.messages(CHANNEL)) - args.cards - args.probes
        )
        results["burst"] = args.burst
    finally:
        await client.close()
        await service.close()
        await fake.stop()
        tmp.cleanup()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="")
    parser.add_argument("--cards", type=int, default=20)
    parser.add_argument("--clicks", type=int, default=50)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--pacing", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    results = asyncio.run(run(args))
    text = json.dumps({"slack": results}, indent=2)
    sys.stdout.write(text + "\n")
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
