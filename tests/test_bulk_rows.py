"""``store.bulk.column_values`` inserts exactly what the model object would (issue 14: the
intake's insert-only rows are built without SQLModel objects)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import SQLModel

from store.bulk import column_values, row_values
from store.models import Contact, ContactEmail, Event, Message, WebhookKey

NOW = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)

CASES: list[tuple[type[SQLModel], dict[str, Any]]] = [
    (
        Message,
        dict(
            inquiry_id=7,
            direction="in",
            channel="webhook",
            message_id="",
            in_reply_to="",
            references="",
            from_address="buyer@importer.example",
            from_name="Buyer",
            sender="",
            reply_to="",
            headers={"X-Form": "website"},
            subject="Quotation: LED panels",
            text="Please quote 100 pcs.",
            html="",
            attachments=[],
            created_at=NOW,
        ),
    ),
    (Message, dict(inquiry_id=7, text="only the required fields", created_at=NOW)),
    (Contact, dict(name="Li Wei", company="", country="CN", language="zh", phone="", tags=[])),
    (Contact, dict(name="defaults", created_at=NOW)),
    (ContactEmail, dict(address="buyer@importer.example", contact_id=3)),
    (
        WebhookKey,
        dict(webhook="website", key="k1", body_sha256="ab" * 32, created_at=NOW, inquiry_id=9),
    ),
    (
        Event,
        dict(
            inquiry_id=9,
            team="sales",
            at=NOW,
            actor="customer",
            kind="received",
            before="",
            after="new",
            data={"rule": "eu", "explain": ["matched"]},
        ),
    ),
    (Event, dict(inquiry_id=9, team="sales", at=NOW, actor="system", kind="nudged")),
]


@pytest.mark.parametrize(("model", "values"), CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_column_values_are_what_the_object_would_insert(
    model: type[SQLModel], values: dict[str, Any]
) -> None:
    assert column_values(model, **values) == row_values(model(**values))


def test_defaults_made_by_a_factory_are_not_shared_between_rows() -> None:
    _table, first = column_values(Contact, name="a", created_at=NOW)
    _table, second = column_values(Contact, name="b", created_at=NOW)
    assert first["tags"] == second["tags"] == []
    assert first["tags"] is not second["tags"]


def test_an_unknown_column_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="adress"):
        column_values(ContactEmail, adress="typo@example.com", contact_id=1)
