"""Neutral escaping helpers shared by several surfaces (Slack's own lives in ``connectors.slack``).

- HTML (web inbox): the standard entity escape.
- ``ZWJ``: the invisible joiner every platform uses to break pings and formatting.
- Markdown for DingTalk / WeCom: backslash-escape markdown punctuation and
  break ``@`` mentions (both platforms notify on ``@mobile``/``@userid`` text).
"""

from __future__ import annotations

import html
import re

ZWJ = "\u2060"  # word joiner: invisible, breaks tokens without changing what people read

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<])")
_MENTION = re.compile(r"@(?=\S)")


def escape_html(value: str) -> str:
    return html.escape(value, quote=True)


def escape_markdown(value: str) -> str:
    """Plain text for DingTalk/WeCom markdown: punctuation escaped, ``@`` mentions broken."""
    out = _MD_SPECIAL.sub(r"\\\1", value)
    out = _MENTION.sub("@" + ZWJ, out)
    return out.replace("\r", "").replace("\n", "  \n")
