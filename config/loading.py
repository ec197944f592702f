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


_REFERENCE_PREFIXES = ("env:", "file:")


def _resolve_references(
    value: Any, path: str, source: str, env: Mapping[str, str], problems: list[str]
) -> Any:
    """``value`` with ``env:``/``file:`` references replaced; every problem is appended to
    ``problems`` (all of them, so one run names every missing variable)."""
    if isinstance(value, dict):
        return {
            k: _resolve_references(v, f"{path}.{k}" if path else k, source, env, problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _resolve_references(v, f"{path}[{i}]", source, env, problems)
            for i, v in enumerate(value)
        ]
    if not isinstance(value, str):
        return value
    prefix = value[:5].lower()
    for wanted in _REFERENCE_PREFIXES:
        if prefix.startswith(wanted) and not value.startswith(wanted):
            written = value[: len(wanted)]
            problems.append(
                f"{source}: {path}: {written!r} is not a secret reference (they are lower case); "
                f"write {wanted}{value[len(wanted) :]}"
            )
            return value
    if value.startswith("env:"):
        name = value[4:]
        if name not in env:
            problems.append(
                f"{source}: {path}: environment variable {name} is not set; "
                f"export {name}=... before starting claimdesk, or write the value in the file"
            )
            return value
        return env[name]
    if value.startswith("file:"):
        secret_path = Path(value[5:]).expanduser()
        try:
            return secret_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            problems.append(
                f"{source}: {path}: cannot read secret file {secret_path}: {exc.strerror}; "
                "check the path and its permissions"
            )
    return value


def _format_location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# Pydantic's wording, by error type, said plainly with the fix.
_PLAIN: dict[str, str] = {
    "int_parsing": "must be a whole number, e.g. 8080 (without quotes); {input!r} is not",
    "int_type": "must be a whole number, e.g. 8080 (without quotes)",
    "int_from_float": "must be a whole number, without a fraction",
    "float_parsing": "must be a number, e.g. 2.5; {input!r} is not",
    "float_type": "must be a number, e.g. 2.5",
    "bool_parsing": "must be true or false (without quotes); {input!r} is not",
    "bool_type": "must be true or false (without quotes)",
    "string_type": 'must be text in quotes, e.g. "value"',
    "list_type": 'must be a list in brackets, e.g. ["a", "b"]',
    "tuple_type": 'must be a list in brackets, e.g. ["a", "b"]',
    "set_type": 'must be a list in brackets, e.g. ["a", "b"]',
    "frozen_set_type": 'must be a list in brackets, e.g. ["a", "b"]',
    "dict_type": "must be a table: a [section] or { key = value }",
    "model_type": "must be a table: a [section] or { key = value }",
    "model_attributes_type": "must be a table: a [section] or { key = value }",
    "too_short": "must not be empty",
    "string_too_short": "is too short: at least {min_length} characters",
    "greater_than_equal": "must be at least {ge}; {input!r} is too small",
    "greater_than": "must be more than {gt}; {input!r} is too small",
    "less_than_equal": "must be at most {le}; {input!r} is too big",
    "less_than": "must be less than {lt}; {input!r} is too big",
    "literal_error": "must be one of {expected}; {input!r} is not",
    "enum": "must be one of {expected}; {input!r} is not",
    "time_parsing": 'must be a time of day, e.g. "09:00"; {input!r} is not',
    "time_type": 'must be a time of day, e.g. "09:00"',
    "date_from_datetime_parsing": 'must be a date, e.g. "2026-10-01"; {input!r} is not',
    "extra_forbidden": "unknown key; check its spelling against `claimdesk init`'s example",
    "missing": "is required; add it",
}


def _plain_message(err: Mapping[str, Any]) -> str:
    raw = str(err["msg"]).removeprefix("Value error, ")
    # Anything not listed still reads as a rule about the value, not as validator jargon.
    fallback = "must be " + raw.removeprefix("Input should be ") if raw.startswith("Input") else raw
    template = _PLAIN.get(str(err["type"]))
    if template is None:
        return fallback
    context = dict(err.get("ctx") or {})
    try:
        return template.format(input=err.get("input"), **context)
    except (KeyError, IndexError, ValueError):
        return fallback


def _rule_label(data: Mapping[str, Any], loc: tuple[int | str, ...]) -> str:
    """`` (rule 'name')`` for a location inside ``rules[i]``, so the admin finds it by name."""
    if len(loc) < 2 or loc[0] != "rules" or not isinstance(loc[1], int):
        return ""
    rules = data.get("rules")
    if not isinstance(rules, list) or not 0 <= loc[1] < len(rules):
        return ""
    rule = rules[loc[1]]
    name = rule.get("name") if isinstance(rule, dict) else None
    return f" (rule {name!r})" if name else ""


def settings_from_mapping(
    data: Mapping[str, Any], *, source: str = "claimdesk.toml", env: Mapping[str, str] | None = None
) -> Settings:
    """Validate a parsed TOML mapping, resolving ``env:``/``file:`` secrets first.

    Every mistake found is reported at once, one line each (all missing environment
    variables together; then, once those resolve, every validation problem).
    """
    problems: list[str] = []
    resolved = _resolve_references(
        dict(data), "", source, os.environ if env is None else env, problems
    )
    if problems:
        raise ConfigError("\n".join(problems))
    try:
        settings = Settings.model_validate(resolved)
    except ValidationError as exc:
        lines: list[str] = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            message = _plain_message(err)
            if not loc:  # cross-section checks: each problem names its own key
                lines.extend(f"{source}: {problem}" for problem in message.split("\n"))
                continue
            lines.append(f"{source}: {_format_location(loc)}{_rule_label(data, loc)}: {message}")
        raise ConfigError("\n".join(lines)) from None
    _check_paths(settings, source)
    return settings


def _check_paths(settings: Settings, source: str) -> None:
    directory = settings.templates.directory
    if directory and not Path(directory).expanduser().is_dir():
        where = Path(directory).expanduser().absolute()
        raise ConfigError(
            f"{source}: templates.directory: no such directory {where}; create it (with "
            "<language>/<name>.j2 files) or fix the path (relative paths start in the folder "
            "claimdesk runs in), or remove the key to use the built-in templates"
        )


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
