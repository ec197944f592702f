"""``claimdesk serve --role webhooks``: a second process takes the webhooks, the first
(``--role all``, the default) serves everything else and delivers.

Two real ``claimdesk serve`` processes on one SQLite file, the fake Slack Web API
(``tests/fakes/slack_api.py``) behind both: what the webhooks process stores gets its
card from the other's outbox worker, a click on the first claims it and the card
shows it, and the webhooks process serves nothing else.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.slack_api import FakeSlack
from tests.support.postgres import free_port
from tests.support.serve_process import start_serve, stop_serve
from tests.support.slack import CHANNEL, with_slack
from tests.support.smtp_sink import SmtpSink
from tests.support.web_session import claim_on_the_web
from tests.test_crash_restart import write_config
from tests.test_slack_events import card_text, eventually

_NUMBER = re.compile(r"#(\d+)")


async def test_a_webhooks_process_stores_and_the_all_process_delivers(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    main_port, intake_port = free_port(), free_port()
    sink = SmtpSink()
    sink.start()
    config = write_config(tmp_path, main_port, sink.port)
    with_slack(config, fake_slack.token, fake_slack.base_url)
    main_base = f"http://127.0.0.1:{main_port}"
    intake_base = f"http://127.0.0.1:{intake_port}"
    main = start_serve(config)
    intake = start_serve(config, "--role", "webhooks", "--port", str(intake_port))
    try:
        async with aiohttp.ClientSession() as http:
            numbers = []
            for i in range(5):
                created = await http.post(
                    f"{intake_base}/webhooks/website",
                    json={
                        "email": f"buyer{i}@x.example",
                        "name": f"Buyer {i}",
                        "message": "Price?",
                    },
                    headers={"X-Claimdesk-Token": "hook-token"},
                )
                assert created.status == 202, await created.text()
                numbers.append((await created.json())["inquiry"])
            assert len(set(numbers)) == 5
            # the webhooks process serves the intake and its health, nothing else
            assert (await http.get(f"{intake_base}/healthz")).status == 200
            for path in ("/web/", "/", "/slack/events", "/api/inquiries"):
                assert (await http.get(f"{intake_base}{path}")).status == 404, path
            refused = await http.post(
                f"{intake_base}/web/actions", json={"action": f"cd1:claim:{numbers[0]}"}
            )
            assert refused.status in (404, 405)

        def cards() -> dict[int, str]:
            found = {}
            for message in fake_slack.messages(CHANNEL):
                match = _NUMBER.search(message["text"])
                if match:
                    found[int(match.group(1))] = message["ts"]
            return found

        # the other process's worker posts their cards (its poll: no wake-up crosses over)
        await eventually(lambda: set(numbers) <= set(cards()), within=20, what="cards posted")
        posts = [  # the day's digest may go out too, when the test runs after its hour
            call
            for call in fake_slack.calls_of("chat.postMessage")
            if not str(call.args.get("text", "")).startswith("Daily digest")
        ]
        assert len(posts) == 5  # each card once

        # a click on the first process claims it, and its card says so
        await claim_on_the_web(main_base, numbers[0])
        ts = cards()[numbers[0]]
        await eventually(
            lambda: "Owner*\\nAlice" in card_text(fake_slack, ts), within=20, what="claim shown"
        )
    finally:
        stop_serve(intake)
        stop_serve(main)
        sink.stop()
    assert intake.returncode == 0 and main.returncode == 0


async def test_an_unknown_role_is_refused_by_name(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port(), 1)
    done = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "--config",
        str(config),
        "serve",
        "--role",
        "clicks",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await done.communicate()
    assert done.returncode == 2
    assert b"--role" in err and b"webhooks" in err


async def test_the_main_process_delivers_a_webhook_processs_inquiry_at_once(
    db_url: str, smtp: Any, fake_slack: FakeSlack, service_factory: Any, client_factory: Any
) -> None:
    """The webhook process's commits wake the main process's worker (SQLite: ``PRAGMA
    data_version``; PostgreSQL: ``LISTEN``/``NOTIFY``): its card is posted long before the
    worker's own poll (30 s here) would have found it."""
    from bot.app import Service
    from bot.runtime.outbox_worker import WorkerSettings
    from tests.test_webhook_hardening import FORM_TOKEN, settings_with_form_hook

    settings = settings_with_form_hook(smtp.port, db_url, fake_slack.base_url)
    slow_poll = WorkerSettings(
        lease_seconds=30, poll_seconds=30, base_backoff=0.05, max_backoff=0.5, max_attempts=4
    )
    main = await service_factory(settings, worker=slow_poll)
    await client_factory(main, background=True)  # its worker, feed and watcher run
    intake = await Service.create(settings, role="webhooks")
    try:
        client = await client_factory(intake, background=False)
        await asyncio.sleep(0.3)  # the watcher has its first look (and its LISTEN)
        posted = time.monotonic()
        created = await client.post(
            "/webhooks/form",
            json={"email": "buyer@x.example", "name": "Buyer", "message": "Price for 100?"},
            headers={"X-Claimdesk-Token": FORM_TOKEN},
        )
        assert created.status == 202, await created.text()
        number = (await created.json())["inquiry"]
        await eventually(
            lambda: any(f"#{number}" in m["text"] for m in fake_slack.messages(CHANNEL)),
            within=10,
            what="card posted by the main process",
        )
        assert time.monotonic() - posted < 10  # not the 30 s poll
        assert main.foreign_commits.seen >= 1
    finally:
        await intake.close()
