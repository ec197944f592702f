"""The platform seam: a chat platform written in ``tests/`` and added through
``connectors.registry.register`` alone (no edit to ``bot/``) gets the cards of its
team, and its clicks claim through the shared interaction backend: first click
wins, a second rep is told who won, a redelivered click applies nothing twice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from cards.actions import ActionOutcome, BadActionId, parse_action
from config.schema import RepSettings, Settings
from connectors import registry
from connectors.memory import RecordingChannel
from connectors.platform import ChatPlatform, Interactions, ReplyDraftView
from store.engine import transaction
from store.models import JobRun
from tests.conftest import API_TOKEN
from tests.test_flow_end_to_end import FORM, post_webhook

ROOM = "fake-room-1"


@dataclass
class FakePlatform:
    """A minimal chat platform: a recording channel and one route that turns a POST into an Action."""

    channel: RecordingChannel
    name: str = "fake"
    started: bool = False
    stopped: bool = False
    answers: list[dict[str, Any]] = field(default_factory=list)

    def user_id(self, rep: RepSettings) -> str:
        return f"F-{rep.id}"

    def mention(self, user_id: str) -> str:
        return f"<fake:{user_id}>"

    def routes(self, interactions: Interactions) -> list[web.RouteDef]:
        async def click(request: web.Request) -> web.Response:
            data = await request.json()
            try:
                action = parse_action(
                    str(data["action"]),
                    platform=self.name,
                    user=str(data["user"]),
                    value=str(data.get("value", "")),
                    request_id=str(data.get("delivery", "")),
                )
            except (KeyError, BadActionId):
                return web.json_response({"error": "bad action"}, status=400)
            outcome = await interactions.act(action)
            answer = {"ok": outcome.ok, "message": outcome.message, "code": outcome.code}
            self.answers.append(answer)
            return web.json_response(answer)

        return [web.post("/fake/actions", click)]

    async def start(self, interactions: Interactions) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def problems(self) -> list[str]:
        return []


@pytest.fixture
def fake_platform() -> Iterator[FakePlatform]:
    platform = FakePlatform(RecordingChannel(name="fake", team_destinations={"sales": [ROOM]}))

    def build(settings: Settings) -> ChatPlatform | None:
        return platform

    registry.register("fake", build)
    yield platform
    registry.unregister("fake")


async def eventually(check: Any, *, within: float = 10.0, what: str = "condition") -> Any:
    """Poll ``check`` until truthy (a bounded wait, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def timeline_kinds(client: Any, number: int) -> list[str]:
    response = await client.get(
        f"/api/inquiries/{number}", headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    assert response.status == 200
    body = await response.json()
    return [e["kind"] for e in body["timeline"]]


async def click(
    client: Any, action: str, user: str, delivery: str, value: str = ""
) -> dict[str, Any]:
    response = await client.post(
        "/fake/actions",
        json={"action": action, "user": user, "delivery": delivery, "value": value},
    )
    assert response.status == 200
    return dict(await response.json())


async def test_fake_platform_gets_cards_and_claims_through_the_shared_backend(
    db_url: str,
    make_settings: Any,
    service_factory: Any,
    client_factory: Any,
    fake_platform: FakePlatform,
) -> None:
    service = await service_factory(make_settings(db_url))
    client = await client_factory(service)
    assert service.platforms == {"fake": fake_platform} and fake_platform.started
    assert service.ctx.mention("fake", "alice") == "<fake:F-alice>"

    # a signed webhook inquiry reaches the platform as a card post in the team's room
    response = await post_webhook(client, FORM, headers={"Idempotency-Key": "seam-1"})
    assert response.status == 202
    number = (await response.json())["inquiry"]
    posted = await eventually(
        lambda: [c for c in fake_platform.channel.posted() if c.destination == ROOM],
        what="card post",
    )
    assert posted[0].card is not None and posted[0].card.title.startswith(f"#{number}")

    # a click through its route claims (the platform user maps to the rep by ``user_id``)
    first = await click(client, f"cd1:claim:{number}", "F-alice", "d-1")
    assert first["ok"] is True
    await eventually(
        lambda: any(
            c.card is not None and "Alice" in str(c.card.fields)
            for c in fake_platform.channel.posted("update_card")
        ),
        what="card updated with the owner",
    )

    # a second click, by another rep, is refused with who won
    second = await click(client, f"cd1:claim:{number}", "F-bob", "d-2")
    assert second["ok"] is False and second["code"] == "lost_race"
    assert "Alice" in second["message"]

    # someone who is no rep is refused (the one authorization check)
    stranger = await click(client, f"cd1:claim:{number}", "F-nobody", "d-3")
    assert stranger["ok"] is False and stranger["code"] == "forbidden"

    # alice releases it; the platform then redelivers the release and the first claim
    released = await click(client, f"cd1:release:{number}", "F-alice", "d-4")
    assert released["ok"] is True
    again = await asyncio.gather(
        click(client, f"cd1:release:{number}", "F-alice", "d-4"),
        click(client, f"cd1:release:{number}", "F-alice", "d-4"),
    )
    assert all(a == released for a in again)  # the first answer, not "already released"
    replayed_claim = await click(client, f"cd1:claim:{number}", "F-alice", "d-1")
    assert replayed_claim == first
    kinds = await timeline_kinds(client, number)
    assert kinds.count("claimed") == 1 and kinds.count("released") == 1
    async with transaction(service.ctx.sessions) as session:
        assert await session.get(JobRun, "action:fake:d-1") is not None

    # a garbled click is a clear 400, not a 5xx
    bad = await client.post("/fake/actions", json={"action": "cd1:claim:x", "user": "F-alice"})
    assert bad.status == 400


async def test_reply_link_signs_in_and_lands_on_the_reply_page(
    sqlite_url: str,
    make_settings: Any,
    service_factory: Any,
    client_factory: Any,
    fake_platform: FakePlatform,
) -> None:
    service = await service_factory(make_settings(sqlite_url))
    client = await client_factory(service)
    response = await post_webhook(client, FORM, headers={"Idempotency-Key": "seam-2"})
    number = (await response.json())["inquiry"]
    link = await service.interactions.reply_link(number, "alice")
    path = link.removeprefix(service.ctx.settings.server.base_url)
    landed = await client.get(path, allow_redirects=False)
    assert landed.status == 302 and landed.headers["Location"] == f"/web/inquiries/{number}/reply"
    page = await client.get(f"/web/inquiries/{number}/reply")
    assert page.status == 200
    # ``next`` never leaves our pages
    token = path.split("token=")[1].split("&")[0]
    for evil in ("https://evil.test/", "//evil.test/web/", "/web/..\\evil", "/elsewhere"):
        away = await client.get(
            "/web/login", params={"token": token, "next": evil}, allow_redirects=False
        )
        assert away.status == 302 and away.headers["Location"] == "/web/"


async def test_draft_reply_refuses_a_rep_who_does_not_own_the_inquiry(
    sqlite_url: str,
    make_settings: Any,
    service_factory: Any,
    client_factory: Any,
    fake_platform: FakePlatform,
) -> None:
    service = await service_factory(make_settings(sqlite_url))
    client = await client_factory(service)
    response = await post_webhook(client, FORM, headers={"Idempotency-Key": "seam-3"})
    number = (await response.json())["inquiry"]
    assert (await click(client, f"cd1:claim:{number}", "F-alice", "r-1"))["ok"] is True
    interactions = service.interactions
    refused = await interactions.draft_reply(number, "bob")
    assert isinstance(refused, ActionOutcome)
    assert refused.code == "forbidden" and "Alice" in refused.message
    draft = await interactions.draft_reply(number, "alice")
    assert isinstance(draft, ReplyDraftView)
    assert draft.to.lower() == FORM["email"].lower() and draft.locale == "en" and draft.templates
    sent = await interactions.send_reply(number, "bob", subject="Re", body="Hello")
    assert sent.ok is False and sent.code == "forbidden"
