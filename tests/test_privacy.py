"""Data-protection: erasure removes what identifies a person and keeps the statistics; export is complete."""

from __future__ import annotations

import json
from typing import Any

from bot.usecases.privacy import ERASED, erase_person, export_inquiries
from bot.usecases.replies import send_reply
from connectors.webhooks import InboundForm


async def test_erase_then_export(db_url: str, make_settings: Any, service_factory: Any) -> None:
    service = await service_factory(make_settings(db_url))
    ctx = service.ctx
    mine = await service.intake(
        InboundForm(
            webhook="website",
            email="Jan@Kowalski.example",
            name="Jan Kowalski",
            subject="Offer for Kowalski Sp. z o.o.",
            message="Call me at +48 600 000 000",
            company="Kowalski",
            dedupe_key="a",
        )
    )
    other = await service.intake(
        InboundForm(
            webhook="website",
            email="someone@else.example",
            name="Else",
            subject="Other",
            message="Keep me",
            dedupe_key="b",
        )
    )
    assert (
        await send_reply(
            ctx,
            inquiry_id=mine.inquiry_id,
            platform="web",
            user="alice",
            subject="Re",
            body="Dear Jan, our offer",
        )
    ).ok

    await service.worker.drain()  # the reply is accepted by the mail server: first reply counted
    report = await erase_person(ctx, "jan@kowalski.example")
    assert (report.contacts, report.inquiries, report.messages) == (1, 1, 2)

    lines = [json.loads(line) async for line in export_inquiries(ctx)]
    by_id = {item["id"]: item for item in lines}
    assert set(by_id) == {mine.inquiry_id, other.inquiry_id}
    erased = by_id[mine.inquiry_id]
    text = json.dumps(erased, ensure_ascii=False)
    for secret in ("Kowalski", "Jan", "+48", "jan@kowalski.example", "Dear Jan"):
        assert secret not in text, secret
    assert erased["status"] == "replied"  # the working record stays true
    assert erased["first_reply_at"] is not None
    assert erased["timeline"][-1]["kind"] == "erased"
    assert all(m["text"] == ERASED for m in erased["messages"])
    assert by_id[other.inquiry_id]["messages"][0]["text"] == "Keep me"

    # the address is gone: a new message from it starts a new contact
    again = await erase_person(ctx, "jan@kowalski.example")
    assert again.contacts == 0
