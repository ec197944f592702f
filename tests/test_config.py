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
            "test.toml: rules[0].then.team (rule 'chinese'): no team named 'nowhere'; "
            "known teams: sales, asia",
        ),
    ],
)
def test_mistakes_are_explained(mutate: object, expected: str) -> None:
    data = base_config()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ConfigError) as err:
        settings_from_mapping(data, source="test.toml", env={})
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d.update(server={"port": "eighty"}),
            "test.toml: server.port: must be a whole number, e.g. 8080 (without quotes); "
            "'eighty' is not",
        ),
        (
            lambda d: d.update(server={"port": 70000}),
            "test.toml: server.port: must be at most 65535; 70000 is too big",
        ),
        (
            lambda d: d.update(server={"log_format": "xml"}),
            "test.toml: server.log_format: must be one of 'text' or 'json'; 'xml' is not",
        ),
        (
            lambda d: d["teams"][0].update(members="alice"),
            'test.toml: teams[0].members: must be a list in brackets, e.g. ["a", "b"]',
        ),
        (
            lambda d: d["rules"][0].update(when={"country": "CN"}),
            "test.toml: rules[0].when.country (rule 'chinese'): must be a list in brackets",
        ),
    ],
)
def test_validation_wording_is_plain(mutate: object, expected: str) -> None:
    data = base_config()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ConfigError) as err:
        settings_from_mapping(data, source="test.toml", env={})
    assert expected in str(err.value)
    assert "Input should be" not in str(err.value)


def test_every_missing_variable_and_wrong_case_reference_in_one_run() -> None:
    data = base_config()
    data["security"]["secret_key"] = "env:CD_SECRET"
    data["webhooks"][0]["secret"] = "env:CD_HOOK"
    data["security"]["api_tokens"] = ["ENV:CD_API"]
    data["mailboxes"][0]["smtp_password"] = "File:/run/secrets/smtp"
    with pytest.raises(ConfigError) as err:
        settings_from_mapping(data, source="test.toml", env={})
    lines = str(err.value).splitlines()
    assert "test.toml: security.secret_key: environment variable CD_SECRET is not set" in lines[0]
    assert any("webhooks[0].secret: environment variable CD_HOOK is not set" in x for x in lines)
    assert any(
        "security.api_tokens[0]: 'ENV:' is not a secret reference (they are lower case); "
        "write env:CD_API" in x
        for x in lines
    )
    assert any("mailboxes[0].smtp_password: 'File:'" in x for x in lines)
    assert len(lines) == 4


def test_several_reference_problems_are_listed_line_by_line() -> None:
    data = base_config()
    data["default_team"] = "nobody"
    data["rules"][0]["then"]["team"] = "nowhere"
    with pytest.raises(ConfigError) as err:
        settings_from_mapping(data, source="test.toml", env={})
    lines = str(err.value).splitlines()
    assert "test.toml: default_team: no team named 'nobody'; known teams: sales, asia" in lines
    assert any(x.startswith("test.toml: rules[0].then.team (rule 'chinese')") for x in lines)


def test_missing_template_directory_names_key_and_path(tmp_path: Path) -> None:
    data = base_config()
    data["templates"] = {"directory": str(tmp_path / "replies")}
    with pytest.raises(ConfigError) as err:
        settings_from_mapping(data, source="test.toml", env={})
    assert f"test.toml: templates.directory: no such directory {tmp_path / 'replies'}" in str(
        err.value
    )
    (tmp_path / "replies").mkdir()
    assert settings_from_mapping(data, source="test.toml", env={}).templates.directory


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


def test_team_and_rep_lookups_follow_a_copy_with_other_teams_and_reps() -> None:
    settings = settings_from_mapping(base_config())
    assert settings.team("sales").name == "sales" and settings.rep("alice") is not None
    fewer = settings.model_copy(
        update={
            "teams": settings.teams[1:],
            "reps": tuple(r for r in settings.reps if r.id != "alice"),
        }
    )
    with pytest.raises(KeyError):
        fewer.team("sales")
    assert fewer.rep("alice") is None
    assert settings.team("sales").name == "sales"  # the original still answers from its own index
    assert settings == settings_from_mapping(base_config())  # lookups leave equality alone
