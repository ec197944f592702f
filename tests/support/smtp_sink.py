"""A real SMTP server for the tests (aiosmtpd) that keeps every message it receives."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.postgres import free_port


@dataclass
class Received:
    """One delivered message: envelope and parsed content."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


@dataclass
class SinkHandler:
    """aiosmtpd handler that stores messages; can refuse the next N with a code."""

    messages: list[Received] = field(default_factory=list)
    refuse_next: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse_next:
            return self.refuse_next.pop(0)
        raw = envelope.original_content or b""
        parsed: Any = email.message_from_bytes(raw, policy=email.policy.default)
        self.messages.append(
            Received(str(envelope.mail_from), list(envelope.rcpt_tos), parsed, raw)
        )
        return "250 OK"


class SmtpSink:
    """Starts aiosmtpd on 127.0.0.1 on a free port."""

    def __init__(self) -> None:
        self.handler = SinkHandler()
        self._port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self._port)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages
