"""Block Kit rendering of the platform-neutral card and of the reply modal (pure, no I/O).

Every piece of customer text goes through ``escape_slack`` before it lands in a
``mrkdwn`` text object, so a subject like ``<!channel> <http://x|click>`` or
``@here`` is shown as typed and pings nobody. Labels we write ourselves (button
texts, select options) are ``plain_text`` objects, which Slack never parses
for mentions or links.

The one exception is the reply modal's ``plain_text_input`` initial values
(subject and body): they are editable form fields, not rendered mrkdwn, and
escaping them would put ``&lt;`` into the customer's email.

Slack limits honoured here: section text 3,000 characters, at most 10 fields of
2,000, button text 75, option text 75 / value 150, modal title 24, 50 blocks.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cards.actions import BadActionId, Verb, decode_action, encode_action
from cards.model import Button, Card, Select
from cards.status_choices import status_choices
from cards.strings import text
from connectors.platform import ReplyDraftView
from connectors.slack.escaping import escape_slack
from connectors.slack.strings import slack_text

Block = dict[str, Any]

REPLY_CALLBACK = "cd1-reply"
TEMPLATE_ACTION = "cd1-reply-template"
SUBJECT_BLOCK = "subject"
BODY_ACTION = "body"

STATUS_EMOJI: dict[str, str] = {
    "new": ":red_circle:",
    "claimed": ":large_orange_circle:",
    "replied": ":large_blue_circle:",
    "waiting": ":white_circle:",
    "follow_up": ":large_purple_circle:",
    "won": ":large_green_circle:",
    "lost": ":black_circle:",
    "spam": ":no_entry_sign:",
    "closed": ":black_circle:",
}


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def plain(value: str, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(value, limit) or " ", "emoji": True}


def mrkdwn(value: str, limit: int = 3000) -> dict[str, Any]:
    """A mrkdwn text object; ``value`` must already be escaped."""
    return {"type": "mrkdwn", "text": _cut(value, limit) or " "}


def _option(label: str, value: str) -> dict[str, Any]:
    return {"text": plain(label), "value": value[:150]}


def _control(control: Button | Select) -> Block:
    if isinstance(control, Button):
        element: Block = {
            "type": "button",
            "text": plain(control.label),
            "action_id": control.action_id,
        }
        if control.url:
            element["url"] = control.url
        else:
            element["value"] = control.action_id
        if control.style in ("primary", "danger"):
            element["style"] = control.style
        return element
    options = [_option(o.label, o.value) for o in control.options][:100]
    if control.overflow:
        return {"type": "overflow", "action_id": control.action_id, "options": options[:5]}
    return {
        "type": "static_select",
        "action_id": control.action_id,
        "placeholder": plain(control.placeholder),
        "options": _status_options(control)[:100] if control.reason_for else options,
    }


def _status_options(control: Select) -> list[Block]:
    """A status select whose choices need a reason (won/lost), the reasons spread out
    (``cards.status_choices``): a value ``won|?`` opens a small modal (``reason_modal``)."""
    return [_option(o.label, o.value) for o in status_choices(control)]


def _reassign_control(card: Card, locale: str) -> Block | None:
    """Leads and managers reassign with a user picker; shown while the inquiry is open.

    Not when the card brings its own Reassign (the escalation DM's list of the team's
    members): Slack refuses a block whose action ids repeat (``invalid_blocks``)."""
    verbs = set()
    for control in card.actions:
        try:
            verbs.add(decode_action(control.action_id)[0])
        except BadActionId:
            continue
    if Verb.REASSIGN in verbs:
        return None
    for control in card.actions:
        try:
            verb, number = decode_action(control.action_id)
        except BadActionId:
            continue
        if verb in (Verb.CLAIM, Verb.RELEASE):
            return {
                "type": "users_select",
                "action_id": encode_action(Verb.REASSIGN, number),
                "placeholder": plain(text(locale, "button.reassign")),
            }
    return None


def fallback_text(card: Card, locale: str) -> str:
    """The notification / screen-reader text of a card (escaped)."""
    return escape_slack(f"{card.badge.label}: {card.title}")[:3000]


def render_card(card: Card, *, locale: str, mentions: tuple[str, ...] = ()) -> list[Block]:
    """The card as Block Kit blocks. ``mentions`` are Slack user ids to ping (nudges)."""
    emoji = STATUS_EMOJI.get(card.badge.status, ":white_circle:")
    head = f"{emoji} *{escape_slack(card.badge.label)}*  ·  *{escape_slack(card.title)}*"
    if card.priority in ("high", "vip"):
        head += f"  ·  :warning: {escape_slack(text(locale, f'priority.{card.priority}'))}"
    blocks: list[Block] = [{"type": "section", "block_id": "head", "text": mrkdwn(head)}]
    if card.fields:
        fields = [
            mrkdwn(f"*{escape_slack(f.label)}*\n{escape_slack(f.value)}", 2000)
            for f in card.fields[:10]
        ]
        blocks.append({"type": "section", "block_id": "fields", "fields": fields})
    if card.snippet:
        quoted = "\n".join(
            "> " + line
            for line in escape_slack(_cut(card.snippet, 600)).splitlines()
            if line.strip()
        )
        if quoted:
            blocks.append({"type": "section", "block_id": "snippet", "text": mrkdwn(quoted)})
    context = [mrkdwn(escape_slack(n), 300) for n in card.notes[:5]]
    if card.context:
        context.append(mrkdwn(escape_slack(card.context), 300))
    if mentions:
        context.append(mrkdwn(" ".join(f"<@{m}>" for m in mentions if m.isalnum())))
    if context:
        blocks.append({"type": "context", "block_id": "context", "elements": context[:10]})
    elements = [_control(c) for c in card.actions]
    reassign = _reassign_control(card, locale)
    if reassign is not None:
        elements.append(reassign)
    if elements:
        blocks.append(
            {"type": "actions", "block_id": f"actions-{card.key}", "elements": elements[:25]}
        )
    return blocks


def render_text(value: str) -> list[Block]:
    """A plain message (thread note, DM text) as a single escaped section."""
    return [{"type": "section", "text": mrkdwn(escape_slack(value))}]


_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def render_note(value: str, mentions: tuple[str, ...] = ()) -> str:
    """A thread note's mrkdwn: everything escaped except our own mentions of ``mentions``.

    The clock writes ``<@U123>`` for each rep on duty and lists those ids beside
    the text; after escaping, exactly those tokens are turned back into live
    mentions. Customer text stays inert: a ``<!channel>`` or a ``<@U999>`` of
    someone not listed remains visible text (one listed id typed by a customer
    pings a rep who is being pinged anyway).
    """
    out = escape_slack(value)
    for user in dict.fromkeys(mentions):
        if _USER_ID.match(user):
            out = out.replace(f"&lt;@{user}&gt;", f"<@{user}>")
    return _cut(out, 3000)


def _modal_shell(inquiry_id: int, locale: str, *, submit: bool) -> Block:
    view: Block = {
        "type": "modal",
        "callback_id": REPLY_CALLBACK,
        "private_metadata": json.dumps({"inquiry": inquiry_id}),
        "title": plain(f"{text(locale, 'button.reply')} #{inquiry_id}", 24),
        "close": plain(slack_text(locale, "slack.cancel"), 24),
        "blocks": [],
    }
    if submit:
        view["submit"] = plain(slack_text(locale, "slack.send"), 24)
    return view


def loading_modal(inquiry_id: int, *, locale: str) -> Block:
    """What ``views.open`` shows at once (the trigger expires in 3 s); updated with the draft."""
    view = _modal_shell(inquiry_id, locale, submit=False)
    view["blocks"] = [
        {"type": "section", "text": mrkdwn(escape_slack(slack_text(locale, "slack.loading")))}
    ]
    return view


REASON_CALLBACK = "cd1-reason"
REASON_BLOCK = "reason"


def reason_modal(inquiry_id: int, status: str, status_label: str, *, locale: str) -> Block:
    """Asks the words a status needs (won, lost "other"); submitted as ``REASON_CALLBACK``."""
    view: Block = {
        "type": "modal",
        "callback_id": REASON_CALLBACK,
        "private_metadata": json.dumps({"inquiry": inquiry_id, "status": status}),
        "title": plain(f"{status_label} #{inquiry_id}", 24),
        "close": plain(slack_text(locale, "slack.cancel"), 24),
        "submit": plain(slack_text(locale, "slack.save"), 24),
        "blocks": [
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": plain(slack_text(locale, "slack.reason", status=status_label)),
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_BLOCK,
                    "multiline": True,
                    "max_length": 500,
                },
            }
        ],
    }
    return view


def message_modal(inquiry_id: int, message: str, *, locale: str) -> Block:
    """A modal that only says something (a refusal: not a rep, not the owner)."""
    view = _modal_shell(inquiry_id, locale, submit=False)
    view["blocks"] = [{"type": "section", "text": mrkdwn(escape_slack(message))}]
    return view


def body_block_id(template: str) -> str:
    """The body input's block id changes with the template, so Slack shows the new text."""
    return f"body-{template or 'none'}"[:255]


def reply_modal(draft: ReplyDraftView, *, locale: str) -> Block:
    """The reply editor: template picker, subject, editable body, Send."""
    view = _modal_shell(draft.inquiry_id, locale, submit=True)
    meta = {"inquiry": draft.inquiry_id, "template": draft.template}
    view["private_metadata"] = json.dumps(meta)
    blocks: list[Block] = [
        {
            "type": "context",
            "elements": [
                mrkdwn(f"*{escape_slack(slack_text(locale, 'slack.to'))}* {escape_slack(draft.to)}")
            ],
        },
    ]
    if draft.templates:
        options = [_option(label, key) for key, label in draft.templates][:100]
        picker: Block = {
            "type": "static_select",
            "action_id": TEMPLATE_ACTION,
            "placeholder": plain(slack_text(locale, "slack.template")),
            "options": options,
        }
        chosen = next((o for o in options if o["value"] == draft.template), None)
        if chosen is not None:
            picker["initial_option"] = chosen
        blocks.append(
            {
                "type": "section",
                "block_id": "template",
                "text": mrkdwn(escape_slack(slack_text(locale, "slack.template"))),
                "accessory": picker,
            }
        )
    blocks.append(
        {
            "type": "input",
            "block_id": SUBJECT_BLOCK,
            "label": plain(slack_text(locale, "slack.subject")),
            "element": {
                "type": "plain_text_input",
                "action_id": SUBJECT_BLOCK,
                "initial_value": draft.subject[:3000],
            },
        }
    )
    blocks.append(
        {
            "type": "input",
            "block_id": body_block_id(draft.template),
            "label": plain(slack_text(locale, "slack.body")),
            "element": {
                "type": "plain_text_input",
                "action_id": BODY_ACTION,
                "multiline": True,
                "initial_value": draft.body[:3000],
                "max_length": 3000,
            },
        }
    )
    if draft.error:
        blocks.append(
            {
                "type": "context",
                "elements": [mrkdwn(":warning: " + escape_slack(draft.error), 2000)],
            }
        )
    if draft.notice:  # said when the editor opens (unclaimed: sending claims it; lead on another's)
        blocks.insert(
            0,
            {
                "type": "context",
                "elements": [mrkdwn(":information_source: " + escape_slack(draft.notice), 2000)],
            },
        )
    view["blocks"] = blocks
    return view
