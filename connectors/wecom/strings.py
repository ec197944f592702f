"""WeCom-only UI strings (zh-CN default, en): group lines, stale-card notes, click answers.

Labels shared by every surface (buttons, statuses) come from ``cards.strings``;
these are the few lines only the WeCom split (group post + rep cards) needs.
"""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "group.new": "新询盘 {title}",
        "group.change": "{title}：{status}",
        "group.owner": "{title}：已认领: {owner}",
        "group.open": "查看",
        "card.source": "询盘",
        "card.stale": "此卡片已过期，请查看最新卡片",
        "click.reply": "回复 {title}",
        "click.choose_first": "请先在下拉框中选择，再点击“{label}”。",
        "click.unknown": "这个按钮已失效。",
        "direct.header": "询盘提醒",
    },
    "en": {
        "group.new": "New inquiry {title}",
        "group.change": "{title}: {status}",
        "group.owner": "{title}: claimed by {owner}",
        "group.open": "Open",
        "card.source": "Inquiry",
        "card.stale": "This card is out of date: see the newer one",
        "click.reply": "Reply to {title}",
        "click.choose_first": "Choose an option in the drop-down first, then press “{label}”.",
        "click.unknown": "This button is no longer valid.",
        "direct.header": "Inquiry reminder",
    },
}


def wecom_text(locale: str, key: str, **values: object) -> str:
    """The WeCom string ``key`` in ``locale`` (zh-CN when the locale is unknown)."""
    table = STRINGS.get(locale) or STRINGS["zh-CN"]
    template = table.get(key) or STRINGS["zh-CN"][key]
    return template.format(**values) if values else template
