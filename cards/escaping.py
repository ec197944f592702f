"""Escaping customer text for each surface, so a customer cannot ping, link or format.

- HTML (web inbox): the standard entity escape.
- Slack mrkdwn: ``&``, ``<``, ``>`` become entities (Slack's documented rule,
  api.slack.com "Formatting text for app surfaces": that alone disarms
  ``<!channel>`` and ``<http://x|click>``); bare ``@here``/``@channel``/``@everyone``
  get a zero-width joiner so no client or ``link_names`` turns them into pings;
  formatting characters are neutralised with the same joiner.
- Markdown for DingTalk / WeCom: backslash-escape markdown punctuation and
  break ``@`` mentions (both platforms notify on ``@mobile``/``@userid`` text).
"""

from __future__ import annotations

import html
import re

ZWJ = "\u2060"  # word joiner: invisible, breaks tokens without changing what people read

_SLACK_BROADCAST = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)
_SLACK_FORMAT = re.compile(r"([*_~`])")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<])")
_MENTION = re.compile(r"@(?=\S)")


def escape_html(value: str) -> str:
    return html.escape(value, quote=True)


def escape_slack(value: str) -> str:
    """Plain text for a Slack mrkdwn field: no pings, links or formatting from the customer."""
    out = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = _SLACK_BROADCAST.sub(lambda m: "@" + ZWJ + m.group(1), out)
    return _SLACK_FORMAT.sub(lambda m: m.group(1) + ZWJ, out)


def escape_markdown(value: str) -> str:
    """Plain text for DingTalk/WeCom markdown: punctuation escaped, ``@`` mentions broken."""
    out = _MD_SPECIAL.sub(r"\\\1", value)
    out = _MENTION.sub("@" + ZWJ, out)
    return out.replace("\r", "").replace("\n", "  \n")
