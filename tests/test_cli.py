"""The claimdesk command: init, check, web-link, route --explain, and serve on the embedded default."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bot.cli import main
from tests.support.postgres import free_port
from tests.test_config import EXAMPLE_ENV


def test_init_then_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "claimdesk.toml"
    assert main(["init", str(target)]) == 0
    assert target.exists()
    assert main(["init", str(target)]) == 1  # no silent overwrite
    for key, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    assert main(["--config", str(target), "check", "--no-connect"]) == 0
    out = capsys.readouterr().out
    assert "config OK" in out and "1 team(s)" in out


def test_check_reports_config_errors_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[teams]]\nname = "s"\ntimezone = "Mars/Olympus"\n')
    assert main(["--config", str(bad), "check"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: teams[0].timezone: unknown time zone 'Mars/Olympus'" in err


def test_check_warns_about_shadowed_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        'default_team = "s"\n[security]\nsecret_key = "0123456789abcdef0123"\n'
        '[[teams]]\nname = "s"\n'
        '[[rules]]\nname = "any-led"\nwhen = { keywords = ["led", "lamp"] }\nthen = { priority = "high" }\n'
        '[[rules]]\nname = "led-only"\nwhen = { keywords = ["led"], country = ["US"] }\nthen = { priority = "vip" }\n'
    )
    assert main(["--config", str(path), "check", "--no-connect"]) == 1
    assert "rules[1] 'led-only' is shadowed by rules[0] 'any-led'" in capsys.readouterr().out


def test_route_explain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    body = tmp_path / "form.json"
    body.write_text(
        json.dumps(
            {
                "email": "a@b.example",
                "subject": "Need 3 container loads",
                "message": "Please quote 3x40HQ of LED panels",
                "country": "US",
            }
        )
    )
    config = tmp_path / "c.toml"
    config.write_text(
        '[security]\nsecret_key = "0123456789abcdef0123"\n[[teams]]\nname = "s"\n[[teams]]\nname = "bulk"\n'
        '[[rules]]\nname = "germany"\nwhen = { country = ["DE"] }\nthen = { team = "s" }\n'
        '[[rules]]\nname = "containers"\nwhen = { keywords = ["container"] }\nthen = { team = "bulk", priority = "high" }\n'
    )
    assert main(["--config", str(config), "route", "--explain", str(body)]) == 0
    out = capsys.readouterr().out
    assert "rules[0] 'germany': no (when.country: no (country 'US'))" in out
    assert "rules[1] 'containers': MATCH" in out
    assert "=> team 'bulk', priority high" in out
    assert "country: US (form: US)" in out
    assert "language: en (detected)" in out
    assert "spam: no, score 0" in out


def test_route_explain_inline_json_shows_spam_reasons_and_assignment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "c.toml"
    config.write_text(
        '[security]\nsecret_key = "0123456789abcdef0123"\n'
        '[[teams]]\nname = "s"\nmembers = ["ann", "bob"]\nassignment = "least_open"\n'
        '[[reps]]\nid = "ann"\nname = "Ann"\nlanguages = ["de"]\n'
        '[[reps]]\nid = "bob"\nname = "Bob"\nlanguages = ["en"]\n'
    )
    body = json.dumps(
        {
            "email": "k@firma.de",
            "subject": "Angebot",
            "message": "Bitte um ein Angebot für 300 Stück.",
            "phone": "+49 30 1234567",
        }
    )
    assert main(["--config", str(config), "route", "--explain", body]) == 0
    out = capsys.readouterr().out
    assert "country: DE (phone: +49 30 1234567)" in out
    assert "language: de (detected)" in out
    assert "assignment: ann by least_open" in out
    spam = json.dumps(
        {
            "email": "x@seo.example",
            "subject": "Rank your website",
            "message": "We offer SEO services and backlinks to get you on the first page of Google. Click here.",
        }
    )
    assert main(["--config", str(config), "route", "--explain", spam]) == 0
    out = capsys.readouterr().out
    assert "spam: YES" in out and "bulk-mail phrases" in out
    assert "assignment:" not in out


def test_web_link_is_accepted_by_the_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["web-link", "demo"]) == 0
    link = capsys.readouterr().out.strip()
    assert link.startswith("http://127.0.0.1:8080/web/login?token=")
    assert main(["web-link", "nobody"]) == 1


def test_serve_runs_the_embedded_default(tmp_path: Path) -> None:
    """`claimdesk serve` with no config: SQLite file, web inbox, generic webhook, login links printed."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CLAIMDESK_CONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "curl -X POST" in line:
                break
        output = "".join(lines)
        assert f"claimdesk is running: http://127.0.0.1:{port}/web/" in output
        assert "sign in as demo: http://127.0.0.1:" in output
        token = output.split("X-Claimdesk-Token: ")[1].split("'")[0]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/webhooks/website",
            method="POST",
            data=json.dumps({"email": "b@example.com", "message": "hello, price please"}).encode(),
            headers={"Content-Type": "application/json", "X-Claimdesk-Token": token},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
            assert json.loads(response.read())["inquiry"] == 1001
        assert (tmp_path / ".claimdesk" / "claimdesk.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0


def test_check_logs_in_to_smtp(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], smtp: object
) -> None:
    port = smtp.port  # type: ignore[attr-defined]
    closed = free_port()
    path = tmp_path / "c.toml"
    path.write_text(
        '[security]\nsecret_key = "0123456789abcdef0123"\n[[teams]]\nname = "s"\n'
        f'[[mailboxes]]\nname = "good"\nfrom_address = "a@b.example"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\nsmtp_tls = "none"\n'
        f'[[mailboxes]]\nname = "down"\nfrom_address = "a@b.example"\nsmtp_host = "127.0.0.1"\nsmtp_port = {closed}\nsmtp_tls = "none"\nsmtp_timeout_seconds = 3\n'
    )
    assert main(["--config", str(path), "check"]) == 1
    out = capsys.readouterr().out
    assert f"ok: mailbox good: SMTP 127.0.0.1:{port}" in out
    assert f"problem: mailbox down: SMTP 127.0.0.1:{closed}: cannot connect" in out
