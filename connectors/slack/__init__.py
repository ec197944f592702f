"""Slack connector: Block Kit rendering, the ``SlackChannel`` port, inbound events (HTTP and Socket Mode)."""

from connectors.slack.channel import SlackChannel, SlackIdentity
from connectors.slack.events import (
    ReplySubmission,
    SlackClick,
    SocketMode,
    build_bolt_app,
    events_routes,
)

__all__ = [
    "ReplySubmission",
    "SlackChannel",
    "SlackClick",
    "SlackIdentity",
    "SocketMode",
    "build_bolt_app",
    "events_routes",
]
