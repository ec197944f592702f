"""Slack's own UI strings (the reply modal, the escalation DM) in the team's locale.

Beside the neutral table in ``cards.strings``; looked up the same way, English as fallback.
"""

from __future__ import annotations

SLACK_STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "slack.send": "Send",
        "slack.cancel": "Cancel",
        "slack.loading": "Preparing the reply…",
        "slack.to": "To:",
        "slack.template": "Template",
        "slack.subject": "Subject",
        "slack.body": "Message",
        "slack.escalation": "Escalation: #{number} needs attention",
        "slack.save": "Save",
        "slack.reason": "Why {status}? (the team's reports count it)",
    },
    "zh-CN": {
        "slack.send": "发送",
        "slack.cancel": "取消",
        "slack.loading": "正在准备回复…",
        "slack.to": "收件人：",
        "slack.template": "模板",
        "slack.subject": "主题",
        "slack.body": "正文",
        "slack.escalation": "升级提醒：#{number} 需要处理",
        "slack.save": "保存",
        "slack.reason": "{status}的原因（团队报表会统计）",
    },
}


def slack_text(locale: str, key: str, **params: object) -> str:
    """The Slack string ``key`` in ``locale`` (English as fallback), formatted with ``params``."""
    table = SLACK_STRINGS.get(locale, SLACK_STRINGS["en"])
    template = table.get(key) or SLACK_STRINGS["en"][key]
    return template.format(**params) if params else template
