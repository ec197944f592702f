"""The neutral ``Card`` as the ``cardParamMap`` of ``card_template.json`` (pure, no I/O).

DingTalk's card data must be a map of **strings** (create-and-deliver-cards:
``cardData.cardParamMap``, key ≤ 100 bytes, value ≤ 1 KB; non-string values are
JSON written into a string, open.dingtalk.com/document/orgapp/instructions-for-filling-in-api-card-data).
Every variable here is documented in ``card_template.json`` and ``docs/dingtalk.md``.

Customer text (title, snippet, field values, notes) goes through ``escaping.inert``;
labels come from the neutral card (already in the team's locale) or ``strings.py``.

Buttons in the template send ``{"action": <verb>}`` (a select adds ``"value"``);
the card is told apart by its ``outTrackId``, which carries the inquiry number:
``cd1.<number>.<digest>``, the digest being derived from the idempotency key so the
same post always gets the same id (createAndDeliver is keyed by ``outTrackId``).
"""

from __future__ import annotations

import hashlib
import json

from cards.actions import BadActionId, Verb, decode_action
from cards.model import Button, Card, Select
from cards.status_choices import status_choices
from connectors.dingtalk.escaping import inert, inert_line
from connectors.dingtalk.strings import dtext

OUT_TRACK_PREFIX = "cd1"
VALUE_LIMIT = 1000  # characters; DingTalk allows 1 KB per value, CJK is 3 bytes in UTF-8
_CHOICE_LIMIT = 60


def out_track_id(card_key: str, idempotency_key: str) -> str:
    """Our ``outTrackId`` for a card: the inquiry number plus a digest of the idempotency key."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:24]
    safe_key = "".join(c for c in card_key if c.isalnum() or c in "-_")[:32] or "x"
    return f"{OUT_TRACK_PREFIX}.{safe_key}.{digest}"


def inquiry_of(track_id: str) -> int | None:
    """The inquiry number an ``outTrackId`` of ours carries (``None``: not one of ours)."""
    parts = track_id.split(".")
    if len(parts) != 3 or parts[0] != OUT_TRACK_PREFIX or not parts[1].isdigit():
        return None
    return int(parts[1])


def _cut_bytes(value: str, limit_bytes: int = 1000) -> str:
    raw = value.encode("utf-8")
    if len(raw) <= limit_bytes:
        return value
    return raw[: limit_bytes - 3].decode("utf-8", errors="ignore") + "…"


def _verb(control: Button | Select) -> Verb | None:
    try:
        return decode_action(control.action_id)[0]
    except BadActionId:
        return None


def render_card(card: Card, *, locale: str) -> dict[str, str]:
    """``cardParamMap`` for ``card``: every value a string (booleans as ``"true"``/``"false"``)."""
    params: dict[str, str] = {
        "title": inert_line(card.title, 200),
        "lastMessage": inert_line(card.title, 60),
        "status": card.badge.status,
        "status_label": card.badge.label,
        "status_color": card.badge.color,
        "priority": card.priority,
        "snippet": inert(card.snippet),
        "context": inert_line(card.context, 300),
        "notes": inert("\n".join(card.notes)),
        "notes_label": dtext(locale, "dingtalk.notes"),
        "link_url": card.link_url,
        "card_key": card.key,
        "version": str(card.version),
        "notice": "",
    }
    # Fields: one markdown block (label in bold, value inert) and one pair of variables each.
    lines = []
    fields_json = []
    for index, item in enumerate(card.fields):
        value = inert_line(item.value, 300)
        label = inert_line(item.label, 40)
        lines.append(f"**{label}**：{value}")
        fields_json.append({"label": label, "text": value})
        params[f"field{index}_label"] = label
        params[f"field{index}_value"] = value
    params["fields_md"] = "  \n".join(lines)
    params["fields"] = json.dumps(fields_json, ensure_ascii=False)
    # Controls: which ones show and their labels; selects carry their options as JSON.
    for verb in Verb:
        params[f"show_{verb.value}"] = "false"
    for control in card.actions:
        found = _verb(control)
        if found is None:
            continue
        verb = found
        params[f"show_{verb.value}"] = "true"
        params[f"btn_{verb.value}"] = inert_line(
            control.label if isinstance(control, Button) else control.placeholder, 20
        )
        if isinstance(control, Select):
            # the status select lists each of the team's lost reasons as a choice of its own
            # ("Lost: Price" = ``lost|price``, ``cards.status_choices``)
            choices = status_choices(control) if control.reason_for else control.options
            params[f"{verb.value}_options"] = json.dumps(
                [{"text": inert_line(o.label, _CHOICE_LIMIT), "value": o.value} for o in choices],
                ensure_ascii=False,
            )
        elif control.url:
            params[f"{verb.value}_url"] = control.url
    return {key: _cut_bytes(value) for key, value in params.items()}


def is_interactive(card: Card) -> bool:
    """Whether the card has anything to press (a digest has not: a markdown post instead)."""
    return any(isinstance(c, Select) or (isinstance(c, Button) and not c.url) for c in card.actions)


def render_notice(message: str) -> dict[str, str]:
    """The clicker's private ``cardParamMap``: the outcome line the template shows them only."""
    return {"notice": _cut_bytes(inert_line(message, 300))}


def markdown_note(text: str, mentions: tuple[str, ...]) -> str:
    """A group note as markdown: our text inert, then one live ``@userId`` per mention."""
    body = inert(text).replace("\n", "  \n")
    live = " ".join(f"@{user}" for user in mentions if user)
    return f"{body}  \n{live}" if live else body


def markdown_card(card: Card, text: str, *, locale: str) -> str:
    """A card as a markdown message (escalation DMs, digests): title, fields, link."""
    lines = []
    if text:
        lines.append(inert(text))
    lines.append(f"#### {inert_line(card.title, 200)}")
    lines.append(f"{card.badge.label}")
    for item in card.fields:
        lines.append(f"- **{inert_line(item.label, 40)}**：{inert_line(item.value, 300)}")
    if card.snippet:
        lines.append("> " + inert_line(card.snippet, 500))
    if card.context:
        lines.append(inert_line(card.context, 300))
    if card.link_url:
        lines.append(f"[{dtext(locale, 'dingtalk.open')}]({card.link_url})")
    return "  \n".join(lines)
