"""WeCom callbacks, pure: signature check, decryption, and ``template_card_event`` parsing.

No I/O here (gidgethub ``sansio`` style). The receive URL gets (document/path/90930,
"回调配置"; 90238 "接收消息与事件"):

- ``GET ?msg_signature&timestamp&nonce&echostr``: verify, decrypt ``echostr`` and
  answer it in plain text — that is how the admin console saves the URL.
- ``POST ?msg_signature&timestamp&nonce`` with ``<xml><ToUserName/><Encrypt/>
  <AgentID/></xml>``: the event is the decrypted ``Encrypt``.

``msg_signature`` is ``sha1(sort(token, timestamp, nonce, encrypt))``; we compare
it in constant time ourselves (wechatpy 2.0.0a26 compares with ``!=``) and then
let wechatpy's ``WeChatCrypto`` (``wechatpy.work.crypto``) check it again and
decrypt (AES-256-CBC, and the corp id inside the plaintext must be ours).

A button click arrives as ``MsgType=event``, ``Event=template_card_event`` with
``EventKey`` (the button's ``key``: our action id), ``TaskId``, ``CardType``,
``ResponseCode`` (a fresh single-use code to update that card) and, for a card
with a drop-down, ``SelectedItems/SelectedItem/{QuestionKey, OptionIds/OptionId}``
(document/path/90240 "模板卡片事件推送"; sample as quoted in binarywang/WxJava
``WxCpXmlMessageTest#testTemplateCardEvent``). ``FromUserName`` is the member's
userid (our rep's ``wecom_id``). WeCom retries an unanswered callback (up to 3
times, same event), so ``request_id`` is built from what a retry repeats.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

import xmltodict  # type: ignore[import-untyped]  # wechatpy's own XML parser (a dependency of it)
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.work.crypto import WeChatCrypto
from wechatpy.work.exceptions import InvalidCorpIdException

from cards.actions import Action, BadActionId, Verb, decode_action
from connectors.wecom.render import VALUE_SEP

MAX_BODY = 64 * 1024


class BadCallback(Exception):
    """Not a genuine callback for our corp (bad signature, key or corp id): refuse, do nothing."""


class MalformedEvent(ValueError):
    """A genuine callback whose event we cannot read."""


@dataclass(frozen=True)
class CardEvent:
    """One ``template_card_event``."""

    user: str
    create_time: str
    event_key: str
    task_id: str
    card_type: str
    response_code: str
    agent_id: str
    selected: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def request_id(self) -> str:
        """Identical for WeCom's retries of this click, different for another click."""
        return f"wecom:{self.user}:{self.create_time}:{self.task_id}:{self.event_key}"


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    parts = sorted([token, timestamp, nonce, encrypted])
    return hashlib.sha1("".join(parts).encode()).hexdigest()


def _check(token: str, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
    if not (msg_signature and timestamp and nonce and encrypted):
        raise BadCallback("missing msg_signature, timestamp, nonce or payload")
    expected = signature(token, timestamp, nonce, encrypted)
    if not hmac.compare_digest(expected.encode(), msg_signature.encode()):
        raise BadCallback("bad msg_signature")


def verify_url(
    crypto: WeChatCrypto,
    token: str,
    *,
    msg_signature: str,
    timestamp: str,
    nonce: str,
    echostr: str,
) -> str:
    """The decrypted ``echostr`` to answer the URL check with."""
    _check(token, msg_signature, timestamp, nonce, echostr)
    try:
        return str(crypto.check_signature(msg_signature, timestamp, nonce, echostr))
    except (InvalidSignatureException, InvalidCorpIdException, ValueError) as exc:
        raise BadCallback(f"echostr refused: {type(exc).__name__}") from exc


def _xml(raw: str | bytes) -> dict[str, Any]:
    try:
        parsed = xmltodict.parse(raw, disable_entities=True)
    except Exception as exc:  # expat raises its own error types
        raise MalformedEvent(f"not XML: {type(exc).__name__}") from exc
    root = parsed.get("xml") if isinstance(parsed, dict) else None
    if not isinstance(root, dict):
        raise MalformedEvent("no <xml> root")
    return root


def decrypt(
    crypto: WeChatCrypto,
    token: str,
    body: bytes,
    *,
    msg_signature: str,
    timestamp: str,
    nonce: str,
) -> str:
    """The plaintext event XML of an encrypted POST body."""
    if len(body) > MAX_BODY:
        raise BadCallback("body too large")
    try:
        outer = _xml(body)
    except MalformedEvent as exc:
        raise BadCallback(str(exc)) from exc
    encrypted = str(outer.get("Encrypt") or "")
    _check(token, msg_signature, timestamp, nonce, encrypted)
    try:
        return str(crypto.decrypt_message({"Encrypt": encrypted}, msg_signature, timestamp, nonce))
    except (InvalidSignatureException, InvalidCorpIdException, ValueError, Exception) as exc:
        # A padding or corp-id mismatch after a good signature: same refusal.
        raise BadCallback(f"payload refused: {type(exc).__name__}") from exc


def _texts(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(str(v) for v in value if v is not None)
    return (str(value),)


def _selected(root: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    items = (root.get("SelectedItems") or {}).get("SelectedItem")
    if items is None:
        return {}
    if isinstance(items, dict):
        items = [items]
    out: dict[str, tuple[str, ...]] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        key = str(item.get("QuestionKey") or "")
        options = (item.get("OptionIds") or {}).get("OptionId")
        out[key] = _texts(options)
    return out


def parse_event(plain_xml: str) -> CardEvent | None:
    """The card event in ``plain_xml``; ``None`` for any other message or event."""
    root = _xml(plain_xml)
    if str(root.get("MsgType", "")).lower() != "event":
        return None
    if str(root.get("Event", "")).lower() != "template_card_event":
        return None
    user = str(root.get("FromUserName") or "")
    key = str(root.get("EventKey") or "")
    if not user or not key:
        raise MalformedEvent("template_card_event without FromUserName or EventKey")
    return CardEvent(
        user=user,
        create_time=str(root.get("CreateTime") or ""),
        event_key=key,
        task_id=str(root.get("TaskId") or ""),
        card_type=str(root.get("CardType") or ""),
        response_code=str(root.get("ResponseCode") or ""),
        agent_id=str(root.get("AgentID") or ""),
        selected=_selected(root),
    )


def to_action(event: CardEvent) -> Action:
    """The neutral ``Action`` of a click (raises ``BadActionId`` for keys we did not write).

    A drop-down's choice travels in ``SelectedItems`` under the select's action id;
    a button ``<action id>=<value>`` carries its value itself. A select's submit
    button pressed with nothing chosen gives an empty ``value`` (the application
    refuses it as invalid)."""
    action_id, _, value = event.event_key.partition(VALUE_SEP)
    verb, inquiry = decode_action(action_id)
    if not value:
        chosen = event.selected.get(action_id, ())
        value = chosen[0] if chosen else ""
    if verb == Verb.CLAIM or verb == Verb.RELEASE or verb == Verb.REPLY:
        value = ""
    return Action(
        inquiry_id=inquiry,
        verb=verb,
        platform="wecom",
        user=event.user,
        value=value,
        request_id=event.request_id,
        extra={
            "response_code": event.response_code,
            "task_id": event.task_id,
            "card_type": event.card_type,
        },
    )


__all__ = [
    "BadActionId",
    "BadCallback",
    "CardEvent",
    "MalformedEvent",
    "decrypt",
    "parse_event",
    "signature",
    "to_action",
    "verify_url",
]
