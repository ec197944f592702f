"""The ``claimdesk`` command: init, serve, check, migrate, web-link, route --explain.

The config comes from ``--config PATH`` or ``CLAIMDESK_CONFIG``; with neither,
``serve`` runs the embedded demo (data under ``./.claimdesk/``). Messages for the
admin go to stdout/stderr through ``logging`` and plain writes; exit codes:
0 fine, 1 problems found, 2 configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import shlex
import signal
import sys
from datetime import date
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.logging_setup import LOG_FORMATS, configure_logging, remove_logging
from config.loading import (
    ConfigError,
    demo_key_file,
    embedded_settings,
    example_config_text,
    find_demo_dir,
    load_settings,
)
from config.schema import Settings

log = logging.getLogger("claimdesk")

SERVING_FILE = "serving.json"  # in the demo folder: where the demo server listens now


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _settings(
    args: argparse.Namespace, *, allow_embedded: bool, create_key: bool = True
) -> tuple[Settings, bool]:
    path = args.config or os.environ.get("CLAIMDESK_CONFIG", "")
    if path:
        settings = load_settings(Path(path))
        if getattr(args, "log_format", None) is None and settings.server.log_format != "text":
            configure_logging(style=settings.server.log_format, verbose=args.verbose)
        return settings, False
    if not allow_embedded:
        raise ConfigError(
            "no config given: pass --config PATH or set CLAIMDESK_CONFIG (or run `claimdesk init`)"
        )
    return embedded_settings(find_demo_dir(), create_key=create_key), True


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.path)
    if target.exists() and not args.force:
        _out(f"{target} exists; use --force to overwrite")
        return 1
    target.write_text(example_config_text(), encoding="utf-8")
    _out(f"wrote {target}; edit it, then run `claimdesk check --config {target}`")
    return 0


class PortBusy(Exception):
    """The configured host:port is taken; the message says by what and what to do."""


def _who_listens(host: str, port: int) -> str:
    """A few words on what holds ``host:port``: claimdesk (asked on /healthz) or a program."""
    import urllib.error
    import urllib.request

    probe_host = "127.0.0.1" if host in ("", "0.0.0.0") else host  # noqa: S104 - we only read it
    try:
        with urllib.request.urlopen(f"http://{probe_host}:{port}/healthz", timeout=2) as answer:
            data = json.loads(answer.read(4096) or b"{}")
        if isinstance(data, dict) and "outbox_pending" in data:
            return f"claimdesk is already running there (http://{probe_host}:{port}/web/)"
    except (OSError, ValueError, urllib.error.URLError):
        pass
    program = _program_on_port(port)
    return f"another program holds it ({program})" if program else "another program holds it"


def _program_on_port(port: int) -> str:
    """Best effort, Linux only: the command line of the process listening on ``port``."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                cols = row.split()
                if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    if not inodes:
        return ""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    # The first words only: later arguments may carry someone's secrets.
                    argv = (proc / "cmdline").read_bytes().split(b"\0")[:3]
                    words = " ".join(a.decode(errors="replace") for a in argv if a)
                    return f"pid {proc.name}: {' '.join(words.split())[:100]}"
    return ""


def _demo_links(settings: Settings, signer: Any, base: str) -> list[str]:
    from connectors.web.auth import login_link

    team = settings.teams[0]
    out = []
    for rep_id in team.rep_ids():
        role = "lead" if rep_id in team.leads else "manager" if rep_id in team.managers else "rep"
        out.append(f"  sign in as {rep_id} ({role}): {login_link(signer, base, rep_id)}")
    return out


async def _serve(settings: Settings, embedded: bool, role: str = "all") -> None:
    import errno

    from bot.app import Service
    from bot.runtime.heap import freeze_startup_heap

    service = await Service.create(settings, role=role)
    runner = web.AppRunner(service.web_app(), access_log=None)
    await runner.setup()
    freeze_startup_heap()  # before the first request: no full GC pass walks start-up objects
    site = web.TCPSite(runner, settings.server.host, settings.server.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        await service.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        host, port = settings.server.host, settings.server.port
        raise PortBusy(
            f"cannot listen on {host}:{port}: the port is in use; "
            f"{_who_listens(host, port)}.\n"
            f"Pick another port: claimdesk serve --port {port + 1} "
            "(or set [server] port in the config)"
        ) from None
    base = settings.server.base_url
    serving = find_demo_dir() / SERVING_FILE if embedded and role == "all" else None
    if serving is not None:
        serving.write_text(json.dumps({"base_url": base, "pid": os.getpid()}), encoding="utf-8")
    if role != "all":
        host, port = settings.server.host, settings.server.port
        _out(
            f"claimdesk webhook intake is running: http://{host}:{port}/webhooks/<name>"
            " (the web inbox, chat and deliveries are the 'all' process's)"
        )
    else:
        _out(f"claimdesk is running: {base}/web/")
    if embedded and role == "all":
        for line in _demo_links(settings, service.signer, base):
            _out(line)
        hook = settings.webhooks[0]
        _out("  try a contact-form inquiry:")
        _out(
            f"  curl -X POST {base}/webhooks/{hook.name} -H 'X-Claimdesk-Token: {hook.token}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"email":"buyer@example.com","name":"Maria Lopez","subject":"40HQ LED panels","message":"Please quote 2,000 pcs","country":"ES"}\''
        )
        # this interpreter (the venv's): a bare ``python`` may not have aiosmtpd
        smtp = f"{shlex.quote(sys.executable)} -m aiosmtpd -n -l 127.0.0.1:1025"
        _out(f"  replies go to SMTP 127.0.0.1:1025 (to see them, run: {smtp})")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    if serving is not None:
        serving.unlink(missing_ok=True)
    await runner.cleanup()
    await service.close()


def _with_server_overrides(settings: Settings, args: argparse.Namespace) -> Settings:
    """``--host``/``--port`` (and ``--base-url``) replace the config's ``[server]`` values."""
    update: dict[str, Any] = {}
    if getattr(args, "port", None) is not None:
        update["port"] = args.port
    if getattr(args, "host", ""):
        update["host"] = args.host
    if getattr(args, "base_url", ""):
        update["public_url"] = args.base_url
    if not update:
        return settings
    return settings.model_copy(update={"server": settings.server.model_copy(update=update)})


def cmd_serve(args: argparse.Namespace) -> int:
    settings, embedded = _settings(args, allow_embedded=True)
    settings = _with_server_overrides(settings, args)
    try:
        asyncio.run(_serve(settings, embedded, args.role))
    except PortBusy as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from routing.rules import shadowed_rules

    settings, embedded = _settings(args, allow_embedded=True)
    _out(
        f"config OK ({'embedded default' if embedded else args.config or os.environ.get('CLAIMDESK_CONFIG')}): "
        f"{len(settings.teams)} team(s), {len(settings.reps)} rep(s), {len(settings.mailboxes)} mailbox(es), "
        f"{len(settings.webhooks)} webhook(s), {len(settings.rules)} rule(s)"
    )
    problems = 0
    for warning in shadowed_rules(settings):
        _out(f"warning: {warning}")
        problems += 1
    if not settings.security.secret_key:
        _out(
            'problem: security.secret_key is empty; set it (e.g. "env:CLAIMDESK_SECRET_KEY") so login links can be signed'
        )
        problems += 1
    for team in settings.teams:
        if not team.rep_ids():
            _out(f"warning: team {team.name!r} has no members; nobody can claim its inquiries")
    from routing.assignment import duty_warnings

    for warning in duty_warnings(settings):
        _out(f"warning: {warning}")
    if args.connect:
        for problem in asyncio.run(_connector_problems(settings)):
            _out(f"problem: {problem}")
            problems += 1
    if getattr(args, "connect", True):
        for problem in asyncio.run(_platform_problems(settings)):
            _out(f"problem: {problem}")
            problems += 1
    return 1 if problems else 0


async def _platform_problems(settings: Settings) -> list[str]:
    """Every configured chat platform's own checks (token, channel membership ...)."""
    from connectors.registry import build_platforms

    found: list[str] = []
    for platform in build_platforms(settings).values():
        try:
            found.extend(await platform.problems())
        finally:
            await platform.stop()
    return found


async def _connector_problems(settings: Settings) -> list[str]:
    """Log in to every configured server; one readable line per failure."""
    from connectors.mail.imap import check_login
    from connectors.mail.smtp import check_smtp

    smtp_boxes = [b for b in settings.mailboxes if b.smtp_host]
    imap_boxes = [b for b in settings.mailboxes if b.imap_host]
    results = await asyncio.gather(
        *(check_smtp(box) for box in smtp_boxes),
        *(
            check_login(
                host=box.imap_host,
                port=box.imap_port,
                user=box.imap_user,
                password=box.imap_password or None,
                xoauth2_token=box.imap_xoauth2_token or None,
                tls={"tls": True, "starttls": "starttls", "none": False}[box.imap_tls],  # type: ignore[arg-type]
                folder=box.folder,
            )
            for box in imap_boxes
        ),
    )
    labels = [f"mailbox {b.name}: SMTP {b.smtp_host}:{b.smtp_port}" for b in smtp_boxes]
    labels += [
        f"mailbox {b.name}: IMAP {b.imap_host}:{b.imap_port} folder {b.folder}" for b in imap_boxes
    ]
    problems = []
    for label, result in zip(labels, results, strict=True):
        if result is None:
            _out(f"ok: {label}")
        elif label.split(": ")[1].startswith("IMAP"):
            problems.append(f"{label}: {result}")
        else:
            problems.append(result)
    return problems


def cmd_migrate(args: argparse.Namespace) -> int:
    from store.engine import create_engine
    from store.migrate import migrate

    settings, _ = _settings(args, allow_embedded=True)

    async def run() -> None:
        engine = create_engine(settings.store.url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    _out("database schema is up to date")
    return 0


def _running_demo_base() -> str:
    """The base URL of the demo server running from this folder now, if any."""
    serving = find_demo_dir() / SERVING_FILE
    try:
        data = json.loads(serving.read_text(encoding="utf-8"))
        os.kill(int(data["pid"]), 0)  # still alive?
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return str(data.get("base_url", ""))


def cmd_web_link(args: argparse.Namespace) -> int:
    from config.schema import parse_duration_minutes
    from connectors.web.auth import Signer, login_link

    settings, embedded = _settings(args, allow_embedded=True, create_key=False)
    if settings.rep(args.rep) is None:
        _out(f"no rep with id {args.rep!r}; known: {', '.join(r.id for r in settings.reps)}")
        return 1
    settings = _with_server_overrides(settings, args)
    base = settings.server.base_url
    if embedded:
        if not (args.base_url or args.port is not None or args.host):
            base = _running_demo_base() or base
        sys.stderr.write(f"signed with the demo key {demo_key_file(find_demo_dir())}\n")
    sec = settings.security
    signer = Signer(
        sec.secret_key,
        login_max_age=parse_duration_minutes(sec.login_link_max_age) * 60,
        session_max_age=parse_duration_minutes(sec.session_max_age) * 60,
    )
    _out(login_link(signer, base, args.rep))
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    """Explain where a message would go: each rule's conditions, language and country with
    their source, the category, the spam score with reasons, and the assignment choice
    (as of now; store inputs like open counts and the sender's rate are taken as zero)."""
    from datetime import UTC, datetime

    from bot.usecases.sla import calendar_for
    from routing.assignment import AssignmentRequest, choose
    from routing.intake import IntakeFacts, classify, explain_lines
    from routing.language import detect_language

    settings, _ = _settings(args, allow_embedded=True)
    given = str(args.explain)
    if given.lstrip().startswith("{"):
        raw = given.encode()
    else:
        try:
            raw = Path(given).read_bytes()
        except OSError as exc:
            _out(f"error: cannot read {given}: {exc.strerror or exc}")
            return 2
    if given.lstrip().startswith("{") or given.endswith(".json"):
        try:
            data = json.loads(raw)
        except ValueError as exc:
            _out(f"error: not JSON: {exc}")
            return 2
        if not isinstance(data, dict):
            _out("error: the JSON must be an object (a webhook body)")
            return 2
        hook = settings.webhook(str(data.get("source", args.source or "")))
        mapping = hook.fields if hook is not None else None

        def pick(name: str) -> str:
            key = getattr(mapping, name) if mapping is not None else name
            value = data.get(key, data.get(name, ""))
            return str(value) if value is not None else ""

        headers = data.get("headers") if isinstance(data.get("headers"), dict) else {}
        facts = IntakeFacts(
            source=str(data.get("source", args.source or "")),
            subject=pick("subject"),
            text=pick("message"),
            email=pick("email").strip().lower(),
            from_address=str(data.get("from", "")).strip().lower(),
            phone=pick("phone"),
            country=pick("country"),
            language=pick("language"),
            category=pick("category"),
            headers={str(k).lower(): str(v) for k, v in (headers or {}).items()},
            default_team=hook.team if hook is not None else "",
        )
    else:
        from bot.runtime.mail_intake import customer_fields
        from connectors.mail.parse import parse_email

        parsed = parse_email(raw)
        who = customer_fields(parsed)
        box = next((m for m in settings.mailboxes if m.name == args.source), None)
        facts = IntakeFacts(
            source=args.source,
            subject=parsed.subject,
            text=parsed.text,
            email=str(who["email"]),
            from_address=parsed.from_address,
            reply_to=str(who["email"]) if who["email"] != parsed.from_address else "",
            headers=dict(parsed.signal_headers),
            default_team=box.team if box is not None else "",
        )
    now = datetime.now(UTC)

    def open_at(name: str) -> bool | None:
        try:
            return calendar_for(settings.team(name)).is_open(now)
        except KeyError:
            return None

    found = classify(settings, facts, open_at=open_at, detect=detect_language)
    choice = None
    if not found.is_spam:
        try:
            team = settings.team(found.decision.team)
        except KeyError:
            team = None
        if team is not None:
            choice = choose(
                settings,
                AssignmentRequest(
                    team=team, language=found.language, rule_assign=found.decision.assign
                ),
            )
    _out(f"message: from {facts.email or '?'} · subject {facts.subject!r}")
    for line in explain_lines(found.explanation(choice, all_rules=True)):
        _out(f"  {line}")
    return 0


def _context_run(settings: Settings, work: Any) -> Any:
    """Run ``work(ctx)`` against the configured database (migrated first)."""
    from bot.context import AppContext
    from store.engine import create_engine, create_session_factory
    from store.migrate import migrate

    async def run() -> Any:
        engine = create_engine(settings.store.url)
        try:
            await migrate(engine)
            return await work(
                AppContext(
                    settings=settings, engine=engine, sessions=create_session_factory(engine)
                )
            )
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cmd_export(args: argparse.Namespace) -> int:
    from bot.usecases.privacy import export_inquiries

    settings, _ = _settings(args, allow_embedded=True)
    target = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115

    async def work(ctx: Any) -> int:
        count = 0
        async for line in export_inquiries(ctx, team=args.team or None):
            target.write(line + "\n")
            count += 1
        return count

    try:
        count = _context_run(settings, work)
    finally:
        if args.out:
            target.close()
    sys.stderr.write(f"exported {count} inquiries\n")
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from bot.usecases.privacy import erase_person

    settings, _ = _settings(args, allow_embedded=True)
    if not args.yes:
        _out(
            f"this erases every personal detail of the contact owning {args.email}; run again with --yes"
        )
        return 1
    report = _context_run(settings, lambda ctx: erase_person(ctx, args.email))
    if not report.contacts:
        _out(f"no contact with address {args.email}")
        return 1
    _out(f"erased 1 contact: {report.inquiries} inquiries, {report.messages} messages")
    return 0


def _iso_date(value: str) -> date:
    """``--date``: a calendar day, or a usage error that says how to write one."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-11-23"
        ) from None


def cmd_digest(args: argparse.Namespace) -> int:
    from bot.cli_digest import digest_for_cli

    settings, _ = _settings(args, allow_embedded=True)
    if args.team not in {t.name for t in settings.teams}:
        _out(f"no team named {args.team!r}; known: {', '.join(t.name for t in settings.teams)}")
        return 1
    day = args.date or None
    sys.stdout.write(asyncio.run(digest_for_cli(settings, args.team, day=day, send=args.send)))
    return 0


def _common_options(
    parser: argparse.ArgumentParser, *, default_config: Any, default_verbose: Any
) -> None:
    parser.add_argument(
        "--config",
        default=default_config,
        help="path to claimdesk.toml (default: $CLAIMDESK_CONFIG, else the embedded demo)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", default=default_verbose)
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=None if default_verbose is False else argparse.SUPPRESS,
        help="log lines as key=value text (default) or JSON lines; else [server] log_format",
    )


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="", help="address to listen on (default: [server] host)")
    parser.add_argument(
        "--port", type=int, default=None, help="port to listen on (default: [server] port, 8080)"
    )
    parser.add_argument(
        "--base-url",
        default="",
        help="how the server is reached from outside, for links (default: [server] public_url)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="claimdesk", description="Claim, reply and escalate customer inquiries from chat."
    )
    _common_options(parser, default_config="", default_verbose=False)
    # The same options after the subcommand (`claimdesk check --config x.toml`, as `init` and
    # the README say); SUPPRESS keeps a subcommand from resetting what was given before it.
    common = argparse.ArgumentParser(add_help=False)
    _common_options(common, default_config=argparse.SUPPRESS, default_verbose=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    command = functools.partial(sub.add_parser, parents=[common])
    p = command("init", help="write a commented example claimdesk.toml")
    p.add_argument("path", nargs="?", default="claimdesk.toml")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_init)
    p = command("serve", help="run the server (embedded demo when no config)")
    _server_options(p)
    p.add_argument(
        "--role",
        choices=("all", "webhooks"),
        default="all",
        help="all (default): everything; webhooks: only POST /webhooks/{name} (and /healthz,"
        " /metrics), beside an 'all' process on the same database, so a flood of webhooks"
        " never delays a click (route /webhooks/ to it)",
    )
    p.set_defaults(func=cmd_serve)
    p = command(
        "check", help="validate the config, log in to each server, warn about shadowed rules"
    )
    p.add_argument(
        "--no-connect", dest="connect", action="store_false", help="only validate the file"
    )
    p.set_defaults(func=cmd_check)
    command("migrate", help="bring the database schema up to date").set_defaults(func=cmd_migrate)
    p = command("web-link", help="print a sign-in link of the web inbox for a rep")
    p.add_argument("rep")
    _server_options(p)
    p.set_defaults(func=cmd_web_link)
    p = command("export", help="all inquiries with messages and timeline as JSON lines")
    p.add_argument("--out", default="", help="file to write (default: stdout)")
    p.add_argument("--team", default="")
    p.set_defaults(func=cmd_export)
    p = command("erase", help="erase a person's data (data-protection request)")
    p.add_argument("--email", required=True)
    p.add_argument("--yes", action="store_true", help="confirm")
    p.set_defaults(func=cmd_erase)
    p = command("digest", help="print a team's daily digest (--send also posts it)")
    p.add_argument("--team", required=True)
    p.add_argument(
        "--date",
        type=_iso_date,
        default=None,
        help="one day to report on, YYYY-MM-DD (default: what today's digest covers: "
        "yesterday, or Friday to Sunday on a Monday, in the team's time zone)",
    )
    p.add_argument("--send", action="store_true", help="post it to the team's channels too")
    p.set_defaults(func=cmd_digest)
    p = command("route", help="show which rule routes a message and why")
    p.add_argument(
        "--explain",
        required=True,
        metavar="FILE|JSON",
        help=".eml file, .json webhook body, or the JSON itself",
    )
    p.add_argument("--source", default="", help="mailbox/webhook name to assume for an .eml")
    p.set_defaults(func=cmd_route)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(style=args.log_format or "text", verbose=args.verbose)
    if args.command not in ("serve", "migrate") and not args.verbose:
        # A one-shot command migrates a fresh database quietly; it is not what was asked.
        logging.getLogger("store.migrate").setLevel(logging.WARNING)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        sys.stderr.write(f"configuration error:\n{exc}\n")
        return 2
    finally:
        remove_logging()
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
