"""Renders a Card as an HTML fragment for the built-in web inbox.

Every piece of text is HTML-escaped here; the page's script only swaps whole
fragments, never builds markup from strings. Buttons carry their action id in
``data-action``; the script posts it (with the session's CSRF token).
"""

from __future__ import annotations

from collections.abc import Mapping

from cards.escaping import escape_html as e
from cards.model import Button, Card, Select

#: Labels of the extra form fields (the caller passes them in the team's locale).
DEFAULT_LABELS: dict[str, str] = {
    "reason": "Reason",
    "lost_reason": "Lost reason",
    "follow_up_date": "Follow-up date",
    "apply": "OK",
}


def _select_extras(control: Select, labels: Mapping[str, str], key: str) -> str:
    """The fields a status change may need, each shown only when its choice is picked:
    the reason box for won/lost, the team's lost reasons, the follow-up date."""
    parts: list[str] = []
    if control.reasons_for and control.reasons:
        options = "".join(
            f'<option value="{e(o.value)}">{e(o.label)}</option>' for o in control.reasons
        )
        parts.append(
            f'<label class="extra lost-box" data-for="{e(" ".join(control.reasons_for))}" hidden>'
            f"{e(labels['lost_reason'])} "
            f'<select name="reason_code" id="lost-{e(key)}">{options}</select></label>'
        )
    if control.reason_for:
        parts.append(
            f'<label class="extra reason-box" data-for="{e(" ".join(control.reason_for))}" hidden>'
            f"{e(labels['reason'])} "
            f'<input name="reason" class="reason" maxlength="500"></label>'
        )
    if control.date_for:
        parts.append(
            f'<label class="extra date-box" data-for="{e(control.date_for)}" hidden>'
            f"{e(labels['follow_up_date'])} "
            f'<input type="date" name="date" class="follow-up-date"></label>'
        )
    return "".join(parts)


def _control(control: Button | Select, labels: Mapping[str, str], key: str) -> str:
    if isinstance(control, Button):
        if control.url:
            return f'<a class="btn" href="{e(control.url)}">{e(control.label)}</a>'
        return (
            f'<button type="button" class="btn btn-{e(control.style)}" '
            f'data-action="{e(control.action_id)}">{e(control.label)}</button>'
        )
    options = "".join(
        f'<option value="{e(o.value)}">{e(o.label)}</option>' for o in control.options
    )
    return (
        f'<form class="select-form" data-action="{e(control.action_id)}">'
        f'<select name="value" aria-label="{e(control.placeholder)}">'
        f'<option value="" disabled selected>{e(control.placeholder)}</option>{options}</select>'
        f"{_select_extras(control, labels, key)}"
        f'<button type="submit" class="btn">{e(labels["apply"])}</button></form>'
    )


def render_card_html(
    card: Card,
    *,
    reason_placeholder: str = "Reason",
    apply_label: str = "OK",
    labels: Mapping[str, str] | None = None,
) -> str:
    """An ``<article>`` for the card; its id and version let the page replace stale copies."""
    names = {**DEFAULT_LABELS, "reason": reason_placeholder, "apply": apply_label, **(labels or {})}
    fields = "".join(f"<dt>{e(f.label)}</dt><dd>{e(f.value)}</dd>" for f in card.fields)
    notes = "".join(f'<p class="note">{e(n)}</p>' for n in card.notes)
    actions = "".join(_control(c, names, card.key) for c in card.actions)
    title = e(card.title)
    if card.link_url:
        title = f'<a href="{e(card.link_url)}">{title}</a>'
    return (
        f'<article class="card status-{e(card.badge.status)} prio-{e(card.priority)}" '
        f'id="card-{e(card.key)}" data-key="{e(card.key)}" data-version="{card.version}" '
        f'data-status="{e(card.badge.status)}">'
        f'<header><span class="badge" style="background:{e(card.badge.color)}">{e(card.badge.label)}</span>'
        f"<h2>{title}</h2></header>"
        f'<dl class="fields">{fields}</dl>'
        f'<blockquote class="snippet">{e(card.snippet)}</blockquote>'
        f"{notes}"
        f'<p class="context">{e(card.context)}</p>'
        f'<div class="actions">{actions}</div>'
        f"</article>"
    )
