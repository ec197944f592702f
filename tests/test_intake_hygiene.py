"""Intake hygiene (issue 8, items 4, 7, 8): what a customer or a rep types never breaks a reply,
a customer's braces are data, and a bug in routing never loses an inquiry."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlmodel import col, select

from bot.usecases.ingest import InboundMessage, ingest
from bot.usecases.replies import send_reply
from config.schema import Settings
from connectors.memory import RecordingChannel
from connectors.webhooks import InboundForm
from routing.addresses import address_problem
from routing.text_hygiene import clean_line, clean_text
from store.engine import transaction
from store.models import Inquiry, Message, Outbox, OutboxState
from tests.test_webhooks import count_inquiries, signed_post


def form(
    email: str, name: str, *, key: str, message: str = "Please quote 40 LED panels"
) -> InboundForm:
    return InboundForm(
        webhook="website",
        email=email,
        name=name,
        subject="Quote request",
        message=message,
        dedupe_key=key,
    )


def channel() -> RecordingChannel:
    return RecordingChannel(team_destinations={"sales": ["C-SALES"]})


def last_card_notes(chat: RecordingChannel) -> tuple[str, ...]:
    cards = [c.card for c in chat.calls if c.card is not None]
    assert cards, "no card was posted"
    return cards[-1].notes


async def outbox_rows(service: Any, kind: str) -> list[Outbox]:
    async with transaction(service.ctx.sessions) as session:
        rows = await session.exec(select(Outbox).where(col(Outbox.kind) == kind))
        return list(rows.all())


# -- the pure functions ---------------------------------------------------------------------


def test_one_line_fields_lose_controls_bidi_and_zero_width() -> None:
    assert clean_line("Li\r\nBcc: x@evil.test") == "Li Bcc: x@evil.test"
    assert clean_line("Ol\u200bga\u202e Pe\u2066trova\x00") == "Olga Petrova"
    assert clean_line("  a\t\tb  ") == "a b"
    assert clean_line("e\u0301") == "\u00e9"  # NFC
    assert clean_line("\ud800x") == "\ufffdx"  # a lone surrogate cannot be encoded later
    assert clean_line("x" * 500, limit=200) == "x" * 200


def test_the_message_keeps_its_newlines() -> None:
    assert clean_text("Hello\r\nsecond\rthird\u2028fourth") == "Hello\nsecond\nthird\nfourth"
    assert clean_text("a\x00b\u202ec\td") == "abc\td"
    assert clean_text("👩\u200d💻") == "👩\u200d💻"  # joiners in emoji stay


@pytest.mark.parametrize(
    "address",
    ["li@buyer.cn", "o.petrova+quotes@example.co.uk", "x_y-z@sub.example-shop.com", "a@bücher.de"],
)
def test_addresses_we_can_answer(address: str) -> None:
    assert address_problem(address) is None


@pytest.mark.parametrize(
    "address",
    [
        "",
        "li\x00@buyer.cn",
        "li@buyer.cn\r\nBcc: x@evil.test",
        "Li Wei <li@buyer.cn>",
        "li@@buyer.cn",
        "li@buyer",
        "li@-buyer.cn",
        "li@buyer..cn",
        ".li@buyer.cn",
        "li..wei@buyer.cn",
        '"li wei"@buyer.cn',
        "李@buyer.cn",
        "li@127.0.0.1",
        "x" * 65 + "@buyer.cn",
    ],
)
def test_addresses_we_refuse(address: str) -> None:
    assert address_problem(address)


# -- item 4: intake normalization, addresses, the reply's display name ---------------------


async def test_form_name_with_line_breaks_still_gets_its_reply(
    sqlite_url: str, make_settings: Any, service_factory: Any, smtp: Any
) -> None:
    """A name with CR/LF used to be stored and make every reply fail (ValueError, 12 retries)."""
    chat = channel()
    service = await service_factory(make_settings(sqlite_url), channels={"memory": chat})
    receipt = await service.intake(
        form("li@buyer.cn", "Li\r\nBcc: boss@evil.test\u202e", key="crlf")
    )
    outcome = await send_reply(
        service.ctx,
        inquiry_id=receipt.inquiry_id,
        platform="web",
        user="alice",
        subject="Re: Quote request",
        body="Dear Li,\nhere is our quote.\n",
    )
    assert outcome.ok, outcome.message
    await service.worker.drain()
    assert len(smtp.messages) == 1
    sent = smtp.messages[0]
    assert sent.rcpt_tos == ["li@buyer.cn"]
    assert sent.message["Bcc"] is None
    assert "\n" not in str(sent.message["To"]) and "\r" not in str(sent.message["To"])
    assert sent.message["To"].addresses[0].display_name == "Li Bcc: boss@evil.test"
    assert (await outbox_rows(service, "email.send"))[0].state == OutboxState.DONE.value


async def test_webhook_email_with_nul_is_refused_naming_the_field(
    sqlite_url: str, make_settings: Any, service_factory: Any, client_factory: Any
) -> None:
    service = await service_factory(make_settings(sqlite_url))
    http = await client_factory(service)
    for bad in ("li\u0000@buyer.cn", "li@buyer.cn\r\nBcc: x@evil.test", "li@buyer"):
        raw = json.dumps({"email": bad, "name": "Li", "message": "quote please"}).encode()
        response = await signed_post(http, raw)
        assert response.status == 422, bad
        body = await response.json()
        assert "email" in body["fields"]
    assert await count_inquiries(http) == 0


async def test_mail_from_a_bad_address_is_stored_and_flagged(
    sqlite_url: str, make_settings: Any, service_factory: Any
) -> None:
    """Mail cannot be refused: the message is kept, no reply can be built to the bad address,
    and the card says why."""
    chat = channel()
    service = await service_factory(make_settings(sqlite_url), channels={"memory": chat})
    result = await ingest(
        service.ctx,
        InboundMessage(
            source="sales",
            source_kind="mail",
            dedupe_key="mail:bad-from",
            email="li\x00@buyer..cn",
            name="Li\r\nWei",
            subject="Quote\r\nrequest",
            text="line one\r\nline two",
            message_id="<bad-from@buyer.cn>",
            team="sales",
            mailbox="sales",
        ),
    )
    assert result.created
    async with transaction(service.ctx.sessions) as session:
        inquiry = await session.get(Inquiry, result.inquiry_id)
        message = (
            await session.exec(select(Message).where(col(Message.inquiry_id) == result.inquiry_id))
        ).one()
    assert inquiry is not None
    assert inquiry.contact_email == ""
    assert inquiry.subject == "Quote request"
    assert message.from_name == "Li Wei"
    assert message.text == "line one\nline two"
    await service.worker.drain()
    notes = last_card_notes(chat)
    assert any(n.startswith("Check: sender address") and "buyer..cn" in n for n in notes)
    outcome = await send_reply(
        service.ctx,
        inquiry_id=result.inquiry_id,
        platform="web",
        user="alice",
        subject="",
        body="Hello",
    )
    assert not outcome.ok and outcome.code == "invalid"
    assert await outbox_rows(service, "email.send") == []


async def test_reply_and_card_use_the_name_given_in_this_inquiry(
    sqlite_url: str, make_settings: Any, service_factory: Any, smtp: Any
) -> None:
    """The first name ever stored for an address used to be reused (``To: {{ 7*7 }} <…>``)."""
    chat = channel()
    service = await service_factory(make_settings(sqlite_url), channels={"memory": chat})
    await service.intake(form("olga@buyer.ru", "{{ 7*7 }}", key="first"))
    second = await service.intake(form("olga@buyer.ru", "Olga Petrova", key="second"))
    await service.worker.drain()
    card = next(c.card for c in chat.posted() if c.card and c.card.key == str(second.inquiry_id))
    customer = next(f.value for f in card.fields if f.label == "Customer")
    assert "Olga Petrova" in customer and "7*7" not in customer
    draft_body = "Dear Olga,\nthank you.\n"
    outcome = await send_reply(
        service.ctx,
        inquiry_id=second.inquiry_id,
        platform="web",
        user="alice",
        subject="",
        body=draft_body,
    )
    assert outcome.ok, outcome.message
    await service.worker.drain()
    assert [m.message["To"].addresses[0].display_name for m in smtp.messages] == ["Olga Petrova"]


async def test_what_the_rep_typed_is_checked_before_queueing(
    sqlite_url: str, make_settings: Any, service_factory: Any
) -> None:
    service = await service_factory(make_settings(sqlite_url), channels={"memory": channel()})
    receipt = await service.intake(form("li@buyer.cn", "Li", key="rep-input"))
    for subject, body, words in (
        ("Re: x\r\nBcc: all@evil.test", "Hello", "subject must be one line"),
        ("Re: x", "Hello\x00there", "control character U+0000"),
        ("Re: \u202ex", "Hello", "U+202E"),
    ):
        outcome = await send_reply(
            service.ctx,
            inquiry_id=receipt.inquiry_id,
            platform="web",
            user="alice",
            subject=subject,
            body=body,
        )
        assert not outcome.ok and outcome.code == "invalid"
        assert "cannot be sent" in outcome.message and words in outcome.message
    assert await outbox_rows(service, "email.send") == []


async def test_an_email_that_cannot_be_built_fails_at_once_and_the_rep_is_told(
    sqlite_url: str, make_settings: Any, service_factory: Any, smtp: Any
) -> None:
    """A reply queued with a bad recipient (e.g. by an older version) is a permanent failure:
    one attempt, shown on the card, a direct message to its author; no retries."""
    chat = channel()
    service = await service_factory(make_settings(sqlite_url), channels={"memory": chat})
    receipt = await service.intake(form("li@buyer.cn", "Li", key="unbuildable"))
    outcome = await send_reply(
        service.ctx,
        inquiry_id=receipt.inquiry_id,
        platform="web",
        user="alice",
        subject="Re: x",
        body="Hello",
    )
    assert outcome.ok
    async with transaction(service.ctx.sessions) as session:
        message = (
            await session.exec(
                select(Message).where(
                    col(Message.inquiry_id) == receipt.inquiry_id, col(Message.direction) == "out"
                )
            )
        ).one()
        message.to_address = "li\r\n@buyer.cn"
        session.add(message)
    await service.worker.drain()
    assert smtp.messages == []
    [row] = await outbox_rows(service, "email.send")
    assert row.state == OutboxState.DEAD.value
    assert row.attempts <= 1
    assert "recipient address" in row.last_error
    notes = last_card_notes(chat)
    assert any("Reply delivery failed" in n and "recipient address" in n for n in notes)
    dms = chat.posted("send_direct")
    assert [(d.destination, f"#{receipt.inquiry_id}" in d.text) for d in dms] == [("alice", True)]


# -- item 7: the customer's braces are data --------------------------------------------------


async def test_a_reply_quoting_the_customers_braces_is_sent_as_written(
    sqlite_url: str, make_settings: Any, service_factory: Any, smtp: Any
) -> None:
    service = await service_factory(make_settings(sqlite_url), channels={"memory": channel()})
    receipt = await service.intake(
        form(
            "dev@buyer.io", "Dev", key="braces", message="Your site shows {{ price }} and {% if %}"
        )
    )
    body = "Hello,\n> Your site shows {{ price }} and {% if %}\nSorry, fixed now: 12.50 EUR.\n"
    outcome = await send_reply(
        service.ctx,
        inquiry_id=receipt.inquiry_id,
        platform="web",
        user="alice",
        subject="",
        body=body,
    )
    assert outcome.ok, outcome.message
    await service.worker.drain()
    [sent] = smtp.messages
    assert "{{ price }} and {% if %}" in sent.message.get_content()


# -- item 8: a routing failure never loses an inquiry ----------------------------------------


def broken_calendar(settings: Settings) -> Settings:
    """The team's calendar as a config from before validation existed: it raises at runtime.
    ``model_copy`` skips validation, like a config built in code would."""
    teams = tuple(
        team.model_copy(update={"business_hours": {"mon-fry": ["09:00-18:00"]}})
        if team.name == "sales"
        else team
        for team in settings.teams
    )
    return settings.model_copy(update={"teams": teams})


async def test_a_routing_failure_still_stores_the_inquiry_flagged(
    sqlite_url: str,
    make_settings: Any,
    service_factory: Any,
    client_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    chat = channel()
    service = await service_factory(
        broken_calendar(make_settings(sqlite_url)), channels={"memory": chat}
    )
    http = await client_factory(service, background=False)
    raw = json.dumps({"email": "li@buyer.cn", "name": "Li", "message": "need 40 panels"}).encode()
    with caplog.at_level(logging.ERROR, logger="bot.usecases.ingest"):
        response = await signed_post(http, raw)
    assert response.status == 202
    number = (await response.json())["inquiry"]
    assert any("routing failed" in r.getMessage() for r in caplog.records)
    async with transaction(service.ctx.sessions) as session:
        inquiry = await session.get(Inquiry, number)
    assert inquiry is not None
    assert inquiry.team == "sales" and inquiry.status == "new"
    assert inquiry.claim_due_at is not None
    await service.worker.drain()
    notes = last_card_notes(chat)
    assert any("routing failed" in n and "mon-fry" in n for n in notes)
    # the same body again is still a duplicate of the stored inquiry, not a second one
    again = await signed_post(http, raw)
    assert again.status == 202 and (await again.json())["inquiry"] == number
