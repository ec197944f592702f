"""The service (the composition root): builds the context, the aiohttp application and the
background tasks.

``Service.create`` connects the database and migrates it, and builds the chat
platforms the settings configure (``connectors.registry.build_platforms``);
``web_app`` mounts webhooks, the web inbox, the API, ``/healthz``, ``/metrics``
and every platform's routes, and starts the outbox worker, live feed and the
platforms with the app (stopped with it, leases released). Platforms are looped
over by name; none is imported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from bot.context import AppContext, Clock
from bot.interfaces.api import api_routes
from bot.interfaces.inbox_backend import WebInboxBackend
from bot.interfaces.interactions import AppInteractions
from bot.interfaces.webhook_intake import intake_webhook, intake_writer
from bot.metrics import webhook_refusals
from bot.runtime.clock import ClockSettings, Scheduler
from bot.runtime.foreign_commits import ForeignCommits
from bot.runtime.live_feed import LiveFeed
from bot.runtime.mail_intake import MailboxIntake
from bot.runtime.outbox_worker import OutboxWorker, WorkerSettings
from bot.runtime.retention import Retention
from bot.usecases.notices import RepNotices
from bot.usecases.replies import ReplyTemplates
from cards.actions import BadInquiryId
from config.schema import Settings, parse_duration_minutes
from connectors.channels import ChatChannel
from connectors.platform import ChatPlatform
from connectors.registry import build_platforms
from connectors.safe_decode import BadInput
from connectors.web.auth import Signer
from connectors.web.inbox import WebInbox
from connectors.web.one_click import OneClickLinks
from connectors.webhooks import InboundForm, IntakeReceipt, webhook_routes
from routing import language
from store import outbox
from store.engine import create_engine, create_session_factory, transaction
from store.migrate import migrate
from store.types import utcnow

log = logging.getLogger(__name__)


@web.middleware
async def refuse_or_contain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The last line of defence on every inbound path.

    Input a handler failed to refuse (``BadInput``, a bad id) still gets a 400
    with its one-line reason; any other unexpected exception is logged with its
    traceback for us and answered with a bare JSON 500 that shows none of it.
    """
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except (BadInput, BadInquiryId) as exc:
        log.info("request refused", extra={"path": request.path, "detail": str(exc)})
        return web.json_response({"error": str(exc)}, status=400)
    except Exception:
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return web.json_response({"error": "internal error"}, status=500)


#: ``Service.role``: everything (the default), or only the webhook intake (``serve --role
#: webhooks``: a second process beside an ``all`` one, so a flood of webhooks never delays
#: a click on the first; a reverse proxy sends ``/webhooks/`` to it).
ALL = "all"
WEBHOOKS = "webhooks"
ROLES = (ALL, WEBHOOKS)


@dataclass
class Service:
    """One claimdesk process: context plus its long-running parts.

    ``role`` ``webhooks``: the process serves ``POST /webhooks/{name}``, ``/healthz`` and
    ``/metrics`` only and runs no background task (no outbox worker, clock, live feed,
    mailbox or chat platform connection): the ``all`` process beside it on the same
    database delivers the cards of what it stores, woken by its commits
    (``bot.runtime.foreign_commits``)."""

    ctx: AppContext
    feed: LiveFeed
    worker: OutboxWorker
    templates: ReplyTemplates
    signer: Signer
    interactions: AppInteractions
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    mail_intakes: list[MailboxIntake] = field(default_factory=list)
    scheduler: Scheduler | None = None
    retention: Retention | None = None
    role: str = ALL
    foreign_commits: ForeignCommits = field(init=False)

    def __post_init__(self) -> None:
        self.foreign_commits = ForeignCommits(self.ctx)

    @property
    def platforms(self) -> dict[str, ChatPlatform]:
        """The chat platforms of this process, by name."""
        return self.ctx.platforms

    @classmethod
    async def create(
        cls,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        channels: dict[str, ChatChannel] | None = None,
        worker_settings: WorkerSettings | None = None,
        feed_poll_seconds: float = 1.0,
        run_migrations: bool = True,
        clock_settings: ClockSettings | None = None,
        role: str = ALL,
    ) -> Service:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        engine = create_engine(settings.store.url)
        if run_migrations:
            await migrate(engine)
        if engine.dialect.name == "sqlite" and role == ALL:
            # leases left by a previous run of the one process that delivers (a webhooks
            # process beside it delivers nothing: it must not take the other's leases)
            async with transaction(create_session_factory(engine)) as session:
                released = await outbox.release_all_leases(session)
            if released:
                log.warning("took back %d outbox leases left by a previous run", released)
        ctx = AppContext(
            settings=settings,
            engine=engine,
            sessions=create_session_factory(engine),
            read_sessions=(
                create_session_factory(create_engine(settings.store.url, readonly=True))
                if engine.dialect.name == "sqlite" and ":memory:" not in settings.store.url
                else None
            ),
            clock=clock,
            channels=dict(channels or {}),
        )
        # ``channels`` (tests, benches) stand in for a platform's own channel of the same name.
        for name, platform in build_platforms(settings).items():
            if name in ctx.channels:
                platform.channel = ctx.channels[name]
            ctx.platforms[name] = platform
            ctx.channels[name] = platform.channel
        security = settings.security
        signer = Signer(
            security.secret_key,
            login_max_age=parse_duration_minutes(security.login_link_max_age) * 60,
            session_max_age=parse_duration_minutes(security.session_max_age) * 60,
        )
        templates = ReplyTemplates(
            settings.templates.directory, settings.templates.default_language
        )
        return cls(
            ctx=ctx,
            feed=LiveFeed(ctx, poll_seconds=feed_poll_seconds),
            worker=OutboxWorker(ctx, worker_settings),
            templates=templates,
            signer=signer,
            interactions=AppInteractions(ctx, templates, signer, ctx.platforms),
            scheduler=Scheduler(ctx, clock_settings),
            retention=Retention(ctx),
            role=role,
        )

    async def intake(self, form: InboundForm) -> IntakeReceipt:
        receipt = await intake_webhook(self.ctx, form)
        self.ctx.metrics.webhook_requests.labels(
            form.webhook, "duplicate" if receipt.duplicate else "accepted"
        ).inc()
        return receipt

    def start_background(self) -> None:
        self.tasks = [
            asyncio.create_task(self.worker.run()),
            asyncio.create_task(self.feed.run()),
            asyncio.create_task(self.foreign_commits.run()),
        ]
        if self.scheduler is not None:
            self.tasks.append(asyncio.create_task(self.scheduler.run()))
        if self.retention is not None:
            self.tasks.append(asyncio.create_task(self.retention.run()))
        self.mail_intakes = [
            MailboxIntake(self.ctx, box) for box in self.ctx.settings.mailboxes if box.imap_host
        ]
        self.tasks.extend(asyncio.create_task(intake.run()) for intake in self.mail_intakes)

    async def stop_background(self) -> None:
        self.worker.stop()
        self.feed.stop()
        self.foreign_commits.stop()
        for intake in self.mail_intakes:
            intake.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.retention is not None:
            self.retention.stop()
        for task in self.tasks:
            try:
                await asyncio.wait_for(task, timeout=10)
            except asyncio.CancelledError:
                pass
            except TimeoutError:
                # a send stuck past the grace period is cancelled: its outbox row keeps its
                # recorded attempt and is settled by the next start (find_posted / lease)
                log.warning(
                    "background task did not stop in 10 s; cancelled",
                    extra={"task": task.get_name()},
                )
        self.tasks = []

    async def close(self) -> None:
        await self.stop_background()
        await self._stop_platforms()
        if self.ctx.read_sessions is not None:
            bind = self.ctx.read_sessions.kw.get("bind")
            if bind is not None:
                await bind.dispose()
        await self.ctx.engine.dispose()

    def web_app(self, *, background: bool = True) -> web.Application:
        settings = self.ctx.settings
        app = web.Application(
            client_max_size=settings.server.max_body_bytes,
            middlewares=[webhook_refusals(self.ctx.metrics), refuse_or_contain_errors],
        )
        hooks = {w.name: w for w in settings.webhooks}
        app.add_routes(webhook_routes(hooks, self.intake, intake_writer(self.ctx).admitted))
        app.add_routes([web.get("/healthz", self.healthz), web.get("/metrics", self.metrics)])
        if self.role == WEBHOOKS:  # no background: the ``all`` process delivers
            if background:
                app.cleanup_ctx.append(self._language_warm_up)
            return app
        inbox = WebInbox(
            WebInboxBackend(self.ctx, self.feed, self.templates, self.interactions),
            self.signer,
            secure_cookies=settings.server.base_url.startswith("https://"),
        )
        app.add_routes(inbox.routes())
        app.add_routes(  # one-click links from notification emails, the "for you" page
            OneClickLinks(
                inbox.backend,
                RepNotices(self.ctx),
                self.signer,
                clock=self.ctx.clock,
                secure_cookies=settings.server.base_url.startswith("https://"),
            ).routes()
        )
        app.on_shutdown.append(inbox.close_streams)
        app.add_routes(api_routes(self.ctx))
        app.add_routes([web.get("/", self.root)])
        for platform in self.platforms.values():
            app.add_routes(platform.routes(self.interactions))
        if background:
            app.cleanup_ctx.append(self._background)
        return app

    async def _background(self, app: web.Application) -> AsyncIterator[None]:
        # the language model loads in a thread while the server starts serving
        warm = asyncio.ensure_future(asyncio.to_thread(language.warm_up))
        self.start_background()
        for platform in self.platforms.values():
            await platform.start(self.interactions)
        yield
        with contextlib.suppress(Exception):
            await warm
        # The worker still delivers through the platforms' channels: stop it first.
        await self.stop_background()
        await self._stop_platforms()

    async def _language_warm_up(self, app: web.Application) -> AsyncIterator[None]:
        warm = asyncio.ensure_future(asyncio.to_thread(language.warm_up))
        yield
        with contextlib.suppress(Exception):
            await warm

    async def _stop_platforms(self) -> None:
        for name, platform in self.platforms.items():
            try:
                await platform.stop()
            except Exception:
                log.exception("stopping platform failed", extra={"platform": name})

    async def root(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/web/")

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            async with transaction(self.ctx.readers) as session:
                await (await session.connection()).execute(text("SELECT 1"))
                pending = await outbox.pending_counts(session)
        except Exception as exc:
            log.warning("health check failed", exc_info=True)
            return web.json_response({"status": "error", "database": str(exc)[:200]}, status=503)
        return web.json_response({"status": "ok", "database": "ok", "outbox_pending": pending})

    async def metrics(self, request: web.Request) -> web.Response:
        async with transaction(self.ctx.readers) as session:
            pending = await outbox.pending_counts(session)
        for lane in ("interactive", "bulk"):
            self.ctx.metrics.outbox_pending.labels(lane).set(pending.get(lane, 0))
        body = generate_latest(self.ctx.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
