"""A spam score a sales team can read: each signal adds points and says why. Pure, no I/O.

Signals (points in brackets; ``THRESHOLD`` or more is spam):
- headers: bulk mail (``List-Id`` / ``List-Unsubscribe`` / ``Precedence: bulk`` [2]),
  ``Auto-Submitted`` other than ``no`` [2], SPF or DKIM ``fail`` in
  ``Authentication-Results`` / ``Received-SPF`` [2 each], DMARC fail [3];
- content: link density (more than 3 links, or links making up much of a short text) [1–3],
  SEO / lead-gen / crypto boilerplate phrases [2 each, at most 6];
- identity: Reply-To on another domain than From [1], a free-mail sender writing as a
  "company" SEO agency is caught by the phrases;
- rate: many messages from one sender in the last hour [1–3] (the caller counts);
- the team's own verdicts: a blocked sender or domain [10], an allowed one [-10].
A message from a sender the team marked "not spam" before is never spam by content alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from routing.keywords import find_keywords

THRESHOLD = 5

_BOILERPLATE = (
    "seo services", "search engine optimization", "first page of google", "rank your website",
    "backlinks", "guest post", "increase your traffic", "web design services",
    "website redesign", "lead generation", "we can get you more leads", "email list",
    "b2b database", "decision makers list", "crypto", "bitcoin", "investment opportunity",
    "casino", "viagra", "loan offer", "unsubscribe", "click here", "limited time offer",
    "dear sir/madam, we are", "app development company", "outsourcing partner",
)  # fmt: skip
_LINK = re.compile(r"https?://|www\.", re.I)
_AUTH_FAIL = re.compile(r"\b(spf|dkim|dmarc)\s*=\s*(fail|softfail|permerror)\b", re.I)


@dataclass(frozen=True)
class SpamInput:
    """What the score looks at."""

    sender: str
    subject: str = ""
    text: str = ""
    reply_to: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    recent_from_sender: int = 0  # messages from this sender in the last hour, before this one
    blocked: bool = False  # sender or domain blocked by the team ("Spam" on a card)
    allowed: bool = False  # marked "not spam" before


@dataclass(frozen=True)
class SpamVerdict:
    """Points, the verdict and the reasons (for the card, the inquiry page and --explain)."""

    score: int
    spam: bool
    reasons: tuple[str, ...]


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip().lower()


def score(data: SpamInput) -> SpamVerdict:
    """Add up the signals."""
    points = 0
    reasons: list[str] = []

    def add(n: int, why: str) -> None:
        nonlocal points
        points += n
        reasons.append(f"{'+' if n >= 0 else ''}{n} {why}")

    if data.blocked:
        add(10, "sender or domain blocked by the team")
    if data.allowed:
        add(-10, "sender marked not spam before")
    headers = {k.lower(): v for k, v in data.headers.items()}
    if "list-id" in headers or "list-unsubscribe" in headers:
        add(2, "mailing-list headers (List-Id / List-Unsubscribe)")
    elif headers.get("precedence", "").strip().lower() in ("bulk", "list", "junk"):
        add(2, f"Precedence: {headers['precedence'].strip()}")
    auto = headers.get("auto-submitted", "").strip().lower()
    if auto and not auto.startswith("no"):
        add(2, f"Auto-Submitted: {auto}")
    auth = " ".join(headers.get(h, "") for h in ("authentication-results", "received-spf"))
    failed = {m.group(1).lower() for m in _AUTH_FAIL.finditer(auth)}
    if headers.get("received-spf", "").strip().lower().startswith(("fail", "softfail")):
        failed.add("spf")
    for method in sorted(failed):
        add(3 if method == "dmarc" else 2, f"{method.upper()} failed")
    body = f"{data.subject}\n{data.text}"
    links = len(_LINK.findall(body))
    words = max(1, len(body.split()))
    if links > 3 or (links >= 2 and words / links < 15):
        add(min(3, 1 + links // 4), f"{links} links in {words} words")
    phrases = find_keywords(_BOILERPLATE, body)
    if phrases:
        add(min(6, 2 * len(phrases)), f"bulk-mail phrases: {', '.join(phrases[:4])}")
    if data.reply_to and _domain(data.reply_to) and _domain(data.reply_to) != _domain(data.sender):
        add(1, f"Reply-To on {_domain(data.reply_to)}, From on {_domain(data.sender)}")
    if data.recent_from_sender >= 5:
        add(
            min(3, data.recent_from_sender // 5),
            f"{data.recent_from_sender} messages in the last hour",
        )
    spam = points >= THRESHOLD and not (data.allowed and not data.blocked)
    return SpamVerdict(points, spam, tuple(reasons))
