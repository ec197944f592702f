"""DingTalk connector benchmark: callback ACK latency and click -> shared card update.

Connector level (the service wiring comes with the platform seam): the real
dingtalk-stream client in ``DingTalkStream``, the fake gateway + OpenAPI
(tests/fakes/dingtalk_api.py) on 127.0.0.1, and an in-process application whose
``act`` does a compare-and-set claim and then updates everyone's copy with
``DingTalkChannel.update_card`` (``PUT /v1.0/card/instances`` at the fake).

- **ack**: push a card callback -> its ACK back at the gateway (p50, p99 seconds).
- **click_to_update**: push -> the fake receives the card's PUT (p50, p99).
- the same two **during a burst** of ``--burst`` concurrent createAndDeliver posts.

    .venv/bin/python bench/bench_dingtalk.py --out bench/results.json [--clicks 200] [--burst 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from bench.results import merge_into  # noqa: E402
from cards.actions import Action, ActionOutcome  # noqa: E402
from cards.model import Badge, Card  # noqa: E402
from connectors.channels import PostedCard  # noqa: E402
from connectors.dingtalk.channel import DingTalkChannel  # noqa: E402
from connectors.dingtalk.openapi import DingTalkOpenApi  # noqa: E402
from connectors.dingtalk.stream import DingTalkStream  # noqa: E402
from connectors.platform import ReplyDraftView  # noqa: E402
from tests.fakes.dingtalk_api import CLIENT_ID, CLIENT_SECRET, FakeDingTalk  # noqa: E402
from tests.fakes.dingtalk_gateway import callback_frame  # noqa: E402

GROUP = "cidBENCH=="


def card(number: int, owner: str = "") -> Card:
    status = "claimed" if owner else "new"
    return Card(
        key=str(number), version=1, title=f"#{number} bench", badge=Badge(status, status, "#000")
    )


class App:
    """Claim = compare-and-set, then the shared update (what bot does after its commit)."""

    def __init__(self, channel: DingTalkChannel, posted: dict[int, PostedCard]) -> None:
        self.channel, self.posted = channel, posted
        self.owners: dict[int, str] = {}
        self.updated: dict[int, asyncio.Task[Any]] = {}

    async def act(self, action: Action) -> ActionOutcome:
        if action.inquiry_id in self.owners:
            return ActionOutcome(False, "taken", action.inquiry_id, "lost_race")
        self.owners[action.inquiry_id] = action.user
        self.updated[action.inquiry_id] = asyncio.create_task(
            self.channel.update_card(
                GROUP,
                self.posted[action.inquiry_id],
                card(action.inquiry_id, action.user),
                locale="zh-CN",
            )
        )
        return ActionOutcome(True, "claimed", action.inquiry_id)

    async def rep_for(self, platform: str, user: str) -> str | None:
        return user

    async def reply_link(self, inquiry_id: int, rep_id: str) -> str:
        return ""

    async def draft_reply(
        self, inquiry_id: int, rep_id: str, template: str = ""
    ) -> ReplyDraftView | ActionOutcome:
        return ActionOutcome(False, "", inquiry_id)

    async def send_reply(
        self, inquiry_id: int, rep_id: str, *, subject: str, body: str, template: str = ""
    ) -> ActionOutcome:
        return ActionOutcome(False, "", inquiry_id)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def clicks(fake: FakeDingTalk, app: App, numbers: range) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    acks: list[float] = []
    updates: list[float] = []
    for number in numbers:
        track = app.posted[number].ref
        started = loop.time()
        data = {
            "type": "actionCallback",
            "outTrackId": track,
            "userId": f"rep{number}",
            "content": json.dumps({"cardPrivateData": {"params": {"action": "claim"}}}),
        }
        await (await fake.gateway.push(callback_frame(data, message_id=f"m{number}")))
        acks.append(loop.time() - started)
        await app.updated[number]  # the PUT answered: the fake has everyone's copy updated
        updates.append(loop.time() - started)
    return {
        "ack_p50": statistics.median(acks),
        "ack_p99": pct(acks, 0.99),
        "click_to_update_p50": statistics.median(updates),
        "click_to_update_p99": pct(updates, 0.99),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    fake = FakeDingTalk()
    await fake.start()
    api = DingTalkOpenApi(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=fake.base_url)
    await api.start()
    channel = DingTalkChannel(api, robot_code=CLIENT_ID, card_template_id="bench.schema")
    total = 2 * args.clicks
    posted = {
        n: await channel.post_card(GROUP, card(n), locale="zh-CN", idempotency_key=f"b{n}")
        for n in range(1, total + 1)
    }
    app = App(channel, posted)
    async with aiohttp.ClientSession() as session:
        stream = DingTalkStream(
            app,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            api_base_url=fake.base_url,
            session=lambda: session,
        )
        await stream.start()
        await fake.gateway.wait_connected()
        quiet = await clicks(fake, app, range(1, args.clicks + 1))
        burst = [
            asyncio.create_task(
                channel.post_card(
                    GROUP, card(100000 + n), locale="zh-CN", idempotency_key=f"burst{n}"
                )
            )
            for n in range(args.burst)
        ]
        loaded = await clicks(fake, app, range(args.clicks + 1, total + 1))
        await asyncio.gather(*burst)
        await stream.stop()
    await api.stop()
    await fake.stop()
    return {
        "dingtalk": {
            "clicks": args.clicks,
            "burst": args.burst,
            "quiet": quiet,
            "during_burst": loaded,
        }
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clicks", type=int, default=200)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--out", default="")
    arguments = parser.parse_args()
    result = asyncio.run(main(arguments))
    print(json.dumps(result, indent=2))
    if arguments.out:
        merge_into(arguments.out, result)
