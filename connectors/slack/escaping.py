"""Escaping customer text for Slack mrkdwn, so a customer cannot ping, link or format.

``&``, ``<``, ``>`` become entities (Slack's documented rule, "Formatting text for
app surfaces": that alone disarms ``<!channel>`` and ``<http://x|click>``); bare
``@here``/``@channel``/``@everyone`` get a zero-width joiner so no client or
``link_names`` turns them into pings; formatting characters are neutralised with
the same joiner.
"""

from __future__ import annotations

import re

from cards.escaping import ZWJ

_SLACK_BROADCAST = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)
_SLACK_FORMAT = re.compile(r"([*_~`])")


def escape_slack(value: str) -> str:
    """Plain text for a Slack mrkdwn field: no pings, links or formatting from the customer."""
    out = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = _SLACK_BROADCAST.sub(lambda m: "@" + ZWJ + m.group(1), out)
    return _SLACK_FORMAT.sub(lambda m: m.group(1) + ZWJ, out)
