"""The IMAP wire level of ``connectors.mail.imap``: its typed errors, the values it hands
out, mailbox-name and UID-set encoding, and the parser of FETCH responses (by literal,
never by line content, so a message containing ``)`` or ``* 5 FETCH`` lines is read
intact). Pure: no connection here."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

TlsMode = bool | Literal["starttls"]
"""True: implicit TLS (port 993); "starttls": upgrade a plain connection; False: none."""

ConnectFailure = Literal["dns", "refused", "tls", "timeout", "greeting", "network"]


# ---------------------------------------------------------------------------- errors


class ImapError(Exception):
    """Base class: every failure of this connector, with a human-readable message."""


class ImapConnectError(ImapError):
    """The server could not be reached or the TLS/IMAP handshake failed (transient)."""

    def __init__(self, message: str, kind: ConnectFailure) -> None:
        super().__init__(message)
        self.kind: ConnectFailure = kind
        """dns, refused, tls, timeout, greeting or network."""


class ImapConnectionLost(ImapError):
    """The session broke (server restart, network, timeout): close() and connect() again."""


class ImapAuthError(ImapError):
    """The server rejected the credentials (or refuses clear-text login)."""


class ImapFolderError(ImapError):
    """The folder does not exist or cannot be selected."""


class ImapCommandError(ImapError):
    """The server answered NO or BAD to a command."""


# ---------------------------------------------------------------------------- values


@dataclass(frozen=True)
class FolderStatus:
    """What SELECT reports about a folder."""

    uidvalidity: int
    """UIDs are only comparable while this stays the same."""
    uidnext: int
    """The UID the next arriving message will get (at least)."""
    exists: int
    """Number of messages in the folder."""


@dataclass(frozen=True)
class FetchedMail:
    """One message as stored on the server."""

    uid: int
    raw: bytes
    flags: frozenset[str]


@dataclass(frozen=True)
class AddFlag:
    """Mark processed by adding a flag or keyword, e.g. ``\\Seen`` or ``$Claimdesk``."""

    flag: str


@dataclass(frozen=True)
class MoveTo:
    """Mark processed by moving the message to a folder (created when missing)."""

    folder: str


ProcessedMark = AddFlag | MoveTo


# --------------------------------------------------------------------- wire helpers

ATOM_RE = re.compile(r"^\\?[^\s(){%*\"\\\]\x00-\x1f\x7f]+$")


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_mailbox(name: str) -> str:
    """A mailbox name as an IMAP quoted string in modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append(
                "&" + base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",") + "-"
            )
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return quote("".join(out))


def uid_set(uids: Sequence[int]) -> str:
    """Compact UID set: [1, 2, 3, 7] -> "1:3,7"."""
    ordered = sorted(set(uids))
    ranges: list[str] = []
    start = previous = ordered[0]
    for uid in ordered[1:]:
        if uid == previous + 1:
            previous = uid
            continue
        ranges.append(f"{start}:{previous}" if start != previous else str(start))
        start = previous = uid
    ranges.append(f"{start}:{previous}" if start != previous else str(start))
    return ",".join(ranges)


def line_text(line: Any) -> str:
    if isinstance(line, bytes | bytearray):
        return bytes(line).decode("utf-8", "replace")
    return str(line)


def response_text(response: Any) -> str:
    lines = [line_text(line) for line in getattr(response, "lines", []) if isinstance(line, bytes)]
    return " ".join(line for line in lines if line).strip()


_FETCH_START_RE = re.compile(rb"^(\d+) FETCH \(", re.IGNORECASE)
_UID_RE = re.compile(rb"\bUID (\d+)", re.IGNORECASE)
_FLAGS_RE = re.compile(rb"\bFLAGS \(([^)]*)\)", re.IGNORECASE)
_BODY_LITERAL_RE = re.compile(rb"\b(?:BODY\[\]|RFC822)(?:<\d+>)?\s*\{(\d+)\+?\}$", re.IGNORECASE)
_BODY_INLINE_RE = re.compile(
    rb'\b(?:BODY\[\]|RFC822)(?:<\d+>)? (NIL|"(?:[^"\\]|\\.)*")', re.IGNORECASE
)


@dataclass
class _FetchItem:
    text: bytearray
    body: bytes | None = None
    expect_body: bool = False


def parse_fetch_response(lines: Iterable[Any]) -> list[FetchedMail]:
    """Parse aioimaplib UID FETCH response lines (bytes lines and bytearray literals).

    Message bodies are taken only from literals, so their content can never be
    mistaken for protocol lines. Items without a UID or a body (unsolicited FLAGS
    updates from other sessions) are skipped.
    """
    items: list[_FetchItem] = []
    for line in lines:
        if isinstance(line, bytearray):
            if items and items[-1].expect_body:
                items[-1].body = bytes(line)
                items[-1].expect_body = False
            continue
        if not isinstance(line, bytes):
            continue
        if _FETCH_START_RE.match(line):
            items.append(_FetchItem(text=bytearray(line)))
        elif items:
            items[-1].text += b" " + line
        else:
            continue
        if _BODY_LITERAL_RE.search(line):
            items[-1].expect_body = True
    fetched: list[FetchedMail] = []
    for item in items:
        uid_match = _UID_RE.search(item.text)
        if uid_match is None:
            continue
        body = item.body
        if body is None:
            inline = _BODY_INLINE_RE.search(item.text)
            if inline is None:
                continue
            value = inline.group(1)
            body = b"" if value.upper() == b"NIL" else re.sub(rb"\\(.)", rb"\1", value[1:-1])
        flags_match = _FLAGS_RE.search(item.text)
        flags = frozenset(
            flag.decode("utf-8", "replace")
            for flag in (flags_match.group(1).split() if flags_match else [])
        )
        fetched.append(FetchedMail(uid=int(uid_match.group(1)), raw=body, flags=flags))
    return fetched


def connect_failure(
    exc: BaseException, host: str, port: int, tls: TlsMode, timeout: float
) -> ImapConnectError:
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return ImapConnectError(
            f"cannot resolve IMAP host {host!r} (DNS: {exc.strerror or exc})", "dns"
        )
    if isinstance(exc, ConnectionRefusedError):
        return ImapConnectError(
            f"connection refused by {where}: is the IMAP server running and the port right?",
            "refused",
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ImapConnectError(
            f"TLS certificate of {where} not trusted: {exc.verify_message or exc}", "tls"
        )
    if isinstance(exc, ssl.SSLError):
        hint = (
            " (the port may not speak implicit TLS; try tls=starttls or false)"
            if tls is True
            else ""
        )
        return ImapConnectError(
            f"TLS handshake with {where} failed: {exc.reason or exc}{hint}", "tls"
        )
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        hint = " (the port may expect implicit TLS; try tls=true)" if tls is not True else ""
        return ImapConnectError(
            f"no IMAP greeting from {where} within {timeout:g}s{hint}", "timeout"
        )
    if isinstance(exc, OSError):
        return ImapConnectError(f"cannot connect to {where}: {exc.strerror or exc}", "network")
    return ImapConnectError(f"cannot connect to {where}: {exc}", "greeting")
