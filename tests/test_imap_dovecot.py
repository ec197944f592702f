"""ImapMailbox against a real Dovecot (started by the tests on a free 127.0.0.1 port).

Covers the ingest path end to end on the wire: the 75 corpus messages are delivered
with APPEND, fetched back in batches and parsed with the same expectations as the
parser tests; SELECT values; marking processed by keyword and by move (with and without
MOVE), one message or a set of UIDs at once; APPEND to Sent; IDLE and polling wake-ups;
a server restart mid-session; and the login diagnostics. All waits are bounded; nothing sleeps long.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest

from connectors.mail.imap import (
    AddFlag,
    FetchedMail,
    ImapConnectionLost,
    ImapFolderError,
    ImapMailbox,
    MoveTo,
    check_login,
    parse_fetch_response,
)
from connectors.mail.parse import parse_email
from tests.support.dovecot import DovecotServer, free_port
from tests.support.dovecot_fixtures import ImapAccount, dovecot, dovecot_tls, imap_account
from tests.support.mail_corpus import check_expectations, load_manifest, require_corpus

__all__ = ["dovecot", "dovecot_tls", "imap_account"]  # fixtures imported for pytest

pytestmark = pytest.mark.dovecot


def _mail(subject: str, body: str = "Hello.\r\n") -> bytes:
    return (
        f"From: Customer <customer@example.com>\r\nTo: sales@example.com\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '-')}@example.com>\r\n\r\n{body}"
    ).encode()


def _as_stored(raw: bytes) -> bytes:
    """What Dovecot serves back: CRLF line ends, NUL bytes replaced by 0x80 (documented)."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n").replace(b"\x00", b"\x80")


async def _fetch_all(box: ImapMailbox, *, limit: int, batch_size: int) -> list[FetchedMail]:
    fetched: list[FetchedMail] = []
    last_uid = 0
    while True:
        batch = await box.fetch_since(last_uid, limit=limit, batch_size=batch_size)
        if not batch:
            return fetched
        assert [m.uid for m in batch] == sorted(m.uid for m in batch)
        assert batch[0].uid > last_uid
        fetched.extend(batch)
        last_uid = batch[-1].uid


async def test_corpus_survives_dovecot_round_trip_and_parses(imap_account: ImapAccount) -> None:
    require_corpus()
    cases = load_manifest()
    assert len(cases) == 75
    uids = imap_account.server.append_many(imap_account.user, [c.path.read_bytes() for c in cases])
    by_uid = dict(zip(uids, cases, strict=True))

    async with imap_account.mailbox() as box:
        status = await box.select()
        assert status.exists == 75
        fetched = await _fetch_all(box, limit=20, batch_size=7)

    assert [m.uid for m in fetched] == sorted(uid for uid in uids if uid is not None)
    for mail in fetched:
        case = by_uid[mail.uid]
        original = case.path.read_bytes()
        assert mail.raw == _as_stored(original), f"{case.file}: bytes changed in transit"
        assert r"\Seen" not in mail.flags, "BODY.PEEK[] must not mark mail read"
        parsed = parse_email(mail.raw)
        try:
            check_expectations(case, parsed)
        except AssertionError as exc:
            raise AssertionError(f"{case.file}: {exc}") from exc


async def test_select_reports_uidvalidity_uidnext_exists(imap_account: ImapAccount) -> None:
    async with imap_account.mailbox() as box:
        empty = await box.select()
        assert (empty.exists, empty.uidnext) == (0, 1)
        assert empty.uidvalidity > 0
    imap_account.append(_mail("one"))
    imap_account.append(_mail("two"))
    async with imap_account.mailbox() as box:
        status = await box.select()
    assert (status.exists, status.uidnext) == (2, 3)
    assert status.uidvalidity == empty.uidvalidity


TRICKY_BODY = (
    "These lines look like protocol:\r\n"
    ")\r\n"
    "* 5 FETCH (UID 99 BODY[] {3}\r\n"
    "abc\r\n"
    ")\r\n"
    "A001 OK FETCH completed\r\n"
    "* 6 EXISTS\r\n"
    "last line {12}\r\n"
)


async def test_fetch_since_reads_literals_exactly_in_uid_order(imap_account: ImapAccount) -> None:
    raws = [_mail(f"msg {n}", TRICKY_BODY if n % 2 else f"plain {n}\r\n") for n in range(7)]
    for raw in raws:
        imap_account.append(raw)
    async with imap_account.mailbox() as box:
        await box.select()
        first = await box.fetch_since(0, limit=3, batch_size=2)
        rest = await box.fetch_since(first[-1].uid, limit=100, batch_size=2)
        none = await box.fetch_since(rest[-1].uid, limit=100)
    assert [m.uid for m in first] == [1, 2, 3]
    assert [m.uid for m in rest] == [4, 5, 6, 7]
    assert none == []
    assert [m.raw for m in first + rest] == raws
    assert parse_email(rest[0].raw).text.endswith("last line {12}")


def test_fetch_response_parser_ignores_body_content_and_unsolicited_items() -> None:
    lines: list[object] = [
        b"3 FETCH (FLAGS (\\Seen))",  # another session changed flags
        b"4 FETCH (UID 10 FLAGS (\\Recent $Claimdesk) BODY[] {20}",
        bytearray(b")\r\n* 5 FETCH (UID 9)"),
        b")",
        b"5 FETCH (BODY[] {0}",
        bytearray(b""),
        b" UID 11)",
        b"6 FETCH (UID 12 BODY[] NIL)",
        b"Fetch completed.",
    ]
    parsed = parse_fetch_response(lines)
    assert [(m.uid, m.raw) for m in parsed] == [
        (10, b")\r\n* 5 FETCH (UID 9)"),
        (11, b""),
        (12, b""),
    ]
    assert parsed[0].flags == frozenset({"\\Recent", "$Claimdesk"})


async def test_mark_processed_by_keyword_and_seen(imap_account: ImapAccount) -> None:
    first = imap_account.append(_mail("a"))
    second = imap_account.append(_mail("b"))
    assert first is not None
    assert second is not None
    async with imap_account.mailbox() as box:
        await box.select()
        await box.mark_processed(first, AddFlag("$Claimdesk"))
        await box.mark_processed(second, AddFlag("\\Seen"))
        again = await box.fetch_since(0, limit=10)
    server = imap_account.server
    assert "$Claimdesk" in server.flags(imap_account.user, first)
    assert "\\Seen" not in server.flags(imap_account.user, first)
    assert "\\Seen" in server.flags(imap_account.user, second)
    assert {m.uid: "$Claimdesk" in m.flags for m in again} == {first: True, second: False}
    with pytest.raises(ValueError, match="flag"):
        await box.mark_processed(first, AddFlag("bad flag"))


@pytest.mark.parametrize("server_has_move", [True, False], ids=["MOVE", "COPY+EXPUNGE"])
async def test_mark_processed_by_move(imap_account: ImapAccount, server_has_move: bool) -> None:
    keep = imap_account.append(_mail("stays"))
    moved = imap_account.append(_mail("moves"))
    assert keep is not None
    assert moved is not None
    async with imap_account.mailbox() as box:
        await box.select()
        if not server_has_move:
            assert box._client is not None
            box._client.protocol.capabilities.discard("MOVE")
            assert not box.has_capability("MOVE")
        await box.mark_processed(moved, MoveTo("Archive"))
        await box.mark_processed(keep, MoveTo("Processed/Claimdesk"))  # created on demand
        remaining = await box.fetch_since(0, limit=10)
    server = imap_account.server
    assert remaining == []
    assert server.uids(imap_account.user, "Archive") == [1]
    assert server.uids(imap_account.user, "Processed/Claimdesk") == [1]
    assert b"Subject: moves" in server.fetch_raw(imap_account.user, 1, "Archive")


async def test_mark_processed_many_marks_exactly_the_given_uids(imap_account: ImapAccount) -> None:
    uids = [imap_account.append(_mail(f"m{n}")) for n in range(6)]
    assert uids == [1, 2, 3, 4, 5, 6]
    async with imap_account.mailbox() as box:
        await box.select()
        await box.mark_processed_many([], AddFlag("$Claimdesk"))  # nothing to do, no command
        await box.mark_processed_many([5, 1, 2, 5, 4], AddFlag("$Claimdesk"))  # "1:2,4:5"
        await box.mark_processed_many([1, 2], AddFlag("$Claimdesk"))  # again: harmless
        with pytest.raises(ValueError, match="flag"):
            await box.mark_processed_many([3], AddFlag("bad flag"))
    server = imap_account.server
    assert {uid: "$Claimdesk" in server.flags(imap_account.user, uid) for uid in uids} == {
        1: True,
        2: True,
        3: False,
        4: True,
        5: True,
        6: False,
    }


@pytest.mark.parametrize("server_has_move", [True, False], ids=["MOVE", "COPY+EXPUNGE"])
async def test_mark_processed_many_by_move(
    imap_account: ImapAccount, server_has_move: bool
) -> None:
    for n in range(5):
        imap_account.append(_mail(f"m{n}"))
    async with imap_account.mailbox() as box:
        await box.select()
        if not server_has_move:
            assert box._client is not None
            box._client.protocol.capabilities.discard("MOVE")
        await box.mark_processed_many([1, 2, 4], MoveTo("Done"))  # folder created on demand
        await box.mark_processed_many([1, 2, 4], MoveTo("Done"))  # already gone: harmless
        remaining = await box.fetch_since(0, limit=10)
    server = imap_account.server
    assert [m.uid for m in remaining] == [3, 5]
    assert server.uids(imap_account.user, "Done") == [1, 2, 3]
    moved = [server.fetch_raw(imap_account.user, uid, "Done") for uid in (1, 2, 3)]
    assert [raw.split(b"Subject: ")[1].split(b"\r\n")[0] for raw in moved] == [b"m0", b"m1", b"m3"]


async def test_append_to_sent(imap_account: ImapAccount) -> None:
    reply = _mail("Re: quote", "Thank you for your inquiry.\r\n")
    async with imap_account.mailbox() as box:
        uid = await box.append("Sent", reply)
        with pytest.raises(ImapFolderError):
            await box.append("No Such Folder", reply)
    assert uid == 1
    server = imap_account.server
    assert server.fetch_raw(imap_account.user, 1, "Sent") == reply
    assert "\\Seen" in server.flags(imap_account.user, 1, "Sent")


async def test_idle_wakes_up_when_another_connection_appends(imap_account: ImapAccount) -> None:
    # No polling within the wait (poll interval far above it): only the server's IDLE push
    # can end the wait with True before its timeout.
    async with imap_account.mailbox(poll_interval=3600) as box:
        assert box.has_capability("IDLE")
        await box.select()
        assert await box.wait_for_new(timeout=0.5) is False

        async def deliver_later() -> None:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(imap_account.append, _mail("arrives during IDLE"))

        delivery = asyncio.create_task(deliver_later())
        woke = await asyncio.wait_for(box.wait_for_new(timeout=60), 90)
        await delivery
        assert woke is True
        fresh = await box.fetch_since(0, limit=10)
        assert [m.uid for m in fresh] == [1]
        # Nothing newer than what was fetched: the next wait times out quietly.
        assert await box.wait_for_new(timeout=0.3) is False


async def test_wait_returns_at_once_when_mail_is_already_waiting(imap_account: ImapAccount) -> None:
    async with imap_account.mailbox() as box:
        await box.select()
        imap_account.append(_mail("arrived before the wait"))
        assert await box.wait_for_new(timeout=60) is True


async def test_polling_without_idle(imap_account: ImapAccount) -> None:
    async with imap_account.mailbox(poll_interval=0.5) as box:
        assert box._client is not None
        box._client.protocol.capabilities.discard("IDLE")
        await box.select()
        assert await box.wait_for_new(timeout=0.2) is False
        imap_account.append(_mail("polled"))
        # IDLE is off, so only a NOOP poll can see the mail before the wait times out
        assert await box.wait_for_new(timeout=60) is True


async def test_a_command_during_idle_interrupts_it(imap_account: ImapAccount) -> None:
    async with imap_account.mailbox() as box:
        await box.select()
        # the wait would run for an hour: the append can only finish if it interrupts the IDLE
        waiting = asyncio.create_task(box.wait_for_new(timeout=3600))
        await asyncio.sleep(0.3)
        uid = await asyncio.wait_for(box.append("Sent", _mail("sent while idling")), 60)
        assert uid == 1
        assert await asyncio.wait_for(waiting, 60) is False


async def test_server_restart_mid_session_is_a_clean_retryable_error(
    dovecot: DovecotServer, imap_account: ImapAccount
) -> None:
    imap_account.append(_mail("before restart"))
    box = imap_account.mailbox()
    await box.connect()
    await box.select()
    try:
        await asyncio.to_thread(dovecot.stop)
        with pytest.raises(ImapConnectionLost):
            await asyncio.wait_for(box.fetch_since(0, limit=10), 10)
        assert not box.connected
        await asyncio.to_thread(dovecot.start)
        await box.close()
        await box.connect()
        status = await box.select()
        assert status.exists == 1
        assert [m.uid for m in await box.fetch_since(0, limit=10)] == [1]
    finally:
        await box.close()
        await asyncio.to_thread(dovecot.start)


async def test_server_stop_during_idle_ends_the_wait(
    dovecot: DovecotServer, imap_account: ImapAccount
) -> None:
    box = imap_account.mailbox()
    await box.connect()
    await box.select()
    try:
        waiting = asyncio.create_task(box.wait_for_new(timeout=60))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(dovecot.stop)
        with pytest.raises(ImapConnectionLost):
            await asyncio.wait_for(waiting, 10)
    finally:
        await box.close()
        await asyncio.to_thread(dovecot.start)


async def test_check_login_names_the_failing_step(imap_account: ImapAccount) -> None:
    server = imap_account.server

    async def check(password: str, **options: Any) -> str | None:
        return await check_login(
            host=server.host,
            port=server.port,
            tls=False,
            user=imap_account.user,
            password=password,
            timeout=5.0,
            **options,
        )

    assert await check(imap_account.password) is None

    wrong = await check("wrong")
    assert wrong is not None
    assert wrong.startswith("authentication failed")
    assert imap_account.user in wrong

    missing = await check(imap_account.password, folder="Nope")
    assert missing is not None
    assert missing.startswith("folder missing")
    assert "'Nope'" in missing

    tls_on_plain_port = await check_login(
        host=server.host, port=server.port, tls=True, user=imap_account.user,
        password=imap_account.password, timeout=5.0,
    )  # fmt: skip
    assert tls_on_plain_port is not None
    assert "(tls)" in tls_on_plain_port

    refused = await check_login(
        host="127.0.0.1", port=free_port(), tls=False, user="x", password="y", timeout=5.0
    )
    assert refused is not None
    assert "(refused)" in refused

    unknown_host = await check_login(
        host="no-such-host.invalid", port=143, tls=False, user="x", password="y", timeout=5.0
    )
    assert unknown_host is not None
    assert "(dns)" in unknown_host


@pytest.mark.parametrize("tls", [True, "starttls"], ids=["implicit-TLS", "STARTTLS"])
async def test_tls_and_starttls(dovecot_tls: DovecotServer, tls: bool | str) -> None:
    user = "tls-implicit" if tls is True else "tls-starttls"
    dovecot_tls.add_user(user, "tls-secret")
    dovecot_tls.append(user, _mail("over TLS"))
    trusted = ssl.create_default_context(cafile=str(dovecot_tls.cert_path))
    port = dovecot_tls.tls_port if tls is True else dovecot_tls.port
    box = ImapMailbox(
        host=dovecot_tls.host,
        port=port,
        tls="starttls" if tls == "starttls" else True,
        user=user,
        password="tls-secret",
        ssl_context=trusted,
        timeout=10.0,
    )
    async with box:
        assert box._client is not None
        assert box._client.protocol.transport.get_extra_info("ssl_object") is not None
        await box.select()
        assert [m.uid for m in await box.fetch_since(0, limit=5)] == [1]

    untrusted = await check_login(
        host=dovecot_tls.host, port=port, tls=box.tls, user=user, password="tls-secret",
        timeout=5.0,
    )  # fmt: skip
    assert untrusted is not None
    assert "(tls)" in untrusted
    assert "not trusted" in untrusted

    plain_on_tls_port = await check_login(
        host=dovecot_tls.host, port=dovecot_tls.tls_port, tls=False, user=user,
        password="tls-secret", timeout=1.0,
    )  # fmt: skip
    assert plain_on_tls_port is not None
    assert "(timeout)" in plain_on_tls_port
