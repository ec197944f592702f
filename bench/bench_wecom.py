"""WeCom benchmark at the connector boundary: callback answer time and click -> every card updated.

Runs in this process against the fake qyapi (tests/fakes/wecom_api.py) on 127.0.0.1 and
claimdesk's real ``/wecom/callback`` routes with wechatpy's real crypto. The application
side is a small in-memory first-claim-wins ``Interactions`` (the bot wiring lands with the
platform seam), so the numbers are the connector's own cost:

- **callback_answer**: ``--clicks`` encrypted Claim clicks on as many cards, ``--concurrency``
  at a time: HTTP answer time of ``POST /wecom/callback`` (p50, p99 seconds).
- **click_to_all_cards**: for each click, time from sending it to the fake having applied
  ``message/update_template_card`` (``atall``) with the click's fresh code (p50, p99).

    .venv/bin/python bench/bench_wecom.py --out bench/results.json [--clicks 200] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from bench.results import merge_into  # noqa: E402
from cards.actions import Action, ActionOutcome  # noqa: E402
from connectors.channels import PostedCard  # noqa: E402
from connectors.platform import ReplyDraftView  # noqa: E402
from connectors.wecom.api import RecipientLimiter  # noqa: E402
from connectors.wecom.platform import WeComPlatform  # noqa: E402
from tests.fakes.wecom_api import FakeWeCom  # noqa: E402
from tests.support.wecom import (  # noqa: E402
    CHAT,
    click_xml,
    encrypted_post,
    inquiry_card,
    wecom_settings,
)


class BenchInteractions:
    """First claim wins; after the answer, the 'outbox' updates the card for everyone."""

    def __init__(self, platform: WeComPlatform, posted: dict[int, PostedCard]) -> None:
        self.platform = platform
        self.posted = posted
        self.owner: dict[int, str] = {}
        self.done: dict[int, float] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def act(self, action: Action) -> ActionOutcome:
        self.owner.setdefault(action.inquiry_id, action.user)
        task = asyncio.create_task(self._update(action.inquiry_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return ActionOutcome(True, "", action.inquiry_id)

    async def _update(self, number: int) -> None:
        card = inquiry_card(number, status="claimed", owner="王丽", version=2)
        await self.platform.channel.update_card(CHAT, self.posted[number], card, locale="zh-CN")
        self.done[number] = time.perf_counter()

    async def rep_for(self, platform: str, user: str) -> str | None:
        return "li"

    async def reply_link(self, inquiry_id: int, rep_id: str) -> str:
        return "http://claimdesk.bench/reply"

    async def draft_reply(
        self, inquiry_id: int, rep_id: str, template: str = ""
    ) -> ReplyDraftView | ActionOutcome:
        return ActionOutcome(False, "", inquiry_id)

    async def send_reply(
        self, inquiry_id: int, rep_id: str, *, subject: str, body: str, template: str = ""
    ) -> ActionOutcome:
        return ActionOutcome(False, "", inquiry_id)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def run(clicks: int, concurrency: int) -> dict[str, Any]:
    fake = FakeWeCom()
    await fake.start()
    platform = WeComPlatform(wecom_settings(fake.base_url))
    # The bench sends far more than one member may get per minute: lift the limiter.
    platform.channel._limiter = RecipientLimiter(windows=())
    posted: dict[int, PostedCard] = {}
    interactions = BenchInteractions(platform, posted)
    app = web.Application()
    app.add_routes(platform.routes(interactions))
    await platform.start(interactions)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    for n in range(1, clicks + 1):
        posted[n] = await platform.channel.post_card(
            CHAT, inquiry_card(n), locale="zh-CN", idempotency_key=f"b{n}"
        )
    answers: list[float] = []
    sent_at: dict[int, float] = {}
    gate = asyncio.Semaphore(concurrency)

    async def click(n: int) -> None:
        task = posted[n].ref
        body, q = encrypted_post(click_xml("wangli", f"cd1:claim:{n}", task, fake.click(task)))
        async with gate:
            start = time.perf_counter()
            sent_at[n] = start
            response = await client.post("/wecom/callback", params=q, data=body.encode())
            await response.read()
            answers.append(time.perf_counter() - start)

    await asyncio.gather(*(click(n) for n in range(1, clicks + 1)))
    await asyncio.gather(*list(interactions.tasks))
    assert len(interactions.done) == clicks, "some card updates did not happen"
    updates = [interactions.done[n] - sent_at[n] for n in range(1, clicks + 1)]
    await client.close()
    await platform.stop()
    await fake.stop()
    return {
        "clicks": clicks,
        "concurrency": concurrency,
        "callback_answer_p50_s": round(statistics.median(answers), 4),
        "callback_answer_p99_s": round(pct(answers, 99), 4),
        "click_to_all_cards_p50_s": round(statistics.median(updates), 4),
        "click_to_all_cards_p99_s": round(pct(updates, 99), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = asyncio.run(run(args.clicks, args.concurrency))
    print(json.dumps(result, indent=2))  # noqa: T201 - a bench prints its numbers
    if args.out:
        merge_into(args.out, {"wecom": result})


if __name__ == "__main__":
    main()
