"""The spam score: each signal counted once with its reason; a real inquiry is never spam."""

from __future__ import annotations

import pytest

from routing.spam import SpamInput, score

REAL = (
    "Hello, we are a distributor in Mexico and need a quotation for 2 x 40HQ containers of "
    "LED panels, 600x600, 40W. Please send FOB Ningbo price and lead time.\nBest regards, Ana"
)
SEO = (
    "Dear Sir/Madam, we are an SEO services company. We can rank your website on the first "
    "page of Google and increase your traffic with quality backlinks. Click here: "
    "http://a.example http://b.example http://c.example http://d.example"
)


@pytest.mark.parametrize(
    ("data", "spam", "reason"),
    [
        (SpamInput("ana@distribuidora.com.mx", "Quotation LED panels", REAL), False, ""),
        (SpamInput("x@agency.example", "Rank #1", SEO), True, "bulk-mail phrases"),
        (SpamInput("n@news.example", "Newsletter", "Our news", headers={"List-Id": "<n.example>",
          "Authentication-Results": "mx; spf=fail smtp.mailfrom=news.example; dkim=fail"}),
         True, "SPF failed"),
        (SpamInput("n@news.example", "Deal", "Limited time offer! Click here",
                   headers={"List-Unsubscribe": "<mailto:u@x>", "Authentication-Results": "dmarc=fail"}),
         True, "DMARC failed"),
        (SpamInput("a@buyer.de", "RFQ", REAL, blocked=True), True, "blocked"),
        (SpamInput("x@agency.example", "Rank #1", SEO, allowed=True), False, "not spam before"),
        (SpamInput("a@forms.example", "Order", "Need 200 pcs", reply_to="buyer@real.de"), False, "Reply-To on real.de"),
        (SpamInput("bot@flood.example", "Hi", "Need 200 pcs", recent_from_sender=20), False, "20 messages"),
    ],
)  # fmt: skip
def test_spam_verdicts_with_reasons(data: SpamInput, spam: bool, reason: str) -> None:
    verdict = score(data)
    assert verdict.spam is spam, verdict
    if reason:
        assert any(reason in r for r in verdict.reasons), verdict.reasons


def test_a_real_inquiry_scores_nothing() -> None:
    verdict = score(SpamInput("ana@distribuidora.com.mx", "Quotation", REAL))
    assert (verdict.score, verdict.reasons) == (0, ())
