"""DingTalk-only UI strings (zh-CN default, en). Neutral strings live in ``cards/strings.py``."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "dingtalk.processing": "Working on it… the card updates in a moment.",
        "dingtalk.reply_ready": "Open the reply page: {url}",
        "dingtalk.reply_link": "Write the reply",
        "dingtalk.unknown_action": "This button is not one of claimdesk's; the card may be outdated.",
        "dingtalk.bad_card": "This card is not one of claimdesk's.",
        "dingtalk.error": "claimdesk could not handle the click; please try again.",
        "dingtalk.notes": "Notes",
        "dingtalk.open": "Open in claimdesk",
        "dingtalk.escalation_link": "Card: {url}",
    },
    "zh-CN": {
        "dingtalk.processing": "正在处理…卡片稍后更新。",
        "dingtalk.reply_ready": "打开回复页面：{url}",
        "dingtalk.reply_link": "撰写回复",
        "dingtalk.unknown_action": "这个按钮不是 claimdesk 的，卡片可能已过期。",
        "dingtalk.bad_card": "这张卡片不是 claimdesk 发出的。",
        "dingtalk.error": "claimdesk 暂时无法处理这次点击，请重试。",
        "dingtalk.notes": "备注",
        "dingtalk.open": "在 claimdesk 中打开",
        "dingtalk.escalation_link": "卡片：{url}",
    },
}


def dtext(locale: str, key: str, **params: object) -> str:
    """The DingTalk string ``key`` in ``locale`` (English as fallback)."""
    table = STRINGS.get(locale, STRINGS["en"])
    template = table.get(key) or STRINGS["en"][key]
    return template.format(**params) if params else template
