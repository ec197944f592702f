"""Shared fixtures: a test configuration, the database backends (SQLite and a real PostgreSQL),
a real SMTP server, and a running claimdesk service with an HTTP client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Service
from bot.runtime.outbox_worker import WorkerSettings
from config.loading import settings_from_mapping
from config.schema import Settings
from connectors.channels import ChatChannel
from tests.support.postgres import PostgresServer, find_bindir
from tests.support.smtp_sink import SmtpSink

IN_CI = os.environ.get("CI", "").lower() == "true"
SECRET = "test-secret-key-0123456789abcdef"
WEBHOOK_SECRET = "hook-secret-42"
API_TOKEN = "api-token-xyz"


def need(condition: bool, reason: str) -> None:
    """Skip locally when a real dependency is missing; in CI that is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this test must run)")
    pytest.skip(reason)


def base_config(smtp_port: int = 1, db_url: str = "sqlite+aiosqlite:///:memory:") -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": 8080, "public_url": "http://claimdesk.test"},
        "store": {"url": db_url},
        "security": {"secret_key": SECRET, "api_tokens": [API_TOKEN]},
        "mailboxes": [
            {
                "name": "sales",
                "from_address": "sales@seller.test",
                "from_name": "Seller Co",
                "team": "sales",
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp_port,
                "smtp_tls": "none",
                "smtp_timeout_seconds": 5,
            }
        ],
        "webhooks": [
            {"name": "website", "secret": WEBHOOK_SECRET, "team": "sales", "mailbox": "sales"},
            {
                "name": "shop",
                "token": "shop-token",
                "team": "sales",
                "fields": {
                    "email": "buyer.email",
                    "name": "buyer.name",
                    "message": "body",
                    "subject": "title",
                    "country": "buyer.country",
                },
            },
        ],
        "teams": [
            {
                "name": "sales",
                "display_name": "Sales EU",
                "locale": "en",
                "timezone": "Europe/Berlin",
                "members": ["alice", "bob"] + [f"rep{i}" for i in range(20)],
                "leads": ["lena"],
                "managers": ["max"],
                "mailbox": "sales",
            },
            {
                "name": "asia",
                "display_name": "亚洲组",
                "locale": "zh-CN",
                "members": ["chen"],
                "mailbox": "sales",
            },
        ],
        "reps": [
            {"id": "alice", "name": "Alice", "email": "alice@seller.test", "slack_id": "UALICE"},
            {"id": "bob", "name": "Bob", "email": "bob@seller.test"},
            {"id": "lena", "name": "Lena Lead", "email": "lena@seller.test"},
            {"id": "max", "name": "Max Manager", "email": "max@seller.test"},
            {"id": "chen", "name": "陈", "email": "chen@seller.test"},
        ]
        + [{"id": f"rep{i}", "name": f"Rep {i}"} for i in range(20)],
        "rules": [
            {"name": "chinese", "when": {"language": ["zh"]}, "then": {"team": "asia"}},
            {
                "name": "containers",
                "when": {"keywords": ["container", "集装箱"]},
                "then": {"priority": "high", "tags": ["bulk"]},
            },
        ],
    }


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer | None]:
    if find_bindir() is None:
        yield None
        return
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'claimdesk.db'}"
    server = request.getfixturevalue("postgres")
    need(
        server is not None, "PostgreSQL server binaries not installed (apt-get install postgresql)"
    )
    assert server is not None
    return server.new_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'claimdesk.db'}"


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


class MovableClock:
    """A clock the test moves by hand (no sleeping for real minutes)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def make_settings(smtp: SmtpSink) -> Callable[..., Settings]:
    def build(db_url: str, **overrides: Any) -> Settings:
        data = base_config(smtp.port, db_url)
        data.update(overrides)
        return settings_from_mapping(data, source="test.toml", env={})

    return build


FAST_WORKER = WorkerSettings(
    lease_seconds=30, poll_seconds=0.05, base_backoff=0.05, max_backoff=0.5, max_attempts=4
)


@pytest.fixture
async def service_factory() -> AsyncIterator[Callable[..., Any]]:
    made: list[Service] = []

    async def build(
        settings: Settings,
        *,
        channels: dict[str, ChatChannel] | None = None,
        clock: Any = None,
        worker: WorkerSettings | None = None,
    ) -> Service:
        kwargs: dict[str, Any] = {
            "channels": channels,
            "worker_settings": worker or FAST_WORKER,
            "feed_poll_seconds": 0.1,
        }
        if clock is not None:
            kwargs["clock"] = clock
        service = await Service.create(settings, **kwargs)
        made.append(service)
        return service

    yield build
    for service in made:
        await service.close()


@pytest.fixture
async def client_factory() -> AsyncIterator[Callable[..., Any]]:
    clients: list[TestClient[Any, Any]] = []

    async def build(service: Service, *, background: bool = True) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(
            TestServer(service.web_app(background=background), host="127.0.0.1")
        )
        await client.start_server()
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.close()


@pytest.fixture
async def fake_slack() -> AsyncIterator[Any]:
    """The fake Slack Web API with the sales channel and Alice (modules needing other
    channels or users define their own ``fake_slack``)."""
    from tests.fakes.slack_api import FakeSlack
    from tests.support.slack import CHANNEL

    fake = FakeSlack(
        channels={CHANNEL: {"name": "sales", "is_member": True}},
        users={"UALICE": {"email": "alice@seller.test"}},
    )
    await fake.start()
    yield fake
    await fake.stop()
