"""How claimdesk's log lines look: the message plus the context the code attaches.

The code logs with ``log.info("inquiry created", extra={"inquiry": 12, "team": "sales"})``.
The standard formatter drops those extras; ``ContextFormatter`` prints them, either as
``key=value`` pairs after the message (``text``, the default) or as one JSON object per
line (``json``, for log shippers). ``configure_logging`` installs it on the root logger;
the CLI calls it with ``--log-format`` (or ``[server] log_format``).

What is never printed: extras whose key names customer text (``subject``, ``body``,
``email`` ...) are dropped, extras whose key names a secret (``token``, ``secret``,
``password`` ...) are shown as ``[redacted]``, and e-mail addresses inside values
(an SMTP error quoting the recipient) keep only their domain.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
# Keys that carry what a customer wrote or who they are: never logged.
CUSTOMER_KEYS = frozenset(
    {
        "subject",
        "body",
        "text",
        "html",
        "message_text",
        "email",
        "contact_email",
        "customer",
        "customer_name",
        "contact_name",
        "phone",
        "company",
        "address",
        "fields",
    }
)
# Key fragments that mark a secret: the value is replaced.
_SECRET_FRAGMENTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "authorization",
    "cookie",
    "signature",
    "api_key",
    "apikey",
    "response_code",
)
REDACTED = "[redacted]"
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_MAX_VALUE = 500


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(fragment in lowered for fragment in _SECRET_FRAGMENTS)


def _clean(value: Any) -> Any:
    """A JSON-able, length-capped value with e-mail addresses reduced to their domain."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value][:50]
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items() if str(k) not in CUSTOMER_KEYS}
    text = str(value)
    if len(text) > _MAX_VALUE:
        text = text[:_MAX_VALUE] + "…"
    return _EMAIL.sub(r"…@\1", text)


def record_context(record: logging.LogRecord) -> dict[str, Any]:
    """The extras of ``record``, cleaned: customer text dropped, secrets redacted."""
    context: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key in _STANDARD or key.startswith("_") or key in CUSTOMER_KEYS:
            continue
        context[key] = REDACTED if _is_secret(key) else _clean(value)
    return context


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        if value and not any(c.isspace() or c in '"=' for c in value):
            return value
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, default=str)


class ContextFormatter(logging.Formatter):
    """Formats a record as ``time LEVEL logger: message key=value ...`` or as a JSON line."""

    def __init__(self, style: LogFormat = "text") -> None:
        super().__init__(datefmt="%Y-%m-%dT%H:%M:%SZ")
        self.converter = time.gmtime  # UTC stamps, whatever the host's zone
        self.style_name: LogFormat = style

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        context = record_context(record)
        stamp = self.formatTime(record, self.datefmt)
        failure = self.formatException(record.exc_info) if record.exc_info else ""
        if self.style_name == "json":
            line: dict[str, Any] = {
                "ts": stamp,
                "level": record.levelname,
                "logger": record.name,
                "msg": message,
                **context,
            }
            if failure:
                line["exc"] = failure
            return json.dumps(line, ensure_ascii=False, default=str)
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in context.items())
        out = f"{stamp} {record.levelname} {record.name}: {message}"
        if pairs:
            out += f" {pairs}"
        if failure:
            out += "\n" + failure
        return out


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the line (tests swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(
    *, style: LogFormat = "text", verbose: bool = False, stream: TextIO | None = None
) -> logging.Handler:
    """Send every log line to ``stream`` (stderr) through ``ContextFormatter``; idempotent."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_claimdesk", False):
            root.removeHandler(old)
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    handler.setFormatter(ContextFormatter(style))
    handler._claimdesk = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # Library chatter (schema migrations, HTTP access) only when asked for.
    logging.getLogger("alembic").setLevel(logging.DEBUG if verbose else logging.WARNING)
    for noisy in ("aiohttp.access", "sqlalchemy.engine", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler


def remove_logging() -> None:
    """Take out what ``configure_logging`` installed (the end of an in-process ``main``)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_claimdesk", False):
            root.removeHandler(old)
