"""One claim across every surface: the real service with Slack, DingTalk and WeCom configured
for one team (plus the web inbox), the platforms' servers faked on 127.0.0.1.

A webhook inquiry becomes a DingTalk card (createAndDeliver with our outTrackId), a WeCom
group post plus a button card for each rep, and a Slack message; a claim made on any one
surface — a DingTalk click over the Stream gateway, an encrypted WeCom callback, the web
inbox — shows on all the others. Then the hard cases over DingTalk (the claim race, a
redelivered callback, a stranger's click, a click reaching the second of two processes on
one PostgreSQL), the failures that must recover through the outbox (token expiry,
throttling, 5xx) with every card posted exactly once, and the clock's nudges, escalations
and digests reaching DingTalk and WeCom through the contract.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from config.loading import settings_from_mapping
from connectors.dingtalk.render import out_track_id
from connectors.memory import RecordingChannel
from store.engine import transaction
from store.models import CardRef
from tests.conftest import MovableClock, base_config
from tests.support.clock import Walk, berlin, clock_config
from tests.support.clock import new_inquiry as ingest_inquiry
from tests.support.surfaces import (
    GROUP,
    NAMES,
    Fakes,
    dingtalk_card,
    dingtalk_click,
    dingtalk_notice,
    dingtalk_shows,
    every_surface_config,
    slack_card,
    slack_shows,
    unpaced,
    wecom_click,
    wecom_group_lines,
    wecom_shows,
    wecom_task,
)
from tests.support.wecom import CHAT
from tests.test_flow_end_to_end import FORM, act, api, post_webhook, sign_in
from tests.test_platform_seam import eventually, timeline_kinds
from tests.test_slack_events import eventually_async

_bodies = iter(range(1, 10**6))


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    running = await Fakes.start()
    yield running
    await running.stop()


def settings_for(db_url: str, smtp: Any, fakes: Fakes, **overrides: Any) -> Any:
    data = every_surface_config(base_config(smtp.port, db_url), fakes)
    data.update(overrides)
    if overrides:  # overrides replace teams/reps: put the platforms back on them
        data = every_surface_config(data, fakes)
    return settings_from_mapping(data, source="test.toml", env={})


async def start(
    settings: Any, fakes: Fakes, service_factory: Any, client_factory: Any, *, streams: int = 1
) -> tuple[Any, Any]:
    service = await service_factory(settings)
    unpaced(service)
    client = await client_factory(service)  # starts the worker and the platforms
    await fakes.dingtalk.gateway.wait_connected(total=streams)
    await sign_in(client, service, "lena")  # the web inbox, seen by the team lead
    return service, client


async def new_inquiry(client: Any, fakes: Fakes, tag: str) -> tuple[int, str]:
    """A webhook inquiry, once it is on every platform: (number, DingTalk outTrackId)."""
    n = next(_bodies)
    body = {**FORM, "email": f"buyer{n}@buyer.example", "message": f"{FORM['message']} ({tag} {n})"}
    response = await post_webhook(client, body, headers={"Idempotency-Key": f"{tag}-{n}"})
    assert response.status == 202, await response.text()
    number = int((await response.json())["inquiry"])
    found = await eventually(lambda: dingtalk_card(fakes.dingtalk, number), what="DingTalk card")
    await eventually(lambda: wecom_task(fakes.wecom, number), what="WeCom rep card")
    await eventually(lambda: slack_card(fakes.slack, number), what="Slack card")
    await eventually(lambda: wecom_group_lines(fakes.wecom, number), what="WeCom group post")
    return number, found[0]


async def shows_everywhere(client: Any, fakes: Fakes, number: int, name: str, *, rep: str) -> None:
    """The owner ``name`` on DingTalk (PUT), WeCom (update_template_card), Slack, the API and
    the web inbox page."""
    await eventually(lambda: dingtalk_shows(fakes.dingtalk, number, name), what="DingTalk")
    await eventually(lambda: wecom_shows(fakes.wecom, number, name), what="WeCom rep cards")
    await eventually(lambda: slack_shows(fakes.slack, number, name), what="Slack")
    body = await api(client, f"/api/inquiries/{number}")
    assert body["assignee"] == rep and body["status"] == "claimed"
    page = await client.get(f"/web/inquiries/{number}")
    assert page.status == 200 and name in await page.text()


async def test_one_claim_across_every_surface(
    db_url: str, smtp: Any, fakes: Fakes, service_factory: Any, client_factory: Any
) -> None:
    service, client = await start(
        settings_for(db_url, smtp, fakes), fakes, service_factory, client_factory
    )
    dt, wc = fakes.dingtalk, fakes.wecom

    # 1. A webhook inquiry becomes a card on every platform.
    first, track = await new_inquiry(client, fakes, "surface")
    (delivery,) = [d for d in dt.deliveries if d["outTrackId"] == track]
    # our own outTrackId, derived from the outbox row's key: a retried post names the same card
    assert track == out_track_id(str(first), f"card.post:dingtalk:{GROUP}:{first}")
    body = dt.cards[track]["body"]
    assert body["openSpaceId"] == f"dtv1.card//IM_GROUP.{GROUP}"
    assert body["callbackType"] == "STREAM" and body["cardTemplateId"] == "tpl-claimdesk.schema"
    task = wecom_task(wc, first)
    assert sorted(wc.tasks[task].users) == ["wx-alice", "wx-bob", "wx-lena", "wx-max"]  # the team
    refs = await card_refs(service, first, count=3)  # stored right after each post
    assert set(refs) == {"slack", "dingtalk", "wecom"}
    assert refs["dingtalk"].ref == track and refs["wecom"].ref == task

    # 2. Alice claims in DingTalk: the web inbox, Slack and WeCom show it.
    ack = await dt.gateway.callback(dingtalk_click(track, "ding-alice"))
    assert f"#{first}" in dingtalk_notice(ack)  # her own answer, in the ACK
    await shows_everywhere(client, fakes, first, "Alice", rep="alice")
    updates = wc.called("message/update_template_card")
    assert updates and all(u.body["atall"] == 1 for u in updates)
    await eventually(
        lambda: any("Alice" in line for line in wecom_group_lines(wc, first)),
        what="WeCom group line",
    )
    # Reply from DingTalk: the card cannot hold an editor, so Alice gets the signed reply page.
    reply = await dt.gateway.callback(dingtalk_click(track, "ding-alice", action="reply"))
    private = json.loads(reply["data"])["response"]["userPrivateData"]["cardParamMap"]
    assert private["show_reply_link"] == "true"
    path = private["reply_url"].removeprefix(service.ctx.settings.server.base_url)
    landed = await client.get(path, allow_redirects=False)
    assert landed.status == 302 and landed.headers["Location"] == f"/web/inquiries/{first}/reply"

    # 3. Bob claims the next one in WeCom (encrypted callback): DingTalk and Slack show it.
    second, track2 = await new_inquiry(client, fakes, "surface")
    click = wecom_click(wc, "wx-bob", f"cd1:claim:{second}")
    answer = await client.post("/wecom/callback", params=click.query, data=click.body)
    assert answer.status == 200 and await answer.text() == ""
    await shows_everywhere(client, fakes, second, "Bob", rep="bob")
    put = [u for u in dt.updates if u["outTrackId"] == track2]
    assert put and "Bob" in put[-1]["params"]["fields_md"]
    spent = [c.body["response_code"] for c in wc.called("message/update_template_card")]
    assert click.code in spent  # every rep's card was updated with the click's fresh code

    # 4. Alice claims a third one in the web inbox: every platform shows it.
    third, _ = await new_inquiry(client, fakes, "surface")
    csrf = await sign_in(client, service, "alice")
    status, outcome = await act(client, csrf, f"cd1:claim:{third}")
    assert status == 200 and outcome["ok"] is True
    await shows_everywhere(client, fakes, third, "Alice", rep="alice")

    # every card was posted once, on every platform
    assert sorted(d["outTrackId"] for d in dt.deliveries) == sorted(set(dt.cards))
    assert len(dt.deliveries) == 3
    for number in (first, second, third):
        assert sum(1 for m in fakes.slack.messages("CSALES") if f"#{number}" in m["text"]) == 1
        assert (await timeline_kinds(client, number)).count("claimed") == 1


async def test_a_wecom_click_code_is_kept_with_the_card_for_any_process(
    sqlite_url: str, smtp: Any, fakes: Fakes, service_factory: Any, client_factory: Any
) -> None:
    """A click's fresh response_code is stored with the CardRef (a refused click's too), so
    an update made after a restart — nothing left in the channel's memory — spends it."""
    service, client = await start(
        settings_for(sqlite_url, smtp, fakes), fakes, service_factory, client_factory
    )
    wc = fakes.wecom
    number, _track = await new_inquiry(client, fakes, "code")
    task = wecom_task(wc, number)
    await card_refs(service, number, count=3)
    # A stranger presses Claim: refused, nothing changes, but the code is kept with the card.
    stranger = wecom_click(wc, "wx-stranger", f"cd1:claim:{number}")
    answer = await client.post("/wecom/callback", params=stranger.query, data=stranger.body)
    assert answer.status == 200
    await eventually(lambda: wc.direct.get("wx-stranger"), what="the stranger is told")
    async with transaction(service.ctx.sessions) as session:
        (ref,) = [r for r in (await session.exec(_refs(number))).all() if r.platform == "wecom"]
    assert ref.ref == task and [o[0] for o in ref.data["offered"]] == [stranger.code]
    # The same callback retried by WeCom: stored once.
    await client.post("/wecom/callback", params=stranger.query, data=stranger.body)
    # A restart: the channel's memory of offered and used codes is gone.
    channel = service.ctx.channels["wecom"]
    channel._offered.clear()
    channel._used.clear()
    csrf = await sign_in(client, service, "alice")
    status, outcome = await act(client, csrf, f"cd1:claim:{number}")
    assert status == 200 and outcome["ok"] is True
    await eventually(lambda: wecom_shows(wc, number, "Alice"), what="WeCom rep cards")
    spent = [c.body["response_code"] for c in wc.called("message/update_template_card")]
    assert spent == [stranger.code]  # the freshest code, from the store

    async def saved() -> CardRef | None:
        """The WeCom ref once the update's result is stored (a moment after WeCom got it)."""
        async with transaction(service.ctx.sessions) as session:
            refs = (await session.exec(_refs(number))).all()
        (ref,) = [r for r in refs if r.platform == "wecom"]
        return ref if ref.data.get("owner") == "Alice" else None

    ref = await eventually_async(saved, what="the updated WeCom ref stored")
    assert ref.data["offered"] == [] and stranger.code not in [c[0] for c in ref.data["codes"]]


async def card_refs(service: Any, number: int, *, count: int) -> dict[str, CardRef]:
    """The inquiry's CardRefs by platform, once ``count`` of them are stored."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        async with transaction(service.ctx.sessions) as session:
            refs = {r.platform: r for r in (await session.exec(_refs(number))).all()}
        if len(refs) >= count:
            return refs
        assert loop.time() < deadline, f"timed out waiting for {count} card refs: {set(refs)}"
        await asyncio.sleep(0.05)


def _refs(number: int) -> Any:
    from sqlmodel import col, select

    return select(CardRef).where(col(CardRef.inquiry_id) == number)


async def test_dingtalk_claim_race_redelivery_and_stranger(
    db_url: str, smtp: Any, fakes: Fakes, service_factory: Any, client_factory: Any
) -> None:
    _service, client = await start(
        settings_for(db_url, smtp, fakes), fakes, service_factory, client_factory
    )
    number, track = await new_inquiry(client, fakes, "race")
    gateway = fakes.dingtalk.gateway

    # Two reps press Claim at the same moment: one wins, the other is told who did.
    acks = await asyncio.gather(
        gateway.callback(dingtalk_click(track, "ding-alice"), message_id="race-a"),
        gateway.callback(dingtalk_click(track, "ding-bob"), message_id="race-b"),
    )
    body = await api(client, f"/api/inquiries/{number}")
    winner = body["assignee"]
    assert winner in ("alice", "bob")
    lost = acks[1] if winner == "alice" else acks[0]
    assert {"alice": "Alice", "bob": "Bob"}[winner] in dingtalk_notice(lost)
    name = {"alice": "Alice", "bob": "Bob"}[winner]
    await shows_everywhere(client, fakes, number, name, rep=winner)

    # The gateway redelivers the winning callback: same answer, nothing applied twice.
    won_id = "race-a" if winner == "alice" else "race-b"
    won_ack = acks[0] if winner == "alice" else acks[1]
    user = "ding-alice" if winner == "alice" else "ding-bob"
    again = await gateway.callback(dingtalk_click(track, user), message_id=won_id)
    assert dingtalk_notice(again) == dingtalk_notice(won_ack)
    assert (await timeline_kinds(client, number)).count("claimed") == 1

    # Someone who is not a rep of the team changes nothing and is told so.
    stranger = await gateway.callback(dingtalk_click(track, "ding-stranger", action="release"))
    assert dingtalk_notice(stranger)
    after = await api(client, f"/api/inquiries/{number}")
    assert after["assignee"] == winner and after["status"] == "claimed"
    assert (await timeline_kinds(client, number)).count("released") == 0

    # The gateway drops the socket mid-stream: the service reconnects, clicks work again.
    await gateway.drop()
    await gateway.wait_connected(total=2)
    released = await gateway.callback(dingtalk_click(track, user, action="release"))
    assert dingtalk_notice(released)
    await eventually(lambda: dingtalk_shows(fakes.dingtalk, number, "Unclaimed"), what="released")
    assert (await api(client, f"/api/inquiries/{number}"))["status"] == "new"
    assert (await timeline_kinds(client, number)).count("released") == 1


async def test_failures_recover_through_the_outbox_and_post_once(
    sqlite_url: str, smtp: Any, fakes: Fakes, service_factory: Any, client_factory: Any
) -> None:
    _service, client = await start(
        settings_for(sqlite_url, smtp, fakes), fakes, service_factory, client_factory
    )
    dt, wc = fakes.dingtalk, fakes.wecom
    number, track = await new_inquiry(client, fakes, "warm")

    # Every token expires; DingTalk throttles the next post twice and then fails with a 500;
    # WeCom answers its next card send with 42001 (token expired) and a system-busy -1.
    dt.expire_tokens()
    wc.expire_tokens()
    path = "/v1.0/card/instances/createAndDeliver"
    dt.fail(path, 403, "Forbidden.AccessDenied.QpsLimitForApi", times=2)
    dt.fail(path, 500, "ServiceUnavailable")
    wc.fail("message/send", -1)
    issued = dt.tokens_issued
    second, track2 = await new_inquiry(client, fakes, "faults")
    assert [c[2] for c in dt.calls_to(path)][-4:] == [403, 403, 500, 200]
    assert dt.tokens_issued == issued + 1  # refreshed once, then reused
    assert [d["outTrackId"] for d in dt.deliveries].count(track2) == 1
    assert len(wecom_group_lines(wc, second)) == 1  # the group post went out once

    # The card updates fail too (500, then throttled) and still arrive.
    dt.fail("/v1.0/card/instances", 500, "InternalError")
    dt.fail("/v1.0/card/instances", 403, "Forbidden.AccessDenied.QpsLimitForApi")
    wc.fail("message/update_template_card", 45033)  # concurrency limit: throttled
    ack = await dt.gateway.callback(dingtalk_click(track2, "ding-bob"))
    assert dingtalk_notice(ack)
    await shows_everywhere(client, fakes, second, "Bob", rep="bob")
    statuses = [c[2] for c in dt.calls_to("/v1.0/card/instances")]
    assert 500 in statuses and 403 in statuses and statuses[-1] == 200
    # the first inquiry was not disturbed
    assert [d["outTrackId"] for d in dt.deliveries].count(track) == 1


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_click_reaches_either_of_two_processes(
    db_url: str, smtp: Any, fakes: Fakes, service_factory: Any, client_factory: Any
) -> None:
    """Two claimdesk processes on one database, each with its own Stream connection; the
    gateway pushes each callback to one connection (protocol.md FAQ)."""
    settings = settings_for(db_url, smtp, fakes)
    one, client_one = await start(settings, fakes, service_factory, client_factory)
    two = await service_factory(settings, worker=None)
    unpaced(two)
    client_two = await client_factory(two)
    await fakes.dingtalk.gateway.wait_connected(total=2)
    await sign_in(client_two, two, "lena")
    await eventually(lambda: len(fakes.dingtalk.gateway.sockets) == 2, what="two sockets")

    number, track = await new_inquiry(client_one, fakes, "two")
    gateway = fakes.dingtalk.gateway
    # Alice's click lands on the second process's socket, Bob's on the first's.
    first = await (
        await gateway.push(_frame(dingtalk_click(track, "ding-alice"), "two-a"), socket=1)
    )
    second = await (
        await gateway.push(_frame(dingtalk_click(track, "ding-bob"), "two-b"), socket=0)
    )
    assert "Alice" in dingtalk_notice(second) and dingtalk_notice(first)
    await shows_everywhere(client_two, fakes, number, "Alice", rep="alice")
    # the same callback redelivered to the other process applies nothing
    await (await gateway.push(_frame(dingtalk_click(track, "ding-alice"), "two-a"), socket=0))
    assert (await timeline_kinds(client_one, number)).count("claimed") == 1
    # both workers delivered from one outbox: one card per platform
    assert [d["outTrackId"] for d in fakes.dingtalk.deliveries].count(track) == 1
    assert len(wecom_group_lines(fakes.wecom, number)) >= 1
    assert sum(1 for m in fakes.slack.messages("CSALES") if f"#{number}" in m["text"]) == 1
    assert one.ctx.platforms.keys() == two.ctx.platforms.keys() == {"slack", "dingtalk", "wecom"}


def _frame(data: dict[str, Any], message_id: str) -> dict[str, Any]:
    from tests.fakes.dingtalk_gateway import callback_frame

    return callback_frame(data, message_id=message_id)


async def test_clock_reaches_dingtalk_and_wecom(
    sqlite_url: str, smtp: Any, fakes: Fakes, service_factory: Any
) -> None:
    """The daily digest is a markdown post in the DingTalk group (not a card) and in the
    WeCom chat; nudges @mention the reps on duty in the DingTalk group (text and at-list);
    the escalation reaches the lead as a DingTalk robot DM with the card's link and as a
    WeCom app card with Claim / Reassign."""
    clock = MovableClock(berlin(2026, 11, 27, 8, 40))  # a Friday, before the 09:00 digest
    settings = settings_for(sqlite_url, smtp, fakes, **clock_config(return_to_pool=False))
    service = await service_factory(settings, clock=clock)
    unpaced(service)
    for platform in service.ctx.platforms.values():
        await platform.start(service.interactions)  # no web app here: the clock is walked
    await fakes.dingtalk.gateway.wait_connected()
    walk = Walk(service, clock, RecordingChannel(name="unused"))
    dt, wc = fakes.dingtalk, fakes.wecom

    await walk.until(berlin(2026, 11, 27, 9, 5))
    (digest,) = [m for m in dt.group_messages if "Daily digest" in m["param"]["title"]]
    assert digest["msgKey"] == "sampleMarkdown" and digest["openConversationId"] == GROUP
    assert "Sales EU" in digest["param"]["text"]
    assert dt.deliveries == []  # no interactive card for a digest
    assert len([p for p in wc.groups.get(CHAT, []) if "Daily digest" in p]) == 1

    number = await ingest_inquiry(service, "clock-1")
    await walk.settle()
    assert dingtalk_card(dt, number) is not None
    await walk.until(berlin(2026, 11, 27, 9, 40))
    nudges = [m for m in dt.group_messages if f"/web/inquiries/{number}" not in m["param"]["text"]]
    nudges = [m for m in nudges if "ding-alice" in m["param"].get("atUserIds", [])]
    assert nudges, [m["param"] for m in dt.group_messages]
    text = nudges[0]["param"]["text"]
    assert "@ding-alice" in text and "@ding-bob" in text
    assert set(nudges[0]["param"]["atUserIds"]) == {"ding-alice", "ding-bob"}  # carol is away
    assert nudges[0]["openConversationId"] == GROUP
    assert any("<@wx-alice>" in line for line in wc.groups[CHAT])  # the WeCom group too

    (to_lena,) = [m for m in dt.direct_messages if m["userIds"] == ["ding-lena"]]
    assert f"/web/inquiries/{number}" in to_lena["param"]["text"]
    assert to_lena["robotCode"] == "dingtestclient"
    lena_cards = [b for b in wc.direct.get("wx-lena", []) if b["msgtype"] == "template_card"]
    escalation = json.dumps(lena_cards[-1]["template_card"])
    assert f"cd1:claim:{number}" in escalation and f"cd1:reassign:{number}" in escalation
    for platform in service.ctx.platforms.values():
        await platform.stop()


async def test_wecom_race_retry_bad_signature_and_a_fresh_card(
    db_url: str, smtp: Any, fakes: Fakes, service_factory: Any, client_factory: Any
) -> None:
    """Two reps press Claim in WeCom at once: one wins, every surface shows it, the late one
    is told who won; WeCom's retry of a callback applies nothing twice; a forged callback is
    refused; when every code of a card is spent or expired the reps get a fresh card, and
    the CardRef follows it (the update's new PostedCard is stored)."""
    service, client = await start(
        settings_for(db_url, smtp, fakes), fakes, service_factory, client_factory
    )
    wc = fakes.wecom
    number, _track = await new_inquiry(client, fakes, "wecom")
    first_task = wecom_task(wc, number)
    await card_refs(service, number, count=3)

    clicks = [wecom_click(wc, user, f"cd1:claim:{number}") for user in ("wx-alice", "wx-bob")]
    answers = await asyncio.gather(
        *(client.post("/wecom/callback", params=c.query, data=c.body) for c in clicks)
    )
    assert [a.status for a in answers] == [200, 200]
    winner = (await api(client, f"/api/inquiries/{number}"))["assignee"]
    loser = "wx-bob" if winner == "alice" else "wx-alice"
    name = NAMES[winner]
    await shows_everywhere(client, fakes, number, name, rep=winner)
    await eventually(lambda: wc.direct.get(loser), what="the late clicker is told")
    assert name in wc.direct[loser][-1]["markdown"]["content"]

    # Reply from the WeCom card: the winner gets the signed reply page as an app message
    winner_wx = "wx-alice" if winner == "alice" else "wx-bob"
    before = len(wc.direct.get(winner_wx, []))
    reply = wecom_click(wc, winner_wx, f"cd1:reply:{number}")
    assert (await client.post("/wecom/callback", params=reply.query, data=reply.body)).status == 200
    await eventually(lambda: len(wc.direct.get(winner_wx, [])) > before, what="the reply link")
    link = wc.direct[winner_wx][-1]["markdown"]["content"]
    assert "token=" in link and f"inquiries/{number}/reply" in link.replace("%2F", "/")

    # WeCom retries the winner's callback (same event): nothing applied twice
    won = clicks[0] if winner == "alice" else clicks[1]
    retried = await client.post("/wecom/callback", params=won.query, data=won.body)
    assert retried.status == 200
    assert (await timeline_kinds(client, number)).count("claimed") == 1

    # a callback with a bad signature is refused and changes nothing
    forged = wecom_click(wc, loser, f"cd1:release:{number}")
    query = {**forged.query, "msg_signature": "0" * 40}
    refused = await client.post("/wecom/callback", params=query, data=forged.body)
    assert refused.status == 401
    assert (await api(client, f"/api/inquiries/{number}"))["assignee"] == winner

    # every code spent or expired: the next change sends the reps a fresh card
    wc.age_codes(73 * 3600)
    owner = "alice" if winner == "alice" else "bob"
    csrf = await sign_in(client, service, owner)
    status, outcome = await act(client, csrf, f"cd1:release:{number}")
    assert status == 200 and outcome["ok"] is True, outcome
    await eventually(lambda: wecom_task(wc, number) != first_task, what="a fresh WeCom card")
    fresh = wecom_task(wc, number)
    refs = await card_refs(service, number, count=3)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while refs["wecom"].ref != fresh:
        assert loop.time() < deadline, "the CardRef did not follow the fresh card"
        await asyncio.sleep(0.05)
        refs = await card_refs(service, number, count=3)
    assert first_task in refs["wecom"].data["stale"]
    assert (await api(client, f"/api/inquiries/{number}"))["status"] == "new"


async def test_a_listed_lost_reason_from_the_dingtalk_and_wecom_cards(
    sqlite_url: str, smtp: Any, fakes: Fakes, service_factory: Any, client_factory: Any
) -> None:
    """ "Lost: Price" picked in a DingTalk or WeCom card's status select sets the inquiry lost
    with that reason, as the web and Slack do; "Won" (it needs words) is refused with a
    reason asked for, and changes nothing."""
    service, client = await start(
        settings_for(sqlite_url, smtp, fakes), fakes, service_factory, client_factory
    )
    dt, wc = fakes.dingtalk, fakes.wecom
    first, track = await new_inquiry(client, fakes, "lost-dt")
    await dt.gateway.callback(dingtalk_click(track, "ding-alice"))
    await shows_everywhere(client, fakes, first, "Alice", rep="alice")
    shown = [u["params"] for u in dt.updates if u["outTrackId"] == track][-1]  # claimed card
    assert "lost|price" in [o["value"] for o in json.loads(shown["status_options"])]
    refused = await dt.gateway.callback(dingtalk_click(track, "ding-alice", "status", "won|?"))
    assert "reason" in dingtalk_notice(refused)
    assert (await api(client, f"/api/inquiries/{first}"))["status"] == "claimed"
    await dt.gateway.callback(dingtalk_click(track, "ding-alice", "status", "lost|price"))
    body = await api(client, f"/api/inquiries/{first}")
    assert (body["status"], body["outcome_reason"]) == ("lost", "Price")

    second, _track = await new_inquiry(client, fakes, "lost-wc")
    await card_refs(service, second, count=3)
    claim = wecom_click(wc, "wx-bob", f"cd1:claim:{second}")
    await client.post("/wecom/callback", params=claim.query, data=claim.body)
    await shows_everywhere(client, fakes, second, "Bob", rep="bob")
    pick = wecom_click(wc, "wx-bob", f"cd1:status:{second}", chosen="lost|MOQ")
    answer = await client.post("/wecom/callback", params=pick.query, data=pick.body)
    assert answer.status == 200

    async def lost() -> dict[str, Any] | None:
        found = await api(client, f"/api/inquiries/{second}")
        return found if found["status"] == "lost" else None

    done = await eventually_async(lost, what="the WeCom choice applied")
    assert done["outcome_reason"] == "MOQ"
