"""SMTP login with an OAuth2 access token (SASL XOAUTH2) against a real aiosmtpd on loopback.

The server's handler implements ``AUTH XOAUTH2`` the way Gmail and Microsoft 365 do: the
initial response is ``base64("user=U\\x01auth=Bearer T\\x01\\x01")``; a bad token gets a
334 challenge with a base64 JSON error, the client answers with an empty line, then 535.
The server requires authentication before MAIL, so a delivered message proves the login.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from config.schema import MailboxSettings
from connectors.channels import DeliveryError
from connectors.mail.smtp import OutgoingEmail, build_reply, check_smtp, send_email
from tests.support.postgres import free_port

pytestmark = pytest.mark.filterwarnings(
    "ignore:Requiring AUTH while not requiring TLS:UserWarning"  # loopback test server
)

TOKEN = "ya29.a0-test-access-token"


@dataclass
class XOAuth2Handler:
    """Accepts XOAUTH2 for one user and token; records who sent what."""

    user: str
    token: str
    logins: list[tuple[str, str]] = field(default_factory=list)
    delivered: list[tuple[str, bytes]] = field(default_factory=list)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) < 2:
            return AuthResult(
                success=False, handled=False, message="501 5.5.2 Initial response required"
            )
        fields = base64.b64decode(args[1]).decode().split("\x01")
        values = dict(item.split("=", 1) for item in fields if "=" in item)
        user, bearer = values.get("user", ""), values.get("auth", "")
        self.logins.append((user, bearer))
        if fields[-2:] == ["", ""] and user == self.user and bearer == f"Bearer {self.token}":
            return AuthResult(success=True, auth_data=user)
        error = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
        await server.challenge_auth(json.dumps(error))  # the client answers with an empty line
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
        )

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.delivered.append((str(session.auth_data), envelope.original_content or b""))
        return "250 OK"


@pytest.fixture
def oauth_smtp() -> Iterator[tuple[XOAuth2Handler, int]]:
    handler = XOAuth2Handler(user="sales@seller.test", token=TOKEN)
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        auth_required=True,
        auth_require_tls=False,  # loopback test only
        require_starttls=False,
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def mailbox(port: int, **overrides: Any) -> MailboxSettings:
    values: dict[str, Any] = {
        "name": "sales",
        "from_address": "sales@seller.test",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_tls": "none",
        "smtp_user": "sales@seller.test",
        "smtp_xoauth2_token": TOKEN,
        "smtp_timeout_seconds": 10,
    }
    values.update(overrides)
    return MailboxSettings(**values)


def reply(box: MailboxSettings) -> EmailMessage:
    return build_reply(
        box,
        OutgoingEmail(
            message_id="<claimdesk.1.abc@seller.test>",
            to_address="olga@buyer.example",
            to_name="Olga",
            subject="Re: quote [#1]",
            text="12 USD each.",
        ),
    )


async def test_reply_is_sent_after_xoauth2_login(oauth_smtp: tuple[XOAuth2Handler, int]) -> None:
    handler, port = oauth_smtp
    box = mailbox(port)
    await send_email(box, reply(box))
    assert handler.logins == [("sales@seller.test", f"Bearer {TOKEN}")]
    [(login, raw)] = handler.delivered
    assert login == "sales@seller.test"
    assert b"Message-ID: <claimdesk.1.abc@seller.test>" in raw


async def test_login_name_defaults_to_the_mailbox_address(
    oauth_smtp: tuple[XOAuth2Handler, int],
) -> None:
    handler, port = oauth_smtp
    box = mailbox(port, smtp_user="")
    await send_email(box, reply(box))
    assert [login for login, _ in handler.delivered] == ["sales@seller.test"]


async def test_refused_token_is_a_login_failure_that_names_no_secret(
    oauth_smtp: tuple[XOAuth2Handler, int],
) -> None:
    handler, port = oauth_smtp
    box = mailbox(port, smtp_xoauth2_token="expired-token")
    with pytest.raises(DeliveryError) as failure:
        await send_email(box, reply(box))
    assert "SMTP login failed" in str(failure.value)
    assert "535" in str(failure.value)
    assert not failure.value.permanent
    assert "expired-token" not in str(failure.value)
    assert handler.delivered == []

    problem = await check_smtp(box)
    assert problem is not None
    assert "login refused for sales@seller.test (535" in problem
    assert "smtp_xoauth2_token" in problem
    assert "expired-token" not in problem


async def test_check_smtp_logs_in_with_the_token(oauth_smtp: tuple[XOAuth2Handler, int]) -> None:
    handler, port = oauth_smtp
    assert await check_smtp(mailbox(port)) is None
    assert handler.logins == [("sales@seller.test", f"Bearer {TOKEN}")]
    assert handler.delivered == []


async def test_server_without_xoauth2_is_reported(smtp: Any) -> None:
    box = mailbox(smtp.port)  # the plain test sink offers no AUTH at all
    problem = await check_smtp(box)
    assert problem is not None
    assert "does not offer AUTH XOAUTH2" in problem
    with pytest.raises(DeliveryError, match="does not offer AUTH XOAUTH2"):
        await send_email(box, reply(box))
    assert smtp.messages == []


async def test_password_login_still_works_alongside(smtp: Any) -> None:
    box = mailbox(smtp.port, smtp_user="", smtp_xoauth2_token="")
    await send_email(box, reply(box))
    assert len(smtp.messages) == 1
