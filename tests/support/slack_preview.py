"""A small, faithful HTML preview of Block Kit blocks, for the README's "Slack card" screenshot.

Pure (no I/O): ``preview_page(blocks)`` turns what ``connectors.slack.render.render_card``
really returns into one self-contained HTML page (inline CSS, no external assets) laid
out like a Slack message: sections with fields, quoted snippets, context lines, and an
actions row of buttons, selects, overflow menus and user pickers. Only the block and
element types our renderer writes are drawn; any other type fails loudly, so a renderer
change that the preview cannot show breaks the test instead of a stale picture.

mrkdwn is converted the way Slack reads it: our renderer has already escaped ``&``, ``<``
and ``>`` (the same entities HTML uses), so what remains in angle brackets is real markup
(``<@U123>`` mentions, ``<url|text>`` links); then ``*bold*``, ``_italic_``, ``~strike~``,
`` `code` `` and ``>`` quote lines
(a raw ``>`` at a line start: a customer's is escaped). The machine has no emoji font: status emoji are drawn
as coloured dots and flag emoji as their two letters, which is a deliberate simplification.
"""

from __future__ import annotations

import html
import re
from typing import Any

Block = dict[str, Any]

EMOJI_DOTS: dict[str, str] = {
    "red_circle": "#dd2e44",
    "large_orange_circle": "#f4900c",
    "large_blue_circle": "#55acee",
    "white_circle": "#e6e7e8",
    "large_purple_circle": "#aa8ed6",
    "large_green_circle": "#78b159",
    "black_circle": "#31373d",
}
EMOJI_TEXT: dict[str, str] = {
    "warning": "\u26a0\ufe0f",
    "no_entry_sign": "\u2298",
    "information_source": "\u2139",
}
_ANGLE = re.compile(r"<([^<>]+)>")
_EMOJI = re.compile(r":([a-z0-9_+-]+):")
_FLAG = re.compile("([\U0001f1e6-\U0001f1ff])([\U0001f1e6-\U0001f1ff])")


class UnknownBlock(ValueError):
    """A block or element type the preview does not draw (keep the preview in step)."""


def _emoji(match: re.Match[str]) -> str:
    name = match.group(1)
    if name in EMOJI_DOTS:
        return f'<span class="dot" style="background:{EMOJI_DOTS[name]}" title=":{name}:"></span>'
    return EMOJI_TEXT.get(name, match.group(0))


def _flag(match: re.Match[str]) -> str:
    letters = "".join(chr(ord(c) - 0x1F1E6 + ord("A")) for c in match.groups())
    return f'<span class="flag">{letters}</span>'


def _markup(match: re.Match[str]) -> str:
    inner = match.group(1)
    if inner.startswith("@"):
        return f'<span class="mention">@{html.escape(inner[1:])}</span>'
    if inner.startswith("!"):
        return f'<span class="mention">@{html.escape(inner[1:].split("|")[0])}</span>'
    url, _, label = inner.partition("|")
    return f'<a href="{html.escape(url)}">{html.escape(label or url)}</a>'


def _inline(line: str) -> str:
    out = _ANGLE.sub(_markup, line)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"<b>\1</b>", out)
    out = re.sub(r"(?<![\w_])_([^_\n]+)_(?![\w_])", r"<i>\1</i>", out)
    out = re.sub(r"(?<![\w~])~([^~\n]+)~(?![\w~])", r"<s>\1</s>", out)
    out = _EMOJI.sub(_emoji, out)
    return _FLAG.sub(_flag, out)


def mrkdwn_html(value: str) -> str:
    """Slack mrkdwn (already escaped by our renderer) as HTML."""
    parts: list[str] = []
    quote: list[str] = []
    for line in value.split("\n"):
        if line.startswith("> "):  # our own quote prefix; a customer's ">" arrives as "&gt;"
            quote.append(_inline(line[2:]))
            continue
        if quote:
            parts.append(f"<blockquote>{'<br>'.join(quote)}</blockquote>")
            quote = []
        parts.append(_inline(line) + "<br>")
    if quote:
        parts.append(f"<blockquote>{'<br>'.join(quote)}</blockquote>")
    joined = "".join(parts)
    return joined[:-4] if joined.endswith("<br>") else joined


def text_html(obj: dict[str, Any]) -> str:
    if obj.get("type") == "mrkdwn":
        return mrkdwn_html(str(obj.get("text", "")))
    if obj.get("type") == "plain_text":
        return _FLAG.sub(_flag, html.escape(str(obj.get("text", ""))))
    raise UnknownBlock(f"text object {obj.get('type')!r}")


def _element(element: Block) -> str:
    kind = element.get("type")
    if kind == "button":
        style = element.get("style", "")
        label = text_html(element["text"])
        if element.get("url"):
            return f'<a class="btn {style}" href="{html.escape(element["url"])}">{label} ↗</a>'
        return f'<button class="btn {style}" type="button">{label}</button>'
    if kind in ("static_select", "users_select"):
        options = [text_html(o["text"]) for o in element.get("options", [])]
        for group in element.get("option_groups", []):
            options.extend(text_html(o["text"]) for o in group.get("options", []))
        title = html.escape(" · ".join(re.sub("<[^>]+>", "", o) for o in options)[:300])
        placeholder = text_html(element["placeholder"])
        return (
            f'<span class="select" title="{title}">{placeholder}<span class="caret">⌄</span></span>'
        )
    if kind == "overflow":
        return '<span class="overflow" title="more">⋮</span>'
    raise UnknownBlock(f"element {kind!r}")


def _block(block: Block) -> str:
    kind = block.get("type")
    if kind == "section":
        out = ""
        if "text" in block:
            out += f'<div class="text">{text_html(block["text"])}</div>'
        if "fields" in block:
            cells = "".join(f'<div class="field">{text_html(f)}</div>' for f in block["fields"])
            out += f'<div class="fields">{cells}</div>'
        if "accessory" in block:
            out += f'<div class="accessory">{_element(block["accessory"])}</div>'
        return f'<div class="block section">{out}</div>'
    if kind == "context":
        items = "".join(f"<span>{text_html(e)}</span>" for e in block["elements"])
        return f'<div class="block context">{items}</div>'
    if kind == "actions":
        items = "".join(_element(e) for e in block["elements"])
        return f'<div class="block actions">{items}</div>'
    if kind == "divider":
        return '<hr class="block">'
    raise UnknownBlock(f"block {kind!r}")


CSS = """
body { margin: 0; background: #fff; font: 15px/1.46668 -apple-system, "Segoe UI", "DejaVu Sans",
  sans-serif; color: #1d1c1d; }
.channel { border-bottom: 1px solid #ddd; padding: 10px 20px; font-weight: 900; font-size: 18px; }
.msg { display: flex; gap: 8px; padding: 8px 20px; }
.avatar { width: 36px; height: 36px; border-radius: 6px; background: #2f6f5e; color: #fff;
  font-weight: 700; display: flex; align-items: center; justify-content: center; flex: none; }
.who { font-weight: 900; } .app { background: #e8e8e8; color: #616061; font-size: 10px;
  font-weight: 700; padding: 1px 3px; border-radius: 2px; margin: 0 4px; }
.time { color: #616061; font-size: 12px; }
.block { margin: 4px 0; max-width: 640px; }
.section { display: flex; flex-wrap: wrap; }
.section .text { flex: 1 1 100%; }
.fields { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 16px; margin-top: 4px;
  flex: 1 1 100%; }
blockquote { margin: 4px 0; padding-left: 12px; border-left: 4px solid #ddd; }
.context { color: #616061; font-size: 13px; display: flex; flex-wrap: wrap; gap: 4px 12px; }
.actions { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 8px; }
.btn { font: inherit; font-size: 14px; font-weight: 700; border: 1px solid #bbb; background: #fff;
  color: #1d1c1d; border-radius: 4px; padding: 0 12px; height: 32px; text-decoration: none;
  display: inline-flex; align-items: center; }
.btn.primary { background: #007a5a; border-color: #007a5a; color: #fff; }
.btn.danger { background: #e01e5a; border-color: #e01e5a; color: #fff; }
.select { font-size: 14px; border: 1px solid #bbb; border-radius: 4px; height: 32px; padding: 0 8px
  0 12px; display: inline-flex; align-items: center; gap: 8px; color: #616061; min-width: 120px;
  justify-content: space-between; }
.overflow { border: 1px solid #bbb; border-radius: 4px; width: 32px; height: 32px; display:
  inline-flex; align-items: center; justify-content: center; font-weight: 900; }
.dot { display: inline-block; width: 14px; height: 14px; border-radius: 50%; vertical-align: -2px; }
.flag { font-size: 11px; font-weight: 700; border: 1px solid #bbb; border-radius: 2px;
  padding: 0 2px; }
.mention { background: #e8f5fa; color: #1264a3; border-radius: 3px; padding: 0 2px; }
a { color: #1264a3; } code { background: #f6f6f6; border: 1px solid #ddd; padding: 0 3px; }
"""


def preview_page(
    messages: list[list[Block]], *, channel: str = "sales-inquiries", app: str = "claimdesk"
) -> str:
    """Each message's blocks, posted by ``app``, in a page that looks like a Slack channel."""
    items = "".join(
        '<div class="msg"><div class="avatar">cd</div><div>'
        f'<div><span class="who">{html.escape(app)}</span><span class="app">APP</span>'
        f'<span class="time">9:4{i} AM</span></div>'
        f"{''.join(_block(b) for b in blocks)}</div></div>"
        for i, blocks in enumerate(messages)
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Slack card preview'
        f"</title><style>{CSS}</style></head><body>"
        f'<div class="channel"># {html.escape(channel)}</div>{items}</body></html>'
    )
