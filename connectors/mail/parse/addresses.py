"""Address lists read as a person reads them (``alice@x <bob@y>`` is ``bob@y``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from connectors.mail.parse.headers import _clean_line, _strip_comments, decode_words

# ------------------------------------------------------------------- address parsing


@dataclass(frozen=True)
class _Mailbox:
    name: str
    address: str


def _split_address_list(value: str) -> Iterator[str]:
    """Split an address-list on top-level commas, dropping group syntax."""
    token: list[str] = []
    quoted = False
    escaped = False
    comment = 0
    angle = False
    for char in value:
        if escaped:
            token.append(char)
            escaped = False
            continue
        if quoted:
            token.append(char)
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            continue
        if comment:
            token.append(char)
            if char == "\\":
                escaped = True
            elif char == "(":
                comment += 1
            elif char == ")":
                comment -= 1
            continue
        if angle:
            token.append(char)
            if char == ">":
                angle = False
            continue
        if char == '"':
            quoted = True
        elif char == "(":
            comment = 1
        elif char == "<":
            angle = True
        elif char in ",;":
            yield "".join(token)
            token = []
            continue
        elif char == ":" and "@" not in "".join(token) and "<" not in "".join(token):
            # "group-name:" starts a group; the name is not a mailbox.
            token = []
            continue
        token.append(char)
    yield "".join(token)


def _unquote_name(name: str) -> str:
    name = name.strip()
    parts: list[str] = []
    quoted = False
    escaped = False
    for char in name:
        if escaped:
            parts.append(char)
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        else:
            parts.append(char)
    return "".join(parts)


def _clean_address(address: str) -> str:
    address = "".join(address.split())
    if address.lower().startswith("mailto:"):
        address = address[7:]
    if address.startswith("@") and ":" in address:
        address = address.split(":", 1)[1]  # obsolete source route "@a,@b:user@host"
    address = address.strip("<>;,")
    return address.lower()


def _parse_mailbox(token: str, defects: list[str]) -> _Mailbox | None:
    token = token.strip()
    if not token:
        return None
    outside, comment = _strip_comments(token)
    start = outside.rfind("<")
    if start >= 0:
        end = outside.find(">", start)
        address = outside[start + 1 : end if end >= 0 else len(outside)]
        name = outside[:start] + (outside[end + 1 :] if end >= 0 else "")
        name = _unquote_name(name) or comment
    else:
        address = outside
        name = comment
        if " " in address.strip() and "@" not in address:
            # A bare phrase ("Undisclosed recipients") names no mailbox.
            return None
    address = _clean_address(address)
    name = _clean_line(decode_words(name, defects))
    if not address:
        return None
    return _Mailbox(name=name, address=address)


def _parse_addresses(value: str | None, defects: list[str]) -> list[_Mailbox]:
    if not value:
        return []
    value = value.replace("\r", " ").replace("\n", " ")
    mailboxes: list[_Mailbox] = []
    for token in _split_address_list(value):
        mailbox = _parse_mailbox(token, defects)
        if mailbox is not None:
            mailboxes.append(mailbox)
    return mailboxes
