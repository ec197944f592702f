"""A private Dovecot IMAP server for tests (Debian's dovecot-imapd, no systemd, no root config).

``DovecotServer`` writes its own ``dovecot.conf`` into a temporary directory and runs
``dovecot -F -c FILE`` there (the DESIGN.md recipe): base_dir, state_dir and logs under
the temp dir, ``listen = 127.0.0.1``, the imap-login listener on a free port, no TLS,
clear-text auth allowed, a passwd-file passdb with the users added by ``add_user``, a
static userdb (``uid=nobody gid=nogroup``), Maildir under the temp dir owned by
``nobody``, and the mailboxes INBOX, Sent (``\\Sent``) and Archive (``\\Archive``).
Dovecot offers IDLE, MOVE, UIDPLUS and SPECIAL-USE out of the box.

Test setup (appending raw messages, listing flags) uses the stdlib ``imaplib``: it is
synchronous and plain, which is what a fixture wants; the code under test uses its own
async client. ``stop()`` / ``start()`` restart the server on the same port.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

__all__ = ["DovecotServer", "find_dovecot"]


def find_dovecot() -> str | None:
    """Path of the ``dovecot`` binary, or None when it is not installed."""
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(p, os.X_OK)),
        None,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dovecot_version(binary: str) -> tuple[int, int]:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return (2, 3)
    match = re.match(r"(\d+)\.(\d+)", out.strip())
    return (int(match.group(1)), int(match.group(2))) if match else (2, 3)


_CONFIG_23 = """\
# Private test instance: nothing here touches /etc/dovecot.
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
instance_name = claimdesk-test-{port}
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = 1
mail_uid = {user}
mail_gid = {group}
mail_location = maildir:{base}/mail/%u
mailbox_idle_check_interval = 1 secs
imap_idle_notify_interval = 10 secs
shutdown_clients = yes

passdb {{
  driver = passwd-file
  # One passwd-file per user: users added while the server runs are seen at once.
  args = scheme=PLAIN username_format=%Ln {base}/users/%Ln
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={base}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
# Tests fail logins on purpose: an unreachable penalty socket disables the growing
# per-IP delay after failures (documented way to turn the auth penalty off).
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 200
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Archive {{
    special_use = \\Archive
    auto = subscribe
  }}
}}
"""


class DovecotServer:
    """A private Dovecot listening on 127.0.0.1:<free port>. Use as a context manager."""

    def __init__(self, binary: str | None = None, *, tls: bool = False) -> None:
        found = binary or find_dovecot()
        if found is None:
            raise FileNotFoundError("dovecot binary not found")
        self.binary = found
        self.host = "127.0.0.1"
        self.port = free_port()
        self.tls = tls
        self.tls_port = free_port() if tls else 0
        """Implicit-TLS (imaps) port when ``tls``; the plain port then offers STARTTLS."""
        self.users: dict[str, str] = {}
        self._dir = Path(tempfile.mkdtemp(prefix="claimdesk-dovecot-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._uid = pwd.getpwnam("nobody").pw_uid
        group = "nogroup"
        try:
            self._gid = grp.getgrnam(group).gr_gid
        except KeyError:
            group = "nobody"
            self._gid = grp.getgrnam(group).gr_gid
        self._group = group

    # -- configuration -----------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The temporary directory holding config, state, logs and mail."""
        return self._dir

    @property
    def config_path(self) -> Path:
        """The generated dovecot.conf."""
        return self._dir / "dovecot.conf"

    def add_user(self, name: str, password: str) -> None:
        """Add an IMAP account (before or after ``start()``; names are [a-z0-9._-])."""
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise ValueError(f"unsupported test user name: {name!r}")
        self.users[name] = password
        self._write_passwd()

    def _write_passwd(self) -> None:
        users = self._dir / "users"
        users.mkdir(exist_ok=True)
        users.chmod(0o755)
        for name, password in self.users.items():
            path = users / name.lower()
            path.write_text(f"{name.lower()}:{{PLAIN}}{password}::::::\n", encoding="utf-8")
            path.chmod(0o644)

    def _write_config(self) -> None:
        self._dir.chmod(0o755)  # the auth process (user "dovecot") reads the passwd-file
        mail = self._dir / "mail"
        mail.mkdir(exist_ok=True)
        os.chown(mail, self._uid, self._gid)
        ssl_settings = "ssl = no"
        if self.tls:
            self._make_certificate()
            ssl_settings = (
                f"ssl = yes\nssl_cert = <{self.cert_path}\nssl_key = <{self._dir / 'key.pem'}"
            )
        config = _CONFIG_23.format(
            base=self._dir,
            port=self.port,
            tls_port=self.tls_port,
            ssl=ssl_settings,
            user="nobody",
            group=self._group,
        )
        if _dovecot_version(self.binary) >= (2, 4):
            # 2.4 renamed the setting; keep the same meaning.
            config = config.replace(
                "disable_plaintext_auth = no", "auth_allow_cleartext = yes"
            ).replace("\nmail_location = ", "\n#mail_location = ")
        self.config_path.write_text(config, encoding="utf-8")
        self._write_passwd()

    @property
    def cert_path(self) -> Path:
        """The self-signed certificate (PEM) a TLS client must trust."""
        return self._dir / "cert.pem"

    def _make_certificate(self) -> None:
        if self.cert_path.exists():
            return
        openssl = shutil.which("openssl")
        if openssl is None:
            raise FileNotFoundError("openssl not found (needed for a TLS test server)")
        subprocess.run(
            [
                openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", str(self._dir / "key.pem"), "-out", str(self.cert_path),
                "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        (self._dir / "key.pem").chmod(0o600)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> None:
        """Start Dovecot in the foreground and wait until the IMAP port accepts."""
        if self._process is not None and self._process.poll() is None:
            return
        self._write_config()
        log = (self._dir / "stdout.log").open("ab")
        self._process = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not accept connections in {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Dovecot (its IMAP sessions are cut); the mail stays for a restart."""
        process = self._process
        self._process = None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
        # Dovecot's imap/log/stats children outlive the master for a while (an imap
        # process even keeps answering its client): end them, as a real restart would.
        self._end_children(timeout)
        # Wait until the port is really free, so a restart can bind it again.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    time.sleep(0.05)
            except OSError:
                return

    def _children(self) -> list[int]:
        """PIDs of this instance's processes (titled "dovecot-<instance>/<service>")."""
        title = f"dovecot-claimdesk-test-{self.port}/".encode()
        pids: list[int] = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(title):
                pids.append(int(entry.name))
        return pids

    def _end_children(self, timeout: float) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self._children()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + min(timeout, 3.0)
            while time.monotonic() < deadline and self._children():
                time.sleep(0.05)

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop and delete the temporary directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        """Is the server process alive?"""
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The end of Dovecot's logs (for failure messages)."""
        chunks: list[str] = []
        for name in ("stdout.log", "dovecot.log"):
            path = self._dir / name
            if path.exists():
                chunks.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(chunks)

    def __enter__(self) -> DovecotServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    # -- test setup helpers (stdlib imaplib, synchronous) -------------------------------

    @contextlib.contextmanager
    def imap(self, user: str) -> Iterator[imaplib.IMAP4]:
        """A logged-in stdlib IMAP connection for test setup."""
        client = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            client.login(user, self.users[user])
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(self, user: str, raw: bytes, folder: str = "INBOX", flags: str = "") -> int | None:
        """APPEND one raw message; returns its UID (from APPENDUID) when known."""
        return self.append_many(user, [raw], folder, flags)[0]

    def append_many(
        self, user: str, messages: list[bytes], folder: str = "INBOX", flags: str = ""
    ) -> list[int | None]:
        """APPEND raw messages byte-for-byte over one connection; returns their UIDs."""
        uids: list[int | None] = []
        with self.imap(user) as client:
            for raw in messages:
                typ, data = client.append(folder, f"({flags})" if flags else None, None, raw)
                if typ != "OK":
                    raise RuntimeError(f"APPEND failed: {typ} {data!r}")
                text = b" ".join(d for d in data if isinstance(d, bytes)).decode("ascii", "replace")
                match = re.search(r"APPENDUID \d+ (\d+)", text)
                uids.append(int(match.group(1)) if match else None)
        return uids

    def uids(self, user: str, folder: str = "INBOX") -> list[int]:
        """UIDs of all messages in a folder."""
        with self.imap(user) as client:
            client.select(folder, readonly=True)
            typ, data = client.uid("SEARCH", "ALL")
            return [int(x) for x in (data[0] or b"").split()] if typ == "OK" else []

    def flags(self, user: str, uid: int, folder: str = "INBOX") -> set[str]:
        """The flags of one message."""
        with self.imap(user) as client:
            client.select(folder, readonly=True)
            typ, data = client.uid("FETCH", str(uid), "(FLAGS)")
            if typ != "OK" or not data or data[0] is None:
                return set()
            item = data[0]
            text = (item[0] if isinstance(item, tuple) else item).decode("ascii", "replace")
            match = re.search(r"FLAGS \(([^)]*)\)", text)
            return set(match.group(1).split()) if match else set()

    def fetch_raw(self, user: str, uid: int, folder: str = "INBOX") -> bytes:
        """The stored bytes of one message."""
        with self.imap(user) as client:
            client.select(folder, readonly=True)
            typ, data = client.uid("FETCH", str(uid), "(BODY.PEEK[])")
            for item in data:
                if isinstance(item, tuple):
                    return bytes(item[1])
        return b""

    def create_folder(self, user: str, folder: str) -> None:
        """CREATE a mailbox."""
        with self.imap(user) as client:
            client.create(folder)
