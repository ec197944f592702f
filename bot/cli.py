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
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from config.loading import ConfigError, embedded_settings, example_config_text, load_settings
from config.schema import Settings

log = logging.getLogger("claimdesk")

DATA_DIR = Path(".claimdesk")


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _settings(args: argparse.Namespace, *, allow_embedded: bool) -> tuple[Settings, bool]:
    path = args.config or os.environ.get("CLAIMDESK_CONFIG", "")
    if path:
        return load_settings(Path(path)), False
    if not allow_embedded:
        raise ConfigError(
            "no config given: pass --config PATH or set CLAIMDESK_CONFIG (or run `claimdesk init`)"
        )
    return embedded_settings(DATA_DIR), True


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.path)
    if target.exists() and not args.force:
        _out(f"{target} exists; use --force to overwrite")
        return 1
    target.write_text(example_config_text(), encoding="utf-8")
    _out(f"wrote {target}; edit it, then run `claimdesk check --config {target}`")
    return 0


async def _serve(settings: Settings, embedded: bool) -> None:
    from bot.http_app import Service
    from connectors.web.auth import login_link

    service = await Service.create(settings)
    runner = web.AppRunner(service.web_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.server.host, settings.server.port)
    await site.start()
    base = settings.server.base_url
    _out(f"claimdesk is running: {base}/web/")
    if embedded:
        team = settings.teams[0]
        for rep_id in team.members:
            _out(f"  sign in as {rep_id}: {login_link(service.signer, base, rep_id)}")
        hook = settings.webhooks[0]
        _out("  try a contact-form inquiry:")
        _out(
            f"  curl -X POST {base}/webhooks/{hook.name} -H 'X-Claimdesk-Token: {hook.token}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"email":"buyer@example.com","name":"Maria Lopez","subject":"40HQ LED panels","message":"Please quote 2,000 pcs","country":"ES"}\''
        )
        _out("  replies go to SMTP 127.0.0.1:1025 (run: python -m aiosmtpd -n -l 127.0.0.1:1025)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
    await service.close()


def cmd_serve(args: argparse.Namespace) -> int:
    settings, embedded = _settings(args, allow_embedded=True)
    if args.port is not None or args.host:
        server = settings.server.model_copy(
            update={
                k: v
                for k, v in (("port", args.port), ("host", args.host))
                if v is not None and v != ""
            }
        )
        settings = settings.model_copy(update={"server": server})
    asyncio.run(_serve(settings, embedded))
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


def cmd_web_link(args: argparse.Namespace) -> int:
    from config.schema import parse_duration_minutes
    from connectors.web.auth import Signer, login_link

    settings, _ = _settings(args, allow_embedded=True)
    if settings.rep(args.rep) is None:
        _out(f"no rep with id {args.rep!r}; known: {', '.join(r.id for r in settings.reps)}")
        return 1
    sec = settings.security
    signer = Signer(
        sec.secret_key,
        login_max_age=parse_duration_minutes(sec.login_link_max_age) * 60,
        session_max_age=parse_duration_minutes(sec.session_max_age) * 60,
    )
    _out(login_link(signer, settings.server.base_url, args.rep))
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    """Explain where a message would go: each rule's conditions, language and country with
    their source, the category, the spam score with reasons, and the assignment choice
    (as of now; store inputs like open counts and the sender's rate are taken as zero)."""
    from datetime import UTC, datetime

    from bot.sla import calendar_for
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
        from bot.mail_intake import customer_fields
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
    from bot.privacy import export_inquiries

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
    from bot.privacy import erase_person

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


def cmd_digest(args: argparse.Namespace) -> int:
    from datetime import date

    from bot.digest import digest_for_cli

    settings, _ = _settings(args, allow_embedded=True)
    if args.team not in {t.name for t in settings.teams}:
        _out(f"no team named {args.team!r}; known: {', '.join(t.name for t in settings.teams)}")
        return 1
    day = date.fromisoformat(args.date) if args.date else None
    sys.stdout.write(asyncio.run(digest_for_cli(settings, args.team, day=day, send=args.send)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="claimdesk", description="Claim, reply and escalate customer inquiries from chat."
    )
    parser.add_argument(
        "--config",
        default="",
        help="path to claimdesk.toml (default: $CLAIMDESK_CONFIG, else the embedded demo)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="write a commented example claimdesk.toml")
    p.add_argument("path", nargs="?", default="claimdesk.toml")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_init)
    p = sub.add_parser("serve", help="run the server (embedded demo when no config)")
    p.add_argument("--host", default="")
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser(
        "check", help="validate the config, log in to each server, warn about shadowed rules"
    )
    p.add_argument(
        "--no-connect", dest="connect", action="store_false", help="only validate the file"
    )
    p.set_defaults(func=cmd_check)
    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(
        func=cmd_migrate
    )
    p = sub.add_parser("web-link", help="print a sign-in link of the web inbox for a rep")
    p.add_argument("rep")
    p.set_defaults(func=cmd_web_link)
    p = sub.add_parser("export", help="all inquiries with messages and timeline as JSON lines")
    p.add_argument("--out", default="", help="file to write (default: stdout)")
    p.add_argument("--team", default="")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("erase", help="erase a person's data (data-protection request)")
    p.add_argument("--email", required=True)
    p.add_argument("--yes", action="store_true", help="confirm")
    p.set_defaults(func=cmd_erase)
    p = sub.add_parser("digest", help="print a team's daily digest (--send also posts it)")
    p.add_argument("--team", required=True)
    p.add_argument(
        "--date",
        default="",
        help="the digest day YYYY-MM-DD (default: today in the team's time zone)",
    )
    p.add_argument("--send", action="store_true", help="post it to the team's channels too")
    p.set_defaults(func=cmd_digest)
    p = sub.add_parser("route", help="show which rule routes a message and why")
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
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        sys.stderr.write(f"configuration error:\n{exc}\n")
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
