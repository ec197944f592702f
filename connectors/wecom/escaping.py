"""Customer text made inert for WeCom: no markdown links, no ``<a>``/``<font>`` tags, no mentions.

WeCom's markdown subset (developer.work.weixin.qq.com/document/path/90236,
"markdown消息") renders ``[text](url)`` links, ``<font color>`` tags, ``**bold**``,
``#`` headings and ``>`` quotes; text messages turn ``<a href>`` into links; group
robots notify on ``<@userid>`` and ``@all``. Whether WeCom honours a backslash
escape is not documented, so instead of ``\\`` we put an invisible WORD JOINER
(U+2060) after every character that could open one of those constructs: the
text reads the same and nothing parses. Template-card fields are plain text
(no markdown), but get the same treatment for ``<``/``@`` since the client's
handling of them is undocumented.
"""

from __future__ import annotations

import re

WJ = "\u2060"

# Characters that open markdown/HTML constructs or mentions in WeCom's renderers.
_OPENERS = re.compile(r"([<\[\]*`_~#>@!])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def inert_markdown(value: str) -> str:
    """``value`` for a WeCom markdown body: shown as typed, no links/tags/mentions/formatting."""
    out = _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
    out = _OPENERS.sub(lambda m: m.group(1) + WJ, out)
    # ``](`` was split above; a bare line break stays a line break.
    return out


def inert_line(value: str) -> str:
    """One markdown line: like ``inert_markdown`` with line breaks folded to spaces."""
    return " ".join(inert_markdown(value).split())


def inert_plain(value: str) -> str:
    """``value`` for a template-card text field: control characters gone, ``<``/``@`` broken."""
    out = _CONTROL.sub("", value.replace("\r", ""))
    return re.sub(r"([<@])", lambda m: m.group(1) + WJ, out)


def cut(value: str, limit: int) -> str:
    """At most ``limit`` characters, with an ellipsis when shortened."""
    return value if len(value) <= limit else value[: max(0, limit - 1)] + "…"


def cut_bytes(value: str, limit: int) -> str:
    """At most ``limit`` UTF-8 bytes without splitting a character (WeCom counts bytes)."""
    raw = value.encode("utf-8")
    if len(raw) <= limit:
        return value
    return raw[: limit - 3].decode("utf-8", errors="ignore") + "…"
