"""Card callbacks (topic ``/v1.0/card/instances/callback``) parsed into a click (pure, no I/O).

The callback's ``data`` (open.dingtalk.com/document/development/event-callback-card;
the same shape in dingtalk-stream's ``CardCallbackMessage`` and the official examples,
``open-dingtalk/dingtalk-card-examples`` ``examples/审批/python/index.py``)::

    {"type": "actionCallback", "outTrackId": "...", "corpId": "ding...", "userId": "...",
     "content": "{\\"cardPrivateData\\":{\\"actionIds\\":[\\"claim\\"],\\"params\\":{\\"action\\":\\"claim\\"}}}"}

``content`` is JSON inside a string. Our template's buttons send
``params.action`` = the verb (``claim``, ``release``, ``reply``, ``status`` ...) and,
for the selects, ``params.value``; the inquiry comes from our own ``outTrackId``
(``render.inquiry_of``). Anything else raises ``BadCallback`` with the reason,
which the stream answers to the clicker and logs — never swallowed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cards.actions import Verb
from connectors.dingtalk.render import inquiry_of


class BadCallback(ValueError):
    """A callback we cannot turn into a click (not ours, garbled, unknown verb)."""

    def __init__(self, reason: str, key: str) -> None:
        super().__init__(reason)
        self.key = key  # strings.py key of what to tell the clicker


@dataclass(frozen=True)
class CardClick:
    """One click on one of our cards."""

    inquiry_id: int
    verb: Verb
    user: str  # the clicker's userId (a rep's dingtalk_id)
    value: str
    out_track_id: str
    fingerprint: str  # stable id of this click's payload, when the frame has no messageId


def _content(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and raw:
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise BadCallback("content is not JSON", "dingtalk.error") from exc
        if isinstance(parsed, dict):
            return parsed
    raise BadCallback("content missing", "dingtalk.error")


def parse_callback(data: dict[str, Any]) -> CardClick:
    """The click in a card callback's ``data``."""
    if data.get("type", "actionCallback") != "actionCallback":
        raise BadCallback(
            f"unexpected callback type {str(data.get('type'))[:40]!r}", "dingtalk.error"
        )
    track = str(data.get("outTrackId") or "")
    inquiry = inquiry_of(track)
    if inquiry is None:
        raise BadCallback(f"outTrackId {track[:60]!r} is not ours", "dingtalk.bad_card")
    user = str(data.get("userId") or "")
    if not user:
        raise BadCallback("no userId", "dingtalk.error")
    content = _content(data.get("content"))
    private = content.get("cardPrivateData") or {}
    params = private.get("params") if isinstance(private, dict) else None
    if not isinstance(params, dict):
        raise BadCallback("no cardPrivateData.params", "dingtalk.unknown_action")
    action = str(params.get("action") or "")
    try:
        verb = Verb(action)
    except ValueError as exc:
        raise BadCallback(f"unknown action {action[:40]!r}", "dingtalk.unknown_action") from exc
    value = params.get("value", "")
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    raw = json.dumps(
        {"t": track, "u": user, "c": content}, sort_keys=True, ensure_ascii=False
    ).encode("utf-8")
    return CardClick(
        inquiry_id=inquiry,
        verb=verb,
        user=user,
        value=str(value)[:200],
        out_track_id=track,
        fingerprint="dt-" + hashlib.sha256(raw).hexdigest()[:32],
    )
