"""The shared raw-email corpus (``../shared/corpus/emails``) and what each message must read as.

Used by the parser tests and by the Dovecot round-trip tests, so both assert the same
expectations from ``MANIFEST.tsv``. When the corpus is missing the tests skip, except
under ``CI=true`` where a missing corpus is a failure.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.mail.parse import ParsedEmail

CORPUS_DIR = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "emails"
MANIFEST = CORPUS_DIR / "MANIFEST.tsv"


@dataclass(frozen=True)
class CorpusCase:
    """One MANIFEST row: a corpus file and how a person reads it."""

    file: str
    features: frozenset[str]
    from_addresses: tuple[str, ...]
    subject: str
    has_attachment: bool
    notes: str

    @property
    def path(self) -> Path:
        """Where the raw message lives."""
        return CORPUS_DIR / self.file

    @property
    def expected_kind(self) -> str:
        """The ``ParsedEmail.kind`` the features and file name call for."""
        if "mdn" in self.features or "read-receipt" in self.features:
            return "receipt"
        if any(f.startswith("bounce") for f in self.features) or re.search(
            r"bounce|dsn|ndr", self.file
        ):
            return "bounce"
        if "auto-reply" in self.features:
            return "auto_reply"
        return "message"


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require_corpus() -> None:
    """Skip (or, under CI=true, fail) when the shared corpus is not beside the repo."""
    if MANIFEST.is_file():
        return
    reason = f"email corpus not found at {CORPUS_DIR} (expected ../shared beside the repo)"
    if _ci():
        pytest.fail(f"{reason}; CI=true requires it")
    pytest.skip(reason)


def load_manifest() -> list[CorpusCase]:
    """All MANIFEST rows, or [] when the corpus is absent."""
    if not MANIFEST.is_file():
        return []
    cases: list[CorpusCase] = []
    with MANIFEST.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            cases.append(
                CorpusCase(
                    file=row["file"],
                    features=frozenset(f.strip() for f in row["features"].split(",") if f),
                    from_addresses=tuple(
                        a.strip().lower() for a in row["expected_from_addr"].split(";") if a.strip()
                    ),
                    subject=" ".join(row["expected_subject_decoded"].split()),
                    has_attachment=row["expected_has_attachment"].strip() == "yes",
                    notes=row["notes"],
                )
            )
    return cases


def corpus_params() -> list[Any]:
    """pytest parameters, one per corpus file (a single placeholder when it is absent)."""
    cases = load_manifest()
    if not cases:
        return [pytest.param(None, id="corpus-missing")]
    return [pytest.param(case, id=case.file.removesuffix(".eml")) for case in cases]


def check_expectations(case: CorpusCase, parsed: ParsedEmail) -> None:
    """Assert what MANIFEST.tsv says about this message."""
    assert parsed.from_addresses == case.from_addresses, "From address(es)"
    assert parsed.from_address == (case.from_addresses[0] if case.from_addresses else "")
    if case.subject:
        assert " ".join(parsed.subject.split()) == case.subject, "decoded Subject"
    assert parsed.has_attachment is case.has_attachment, (
        f"has_attachment; attachments: {[(a.filename, a.content_type, a.inline) for a in parsed.attachments]}"
    )
    assert parsed.kind == case.expected_kind, "kind"
