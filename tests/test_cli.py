"""The claimdesk command: init, check, web-link, route --explain, and serve on the embedded default."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bot.cli import main
from config.loading import embedded_settings, find_demo_dir
from connectors.web.auth import Signer
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
    assert "assignment: ann (least_open)" in out
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


def test_web_link_uses_the_servers_demo_key_from_any_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLAIMDESK_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    # no demo server ever ran here: no link signed with a key nobody checks
    assert main(["web-link", "demo"]) == 2
    err = capsys.readouterr().err
    assert "no demo signing key at" in err and "claimdesk serve" in err
    assert not (tmp_path / ".claimdesk").exists()

    server = embedded_settings(find_demo_dir())  # what `claimdesk serve` does here
    signer = Signer(server.security.secret_key, login_max_age=600, session_max_age=600)
    elsewhere = tmp_path / "reports" / "2026"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert main(["web-link", "demo"]) == 0
    captured = capsys.readouterr()
    link = captured.out.strip()
    assert link.startswith("http://127.0.0.1:8080/web/login?token=")
    assert signer.check_login_token(link.split("token=")[1]) == "demo"
    assert f"signed with the demo key {tmp_path / '.claimdesk' / 'secret_key'}" in captured.err
    assert main(["web-link", "nobody"]) == 1
    capsys.readouterr()

    # serving on another port: the link follows it (or --port / --base-url)
    (tmp_path / ".claimdesk" / "serving.json").write_text(
        json.dumps({"base_url": "http://127.0.0.1:9191", "pid": os.getpid()})
    )
    assert main(["web-link", "lead"]) == 0
    assert capsys.readouterr().out.startswith("http://127.0.0.1:9191/web/login?token=")
    assert main(["web-link", "demo", "--port", "8123"]) == 0
    assert capsys.readouterr().out.startswith("http://127.0.0.1:8123/web/login?token=")
    assert main(["web-link", "demo", "--base-url", "https://desk.example/"]) == 0
    assert capsys.readouterr().out.startswith("https://desk.example/web/login?token=")


def test_serve_on_a_busy_port_says_what_holds_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLAIMDESK_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in err
    assert "another program holds it" in err
    assert f"claimdesk serve --port {port + 1}" in err
    assert "Traceback" not in err


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
            if "replies go to SMTP" in line:
                break
        output = "".join(lines)
        assert f"claimdesk is running: http://127.0.0.1:{port}/web/" in output
        # the SMTP hint names this interpreter, which has aiosmtpd (a bare python may not)
        assert f"run: {sys.executable} -m aiosmtpd -n -l 127.0.0.1:1025" in output
        assert "sign in as demo (rep): http://127.0.0.1:" in output
        assert "sign in as lead (lead): http://127.0.0.1:" in output
        token = output.split("X-Claimdesk-Token: ")[1].split("'")[0]
        key = (tmp_path / ".claimdesk" / "secret_key").read_text()
        assert token not in key and key[:8] not in token  # derived, not a slice of the key
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
        # the start-up heap is frozen out of the collector's full passes (a ~110 ms stall
        # of the event loop each, bot/runtime/heap.py)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        frozen = metrics.split("\nclaimdesk_gc_frozen_objects ")[1].split()[0]
        assert float(frozen) > 50_000, frozen

        # a second `serve` on the same port says claimdesk already runs there
        second = subprocess.run(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}: the port is in use; claimdesk is already" in (
            second.stderr
        )
        assert f"claimdesk serve --port {port + 1}" in second.stderr
        assert "Traceback" not in second.stderr
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


# -- --config before or after the subcommand; alembic's lines at debug ------------------

_REPO = Path(__file__).resolve().parents[1]


def _cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CLAIMDESK_CONFIG"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH", "")) if p)
    return env


def _own_config(tmp_path: Path, port: int = 8080) -> Path:
    """A config nothing else has: team "alpha", its own database and base URL, one rule."""
    path = tmp_path / "own.toml"
    path.write_text(
        '[security]\nsecret_key = "0123456789abcdef0123"\n'
        f'[server]\nport = {port}\npublic_url = "http://own.example"\n'
        f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path / "own.db"}"\n'
        '[[reps]]\nid = "ana"\nname = "Ana"\n'
        '[[teams]]\nname = "alpha"\nmembers = ["ana"]\n'
        '[[rules]]\nname = "germany"\nwhen = { country = ["DE"] }\nthen = { team = "alpha" }\n'
    )
    return path


def _subcommands() -> set[str]:
    from bot.cli import build_parser

    return {
        name
        for action in build_parser()._actions
        if action.choices and action.dest == "command"
        for name in action.choices
    }


@pytest.mark.parametrize("after", [False, True], ids=["config-before", "config-after"])
def test_config_is_accepted_before_and_after_every_subcommand(
    after: bool,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLAIMDESK_CONFIG", raising=False)
    config = _own_config(tmp_path)
    body = tmp_path / "form.json"
    body.write_text(json.dumps({"email": "a@b.example", "message": "hi", "country": "DE"}))

    def run(*args: str) -> tuple[int, str]:
        argv = [*args, "--config", str(config)] if after else ["--config", str(config), *args]
        code = main(argv)
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    tried: set[str] = set()
    code, out = run("init", str(tmp_path / "new.toml"))
    assert code == 0 and (tmp_path / "new.toml").exists()
    tried.add("init")
    code, out = run("check", "--no-connect")
    assert code == 0 and f"config OK ({config})" in out and "1 team(s), 1 rep(s)" in out
    tried.add("check")
    code, out = run("migrate")
    assert code == 0 and (tmp_path / "own.db").exists()  # the config's database, not the demo's
    assert not (tmp_path / ".claimdesk").exists()
    tried.add("migrate")
    code, out = run("web-link", "ana")
    assert code == 0 and out.startswith("http://own.example/web/login?token=")
    tried.add("web-link")
    code, out = run("export", "--team", "alpha")
    assert code == 0 and "exported 0 inquiries" in out
    tried.add("export")
    code, out = run("erase", "--email", "nobody@example.com", "--yes")
    assert code == 1 and "no contact with address nobody@example.com" in out
    tried.add("erase")
    code, out = run("digest", "--team", "alpha")  # the embedded demo has no team "alpha"
    assert code == 0, out
    tried.add("digest")
    code, out = run("route", "--explain", str(body))
    assert code == 0 and "rules[0] 'germany': MATCH" in out and "=> team 'alpha'" in out
    tried.add("route")
    assert not (tmp_path / ".claimdesk").exists()

    # serve runs until stopped: the real entry point in a process of its own, on a port the
    # system picks (the config's public_url shows it was read)
    config = _own_config(tmp_path, port=0)
    args = ["serve", "--config", str(config)] if after else ["--config", str(config), "serve"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=tmp_path,
        env=_cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline()]
        while lines[-1] and "claimdesk is running" not in lines[-1]:
            lines.append(proc.stdout.readline())
        assert "claimdesk is running: http://own.example/web/" in lines[-1], "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    tried.add("serve")
    assert tried == _subcommands()


def test_an_option_after_the_subcommand_wins_and_none_keeps_the_default() -> None:
    from bot.cli import build_parser

    parser = build_parser()
    assert (
        parser.parse_args(["--config", "a.toml", "check", "--config", "b.toml"]).config == "b.toml"
    )
    assert parser.parse_args(["--config", "a.toml", "migrate"]).config == "a.toml"
    assert parser.parse_args(["migrate"]).config == ""
    assert parser.parse_args(["migrate", "-v"]).verbose is True
    assert parser.parse_args(["migrate"]).verbose is False


@pytest.mark.parametrize("command", [["migrate"], ["check", "--no-connect"]])
def test_alembic_lines_are_debug_only(command: list[str], tmp_path: Path) -> None:
    """`claimdesk migrate` / `check` print no alembic INFO line; with -v they show at DEBUG."""
    config = _own_config(tmp_path)

    def run(*extra: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", *command, "--config", str(config), *extra],
            cwd=tmp_path,
            env=_cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout + done.stderr

    quiet = run()
    assert "config OK" in quiet or "database schema is up to date" in quiet
    assert [line for line in quiet.splitlines() if " alembic." in line] == []
    if command == ["migrate"]:
        assert "database schema is up to date" in quiet
        (tmp_path / "own.db").unlink()  # so that -v runs the migration again
        verbose = run("-v")
        assert "DEBUG alembic.runtime.migration: Running upgrade" in verbose
        assert "INFO alembic" not in verbose


def _claimdesk(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CLAIMDESK_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_commands_on_a_fresh_database_print_only_their_own_lines(tmp_path: Path) -> None:
    check = _claimdesk(tmp_path, "check", "--no-connect")
    assert check.returncode == 0, check.stderr
    assert check.stderr == ""
    assert check.stdout.splitlines() == [
        "config OK (embedded default): 1 team(s), 3 rep(s), 1 mailbox(es), 1 webhook(s), 0 rule(s)"
    ]
    digest = _claimdesk(tmp_path, "digest", "--team", "sales")  # migrates the new database
    assert digest.returncode == 0, digest.stderr
    assert digest.stderr == ""
    assert digest.stdout.startswith("Daily digest · Sales · ")
    for noise in ("alembic", "Running upgrade", "Context impl", "migrated"):
        assert noise not in digest.stdout
    verbose = _claimdesk(tmp_path, "-v", "export")
    assert "DEBUG alembic.runtime.migration" in verbose.stderr  # still there when asked for


def test_digest_refuses_a_bad_date_in_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLAIMDESK_CONFIG", raising=False)
    with pytest.raises(SystemExit) as stopped:
        main(["digest", "--team", "sales", "--date", "2026-02-30"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "'2026-02-30' is not a date; write it as YYYY-MM-DD" in err
    assert "Traceback" not in err
    assert main(["digest", "--team", "sales", "--date", "2026-11-20"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Daily digest · Sales · 2026-11-20\n") and "Sent late" not in out


def test_log_format_json_from_the_flag_or_the_config(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[server]\nlog_format = "json"\n[store]\nurl = "sqlite+aiosqlite:///{tmp_path / "x.db"}"\n'
        '[security]\nsecret_key = "0123456789abcdef0123"\n[[teams]]\nname = "s"\n'
    )
    done = _claimdesk(tmp_path, "--config", str(config), "migrate")
    assert done.returncode == 0, done.stderr
    (line,) = [json.loads(x) for x in done.stderr.splitlines()]
    assert line["msg"] == "database schema migrated" and line["logger"] == "store.migrate"
    assert line["from_revision"] is None and line["to_revision"]
    done = _claimdesk(tmp_path, "migrate", "--config", str(config), "--log-format", "text")
    assert done.returncode == 0 and done.stderr == ""  # up to date: nothing to say
