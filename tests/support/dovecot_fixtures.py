"""pytest fixtures for a real Dovecot: a session-wide server and a fresh account per test.

Use from a test module with ``from tests.support.dovecot_fixtures import dovecot,
imap_account`` (or list this module in ``pytest_plugins`` of the root conftest). Without
the ``dovecot`` binary the tests skip, except under ``CI=true`` where that is a failure.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from connectors.mail.imap import ImapMailbox, TlsMode
from tests.support.dovecot import DovecotServer, find_dovecot

_account_numbers = itertools.count(1)


@dataclass
class ImapAccount:
    """One test user on the shared Dovecot, with an empty mailbox of its own."""

    server: DovecotServer
    user: str
    password: str

    def mailbox(self, folder: str = "INBOX", **options: Any) -> ImapMailbox:
        """An ``ImapMailbox`` for this account (plain IMAP on the private port)."""
        tls: TlsMode = options.pop("tls", False)
        options.setdefault("timeout", 10.0)
        return ImapMailbox(
            host=self.server.host,
            port=self.server.port,
            tls=tls,
            user=self.user,
            password=self.password,
            folder=folder,
            **options,
        )

    def append(self, raw: bytes, folder: str = "INBOX", flags: str = "") -> int | None:
        """Deliver one raw message with IMAP APPEND (test setup, stdlib imaplib)."""
        return self.server.append(self.user, raw, folder, flags)


def _need(what: str | None, reason: str) -> str:
    if what is None:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"{reason}; CI=true requires it")
        pytest.skip(reason)
    return what


def _started(server: DovecotServer) -> DovecotServer:
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        server.cleanup()
        pytest.fail(f"dovecot did not start: {exc}")
    return server


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """A private Dovecot (plain IMAP) for the whole test session."""
    binary = _need(find_dovecot(), "dovecot binary not found (apt-get install dovecot-imapd)")
    server = _started(DovecotServer(binary))
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def dovecot_tls() -> Iterator[DovecotServer]:
    """A second private Dovecot with a self-signed certificate: imaps and STARTTLS."""
    binary = _need(find_dovecot(), "dovecot binary not found (apt-get install dovecot-imapd)")
    _need(shutil.which("openssl"), "openssl not found (needed for the TLS test server)")
    server = _started(DovecotServer(binary, tls=True))
    yield server
    server.cleanup()


@pytest.fixture
def imap_account(dovecot: DovecotServer) -> ImapAccount:
    """A fresh user (empty INBOX, Sent, Archive) on the running server."""
    dovecot.start()  # a restart test may have left it stopped
    user = f"user{next(_account_numbers)}"
    password = f"pw-{user}"
    dovecot.add_user(user, password)
    return ImapAccount(server=dovecot, user=user, password=password)
