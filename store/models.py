"""The tables of the whole domain (SQLModel).

Inquiry ids are the short human numbers shown as ``#1042``: they start at 1001
(AUTOINCREMENT on SQLite, an identity on PostgreSQL; see the first migration).
Timestamps are aware UTC (``UTCDateTime``). Free-form data (attachments,
event details, outbox payloads) is JSON.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from store.types import UTCDateTime


class Status(StrEnum):
    """Where an inquiry stands (see ``store.lifecycle`` for the allowed moves)."""

    NEW = "new"
    CLAIMED = "claimed"
    REPLIED = "replied"
    WAITING = "waiting"
    FOLLOW_UP = "follow_up"
    WON = "won"
    LOST = "lost"
    SPAM = "spam"
    CLOSED = "closed"


class Lane(StrEnum):
    """Outbox lanes: interactive work (a click's consequences) always goes before bulk work."""

    INTERACTIVE = "interactive"
    BULK = "bulk"


class OutboxState(StrEnum):
    """Delivery state of an outbox row."""

    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class Contact(SQLModel, table=True):
    """One customer person; may have several email addresses (``ContactEmail``)."""

    __tablename__ = "contact"

    id: int | None = Field(default=None, primary_key=True)
    name: str = ""
    company: str = ""
    country: str = ""  # ISO 3166-1 alpha-2, upper case, or ""
    language: str = ""
    phone: str = ""
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts(nullable=False)
    merged_into: int | None = Field(default=None, foreign_key="contact.id")


class ContactEmail(SQLModel, table=True):
    """An address of a contact; lower-cased and unique across contacts."""

    __tablename__ = "contact_email"

    address: str = Field(primary_key=True, max_length=320)
    contact_id: int = Field(foreign_key="contact.id", index=True)


class Inquiry(SQLModel, table=True):
    """A customer inquiry (询盘) and its working state."""

    __tablename__ = "inquiry"
    __table_args__ = (
        Index("ix_inquiry_team_status", "team", "status"),
        # open counts per rep (least_open, max_open) and the sender's recent rate (spam)
        Index("ix_inquiry_assignee_status", "assignee", "status"),
        Index("ix_inquiry_contact_email_received", "contact_email", "received_at"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(
        default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True)
    )
    team: str = Field(index=True)
    status: str = Field(default=Status.NEW.value, index=True)
    source: str = ""  # mailbox or webhook name
    source_kind: str = ""  # "webhook" | "mail"
    dedupe_key: str = Field(sa_column=Column(String(200), unique=True, nullable=False))
    contact_id: int = Field(foreign_key="contact.id", index=True)
    contact_email: str = ""
    subject: str = ""
    snippet: str = ""
    language: str = ""
    country: str = ""
    country_source: str = ""  # "form", "phone", "domain", "signature", "contact" or ""
    category: str = ""
    priority: str = "normal"
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    rule: str = ""  # the routing rule that placed it, "" for the default
    suggested_owner: str = ""
    assignee: str | None = Field(default=None, index=True)
    mailbox: str = ""  # replies go out through this mailbox
    outcome_reason: str = ""
    received_at: datetime = _ts(nullable=False)
    claimed_at: datetime | None = _ts()
    first_reply_at: datetime | None = _ts()
    last_customer_message_at: datetime | None = _ts()
    closed_at: datetime | None = _ts()
    claim_due_at: datetime | None = _ts()
    reply_due_at: datetime | None = _ts()
    snoozed_until: datetime | None = _ts()
    follow_up_at: datetime | None = _ts()
    next_due_at: datetime | None = _ts(index=True)  # min of the due times the clock acts on
    escalation_level: int = 0
    updated_at: datetime = _ts(nullable=False, index=True)  # the live feed scans by it
    version: int = 1


class Message(SQLModel, table=True):
    """An inbound or outbound email or form post belonging to an inquiry."""

    __tablename__ = "message"

    id: int | None = Field(default=None, primary_key=True)
    inquiry_id: int = Field(foreign_key="inquiry.id", index=True)
    direction: str  # "in" | "out"
    channel: str  # "email" | "webhook"
    message_id: str = Field(default="", index=True, max_length=998)
    in_reply_to: str = ""
    references: str = Field(default="", sa_column=Column("references_", Text, nullable=False))
    from_address: str = ""
    from_name: str = ""
    to_address: str = ""
    sender: str = ""  # inbound mail: the Sender header ("Name <addr>"), when given
    reply_to: str = ""  # inbound mail: the Reply-To header ("Name <addr>"), when given
    headers: dict[str, str] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )  # inbound mail: the headers the spam score read (List-Id, Auto-Submitted, ...)
    subject: str = ""
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    html: str = Field(default="", sa_column=Column(Text, nullable=False))
    attachments: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    author: str = ""  # rep id for outbound messages
    delivery: str = ""  # outbound: "queued" | "sent" | "failed: ..."
    created_at: datetime = _ts(nullable=False)


class Event(SQLModel, table=True):
    """One entry of an inquiry's timeline: who did what, when, before/after.

    The autoincrement id doubles as the change feed cursor of the web inbox
    (SSE ``Last-Event-ID``), across processes.
    """

    __tablename__ = "event"

    id: int | None = Field(default=None, primary_key=True)
    inquiry_id: int = Field(foreign_key="inquiry.id", index=True)
    team: str = Field(index=True)
    at: datetime = _ts(nullable=False)
    actor: str  # rep id, "customer" or "system"
    kind: str  # "received", "claimed", "released", "replied", "status", "snoozed", ...
    before: str = ""
    after: str = ""
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class CardRef(SQLModel, table=True):
    """Where an inquiry's card lives on a platform, so every change re-renders it in place."""

    __tablename__ = "card_ref"
    __table_args__ = (UniqueConstraint("inquiry_id", "platform", "destination"),)

    id: int | None = Field(default=None, primary_key=True)
    inquiry_id: int = Field(foreign_key="inquiry.id", index=True)
    platform: str
    destination: str  # channel id / conversation id / user id
    ref: str  # Slack ts, DingTalk outTrackId, WeCom response_code ...
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class Outbox(SQLModel, table=True):
    """A side effect to deliver (card post/update, email, DM), written with the state change."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "state", "lane", "next_attempt_at"),
        Index("ix_outbox_fifo", "channel", "destination", "lane", "state", "id"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    key: str = Field(sa_column=Column(String(200), unique=True, nullable=False))
    lane: str = Lane.BULK.value
    channel: str  # "smtp", "slack", "dingtalk", "wecom", "memory" ...
    destination: str = ""  # pacing key within the channel (channel id, mailbox name)
    kind: str  # "card.post", "card.update", "email.send", "dm", "thread.post" ...
    inquiry_id: int | None = Field(default=None, index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: str = OutboxState.PENDING.value
    attempts: int = 0
    next_attempt_at: datetime = _ts(nullable=False)
    leased_until: datetime | None = _ts()
    lease_owner: str = ""
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime = _ts(nullable=False)
    done_at: datetime | None = _ts()
    # First time the send was attempted, committed *before* the platform call: a row that
    # has it may already have reached the platform, so a card post looks for its own
    # earlier post (``ChatChannel.find_posted``) before posting again.
    attempted_at: datetime | None = _ts()


class WorkerHeartbeat(SQLModel, table=True):
    """A running outbox worker (``owner`` as in ``Outbox.lease_owner``) and when it last
    said it is alive. Leases of an owner not seen for a while are free to take."""

    __tablename__ = "worker_heartbeat"

    owner: str = Field(primary_key=True, max_length=100)
    last_seen: datetime = _ts(nullable=False)


class MailboxState(SQLModel, table=True):
    """IMAP progress per mailbox folder: resume exactly where the last fetch committed."""

    __tablename__ = "mailbox_state"

    mailbox: str = Field(primary_key=True)
    folder: str = Field(primary_key=True)
    uidvalidity: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    last_uid: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = _ts(nullable=False)


class JobRun(SQLModel, table=True):
    """A scheduled job that ran (digest, nudge): its unique key makes it happen once."""

    __tablename__ = "job_run"

    key: str = Field(primary_key=True, max_length=200)
    owner: str = ""
    started_at: datetime = _ts(nullable=False)
    finished_at: datetime | None = _ts()
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class RepIdentity(SQLModel, table=True):
    """A rep's user id on a platform learnt at run time (e.g. Slack lookup by email)."""

    __tablename__ = "rep_identity"

    platform: str = Field(primary_key=True)
    platform_user_id: str = Field(primary_key=True)
    rep_id: str = Field(index=True)
    created_at: datetime = _ts(nullable=False)


class AttachmentBlob(SQLModel, table=True):
    """The bytes of an attachment (kept up to the mailbox's size limit), served to reps on demand."""

    __tablename__ = "attachment_blob"

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", index=True)
    filename: str = ""
    content_type: str = "application/octet-stream"
    size: int = 0
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class RepPresence(SQLModel, table=True):
    """A rep's own "I'm away / I'm back" from chat or the web inbox (the config's ``away`` also counts)."""

    __tablename__ = "rep_presence"

    rep_id: str = Field(primary_key=True, max_length=63)
    away: bool = False
    updated_at: datetime = _ts(nullable=False)


class WebhookKey(SQLModel, table=True):
    """An ``Idempotency-Key`` a webhook sender used: the body it came with and its inquiry.

    The same key with the same body answers the same inquiry; with another body, 409.
    ``inquiry_id`` is empty between the key's first sight and its inquiry's commit.
    """

    __tablename__ = "webhook_key"

    webhook: str = Field(primary_key=True, max_length=63)
    key: str = Field(primary_key=True, max_length=150)
    body_sha256: str = Field(max_length=64)
    inquiry_id: int | None = None
    created_at: datetime = _ts(nullable=False, index=True)


class AssignmentTurn(SQLModel, table=True):
    """The round-robin position of a team: advanced atomically with each assignment."""

    __tablename__ = "assignment_turn"

    team: str = Field(primary_key=True, max_length=63)
    n: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class SenderVerdict(SQLModel, table=True):
    """The team's word on a sender: ``blocked`` ("Spam" on a card) or ``allowed`` ("not spam").

    ``pattern`` is a lower-cased address (``a@b.com``) or a whole domain (``@b.com``).
    """

    __tablename__ = "sender_verdict"

    pattern: str = Field(primary_key=True, max_length=320)
    verdict: str  # "blocked" | "allowed"
    by: str = ""  # the rep who said so
    inquiry_id: int | None = None  # the inquiry it was said on
    at: datetime = _ts(nullable=False)
