"""The neutral ``Card`` as WeCom JSON (pure, no I/O): rep ``template_card``s and group markdown.

WeCom cannot put a button card into a group chat (``appchat/send`` takes text,
markdown, textcard ... only: developer.work.weixin.qq.com/document/path/90248),
so a card becomes two things:

- ``render_template_card``: a ``button_interaction`` template card sent to the
  team's reps by ``message/send`` (document/path/90236). Its buttons carry our
  action ids as ``key``; the card's first ``Select`` (status) becomes the one
  ``button_selection`` drop-down the type allows, submitted by its own button (the
  team's lost reasons spread out as choices of their own where they fit);
  further selects (snooze, follow-up) become one button each with their first
  choice (``<action id>=<value>``). A URL button (Open) is a ``type: 1`` jump.
- ``render_group_post`` / ``render_group_change``: markdown for the group.

Limits (the "建议不超过" figures of 90236's template-card tables, quoted from a
third-party copy: programmer.ink "python push enterprise wechat robot 6 template
card type"; the official page was not read): main_title.title 26 characters,
desc 30, sub_title_text 112, horizontal_content_list 6 items of keyname 5 /
value 26, button_list 6, source.desc 13; task_id 128 bytes of ``[0-9A-Za-z_@-]``;
option_list 10 (unconfirmed). Markdown content is capped at 2,048 bytes
(appchat/send, 90248). Over-long text is cut, never refused.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cards.model import Button, Card, Option, Select
from cards.status_choices import ASK, status_choices
from cards.strings import text
from connectors.wecom.escaping import cut, cut_bytes, inert_line, inert_markdown, inert_plain
from connectors.wecom.strings import wecom_text

MAX_BUTTONS = 6
MAX_FIELDS = 6
MAX_OPTIONS = 10
MARKDOWN_BYTES = 2048
VALUE_SEP = "="  # ``cd1:snooze:1042=1h``: a button that carries its select's value

# button_list[].style: 1-4 (90236); 1 reads as the primary (blue) button.
_STYLE = {"primary": 1, "danger": 3, "default": 2}


def task_id_for(card: Card, salt: str) -> str:
    """A task id WeCom accepts (``[0-9A-Za-z_@-]``, <= 128 bytes), unique per post."""
    digest = hashlib.sha256(f"{card.key}|{salt}".encode()).hexdigest()[:20]
    safe_key = "".join(c if c.isalnum() or c in "_-@" else "-" for c in card.key)[:60]
    return f"cd-{safe_key}-{digest}"


def _owner(card: Card, locale: str) -> str:
    label = text(locale, "field.owner")
    for f in card.fields:
        if f.label == label:
            return f.value
    return ""


def card_state(card: Card, locale: str) -> dict[str, str]:
    """What the group is told about when it changes: status and owner."""
    none = text(locale, "owner.none")
    owner = _owner(card, locale)
    return {
        "status": card.badge.status,
        "owner": "" if owner == none else owner,
    }


def render_template_card(
    card: Card, *, locale: str, task_id: str, stale: bool = False
) -> dict[str, Any]:
    """``card`` as a ``button_interaction`` template card (the ``template_card`` object)."""
    title = cut(inert_plain(card.title), 26) or "#"
    desc = inert_plain(card.badge.label)
    if card.priority in ("high", "vip"):
        desc += " · " + text(locale, f"priority.{card.priority}")
    sub_lines = [*card.notes]
    if card.snippet:
        sub_lines.append(card.snippet)
    if card.context:
        sub_lines.append(card.context)
    if stale:
        sub_lines.insert(0, wecom_text(locale, "card.stale"))
    template: dict[str, Any] = {
        "card_type": "button_interaction",
        "source": {"desc": cut(wecom_text(locale, "card.source"), 13), "desc_color": 0},
        "main_title": {"title": title, "desc": cut(desc, 30)},
        "sub_title_text": cut(inert_plain("\n".join(sub_lines)), 112),
        "horizontal_content_list": [
            {"keyname": cut(inert_plain(f.label), 5), "value": cut(inert_plain(f.value), 26) or "-"}
            for f in card.fields[:MAX_FIELDS]
        ],
        "task_id": task_id,
        "button_list": [],
    }
    if card.link_url:
        template["card_action"] = {"type": 1, "url": card.link_url}
    if stale:
        # An old copy: no buttons, so nobody acts on what it shows.
        template["replace_text"] = wecom_text(locale, "card.stale")[:10]
        return template
    buttons: list[dict[str, Any]] = []
    selection_done = False
    for control in card.actions:
        if isinstance(control, Button):
            if control.url:
                buttons.append(
                    {"type": 1, "text": cut(control.label, 10), "style": 2, "url": control.url}
                )
            else:
                buttons.append(
                    {
                        "type": 0,
                        "text": cut(control.label, 10),
                        "style": _STYLE.get(control.style, 2),
                        "key": control.action_id,
                    }
                )
        elif isinstance(control, Select) and control.options:
            if not selection_done:
                selection_done = True
                template["button_selection"] = {
                    "question_key": control.action_id,
                    "title": cut(control.placeholder, 10),
                    "option_list": [
                        {"id": o.value[:128], "text": cut(o.label, 16)} for o in _choices(control)
                    ],
                }
                # No ``selected_id``: a press without a choice must not pick one for the rep.
                buttons.append(
                    {
                        "type": 0,
                        "text": cut(control.placeholder, 10),
                        "style": 2,
                        "key": control.action_id,
                    }
                )
            else:
                first = control.options[0]
                buttons.append(
                    {
                        "type": 0,
                        "text": cut(f"{control.placeholder} {first.label}", 10),
                        "style": 4,
                        "key": f"{control.action_id}{VALUE_SEP}{first.value}",
                    }
                )
    template["button_list"] = buttons[:MAX_BUTTONS]
    return template


def _choices(control: Select) -> list[Option]:
    """The drop-down's options, the team's lost reasons spread out ("Lost: Price",
    ``cards.status_choices``). The card takes ``MAX_OPTIONS``: when the reasons do not all
    fit, the first ones of the team's list stay and one "Lost: …" choice asks for the rest
    (the application answers that it needs a reason, with the inquiry's page)."""
    if not control.reason_for:
        return list(control.options[:MAX_OPTIONS])
    spread = status_choices(control)
    if len(spread) <= MAX_OPTIONS:
        return spread
    listed = [
        o
        for o in spread
        if o.value.partition("|")[0] in control.reasons_for and not o.value.endswith(f"|{ASK}")
    ]
    rest = [o for o in spread if o not in listed]
    asks = {o.value for o in rest}
    lost = next((o for o in control.options if o.value in control.reasons_for), None)
    catch_all = None
    if lost is not None and f"{lost.value}|{ASK}" not in asks:
        catch_all = Option(f"{lost.label}: …", f"{lost.value}|{ASK}")
    room = MAX_OPTIONS - len(rest) - (catch_all is not None)
    if room < 1:
        return list(control.options[:MAX_OPTIONS])
    dropped = listed[room:]
    out = [o for o in spread if o not in dropped]
    if catch_all is not None:
        out.insert(out.index(listed[room - 1]) + 1, catch_all)
    return out


def _link(label: str, url: str) -> str:
    # Our own URL: only ``)`` and spaces could end it early.
    safe = url.replace(")", "%29").replace(" ", "%20")
    return f"[{label}]({safe})"


def render_group_post(card: Card, *, locale: str) -> str:
    """The group's markdown post for a new card: title, status, fields, snippet, link."""
    lines = [f"**{inert_line(wecom_text(locale, 'group.new', title=card.title))}**"]
    lines.append(f"> {inert_line(card.badge.label)}")
    for f in card.fields:
        lines.append(f"> {inert_line(f.label)}: {inert_line(f.value)}")
    if card.snippet:
        lines.append(inert_line(cut(card.snippet, 300)))
    if card.link_url:
        lines.append(_link(wecom_text(locale, "group.open"), card.link_url))
    return cut_bytes("\n".join(lines), MARKDOWN_BYTES)


def render_group_change(card: Card, *, locale: str, owner_changed: bool) -> str:
    """One group line for a change of owner or status, with the inquiry's link."""
    state = card_state(card, locale)
    if owner_changed and state["owner"]:
        line = wecom_text(locale, "group.owner", title=card.title, owner=state["owner"])
    else:
        line = wecom_text(locale, "group.change", title=card.title, status=card.badge.label)
    out = inert_line(line)
    if card.link_url:
        out += "  " + _link(wecom_text(locale, "group.open"), card.link_url)
    return cut_bytes(out, MARKDOWN_BYTES)


def render_note(note: str, mentions: tuple[str, ...] = ()) -> str:
    """A note for the group (nudge, digest line): escaped, with our own mentions kept live."""
    body = inert_markdown(note)
    if mentions:
        body += "\n" + " ".join(f"<@{m}>" for m in mentions if _is_userid(m))
    return cut_bytes(body, MARKDOWN_BYTES)


def render_direct(card: Card | None, note: str, *, locale: str) -> str:
    """A markdown app message (text only, or a card without buttons to show)."""
    parts = []
    if note:
        parts.append(inert_markdown(note))
    if card is not None:
        parts.append(render_group_post(card, locale=locale))
    return cut_bytes("\n".join(parts) or wecom_text(locale, "direct.header"), MARKDOWN_BYTES)


def render_digest(card: Card, *, locale: str) -> str:
    """A digest card as one markdown post for the group."""
    lines = [f"**{inert_line(card.title)}**"]
    for f in card.fields:
        lines.append(f"> {inert_line(f.label)}: {inert_line(f.value)}")
    for note in card.notes:
        lines.append(inert_line(note))
    if card.snippet:
        lines.append(inert_markdown(card.snippet))
    if card.context:
        lines.append(inert_line(card.context))
    if card.link_url:
        lines.append(_link(wecom_text(locale, "group.open"), card.link_url))
    return cut_bytes("\n".join(lines), MARKDOWN_BYTES)


def _is_userid(value: str) -> bool:
    # WeCom userids are 1-64 of letters, digits and ``_-.@`` (document/path/90195); anything
    # else cannot be ours and is not rendered as a mention.
    return 0 < len(value) <= 64 and all(c.isalnum() or c in "_-.@" for c in value)


def is_interactive(card: Card) -> bool:
    """Whether the card has anything to press (a digest has not: it goes to the group only)."""
    return any(isinstance(c, Select) or (isinstance(c, Button) and not c.url) for c in card.actions)
