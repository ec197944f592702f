"""The DingTalk Stream connection (real dingtalk-stream client) against the fake gateway.

The fake gateway and OpenAPI run on the test's own event loop: a blocking call in
the connector (0.24.3's ``requests``-based open) would deadlock these tests, and
one test holds the open-connection answer until a probe task on the loop has run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from cards.actions import Action, ActionOutcome, Verb
from config.loading import settings_from_mapping
from connectors.dingtalk.platform import DingTalkPlatform, build_platform
from connectors.dingtalk.render import out_track_id
from connectors.dingtalk.stream import Backoff, DingTalkStream
from connectors.platform import ReplyDraftView
from tests.conftest import base_config
from tests.fakes.dingtalk_api import CLIENT_ID, CLIENT_SECRET, FakeDingTalk
from tests.fakes.dingtalk_gateway import callback_frame

TRACK = out_track_id("1042", "post:1042")
REPS = {"ding-alice": "alice", "ding-bob": "bob"}


@dataclass
class RecordingInteractions:
    """The application side, written for these tests: first claim wins, redeliveries dedupe."""

    actions: list[Action] = field(default_factory=list)
    applied: list[Action] = field(default_factory=list)
    owners: dict[int, str] = field(default_factory=dict)
    answers: dict[str, ActionOutcome] = field(default_factory=dict)
    gate: asyncio.Event | None = None  # when set up, act waits for it

    async def act(self, action: Action) -> ActionOutcome:
        self.actions.append(action)
        if self.gate is not None:
            await self.gate.wait()
        if action.request_id in self.answers:
            return self.answers[action.request_id]
        rep = await self.rep_for(action.platform, action.user)
        if rep is None:
            outcome = ActionOutcome(
                False, "Only reps of team sales can do that.", action.inquiry_id, "forbidden"
            )
        elif action.verb is Verb.CLAIM and action.inquiry_id in self.owners:
            owner = self.owners[action.inquiry_id]
            outcome = ActionOutcome(
                False, f"{owner} claimed it just now.", action.inquiry_id, "lost_race"
            )
        else:
            if action.verb is Verb.CLAIM:
                self.owners[action.inquiry_id] = rep
            self.applied.append(action)
            outcome = ActionOutcome(
                True, f"{rep}: {action.verb.value} #{action.inquiry_id} done", action.inquiry_id
            )
        self.answers[action.request_id] = outcome
        return outcome

    async def rep_for(self, platform: str, user: str) -> str | None:
        return REPS.get(user) if platform == "dingtalk" else None

    async def reply_link(self, inquiry_id: int, rep_id: str) -> str:
        return f"http://claimdesk.test/reply/{inquiry_id}?as={rep_id}&sig=x"

    async def draft_reply(
        self, inquiry_id: int, rep_id: str, template: str = ""
    ) -> ReplyDraftView | ActionOutcome:
        return ActionOutcome(False, "not used", inquiry_id)

    async def send_reply(
        self, inquiry_id: int, rep_id: str, *, subject: str, body: str, template: str = ""
    ) -> ActionOutcome:
        return ActionOutcome(False, "not used", inquiry_id)


def click(user: str, action: str = "claim", value: str = "", track: str = TRACK) -> dict[str, Any]:
    params = {"action": action, **({"value": value} if value else {})}
    return {
        "type": "actionCallback",
        "outTrackId": track,
        "corpId": "ding-corp",
        "userId": user,
        "content": json.dumps({"cardPrivateData": {"actionIds": [action], "params": params}}),
    }


def private(ack: dict[str, Any]) -> dict[str, str]:
    assert ack["code"] == 200
    data = json.loads(ack["data"])  # the ACK's data is a JSON string (protocol.md)
    return dict(data["response"]["userPrivateData"]["cardParamMap"])


@pytest.fixture
async def fake() -> AsyncIterator[FakeDingTalk]:
    server = FakeDingTalk()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def interactions() -> RecordingInteractions:
    return RecordingInteractions()


@pytest.fixture
async def stream(
    fake: FakeDingTalk, session: aiohttp.ClientSession, interactions: RecordingInteractions
) -> AsyncIterator[DingTalkStream]:
    running = DingTalkStream(
        interactions,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        api_base_url=fake.base_url,
        session=lambda: session,
        locale="en",
        backoff=Backoff(initial=0.02, maximum=0.2),
    )
    await running.start()
    await fake.gateway.wait_connected()
    yield running
    await running.stop()


async def test_subscribes_to_the_card_topic_with_the_configured_credentials(
    fake: FakeDingTalk, stream: DingTalkStream
) -> None:
    [opened] = fake.gateway.opens
    assert opened["clientId"] == CLIENT_ID
    assert {"type": "CALLBACK", "topic": "/v1.0/card/instances/callback"} in opened["subscriptions"]


async def test_claim_race_first_click_wins_and_each_clicker_is_told(
    fake: FakeDingTalk, stream: DingTalkStream, interactions: RecordingInteractions
) -> None:
    alice, bob = await asyncio.gather(
        fake.gateway.callback(click("ding-alice"), message_id="m-alice"),
        fake.gateway.callback(click("ding-bob"), message_id="m-bob"),
    )
    notices = {private(alice)["notice"], private(bob)["notice"]}
    winner = interactions.owners[1042]
    loser = "bob" if winner == "alice" else "alice"
    assert f"{winner}: claim #1042 done" in notices
    assert f"{winner} claimed it just now." in notices
    assert [a.user for a in interactions.applied] == [f"ding-{winner}"]
    assert {a.platform for a in interactions.actions} == {"dingtalk"}
    assert loser not in interactions.owners.values()


async def test_redelivered_frame_carries_the_same_request_id_and_applies_once(
    fake: FakeDingTalk, stream: DingTalkStream, interactions: RecordingInteractions
) -> None:
    first = await fake.gateway.callback(click("ding-alice"), message_id="m-1")
    again = await fake.gateway.callback(click("ding-alice"), message_id="m-1")
    assert [a.request_id for a in interactions.actions] == ["m-1", "m-1"]
    assert len(interactions.applied) == 1
    assert private(first) == private(again)


async def test_a_stranger_changes_nothing_and_is_told(
    fake: FakeDingTalk, stream: DingTalkStream, interactions: RecordingInteractions
) -> None:
    ack = await fake.gateway.callback(click("ding-stranger"))
    assert private(ack)["notice"] == "Only reps of team sales can do that."
    assert interactions.applied == [] and interactions.owners == {}


async def test_status_value_and_reply_link(
    fake: FakeDingTalk, stream: DingTalkStream, interactions: RecordingInteractions
) -> None:
    await fake.gateway.callback(click("ding-alice", "status", "won"))
    assert interactions.actions[-1].verb is Verb.STATUS and interactions.actions[-1].value == "won"
    ack = await fake.gateway.callback(click("ding-alice", "reply"))
    assert private(ack)["reply_url"] == "http://claimdesk.test/reply/1042?as=alice&sig=x"


async def test_foreign_card_is_answered_not_acted_on(
    fake: FakeDingTalk, stream: DingTalkStream, interactions: RecordingInteractions
) -> None:
    ack = await fake.gateway.callback(click("ding-alice", track="someone-elses-card"))
    assert "not one of claimdesk's" in private(ack)["notice"]
    assert interactions.actions == []


async def test_slow_act_is_acked_within_the_budget_and_still_completes(
    fake: FakeDingTalk, stream: DingTalkStream, interactions: RecordingInteractions
) -> None:
    stream.router.ack_budget = 0.05
    interactions.gate = asyncio.Event()
    ack = await fake.gateway.callback(click("ding-alice"), message_id="m-slow")
    assert "Working on it" in private(ack)["notice"]
    assert interactions.applied == []  # still running, not dropped
    interactions.gate.set()
    await asyncio.gather(*stream.router.pending)
    assert interactions.owners == {1042: "alice"}


async def test_ping_is_echoed(fake: FakeDingTalk, stream: DingTalkStream) -> None:
    ack = await fake.gateway.ping()
    assert ack["code"] == 200 and "opaque" in json.loads(ack["data"])


@pytest.mark.parametrize("how", ["disconnect", "drop"])
async def test_gateway_disconnect_mid_stream_reconnects_and_clicks_still_work(
    fake: FakeDingTalk, stream: DingTalkStream, interactions: RecordingInteractions, how: str
) -> None:
    await fake.gateway.callback(click("ding-bob", "status", "waiting"))
    if how == "disconnect":
        await fake.gateway.disconnect()
    else:
        await fake.gateway.drop()
    await fake.gateway.wait_connected(total=2)
    assert len(fake.gateway.opens) == 2  # a fresh ticket for the new socket
    ack = await fake.gateway.callback(click("ding-alice"))
    assert private(ack)["notice"] == "alice: claim #1042 done"


async def test_the_loop_runs_while_the_connection_opens(
    fake: FakeDingTalk, session: aiohttp.ClientSession, interactions: RecordingInteractions
) -> None:
    probe_ticks = 0
    ticked = asyncio.Event()

    async def probe() -> None:
        nonlocal probe_ticks
        while True:
            probe_ticks += 1
            if probe_ticks >= 5:
                ticked.set()
            await asyncio.sleep(0)

    fake.gateway.open_gate = ticked  # the open answers only once the probe ran on this loop
    probing = asyncio.create_task(probe())
    running = DingTalkStream(
        interactions,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        api_base_url=fake.base_url,
        session=lambda: session,
        backoff=Backoff(initial=0.02, maximum=0.2),
    )
    try:
        await running.start()
        await fake.gateway.wait_connected()
        assert probe_ticks >= 5
    finally:
        probing.cancel()
        await running.stop()
    assert running._task is None


async def test_stop_is_clean_and_does_not_reconnect(
    fake: FakeDingTalk, stream: DingTalkStream
) -> None:
    task = stream._task
    assert task is not None
    await stream.stop()
    assert task.done()
    assert stream.client._stopping.is_set() and stream.client._socket is None


def settings(dingtalk: dict[str, Any]) -> Any:
    config = base_config()
    config["dingtalk"] = dingtalk
    return settings_from_mapping(config)


async def test_platform_build_and_check(fake: FakeDingTalk) -> None:
    assert build_platform(settings({})) is None
    platform = build_platform(
        settings({"client_id": CLIENT_ID, "client_secret": "wrong", "api_base_url": fake.base_url})
    )
    assert isinstance(platform, DingTalkPlatform)
    assert (
        platform.mention("ding-alice") == "@ding-alice"
        and platform.routes(RecordingInteractions()) == []
    )
    problems = await platform.problems()
    assert any("robot_code" in p for p in problems)
    assert any("card_template_id" in p for p in problems)
    assert any("access token" in p and "client_secret" in p for p in problems)
    assert not any("wrong" in p.split("client_secret")[0] for p in problems)
    good = build_platform(
        settings(
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "robot_code": CLIENT_ID,
                "card_template_id": "tpl.schema",
                "api_base_url": fake.base_url,
            }
        )
    )
    assert good is not None and await good.problems() == []


async def test_platform_start_and_stop_through_the_contract(fake: FakeDingTalk) -> None:
    platform = build_platform(
        settings(
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "robot_code": CLIENT_ID,
                "card_template_id": "tpl",
                "api_base_url": fake.base_url,
            }
        )
    )
    assert platform is not None
    interactions = RecordingInteractions()
    await platform.start(interactions)
    try:
        await fake.gateway.wait_connected()
        ack = await fake.gateway.callback(click("ding-alice"))
        assert "claim #1042 done" in private(ack)["notice"]
    finally:
        await platform.stop()


async def test_a_click_reaching_either_of_two_processes_works(
    fake: FakeDingTalk, session: aiohttp.ClientSession, interactions: RecordingInteractions
) -> None:
    """Two processes, one app: the gateway picks a socket per push (protocol.md FAQ)."""
    streams = [
        DingTalkStream(
            interactions,  # shared state, as two processes share the database
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            api_base_url=fake.base_url,
            session=lambda: session,
            backoff=Backoff(initial=0.02, maximum=0.2),
        )
        for _ in range(2)
    ]
    for running in streams:
        await running.start()
    try:
        await fake.gateway.wait_connected(total=2)
        first = await (
            await fake.gateway.push(callback_frame(click("ding-alice"), message_id="p1"), socket=0)
        )
        second = await (
            await fake.gateway.push(callback_frame(click("ding-bob"), message_id="p2"), socket=1)
        )
        assert private(first)["notice"] == "alice: claim #1042 done"
        assert private(second)["notice"] == "alice claimed it just now."
        assert len(interactions.applied) == 1
    finally:
        for running in streams:
            await running.stop()


async def test_a_listed_lost_reason_travels_with_the_status(
    fake: FakeDingTalk, stream: DingTalkStream, interactions: RecordingInteractions
) -> None:
    await fake.gateway.callback(click("ding-alice", "status", "lost|price"))
    action = interactions.actions[-1]
    assert (action.verb, action.value) == (Verb.STATUS, "lost|price")  # split by the application
