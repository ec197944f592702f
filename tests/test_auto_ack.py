"""Out-of-hours automatic acknowledgement: one email per inquiry, only while the team is closed,
in the customer's language, threaded, on the timeline; a broken template sends nothing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from bot.usecases.ingest import InboundMessage, ingest
from store.engine import transaction
from store.inquiries import messages, timeline
from tests.conftest import MovableClock, base_config
from tests.support.clock import berlin
from tests.test_flow_end_to_end import FORM, post_webhook


def _teams(ack: str = "out_of_hours") -> list[dict[str, Any]]:
    teams = copy.deepcopy(base_config()["teams"])
    teams[0]["out_of_hours_ack"] = ack
    teams[0]["holidays"] = ["2026-12-25"]
    return list(teams)


async def _service(
    url: str, make_settings: Any, service_factory: Any, clock: MovableClock, **overrides: Any
) -> Any:
    service = await service_factory(
        make_settings(url, teams=_teams(), **overrides), channels={}, clock=clock
    )
    service.scheduler.settings.digests = False
    return service


async def _events(service: Any, number: int) -> list[Any]:
    async with transaction(service.ctx.sessions) as session:
        return list(await timeline(session, number))


async def test_out_of_hours_webhook_gets_one_ack_in_the_customers_language(
    db_url: str, make_settings: Any, service_factory: Any, client_factory: Any, smtp: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 23, 20, 30))  # Monday evening in Berlin
    service = await _service(db_url, make_settings, service_factory, clock)
    client = await client_factory(service, background=False)
    form = {**FORM, "language": "es"}
    first = await post_webhook(client, form, headers={"Idempotency-Key": "ack-1"})
    again = await post_webhook(client, form, headers={"Idempotency-Key": "ack-1"})
    assert first.status == 202 and again.status == 202
    number = (await first.json())["inquiry"]
    assert (await again.json())["inquiry"] == number
    await service.worker.drain()
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail.rcpt_tos == ["maria.lopez@buyer.example"]
    assert mail.message["From"].addresses[0].addr_spec == "sales@seller.test"
    assert f"[#{number}]" in mail.message["Subject"]
    assert (
        mail.message["Auto-Submitted"] == "auto-replied"
    )  # RFC 3834: automatic, no auto-reply loops
    body = mail.message.get_content()
    assert "Estimado/a Maria Lopez" in body and f"#{number}" in body
    assert "{{" not in body and "{%" not in body
    kinds = [e.kind for e in await _events(service, number)]
    assert kinds.count("auto_acknowledged") == 1
    async with transaction(service.ctx.sessions) as session:
        thread = await messages(session, number)
    out = [m for m in thread if m.direction == "out"]
    assert len(out) == 1 and out[0].delivery == "sent"
    assert out[0].message_id == mail.message["Message-ID"]
    # still waiting to be claimed: an acknowledgement is not a reply
    detail = await client.get(
        f"/api/inquiries/{number}", headers={"Authorization": "Bearer api-token-xyz"}
    )
    assert (await detail.json())["status"] == "new"


async def test_in_hours_no_ack_and_holiday_ack_threaded_without_a_name(
    sqlite_url: str, make_settings: Any, service_factory: Any, smtp: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 23, 10, 0))  # Monday morning: open
    service = await _service(sqlite_url, make_settings, service_factory, clock)
    open_hours = await ingest(
        service.ctx,
        InboundMessage(
            source="sales",
            source_kind="mail",
            dedupe_key="<in-hours@buyer.example>",
            email="in@buyer.example",
            subject="Price list",
            text="Please send your price list for LED panels.",
            message_id="<in-hours@buyer.example>",
            team="sales",
            mailbox="sales",
        ),
    )
    await service.worker.drain()
    assert smtp.messages == []
    assert "auto_acknowledged" not in [
        e.kind for e in await _events(service, open_hours.inquiry_id)
    ]

    clock.now = berlin(2026, 12, 25, 11, 0)  # a Friday, but a holiday
    closed = await ingest(
        service.ctx,
        InboundMessage(
            source="sales",
            source_kind="mail",
            dedupe_key="<holiday@buyer.example>",
            email="holiday@buyer.example",
            language="de",  # no German template: the default language's
            subject="Angebot LED",
            text="Bitte um ein Angebot für LED-Paneele.",
            message_id="<holiday@buyer.example>",
            references=("<older@buyer.example>",),
            team="sales",
            mailbox="sales",
        ),
    )
    # the customer answers the ack: it threads into the inquiry and gets no second ack
    await service.worker.drain()
    assert len(smtp.messages) == 1
    ack = smtp.messages[0].message
    assert ack["In-Reply-To"] == "<holiday@buyer.example>"
    assert "<older@buyer.example>" in ack["References"]
    body = ack.get_content()
    assert body.startswith("Hello,") and "out of the office" in body
    answer = await ingest(
        service.ctx,
        InboundMessage(
            source="sales",
            source_kind="mail",
            dedupe_key="<answer@buyer.example>",
            email="holiday@buyer.example",
            subject=f"Re: {ack['Subject']}",
            text="Thanks, waiting.",
            message_id="<answer@buyer.example>",
            in_reply_to=str(ack["Message-ID"]),
            team="sales",
            mailbox="sales",
        ),
    )
    assert answer.threaded and answer.inquiry_id == closed.inquiry_id
    await service.worker.drain()
    assert len(smtp.messages) == 1


async def test_template_error_sends_nothing_and_says_so(
    sqlite_url: str, make_settings: Any, service_factory: Any, smtp: Any, tmp_path: Path
) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "out_of_hours.j2").write_text(
        "Dear {{ customer.nickname }}, we are closed.\n", encoding="utf-8"
    )
    clock = MovableClock(berlin(2026, 11, 28, 12, 0))  # Saturday
    service = await _service(
        sqlite_url,
        make_settings,
        service_factory,
        clock,
        templates={"directory": str(tmp_path), "default_language": "en"},
    )
    result = await ingest(
        service.ctx,
        InboundMessage(
            source="website",
            source_kind="webhook",
            dedupe_key="broken-1",
            email="someone@buyer.example",
            name="Some One",
            language="en",
            subject="Samples",
            text="Can we get samples?",
            team="sales",
            mailbox="sales",
        ),
    )
    assert result.created
    await service.worker.drain()
    assert smtp.messages == []
    events = await _events(service, result.inquiry_id)
    failed = [e for e in events if e.kind == "auto_ack_failed"]
    assert len(failed) == 1 and "nickname" in failed[0].data["error"]
    assert "auto_acknowledged" not in [e.kind for e in events]
    assert [e.kind for e in events][0] == "received"


async def test_an_assigned_inquiry_out_of_hours_is_acknowledged_too(
    sqlite_url: str, make_settings: Any, service_factory: Any, smtp: Any
) -> None:
    clock = MovableClock(berlin(2026, 11, 23, 22, 0))  # Monday night: closed
    teams = _teams()
    teams[0]["assignment"] = "round_robin"
    service = await service_factory(
        make_settings(sqlite_url, teams=teams), channels={}, clock=clock
    )
    result = await ingest(
        service.ctx,
        InboundMessage(
            source="sales",
            source_kind="mail",
            dedupe_key="<night@buyer.example>",
            email="night@buyer.example",
            subject="Price list",
            text="Please send your price list for LED panels.",
            message_id="<night@buyer.example>",
            team="sales",
            mailbox="sales",
        ),
    )
    kinds = [e.kind for e in await _events(service, result.inquiry_id)]
    assert kinds[:3] == ["received", "auto_acknowledged", "assigned"], kinds
    await service.worker.drain()
    # the customer gets the acknowledgement; the assignee (no chat platform here) is told by mail
    assert sorted(m.rcpt_tos for m in smtp.messages) == [
        ["bob@seller.test"],
        ["night@buyer.example"],
    ]
