"""What threads into an existing inquiry and what does not, through a real Dovecot:
an out-of-office answer to our reply is not a customer reply; a customer's answer that
reaches two of our mailboxes (CC) is one message; mail from our own addresses is skipped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from bot.app import Service
from bot.runtime.mail_intake import MailboxIntake
from bot.usecases.replies import send_reply
from store import inquiries as repo
from store.engine import transaction
from store.models import Inquiry
from tests.support.dovecot import DovecotServer
from tests.support.dovecot_fixtures import ImapAccount, dovecot, imap_account
from tests.test_mail_intake import inquiries, mail, mailbox_config, sync

__all__ = ["dovecot", "imap_account"]
pytestmark = pytest.mark.dovecot


@dataclass
class Desk:
    """A service with two mailboxes ("sales" and "support") on two Dovecot accounts."""

    service: Service
    sales: MailboxIntake
    support: MailboxIntake
    sales_account: ImapAccount
    support_account: ImapAccount


@pytest.fixture
async def desk(
    db_url: str,
    make_settings: Any,
    service_factory: Any,
    dovecot: DovecotServer,
    imap_account: ImapAccount,
    smtp: Any,
) -> Desk:
    second = ImapAccount(dovecot, f"{imap_account.user}-support", "pw-support")
    dovecot.add_user(second.user, second.password)
    support_box = {
        **mailbox_config(second, smtp.port),
        "name": "support",
        "from_address": "support@seller.test",
    }
    settings = make_settings(
        db_url, mailboxes=[mailbox_config(imap_account, smtp.port), support_box]
    )
    service = await service_factory(settings)
    sales, support = settings.mailboxes
    return Desk(
        service,
        MailboxIntake(service.ctx, sales),
        MailboxIntake(service.ctx, support),
        imap_account,
        second,
    )


async def replied_inquiry(desk: Desk, smtp: Any) -> tuple[Inquiry, str]:
    """A customer's mail, answered by alice: the inquiry (status replied) and our Message-ID."""
    desk.sales_account.append(mail("Need a quote", msgid="<t1@buyer.example>"))
    [created] = await sync(desk.sales)
    assert created.action == "created"
    assert created.inquiry_id is not None
    reply = await send_reply(
        desk.service.ctx,
        inquiry_id=created.inquiry_id,
        platform="web",
        user="alice",
        subject="Re: Need a quote",
        body="Hello Olga, 12 USD each.",
    )
    assert reply.ok
    await desk.service.worker.drain()
    [sent] = smtp.messages
    [inquiry] = await inquiries(desk.service)
    assert inquiry.status == "replied"
    return inquiry, str(sent.message["Message-ID"]).strip()


async def history(service: Service, number: int) -> tuple[list[str], list[str]]:
    """The inquiry's event kinds and the Message-IDs of its stored messages."""
    async with transaction(service.ctx.sessions) as session:
        events = [e.kind for e in await repo.timeline(session, number)]
        ids = [m.message_id for m in await repo.messages(session, number)]
    return events, ids


async def test_out_of_office_answer_to_our_reply_is_not_a_customer_reply(
    desk: Desk, smtp: Any
) -> None:
    before, our_id = await replied_inquiry(desk, smtp)
    assert before.id is not None
    threading = f"In-Reply-To: {our_id}\r\nReferences: <t1@buyer.example> {our_id}\r\n"
    for n, (subject, header) in enumerate(
        [
            ("Automatic reply: Re: Need a quote", "Auto-Submitted: auto-replied\r\n"),
            ("Re: Need a quote", "X-Autoreply: yes\r\n"),
            ("Out of Office: Re: Need a quote", ""),  # only the subject says so
        ]
    ):
        desk.sales_account.append(
            mail(
                subject,
                sender="olga@buyer.example",
                msgid=f"<oof{n}@buyer.example>",
                extra=threading + header,
                body="I am out of the office until Monday.\r\n",
            )
        )
    outcomes = await sync(desk.sales)
    assert [o.action for o in outcomes] == ["skipped:auto_reply"] * 3
    assert all(o.inquiry_id is None for o in outcomes)
    [after] = await inquiries(desk.service)
    assert (after.id, after.status, after.version) == (before.id, "replied", before.version)
    assert after.last_customer_message_at == before.last_customer_message_at
    events, ids = await history(desk.service, before.id)
    assert "customer_replied" not in events
    assert not any(i.startswith("<oof") for i in ids)


async def test_customer_reply_cc_to_a_second_mailbox_is_one_message(desk: Desk, smtp: Any) -> None:
    inquiry, our_id = await replied_inquiry(desk, smtp)
    assert inquiry.id is not None
    answer = mail(
        "Re: Need a quote",
        sender="Olga Petrova <olga@buyer.example>",
        msgid="<t2@buyer.example>",
        extra=(
            "Cc: support@seller.test\r\n"
            f"In-Reply-To: {our_id}\r\nReferences: <t1@buyer.example> {our_id}\r\n"
        ),
        body="Thanks, we take 1000 pcs.\r\n",
    )
    desk.sales_account.append(answer)
    desk.support_account.append(answer)
    [first] = await sync(desk.sales)
    [second] = await sync(desk.support)
    assert (first.action, first.inquiry_id) == ("threaded", inquiry.id)
    assert (second.action, second.inquiry_id) == ("duplicate", inquiry.id)
    events, ids = await history(desk.service, inquiry.id)
    assert events.count("customer_replied") == 1
    assert ids.count("<t2@buyer.example>") == 1
    [after] = await inquiries(desk.service)
    assert (after.status, after.assignee) == ("claimed", "alice")


async def test_customer_reply_cc_read_by_both_mailboxes_at_once_is_one_message(
    desk: Desk, smtp: Any
) -> None:
    """Both mailbox loops read the same answer at the same moment (on PostgreSQL they really
    race on the inquiry): one threads it, the other sees a duplicate, nothing fails."""
    inquiry, our_id = await replied_inquiry(desk, smtp)
    assert inquiry.id is not None
    for n in range(4):
        answer = mail(
            f"Re: Need a quote ({n})",
            msgid=f"<race{n}@buyer.example>",
            extra=f"Cc: support@seller.test\r\nIn-Reply-To: {our_id}\r\n",
        )
        desk.sales_account.append(answer)
        desk.support_account.append(answer)
        [first], [second] = await asyncio.gather(sync(desk.sales), sync(desk.support))
        assert sorted([first.action, second.action]) == ["duplicate", "threaded"]
        assert first.inquiry_id == second.inquiry_id == inquiry.id
    events, ids = await history(desk.service, inquiry.id)
    assert events.count("customer_replied") == 4
    assert sorted(i for i in ids if i.startswith("<race")) == [
        f"<race{n}@buyer.example>" for n in range(4)
    ]


async def test_mail_from_our_own_addresses_is_skipped(desk: Desk, smtp: Any) -> None:
    inquiry, our_id = await replied_inquiry(desk, smtp)
    assert inquiry.id is not None
    own = [
        # a rep answering from the shared mailbox itself, threaded to the customer's mail
        mail(
            "Re: Need a quote",
            sender="Seller Co <sales@seller.test>",
            msgid="<own1@seller.test>",
            extra="In-Reply-To: <t1@buyer.example>\r\n",
        ),
        # the other mailbox's address, in other letter case
        mail("Internal note", sender="Support <Support@Seller.TEST>", msgid="<own2@seller.test>"),
        # a copy of our own reply delivered back into INBOX
        mail("Re: Need a quote", sender="sales@seller.test", msgid=our_id),
    ]
    for raw in own:
        desk.sales_account.append(raw)
    outcomes = await sync(desk.sales)
    assert [o.action for o in outcomes] == ["skipped:own_message"] * 3
    [after] = await inquiries(desk.service)
    assert (after.status, after.version) == ("replied", inquiry.version)
    events, _ = await history(desk.service, inquiry.id)
    assert "customer_replied" not in events
