"""Slack connector: Block Kit rendering, the ``SlackChannel`` port, inbound events (HTTP and
Socket Mode), the Bolt listeners and ``SlackPlatform`` (``build_platform`` for the registry)."""

from connectors.slack.channel import SlackChannel, SlackIdentity
from connectors.slack.events import (
    ReplySubmission,
    SlackClick,
    SocketMode,
    build_bolt_app,
    events_routes,
)
from connectors.slack.platform import SlackPlatform, build_platform

__all__ = [
    "ReplySubmission",
    "SlackChannel",
    "SlackClick",
    "SlackIdentity",
    "SlackPlatform",
    "SocketMode",
    "build_bolt_app",
    "build_platform",
    "events_routes",
]
