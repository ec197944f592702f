"""A card is posted exactly once per inquiry and channel, even when the platform accepted
a post whose answer never arrived (timeout, dropped connection, 500) or the process was
killed while the post was in flight; later changes land on that one card.

Against the fake Slack Web API (``tests/fakes/slack_api.py``): the post carries the outbox
key in its message ``metadata``; before posting again the worker looks for it with
``conversations.history`` (``include_all_metadata``).
"""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.runtime.outbox_worker import WorkerSettings
from config.loading import settings_from_mapping
from connectors.channels import Pacing
from connectors.slack.channel import SlackChannel
from connectors.webhooks import InboundForm
from store import outbox
from store.engine import transaction
from tests.conftest import base_config
from tests.fakes.slack_api import FakeSlack
from tests.support.postgres import free_port
from tests.support.serve_process import start_serve as start_process
from tests.support.slack import CHANNEL, fixture, slack_config, with_slack
from tests.support.smtp_sink import SmtpSink
from tests.support.web_session import claim_on_the_web
from tests.test_crash_restart import write_config
from tests.test_slack_channel import card as slack_card
from tests.test_slack_events import card_text, click, eventually

_NUMBER = re.compile(r"#(\d+)")

PATIENT = WorkerSettings(
    lease_seconds=30,
    poll_seconds=0.05,
    base_backoff=0.05,
    max_backoff=0.3,
    max_attempts=40,  # 30 % of calls fail here: no row may run out of attempts
)


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack(
        channels={CHANNEL: {"name": "sales", "is_member": True}},
        users={"UALICE": {"email": "alice@seller.test"}},
    )
    await fake.start()
    yield fake
    fake.release()
    await fake.stop()


def _form(i: int) -> InboundForm:
    return InboundForm(
        webhook="website",
        email=f"buyer{i}@example.com",
        name=f"Buyer {i}",
        subject=f"Inquiry number {i}",
        message="Please quote 100 pcs.",
        dedupe_key=f"once-{i}",
    )


def _cards(fake: FakeSlack) -> Counter[int]:
    found = (_NUMBER.search(m["text"]) for m in fake.messages(CHANNEL))
    return Counter(int(m.group(1)) for m in found if m)


async def _service(
    db_url: str, smtp: Any, fake: FakeSlack, service_factory: Any, client_factory: Any
) -> tuple[Any, Any]:
    settings = settings_from_mapping(
        slack_config(base_config(smtp.port, db_url), fake.base_url), source="test.toml", env={}
    )
    # a short client timeout: the fake's hangs become the ambiguous timeouts under test
    channel = SlackChannel(
        bot_token=settings.slack.bot_token,
        api_base_url=settings.slack.api_base_url,
        pacing=Pacing(post_interval=0.0),
        timeout=1.0,
    )
    service = await service_factory(settings, channels={"slack": channel}, worker=PATIENT)
    return service, await client_factory(service)


async def _settled(service: Any) -> bool:
    async with transaction(service.ctx.sessions) as session:
        return not await outbox.pending_counts(session)


async def _wait_settled(service: Any, within: float = 90.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await _settled(service):
        if loop.time() > deadline:
            raise AssertionError("outbox did not settle")
        await asyncio.sleep(0.1)


async def test_find_posted_matches_our_key_in_message_metadata(fake_slack: FakeSlack) -> None:
    channel = SlackChannel(bot_token=fake_slack.token, api_base_url=fake_slack.base_url)
    try:
        card = slack_card(1042)
        since = datetime.now(UTC) - timedelta(seconds=5)
        posted = await channel.post_card(CHANNEL, card, locale="en", idempotency_key="k-1")
        await channel.post_card(CHANNEL, card, locale="en", idempotency_key="k-2")
        sent = fake_slack.calls_of("chat.postMessage")[0].args["metadata"]
        assert sent == {"event_type": "claimdesk_card", "event_payload": {"key": "k-1"}}
        found = await channel.find_posted(CHANNEL, "k-1", since=since)
        assert found is not None and found.ref == posted.ref
        assert await channel.find_posted(CHANNEL, "k-3", since=since) is None
        later = datetime.now(UTC) + timedelta(hours=1)
        assert await channel.find_posted(CHANNEL, "k-1", since=later) is None  # bounded
        history = fake_slack.calls_of("conversations.history")[0].args
        assert history["include_all_metadata"] in ("true", "1", True)
    finally:
        await channel.close()


@pytest.mark.parametrize("mode", ["accept_hang", "accept_drop", "accept_500"])
async def test_post_accepted_then_failed_is_not_posted_again(
    mode: str,
    sqlite_url: str,
    smtp: Any,
    fake_slack: FakeSlack,
    service_factory: Any,
    client_factory: Any,
) -> None:
    service, client = await _service(sqlite_url, smtp, fake_slack, service_factory, client_factory)
    fake_slack.fail_ambiguously("chat.postMessage", mode, hang=3.0)
    number = (await service.intake(_form(1))).inquiry_id
    await _wait_settled(service)
    assert fake_slack.faults_injected == [("chat.postMessage", mode)]
    assert _cards(fake_slack) == {number: 1}
    ts = fake_slack.messages(CHANNEL)[0]["ts"]
    response = await click(
        client,
        fixture(
            "block_actions_button.json",
            action_id=f"cd1:claim:{number}",
            user="UALICE",
            message_ts=ts,
        ),
    )
    assert response.status == 200
    await eventually(lambda: "Owner*\\nAlice" in card_text(fake_slack, ts), what="claim shown")
    assert _cards(fake_slack) == {number: 1}


async def test_thirty_percent_faults_every_card_once_every_claim_shown(
    db_url: str, smtp: Any, fake_slack: FakeSlack, service_factory: Any, client_factory: Any
) -> None:
    service, client = await _service(db_url, smtp, fake_slack, service_factory, client_factory)
    fake_slack.chaos(
        {"chat.postMessage", "chat.update", "conversations.history"}, 0.3, seed=8, hang=2.0
    )
    numbers = [(await service.intake(_form(i))).inquiry_id for i in range(30)]
    await _wait_settled(service)
    assert _cards(fake_slack) == dict.fromkeys(numbers, 1)
    by_number = {
        int(_NUMBER.search(m["text"]).group(1)): m["ts"]  # type: ignore[union-attr]
        for m in fake_slack.messages(CHANNEL)
    }
    for number in numbers:
        response = await click(
            client,
            fixture(
                "block_actions_button.json",
                action_id=f"cd1:claim:{number}",
                user="UALICE",
                message_ts=by_number[number],
            ),
        )
        assert response.status == 200
    await _wait_settled(service)
    await eventually(
        lambda: all("Owner*\\nAlice" in card_text(fake_slack, ts) for ts in by_number.values()),
        within=60,
        what="every claim shown on its card",
    )
    assert _cards(fake_slack) == dict.fromkeys(numbers, 1)
    modes = {mode for _, mode in fake_slack.faults_injected}
    assert {"accept_hang", "accept_drop", "accept_500"} <= modes  # the ambiguous ones happened


def _card_post_row(db: Path) -> tuple[str, str | None] | None:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT state, attempted_at FROM outbox WHERE kind = 'card.post'"
        ).fetchone()


def _card_ref(db: Path) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT ref FROM card_ref WHERE platform = 'slack'").fetchone()
    return row[0] if row else None


async def test_sigkill_while_slack_holds_an_accepted_post_gives_one_card(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    http_port = free_port()
    sink = SmtpSink()
    config = write_config(tmp_path, http_port, sink.port)
    with_slack(config, fake_slack.token, fake_slack.base_url)
    assert "slack_channel" in config.read_text(encoding="utf-8")
    db = tmp_path / "cd.db"
    base = f"http://127.0.0.1:{http_port}"
    fake_slack.hold("chat.postMessage")
    proc = start_process(config)
    try:
        async with aiohttp.ClientSession() as http:
            created = await http.post(
                f"{base}/webhooks/website",
                json={"email": "buyer@x.example", "name": "Buyer", "message": "Price for 100?"},
                headers={"X-Claimdesk-Token": "hook-token"},
            )
            assert created.status == 202
            number = (await created.json())["inquiry"]
        await asyncio.wait_for(fake_slack.held.wait(), 30)  # Slack has the card; no answer yet
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert _cards(fake_slack) == {number: 1}
    row = _card_post_row(db)
    assert row is not None and row[0] == "pending" and row[1] is not None  # intent recorded
    assert _card_ref(db) is None  # the process died before saving where the card is

    restarted = start_process(config)
    try:
        for _ in range(300):
            row = _card_post_row(db)
            if row and row[0] == "done":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the card post was not settled: {row}")
        assert _cards(fake_slack) == {number: 1}
        ts = fake_slack.messages(CHANNEL)[0]["ts"]
        assert _card_ref(db) == ts  # the one card was adopted

        # a later change lands on that card
        await claim_on_the_web(base, number)
        await eventually(
            lambda: "Owner*\\nAlice" in card_text(fake_slack, ts), within=30, what="claim shown"
        )
        assert _cards(fake_slack) == {number: 1}
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=20)
    assert restarted.returncode == 0
