"""The snippet: the first lines of the new text, without the quoted history, on one line."""

from __future__ import annotations

import re

from connectors.mail.parse.headers import _collapse

SNIPPET_LENGTH = 300

# ------------------------------------------------------------------------- snippets

_SEPARATOR_LINE_RES = (
    re.compile(
        r"^\s*-{2,}\s*(?:original\s+message|original\s+mail|原始邮件|原始郵件|原邮件|"
        r"ursprüngliche\s+nachricht|message\s+d'origine|mensaje\s+original|"
        r"messaggio\s+originale|mensagem\s+original|oorspronkelijk\s+bericht|"
        r"исходное\s+сообщение|元のメッセージ|원본\s*메시지)\s*-{2,}\s*$",
        re.IGNORECASE,
    ),
    re.compile(r"^.{0,400}(?:пишет|написал[а]?)\s*:\s*$"),
    re.compile(r"^.{0,400}(?:写道|寫道)\s*[:：]?\s*$"),
    re.compile(r"^.{0,400}님이\s*작성\s*[:：]\s*$"),
)
# "On <date>, <name> wrote:" in several languages; mail clients often wrap it in two lines.
_ATTRIBUTION_RES = (
    re.compile(r"^[\s>-]*On\b.{0,400}\bwrote\s*:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Am\b.{0,400}\bschrieb\b.{0,200}:\s*$"),
    re.compile(r"^\s*Le\b.{0,400}\ba\s+écrit\s*:\s*$"),
    re.compile(r"^\s*El\b.{0,400}\bescribió\s*:\s*$"),
    re.compile(r"^\s*Il\b.{0,400}\bha\s+scritto\s*:\s*$"),
    re.compile(r"^\s*(?:Em|Às)\b.{0,400}\bescreveu\s*:\s*$"),
    re.compile(r"^\s*Op\b.{0,400}\bschreef\b.{0,200}:\s*$"),
    re.compile(r"^\s*(?:W\s+dniu|Dnia)\b.{0,400}\bnapisał[a]?\s*:\s*$"),
)
_UNDERSCORE_LINE_RE = re.compile(r"^\s*_{8,}\s*$")
_QUOTE_HEADER_FIRST_RE = re.compile(
    r"^\s*\*?(?:from|发件人|寄件者|寄件人|von|de|da|van|от|od|差出人|送信者|보낸\s*사람)\*?\s*[:：]",
    re.IGNORECASE,
)
_QUOTE_HEADER_NEXT_RE = re.compile(
    r"^\s*\*?(?:sent|date|to|subject|cc|发送时间|发送日期|时间|日期|收件人|主题|抄送|"
    r"寄件日期|傳送時間|收件者|主旨|副本|gesendet|datum|an|betreff|envoyé|à|objet|"
    r"enviado|para|asunto|inviato|oggetto|verzonden|aan|onderwerp|отправлено|кому|тема|"
    r"wysłano|do|temat|送信日時|宛先|件名|날짜|받는\s*사람|제목)\*?\s*[:：]",
    re.IGNORECASE,
)


def _history_starts(lines: list[str], index: int) -> bool:
    """Does quoted history (a previous message) start at ``lines[index]``?"""
    line = lines[index]
    if any(pattern.match(line) for pattern in _SEPARATOR_LINE_RES):
        return True
    following = lines[index + 1] if index + 1 < len(lines) else ""
    for pattern in _ATTRIBUTION_RES:
        if pattern.match(line) or (line.strip() and pattern.match(f"{line} {following}")):
            return True
    if _UNDERSCORE_LINE_RE.match(line):
        rest = [item for item in lines[index + 1 : index + 3] if item.strip()]
        return bool(rest) and bool(_QUOTE_HEADER_FIRST_RE.match(rest[0]))
    if _QUOTE_HEADER_FIRST_RE.match(line):
        return any(_QUOTE_HEADER_NEXT_RE.match(item) for item in lines[index + 1 : index + 6])
    return False


def make_snippet(text: str, limit: int = SNIPPET_LENGTH) -> str:
    """The start of ``text`` without quoted history or signature, on one line."""
    lines = text.split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(">"):
            continue
        if line.rstrip("\r") in ("-- ", "--") or _history_starts(lines, index):
            break
        kept.append(line)
    snippet = _collapse(" ".join(kept)) or _collapse(text)
    if len(snippet) <= limit:
        return snippet
    cut = snippet[:limit]
    space = cut.rfind(" ")
    if space > limit - 40:
        cut = cut[:space]
    return cut.rstrip() + "…"
