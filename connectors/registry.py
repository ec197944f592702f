"""The registry of chat platforms: name -> factory that builds it from the settings.

``bot`` loops over what this returns and never imports a concrete platform, except
in the one place that composes the app. A built-in platform is one line in
``BUILTIN`` (its package exposes ``build_platform(settings)``); tests and plugins
add theirs with ``register``.
"""

from __future__ import annotations

import importlib

from config.schema import Settings
from connectors.platform import ChatPlatform, PlatformFactory

# name -> module exposing ``build_platform(settings: Settings) -> ChatPlatform | None``
BUILTIN: dict[str, str] = {
    "slack": "connectors.slack.platform",
    "dingtalk": "connectors.dingtalk.platform",
    "wecom": "connectors.wecom.platform",
}

_registered: dict[str, PlatformFactory] = {}


def register(name: str, factory: PlatformFactory) -> None:
    """Add (or replace) a platform by name."""
    _registered[name] = factory


def unregister(name: str) -> None:
    """Remove a platform added with ``register`` (tests)."""
    _registered.pop(name, None)


def factories() -> dict[str, PlatformFactory]:
    """Every known platform's factory, built-ins first."""
    found: dict[str, PlatformFactory] = {}
    for name, module in BUILTIN.items():
        found[name] = importlib.import_module(module).build_platform
    found.update(_registered)
    return found


def build_platforms(settings: Settings) -> dict[str, ChatPlatform]:
    """The platforms configured in ``settings``, by name."""
    built: dict[str, ChatPlatform] = {}
    for name, factory in factories().items():
        platform = factory(settings)
        if platform is not None:
            built[name] = platform
    return built
