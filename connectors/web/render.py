"""Renders a Card as an HTML fragment for the built-in web inbox.

Every piece of text is HTML-escaped here; the page's script only swaps whole
fragments, never builds markup from strings. Buttons carry their action id in
``data-action``; the script posts it (with the session's CSRF token).
"""

from __future__ import annotations

from cards.escaping import escape_html as e
from cards.model import Button, Card, Select


def _control(control: Button | Select, reason_placeholder: str, apply_label: str) -> str:
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
    reason = (
        f'<input name="reason" class="reason" placeholder="{e(reason_placeholder)}" maxlength="500">'
        if not control.overflow
        else ""
    )
    return (
        f'<form class="select-form" data-action="{e(control.action_id)}">'
        f'<select name="value" aria-label="{e(control.placeholder)}">'
        f'<option value="" disabled selected>{e(control.placeholder)}</option>{options}</select>'
        f'{reason}<button type="submit" class="btn">{e(apply_label)}</button></form>'
    )


def render_card_html(
    card: Card, *, reason_placeholder: str = "Reason", apply_label: str = "OK"
) -> str:
    """An ``<article>`` for the card; its id and version let the page replace stale copies."""
    fields = "".join(f"<dt>{e(f.label)}</dt><dd>{e(f.value)}</dd>" for f in card.fields)
    notes = "".join(f'<p class="note">{e(n)}</p>' for n in card.notes)
    actions = "".join(_control(c, reason_placeholder, apply_label) for c in card.actions)
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
