"""Customer text made inert for DingTalk cards and robot messages (pure, no I/O).

DingTalk renders card text and ``sampleMarkdown`` with its own Markdown dialect,
which also honours ``<font color=...>`` tags and turns bare URLs into links
(open.dingtalk.com/document/orgapp/message-type, "markdown" section; a stored copy
is quoted at cscoder.cn/docs/open/aliyun/robot-messages-markdown.html). Its
backslash-escape behaviour is not documented, so we do not rely on it: the
characters that make structure (``* _ [ ] < > ` | ~``) are swapped for their
full-width forms, which every renderer shows as plain characters; a line that
would start a heading or list gets an invisible word joiner in front; ``://`` and
``www.`` get a word joiner so nothing is auto-linked; and every ``@`` or
full-width ``＠`` is followed by a word joiner so ``@所有人``, ``@all`` (any case)
and ``@<userId>`` from a customer ping nobody.
"""

from __future__ import annotations

import re

WJ = "\u2060"  # word joiner: invisible, breaks tokens without changing what people read

_FULL_WIDTH = str.maketrans(
    {
        "*": "＊",
        "_": "＿",
        "[": "［",
        "]": "］",
        "<": "＜",
        ">": "＞",
        "`": "｀",
        "|": "｜",
        "~": "～",
    }
)
_LINE_START = re.compile(r"^(\s*)(?=[-+=#]|\d+[.)])", re.MULTILINE)
_AT = re.compile(r"([@＠])")
_SCHEME = re.compile(r":(?=//)")
_WWW = re.compile(r"(www)\.", re.IGNORECASE)


def inert(value: str) -> str:
    """``value`` as plain text in a DingTalk markdown/text field: no format, link or ping."""
    out = value.replace("\r\n", "\n").replace("\r", "\n")
    out = out.translate(_FULL_WIDTH)
    out = _LINE_START.sub(lambda m: m.group(1) + WJ, out)
    out = _SCHEME.sub(":" + WJ, out)
    out = _WWW.sub(lambda m: m.group(1) + WJ + ".", out)
    return _AT.sub(lambda m: m.group(1) + WJ, out)


def inert_line(value: str, limit: int = 1000) -> str:
    """``inert`` on one line (newlines become spaces), cut to ``limit`` characters."""
    out = inert(" ".join(value.split()))
    return out if len(out) <= limit else out[: limit - 1] + "…"


def pings_anyone(value: str) -> bool:
    """Whether ``value`` still holds a live ``@`` token (used by tests and a debug check)."""
    return re.search(r"[@＠](?!" + WJ + ")", value) is not None
