"""A real process, really killed: a reply acknowledged to the rep survives SIGKILL and is
delivered exactly once by the restarted process.

`claimdesk serve` runs as a subprocess on a SQLite file. The rep claims and replies over
HTTP while the customer's SMTP server is down, so the reply waits in the outbox; the
process is killed with SIGKILL, the SMTP server comes up, the process is started again.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
from pathlib import Path

import aiohttp

from connectors.web.auth import Signer, login_link
from tests.conftest import SECRET
from tests.support.postgres import free_port
from tests.support.serve_process import start_serve as start
from tests.support.smtp_sink import SmtpSink


def write_config(tmp: Path, http_port: int, smtp_port: int) -> Path:
    config = tmp / "claimdesk.toml"
    config.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {http_port}
[store]
url = "sqlite+aiosqlite:///{tmp / "cd.db"}"
[security]
secret_key = "{SECRET}"
api_tokens = ["t0k"]
[[mailboxes]]
name = "sales"
from_address = "sales@seller.test"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
smtp_tls = "none"
smtp_timeout_seconds = 2
[[webhooks]]
name = "website"
token = "hook-token"
team = "sales"
[[teams]]
name = "sales"
locale = "en"
members = ["alice"]
mailbox = "sales"
business_hours = {{ "mon-sun" = ["00:00-24:00"] }}
[[reps]]
id = "alice"
name = "Alice"
""",
        encoding="utf-8",
    )
    return config


def outbox_email(db: Path) -> tuple[int, str | None, str] | None:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT attempts, leased_until, state FROM outbox WHERE kind = 'email.send'"
        ).fetchone()


async def test_sigkill_with_a_queued_reply_delivers_it_exactly_once(tmp_path: Path) -> None:
    http_port = free_port()
    sink = SmtpSink()  # its port is reserved, the server is not listening yet: SMTP is "down"
    config = write_config(tmp_path, http_port, sink.port)
    base = f"http://127.0.0.1:{http_port}"
    proc = start(config)
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            created = await http.post(
                f"{base}/webhooks/website",
                json={"email": "buyer@x.example", "name": "Buyer", "message": "Price for 100 pcs?"},
                headers={"X-Claimdesk-Token": "hook-token"},
            )
            assert created.status == 202
            number = (await created.json())["inquiry"]
            signer = Signer(SECRET, login_max_age=600, session_max_age=600)
            assert (
                await http.get(login_link(signer, base, "alice"), allow_redirects=False)
            ).status == 302
            page = await (await http.get(f"{base}/web/inquiries/{number}/reply")).text()
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
            assert csrf
            sent = await http.post(
                f"{base}/web/inquiries/{number}/reply",
                data={
                    "csrf": csrf.group(1),
                    "subject": f"Re [#{number}]",
                    "body": "Dear buyer, 12 USD each.",
                },
            )
            assert (await sent.json())["ok"] is True  # acknowledged to the rep
        # wait until the first delivery attempt has failed (SMTP down) and the row waits for its retry
        for _ in range(100):
            row = outbox_email(tmp_path / "cd.db")
            if row and row[0] >= 1:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"no failed attempt recorded: {row}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert outbox_email(tmp_path / "cd.db")[2] == "pending"  # type: ignore[index]

    sink.start()
    restarted = start(config)
    try:
        # the row marked done is the positive signal: after it, no attempt can follow
        for _ in range(600):
            row = outbox_email(tmp_path / "cd.db")
            if row and row[2] == "done":
                break
            await asyncio.sleep(0.1)
        assert len(sink.messages) == 1
        assert "12 USD each" in sink.messages[0].message.get_content()
        assert outbox_email(tmp_path / "cd.db")[2] == "done"  # type: ignore[index]
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=20)
        sink.stop()
    assert restarted.returncode == 0
