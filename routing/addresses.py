"""Email address validation: one pure function every path uses (forms, mail, what a rep types).

Accepted: ``local@domain`` with a dot-atom local part of printable ASCII
(RFC 5322 ``atext``, at most 64 characters), and a domain of at least two
labels (letters, digits, hyphens; at most 63 each; internationalized names are
accepted and checked through their IDNA form), a total of at most 254
characters. Refused, on purpose: quoted local parts, comments, IP-literal
domains, display names, and non-ASCII local parts (our SMTP path does not
negotiate SMTPUTF8, so such an address could be stored but never answered).
No I/O: nothing is looked up in DNS.
"""

from __future__ import annotations

import re

__all__ = ["address_problem", "normalize_address"]

_ATEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def normalize_address(value: str) -> str:
    """Trim, and lower-case the domain (the local part is the receiver's business)."""
    local, at, domain = value.strip().rpartition("@")
    return f"{local}@{domain.lower()}" if at else value.strip()


def _ascii_domain(domain: str) -> str | None:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def address_problem(value: str) -> str | None:
    """Why ``value`` is not an address we can send to, or None when it is."""
    if not value:
        return "empty"
    if value != value.strip() or any(c.isspace() for c in value):
        return "contains spaces or line breaks"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains control characters"
    if value.count("@") != 1:
        return "needs exactly one @"
    if len(value) > 254:
        return "longer than 254 characters"
    local, _, domain = value.partition("@")
    if not local or len(local) > 64:
        return "the part before @ must have 1 to 64 characters"
    if not local.isascii():
        return "the part before @ must be ASCII"
    if not _ATEXT.match(local):
        return "the part before @ has characters or dots an address cannot have"
    if not domain:
        return "no domain after @"
    ascii_domain = domain if domain.isascii() else _ascii_domain(domain)
    if ascii_domain is None:
        return "the domain is not a valid internationalized name"
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return "the domain must be like example.com (letters, digits, hyphens, dots)"
    if labels[-1].isdigit():
        return "the domain must end with a name, not a number"
    return None
