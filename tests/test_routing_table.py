"""Routing through the real intake: 60+ inquiries (webhook forms and mails, ten languages)
each asserted for team, assignee, priority, language, country (and its source) and the spam
verdict; assignment's consequences (claimed, ``assigned`` event, DM) and spam's (no card,
"Spam" blocks the sender, "New" restores, allows and routes it) on the same service."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import col, select

from bot.runtime.mail_intake import MailboxIntake
from bot.usecases.card_actions import perform
from cards.actions import Action, Verb
from config.loading import settings_from_mapping
from connectors.mail.imap import FetchedMail
from connectors.memory import RecordingChannel
from connectors.web.auth import login_link
from connectors.webhooks import sign_body
from store.engine import transaction
from store.models import Event, Inquiry, Message, Outbox
from tests.conftest import API_TOKEN, SECRET, WEBHOOK_SECRET, MovableClock

OPEN = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 10:00 in Berlin
NIGHT = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)  # Monday 23:00 in Berlin


def config(db_url: str) -> dict[str, Any]:
    week = {"mon-fri": ["09:00-18:00"]}
    return {
        "server": {"host": "127.0.0.1", "port": 8080, "public_url": "http://claimdesk.test"},
        "store": {"url": db_url},
        "security": {"secret_key": SECRET, "api_tokens": [API_TOKEN]},
        "mailboxes": [
            {
                "name": "inbox",
                "from_address": "sales@seller.test",
                "team": "eu",
                "smtp_host": "127.0.0.1",
                "smtp_port": 1,
                "smtp_tls": "none",
            }
        ],
        "webhooks": [
            {"name": "website", "secret": WEBHOOK_SECRET, "team": "eu", "mailbox": "inbox"}
        ],
        "categories": [
            {"name": "quotation", "keywords": ["quote", "quotation", "报价", "angebot", "devis"]},
            {"name": "complaint", "keywords": ["complaint", "defect", "reklamation", "投诉"]},
        ],
        "teams": [
            {
                "name": "eu",
                "timezone": "Europe/Berlin",
                "locale": "en",
                "members": ["anna", "ben"],
                "business_hours": week,
            },
            {
                "name": "asia",
                "timezone": "Asia/Shanghai",
                "members": ["chen", "kenji"],
                "assignment": "least_open",
                "business_hours": {"mon-sun": ["00:00-24:00"]},
            },
            {
                "name": "latam",
                "timezone": "America/Mexico_City",
                "locale": "en",
                "members": ["diego", "paula"],
                "assignment": "round_robin",
                "business_hours": {"mon-sun": ["00:00-24:00"]},
            },
            {
                "name": "mena",
                "timezone": "Asia/Dubai",
                "locale": "en",
                "members": ["omar", "sami"],
                "assignment": "round_robin",
                "business_hours": {"mon-sun": ["00:00-24:00"]},
            },
            {"name": "east", "timezone": "Europe/Moscow", "locale": "en", "members": ["ivan"]},
        ],
        "reps": [
            {"id": "anna", "name": "Anna", "languages": ["de", "en"]},
            {"id": "ben", "name": "Ben", "languages": ["en", "fr"]},
            {"id": "chen", "name": "Chen", "languages": ["zh"]},
            {"id": "kenji", "name": "Kenji", "languages": ["ja"]},
            {"id": "diego", "name": "Diego", "languages": ["es"]},
            {"id": "paula", "name": "Paula", "languages": ["pt"]},
            {"id": "omar", "name": "Omar", "languages": ["ar"], "away": True},
            {"id": "sami", "name": "Sami", "languages": ["en"]},
            {"id": "ivan", "name": "Ivan", "languages": ["ru"]},
        ],
        "rules": [
            {
                "name": "containers",
                "when": {"keywords": ["container", "集装箱", "contenedor"]},
                "then": {"priority": "high", "continue": True},
            },
            {
                "name": "vip",
                "when": {"sender_domain": ["bigcorp.com"]},
                "then": {"team": "eu", "priority": "vip", "assign": "anna"},
            },
            {
                "name": "complaints",
                "when": {"category": ["complaint"]},
                "then": {"team": "eu", "priority": "high", "assign": "ben"},
            },
            {
                "name": "east-asia",
                "when": {"language": ["zh", "ja"]},
                "unless": {"country": ["SG"]},
                "then": {"team": "asia"},
            },
            {
                "name": "latam",
                "when": {"country": ["MX", "BR", "AR", "CO", "CL", "PE"]},
                "then": {"team": "latam"},
            },
            {"name": "iberia", "when": {"language": ["es", "pt"]}, "then": {"team": "latam"}},
            {"name": "arabic", "when": {"language": ["ar"]}, "then": {"team": "mena"}},
            {"name": "russian", "when": {"language": ["ru"]}, "then": {"team": "east"}},
            {
                "name": "night",
                "when": {"source": ["website"], "hours": "out"},
                "then": {"team": "eu", "priority": "high"},
            },
        ],
    }


@dataclass(frozen=True)
class Case:
    """One inquiry and what must become of it."""

    via: str  # "form" | "mail"
    email: str
    subject: str
    text: str
    team: str
    assignee: str | None
    priority: str
    language: str
    country: str
    country_source: str = ""
    spam: bool = False
    phone: str = ""
    form_country: str = ""
    category: str = ""
    at: datetime = OPEN
    headers: str = ""  # extra mail header lines
    reply_to: str = ""


EN_Q = "Hello, we would like to receive your best price for 500 units of the stainless steel valves, delivered to our warehouse."
DE_Q = "Guten Tag, wir bitten um ein Angebot für 500 Stück Edelstahlventile mit Lieferung an unser Lager in Hamburg."
FR_Q = "Bonjour, nous souhaitons recevoir votre meilleur prix pour 500 vannes en acier inoxydable livrées à notre entrepôt."
ES_Q = "Hola, quisiéramos recibir su mejor precio para 500 válvulas de acero inoxidable con entrega en nuestro almacén."
PT_Q = "Olá, gostaríamos de receber o seu melhor preço para 500 válvulas de aço inoxidável com entrega no nosso armazém."
RU_Q = "Здравствуйте, просим прислать вашу лучшую цену на 500 клапанов из нержавеющей стали с доставкой на наш склад."
ZH_Q = "您好，我们想采购500个不锈钢阀门，请提供最优价格和交货期，送到我们的仓库。"
JA_Q = "こんにちは、ステンレス製バルブを500個購入したいと考えています。最良の価格と納期を教えてください。"
AR_Q = (
    "مرحبا، نود الحصول على أفضل سعر لخمسمائة صمام من الفولاذ المقاوم للصدأ مع التسليم إلى مستودعنا."
)
IT_Q = "Buongiorno, vorremmo ricevere il vostro miglior prezzo per 500 valvole in acciaio inox con consegna al nostro magazzino."
SEO = (
    "Dear Sir/Madam, we are an SEO agency. We offer SEO services and backlinks to rank your website "
    "on the first page of Google. Click here: https://seo.example/a https://seo.example/b "
    "https://seo.example/c https://seo.example/d"
)
BULK = "List-Unsubscribe: <mailto:unsub@news.example>\r\nPrecedence: bulk\r\n"
SPF_FAIL = (
    "Authentication-Results: mx.seller.test; spf=fail smtp.mailfrom=x; dkim=fail; dmarc=fail\r\n"
)


# fmt: off
def cases() -> list[Case]:
    c: list[Case] = []
    # -- English, EU (pool; hours) ----------------------------------------------------------
    c += [
        Case("form", "j.smith@acme.co.uk", "Valves", EN_Q, "eu", None, "normal", "en", "GB", "domain"),
        Case("form", "tom@acme.com", "Valves", EN_Q, "eu", None, "normal", "en", "", ""),
        Case("form", "tom2@acme.com", "Valves", EN_Q, "eu", None, "normal", "en", "US", "phone", phone="+1 212 555 0100"),
        Case("form", "tom3@acme.com", "Valves", EN_Q, "eu", None, "normal", "en", "CA", "phone", phone="+1 416 555 0100"),
        Case("form", "amy@acme.com", "Valves", EN_Q, "eu", None, "normal", "en", "IE", "form", form_country="IE"),
        Case("form", "night@acme.com", "Valves", EN_Q, "eu", None, "high", "en", "", "", at=NIGHT),
        Case("form", "night2@acme.co.uk", "40ft container", EN_Q, "eu", None, "high", "en", "GB", "domain", at=NIGHT),
        Case("mail", "bob@acme.com", "Valves", EN_Q + "\n\nBob Miller\nAcme Ltd\nManchester, United Kingdom", "eu", None, "normal", "en", "GB", "signature"),
        Case("mail", "night3@acme.com", "Valves", EN_Q, "eu", None, "normal", "en", "", "", at=NIGHT),  # mail: not "website"
        Case("form", "ceo@bigcorp.com", "Valves", EN_Q, "eu", "anna", "vip", "en", "", ""),
        Case("mail", "buyer@bigcorp.com", "Valves", EN_Q, "eu", "anna", "vip", "en", "", ""),
        Case("form", "q@acme.com", "Complaint", "We have a complaint: the last shipment had a defect on every valve seat.", "eu", "ben", "high", "en", "", ""),
        Case("form", "q2@acme.com", "About our order", "Please check the attached photos of the shipment.", "eu", "ben", "high", "en", "", "", category="complaint"),
        Case("form", "sg@acme.com.sg", "Valves", ZH_Q, "eu", None, "normal", "zh", "SG", "domain"),
        Case("form", "it@ditta.it", "Valvole", IT_Q, "eu", None, "normal", "it", "IT", "domain"),
        Case("mail", "it2@ditta.it", "Valvole", IT_Q, "eu", None, "normal", "it", "IT", "domain"),
    ]
    # -- German, French: EU -----------------------------------------------------------------
    c += [
        Case("form", "k.becker@firma.de", "Anfrage", DE_Q, "eu", None, "normal", "de", "DE", "domain"),
        Case("mail", "m.weber@firma.de", "Anfrage", DE_Q, "eu", None, "normal", "de", "DE", "domain"),
        Case("form", "info@firma.at", "Anfrage", DE_Q, "eu", None, "normal", "de", "AT", "domain"),
        Case("form", "info@firma.ch", "Anfrage", DE_Q, "eu", None, "normal", "de", "CH", "domain"),
        Case("form", "x@gmail.com", "Anfrage", DE_Q, "eu", None, "normal", "de", "DE", "phone", phone="+49 30 1234567"),
        Case("mail", "y@gmail.com", "Anfrage Container", DE_Q, "eu", None, "high", "de", "", ""),
        Case("mail", "z@gmail.com", "Anfrage", DE_Q + "\n\nMit freundlichen Grüßen\nJan Vogel\nLand: Deutschland", "eu", None, "normal", "de", "DE", "signature"),
        Case("form", "paul@societe.fr", "Demande", FR_Q, "eu", None, "normal", "fr", "FR", "domain"),
        Case("mail", "luc@societe.fr", "Demande de devis", FR_Q, "eu", None, "normal", "fr", "FR", "domain"),
        Case("form", "eve@societe.be", "Demande", FR_Q, "eu", None, "normal", "fr", "BE", "domain"),
        Case("form", "marc@gmail.com", "Demande", FR_Q, "eu", None, "normal", "fr", "FR", "form", form_country="France"),
        Case("mail", "rel@forms.example", "Demande", FR_Q, "eu", None, "normal", "fr", "FR", "domain", reply_to="Claire Dubois <claire@maison.fr>"),
    ]
    # -- Spanish, Portuguese: LATAM round robin by language (diego: es, paula: pt) --------------
    c += [
        Case("form", "compras@empresa.com.mx", "Cotización", ES_Q, "latam", "diego", "normal", "es", "MX", "domain"),
        Case("mail", "ventas@empresa.com.mx", "Cotización", ES_Q, "latam", "diego", "normal", "es", "MX", "domain"),
        Case("form", "a@empresa.com.ar", "Cotización", ES_Q, "latam", "diego", "normal", "es", "AR", "domain"),
        Case("form", "b@empresa.es", "Cotización", ES_Q, "latam", "diego", "normal", "es", "ES", "domain"),
        Case("form", "c@gmail.com", "Cotización", ES_Q, "latam", "diego", "normal", "es", "CO", "phone", phone="+57 1 5550100"),
        Case("form", "d@empresa.cl", "Contenedor", ES_Q + " Necesitamos un contenedor de 40 pies.", "latam", "diego", "high", "es", "CL", "domain"),
        Case("mail", "e@gmail.com", "Cotización", ES_Q + "\n\nSaludos\nPedro Ruiz\nLima, Peru", "latam", "diego", "normal", "es", "PE", "signature"),
        Case("form", "f@empresa.com.br", "Cotação", PT_Q, "latam", "paula", "normal", "pt", "BR", "domain"),
        Case("mail", "g@empresa.com.br", "Cotação", PT_Q, "latam", "paula", "normal", "pt", "BR", "domain"),
        Case("form", "h@empresa.pt", "Cotação", PT_Q, "latam", "paula", "normal", "pt", "PT", "domain"),
        Case("form", "i@gmail.com", "Cotação", PT_Q, "latam", "paula", "normal", "pt", "BR", "phone", phone="+55 11 5550 1000"),
        Case("form", "j@empresa.com.mx", "Quote", EN_Q, "latam", "diego", "normal", "en", "MX", "domain"),
    ]
    # -- Chinese, Japanese: Asia least_open by language (chen: zh, kenji: ja) ------------------
    c += [
        Case("form", "li@buyer.cn", "询价", ZH_Q, "asia", "chen", "normal", "zh", "CN", "domain"),
        Case("mail", "wang@buyer.cn", "询价", ZH_Q, "asia", "chen", "normal", "zh", "CN", "domain"),
        Case("form", "zhang@qq.com", "集装箱报价", ZH_Q + "需要两个40尺集装箱。", "asia", "chen", "high", "zh", "CN", "phone", phone="+86 21 5555 0100"),
        Case("form", "chen@buyer.com.tw", "詢價", "您好，我們想採購500個不鏽鋼閥門，請提供最優價格和交貨期。", "asia", "chen", "normal", "zh", "TW", "domain"),
        Case("mail", "lee@buyer.hk", "询价", ZH_Q, "asia", "chen", "normal", "zh", "HK", "domain"),
        Case("form", "sato@buyer.co.jp", "見積もり", JA_Q, "asia", "kenji", "normal", "ja", "JP", "domain"),
        Case("mail", "tanaka@buyer.co.jp", "見積もり", JA_Q, "asia", "kenji", "normal", "ja", "JP", "domain"),
        Case("form", "suzuki@gmail.com", "見積もり", JA_Q, "asia", "kenji", "normal", "ja", "JP", "phone", phone="+81 3 5555 0100"),
        Case("form", "x@buyer.sg", "询价", ZH_Q, "eu", None, "normal", "zh", "SG", "domain"),  # unless SG
    ]
    # -- Arabic: MENA round robin, omar away: always sami; Russian: east (pool) ---------------
    c += [
        Case("form", "ali@company.ae", "طلب عرض سعر", AR_Q, "mena", "sami", "normal", "ar", "AE", "domain"),
        Case("mail", "hassan@company.sa", "طلب عرض سعر", AR_Q, "mena", "sami", "normal", "ar", "SA", "domain"),
        Case("form", "omar@gmail.com", "طلب", AR_Q, "mena", "sami", "normal", "ar", "EG", "phone", phone="+20 2 5555 0100"),
        Case("form", "q@company.com.eg", "طلب", AR_Q, "mena", "sami", "normal", "ar", "EG", "domain"),
        Case("form", "ivanov@zavod.ru", "Запрос", RU_Q, "east", None, "normal", "ru", "RU", "domain"),
        Case("mail", "petrov@zavod.ru", "Запрос", RU_Q, "east", None, "normal", "ru", "RU", "domain"),
        Case("form", "s@yandex.com", "Запрос", RU_Q, "east", None, "normal", "ru", "RU", "phone", phone="+7 495 555 0100"),
        Case("form", "k@zavod.by", "Запрос", RU_Q, "east", None, "normal", "ru", "BY", "domain"),
    ]
    # -- Spam: content, bulk headers, failed authentication ----------------------------------
    c += [
        Case("form", "seo1@seo-agency.example", "Rank your website", SEO, "eu", None, "normal", "en", "", "", spam=True),
        Case("mail", "seo2@seo-agency.example", "Rank your website", SEO, "eu", None, "normal", "en", "", "", spam=True),
        Case("mail", "news@shop.example", "Limited time offer", "Our newsletter: limited time offer on everything. Click here to buy.", "eu", None, "normal", "en", "", "", spam=True, headers=BULK),
        Case("mail", "ceo@paypal-secure.example", "Invoice", "Please see the invoice and pay today, thank you very much.", "eu", None, "normal", "en", "", "", spam=True, headers=SPF_FAIL),
        Case("mail", "promo@leads.example", "Grow your sales", "We do lead generation and sell a B2B database of decision makers. Unsubscribe anytime.", "eu", None, "normal", "en", "", "", spam=True),
        Case("form", "crypto@coins.example", "Investment", "A unique investment opportunity in bitcoin and crypto, click here now.", "eu", None, "normal", "en", "", "", spam=True),
        # a real inquiry with one link and a newsletter-ish word stays an inquiry
        Case("form", "real@acme.co.uk", "Valves", EN_Q + " Our catalogue: https://acme.co.uk/catalogue", "eu", None, "normal", "en", "GB", "domain"),
    ]
    return c
# fmt: on


def raw_mail(case: Case, n: int) -> bytes:
    head = (
        f"From: {case.email.split('@')[0].title()} <{case.email}>\r\n"
        f"To: sales@seller.test\r\nSubject: {case.subject}\r\n"
        f"Message-ID: <case-{n}@test>\r\nDate: Mon, 23 Nov 2026 08:00:00 +0000\r\n"
    )
    if case.reply_to:
        head += f"Reply-To: {case.reply_to}\r\nSender: Forms Relay <relay@forms.example>\r\n"
    return (
        head
        + case.headers
        + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        + "Content-Transfer-Encoding: 8bit\r\n\r\n"
        + case.text.replace("\n", "\r\n")
        + "\r\n"
    ).encode()


async def post_form(http: Any, case: Case, n: int) -> int:
    body = {
        "email": case.email,
        "name": "Customer",
        "subject": case.subject,
        "message": case.text,
        "phone": case.phone,
        "country": case.form_country,
        "category": case.category,
    }
    raw = json.dumps(body, ensure_ascii=False).encode()
    response = await http.post(
        "/webhooks/website",
        data=raw,
        headers={
            "Content-Type": "application/json",
            "X-Claimdesk-Signature": sign_body(WEBHOOK_SECRET, raw),
            "Idempotency-Key": f"case-{n}",
        },
    )
    assert response.status == 202, await response.text()
    return int((await response.json())["inquiry"])


def chat() -> RecordingChannel:
    return RecordingChannel(
        team_destinations={t: [f"C-{t}"] for t in ("eu", "asia", "latam", "mena", "east")}
    )


async def rows(service: Any, model: Any, *where: Any) -> list[Any]:
    async with transaction(service.ctx.sessions) as session:
        return list((await session.exec(select(model).where(*where))).all())


async def test_sixty_inquiries_reach_the_right_team_and_rep(
    sqlite_url: str, service_factory: Any, client_factory: Any
) -> None:
    clock = MovableClock(OPEN)
    settings = settings_from_mapping(config(sqlite_url), source="routing.toml", env={})
    service = await service_factory(settings, channels={"memory": chat()}, clock=clock)
    http = await client_factory(service, background=False)
    intake = MailboxIntake(service.ctx, settings.mailboxes[0])
    table = cases()
    assert len(table) >= 60
    assert len({c.language for c in table}) >= 8
    uid = itertools.count(1)
    failures: list[str] = []
    for n, case in enumerate(table):
        clock.now = case.at
        if case.via == "form":
            number = await post_form(http, case, n)
        else:
            outcome = await intake.handle(FetchedMail(next(uid), raw_mail(case, n), frozenset()))
            assert outcome.inquiry_id is not None, outcome
            number = outcome.inquiry_id
        (inquiry,) = await rows(service, Inquiry, col(Inquiry.id) == number)
        got = (
            inquiry.team,
            inquiry.assignee,
            inquiry.priority,
            inquiry.language,
            inquiry.country,
            inquiry.country_source,
            inquiry.status == "spam",
        )
        want = (
            case.team,
            case.assignee,
            case.priority,
            case.language,
            case.country,
            case.country_source,
            case.spam,
        )
        if got != want:
            failures.append(f"#{n} {case.email} {case.subject!r}: got {got}, want {want}")
            continue
        posts = await rows(
            service,
            Outbox,
            col(Outbox.inquiry_id) == number,
            col(Outbox.kind) == "card.post",
        )
        assert len(posts) == (0 if case.spam else 1), case
        events = await rows(service, Event, col(Event.inquiry_id) == number)
        received = next(e for e in events if e.kind == "received")
        explain = received.data["explain"]
        assert explain["spam"]["spam"] is case.spam
        assert explain["country"]["source"] == case.country_source
        # stored: the matched rules with each condition's result, not all of them
        assert explain["rules"] and all(
            ": MATCH" in r or r.startswith("no rule matched") for r in explain["rules"]
        )
        assert explain["rules_checked"] >= len(explain["rules"]) - 1
        if inquiry.rule:
            assert any(f"{inquiry.rule!r}: MATCH" in r for r in explain["rules"])
        if case.spam:
            assert explain["spam"]["reasons"], case
        if case.assignee:
            assert inquiry.status == "claimed"
            (assigned,) = [e for e in events if e.kind == "assigned"]
            assert assigned.after == case.assignee and assigned.data["reason"]
            dms = await rows(
                service, Outbox, col(Outbox.inquiry_id) == number, col(Outbox.kind) == "dm"
            )
            assert [d.destination for d in dms] == [case.assignee]
        elif not case.spam:
            assert inquiry.status == "new"
    assert not failures, "\n".join(failures)


async def test_reply_to_names_the_customer_and_the_message_keeps_from_sender_reply_to(
    sqlite_url: str, service_factory: Any
) -> None:
    settings = settings_from_mapping(config(sqlite_url), source="routing.toml", env={})
    service = await service_factory(settings, channels={"memory": chat()}, clock=MovableClock(OPEN))
    intake = MailboxIntake(service.ctx, settings.mailboxes[0])
    case = Case(
        "mail", "forms@website.example", "Anfrage", DE_Q, "eu", None, "normal", "de", "DE",
        reply_to='"Katrin Becker" <k.becker@firma.de>',
    )  # fmt: skip
    outcome = await intake.handle(FetchedMail(1, raw_mail(case, 1), frozenset()))
    (inquiry,) = await rows(service, Inquiry, col(Inquiry.id) == outcome.inquiry_id)
    assert inquiry.contact_email == "k.becker@firma.de"
    (message,) = await rows(service, Message, col(Message.inquiry_id) == inquiry.id)
    assert (message.from_address, message.from_name) == ("forms@website.example", "Forms")
    assert message.reply_to == "Katrin Becker <k.becker@firma.de>"
    assert message.sender == "Forms Relay <relay@forms.example>"
    from store.models import Contact

    (contact,) = await rows(service, Contact, col(Contact.id) == inquiry.contact_id)
    assert contact.name == "Katrin Becker"


async def test_spam_is_held_blocked_by_the_card_and_restored_by_not_spam(
    sqlite_url: str, service_factory: Any, client_factory: Any
) -> None:
    clock = MovableClock(OPEN)
    settings = settings_from_mapping(config(sqlite_url), source="routing.toml", env={})
    service = await service_factory(settings, channels={"memory": chat()}, clock=clock)
    http = await client_factory(service, background=False)
    base = Case("form", "", "Cotización", ES_Q, "latam", "diego", "normal", "es", "MX")

    def form(email: str) -> Case:
        return Case(**{**base.__dict__, "email": email})

    first = await post_form(http, form("compras@pushy.com.mx"), 1)
    # "Spam" on its card by a latam member blocks the whole domain
    outcome = await perform(
        service.ctx,
        Action(first, Verb.SPAM, "web", "diego", value="domain"),
    )
    assert outcome.ok, outcome.message
    (held,) = await rows(service, Inquiry, col(Inquiry.id) == first)
    assert held.status == "spam"
    second = await post_form(http, form("otro@pushy.com.mx"), 2)
    (blocked,) = await rows(service, Inquiry, col(Inquiry.id) == second)
    assert blocked.status == "spam" and blocked.assignee is None
    assert not await rows(
        service, Outbox, col(Outbox.inquiry_id) == second, col(Outbox.kind) == "card.post"
    )
    # held spam stays reviewable in the web inbox, with the score's reasons on its page
    response = await http.get(login_link(service.signer, "", "diego"), allow_redirects=False)
    assert response.status == 302
    assert f"#{second}" not in await (await http.get("/web/teams/latam")).text()  # not open work
    spam_view = await (await http.get("/web/teams/latam?view=spam")).text()
    assert f"#{second}" in spam_view
    page = await (await http.get(f"/web/inquiries/{second}")).text()
    assert "spam: YES, score 10 (+10 sender or domain blocked by the team)" in page
    # "New" on held spam: not spam: restored, routed (round robin -> diego), card posted
    outcome = await perform(service.ctx, Action(second, Verb.STATUS, "web", "paula", value="new"))
    assert outcome.ok, outcome.message
    (restored,) = await rows(service, Inquiry, col(Inquiry.id) == second)
    assert (restored.status, restored.assignee) == ("claimed", "diego")
    assert await rows(
        service, Outbox, col(Outbox.inquiry_id) == second, col(Outbox.kind) == "card.post"
    )
    # the sender is allowed now; the rest of the domain stays blocked
    again = await post_form(http, form("otro@pushy.com.mx"), 3)
    third = await post_form(http, form("tercero@pushy.com.mx"), 4)
    (allowed,) = await rows(service, Inquiry, col(Inquiry.id) == again)
    (still,) = await rows(service, Inquiry, col(Inquiry.id) == third)
    assert allowed.status == "claimed"
    assert still.status == "spam"


@pytest.mark.parametrize("strategy", ["round_robin", "least_open"])
async def test_full_and_away_reps_are_skipped(
    sqlite_url: str, service_factory: Any, client_factory: Any, strategy: str
) -> None:
    data = config(sqlite_url)
    data["teams"][2] = {
        **data["teams"][2],
        "assignment": strategy,
        "members": ["diego", "paula", "omar", "rosa"],
    }
    data["reps"] = [
        *(r for r in data["reps"] if r["id"] not in ("diego", "paula")),
        {"id": "diego", "name": "Diego", "max_open": 2},
        {"id": "paula", "name": "Paula"},
        {"id": "rosa", "name": "Rosa"},
    ]
    settings = settings_from_mapping(data, source="routing.toml", env={})
    service = await service_factory(settings, channels={"memory": chat()}, clock=MovableClock(OPEN))
    http = await client_factory(service, background=False)
    from bot.usecases.presence import set_away

    await set_away(service.ctx, "rosa", True)  # her own flag; omar is away by config
    got: list[str | None] = []
    for n in range(8):
        case = Case(
            "form", f"c{n}@empresa.com.mx", "Cotización", ES_Q, "latam", None, "normal", "es", "MX"
        )
        number = await post_form(http, case, n)
        (inquiry,) = await rows(service, Inquiry, col(Inquiry.id) == number)
        got.append(inquiry.assignee)
    assert got.count("diego") == 2  # full at max_open = 2
    assert got.count("paula") == 6
    assert "omar" not in got and "rosa" not in got


async def test_sticky_team_gives_a_returning_customer_their_last_rep(
    sqlite_url: str, service_factory: Any, client_factory: Any
) -> None:
    data = config(sqlite_url)
    data["teams"][2] = {**data["teams"][2], "sticky": True}
    data["reps"] = [
        *(r for r in data["reps"] if r["id"] not in ("diego", "paula")),
        {"id": "diego", "name": "Diego", "languages": ["es"]},
        {"id": "paula", "name": "Paula", "languages": ["es"]},
    ]
    settings = settings_from_mapping(data, source="routing.toml", env={})
    service = await service_factory(settings, channels={"memory": chat()}, clock=MovableClock(OPEN))
    http = await client_factory(service, background=False)
    owners: list[str | None] = []
    for n, email in enumerate(["a@x.com.mx", "b@x.com.mx", "a@x.com.mx", "a@x.com.mx"]):
        case = Case("form", email, f"Cotización {n}", ES_Q, "latam", None, "normal", "es", "MX")
        number = await post_form(http, case, n)
        (inquiry,) = await rows(service, Inquiry, col(Inquiry.id) == number)
        owners.append(inquiry.assignee)
    assert owners[0] != owners[1]  # round robin between two customers
    assert owners[2] == owners[3] == owners[0]  # a comes back to the same rep
    events = await rows(service, Event, col(Event.kind) == "assigned")
    assert "returning customer" in events[-1].data["reason"]


def test_inquiry_page_line_shows_why() -> None:
    from bot.usecases.timeline import describe_event

    explain = {
        "rule": "latam",
        "rules": ["rules[0] 'x': no (when.country: no (country 'MX'))", "rules[1] 'latam': MATCH (when.country: yes (country 'MX'))"],
        "team": "latam",
        "priority": "normal",
        "language": {"code": "es", "source": "detected"},
        "country": {"code": "MX", "source": "domain", "detail": "empresa.com.mx"},
        "category": {"name": "", "source": ""},
        "spam": {"score": 1, "spam": False, "reasons": ["+1 Reply-To on a.example, From on b.example"]},
        "assignment": {"rep": "diego", "strategy": "round_robin", "reason": "round robin (turn 3)"},
    }  # fmt: skip
    event = Event(
        inquiry_id=1, team="latam", at=OPEN, actor="customer", kind="received",
        data={"source": "website", "team": "latam", "rule": "latam", "explain": explain},
    )  # fmt: skip
    line = describe_event(event, "en", lambda r: r.title())
    assert "rules[1] 'latam': MATCH (when.country: yes (country 'MX'))" in line
    assert "rules[0]" not in line  # the page shows the rule that matched, not all of them
    assert "language: es (detected)" in line
    assert "country: MX (domain: empresa.com.mx)" in line
    assert "spam: no, score 1 (+1 Reply-To on a.example, From on b.example)" in line
    assert "assignment: diego (round_robin): round robin (turn 3)" in line


def test_check_warns_about_teams_nobody_covers_and_rule_reps_outside_the_team() -> None:
    from routing.assignment import duty_warnings

    data = config("sqlite+aiosqlite:///unused.db")
    data["teams"][3] = {**data["teams"][3], "members": ["omar"]}  # omar is away
    data["rules"].append(
        {"name": "to-chen", "when": {"keywords": ["x"]}, "then": {"team": "eu", "assign": "chen"}}
    )
    warnings = duty_warnings(settings_from_mapping(data, source="t.toml", env={}))
    assert any("team 'mena': every member is away" in w for w in warnings), warnings
    assert any("'to-chen': then.assign 'chen' is not a member of team 'eu'" in w for w in warnings)
    assert not duty_warnings(
        settings_from_mapping(config("sqlite+aiosqlite:///u.db"), source="t", env={})
    )


async def test_named_assignments_cost_nobody_their_round_robin_turn_and_pool_teams_stick(
    sqlite_url: str, service_factory: Any, client_factory: Any
) -> None:
    data = config(sqlite_url)
    data["teams"][0] = {**data["teams"][0], "sticky": True}  # eu: pool, sticky
    data["reps"] = [
        *(r for r in data["reps"] if r["id"] not in ("diego", "paula")),
        {"id": "diego", "name": "Diego", "languages": ["es"]},
        {"id": "paula", "name": "Paula", "languages": ["es"]},
    ]
    data["rules"].insert(
        0,
        {
            "name": "diego's",
            "when": {"sender_domain": ["friends.example"]},
            "then": {"team": "latam", "assign": "diego"},
        },
    )
    settings = settings_from_mapping(data, source="routing.toml", env={})
    service = await service_factory(settings, channels={"memory": chat()}, clock=MovableClock(OPEN))
    http = await client_factory(service, background=False)

    async def send(n: int, email: str, text: str = ES_Q) -> str | None:
        case = Case("form", email, f"Consulta {n}", text, "latam", None, "normal", "es", "MX")
        number = await post_form(http, case, n)
        (inquiry,) = await rows(service, Inquiry, col(Inquiry.id) == number)
        return inquiry.assignee

    drawn: list[str | None] = []
    for n in range(6):
        assert await send(100 + n, f"f{n}@friends.example") == "diego"
        drawn.append(await send(n, f"c{n}@empresa.com.mx"))
    assert drawn.count("diego") == drawn.count("paula") == 3, drawn
    # a pool team with sticky: the returning customer's last owner gets it (ben claims first)
    first = await send(200, "k@firma.de", DE_Q)
    assert first is None
    (inquiry,) = await rows(service, Inquiry, col(Inquiry.contact_email) == "k@firma.de")
    assert (await perform(service.ctx, Action(inquiry.id or 0, Verb.CLAIM, "web", "ben"))).ok
    assert await send(201, "k@firma.de", DE_Q) == "ben"
