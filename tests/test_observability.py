"""What an admin sees: log lines carry their context (never customer text or secrets), and
refused webhooks and failed deliveries are counted on ``GET /metrics``."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest

from bot.logging_setup import REDACTED, ContextFormatter, configure_logging
from connectors.channels import DeliveryError
from connectors.memory import RecordingChannel
from connectors.webhooks import sign_body
from tests.conftest import WEBHOOK_SECRET

FORM = {
    "email": "maria.lopez@buyer.example",
    "name": "Maria Lopez",
    "subject": "Quote for 40HQ LED panels",
    "message": "Please quote 2,000 pcs",
    "country": "ES",
}


def lines(caplog: pytest.LogCaptureFixture, style: Any = "text") -> list[str]:
    formatter = ContextFormatter(style)
    return [formatter.format(record) for record in caplog.records]


async def post(http: Any, body: dict[str, Any], *, secret: str = WEBHOOK_SECRET) -> Any:
    raw = json.dumps(body).encode()
    return await http.post(
        "/webhooks/website",
        data=raw,
        headers={
            "Content-Type": "application/json",
            "X-Claimdesk-Signature": sign_body(secret, raw),
        },
    )


async def metric_value(http: Any, name: str, **labels: str) -> float:
    text = await (await http.get("/metrics")).text()
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(
            part.split("=", 1) for part in line[len(name) + 1 : line.index("}")].split(",") if part
        )
        if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
async def http(
    sqlite_url: str, make_settings: Any, service_factory: Any, client_factory: Any
) -> Any:
    service = await service_factory(make_settings(sqlite_url))
    return await client_factory(service)


async def test_inquiry_created_line_names_inquiry_and_team_not_the_customer(
    http: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = await post(http, FORM)
    assert response.status == 202
    number = (await response.json())["inquiry"]
    created = [line for line in lines(caplog) if "inquiry created" in line]
    assert len(created) == 1
    assert f"inquiry={number} team=sales source=website" in created[0]
    everything = "\n".join(lines(caplog)) + "\n".join(lines(caplog, "json"))
    for private in ("maria.lopez", "Maria Lopez", "40HQ", "2,000 pcs"):
        assert private not in everything
    as_json = [json.loads(line) for line in lines(caplog, "json") if "inquiry created" in line]
    assert as_json[0]["inquiry"] == number and as_json[0]["team"] == "sales"
    assert as_json[0]["level"] == "INFO" and as_json[0]["msg"] == "inquiry created"


async def test_refused_webhook_is_logged_with_reason_and_counted(
    http: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert await metric_value(http, "claimdesk_webhook_refused_total") == 0
    assert (await post(http, FORM, secret="not-the-secret-at-all-0000")).status == 401
    assert (await post(http, FORM, secret="not-the-secret-at-all-0000")).status == 401
    broken = {k: v for k, v in FORM.items() if k != "email"}
    refused = await post(http, broken)
    assert 400 <= refused.status < 500
    refused_lines = [line for line in lines(caplog) if "webhook refused" in line]
    assert len(refused_lines) == 3
    assert "webhook=website status=401 detail=" in refused_lines[0]
    assert f"status={refused.status} detail=" in refused_lines[2]
    assert (
        await metric_value(http, "claimdesk_webhook_refused_total", webhook="website", status="401")
        == 2
    )
    assert (
        await metric_value(
            http, "claimdesk_webhook_refused_total", webhook="website", status=str(refused.status)
        )
        == 1
    )
    assert (await post(http, FORM)).status == 202  # an accepted form is not a refusal
    assert (
        await metric_value(http, "claimdesk_webhook_refused_total", webhook="website", status="401")
        == 2
    )


async def test_failed_delivery_is_logged_with_error_and_counted(
    sqlite_url: str,
    make_settings: Any,
    service_factory: Any,
    client_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    chat = RecordingChannel(
        team_destinations={"sales": ["C-SALES"]},
        fail_next=[DeliveryError("channel_not_found", permanent=True)],
    )
    service = await service_factory(make_settings(sqlite_url), channels={"memory": chat})
    http = await client_factory(service, background=False)
    assert (await post(http, FORM)).status == 202
    await service.worker.drain()
    failed = [line for line in lines(caplog) if "outbox delivery failed" in line]
    assert failed and "error=channel_not_found" in failed[0] and "dead=true" in failed[0]
    assert (
        await metric_value(
            http, "claimdesk_outbox_deliveries_total", channel="memory", outcome="dead"
        )
        == 1
    )
    assert (
        await metric_value(
            http,
            "claimdesk_outbox_delivery_failures_total",
            channel="memory",
            kind="card.post",
            failure="permanent",
        )
        == 1
    )
    assert (
        await metric_value(http, "claimdesk_outbox_delivery_failures_total", failure="retry") == 0
    )


async def test_retried_delivery_is_counted_as_retry(
    sqlite_url: str, make_settings: Any, service_factory: Any, client_factory: Any
) -> None:
    chat = RecordingChannel(
        team_destinations={"sales": ["C-SALES"]}, fail_next=[DeliveryError("timeout")]
    )
    service = await service_factory(make_settings(sqlite_url), channels={"memory": chat})
    http = await client_factory(service, background=False)
    assert (await post(http, FORM)).status == 202
    for _ in range(100):  # the retry waits out its backoff: drain until it went through
        await service.worker.drain()
        if chat.posted():
            break
        await asyncio.sleep(0.05)
    assert chat.posted()
    assert (
        await metric_value(
            http, "claimdesk_outbox_delivery_failures_total", channel="memory", failure="retry"
        )
        == 1
    )
    assert (
        await metric_value(
            http, "claimdesk_outbox_deliveries_total", channel="memory", outcome="ok"
        )
        >= 1
    )


def test_secrets_are_redacted_and_addresses_keep_only_their_domain() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "smtp refused", (), None)
    record.__dict__.update(
        {
            "token": "tok-123456",
            "api_token": "abc",
            "response_code": "rc-1",
            "subject": "secret deal",
            "error": "550 <maria.lopez@buyer.example> unknown",
        }
    )
    text = ContextFormatter("text").format(record)
    assert "tok-123456" not in text and "rc-1" not in text and "secret deal" not in text
    assert f"token={REDACTED}" in text
    assert 'error="550 <…@buyer.example> unknown"' in text
    assert "maria.lopez" not in ContextFormatter("json").format(record)


def test_configure_logging_writes_extras_and_quiets_migrations() -> None:
    stream = io.StringIO()
    handler = configure_logging(style="text", stream=stream)
    try:
        logging.getLogger("alembic.runtime.migration").info("Running upgrade -> 0001")
        logging.getLogger("bot.usecases.ingest").info("inquiry created", extra={"inquiry": 7})
    finally:
        logging.getLogger().removeHandler(handler)
    out = stream.getvalue()
    assert "Running upgrade" not in out
    assert out.strip().endswith("INFO bot.usecases.ingest: inquiry created inquiry=7")
