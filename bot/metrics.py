"""Prometheus metrics of one process (own registry, so tests can build many apps).

What an alert can watch: ``claimdesk_webhook_refused_total{webhook,status}`` grows when a
form posts with a wrong token (401), too big a body (413), unreadable fields (400/422) or
a conflicting idempotency key (409); ``claimdesk_outbox_deliveries_total{channel,kind,
outcome}`` counts failed deliveries with ``outcome="retry"`` (will be tried again) and
``outcome="dead"`` (permanent, or out of attempts), next to ``outcome="ok"``;
``claimdesk_outbox_delivery_failures_total{channel,kind,failure}`` tells the kinds of
failure apart: ``retry``, ``permanent`` or ``exhausted``.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WEBHOOK_ROUTE = "/webhooks/{name}"


@dataclass
class Metrics:
    """The counters and gauges exposed on ``GET /metrics``."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.inquiries = Counter(
            "claimdesk_inquiries_total", "Inquiries created", ["source_kind", "team"], registry=r
        )
        self.duplicates = Counter(
            "claimdesk_duplicates_total",
            "Inbound messages recognised as duplicates",
            ["source_kind"],
            registry=r,
        )
        self.webhook_requests = Counter(
            "claimdesk_webhook_requests_total",
            "Webhook requests by answer",
            ["webhook", "status"],
            registry=r,
        )
        self.webhook_refused = Counter(
            "claimdesk_webhook_refused_total",
            "Webhook requests refused (4xx) by webhook name and HTTP status",
            ["webhook", "status"],
            registry=r,
        )
        self.actions = Counter(
            "claimdesk_actions_total",
            "Card actions by verb and outcome",
            ["verb", "outcome"],
            registry=r,
        )
        self.deliveries = Counter(
            "claimdesk_outbox_deliveries_total",
            "Outbox deliveries",
            ["channel", "kind", "outcome"],
            registry=r,
        )
        self.delivery_failures = Counter(
            "claimdesk_outbox_delivery_failures_total",
            "Failed delivery attempts: failure=retry (tried again), permanent (the platform "
            "refused for good) or exhausted (out of attempts)",
            ["channel", "kind", "failure"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "claimdesk_outbox_delivery_seconds",
            "Time from enqueue to delivery",
            ["lane"],
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
        )
        self.outbox_pending = Gauge(
            "claimdesk_outbox_pending", "Pending outbox rows", ["lane"], registry=r
        )
        self.live_clients = Gauge(
            "claimdesk_web_live_clients", "Open live connections of the web inbox", registry=r
        )
        self.gc_frozen = Gauge(
            "claimdesk_gc_frozen_objects",
            "Start-up objects the garbage collector no longer walks (gc.freeze at serve)",
            registry=r,
        )
        self.gc_frozen.set_function(gc.get_freeze_count)


def failure_label(*, permanent: bool, dead: bool) -> str:
    """The ``failure`` label of a failed delivery attempt."""
    return "permanent" if permanent else "exhausted" if dead else "retry"


def webhook_refusals(metrics: Metrics) -> Middleware:
    """An aiohttp middleware counting every 4xx answer of ``POST /webhooks/{name}``.

    Counted at the HTTP edge, whatever part of the intake refused the request, so a
    broken contact form shows up in ``claimdesk_webhook_refused_total``.
    """

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _count_refusal(metrics, request, exc.status)
            raise
        _count_refusal(metrics, request, response.status)
        return response

    return count


def _count_refusal(metrics: Metrics, request: web.Request, status: int) -> None:
    route = request.match_info.route.resource
    if route is None or route.canonical != WEBHOOK_ROUTE or not 400 <= status < 500:
        return
    metrics.webhook_refused.labels(request.match_info.get("name", ""), str(status)).inc()
