"""parse_email against the shared 75-message corpus, plus focused unit tests.

Each corpus file is checked against MANIFEST.tsv (From, decoded Subject, has-attachment,
bounce/receipt classification); a table of further readings pins the cases the MANIFEST
notes call hard (mislabelled charsets, RFC 2231/2047 file names, display names, bounces).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.mail.charsets import decode_text, python_codecs_for_label
from connectors.mail.parse import ParsedEmail, make_snippet, parse_email
from tests.support.mail_corpus import (
    CorpusCase,
    check_expectations,
    corpus_params,
    require_corpus,
)


@pytest.mark.parametrize("case", corpus_params())
def test_corpus_message_reads_as_manifest_says(case: CorpusCase | None) -> None:
    require_corpus()
    assert case is not None
    parsed = parse_email(case.path.read_bytes())
    check_expectations(case, parsed)


# file -> {field: expected}; "text~" means "text contains", "attachments" lists file names.
READINGS: dict[str, dict[str, Any]] = {
    "spamscope_zh_gb2312_declared_utf8_body.eml": {
        "text~": "你好！我公司可代开各类增值税发票，17%专用发票",
        "from_name": "张先生",
        "to": ("danglüe@email.com",),
    },
    "mikel_zh_big5_double_encoded_mojibake.eml": {"subject~": "(大補泡麵專賣) 大家說英語"},
    "phpmmp_ja_ndr_gb2312_label_gbk_bytes.eml": {
        "text~": "次の受信者またはグループへの配信に失敗しました",
        "subject": "",
    },
    "mikel_ja_shift_jis_8bit.eml": {"text~": "このメールはテスト用のメールです。"},
    "mozilla_ja_cp932_subject_body.eml": {"text~": "ここに本文がきます。"},
    "mozilla_ja_sjis_declared_utf8.eml": {"text~": "メールを簡単に。"},
    "mikel_ja_iso2022jp_reply_replyto.eml": {"reply_to": ("rudeboyjet@gmail.com",)},
    "mikel_ja_rfc2231_long_filename.eml": {
        "attachments": ("かきくけこかきくけこかきくけこかきくけこかきくけこ.txt",)
    },
    "webklex_ko_ks_c_5601_headers.eml": {"from_name": "김 현진"},
    "phpmmp_ko_ks_c_5601_jpeg_filename.eml": {"attachments": ("사진.JPG", "ATT00001.txt")},
    "webklex_x_gbk_charset_alias.eml": {"text": "Hi"},
    "mozilla_ru_koi8r_subject_body_b64.eml": {"text": "Вопрос"},
    "mozilla_ru_win1251_subject_body_b64.eml": {"text": "Вопрос"},
    "mozilla_ru_koi8u_no_charset.eml": {"text~": "У меня большая семья из шести человек"},
    "imaptools_ru_win1251_8bit_fwd_rfc822.eml": {
        "from_name": "Каукин Владимир",
        "attachments": ("Message01.eml",),
    },
    "imaptools_ru_replyto_two_addrs_inline_jpeg.eml": {
        "reply_to": ("foma@company.ru", "petr@company.ru"),
        "attachments": ("collector.jpg",),
    },
    "webklex_ru_win1251_xlsx_bad_multipart_cte.eml": {
        "from_name": "Прайсы || ПартКом",
        "attachments": ("Price4VladDaKar.xlsx",),
    },
    "phpmmp_rfc2047_mixed_charsets_8bit_preamble.eml": {
        "cc~": "pirard@vm1.ulg.ac.be",
        "text~": "Det här är ett flerdelat meddelande",
    },
    "mikel_pt_raw_8bit_subject_quoted_encoded_word.eml": {"from_name": "Formação Frenetikpolis"},
    "mozilla_es_no_charset_8bit.eml": {"text~": "Aquí tenemos texto en español"},
    "spamscope_es_replyto_broken_multipart.eml": {"reply_to": ("smgesi4@gmail.com",)},
    "webklex_de_inquiry_rfc2047_xlsx_filename.eml": {
        "attachments": ("2021_Mängelliste_0819306.xlsx",)
    },
    "mikel_et_inquiry_rfc2231_latin1_filename.eml": {"attachments": ("Eelanalüüsi päring.jpg",)},
    "mikel_raw_utf8_attachment_filename.eml": {"attachments": ("ciële.txt",)},
    "mozilla_el_iso8859-7_qp_png.eml": {"text~": "Καλημέρα", "attachments": ("attach.png",)},
    "mozilla_utf16le_body_b64.eml": {"text": "Hi Magnus, here a better UTF-16 encoded mail."},
    "mozilla_unknown_charset_alt.eml": {"text~": "Mätterhorn"},
    "phpmmp_pl_autoreply_no_from_win1250.eml": {"text": "toto"},
    "talon_outlook_reply_quoted_header_block.eml": {"snippet": "Hello"},
    "webklex_thread_root.eml": {"message_id": "<123@example.com>"},
    "webklex_thread_reply.eml": {"in_reply_to": "<123@example.com>", "references": ()},
    "webklex_github_reply_replyto_references.eml": {"reply_to~": "@reply.github.com"},
    "webklex_hotmail_re_reply_qp_alt.eml": {"references~": "@"},
    "mozilla_html_only_win1252_b64.eml": {"text": "Search for huhu", "html~": "<b>huhu</b>"},
    "mozilla_html_inline_image_related.eml": {"inline": ("kigaaldcbanejcbi.png",)},
    "nodemailer_nested_alt_related_unicode_names.eml": {
        "attachments": ("image.png", "nyan cat ✔.gif", "notes.txt")
    },
    "spamscope_quote_request_phish_uuencode_zip.eml": {
        "reply_to": ("purchasing@aquiilaindustries.com",),
        "sizes": {"REQUEST FOR QUOTE.zip": 251141},
    },
    "phpmmp_fr_pdf_latin1_filename.eml": {
        "attachments": ("50032266 CAR 11_MNPA00A01_9PTX_H00 ATT N° 1467829.pdf",)
    },
    "webklex_rfc2231_long_filenames_no_headers.eml": {"attachments~": "€àä"},
    "mikel_uuencode_cte_doc_reply.eml": {"sizes": {"PGP_Cmts_on_12-14-01_Pkg.doc": 0}},
    "mozilla_rfc822_part_base64_encoded.eml": {"payload~": b"Subject:"},
    "spamscope_display_name_is_address.eml": {
        "reply_to": ("ivan@example.com",),
        "cc": ("frank@example.com",),
        "to": ("charlie@example.com", "dave@example.com"),
    },
    "flanker_bounce_office365_dsn.eml": {
        "bounce_recipient": "noname@example.com",
        "bounce_original_message_id": "<20171013111011.20866.254C2F3A4D7AA526@ninomail.com>",
    },
    "flanker_bounce_aol_mailbox_full_dsn.eml": {
        "bounce_recipient": "user@aol.com",
        "bounce_original_message_id": "<4E326A95.3010907@example.com>",
    },
    "flanker_bounce_gmail_plain_text.eml": {
        "bounce_recipient": "awfawfawfawfawfaw@someserverhere.com",
        "bounce_original_message_id": (
            "<CAKsfaBUUGqVZiaMrmH3TRPfq1odQPtM7Ey5YW1SgyJJRHtAjgw@mail.gmail.com>"
        ),
    },
    "nodemailer_dsn_amazon_ses.eml": {"bounce_recipient": "xxxx@xxxx.com"},
    "spamscope_br_bounce_rfc822_headers.eml": {"bounce_recipient": "abh@netpar.com.br"},
    "flanker_mdn_read_receipt.eml": {
        "bounce_original_message_id": "<199509192301.23456@example.org>"
    },
    "mikel_dsn_two_status_parts.eml": {"bounce_original_message_id~": "@s.h.c.mail"},
}


def _check_reading(parsed: ParsedEmail, key: str, expected: Any) -> None:
    names = tuple(a.filename for a in parsed.attachments if not a.inline)
    if key == "attachments":
        assert names == expected
    elif key == "attachments~":
        assert any(expected in name for name in names), names
    elif key == "inline":
        assert tuple(a.filename for a in parsed.attachments if a.inline) == expected
    elif key == "sizes":
        sizes = {a.filename: a.size for a in parsed.attachments}
        for name, size in expected.items():
            assert sizes[name] == size
    elif key == "payload~":
        assert any(expected in a.payload for a in parsed.attachments)
    elif key.endswith("~"):
        value = getattr(parsed, key[:-1])
        haystack = " ".join(value) if isinstance(value, tuple) else str(value)
        assert expected in haystack, f"{key[:-1]}: {haystack[:300]!r}"
    else:
        assert getattr(parsed, key) == expected, key


@pytest.mark.parametrize(("file", "readings"), sorted(READINGS.items()))
def test_corpus_hard_cases_read_as_a_person_reads_them(file: str, readings: dict[str, Any]) -> None:
    require_corpus()
    from tests.support.mail_corpus import CORPUS_DIR

    parsed = parse_email((CORPUS_DIR / file).read_bytes())
    for key, expected in readings.items():
        _check_reading(parsed, key, expected)


def test_every_corpus_message_yields_text_or_a_reason() -> None:
    require_corpus()
    from tests.support.mail_corpus import load_manifest

    for case in load_manifest():
        parsed = parse_email(case.path.read_bytes())
        assert "\ufffd" not in parsed.subject or not case.subject, case.file
        assert "\r" not in parsed.text
        assert len(parsed.snippet) <= 301


# ------------------------------------------------------------------------ unit tests


def _mail(
    headers: str, body: str = "Hello\n", *, ctype: str = "text/plain; charset=utf-8"
) -> bytes:
    head = headers.strip("\n") + f"\nContent-Type: {ctype}\n"
    return (head + "\n" + body).encode("utf-8")


@pytest.mark.parametrize(
    "headers",
    [
        "From: a@example.com\nSubject: Hi\nAuto-Submitted: auto-replied",
        "From: a@example.com\nSubject: Hi\nAuto-Submitted: auto-generated",
        "From: a@example.com\nSubject: Hi\nX-Autoreply: yes",
        "From: a@example.com\nSubject: Hi\nX-Autorespond: Away",
        "From: a@example.com\nSubject: Hi\nPrecedence: auto_reply",
        "From: a@example.com\nSubject: Automatic reply: Your inquiry",
        "From: a@example.com\nSubject: Out of Office: Re: quote",
        "From: a@example.com\nSubject: Abwesenheitsnotiz: Anfrage",
        "From: a@example.com\nSubject: Réponse automatique : Devis",
        "From: a@example.com\nSubject: =?UTF-8?B?6Ieq5Yqo5Zue5aSNOiDor6Lnm5g=?=",
        "From: a@example.com\nSubject: 自動回覆: 詢價",
        "From: a@example.com\nSubject: Автоответ: запрос",
    ],
)
def test_auto_replies_are_recognised(headers: str) -> None:
    assert parse_email(_mail(headers)).kind == "auto_reply"


@pytest.mark.parametrize(
    "headers",
    [
        "From: a@example.com\nSubject: Re: automatic replies in our product\nAuto-Submitted: no",
        "From: a@example.com\nSubject: Quote request\nPrecedence: bulk",
        "From: a@example.com\nSubject: Office chairs: price list",
    ],
)
def test_ordinary_messages_are_not_auto_replies(headers: str) -> None:
    assert parse_email(_mail(headers)).kind == "message"


def test_bounce_outranks_auto_submitted() -> None:
    raw = _mail(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\n"
        "Subject: Undelivered Mail Returned to Sender\nAuto-Submitted: auto-replied"
    )
    assert parse_email(raw).kind == "bounce"


def test_snippet_trims_english_quoted_history() -> None:
    text = (
        "Thanks, we would like 500 units.\n"
        "Best regards,\nAnna\n\n"
        "On Mon, 3 Jun 2024 at 10:12, Sales Team <sales@example.com>\nwrote:\n"
        "> Dear Anna,\n> here is our offer.\n"
    )
    assert make_snippet(text) == "Thanks, we would like 500 units. Best regards, Anna"


def test_snippet_drops_interleaved_quote_lines() -> None:
    text = "> Can you ship to Lagos?\nYes, by sea.\n> Price?\nUSD 12 per unit."
    assert make_snippet(text) == "Yes, by sea. USD 12 per unit."


@pytest.mark.parametrize(
    "history",
    [
        "-----Original Message-----\nFrom: Sales\nSent: Monday\nTo: Anna\nSubject: offer\n\nold",
        "________________________________\nFrom: Sales <s@example.com>\nSent: Monday\n\nold",
        "From: Sales <s@example.com>\nSent: Monday, June 3, 2024 10:12\nTo: Anna\nSubject: offer",
        "-------- 原始邮件 --------\n发件人: 销售部 <s@example.com>\n日期: 2024年6月3日\n\n旧内容",
        '------------------ 原始邮件 ------------------\n发件人: "销售"<s@example.com>;\n',
        "发件人: 销售部 <s@example.com>\n发送时间: 2024年6月3日 10:12\n收件人: 张三\n主题: 报价",
        "发件人：销售部\n发送时间：2024年6月3日\n主题：报价",
        "在 2024年6月3日 10:12，销售部 <s@example.com> 写道：\n> 旧内容",
        "2024年6月3日(周一) 上午10:12 销售部 <s@example.com> 写道:\n> 旧内容",
        "Am 03.06.2024 um 10:12 schrieb Vertrieb <s@example.com>:\n> alt",
        "-- \nAnna Schmidt\nPurchasing",
    ],
)
def test_snippet_cuts_at_history_separators(history: str) -> None:
    text = f"我们需要500个，请报价。\nPlease quote FOB Ningbo.\n\n{history}\n"
    assert make_snippet(text) == "我们需要500个，请报价。 Please quote FOB Ningbo."


def test_snippet_is_about_300_characters() -> None:
    text = "word " * 200
    snippet = make_snippet(text)
    assert 260 <= len(snippet) <= 301
    assert snippet.endswith("…")


def test_html_only_mail_gets_readable_text() -> None:
    raw = _mail(
        "From: a@example.com\nSubject: html",
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<h1>Inquiry</h1><p>We need <b>200</b> pumps.</p><ul><li>DN50</li><li>DN80</li></ul>"
        "</body></html>",
        ctype="text/html; charset=utf-8",
    )
    parsed = parse_email(raw)
    assert "Inquiry" in parsed.text
    assert "We need 200 pumps." in parsed.text
    assert "DN50" in parsed.text
    assert "DN80" in parsed.text
    assert "color" not in parsed.text
    assert "<" not in parsed.text
    assert parsed.snippet.startswith("Inquiry")


def test_html_is_sanitized() -> None:
    raw = _mail(
        "From: a@example.com\nSubject: xss",
        '<p onclick="steal()">Hi<script>alert(1)</script></p>'
        '<a href="javascript:alert(2)">x</a><img src="cid:logo@x"><iframe src="https://e.vil"></iframe>',
        ctype="text/html; charset=utf-8",
    )
    parsed = parse_email(raw)
    assert parsed.html is not None
    assert "<script" not in parsed.html
    assert "alert(1)" not in parsed.html
    assert "onclick" not in parsed.html
    assert "javascript:" not in parsed.html
    assert "<iframe" not in parsed.html
    assert 'src="cid:logo@x"' in parsed.html
    assert "alert" not in parsed.text


def test_threading_headers_are_canonical() -> None:
    raw = _mail(
        "From: a@example.com\nMessage-ID:  < abc@x.example >\n"
        "In-Reply-To: <parent@x.example> (sent by Outlook)\n"
        "References:\n <root@x.example>\n\t<parent@x.example> <root@x.example>"
    )
    parsed = parse_email(raw)
    assert parsed.message_id == "<abc@x.example>"
    assert parsed.in_reply_to == "<parent@x.example>"
    assert parsed.references == ("<root@x.example>", "<parent@x.example>")


def test_addresses_read_as_a_person_reads_them() -> None:
    raw = _mail(
        'From: "Lee, Anna" <Anna.Lee@Example.COM>\n'
        "To: undisclosed-recipients:;\n"
        "Cc: sales@example.com (Sales Team), =?UTF-8?Q?Jos=C3=A9?= <jose@example.es>"
    )
    parsed = parse_email(raw)
    assert parsed.from_name == "Lee, Anna"
    assert parsed.from_address == "anna.lee@example.com"
    assert parsed.to == ()
    assert parsed.cc == ("sales@example.com", "jose@example.es")


def test_date_is_aware() -> None:
    parsed = parse_email(_mail("From: a@example.com\nDate: Mon, 3 Jun 2024 10:12:00 -0000"))
    assert parsed.date is not None
    assert parsed.date.tzinfo is not None
    assert parse_email(_mail("From: a@example.com\nDate: not a date")).date is None


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("gb2312", "gb18030"),
        ("GBK", "gb18030"),
        ("x-gbk", "gb18030"),
        ("us-ascii", "cp1252"),
        ("ISO-8859-1", "cp1252"),
        ("ks_c_5601-1987", "cp949"),
        ("Shift_JIS", "cp932"),
        ("big5", "big5hkscs"),
        ("x-mac-cyrillic", "mac_cyrillic"),
        ('"utf8";', "utf-8"),
        ("cp932", "cp932"),
        ("base64", None),
        ("bad-charset", None),
    ],
)
def test_charset_labels_follow_whatwg(label: str, codec: str | None) -> None:
    codecs = python_codecs_for_label(label)
    assert (codecs[0] if codecs else None) == codec


def test_gb2312_label_reads_gbk_only_characters() -> None:
    data = "次の受信者".encode("gbk")
    assert decode_text(data, "gb2312").text == "次の受信者"


def test_iso_8859_1_label_reads_windows_1252_punctuation() -> None:
    assert decode_text(b"\x93quoted\x94 \x80 5", "iso-8859-1").text == "\u201cquoted\u201d € 5"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe",
        b"\n\n\n",
        b"From \n",
        b"Content-Type: multipart/mixed; boundary=\n\n--\n--\n",
        b"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: message/rfc822\n\n--x--",
        b"Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n!!!!",
        b"Subject: =?x-unknown?Q?=FF=FE?= =?utf-8?B?@@@?=\nFrom: <<<@>>>, (((\n\nbody",
        b"Content-Type: text/plain; charset=utf-16\n\n\xff",
        b"Content-Type: text/plain; charset*=''\nContent-Disposition: attachment; filename*0*=%\n\nx",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\n"
        b"Content-Type: message/delivery-status\n\nFinal-Recipient: ;\n--b--",
        (
            "Content-Type: multipart/mixed; boundary=b\n\n" + "--b\nContent-Type: multipart/mixed; "
            "boundary=b\n\n" * 200
        ).encode(),
    ],
)
def test_malformed_messages_never_raise(raw: bytes) -> None:
    parsed = parse_email(raw)
    assert isinstance(parsed, ParsedEmail)


_HEADER_LINES = st.sampled_from(
    [
        b"From: ",
        b"Subject: ",
        b"Content-Type: multipart/mixed; boundary=",
        b"Content-Type: text/plain; charset=",
        b"Content-Transfer-Encoding: ",
        b"Content-Disposition: attachment; filename*=",
        b"--",
        b"\n",
        b"=?utf-8?b?",
        b"?=",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=40), _HEADER_LINES), max_size=30))
def test_garbage_never_raises(chunks: list[bytes]) -> None:
    parsed = parse_email(b"".join(chunks))
    assert isinstance(parsed, ParsedEmail)
    assert parsed.kind in ("message", "auto_reply", "bounce", "receipt")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    assert isinstance(parse_email(raw), ParsedEmail)
