"""Everyone is reachable: with no chat platform (or no id on it) the clock's nudges, escalations
and the daily digest go by email, through a real SMTP server (aiosmtpd), each once even with two
processes ticking together; an empty ladder rung falls through; the one-click links in those
emails sign the rep in, claim once, and expire."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import col, select

from bot.app import Service
from bot.usecases.card_actions import perform
from bot.usecases.notices import RepNotices, compose
from bot.usecases.presence import set_away
from cards.actions import Action, Verb
from connectors.mail.smtp import build_notification, notification_message_id
from store import inquiries as repo
from store.models import Event
from tests.conftest import MovableClock
from tests.support.clock import CHANNEL, berlin, clock_config, new_inquiry, recording_channel
from tests.support.smtp_sink import SmtpSink


def reach_config(*, leads: list[str], slack_ids: bool = False) -> dict[str, Any]:
    """clock_config's team (alice, bob, carol away -> bob), every rep with an email address."""
    config = clock_config(return_to_pool=False)
    config["teams"][0]["leads"] = leads
    reps: list[dict[str, Any]] = [
        {"id": "alice", "name": "Alice", "email": "alice@seller.test", "slack_id": "UALICE"},
        {"id": "bob", "name": "Bob", "email": "bob@seller.test"},
        {
            "id": "carol",
            "name": "Carol",
            "email": "carol@seller.test",
            "away": True,
            "backup": "bob",
        },
        {"id": "lena", "name": "Lena Lead", "email": "lena@seller.test", "slack_id": "ULENA"},
        {"id": "max", "name": "Max Manager", "email": "max@seller.test"},
        {"id": "chen", "name": "陈"},
    ]
    if not slack_ids:
        for rep in reps:
            rep.pop("slack_id", None)
    config["reps"] = reps
    return config


def mailed(smtp: SmtpSink) -> Counter[tuple[str, str]]:
    """(recipient, what) of every message received: what is the subject's kind."""
    out: Counter[tuple[str, str]] = Counter()
    for m in smtp.messages:
        subject = str(m.message["Subject"])
        kind = "digest" if subject.startswith("Daily digest") else subject.split("]", 1)[1]
        out[(m.rcpt_tos[0], kind.split(":")[0].strip())] += 1
    return out


async def tick_both(services: list[Service]) -> None:
    reports = await asyncio.gather(*(s.scheduler.tick() for s in services if s.scheduler))
    if any(r.steps or r.digests for r in reports):
        await asyncio.gather(*(s.worker.drain() for s in services))


async def test_web_only_mails_nudge_escalation_digest_once(
    db_url: str, make_settings: Any, service_factory: Any, smtp: SmtpSink
) -> None:
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))  # a Tuesday morning
    settings = make_settings(db_url, **reach_config(leads=["lena"]))
    one = await service_factory(settings, clock=clock)  # no chat platform at all
    two = await service_factory(settings, clock=clock)
    number = await new_inquiry(one, "web-only-1")
    await asyncio.gather(one.worker.drain(), two.worker.drain())
    assert smtp.messages == []  # nobody is told of a new inquiry before its claim is due

    for _ in range(16):  # 10:05 .. 11:20: the whole unclaimed ladder, from both processes
        clock.advance(minutes=5)
        await tick_both([one, two])
    clock.now = berlin(2026, 11, 25, 9, 0)  # Wednesday 09:00: the digest, from both at once
    await tick_both([one, two])

    # nudges at 10:15, 10:30, 10:45 to the members on duty (carol is away: bob stands in)
    assert mailed(smtp) == {
        ("alice@seller.test", "Waiting to be claimed"): 3,
        ("bob@seller.test", "Waiting to be claimed"): 3,
        ("lena@seller.test", "Escalation"): 1,
        ("max@seller.test", "Escalation"): 1,
        ("lena@seller.test", "digest"): 1,
        ("max@seller.test", "digest"): 1,
    }
    ids = [str(m.message["Message-ID"]) for m in smtp.messages]
    assert len(set(ids)) == len(ids)
    for m in smtp.messages:
        assert m.message["Auto-Submitted"] == "auto-generated"
        assert m.mail_from == "sales@seller.test"
        plain = m.message.get_body(preferencelist=("plain",))
        assert plain is not None
    lena = next(m for m in smtp.messages if m.rcpt_tos == ["lena@seller.test"])
    body = lena.message.get_body(preferencelist=("plain",)).get_content()
    assert f"#{number}" in body and "has not been claimed" in body
    assert "http://claimdesk.test/web/o/" in body
    html = lena.message.get_body(preferencelist=("html",)).get_content()
    assert "<a href=" in html

    async with one.ctx.sessions() as session:
        escalated = (await session.exec(select(Event).where(col(Event.kind) == "escalated"))).all()
        nudged = (await session.exec(select(Event).where(col(Event.kind) == "nudged"))).all()
    assert [e.data["mailed"] for e in nudged] == [["alice", "bob"]] * 3
    assert sorted((e.data["level"], tuple(e.data["reached"])) for e in escalated) == [
        (1, ("lena",)),
        (2, ("max",)),
    ]


async def test_no_leads_escalates_to_the_manager_at_the_first_step(
    sqlite_url: str, make_settings: Any, service_factory: Any, smtp: SmtpSink
) -> None:
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))
    service = await service_factory(
        make_settings(sqlite_url, **reach_config(leads=[])), clock=clock
    )
    assert service.scheduler is not None
    service.scheduler.settings.digests = False
    await new_inquiry(service, "no-leads")
    await service.worker.drain()
    clock.now = berlin(2026, 11, 24, 10, 30)
    await tick_both([service])
    assert ("max@seller.test", "Escalation") not in mailed(smtp)
    clock.now = berlin(2026, 11, 24, 10, 35)  # claim due 10:15 + 20 min: the first rung's time
    await tick_both([service])
    assert mailed(smtp)[("max@seller.test", "Escalation")] == 1
    for minutes in range(5, 60, 5):  # nothing is left above the manager
        clock.now = berlin(2026, 11, 24, 11, minutes)
        await tick_both([service])
    assert mailed(smtp)[("max@seller.test", "Escalation")] == 1
    async with service.ctx.sessions() as session:
        escalated = (await session.exec(select(Event).where(col(Event.kind) == "escalated"))).all()
    assert [(e.data["level"], e.data["to"], e.data["reached"]) for e in escalated] == [
        (1, ["max"], ["max"])
    ]


async def test_slack_rep_gets_the_dm_and_no_email(
    sqlite_url: str, make_settings: Any, service_factory: Any, smtp: SmtpSink
) -> None:
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))
    channel = recording_channel()
    service = await service_factory(
        make_settings(sqlite_url, **reach_config(leads=["lena"], slack_ids=True)),
        channels={"slack": channel},
        clock=clock,
    )
    assert service.scheduler is not None
    service.scheduler.settings.digests = False
    await new_inquiry(service, "slack-team")
    await service.worker.drain()
    clock.now = berlin(2026, 11, 24, 10, 15)  # the first nudge
    await tick_both([service])
    clock.now = berlin(2026, 11, 24, 10, 35)  # the second nudge (10:30) and the lead
    await tick_both([service])

    threads = [c for c in channel.calls if c.method == "post_thread" and "waiting" in c.text]
    assert threads and threads[0].destination == CHANNEL
    assert "<@UALICE>" in threads[0].text
    assert [c.destination for c in channel.calls if c.method == "send_direct"] == ["ULENA"]
    # bob has no slack_id: the nudge reaches him by email; alice and lena only on Slack
    assert mailed(smtp) == {("bob@seller.test", "Waiting to be claimed"): 2}


def link(smtp: SmtpSink, rcpt: str, label: str) -> str:
    """The path of the ``label`` link ("Open" / "Claim") in the last email to ``rcpt``."""
    message = [m for m in smtp.messages if m.rcpt_tos == [rcpt]][-1].message
    body = message.get_body(preferencelist=("plain",)).get_content()
    found = re.search(rf"^{label} #\d+: (\S+)", body, re.MULTILINE)
    assert found, body
    return urlsplit(found.group(1)).path


async def test_one_click_claim_works_once_without_login_and_expires(
    sqlite_url: str, make_settings: Any, service_factory: Any, client_factory: Any, smtp: SmtpSink
) -> None:
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))
    service = await service_factory(
        make_settings(sqlite_url, **reach_config(leads=["lena"])), clock=clock
    )
    assert service.scheduler is not None
    service.scheduler.settings.digests = False
    number = await new_inquiry(service, "one-click", subject="<b>LED</b> panels")
    await service.worker.drain()
    clock.now = berlin(2026, 11, 24, 10, 15)
    await tick_both([service])
    claim = link(smtp, "alice@seller.test", "Claim")
    opened = link(smtp, "bob@seller.test", "Open")
    html = [m for m in smtp.messages if m.rcpt_tos == ["alice@seller.test"]][-1].message
    assert "<b>LED</b>" not in html.get_body(preferencelist=("html",)).get_content()

    client = await client_factory(service, background=False)
    page = await client.get(claim, allow_redirects=False)  # no cookie: the link is the sign-in
    assert page.status == 200
    assert 'method="post"' in await page.text()
    async with service.ctx.sessions() as session:
        assert (await repo.get_inquiry(session, number)).assignee is None  # GET never claims

    done = await client.post(claim, allow_redirects=False)
    assert done.status == 303 and done.headers["Location"] == f"/web/inquiries/{number}"
    again = await client.post(claim, allow_redirects=False)  # a second use just opens it
    assert again.status in (303, 409)
    async with service.ctx.sessions() as session:
        inquiry = await repo.get_inquiry(session, number)
        claims = (
            await session.exec(
                select(Event).where(col(Event.inquiry_id) == number, col(Event.kind) == "claimed")
            )
        ).all()
    assert inquiry.assignee == "alice" and len(claims) == 1
    detail = await client.get(f"/web/inquiries/{number}", allow_redirects=False)
    assert detail.status == 200  # signed in by the link

    for_you = await client.get("/web/for-you")
    assert for_you.status == 200
    assert f'data-inquiry="{number}"' in await for_you.text()

    other = await client_factory(service, background=False)  # bob's browser, no session
    jumped = await other.get(opened, allow_redirects=False)
    assert jumped.status == 302 and jumped.headers["Location"] == f"/web/inquiries/{number}"
    assert (await other.get(f"/web/inquiries/{number}")).status == 200

    forged = claim[:-3] + ("abc" if not claim.endswith("abc") else "xyz")
    assert (await other.post(forged, allow_redirects=False)).status == 403
    clock.advance(days=8)  # past security.login_link_max_age (7 days)
    fresh = await client_factory(service, background=False)
    assert (await fresh.get(claim, allow_redirects=False)).status == 403
    assert (await fresh.post(claim, allow_redirects=False)).status == 403
    assert (await fresh.get(opened, allow_redirects=False)).status == 403


async def test_hand_over_to_a_backup_is_mailed_once(
    sqlite_url: str, make_settings: Any, service_factory: Any, smtp: SmtpSink
) -> None:
    config = reach_config(leads=["lena"])
    config["reps"][0]["backup"] = "bob"  # alice's stand-in
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))
    service = await service_factory(make_settings(sqlite_url, **config), clock=clock)
    assert service.scheduler is not None
    service.scheduler.settings.digests = False
    number = await new_inquiry(service, "hand-over")
    outcome = await perform(service.ctx, Action(number, Verb.CLAIM, "web", "alice"))
    assert outcome.ok
    await set_away(service.ctx, "alice", True)
    clock.advance(minutes=1)
    await tick_both([service])
    await service.worker.drain()
    clock.advance(minutes=1)
    await tick_both([service])
    await service.worker.drain()
    async with service.ctx.sessions() as session:
        assert (await repo.get_inquiry(session, number)).assignee == "bob"
    assert mailed(smtp) == {("bob@seller.test", "Assigned to you"): 1}
    message = smtp.messages[0].message
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "handed over from Alice (away) to Bob" in body
    assert "Claim #" not in body  # already bob's: only the Open link
    assert message["Auto-Submitted"] == "auto-generated"


async def test_notice_in_chinese_escapes_customer_text(
    sqlite_url: str, make_settings: Any, service_factory: Any
) -> None:
    service = await service_factory(make_settings(sqlite_url, **reach_config(leads=[])))
    mailbox = service.ctx.settings.mailbox("sales")
    assert mailbox is not None
    payload = {
        "to": "chen@seller.test",
        "to_name": "陈",
        "rep": "chen",
        "team": "asia",
        "locale": "zh-CN",
        "what": "nudge",
        "text": "#7「<script>x</script>」还没有人认领",
        "expires": 2_000_000_000,
        "number": 7,
        "inquiry_subject": "<script>x</script>\r\nBcc: evil@example.com",
        "snippet": "<img src=x onerror=alert(1)>",
        "claim": True,
    }
    note = compose(service.ctx, service.signer, payload)
    assert note.subject.startswith("[#7] 等待认领：")
    assert "陈，您好" in note.text and "认领 #7：http://claimdesk.test/web/o/" in note.text
    assert "<script>" not in note.html and "<img" not in note.html
    assert "&lt;script&gt;" in note.html
    email = build_notification(
        mailbox, replace(note, message_id=notification_message_id(mailbox, "k"))
    )
    assert "\n" not in str(email["Subject"]) and email["Bcc"] is None
    assert email["Auto-Submitted"] == "auto-generated"
    assert email["Message-ID"] == notification_message_id(mailbox, "k")  # fixed by the key
    rep, number, action = service.signer.check_one_click(
        re.findall(r"/web/o/(\S+)", note.text)[-1], 1_999_999_999
    ) or ("", 0, "")
    assert (rep, number, action) == ("chen", 7, "claim")


async def test_a_rep_who_takes_no_notice_emails_gets_none_and_still_sees_them_listed(
    sqlite_url: str, make_settings: Any, service_factory: Any, smtp: SmtpSink
) -> None:
    """``email_notices = false`` on Bob: the nudges and the escalation go to the others only;
    the nudge's Event says who was mailed, and Bob's "for you" page still lists it."""
    config = reach_config(leads=["lena"])
    for rep in config["reps"]:
        if rep["id"] in ("bob", "lena"):
            rep["email_notices"] = False
    clock = MovableClock(berlin(2026, 11, 24, 10, 0))
    service = await service_factory(make_settings(sqlite_url, **config), clock=clock)
    assert service.scheduler is not None
    service.scheduler.settings.digests = False
    number = await new_inquiry(service, "opted-out")
    for _ in range(16):
        clock.advance(minutes=5)
        await tick_both([service])
    assert mailed(smtp) == {
        ("alice@seller.test", "Waiting to be claimed"): 3,
        ("max@seller.test", "Escalation"): 1,
    }
    async with service.ctx.sessions() as session:
        nudged = (await session.exec(select(Event).where(col(Event.kind) == "nudged"))).all()
    assert [e.data["mailed"] for e in nudged] == [["alice"]] * 3
    assert [e.data["mentions"] for e in nudged] == [["alice", "bob"]] * 3  # still told in-app
    listed = await RepNotices(service.ctx).notices_for("bob")
    assert any(entry.inquiry_id == number and entry.kind == "nudged" for entry in listed)
