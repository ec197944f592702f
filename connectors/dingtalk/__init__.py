"""DingTalk (钉钉): interactive inquiry cards in team groups, callbacks over Stream mode.

The package face: ``build_platform`` (the registry's entry) and the platform class.
"""

from connectors.dingtalk.platform import DingTalkPlatform, build_platform

__all__ = ["DingTalkPlatform", "build_platform"]
