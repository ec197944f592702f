"""The schema of ``claimdesk.toml``: one pydantic model per section.

Every section of DESIGN.md is present even where a later feature fills it in, so
an admin can write a complete file today. Secrets are plain strings here; the
loader (``config.loading``) resolves ``env:NAME`` / ``file:PATH`` before
validation, so nothing below ever sees the reference form.
"""

from __future__ import annotations

import functools
import re
from datetime import time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from config.calendar_spec import parse_calendar_spec, parse_dates

Locale = Literal["zh-CN", "en"]
Priority = Literal["normal", "high", "vip"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|min|h|d)\s*$")


_MAX_DURATION_MINUTES = 366 * 24 * 60


def check_duration(value: str, *, positive: bool = False) -> str:
    """Validate a duration field: parseable, at most a year, and above zero when ``positive``."""
    minutes = parse_duration_minutes(value)
    if minutes > _MAX_DURATION_MINUTES:
        raise ValueError(f'{value!r} is longer than a year; write at most "366d"')
    if positive and minutes <= 0:
        raise ValueError(f'{value!r} must be longer than zero; write e.g. "30m"')
    return value


@functools.lru_cache(maxsize=256)  # the clock asks for the same few durations per due step
def parse_duration_minutes(text: str) -> int:
    """``"15m"``, ``"2h"``, ``"1d"``, ``"90s"`` -> whole minutes (at least 1 for any positive value)."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f'{text!r} is not a duration; write e.g. "30m", "2h" or "1d"')
    amount, unit = int(match.group(1)), match.group(2)
    seconds = amount * {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}[unit]
    return max(1, seconds // 60) if seconds else 0


class _Section(BaseModel):
    """Base for sections: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid name; use lower-case letters, digits, '-' or '_' (max 63)"
        )
    return value


class ServerSettings(_Section):
    """Where the HTTP server listens and how it is reached from outside."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str = ""  # empty: http://{host}:{port}
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    log_format: Literal["text", "json"] = "text"  # log lines: key=value text or JSON lines

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class StoreSettings(_Section):
    """Database URL: SQLite (default, one process) or PostgreSQL (several processes)."""

    url: str = "sqlite+aiosqlite:///claimdesk.db"
    # Retention of bookkeeping rows (``store.retention``), in days. Dedupe keys must outlive
    # the webhook body-dedupe window (24 h) and Slack's retry horizon: at least 2 days.
    keep_done_outbox_days: int = Field(default=30, ge=1)
    keep_dedupe_days: int = Field(default=30, ge=2)
    keep_webhook_keys_days: int = Field(default=30, ge=2)

    @field_validator("url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "use 'sqlite+aiosqlite:///path.db' or 'postgresql+asyncpg://user:pass@host/db'"
            )
        return value


class SecuritySettings(_Section):
    """Signing key for links and sessions, API tokens, optional PII encryption key."""

    secret_key: str = ""
    api_tokens: tuple[str, ...] = ()
    pii_key: str = ""
    login_link_max_age: str = "7d"
    session_max_age: str = "30d"

    @field_validator("login_link_max_age", "session_max_age")
    @classmethod
    def _duration(cls, value: str) -> str:
        return check_duration(value, positive=True)


class MailboxSettings(_Section):
    """One shared mailbox: IMAP in (optional), SMTP out, the address replies come from."""

    name: str
    from_address: str
    from_name: str = ""
    team: str = ""
    imap_host: str = ""
    imap_port: int = 993
    imap_tls: Literal["tls", "starttls", "none"] = "tls"
    imap_user: str = ""
    imap_password: str = ""
    imap_xoauth2_token: str = ""
    folder: str = "INBOX"
    processed: str = "flag:$Claimdesk"  # or "move:Archive"
    sent_folder: str = "Sent"
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_tls: Literal["tls", "starttls", "none"] = "starttls"
    smtp_user: str = ""
    smtp_password: str = ""
    # OAuth2 access token for SMTP AUTH XOAUTH2 (Gmail / Microsoft 365), used instead of the password
    smtp_xoauth2_token: str = ""
    smtp_timeout_seconds: float = 30.0
    max_attachment_bytes: int = 20 * 1024 * 1024
    backfill_days: int = Field(default=7, ge=0)  # first start: skip older mail

    _name = field_validator("name")(_check_name)


class FieldMapping(_Section):
    """Which posted field holds what. Dotted paths reach into nested JSON (``customer.email``)."""

    email: str = "email"
    name: str = "name"
    subject: str = "subject"
    message: str = "message"
    company: str = "company"
    country: str = "country"
    phone: str = "phone"
    language: str = "language"
    category: str = "category"


class CategorySettings(_Section):
    """A category (``quotation``, ``sample``, ``complaint`` ...) recognised by keywords when the
    form does not say; keywords match like rule keywords (word boundaries, CJK substrings)."""

    name: str
    keywords: tuple[str, ...] = ()

    _name = field_validator("name")(_check_name)


class WebhookSettings(_Section):
    """An inbound webhook at ``POST /webhooks/{name}``; authenticated by HMAC secret or token."""

    name: str
    secret: str = ""  # HMAC-SHA256 key: X-Claimdesk-Signature over "timestamp.body" (X-Claimdesk-Timestamp) or the body
    token: str = ""  # or a shared token in X-Claimdesk-Token / Authorization: Bearer
    team: str = ""
    mailbox: str = ""
    fields: FieldMapping = FieldMapping()
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)

    _name = field_validator("name")(_check_name)

    @model_validator(mode="after")
    def _authenticated(self) -> WebhookSettings:
        if not self.secret and not self.token:
            raise ValueError(
                f"webhook {self.name!r} has neither 'secret' nor 'token'; every inbound path is "
                'authenticated: add secret = "env:WEBHOOK_SECRET"'
            )
        return self


class SlaSettings(_Section):
    """Service levels of a team (durations like ``"15m"``)."""

    claim_within: str = "15m"
    first_reply_within: str = "2h"
    nudge_every: str = "15m"
    escalate_after: str = "30m"
    business_time_only: bool = True
    return_to_pool: bool = False

    @field_validator("claim_within", "first_reply_within", "nudge_every", "escalate_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        return check_duration(value)


class DestinationSettings(_Section):
    """Where a team's cards go on each platform (empty: not on that platform)."""

    slack_channel: str = ""
    dingtalk_conversation: str = ""  # openConversationId of the group
    wecom_chat: str = ""  # appchat chatid


#: Why a deal is lost, as reps pick it (``[[teams]] lost_reasons`` replaces the list).
#: Stored as the chosen entry plus the rep's words, so the digest can count each.
LOST_REASONS: tuple[str, ...] = ("price", "lead time", "MOQ", "no answer", "competitor", "other")


class TeamSettings(_Section):
    """A team: who is in it, where its cards go, its clock."""

    name: str
    display_name: str = ""
    timezone: str = "Asia/Shanghai"
    locale: Locale = "zh-CN"
    members: tuple[str, ...] = ()
    leads: tuple[str, ...] = ()
    managers: tuple[str, ...] = ()
    mailbox: str = ""  # mailbox replies go out through when the inquiry came by webhook
    destinations: DestinationSettings = DestinationSettings()
    sla: SlaSettings = SlaSettings()
    business_hours: dict[str, list[str]] = Field(
        default_factory=lambda: {"mon-fri": ["09:00-18:00"]}
    )
    holidays: tuple[str, ...] = ()  # "2026-10-01" or "2026-10-01..2026-10-07"
    workdays: tuple[str, ...] = ()  # make-up working days (调休)
    digest_at: time = time(9, 0)
    sla_by_priority: dict[Priority, SlaSettings] = Field(
        default_factory=dict
    )  # e.g. a tighter [teams.sla_by_priority.vip]
    out_of_hours_ack: str = ""  # reply template (e.g. "out_of_hours") mailed once to a customer who writes out of hours; "" = off
    # Who gets a new inquiry: "pool" (claimed from the card), "round_robin" or "least_open"
    # among the members on duty (not away, under max_open, speaking the language if any does).
    assignment: Literal["pool", "round_robin", "least_open"] = "pool"
    sticky: bool = False  # a returning customer goes to the rep who had them last, if on duty
    # Reasons a rep picks when marking an inquiry lost ("other" always allows free text).
    lost_reasons: tuple[str, ...] = LOST_REASONS

    @field_validator("lost_reasons")
    @classmethod
    def _reasons(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(dict.fromkeys(r.strip() for r in value if r.strip()))
        if not cleaned:
            raise ValueError('give at least one lost reason, e.g. ["price", "other"]')
        if any(len(r) > 60 or ":" in r for r in cleaned):
            raise ValueError("each lost reason is a short label (up to 60 characters, no ':')")
        if not any(r.lower() == "other" for r in cleaned):
            cleaned += ("other",)  # free text always has a home
        return cleaned

    _name = field_validator("name")(_check_name)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name like 'Asia/Shanghai'"
            ) from exc
        return value

    @field_validator("business_hours")
    @classmethod
    def _hours(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        parse_calendar_spec(value)  # the calendar's own parser: its messages name the entry
        return value

    @field_validator("holidays", "workdays")
    @classmethod
    def _dates(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        parse_dates(info.field_name or "date", value)
        return value

    @model_validator(mode="after")
    def _calendar(self) -> TeamSettings:
        # The parts are valid one by one; together they must still make one calendar.
        try:
            parse_calendar_spec(
                self.business_hours, holidays=self.holidays, makeup_days=self.workdays
            )
        except ValueError as exc:
            raise ValueError(
                f"{exc}; remove each such date from holidays or from workdays"
            ) from None
        return self

    @property
    def title(self) -> str:
        return self.display_name or self.name

    def rep_ids(self) -> tuple[str, ...]:
        """Everyone who may act on the team's inquiries, members first."""
        seen: dict[str, None] = {}
        for rep in (*self.members, *self.leads, *self.managers):
            seen.setdefault(rep, None)
        return tuple(seen)


class RepSettings(_Section):
    """A person: identities on each platform, languages, away flag."""

    id: str
    name: str
    email: str = ""
    slack_id: str = ""
    dingtalk_id: str = ""
    wecom_id: str = ""
    languages: tuple[str, ...] = ()
    away: bool = False
    max_open: int = Field(
        default=0, ge=0
    )  # open inquiries before assignment skips the rep; 0: no limit
    backup: str = ""
    #: false: no notice emails for this rep (nudges, escalations, hand-overs, the digest)
    #: even where no chat reaches them; ``/web/for-you`` still lists them
    email_notices: bool = True

    _id = field_validator("id")(_check_name)

    def platform_id(self, platform: str) -> str:
        """The rep's user id on ``platform`` ("slack", "dingtalk", "wecom"); the rep id on
        "web"; empty when none is configured (or the platform keeps no id in the config)."""
        ids = {
            "web": self.id,
            "slack": self.slack_id,
            "dingtalk": self.dingtalk_id,
            "wecom": self.wecom_id,
        }
        return ids.get(platform, "")


class RuleCondition(_Section):
    """What a rule matches; every given condition must hold (AND), lists are OR within."""

    source: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    country: tuple[str, ...] = ()
    language: tuple[str, ...] = ()
    category: tuple[str, ...] = ()
    sender_domain: tuple[str, ...] = ()
    hours: str = ""  # "in" | "out" of the team's business hours; empty: any

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        if value not in ("", "in", "out"):
            raise ValueError('hours must be "in" or "out" (or left out)')
        return value


class RuleAction(_Section):
    """What a matching rule decides. ``continue = true``: apply this, then keep looking
    (a later match overrides team, priority and assignment; tags add up)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    team: str = ""
    priority: Priority | None = None
    assign: str = ""
    tags: tuple[str, ...] = ()
    spam: bool = False
    continue_: bool = Field(default=False, alias="continue")


class RuleSettings(_Section):
    """A routing rule: first match wins, in file order."""

    name: str
    when: RuleCondition = RuleCondition()
    unless: RuleCondition = RuleCondition()  # the rule does not match if any of these holds
    then: RuleAction = RuleAction()


class TemplatesSettings(_Section):
    """Reply templates: a directory of ``<lang>/<name>.j2`` files (built-in ones are always there)."""

    directory: str = ""
    default_language: str = "en"


class SlackSettings(_Section):
    """Slack app credentials; empty bot_token: Slack is off."""

    bot_token: str = ""
    signing_secret: str = ""
    app_token: str = ""
    api_base_url: str = "https://slack.com/api/"


class DingTalkSettings(_Section):
    """DingTalk app credentials; empty client_id: DingTalk is off."""

    client_id: str = ""
    client_secret: str = ""
    robot_code: str = ""
    card_template_id: str = ""
    api_base_url: str = "https://api.dingtalk.com"


class WeComSettings(_Section):
    """WeCom (企业微信) app credentials; empty corp_id: WeCom is off."""

    corp_id: str = ""
    secret: str = ""
    agent_id: int = 0
    token: str = ""
    encoding_aes_key: str = ""
    api_base_url: str = "https://qyapi.weixin.qq.com"


class Settings(_Section):
    """The whole configuration file."""

    server: ServerSettings = ServerSettings()
    store: StoreSettings = StoreSettings()
    security: SecuritySettings = SecuritySettings()
    mailboxes: tuple[MailboxSettings, ...] = ()
    webhooks: tuple[WebhookSettings, ...] = ()
    teams: tuple[TeamSettings, ...] = ()
    reps: tuple[RepSettings, ...] = ()
    rules: tuple[RuleSettings, ...] = ()
    categories: tuple[CategorySettings, ...] = ()
    templates: TemplatesSettings = TemplatesSettings()
    slack: SlackSettings = SlackSettings()
    dingtalk: DingTalkSettings = DingTalkSettings()
    wecom: WeComSettings = WeComSettings()
    default_team: str = ""

    @model_validator(mode="after")
    def _references(self) -> Settings:
        problems: list[str] = []
        teams = {t.name for t in self.teams}
        reps = {r.id for r in self.reps}
        mailboxes = {m.name for m in self.mailboxes}
        known_teams = ", ".join(t.name for t in self.teams) or "none"
        if not self.teams:
            problems.append("teams: at least one [[teams]] entry is needed")
        for kind, names in (
            ("teams", [t.name for t in self.teams]),
            ("reps", [r.id for r in self.reps]),
            ("mailboxes", [m.name for m in self.mailboxes]),
            ("webhooks", [w.name for w in self.webhooks]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                problems.append(f"{kind}: duplicate name(s) {', '.join(dupes)}")
        if self.default_team and self.default_team not in teams:
            problems.append(
                f"default_team: no team named {self.default_team!r}; known teams: {known_teams}"
            )
        for i, team in enumerate(self.teams):
            for role in ("members", "leads", "managers"):
                for rep in getattr(team, role):
                    if rep not in reps:
                        problems.append(
                            f"teams[{i}].{role}: {rep!r} is not a rep; add a [[reps]] entry with id = {rep!r}"
                        )
            if team.mailbox and team.mailbox not in mailboxes:
                problems.append(f"teams[{i}].mailbox: no mailbox named {team.mailbox!r}")
        for i, box in enumerate(self.mailboxes):
            if box.team and box.team not in teams:
                problems.append(
                    f"mailboxes[{i}].team: no team named {box.team!r}; known teams: {known_teams}"
                )
        for i, hook in enumerate(self.webhooks):
            if hook.team and hook.team not in teams:
                problems.append(
                    f"webhooks[{i}].team: no team named {hook.team!r}; known teams: {known_teams}"
                )
            if hook.mailbox and hook.mailbox not in mailboxes:
                problems.append(f"webhooks[{i}].mailbox: no mailbox named {hook.mailbox!r}")
        for i, rule in enumerate(self.rules):
            if rule.then.team and rule.then.team not in teams:
                problems.append(
                    f"rules[{i}].then.team (rule {rule.name!r}): no team named "
                    f"{rule.then.team!r}; known teams: {known_teams}"
                )
            strategies = ("pool", "round_robin", "least_open")
            if rule.then.assign and rule.then.assign not in reps | set(strategies):
                problems.append(
                    f"rules[{i}].then.assign (rule {rule.name!r}): {rule.then.assign!r} is neither "
                    f"a rep nor a strategy; use one of {', '.join(sorted(reps))}"
                    f" or {', '.join(strategies)}"
                )
        for i, rep in enumerate(self.reps):
            if rep.backup and rep.backup not in reps:
                problems.append(f"reps[{i}].backup: no rep named {rep.backup!r}")
        if problems:
            raise ValueError("\n".join(problems))  # one line each (config/loading.py)
        return self

    # Lookups used everywhere (the clock asks dozens of times per due inquiry): dicts built on
    # first use (``_index_of``), not linear scans.
    def team(self, name: str) -> TeamSettings:
        return _index_of(self)[0][name]  # KeyError(name) when there is no such team

    def rep(self, rep_id: str) -> RepSettings | None:
        return _index_of(self)[1].get(rep_id)

    def mailbox(self, name: str) -> MailboxSettings | None:
        return next((m for m in self.mailboxes if m.name == name), None)

    def webhook(self, name: str) -> WebhookSettings | None:
        return next((w for w in self.webhooks if w.name == name), None)

    @property
    def fallback_team(self) -> str:
        return self.default_team or self.teams[0].name


_Index = tuple[dict[str, TeamSettings], dict[str, RepSettings]]

#: id(settings) -> (settings, its teams, its reps, the index). Kept outside the model so equal
#: settings stay equal (pydantic compares private attributes too); checked by identity of the
#: settings and of its tuples, so a reused id or a copy with other teams never answers stale.
_INDEXES: dict[int, tuple[Settings, tuple[TeamSettings, ...], tuple[RepSettings, ...], _Index]] = {}


def _index_of(settings: Settings) -> _Index:
    known = _INDEXES.get(id(settings))
    if (
        known is not None
        and known[0] is settings
        and known[1] is settings.teams
        and known[2] is settings.reps
    ):
        return known[3]
    teams: dict[str, TeamSettings] = {}
    for team in settings.teams:
        teams.setdefault(team.name, team)  # the first one wins, as a scan would
    reps: dict[str, RepSettings] = {}
    for rep in settings.reps:
        reps.setdefault(rep.id, rep)
    if len(_INDEXES) > 64:
        _INDEXES.clear()
    _INDEXES[id(settings)] = (settings, settings.teams, settings.reps, (teams, reps))
    return teams, reps
