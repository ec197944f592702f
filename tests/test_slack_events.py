"""Slack end to end: real slack-bolt/slack-sdk against the fake Slack Web API, signed requests.

webhook -> Block Kit card in the channel (mrkdwn-safe) -> claim (first click wins,
the loser and outsiders get ephemerals) -> card edited in place + thread note ->
status / snooze, with Slack retries and double clicks applied once -> Reply
modal (views.open inside the trigger's 3 s, template errors in place, email
sent) -> Socket Mode -> rep mapping by email -> escalation DM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from config.loading import settings_from_mapping
from connectors.channels import Pacing
from connectors.slack.channel import SlackChannel
from connectors.slack.platform import SlackPlatform
from store.engine import transaction
from store.models import RepIdentity
from tests.conftest import API_TOKEN, base_config
from tests.fakes.slack_api import FakeSlack
from tests.support.slack import (
    CHANNEL,
    fixture,
    form_body,
    signed_headers,
    slack_config,
    users_select,
)
from tests.test_flow_end_to_end import FORM, post_webhook

EVIL_SUBJECT = "<!channel> <http://x|click> @here 40HQ price"


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack(
        channels={
            CHANNEL: {"name": "sales-inquiries", "is_member": True},
            "CNOTIN": {"name": "other", "is_member": False},
        },
        users={
            "UALICE": {"email": "alice@seller.test", "name": "alice"},
            "UBOB": {"email": "Bob@Seller.test", "name": "bob"},
            "ULENA": {"email": "lena@seller.test", "name": "lena"},
            "UMAX": {"email": "max@seller.test", "name": "max"},
            "UOUT": {"email": "stranger@elsewhere.test", "name": "stranger"},
        },
    )
    await fake.start()
    yield fake
    await fake.stop()


async def eventually(
    check: Callable[[], Any], *, within: float = 10.0, what: str = "condition"
) -> Any:
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


async def eventually_async(
    check: Callable[[], Awaitable[Any]], *, within: float = 10.0, what: str = "condition"
) -> Any:
    """Like ``eventually`` for a check that has to await (an HTTP read)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _kinds_with(client: Any, number: int, kind: str) -> list[str] | None:
    """The timeline's event kinds once it holds ``kind``, else None."""
    kinds = [e["kind"] for e in (await detail(client, number))["timeline"]]
    return kinds if kind in kinds else None


async def start(
    db_url: str,
    smtp: Any,
    fake: FakeSlack,
    service_factory: Any,
    client_factory: Any,
    *,
    app_token: str = "",
) -> tuple[Any, Any]:
    settings = settings_from_mapping(
        slack_config(base_config(smtp.port, db_url), fake.base_url, app_token=app_token),
        source="test.toml",
        env={},
    )
    channel = SlackChannel.from_settings(settings.slack, pacing=Pacing(post_interval=0.0))
    service = await service_factory(settings, channels={"slack": channel})
    assert service.platforms["slack"].routes(service.interactions)
    client = await client_factory(service)
    return service, client


async def click(
    client: Any, payload: dict[str, Any], *, headers: dict[str, str] | None = None
) -> Any:
    body = form_body(payload)
    all_headers = signed_headers(body)
    all_headers.update(headers or {})
    return await client.post("/slack/events", data=body.encode(), headers=all_headers)


async def new_card(
    client: Any, fake: FakeSlack, subject: str = FORM["subject"], key: str = ""
) -> tuple[int, str]:
    response = await post_webhook(
        client, {**FORM, "subject": subject}, headers={"Idempotency-Key": key or subject}
    )
    assert response.status == 202
    number = (await response.json())["inquiry"]
    message = await eventually(
        lambda: next((m for m in fake.messages(CHANNEL) if f"#{number}" in m["text"]), None),
        what="card post",
    )
    return number, message["ts"]


async def detail(client: Any, number: int) -> dict[str, Any]:
    response = await client.get(
        f"/api/inquiries/{number}", headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    assert response.status == 200
    return dict(await response.json())


def card_text(fake: FakeSlack, ts: str) -> str:
    return json.dumps(fake.message(CHANNEL, ts)["blocks"], ensure_ascii=False)


async def test_card_claim_race_refusals_and_injection(
    sqlite_url: str, smtp: Any, fake_slack: FakeSlack, service_factory: Any, client_factory: Any
) -> None:
    service, client = await start(sqlite_url, smtp, fake_slack, service_factory, client_factory)
    number, ts = await new_card(client, fake_slack, EVIL_SUBJECT)

    # mrkdwn injection: the customer's subject pings nobody and links nowhere
    posted = fake_slack.message(CHANNEL, ts)
    everything = json.dumps(posted, ensure_ascii=False)
    assert (
        "<!channel>" not in everything
        and "<http://x|click>" not in everything
        and "@here" not in everything
    )
    assert "&lt;!channel&gt; &lt;http://x|click&gt; @\u2060here 40HQ price" in everything
    assert '"cd1:claim:' in everything

    # alice (slack_id) and bob (found by email) click Claim at the same moment: one winner
    first, second = await asyncio.gather(
        click(
            client,
            fixture(
                "block_actions_button.json",
                action_id=f"cd1:claim:{number}",
                user="UALICE",
                message_ts=ts,
            ),
        ),
        click(
            client,
            fixture(
                "block_actions_button.json",
                action_id=f"cd1:claim:{number}",
                user="UBOB",
                message_ts=ts,
            ),
        ),
    )
    assert (first.status, second.status) == (200, 200)  # ack latency: bench/bench_slack.py
    await eventually(lambda: len(fake_slack.ephemerals) == 1, what="ephemeral for the loser")
    state = await detail(client, number)
    winner = {"alice": "Alice", "bob": "Bob"}[state["assignee"]]
    loser = "UBOB" if state["assignee"] == "alice" else "UALICE"
    assert (
        fake_slack.ephemerals[0]["user"] == loser and fake_slack.ephemerals[0]["channel"] == CHANNEL
    )
    assert fake_slack.ephemerals[0]["text"].startswith(f"{winner} claimed it")
    assert [e["kind"] for e in state["timeline"]].count("claimed") == 1

    # the card is edited in place and the thread says who claimed
    await eventually(lambda: f"Owner*\\n{winner}" in card_text(fake_slack, ts), what="card update")
    assert '"cd1:claim:' not in card_text(fake_slack, ts)
    await eventually(
        lambda: any(
            f"{winner} claimed #{number}" in m["text"] for m in fake_slack.thread(CHANNEL, ts)
        ),
        what="thread note",
    )
    assert len(fake_slack.messages(CHANNEL)) == 1

    # a stranger gets a polite refusal, privately; nothing changes
    response = await click(
        client,
        fixture(
            "block_actions_button.json",
            action_id=f"cd1:release:{number}",
            user="UOUT",
            message_ts=ts,
        ),
    )
    assert response.status == 200
    await eventually(lambda: len(fake_slack.ephemerals) == 2, what="refusal")
    assert (
        fake_slack.ephemerals[1]["user"] == "UOUT"
        and "not set up as a rep" in fake_slack.ephemerals[1]["text"]
    )
    assert (await detail(client, number))["assignee"] == state["assignee"]


async def test_signature_is_verified(
    sqlite_url: str, smtp: Any, fake_slack: FakeSlack, service_factory: Any, client_factory: Any
) -> None:
    service, client = await start(sqlite_url, smtp, fake_slack, service_factory, client_factory)
    number, ts = await new_card(client, fake_slack)
    body = form_body(
        fixture(
            "block_actions_button.json",
            action_id=f"cd1:claim:{number}",
            user="UALICE",
            message_ts=ts,
        )
    )
    forged = signed_headers(body, secret="not-the-secret")
    stale = signed_headers(body, timestamp=int(time.time()) - 600)
    tampered = signed_headers(body)
    for headers, data in (
        (forged, body),
        (stale, body),
        (tampered, body.replace("UALICE", "UBOB")),
        ({"Content-Type": "application/x-www-form-urlencoded"}, body),
    ):
        response = await client.post("/slack/events", data=data.encode(), headers=headers)
        assert response.status == 401
    # a later genuine click (a snooze, by bob) is the signal that clicks were processed:
    # once it shows, nothing of the refused ones was applied before it.
    snooze = fixture(
        "block_actions_overflow.json",
        action_id=f"cd1:snooze:{number}",
        value="4h",
        user="UBOB",
        message_ts=ts,
    )
    assert (await click(client, snooze)).status == 200
    kinds = await eventually_async(
        lambda: _kinds_with(client, number, "snoozed"), what="the genuine snooze"
    )
    assert kinds == ["received", "snoozed"]
    state = await detail(client, number)
    assert (state["status"], state["assignee"]) == ("new", None)
    assert fake_slack.ephemerals == []


async def test_retries_and_double_clicks_apply_once(
    sqlite_url: str,
    smtp: Any,
    fake_slack: FakeSlack,
    service_factory: Any,
    client_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    service, client = await start(sqlite_url, smtp, fake_slack, service_factory, client_factory)
    number, ts = await new_card(client, fake_slack)
    assert (
        await click(
            client,
            fixture(
                "block_actions_button.json",
                action_id=f"cd1:claim:{number}",
                user="UALICE",
                message_ts=ts,
            ),
        )
    ).status == 200
    await eventually(lambda: fake_slack.calls_of("chat.update"), what="claim update")

    # status select (static_select), then Slack redelivers the very same request
    status = fixture(
        "block_actions_static_select.json",
        action_id=f"cd1:status:{number}",
        value="waiting",
        user="UALICE",
        message_ts=ts,
    )
    assert (await click(client, status)).status == 200
    assert (
        await click(
            client,
            status,
            headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
        )
    ).status == 200
    # snooze (overflow): a human double click is two payloads with different action_ts
    snooze_a = fixture(
        "block_actions_overflow.json",
        action_id=f"cd1:snooze:{number}",
        value="4h",
        user="UALICE",
        message_ts=ts,
    )
    snooze_b = fixture(
        "block_actions_overflow.json",
        action_id=f"cd1:snooze:{number}",
        value="4h",
        user="UALICE",
        message_ts=ts,
    )
    assert snooze_a["actions"][0]["action_ts"] != snooze_b["actions"][0]["action_ts"]
    assert (await click(client, snooze_a)).status == 200
    assert (await click(client, snooze_b)).status == 200

    async def kinds() -> list[str]:
        return [e["kind"] for e in (await detail(client, number))["timeline"]]

    # the positive signal: both duplicates (the redelivery and the double click) were seen
    # and dropped, whichever check caught each
    dropped = ("redelivered action dropped", "slack double click dropped")
    await eventually(
        lambda: sum(r.getMessage() in dropped for r in caplog.records) == 2,
        what="both duplicates dropped",
    )
    await eventually_async(lambda: _kinds_with(client, number, "snoozed"), what="snooze")
    assert await kinds() == ["received", "claimed", "status", "snoozed"]
    assert (await detail(client, number))["status"] == "waiting"
    assert fake_slack.ephemerals == []  # duplicates are dropped silently, not refused


async def test_reply_modal_errors_in_place_then_sends(
    sqlite_url: str, smtp: Any, fake_slack: FakeSlack, service_factory: Any, client_factory: Any
) -> None:
    service, client = await start(sqlite_url, smtp, fake_slack, service_factory, client_factory)
    number, ts = await new_card(client, fake_slack)
    trigger = fake_slack.new_trigger()
    payload = fixture(
        "block_actions_button.json",
        action_id=f"cd1:reply:{number}",
        user="UALICE",
        message_ts=ts,
        trigger_id=trigger,
    )
    assert (await click(client, payload)).status == 200
    opened = await eventually(lambda: fake_slack.calls_of("views.open"), what="views.open")
    assert opened[0].args["trigger_id"] == trigger  # the fake refuses triggers older than 3 s
    await eventually(lambda: fake_slack.calls_of("views.update"), what="modal filled in")
    view = next(iter(fake_slack.views.values()))
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    body_block = next(k for k in blocks if str(k).startswith("body-"))
    assert "Dear Maria Lopez" in blocks[body_block]["element"]["initial_value"]

    # switching the template re-renders the text (new block id, so Slack shows it)
    switch = fixture(
        "block_actions_static_select.json",
        user="UALICE",
        action_id="cd1-reply-template",
        value="en/quotation",
    )
    switch["container"] = {"type": "view", "view_id": view["id"]}
    switch["view"] = view
    del switch["channel"], switch["message"]
    assert (await click(client, switch)).status == 200
    await eventually(lambda: len(fake_slack.calls_of("views.update")) == 2, what="template switch")
    view = fake_slack.views[view["id"]]
    assert json.loads(view["private_metadata"])["template"] == "en/quotation"

    def submission(text: str) -> dict[str, Any]:
        sub = fixture("view_submission.json", user="UALICE")
        sub["view"]["private_metadata"] = view["private_metadata"]
        sub["view"]["id"] = view["id"]
        sub["view"]["state"]["values"] = {
            "subject": {"subject": {"type": "plain_text_input", "value": f"Re: LED [#{number}]"}},
            "body-en/quotation": {"body": {"type": "plain_text_input", "value": text}},
        }
        return sub

    # a refused text (here: empty) is shown in place, nothing sent; braces are not refused
    # (the rep's text is never rendered: see test_intake_hygiene)
    bad = await click(client, submission("   \n"))
    assert bad.status == 200
    answer = await bad.json()
    assert (
        answer["response_action"] == "errors"
        and "empty" in answer["errors"]["body-en/quotation"].lower()
    )
    assert (await detail(client, number))["status"] == "new"

    good = await click(client, submission("Dear Maria,\nour offer follows.\nAlice"))
    assert good.status == 200 and (await good.text()) == ""
    await eventually(lambda: smtp.messages, what="email")
    assert "our offer follows" in smtp.messages[0].message.get_content()
    state = await detail(client, number)
    assert (state["status"], state["assignee"]) == ("replied", "alice")
    await eventually(
        lambda: any("Alice replied" in m["text"] for m in fake_slack.thread(CHANNEL, ts)),
        what="reply note",
    )


async def test_reply_by_outsider_shows_refusal_in_modal(
    sqlite_url: str, smtp: Any, fake_slack: FakeSlack, service_factory: Any, client_factory: Any
) -> None:
    service, client = await start(sqlite_url, smtp, fake_slack, service_factory, client_factory)
    number, ts = await new_card(client, fake_slack)
    payload = fixture(
        "block_actions_button.json",
        action_id=f"cd1:reply:{number}",
        user="UOUT",
        message_ts=ts,
        trigger_id=fake_slack.new_trigger(),
    )
    assert (await click(client, payload)).status == 200
    await eventually(lambda: fake_slack.calls_of("views.update"), what="modal")
    view = next(iter(fake_slack.views.values()))
    assert "submit" not in view and "not set up as a rep" in json.dumps(view)


async def test_socket_mode_claim(
    sqlite_url: str, smtp: Any, fake_slack: FakeSlack, service_factory: Any, client_factory: Any
) -> None:
    service, client = await start(
        sqlite_url,
        smtp,
        fake_slack,
        service_factory,
        client_factory,
        app_token=fake_slack.app_token,
    )
    await fake_slack.wait_connected()
    number, ts = await new_card(client, fake_slack)
    ack = await fake_slack.push_interactive(
        fixture(
            "block_actions_button.json",
            action_id=f"cd1:claim:{number}",
            user="UALICE",
            message_ts=ts,
        )
    )
    assert ack["envelope_id"]
    await eventually(
        lambda: "Owner*\\nAlice" in card_text(fake_slack, ts), what="card update via socket mode"
    )
    assert (await detail(client, number))["assignee"] == "alice"
    # a reply submission over the socket answers errors in the ack payload
    sub = fixture("view_submission.json", user="UALICE")
    sub["view"]["private_metadata"] = json.dumps({"inquiry": number, "template": "en/thank_you"})
    sub["view"]["state"]["values"]["body-en/thank_you"]["body"]["value"] = "   "
    ack = await fake_slack.push_interactive(sub)
    assert ack["payload"]["response_action"] == "errors"


async def test_rep_mapping_reassign_and_escalation_dm(
    sqlite_url: str, smtp: Any, fake_slack: FakeSlack, service_factory: Any, client_factory: Any
) -> None:
    service, client = await start(sqlite_url, smtp, fake_slack, service_factory, client_factory)
    number, ts = await new_card(client, fake_slack)
    bot = service.platforms["slack"]
    assert isinstance(bot, SlackPlatform)

    # bob has no slack_id: found by his profile email once, then remembered
    assert await bot.rep_for_user("UBOB") == "bob"
    assert await bot.rep_for_user("UBOB") == "bob"
    assert len(fake_slack.calls_of("users.info")) == 1
    async with transaction(service.ctx.sessions) as session:
        assert (await session.get(RepIdentity, ("slack", "UBOB"))).rep_id == "bob"
    assert await bot.rep_for_user("UOUT") is None

    # lena (a lead, no slack_id) reassigns to bob with the user picker
    payload = users_select(
        f"cd1:reassign:{number}", "ULENA", "UBOB", channel=CHANNEL, message_ts=ts
    )
    assert (await click(client, payload)).status == 200
    await eventually(lambda: "Owner*\\nBob" in card_text(fake_slack, ts), what="reassigned card")
    # bob may not reassign
    payload = users_select(
        f"cd1:reassign:{number}", "UBOB", "UALICE", channel=CHANNEL, message_ts=ts
    )
    assert (await click(client, payload)).status == 200
    await eventually(
        lambda: any(e["user"] == "UBOB" for e in fake_slack.ephemerals), what="refusal"
    )

    # escalation: the manager (found with users.lookupByEmail, then remembered) is whom to DM
    max_rep = service.ctx.settings.rep("max")
    assert max_rep is not None
    assert await bot.user_for_rep(max_rep) == "UMAX"
    assert await bot.user_for_rep(max_rep) == "UMAX"
    assert len(fake_slack.calls_of("users.lookupByEmail")) == 1
    assert fake_slack.calls_of("users.lookupByEmail")[0].args["email"] == "max@seller.test"
    assert await service.interactions.rep_for("slack", "UMAX") == "max"


def _status_options(fake: FakeSlack, ts: str, number: int) -> dict[str, str]:
    """The card's status select as {value: label}, option groups included."""
    blocks = fake.message(CHANNEL, ts)["blocks"]
    actions = next(b for b in blocks if b["type"] == "actions")
    select = next(e for e in actions["elements"] if e["action_id"] == f"cd1:status:{number}")
    options = list(select.get("options", []))
    for group in select.get("option_groups", []):
        options.extend(group["options"])
    return {o["value"]: o["text"]["text"] for o in options}


async def test_lost_reasons_and_won_reason_on_the_card(
    sqlite_url: str, smtp: Any, fake_slack: FakeSlack, service_factory: Any, client_factory: Any
) -> None:
    service, client = await start(sqlite_url, smtp, fake_slack, service_factory, client_factory)

    async def claimed_card(subject: str) -> tuple[int, str]:
        number, ts = await new_card(client, fake_slack, subject)
        claim = fixture(
            "block_actions_button.json",
            action_id=f"cd1:claim:{number}",
            user="UALICE",
            message_ts=ts,
        )
        assert (await click(client, claim)).status == 200
        await eventually(lambda: "Alice" in card_text(fake_slack, ts), what="claimed card")
        return number, ts

    number, ts = await claimed_card("First inquiry")
    options = _status_options(fake_slack, ts, number)
    # the team's lost reasons are choices on the card; "other" and "won" ask for words
    assert options["lost|price"] == "Lost: Price"
    assert options["lost|?"] == "Lost: Other"
    assert options["won|?"] == "Won"
    assert "lost" not in options and "won" not in options

    pick = fixture(
        "block_actions_static_select.json",
        action_id=f"cd1:status:{number}",
        value="lost|price",
        user="UALICE",
        message_ts=ts,
    )
    assert (await click(client, pick)).status == 200
    await eventually(lambda: "Reason*\\nPrice" in card_text(fake_slack, ts), what="lost card")
    assert (await detail(client, number))["status"] == "lost"
    assert fake_slack.ephemerals == []  # no "reason required"

    # won: a modal asks why; an empty reason is refused in place, then it is applied
    number, ts = await claimed_card("Second inquiry")
    trigger = fake_slack.new_trigger()
    pick = fixture(
        "block_actions_static_select.json",
        action_id=f"cd1:status:{number}",
        value="won|?",
        user="UALICE",
        message_ts=ts,
        trigger_id=trigger,
    )
    assert (await click(client, pick)).status == 200
    opened = await eventually(lambda: fake_slack.calls_of("views.open"), what="reason modal")
    assert opened[0].args["trigger_id"] == trigger
    view = next(iter(fake_slack.views.values()))
    assert view["callback_id"] == "cd1-reason" and "Why Won?" in json.dumps(view)
    assert (await detail(client, number))["status"] == "claimed"

    def submission(words: str) -> dict[str, Any]:
        sub = fixture("view_submission.json", user="UALICE")
        sub["view"]["callback_id"] = "cd1-reason"
        sub["view"]["private_metadata"] = view["private_metadata"]
        sub["view"]["id"] = view["id"]
        sub["view"]["state"]["values"] = {
            "reason": {"reason": {"type": "plain_text_input", "value": words}}
        }
        return sub

    bad = await click(client, submission("  "))
    answer = await bad.json()
    assert answer["response_action"] == "errors" and "reason" in answer["errors"]
    assert (await detail(client, number))["status"] == "claimed"
    good = await click(client, submission("Order of 2 containers"))
    assert good.status == 200 and (await good.text()) == ""
    await eventually(lambda: "Order of 2 containers" in card_text(fake_slack, ts), what="won card")
    assert (await detail(client, number))["status"] == "won"
