"""The mailbox loop inside the running service: a mail APPENDed to Dovecot becomes an
inquiry through IDLE (no ``sync_once`` call from the test), and a Dovecot restart while
the loop runs loses nothing and duplicates nothing.

Waits are bounded polls of the database (every 0.1 s); no test asserts a tight time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import select

from bot.app import Service
from store.engine import transaction
from store.models import Inquiry, MailboxState
from tests.support.dovecot import DovecotServer, find_dovecot
from tests.support.dovecot_fixtures import ImapAccount, _need, _started, dovecot, imap_account
from tests.test_mail_intake import mail, mailbox_config

__all__ = ["dovecot", "imap_account"]
pytestmark = pytest.mark.dovecot


async def subjects(service: Service) -> list[str]:
    async with transaction(service.ctx.sessions) as session:
        return sorted(row.subject for row in (await session.exec(select(Inquiry))).all())


async def wait_for_subjects(service: Service, expected: list[str], *, within: float = 15.0) -> None:
    """Poll the database every 0.1 s until exactly ``expected`` inquiries exist (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    found = await subjects(service)
    while found != sorted(expected) and loop.time() < deadline:
        await asyncio.sleep(0.1)
        found = await subjects(service)
    assert found == sorted(expected)


async def wait_until_watching(service: Service, *, within: float = 15.0) -> None:
    """The loop has connected and stored its first mailbox state (then it IDLEs)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        async with transaction(service.ctx.sessions) as session:
            if await session.get(MailboxState, ("sales", "INBOX")) is not None:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the mailbox loop never synced")


async def append(account: ImapAccount, raws: list[bytes]) -> None:
    await asyncio.to_thread(account.server.append_many, account.user, raws)


def inquiry_mail(n: int) -> bytes:
    return mail(f"Inquiry {n}", sender=f"buyer{n}@example.com", msgid=f"<loop{n}@example.com>")


async def running_service(
    account: ImapAccount, smtp: Any, sqlite_url: str, make_settings: Any, service_factory: Any
) -> Service:
    settings = make_settings(sqlite_url, mailboxes=[mailbox_config(account, smtp.port)])
    service: Service = await service_factory(settings)
    service.start_background()
    assert [i.box.name for i in service.mail_intakes] == ["sales"]
    return service


async def test_new_mail_reaches_the_running_service_through_idle(
    imap_account: ImapAccount, smtp: Any, sqlite_url: str, make_settings: Any, service_factory: Any
) -> None:
    service = await running_service(imap_account, smtp, sqlite_url, make_settings, service_factory)
    await wait_until_watching(service)
    await append(imap_account, [inquiry_mail(1)])
    await wait_for_subjects(service, ["Inquiry 1"])
    await append(imap_account, [inquiry_mail(2)])
    await wait_for_subjects(service, ["Inquiry 1", "Inquiry 2"])
    assert "$Claimdesk" in imap_account.server.flags(imap_account.user, 2)
    # Stopping ends the IDLE at once instead of waiting it out (it would time out here).
    await asyncio.wait_for(service.stop_background(), 5)
    assert all(intake.box.name == "sales" for intake in service.mail_intakes)


@pytest.fixture
def private_dovecot() -> Iterator[DovecotServer]:
    """A Dovecot of this test's own: restarting it leaves the session server alone."""
    _need(find_dovecot(), "dovecot binary not found (apt-get install dovecot-imapd)")
    server = DovecotServer()
    server.add_user("restarted", "pw-restarted")
    _started(server)
    try:
        yield server
    finally:
        server.cleanup()


async def test_loop_reconnects_after_a_server_restart_and_ingests_each_mail_once(
    private_dovecot: DovecotServer,
    smtp: Any,
    sqlite_url: str,
    make_settings: Any,
    service_factory: Any,
) -> None:
    account = ImapAccount(server=private_dovecot, user="restarted", password="pw-restarted")
    service = await running_service(account, smtp, sqlite_url, make_settings, service_factory)
    await wait_until_watching(service)

    await append(account, [inquiry_mail(n) for n in range(3)])
    await wait_for_subjects(service, [f"Inquiry {n}" for n in range(3)])

    # More mail, then the restart at once: it may land in the middle of their fetch.
    await append(account, [inquiry_mail(n) for n in range(3, 8)])
    await asyncio.to_thread(private_dovecot.restart)
    await append(account, [inquiry_mail(n) for n in range(8, 12)])

    expected = [f"Inquiry {n}" for n in range(12)]
    await wait_for_subjects(service, expected, within=30.0)
    # Once more after the loop went back to IDLE: nothing arrives twice.
    await append(account, [inquiry_mail(12)])
    await wait_for_subjects(service, [*expected, "Inquiry 12"])
    # last_uid follows the ingest (after the mark on the server), never runs ahead of it
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        async with transaction(service.ctx.readers) as session:
            state = await session.get(MailboxState, ("sales", "INBOX"))
        if (state is not None and state.last_uid >= 13) or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert state is not None
    assert state.last_uid == 13
