"""Decoding untrusted request bytes into Python values without ever raising anything but ``BadInput``.

Every inbound HTTP surface (webhooks, the web inbox's actions, the API, Slack's
pre-checks) decodes through here, so a hostile or careless body gets a 4xx with
a one-line reason instead of a 500: an unknown charset, JSON nested deeper than
``MAX_DEPTH`` (``json`` would recurse), integers longer than Python's 4,300-digit
conversion limit, ``NaN``/``Infinity`` (PostgreSQL's JSON rejects them later),
and lone surrogates such as ``"\\ud800"`` (no database can store them).
"""

from __future__ import annotations

import codecs
import json
from itertools import accumulate
from typing import Any

MAX_DEPTH = 64

_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class BadInput(ValueError):
    """Input refused, with a one-line reason safe to show to the sender."""


def text_of(body: bytes, charset: str | None) -> str:
    """``body`` decoded with the request's charset (UTF-8 when none); ``BadInput`` otherwise."""
    name = charset or "utf-8"
    try:
        codec = codecs.lookup(name)
    except LookupError:
        raise BadInput(f"unknown charset {name[:40]!r}") from None
    try:
        text = body.decode(codec.name)
    except (UnicodeDecodeError, ValueError):
        raise BadInput(f"body is not valid {codec.name}") from None
    return check_text(text)


def check_text(text: str) -> str:
    """``text`` itself when it can be stored (no lone surrogates); ``BadInput`` otherwise."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput("text contains a lone surrogate (invalid Unicode)") from None
    return text


def _nesting(body: bytes) -> int:
    """The deepest bracket nesting of a JSON text, strings ignored (linear, no recursion)."""
    # Drop escaped backslashes, then escaped quotes: every quote left opens or closes a
    # string, so every other piece between quotes lies outside strings. No regex: an
    # unterminated string must not cost quadratic time.
    pieces = body.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')
    brackets = b"".join(pieces[::2]).translate(None, _NOT_BRACKETS)
    return max(accumulate(_DEPTH_STEP[b] for b in brackets), default=0)


def _no_constants(name: str) -> Any:
    raise BadInput(f"JSON {name} is not a number we accept")


def json_of(body: bytes, charset: str | None = None) -> Any:
    """A JSON body parsed safely: any problem is ``BadInput`` with a one-line reason."""
    text = text_of(body, charset)
    if _nesting(text.encode("utf-8")) > MAX_DEPTH:
        raise BadInput(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise BadInput(f"body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except BadInput:
        raise
    except ValueError:  # Python refuses integers of more than 4,300 digits
        raise BadInput("body is not valid JSON: a number is too long") from None
    except RecursionError:  # not reached below MAX_DEPTH; kept as a guard
        raise BadInput(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput("JSON contains a lone surrogate (invalid Unicode)") from None
    return value


def ascii_header(value: str) -> str:
    """A credential header's value, or ``""`` when it is not ASCII (so it cannot match).

    Signatures, tokens and CSRF tokens we issue are ASCII; comparing anything else
    with ``hmac.compare_digest`` on ``str`` raises ``TypeError``.
    """
    return value if value.isascii() else ""
