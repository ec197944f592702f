"""Prometheus metrics of one process (own registry, so tests can build many apps)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
