"""Configuration: the example loads, mistakes name the file, the key and the fix."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from config.loading import (
    ConfigError,
    embedded_settings,
    example_config_text,
    load_settings,
    settings_from_mapping,
)
from tests.conftest import base_config

EXAMPLE_ENV = {
    "CLAIMDESK_SECRET_KEY": "x" * 32,
    "CLAIMDESK_API_TOKEN": "t",
    "SALES_MAIL_PASSWORD": "p",
    "WEBSITE_WEBHOOK_SECRET": "s",
}


def test_example_config_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "claimdesk.toml"
    path.write_text(example_config_text(), encoding="utf-8")
    settings = load_settings(path, env=EXAMPLE_ENV)
    assert settings.team("sales").locale == "zh-CN"
    assert settings.webhook("website") is not None
    assert settings.security.secret_key == "x" * 32  # env: reference resolved
    assert settings.team("sales").sla.claim_within == "15m"


def test_missing_env_secret_names_key_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "claimdesk.toml"
    path.write_text(example_config_text(), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    message = str(err.value)
    assert str(path) in message
    assert "security.secret_key" in message
    assert "export CLAIMDESK_SECRET_KEY=" in message


def test_file_secret(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("from-a-file-0123456789\n")
    data = base_config()
    data["security"] = {"secret_key": f"file:{secret}"}
    assert settings_from_mapping(data, env={}).security.secret_key == "from-a-file-0123456789"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["teams"][0].update(timezone="Asia/Shangai"),
            "test.toml: teams[0].timezone: unknown time zone 'Asia/Shangai'",
        ),
        (
            lambda d: d["teams"][0].update(memebers=["x"]),
            "test.toml: teams[0].memebers: unknown key",
        ),
        (
            lambda d: d["teams"][0].update(members=["ghost"]),
            "teams[0].members: 'ghost' is not a rep; add a [[reps]] entry",
        ),
        (lambda d: d["webhooks"][0].update(secret=""), "has neither 'secret' nor 'token'"),
        (
            lambda d: (
                d["teams"][0]["sla"].update(claim_within="soon")
                if "sla" in d["teams"][0]
                else d["teams"][0].update(sla={"claim_within": "soon"})
            ),
            "teams[0].sla.claim_within: 'soon' is not a duration",
        ),
        (
            lambda d: d["teams"][0].update(business_hours={"mon-fry": ["09:00-18:00"]}),
            "test.toml: teams[0].business_hours: invalid business hours entry 'mon-fry': "
            "expected a day ('mon'..'sun')",
        ),
        (
            lambda d: d["teams"][0].update(business_hours={"mon-fri": ["22:00-02:00"]}),
            "teams[0].business_hours: invalid business hours entry 'mon-fri'",
        ),
        (
            lambda d: d["teams"][0].update(business_hours={"mon": ["09:00-12:00", "11:00-13:00"]}),
            "teams[0].business_hours: overlapping business hours on mon",
        ),
        (
            lambda d: d["teams"][0].update(holidays=["2026-13-01"]),
            "test.toml: teams[0].holidays: invalid holidays entry '2026-13-01': "
            "expected 'YYYY-MM-DD'",
        ),
        (
            lambda d: d["teams"][0].update(workdays=["2026-10-09..2026-10-01"]),
            "teams[0].workdays: invalid workdays entry '2026-10-09..2026-10-01': the range ends",
        ),
        (
            lambda d: d["teams"][0].update(holidays=["2026-10-01"], workdays=["2026-10-01"]),
            "teams[0]: dates both holiday and make-up working day: 2026-10-01; remove",
        ),
        (
            lambda d: d["security"].update(session_max_age="0m"),
            "security.session_max_age: '0m' must be longer than zero",
        ),
        (
            lambda d: d["security"].update(login_link_max_age="7 days"),
            "security.login_link_max_age: '7 days' is not a duration",
        ),
        (
            lambda d: d["teams"][0].update(
                sla_by_priority={"vip": {"nudge_every": "99999999999d"}}
            ),
            "teams[0].sla_by_priority.vip.nudge_every: '99999999999d' is longer than a year",
        ),
        (
            lambda d: d["store"].update(url="mysql://x"),
            "store.url: use 'sqlite+aiosqlite:///path.db'",
        ),
        (
            lambda d: d["rules"][0]["then"].update(team="nowhere"),
            "rules[0].then.team: no team named 'nowhere'",
        ),
    ],
)
def test_mistakes_are_explained(mutate: object, expected: str) -> None:
    data = base_config()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ConfigError) as err:
        settings_from_mapping(data, source="test.toml", env={})
    assert expected in str(err.value)


def test_bad_toml_syntax_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[server\nport = 1")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load_settings(path)


def test_embedded_default_keeps_its_secret(tmp_path: Path) -> None:
    first = embedded_settings(tmp_path)
    second = embedded_settings(tmp_path)
    assert first.security.secret_key == second.security.secret_key
    assert len(first.security.secret_key) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert first.webhook("website") is not None
    assert first.server.port == 8080
    assert first.store.url.startswith("sqlite+aiosqlite:///")


def test_example_parses_as_plain_toml() -> None:
    data = tomllib.loads(example_config_text())
    assert {
        "server",
        "store",
        "security",
        "mailboxes",
        "webhooks",
        "teams",
        "reps",
        "rules",
        "templates",
        "slack",
        "dingtalk",
        "wecom",
    } <= set(data)
