"""Routing cost per inquiry with 200 rules (and with none, for the baseline).

What is measured, on a mix of 64 realistic messages in ten languages (forms and mails):

- **rules**: ``routing.rules.route`` alone over 200 ``[[rules]]`` (keywords in
  several scripts, countries, languages, categories, sender domains, ``hours``
  judged on the target team's calendar, ``unless``, some ``continue``), the
  worst case for a message that matches none (every rule is evaluated);
- **classify**: everything intake decides before the database, per inquiry:
  language detection, country guess, category keywords, the 200 rules, the spam score;
- **ingest**: ``bot.usecases.ingest.ingest`` end to end on a SQLite file (one transaction:
  contact, inquiry, message, events, outbox, the round-robin turn), with 200 rules
  and with none: what the rules add to a stored inquiry.

Printed and merged into ``--out`` under the key ``"routing"`` (microseconds per inquiry:
median and p99 over all calls). Run: ``.venv/bin/python bench/bench_routing.py --out bench/results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import merge_into  # noqa: E402
from bot.usecases.ingest import InboundMessage, ingest  # noqa: E402
from bot.usecases.sla import calendar_for  # noqa: E402
from config.loading import settings_from_mapping  # noqa: E402
from config.schema import Settings  # noqa: E402
from routing.intake import IntakeFacts, classify  # noqa: E402
from routing.language import detect_language  # noqa: E402
from routing.rules import RoutingInput, route  # noqa: E402

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
COUNTRIES = ["DE", "FR", "ES", "MX", "BR", "CN", "JP", "RU", "AE", "US", "GB", "IT", "PL", "TR"]
LANGS = ["en", "de", "fr", "es", "pt", "zh", "ja", "ru", "ar", "it"]
WORDS = [
    "valve", "pump", "flange", "gasket", "container", "pallet", "sample", "invoice", "led",
    "stainless steel", "集装箱", "阀门", "样品", "見積もり", "バルブ", "клапан", "насос", "صمام",
    "válvula", "bomba", "muestra", "ventil", "pumpe", "vanne", "pompe", "échantillon",
]  # fmt: skip
MESSAGES = [
    ("Quote for valves", "Hello, please quote 500 stainless steel valves, delivered to Hamburg."),
    ("Anfrage", "Guten Tag, wir bitten um ein Angebot für 500 Edelstahlventile."),
    ("Demande", "Bonjour, merci de nous envoyer votre meilleur prix pour 500 vannes."),
    ("Cotización", "Hola, necesitamos su mejor precio para 500 válvulas de acero inoxidable."),
    ("Cotação", "Olá, precisamos do seu melhor preço para 500 válvulas de aço inoxidável."),
    ("询价", "您好，我们想采购500个不锈钢阀门，请提供最优价格和交货期。"),
    ("見積もり", "こんにちは、ステンレス製バルブを500個購入したいと考えています。"),
    ("Запрос", "Здравствуйте, просим прислать цену на 500 клапанов из нержавеющей стали."),
    ("طلب عرض سعر", "مرحبا، نود الحصول على أفضل سعر لخمسمائة صمام من الفولاذ المقاوم للصدأ."),
    ("Richiesta", "Buongiorno, vorremmo il vostro miglior prezzo per 500 valvole in acciaio inox."),
]


def config(db_url: str, rules: int) -> dict[str, Any]:
    teams = [
        {
            "name": f"t{i}",
            "timezone": "Europe/Berlin" if i % 2 else "Asia/Shanghai",
            "members": [f"r{i}a", f"r{i}b"],
            "assignment": "round_robin" if i % 2 else "pool",
        }
        for i in range(10)
    ]
    reps = [{"id": f"r{i}{s}", "name": f"R{i}{s}"} for i in range(10) for s in "ab"]
    rule_list: list[dict[str, Any]] = []
    for i in range(rules):
        when: dict[str, Any] = {}
        kind = i % 6
        if kind == 0:
            when["keywords"] = [WORDS[i % len(WORDS)], WORDS[(i * 7) % len(WORDS)], f"sku{i}"]
        elif kind == 1:
            when["country"] = [COUNTRIES[i % len(COUNTRIES)], COUNTRIES[(i + 5) % len(COUNTRIES)]]
        elif kind == 2:
            when["language"] = [LANGS[i % len(LANGS)]]
            when["keywords"] = [f"model {i}"]
        elif kind == 3:
            when["sender_domain"] = [f"customer{i}.example"]
        elif kind == 4:
            when["hours"] = "out"
            when["keywords"] = [f"urgent{i}"]
        else:
            when["category"] = ["complaint"]
            when["country"] = [COUNTRIES[i % len(COUNTRIES)]]
        rule: dict[str, Any] = {
            "name": f"rule{i}",
            "when": when,
            "then": {"team": f"t{i % 10}", "continue": i % 17 == 0},
        }
        if i % 9 == 0:
            rule["unless"] = {"keywords": ["spam", "test"]}
        rule_list.append(rule)
    return {
        "store": {"url": db_url},
        "security": {"secret_key": "bench-secret-key-0123456789"},
        "teams": teams,
        "reps": reps,
        "categories": [
            {"name": "complaint", "keywords": ["complaint", "defect", "reklamation", "投诉"]},
            {"name": "quotation", "keywords": ["quote", "angebot", "cotización", "询价"]},
        ],
        "rules": rule_list,
    }


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 1),
        "calls": len(ordered),
    }


def _facts(n: int) -> IntakeFacts:
    subject, text = MESSAGES[n % len(MESSAGES)]
    return IntakeFacts(
        source="website",
        subject=subject,
        text=f"{text}\nRef {n}",
        email=f"buyer{n}@firm{n % 13}.example",
        phone="+49 30 5550100" if n % 3 == 0 else "",
        default_team="t0",
    )


def measure_pure(settings: Settings, calls: int) -> dict[str, Any]:
    def open_at(name: str) -> bool | None:
        return calendar_for(settings.team(name)).is_open(NOW)

    # Wall time per call (median, p99) and CPU time per call (process time over the loop:
    # on a shared machine the wall-clock figures include waiting for a core).
    facts_list = [_facts(n) for n in range(calls)]
    route_samples: list[float] = []
    cpu = time.process_time()
    for facts in facts_list:
        msg = RoutingInput(
            source=facts.source, subject=facts.subject, text=facts.text, sender=facts.email
        )
        start = time.perf_counter()
        route(settings, msg, default_team="t0", open_at=open_at)
        route_samples.append(time.perf_counter() - start)
    route_cpu = (time.process_time() - cpu) / calls
    classify_samples: list[float] = []
    cpu = time.process_time()
    for facts in facts_list:
        start = time.perf_counter()
        classify(settings, facts, open_at=open_at, detect=detect_language)
        classify_samples.append(time.perf_counter() - start)
    classify_cpu = (time.process_time() - cpu) / calls
    return {
        "rules": {**_stats(route_samples), "cpu_us": round(route_cpu * 1e6, 1)},
        "classify": {**_stats(classify_samples), "cpu_us": round(classify_cpu * 1e6, 1)},
    }


async def measure_ingest(rules: int, calls: int) -> dict[str, Any]:
    from bot.app import Service

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        settings = settings_from_mapping(config(url, rules), source="bench.toml", env={})
        service = await Service.create(settings, channels={})
        try:
            samples: list[float] = []
            for n in range(calls):
                facts = _facts(n)
                msg = InboundMessage(
                    source="website",
                    source_kind="webhook",
                    dedupe_key=f"bench-{n}",
                    email=facts.email,
                    subject=facts.subject,
                    text=facts.text,
                    phone=facts.phone,
                    team="t1",
                )
                start = time.perf_counter()
                await ingest(service.ctx, msg)
                samples.append(time.perf_counter() - start)
        finally:
            await service.close()
    return _stats(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results.json")
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--calls", type=int, default=2000, help="pure classification calls")
    parser.add_argument("--ingests", type=int, default=300, help="stored inquiries per run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, Any] = {"benchmark": "routing per inquiry", "python": sys.version.split()[0]}
    with_rules = settings_from_mapping(
        config("sqlite+aiosqlite:///unused.db", args.rules), source="b", env={}
    )
    without = settings_from_mapping(config("sqlite+aiosqlite:///unused.db", 0), source="b", env={})
    measure_pure(with_rules, 50)  # warm caches (keyword patterns, calendars, the language model)
    results[f"pure_{args.rules}_rules"] = measure_pure(with_rules, args.calls)
    results["pure_0_rules"] = measure_pure(without, args.calls)
    print(f"pure, {args.rules} rules:", json.dumps(results[f"pure_{args.rules}_rules"]))
    print("pure, 0 rules:", json.dumps(results["pure_0_rules"]))
    results[f"ingest_{args.rules}_rules"] = asyncio.run(measure_ingest(args.rules, args.ingests))
    results["ingest_0_rules"] = asyncio.run(measure_ingest(0, args.ingests))
    print(f"ingest, {args.rules} rules:", json.dumps(results[f"ingest_{args.rules}_rules"]))
    print("ingest, 0 rules:", json.dumps(results["ingest_0_rules"]))
    merge_into(args.out, {"routing": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
