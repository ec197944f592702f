"""The reply editor's content: which templates can be picked, and the draft to edit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TemplateInfo:
    """A template the rep can pick."""

    language: str
    name: str
    title: str
    source: str


@dataclass(frozen=True)
class ReplyDraft:
    """What the reply editor shows."""

    inquiry_id: int
    to: str
    subject: str
    body: str
    template: str
    templates: tuple[TemplateInfo, ...]
    error: str = ""
    notice: str = ""  # said when the editor opens: someone else owns it / sending claims it
    can_claim: bool = False  # unclaimed: the editor offers "Claim and reply"
    may_send: bool = True  # False: the rep is neither the owner nor a lead (Send would refuse)
