"""Mailbox intake against a real Dovecot and a real SMTP server: new mail becomes an inquiry,
our reply goes out threaded and is filed in Sent, the customer's answer threads back,
bounces and auto-replies create nothing, and a crash mid-fetch loses and duplicates nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from bot.app import Service
from bot.runtime.mail_intake import MailboxIntake, open_mailbox
from bot.usecases.replies import send_reply
from connectors.mail.imap import ImapConnectionLost
from connectors.mail.parse import parse_email
from store.engine import transaction
from store.models import Inquiry, MailboxState
from tests.support.dovecot_fixtures import ImapAccount, dovecot, imap_account
from tests.support.mail_corpus import load_manifest, require_corpus
from tests.support.tcp_cut import CuttingRelay

__all__ = ["dovecot", "imap_account"]
pytestmark = pytest.mark.dovecot


def mail(
    subject: str,
    *,
    sender: str = "Olga Petrova <olga@buyer.example>",
    msgid: str = "",
    extra: str = "",
    body: str = "Dear sales team,\r\nplease quote 500 pcs.\r\n",
) -> bytes:
    headers = f"From: {sender}\r\nTo: sales@seller.test\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 08:00:00 +0000\r\n"
    if msgid:
        headers += f"Message-ID: {msgid}\r\n"
    return (
        headers
        + extra
        + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + body
    ).encode()


def mailbox_config(account: ImapAccount, smtp_port: int) -> dict[str, Any]:
    return {
        "name": "sales",
        "from_address": "sales@seller.test",
        "from_name": "Seller Co",
        "team": "sales",
        "imap_host": account.server.host,
        "imap_port": account.server.port,
        "imap_tls": "none",
        "imap_user": account.user,
        "imap_password": account.password,
        "folder": "INBOX",
        "sent_folder": "Sent",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_tls": "none",
        "backfill_days": 100000,
    }


@pytest.fixture
async def setup(
    sqlite_url: str, make_settings: Any, service_factory: Any, imap_account: ImapAccount, smtp: Any
) -> tuple[Service, MailboxIntake, ImapAccount]:
    settings = make_settings(sqlite_url, mailboxes=[mailbox_config(imap_account, smtp.port)])
    service = await service_factory(settings)
    return service, MailboxIntake(service.ctx, settings.mailboxes[0]), imap_account


async def sync(intake: MailboxIntake) -> list[Any]:
    box = open_mailbox(intake.box)
    await box.connect()
    try:
        return await intake.sync_once(box)
    finally:
        await box.close()


async def inquiries(service: Service) -> list[Inquiry]:
    async with transaction(service.ctx.sessions) as session:
        return list((await session.exec(select(Inquiry))).all())


async def test_mail_to_inquiry_reply_filed_and_answer_threads(setup: Any, smtp: Any) -> None:
    service, intake, account = setup
    account.append(
        mail(
            "Запрос цены на LED панели",
            msgid="<q1@buyer.example>",
            body="Здравствуйте! Нужна цена на 500 панелей 600x600.\r\n",
        )
    )
    outcomes = await sync(intake)
    assert [o.action for o in outcomes] == ["created"]
    number = outcomes[0].inquiry_id
    [inquiry] = await inquiries(service)
    assert (inquiry.id, inquiry.source, inquiry.source_kind, inquiry.team) == (
        number,
        "sales",
        "mail",
        "sales",
    )
    assert inquiry.contact_email == "olga@buyer.example"
    assert inquiry.subject == "Запрос цены на LED панели"
    assert inquiry.language == "ru"
    assert "$Claimdesk" in account.server.flags(account.user, 1)  # processed on the server

    # reply: SMTP delivery with threading headers, then a copy in Sent
    assert (
        await send_reply(
            service.ctx,
            inquiry_id=number,
            platform="web",
            user="alice",
            subject=f"Re: Запрос цены [#{number}]",
            body="Здравствуйте, Ольга!\nЦена: 12 USD.",
        )
    ).ok
    await service.worker.drain()
    await service.worker.drain()
    [sent] = smtp.messages
    assert sent.message["In-Reply-To"] == "<q1@buyer.example>"
    assert "<q1@buyer.example>" in sent.message["References"]
    assert account.server.uids(account.user, "Sent"), "the reply was not filed in Sent"

    # the customer answers our reply: it threads into the same inquiry, back to the owner
    our_id = sent.message["Message-ID"].strip()
    account.append(
        mail(
            f"Re: Запрос цены [#{number}]",
            msgid="<q2@buyer.example>",
            extra=f"In-Reply-To: {our_id}\r\nReferences: <q1@buyer.example> {our_id}\r\n",
            body="Спасибо, берём 1000 шт.\r\n",
        )
    )
    outcomes = await sync(intake)
    assert [(o.action, o.inquiry_id) for o in outcomes] == [("threaded", number)]
    [inquiry] = await inquiries(service)
    assert inquiry.status == "claimed"
    assert inquiry.assignee == "alice"

    # fallback threading by the [#N] tag when the client dropped the headers
    account.append(mail(f"Re: [#{number}] one more question", msgid="<q3@buyer.example>"))
    outcomes = await sync(intake)
    assert [(o.action, o.inquiry_id) for o in outcomes] == [("threaded", number)]
    assert len(await inquiries(service)) == 1


async def test_auto_replies_bounces_and_duplicates_create_nothing(setup: Any, smtp: Any) -> None:
    service, intake, account = setup
    account.append(mail("Need a quote", msgid="<a1@buyer.example>"))
    [created] = await sync(intake)
    assert (
        await send_reply(
            service.ctx,
            inquiry_id=created.inquiry_id,
            platform="web",
            user="bob",
            subject="Re",
            body="Hello",
        )
    ).ok
    await service.worker.drain()
    our_id = smtp.messages[0].message["Message-ID"].strip()

    account.append(
        mail(
            "Automatic reply: out of office",
            sender="olga@buyer.example",
            msgid="<oof@buyer.example>",
            extra="Auto-Submitted: auto-replied\r\n",
        )
    )
    account.append(
        mail("Need a quote", msgid="<a1@buyer.example>")
    )  # the same mail again (CC to a second address)
    bounce = (
        "From: Mail Delivery System <MAILER-DAEMON@seller.test>\r\nTo: sales@seller.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce1@seller.test>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; seller.test\r\n\r\nFinal-Recipient: rfc822; olga@buyer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {our_id}\r\nSubject: Re\r\n\r\n--b--\r\n"
    ).encode()
    account.append(bounce)
    outcomes = await sync(intake)
    assert [o.action for o in outcomes] == ["skipped:auto_reply", "duplicate", "bounce"]
    assert len(await inquiries(service)) == 1
    detail = await service_detail(service, created.inquiry_id)
    assert detail["messages"][-1]["delivery"].startswith("failed: bounced by olga@buyer.example")
    assert detail["timeline"][-1]["kind"] == "delivery_failed"


async def service_detail(service: Service, number: int) -> Any:
    from bot.interfaces.api import inquiry_json
    from store import inquiries as repo

    async with transaction(service.ctx.sessions) as session:
        inquiry = await repo.get_inquiry(session, number)
        body = inquiry_json(service.ctx, inquiry, None)
        body["messages"] = [{"delivery": m.delivery} for m in await repo.messages(session, number)]
        body["timeline"] = [{"kind": e.kind} for e in await repo.timeline(session, number)]
    return body


async def test_crash_mid_fetch_then_restart_gives_exactly_one_inquiry_each(setup: Any) -> None:
    service, intake, account = setup
    for n in range(12):
        account.append(
            mail(f"Inquiry {n}", sender=f"buyer{n}@example.com", msgid=f"<m{n}@example.com>")
        )

    calls = 0
    original = intake.handle

    async def crashing_handle(fetched: Any, *, first_start: bool = False) -> Any:
        nonlocal calls
        calls += 1
        if calls == 6:
            raise ConnectionResetError("connection dropped mid-fetch")
        return await original(fetched, first_start=first_start)

    intake.handle = crashing_handle  # type: ignore[method-assign]
    with pytest.raises(ConnectionResetError):
        await sync(intake)
    intake.handle = original  # type: ignore[method-assign]

    restarted = MailboxIntake(
        service.ctx, intake.box
    )  # a new process: state comes from the database
    await sync(restarted)
    rows = await inquiries(service)
    assert sorted(r.subject for r in rows) == sorted(f"Inquiry {n}" for n in range(12))
    async with transaction(service.ctx.sessions) as session:
        state = await session.get(MailboxState, ("sales", "INBOX"))
    assert state is not None
    assert state.last_uid == 12


class _Killed(BaseException):
    """The process dies here: unlike an error, nothing after it runs (no settling of the batch)."""


def flagged(account: ImapAccount) -> list[int]:
    return [
        uid
        for uid in account.server.uids(account.user)
        if "$Claimdesk" in account.server.flags(account.user, uid)
    ]


async def last_uid(service: Service) -> int | None:
    async with transaction(service.ctx.sessions) as session:
        state = await session.get(MailboxState, ("sales", "INBOX"))
    return None if state is None else state.last_uid


async def test_crash_inside_a_batch_before_its_store_refetches_and_dedupes(setup: Any) -> None:
    service, _, account = setup
    for n in range(12):
        account.append(
            mail(f"Inquiry {n}", sender=f"buyer{n}@example.com", msgid=f"<b{n}@example.com>")
        )
    intake = MailboxIntake(service.ctx, setup[1].box, batch=5)
    calls = 0
    original = intake.handle

    async def dying_handle(fetched: Any, *, first_start: bool = False) -> Any:
        nonlocal calls
        calls += 1
        if calls == 8:  # uids 6 and 7 of the second batch are ingested, its STORE never runs
            raise _Killed
        return await original(fetched, first_start=first_start)

    intake.handle = dying_handle  # type: ignore[method-assign]
    with pytest.raises(_Killed):
        await sync(intake)
    assert len(await inquiries(service)) == 7
    assert flagged(account) == [1, 2, 3, 4, 5]  # the first batch only: flags never lead
    assert await last_uid(service) == 5

    restarted = MailboxIntake(service.ctx, intake.box, batch=5)
    outcomes = await sync(restarted)
    assert [(o.uid, o.action) for o in outcomes] == [
        (6, "duplicate"),
        (7, "duplicate"),
        *((uid, "created") for uid in range(8, 13)),
    ]
    rows = await inquiries(service)
    assert sorted(r.subject for r in rows) == sorted(f"Inquiry {n}" for n in range(12))
    assert flagged(account) == list(range(1, 13))
    assert await last_uid(service) == 12


async def test_a_failed_store_leaves_the_batch_to_be_refetched(setup: Any) -> None:
    service, intake, account = setup
    for n in range(4):
        account.append(
            mail(f"Inquiry {n}", sender=f"buyer{n}@example.com", msgid=f"<s{n}@example.com>")
        )
    box = open_mailbox(intake.box)
    await box.connect()
    try:

        async def dropped(uids: Any, mode: Any) -> None:
            raise ImapConnectionLost("connection lost during UID STORE")

        box.mark_processed_many = dropped  # type: ignore[method-assign]
        with pytest.raises(ImapConnectionLost):
            await intake.sync_once(box)
    finally:
        await box.close()
    assert len(await inquiries(service)) == 4
    assert flagged(account) == []
    assert await last_uid(service) is None

    outcomes = await sync(intake)
    assert [o.action for o in outcomes] == ["duplicate"] * 4
    assert len(await inquiries(service)) == 4
    assert flagged(account) == [1, 2, 3, 4]
    assert await last_uid(service) == 4


async def test_a_store_cut_on_the_wire_raises_and_the_batch_is_refetched(setup: Any) -> None:
    """The same as above against the real server: the connection is cut by a relay the
    moment ``UID STORE`` is sent, so the client meets a true connection loss."""
    service, intake, account = setup
    for n in range(4):
        account.append(
            mail(f"Inquiry {n}", sender=f"buyer{n}@example.com", msgid=f"<w{n}@example.com>")
        )
    relay = CuttingRelay(account.server.host, account.server.port)
    await relay.start()
    try:
        box = open_mailbox(intake.box.model_copy(update={"imap_port": relay.port}))
        await box.connect()
        relay.arm(b"UID STORE")
        try:
            with pytest.raises(ImapConnectionLost):
                await intake.sync_once(box)
        finally:
            await box.close()
    finally:
        await relay.stop()
    assert relay.cuts == 1
    assert len(await inquiries(service)) == 4
    assert flagged(account) == []
    assert await last_uid(service) is None

    outcomes = await sync(intake)
    assert [o.action for o in outcomes] == ["duplicate"] * 4
    assert len(await inquiries(service)) == 4
    assert flagged(account) == [1, 2, 3, 4]
    assert await last_uid(service) == 4


async def test_a_failing_message_is_not_marked_and_is_retried(setup: Any) -> None:
    service, intake, account = setup
    for n in range(4):
        account.append(
            mail(f"Inquiry {n}", sender=f"buyer{n}@example.com", msgid=f"<f{n}@example.com>")
        )
    original = intake.handle

    async def failing_handle(fetched: Any, *, first_start: bool = False) -> Any:
        if fetched.uid == 3:
            raise RuntimeError("database unavailable")
        return await original(fetched, first_start=first_start)

    intake.handle = failing_handle  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await sync(intake)
    assert flagged(account) == [1, 2]  # settled before the error propagated
    assert await last_uid(service) == 2

    intake.handle = original  # type: ignore[method-assign]
    outcomes = await sync(intake)
    assert [(o.uid, o.action) for o in outcomes] == [(3, "created"), (4, "created")]
    assert flagged(account) == [1, 2, 3, 4]
    assert len(await inquiries(service)) == 4


async def test_move_mode_moves_each_batch_once_it_is_ingested(
    sqlite_url: str, make_settings: Any, service_factory: Any, imap_account: ImapAccount, smtp: Any
) -> None:
    box_config = {**mailbox_config(imap_account, smtp.port), "processed": "move:Processed"}
    service = await service_factory(make_settings(sqlite_url, mailboxes=[box_config]))
    for n in range(7):
        imap_account.append(
            mail(f"Inquiry {n}", sender=f"buyer{n}@example.com", msgid=f"<mv{n}@example.com>")
        )
    intake = MailboxIntake(service.ctx, service.ctx.settings.mailboxes[0], batch=3)
    outcomes = await sync(intake)
    assert [o.action for o in outcomes] == ["created"] * 7
    server = imap_account.server
    assert server.uids(imap_account.user) == []
    assert len(server.uids(imap_account.user, "Processed")) == 7
    assert len(await inquiries(service)) == 7
    assert await last_uid(service) == 7


async def test_uidvalidity_change_does_not_reingest(setup: Any) -> None:
    service, intake, account = setup
    for n in range(3):
        account.append(
            mail(f"Inquiry {n}", sender=f"buyer{n}@example.com", msgid=f"<u{n}@example.com>")
        )
    await sync(intake)
    async with transaction(
        service.ctx.sessions
    ) as session:  # the server "was rebuilt": new UIDVALIDITY
        state = await session.get(MailboxState, ("sales", "INBOX"))
        assert state is not None
        state.uidvalidity += 1
        session.add(state)
    # the processed flags are gone too (mail restored from a backup without keywords)
    with account.server.imap(account.user) as client:
        client.select("INBOX")
        client.uid("STORE", "1:*", "-FLAGS", "($Claimdesk)")
    outcomes = await sync(intake)
    assert [o.action for o in outcomes] == ["duplicate", "duplicate", "duplicate"]
    assert len(await inquiries(service)) == 3


async def test_the_corpus_through_dovecot_into_inquiries(setup: Any) -> None:
    """Every corpus message goes through IMAP and ingest without an error; bounces and receipts make no inquiry."""
    service, intake, account = setup
    require_corpus()
    rows = load_manifest()
    for row in rows:
        account.append(row.path.read_bytes())
    outcomes = await sync(intake)
    assert len(outcomes) == len(rows)
    by_uid = {o.uid: o for o in outcomes}
    for uid, row in enumerate(rows, start=1):
        outcome = by_uid[uid]
        parsed = parse_email(row.path.read_bytes())
        if parsed.kind in ("bounce", "receipt", "auto_reply"):
            assert outcome.inquiry_id is None or outcome.action == "bounce", row.file
        else:
            assert outcome.action in ("created", "duplicate", "threaded", "skipped:own_message"), (
                row.file,
                outcome,
            )


async def test_attachments_are_listed_and_downloadable_by_the_team_only(
    setup: Any, client_factory: Any
) -> None:
    from connectors.web.auth import login_link

    service, intake, account = setup
    pdf = b"%PDF-1.4 fake price list"
    raw = (
        "From: Olga <olga@buyer.example>\r\nTo: sales@seller.test\r\nSubject: Drawing attached\r\nMessage-ID: <att1@buyer.example>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="x"\r\n\r\n'
        "--x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease see the drawing.\r\n"
        '--x\r\nContent-Type: application/pdf; name="Zeichnung 1.pdf"\r\nContent-Disposition: attachment; filename="Zeichnung 1.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        + __import__("base64").b64encode(pdf).decode()
        + "\r\n--x--\r\n"
    ).encode()
    account.append(raw)
    [outcome] = await sync(intake)
    http = await client_factory(service, background=False)
    assert (
        await http.get(login_link(service.signer, "", "alice"), allow_redirects=False)
    ).status == 302
    page = await (await http.get(f"/web/inquiries/{outcome.inquiry_id}")).text()
    link = page.split('href="/web/attachments/')[1].split('"')[0]
    assert "Zeichnung 1.pdf" in page
    download = await http.get(f"/web/attachments/{link}")
    assert download.status == 200
    assert await download.read() == pdf
    assert download.headers["Content-Disposition"].startswith(
        'attachment; filename="Zeichnung 1.pdf"'
    )

    other = await client_factory(service, background=False)
    assert (
        await other.get(login_link(service.signer, "", "chen"), allow_redirects=False)
    ).status == 302
    assert (await other.get(f"/web/attachments/{link}")).status == 403
    anonymous = await client_factory(service, background=False)
    assert (await anonymous.get(f"/web/attachments/{link}")).status == 401


def test_check_logs_in_to_imap(
    imap_account: ImapAccount, smtp: Any, tmp_path: Any, capsys: Any
) -> None:
    from bot.cli import main

    good = mailbox_config(imap_account, smtp.port)
    bad = {**good, "name": "wrongpw", "imap_password": "nope"}
    missing = {**good, "name": "nofolder", "folder": "Nowhere"}
    lines = ['[security]\nsecret_key = "0123456789abcdef0123"\n[[teams]]\nname = "sales"\n']
    for box in (good, bad, missing):
        lines.append(
            "[[mailboxes]]\n"
            + "".join(
                f"{k} = {v!r}\n".replace("'", '"') if isinstance(v, str) else f"{k} = {v}\n"
                for k, v in box.items()
            )
        )
    path = tmp_path / "c.toml"
    path.write_text("".join(lines))
    assert main(["--config", str(path), "check"]) == 1
    out = capsys.readouterr().out
    assert f"ok: mailbox sales: IMAP 127.0.0.1:{imap_account.server.port} folder INBOX" in out
    assert "problem: mailbox wrongpw: IMAP" in out
    assert "problem: mailbox nofolder: IMAP" in out
    assert "Nowhere" in out
