"""WeCom (企业微信) connector: rep button cards, group posts, encrypted callbacks."""

from connectors.wecom.channel import WeComChannel
from connectors.wecom.platform import WeComPlatform, build_platform

__all__ = ["WeComChannel", "WeComPlatform", "build_platform"]
