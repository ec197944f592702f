"""IMAP intake: an async mailbox client over aioimaplib (a connector: no database access).

``ImapMailbox`` is built from plain parameters and offers what the ingest loop needs:
select a folder and read UIDVALIDITY/UIDNEXT, fetch raw messages above a UID in batches
(``BODY.PEEK[]``: fetching never marks mail as read), mark messages processed (a flag
or keyword, or a move to a folder; one command for a whole batch), append our sent
replies to the Sent folder, and wait for new mail (IDLE when the server has it, NOOP
polling otherwise).

Errors are typed so the caller can decide: ``ImapConnectError`` and
``ImapConnectionLost`` are transient (``close()``, then ``connect()`` again later);
``ImapAuthError`` and ``ImapFolderError`` need a configuration change;
``ImapCommandError`` is a refused command. ``check_login`` turns all of them into one
human-readable sentence for ``claimdesk check``.

aioimaplib quirks handled here: a dropped connection never fails the pending command (it
would wait for its timeout), so every command races a "connection lost" future; LOGIN
and mailbox names are sent unquoted, so this module quotes them (mailbox names in
modified UTF-7); the CAPABILITY list is re-read after login; FETCH responses arrive as
lines and ``bytearray`` literals and are parsed here by literal, never by line content,
so a message containing ``)`` or ``* 5 FETCH`` lines is read intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import aioimaplib

from connectors.mail.imap_wire import (
    ATOM_RE,
    AddFlag,
    FetchedMail,
    FolderStatus,
    ImapAuthError,
    ImapCommandError,
    ImapConnectError,
    ImapConnectionLost,
    ImapError,
    ImapFolderError,
    MoveTo,
    ProcessedMark,
    TlsMode,
    connect_failure,
    encode_mailbox,
    line_text,
    parse_fetch_response,
    quote,
    response_text,
    uid_set,
)

__all__ = [
    "AddFlag",
    "FetchedMail",
    "FolderStatus",
    "ImapAuthError",
    "ImapCommandError",
    "ImapConnectError",
    "ImapConnectionLost",
    "ImapError",
    "ImapFolderError",
    "ImapMailbox",
    "MoveTo",
    "ProcessedMark",
    "TlsMode",
    "check_login",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


_DEFAULT_FETCH_BATCH = 20
_MARK_CHUNK = 500
"""UIDs per STORE/MOVE command: keeps the command line short even for scattered UIDs."""


# --------------------------------------------------------------------------- mailbox


class ImapMailbox:
    """One IMAP account and folder, used by one task at a time (calls are serialised).

    Typical loop::

        async with ImapMailbox(host=..., user=..., password=...) as box:
            status = await box.select()
            while True:
                for mail in await box.fetch_since(last_uid, limit=50):
                    ...; await box.mark_processed(mail.uid, AddFlag("$Claimdesk"))
                await box.wait_for_new(timeout=300)
    """

    def __init__(
        self,
        *,
        host: str,
        user: str,
        password: str | None = None,
        xoauth2_token: str | None = None,
        port: int | None = None,
        tls: TlsMode = True,
        folder: str = "INBOX",
        timeout: float = 30.0,
        poll_interval: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if password is None and xoauth2_token is None:
            raise ValueError("ImapMailbox needs a password or an xoauth2_token")
        self.host = host
        self.port = port if port is not None else (993 if tls is True else 143)
        self.tls: TlsMode = tls
        self.user = user
        self.folder = folder
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._password = password
        self._xoauth2_token = xoauth2_token
        self._ssl_context = ssl_context
        self._client: aioimaplib.IMAP4 | None = None
        self._lost: asyncio.Future[str] | None = None
        self._selected: FolderStatus | None = None
        self._last_status: FolderStatus | None = None
        self._highest_uid = 0
        self._lock = asyncio.Lock()
        self._idle_interrupt: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"ImapMailbox({self.user}@{self.host}:{self.port}/{self.folder})"

    # -- connection --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a logged-in session is believed to be alive."""
        return self._client is not None and self._lost is not None and not self._lost.done()

    def has_capability(self, name: str) -> bool:
        """Does the server advertise this capability (case-insensitive)?"""
        if self._client is None:
            return False
        wanted = name.upper()
        return any(str(cap).upper() == wanted for cap in self._client.protocol.capabilities)

    def _tls_context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    async def connect(self) -> None:
        """Connect, (STARTTLS,) log in and read the capabilities. Idempotent."""
        if self.connected:
            return
        await self.close()
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[str] = loop.create_future()

        def on_lost(exc: Exception | None) -> None:
            if not lost.done():
                lost.set_result(str(exc) if exc else "closed by the server")

        try:
            client = aioimaplib.IMAP4(
                host=self.host,
                port=self.port,
                timeout=self.timeout,
                conn_lost_cb=on_lost,
                ssl_context=self._tls_context() if self.tls is True else None,
            )
        except Exception as exc:  # constructor only schedules the connection
            raise connect_failure(exc, self.host, self.port, self.tls, self.timeout) from exc
        self._client = client
        self._lost = lost
        try:
            await client.wait_hello_from_server()
        except Exception as exc:
            await self._drop()
            raise connect_failure(exc, self.host, self.port, self.tls, self.timeout) from exc
        try:
            if self.tls == "starttls":
                await self._starttls(client)
            await self._login(client)
            await self._run("CAPABILITY", client.protocol.capability())
        except BaseException:
            await self._drop()
            raise
        self._selected = None
        logger.info("imap: logged in to %s:%s as %s", self.host, self.port, self.user)

    async def _starttls(self, client: aioimaplib.IMAP4) -> None:
        protocol = client.protocol
        if not self.has_capability("STARTTLS"):
            raise ImapConnectError(f"{self.host}:{self.port} does not offer STARTTLS", "tls")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await self._run(
            "STARTTLS", asyncio.wait_for(protocol.execute(command), self.timeout)
        )
        if response.result != "OK":
            raise ImapConnectError(f"STARTTLS refused: {response_text(response)}", "tls")
        loop = asyncio.get_running_loop()
        try:
            transport = await asyncio.wait_for(
                loop.start_tls(
                    protocol.transport, protocol, self._tls_context(), server_hostname=self.host
                ),
                self.timeout,
            )
        except Exception as exc:
            raise connect_failure(exc, self.host, self.port, self.tls, self.timeout) from exc
        protocol.transport = transport
        await self._run("CAPABILITY", protocol.capability())

    async def _login(self, client: aioimaplib.IMAP4) -> None:
        if self._xoauth2_token is not None:
            response = await self._run(
                "AUTHENTICATE", client.xoauth2(self.user, self._xoauth2_token)
            )
        else:
            if self.has_capability("LOGINDISABLED"):
                raise ImapAuthError(
                    f"{self.host} refuses clear-text login on this connection; use TLS or STARTTLS"
                )
            assert self._password is not None
            # aioimaplib sends the user name as is: quote it (spaces, quotes, @).
            response = await self._run("LOGIN", client.login(quote(self.user), self._password))
        if response.result != "OK":
            raise ImapAuthError(
                f"login as {self.user!r} on {self.host} failed: {response_text(response) or response.result}"
            )

    async def _drop(self) -> None:
        client = self._client
        self._client = None
        self._selected = None
        if self._lost is not None and not self._lost.done():
            self._lost.set_result("closed by us")
        if client is None:
            return
        transport = getattr(client.protocol, "transport", None)
        if transport is not None:
            transport.close()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(client._client_task), 0.1)

    async def close(self) -> None:
        """Log out (best effort) and drop the connection. Safe to call at any time."""
        client = self._client
        if client is not None and self.connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.logout(), min(self.timeout, 5.0))
        await self._drop()

    async def __aenter__(self) -> ImapMailbox:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- command plumbing --------------------------------------------------------------

    async def _run(self, what: str, awaitable: Awaitable[T]) -> T:
        """Await one aioimaplib call, failing fast when the connection drops."""
        lost = self._lost
        if self._client is None or lost is None or lost.done():
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            reason = lost.result() if lost is not None and lost.done() else "not connected"
            raise ImapConnectionLost(f"IMAP {what} on {self.host}:{self.port}: {reason}")
        task = asyncio.ensure_future(awaitable)
        racers: set[asyncio.Future[Any]] = {task, lost}
        try:
            await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not task.done():
            task.cancel()
            await self._drop_quietly()
            logger.warning("imap: connection to %s:%s lost during %s", self.host, self.port, what)
            raise ImapConnectionLost(
                f"IMAP connection to {self.host}:{self.port} lost during {what}: {lost.result()}"
            )
        try:
            return task.result()
        except (TimeoutError, aioimaplib.CommandTimeout) as exc:
            await self._drop_quietly()
            raise ImapConnectionLost(
                f"IMAP {what} on {self.host}:{self.port} timed out after {self.timeout:g}s"
            ) from exc
        except aioimaplib.Abort as exc:
            await self._drop_quietly()
            raise ImapConnectionLost(f"IMAP {what} aborted: {exc}") from exc
        except aioimaplib.Error as exc:
            raise ImapCommandError(f"IMAP {what} failed: {exc}") from exc
        except OSError as exc:
            await self._drop_quietly()
            raise ImapConnectionLost(f"IMAP {what} on {self.host}:{self.port}: {exc}") from exc

    async def _drop_quietly(self) -> None:
        with contextlib.suppress(Exception):
            await self._drop()

    def _need_client(self) -> aioimaplib.IMAP4:
        if self._client is None or not self.connected:
            raise ImapConnectionLost(f"IMAP {self.host}:{self.port}: not connected")
        return self._client

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[aioimaplib.IMAP4]:
        # A command wanted while IDLE runs ends the IDLE early (wait_for_new -> False).
        if self._idle_interrupt is not None:
            self._idle_interrupt.set()
        async with self._lock:
            yield self._need_client()

    @staticmethod
    def _check(response: Any, what: str) -> None:
        if response.result != "OK":
            raise ImapCommandError(
                f"IMAP {what} failed: {response.result} {response_text(response)}"
            )

    # -- folder ------------------------------------------------------------------------

    async def select(self) -> FolderStatus:
        """SELECT the configured folder; returns UIDVALIDITY, UIDNEXT and EXISTS."""
        async with self._exclusive() as client:
            return await self._select(client)

    async def _select(self, client: aioimaplib.IMAP4) -> FolderStatus:
        response = await self._run("SELECT", client.select(encode_mailbox(self.folder)))
        if response.result != "OK":
            raise ImapFolderError(
                f"cannot open folder {self.folder!r} on {self.host}: {response_text(response)}"
            )
        text = b" ".join(bytes(line) for line in response.lines if isinstance(line, bytes))
        validity = re.search(rb"\[UIDVALIDITY (\d+)\]", text)
        uidnext = re.search(rb"\[UIDNEXT (\d+)\]", text)
        exists = re.search(rb"(?:^|\s)(\d+) EXISTS", text)
        next_uid = int(uidnext.group(1)) if uidnext else 0
        if not next_uid:
            next_uid = await self._uidnext_fallback(client)
        status = FolderStatus(
            uidvalidity=int(validity.group(1)) if validity else 0,
            uidnext=next_uid,
            exists=int(exists.group(1)) if exists else 0,
        )
        previous = self._selected or self._last_status
        if previous is not None and previous.uidvalidity != status.uidvalidity:
            self._highest_uid = 0  # UIDs were renumbered: the old high-water mark means nothing
        self._selected = self._last_status = status
        self._highest_uid = max(self._highest_uid, status.uidnext - 1)
        return status

    async def _uidnext_fallback(self, client: aioimaplib.IMAP4) -> int:
        # Some servers omit UIDNEXT in SELECT; the highest UID + 1 is the lower bound.
        response = await self._run("UID SEARCH", client.uid_search("ALL", charset=None))
        uids = self._search_uids(response)
        return (max(uids) + 1) if uids else 1

    async def _ensure_selected(self, client: aioimaplib.IMAP4) -> None:
        if self._selected is None or client.get_state() != "SELECTED":
            await self._select(client)

    @staticmethod
    def _search_uids(response: Any) -> list[int]:
        # aioimaplib hands over "* SEARCH 1 2 3" as b"1 2 3" (or b"SEARCH 1 2 3" when a
        # sync command was pending); the last line is the tagged status text.
        uids: list[int] = []
        for line in response.lines[:-1]:
            if not isinstance(line, bytes):
                continue
            tokens = line.split()
            if tokens and tokens[0].upper() == b"SEARCH":
                tokens = tokens[1:]
            if all(token.isdigit() for token in tokens):
                uids.extend(int(token) for token in tokens)
        return uids

    # -- fetching ----------------------------------------------------------------------

    async def fetch_since(
        self, last_uid: int, limit: int = 100, *, batch_size: int = _DEFAULT_FETCH_BATCH
    ) -> list[FetchedMail]:
        """Raw messages with UID > ``last_uid``, oldest first, at most ``limit`` of them.

        Uses ``UID SEARCH`` to find them and ``UID FETCH (UID FLAGS BODY.PEEK[])`` in
        batches of ``batch_size``; the bytes are exactly as stored on the server.
        """
        if limit <= 0:
            return []
        async with self._exclusive() as client:
            await self._ensure_selected(client)
            uids = await self._uids_above(client, last_uid)
            wanted = uids[:limit]
            fetched: list[FetchedMail] = []
            for start in range(0, len(wanted), max(1, batch_size)):
                batch = wanted[start : start + max(1, batch_size)]
                response = await self._run(
                    "UID FETCH", client.uid("fetch", uid_set(batch), "(UID FLAGS BODY.PEEK[])")
                )
                self._check(response, "UID FETCH")
                requested = set(batch)
                fetched.extend(
                    m for m in parse_fetch_response(response.lines) if m.uid in requested
                )
            fetched.sort(key=lambda mail: mail.uid)
            self._highest_uid = max([self._highest_uid, last_uid, *(m.uid for m in fetched)])
            return fetched

    async def _uids_above(self, client: aioimaplib.IMAP4, last_uid: int) -> list[int]:
        response = await self._run(
            "UID SEARCH", client.uid_search(f"UID {max(0, last_uid) + 1}:*", charset=None)
        )
        self._check(response, "UID SEARCH")
        # "n:*" always matches the highest UID, even when it is below n.
        return sorted(uid for uid in set(self._search_uids(response)) if uid > last_uid)

    # -- marking and appending ---------------------------------------------------------

    async def mark_processed(self, uid: int, mode: ProcessedMark) -> None:
        """Mark one message processed: add a flag/keyword, or move it to a folder."""
        await self.mark_processed_many([uid], mode)

    async def mark_processed_many(self, uids: Iterable[int], mode: ProcessedMark) -> None:
        """Mark several messages processed with one command per chunk of UIDs.

        ``UID STORE <set> +FLAGS.SILENT (flag)``, or ``UID MOVE <set> folder`` (COPY,
        ``\\Deleted`` and EXPUNGE where MOVE is missing). UIDs no longer in the
        folder are ignored by the server, so repeating a call is harmless.
        """
        if isinstance(mode, AddFlag) and not ATOM_RE.match(mode.flag):
            raise ValueError(f"not an IMAP flag or keyword: {mode.flag!r}")
        ordered = sorted(set(uids))
        if not ordered:
            return
        async with self._exclusive() as client:
            await self._ensure_selected(client)
            for start in range(0, len(ordered), _MARK_CHUNK):
                chunk = uid_set(ordered[start : start + _MARK_CHUNK])
                if isinstance(mode, AddFlag):
                    response = await self._run(
                        "UID STORE", client.uid("store", chunk, "+FLAGS.SILENT", f"({mode.flag})")
                    )
                    self._check(response, f"UID STORE +FLAGS ({mode.flag})")
                else:
                    await self._move(client, chunk, mode.folder)

    async def _move(self, client: aioimaplib.IMAP4, uid_set: str, folder: str) -> None:
        target = encode_mailbox(folder)
        for attempt in (1, 2):
            if self.has_capability("MOVE"):
                response = await self._run("UID MOVE", client.uid("move", uid_set, target))
            else:
                response = await self._run("UID COPY", client.uid("copy", uid_set, target))
            if response.result == "OK":
                break
            if attempt == 1 and "TRYCREATE" in response_text(response).upper():
                created = await self._run("CREATE", client.create(target))
                self._check(created, f"CREATE {folder}")
                continue
            raise ImapFolderError(
                f"cannot move messages {uid_set} to {folder!r}: {response_text(response)}"
            )
        if self.has_capability("MOVE"):
            return
        # No MOVE: COPY done, now flag \Deleted and expunge (only these UIDs with UIDPLUS).
        response = await self._run(
            "UID STORE", client.uid("store", uid_set, "+FLAGS.SILENT", r"(\Deleted)")
        )
        self._check(response, "UID STORE +FLAGS (\\Deleted)")
        if self.has_capability("UIDPLUS"):
            response = await self._run("UID EXPUNGE", client.uid("expunge", uid_set))
        else:
            response = await self._run("EXPUNGE", client.expunge())
        self._check(response, "EXPUNGE")

    async def append(
        self, folder: str, raw: bytes, flags: Sequence[str] = (r"\Seen",)
    ) -> int | None:
        """APPEND a message (e.g. our sent reply to Sent); returns its UID when the server says."""
        for flag in flags:
            if not ATOM_RE.match(flag):
                raise ValueError(f"not an IMAP flag or keyword: {flag!r}")
        async with self._exclusive() as client:
            response = await self._run(
                "APPEND",
                client.append(raw, mailbox=encode_mailbox(folder), flags=" ".join(flags) or None),
            )
            if response.result != "OK":
                text = response_text(response)
                if "TRYCREATE" in text.upper() or "NONEXISTENT" in text.upper():
                    raise ImapFolderError(f"cannot append to folder {folder!r}: {text}")
                raise ImapCommandError(f"IMAP APPEND to {folder!r} failed: {text}")
            match = re.search(r"\[APPENDUID \d+ (\d+)\]", response_text(response))
            return int(match.group(1)) if match else None

    # -- waiting for mail --------------------------------------------------------------

    # The timeout is the wait itself (how long to IDLE), not a cancellation deadline.
    async def wait_for_new(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait up to ``timeout`` seconds for new mail in the selected folder.

        Returns True as soon as the server reports new mail (EXISTS/RECENT during IDLE,
        or messages above the highest UID seen), False on timeout or when another call
        interrupted the wait. Uses IDLE when the server advertises it, otherwise sleeps
        ``min(timeout, poll_interval)`` and polls with NOOP.
        """
        async with self._exclusive() as client:
            await self._ensure_selected(client)
            if await self._uids_above(client, self._highest_uid):
                return True
            if self.has_capability("IDLE"):
                return await self._idle(client, timeout)
        await asyncio.sleep(max(0.0, min(timeout, self.poll_interval)))
        async with self._exclusive() as client:
            response = await self._run("NOOP", client.noop())
            pushed = response_text(response).upper()
            if " EXISTS" in f" {pushed}" or " RECENT" in f" {pushed}":
                return True
            return bool(await self._uids_above(client, self._highest_uid))

    async def _idle(self, client: aioimaplib.IMAP4, seconds: float) -> bool:
        queue = client.protocol.idle_queue
        while not queue.empty():  # stale pushes from an earlier IDLE
            queue.get_nowait()
        interrupt = asyncio.Event()
        self._idle_interrupt = interrupt
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        idle_task = await self._run("IDLE", client.idle_start(timeout=seconds + 60))
        seen = False
        try:
            while not seen and not interrupt.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                push = asyncio.ensure_future(client.wait_server_push(remaining))
                stop = asyncio.ensure_future(interrupt.wait())
                try:
                    await self._run(
                        "IDLE", asyncio.wait({push, stop}, return_when=asyncio.FIRST_COMPLETED)
                    )
                finally:
                    stop.cancel()
                    if not push.done():
                        push.cancel()
                if not push.done() or push.cancelled() or push.exception() is not None:
                    continue
                lines = push.result()
                if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break
                for line in lines:
                    upper = line_text(line).upper()
                    if upper.endswith(" EXISTS") or upper.endswith(" RECENT"):
                        seen = True
        finally:
            self._idle_interrupt = None
            if self.connected:
                client.idle_done()
            else:
                idle_task.cancel()  # the session is gone; nothing will answer DONE
        await self._run("IDLE DONE", asyncio.wait_for(idle_task, self.timeout))
        return seen


# ----------------------------------------------------------------------- diagnostics


async def check_login(
    *,
    host: str,
    user: str,
    password: str | None = None,
    xoauth2_token: str | None = None,
    port: int | None = None,
    tls: TlsMode = True,
    folder: str = "INBOX",
    timeout: float = 15.0,  # noqa: ASYNC109 - per-command IMAP timeout, as in ImapMailbox
    ssl_context: ssl.SSLContext | None = None,
) -> str | None:
    """Try to log in and open ``folder``; None when all is well, else one readable sentence.

    The sentence names the failing step: DNS, refused connection, TLS, timeout,
    authentication, or a missing folder.
    """
    mailbox = ImapMailbox(
        host=host,
        user=user,
        password=password,
        xoauth2_token=xoauth2_token,
        port=port,
        tls=tls,
        folder=folder,
        timeout=timeout,
        ssl_context=ssl_context,
    )
    try:
        await mailbox.connect()
        await mailbox.select()
    except ImapConnectError as exc:
        return f"connection failed ({exc.kind}): {exc}"
    except ImapAuthError as exc:
        return f"authentication failed: {exc}"
    except ImapFolderError as exc:
        return f"folder missing: {exc}"
    except ImapError as exc:
        return f"IMAP error: {exc}"
    finally:
        await mailbox.close()
    return None
