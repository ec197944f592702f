"""Loading ``claimdesk.toml``: secret references, validation errors that name file, key and fix.

A secret may be written as ``"env:NAME"`` (read from the environment) or
``"file:/path"`` (read from a file outside the repository, e.g. a mounted
secret). Errors are raised as ``ConfigError`` whose message reads like
``claimdesk.toml: teams[0].timezone: unknown time zone 'Asia/Shangai'; use an IANA name``.

With no file at all, ``embedded_settings`` gives the demo setup that
``claimdesk serve`` runs on: a SQLite file, one team with two demo reps, the
generic ``website`` webhook and a local SMTP relay.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from config.schema import Settings

log = logging.getLogger(__name__)

EXAMPLE_CONFIG_NAME = "example.toml"


class ConfigError(Exception):
    """A configuration mistake, worded for the admin: where it is and how to fix it."""


def example_config_text() -> str:
    """The commented example written by ``claimdesk init``."""
    return resources.files("config").joinpath(EXAMPLE_CONFIG_NAME).read_text(encoding="utf-8")


def _resolve_references(value: Any, path: str, source: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: _resolve_references(v, f"{path}.{k}" if path else k, source, env)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_resolve_references(v, f"{path}[{i}]", source, env) for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in env:
            raise ConfigError(
                f"{source}: {path}: environment variable {name} is not set; "
                f"export {name}=... before starting claimdesk, or write the value in the file"
            )
        return env[name]
    if isinstance(value, str) and value.startswith("file:"):
        secret_path = Path(value[5:]).expanduser()
        try:
            return secret_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{source}: {path}: cannot read secret file {secret_path}: {exc.strerror}; "
                "check the path and its permissions"
            ) from exc
    return value


def _format_location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def settings_from_mapping(
    data: Mapping[str, Any], *, source: str = "claimdesk.toml", env: Mapping[str, str] | None = None
) -> Settings:
    """Validate a parsed TOML mapping, resolving ``env:``/``file:`` secrets first."""
    resolved = _resolve_references(dict(data), "", source, os.environ if env is None else env)
    try:
        return Settings.model_validate(resolved)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = _format_location(tuple(err["loc"]))
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key; check its spelling against `claimdesk init`'s example"
            elif err["type"] == "missing":
                message = "is required; add it"
            lines.append(f"{source}: {where}: {message}")
        raise ConfigError("\n".join(lines)) from None


def load_settings(path: Path, *, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a config file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file; run `claimdesk init` to write an example, or drop --config "
            "to run on the embedded default"
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}; fix the syntax at that line") from None
    return settings_from_mapping(data, source=str(path), env=env)


DEMO_DIR_NAME = ".claimdesk"
KEY_FILE_NAME = "secret_key"


def find_demo_dir(start: Path | None = None) -> Path:
    """The demo's data folder: the nearest ``.claimdesk/`` holding a key, from ``start``
    (the working directory) up to the filesystem root, else ``start/.claimdesk``.

    ``serve`` and ``web-link`` both resolve it this way, so a link printed from a
    sub-folder is signed with the key of the server that runs there.
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / DEMO_DIR_NAME / KEY_FILE_NAME).is_file():
            return folder / DEMO_DIR_NAME
    return here / DEMO_DIR_NAME


def demo_key_file(data_dir: Path) -> Path:
    """Where the demo's signing key is kept."""
    return data_dir / KEY_FILE_NAME


def _persistent_secret(data_dir: Path, *, create: bool = True) -> str:
    """A random signing key kept beside the demo database, so login links survive restarts."""
    key_file = demo_key_file(data_dir)
    if key_file.exists():
        return key_file.read_text(encoding="utf-8").strip()
    if not create:
        raise ConfigError(
            f"no demo signing key at {key_file} (nor in a .claimdesk/ folder above it); "
            "run this in the folder where `claimdesk serve` runs, or pass --config"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key)
    return key


def demo_webhook_token(key: str) -> str:
    """The demo webhook's token, derived from the signing key so that neither reveals the other."""
    return hmac.new(key.encode(), b"demo-webhook-token", hashlib.sha256).hexdigest()[:32]


def embedded_settings(data_dir: Path, *, create_key: bool = True) -> Settings:
    """The demo configuration ``claimdesk serve`` runs on when no config file is given.

    ``create_key=False`` (``web-link``) refuses to make a new signing key: a link signed
    with a key the server does not have would only say "invalid or expired".
    """
    key = _persistent_secret(data_dir, create=create_key)
    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 8080},
        "store": {"url": f"sqlite+aiosqlite:///{data_dir / 'claimdesk.db'}"},
        "security": {"secret_key": key},
        "mailboxes": [
            {
                "name": "demo",
                "from_address": "sales@demo.claimdesk.local",
                "from_name": "Demo Sales",
                "smtp_host": "127.0.0.1",
                "smtp_port": 1025,
                "smtp_tls": "none",
            }
        ],
        "webhooks": [{"name": "website", "token": demo_webhook_token(key), "team": "sales"}],
        "teams": [
            {
                "name": "sales",
                "display_name": "Sales",
                "timezone": "Asia/Shanghai",
                "locale": "en",
                "members": ["demo", "demo2"],
                "leads": ["lead"],
                "mailbox": "demo",
                "business_hours": {"mon-sun": ["00:00-24:00"]},
            }
        ],
        "reps": [
            {"id": "demo", "name": "Demo Rep", "email": "demo@demo.claimdesk.local"},
            {"id": "demo2", "name": "Second Rep", "email": "demo2@demo.claimdesk.local"},
            {"id": "lead", "name": "Team Lead", "email": "lead@demo.claimdesk.local"},
        ],
    }
    return settings_from_mapping(data, source="(embedded default)", env={})
