"""Daily digests: at digest_at in the team's time zone on working days, covering the days since
the previous one; the numbers; once per day; caught up late after a stop; the CLI text."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from bot.cli_digest import digest_for_cli
from bot.usecases.card_actions import perform
from bot.usecases.replies import send_reply
from cards.actions import Action, Verb
from cards.digest_card import DigestReport, render_digest_text
from tests.conftest import MovableClock
from tests.support.clock import CHANNEL, Walk, berlin, clock_config, new_inquiry, recording_channel


async def test_daily_digest(sqlite_url: str, make_settings: Any, service_factory: Any) -> None:
    clock = MovableClock(berlin(2026, 11, 20, 8, 30))  # a Friday
    settings = make_settings(sqlite_url, **clock_config(return_to_pool=False))
    channel = recording_channel()
    service = await service_factory(settings, channels={"slack": channel}, clock=clock)
    walk = Walk(service, clock, channel)

    def digest_posts() -> list[tuple[str, Any]]:
        return [
            (at.isoformat(), call.card)
            for at, call in walk.log
            if call.method == "post_card"
            and call.card is not None
            and call.card.key.startswith("digest:")
        ]

    await walk.until(berlin(2026, 11, 20, 8, 45))
    assert digest_posts() == []  # first start after Thursday's digest time: no stale digest
    await walk.until(berlin(2026, 11, 20, 9, 0))
    ((at, card),) = digest_posts()
    assert at == berlin(2026, 11, 20, 9, 0).isoformat()
    assert card.key == "digest:sales:2026-11-20"
    assert card.title == "Daily digest · Sales EU · 2026-11-19"  # Friday's covers Thursday

    # Friday's work
    clock.now = berlin(2026, 11, 20, 10, 0)
    a = await new_inquiry(service, "d-a", subject="LED panels")
    b = await new_inquiry(service, "d-b", subject="Spot lights")
    c = await new_inquiry(service, "d-c", subject="Solar lamps")
    clock.now = berlin(2026, 11, 20, 10, 10)
    assert (await perform(service.ctx, Action(a, Verb.CLAIM, "web", "alice"))).ok
    clock.now = berlin(2026, 11, 20, 10, 20)
    assert (await perform(service.ctx, Action(b, Verb.CLAIM, "web", "bob"))).ok
    clock.now = berlin(2026, 11, 20, 10, 40)
    sent = await send_reply(
        service.ctx,
        inquiry_id=a,
        platform="web",
        user="alice",
        subject="Re: LED",
        body="Our offer.",
    )
    assert sent.ok, sent.message
    await service.worker.drain()  # the first reply counts when the mail server accepted it
    clock.now = berlin(2026, 11, 20, 11, 0)
    assert (
        await perform(
            service.ctx, Action(a, Verb.STATUS, "web", "alice", value="won", reason="PI signed")
        )
    ).ok
    await walk.settle()

    # Monday 09:00: one digest covering Friday to Sunday, none on the weekend
    await walk.until(berlin(2026, 11, 23, 9, 0), step=timedelta(minutes=15))
    posts = digest_posts()
    assert [card.key for _, card in posts] == ["digest:sales:2026-11-20", "digest:sales:2026-11-23"]
    assert posts[1][0] == berlin(2026, 11, 23, 9, 0).isoformat()
    card = posts[1][1]
    assert card.title == "Daily digest · Sales EU · 2026-11-20 – 2026-11-22"
    fields = {f.label: f.value for f in card.fields}
    assert fields["New"] == "3"
    assert fields["Claimed"] == "2"
    assert fields["Replied"] == "1"
    assert fields["Won"] == "1" and fields["Lost"] == "0"
    assert fields["Time to claim (median / p90)"] == "15 min / 20 min"
    assert fields["Time to first reply (median / p90)"] == "40 min / 40 min"
    assert fields["SLA breaches"] == "3"  # b claimed late; c never claimed; b never answered
    assert fields["Escalations"] == "3"  # c: lead, manager; b: lead (no first reply)
    assert fields["Open now / unclaimed"] == "2 / 1"
    assert not card.notes  # on time
    actions = {x.action_id for x in card.actions}
    assert f"cd1:claim:{c}" in actions and f"cd1:open:{c}" in actions
    assert f"#{c} Solar lamps" in card.snippet
    table = card.snippet.split("Per rep:")[1]
    assert "Alice | 1       | 1       | 1   | 0    | 0" in table
    assert "Bob   | 1       | 0       | 0   | 0    | 1" in table

    # stopped Tuesday and Wednesday morning: at 10:00 both digests come, once each, marked late
    clock.now = berlin(2026, 11, 25, 10, 0)
    report = await service.scheduler.tick()
    assert report.digests == 4  # Tuesday and Wednesday, for sales and for asia
    assert (await service.scheduler.tick()).digests == 0
    await walk.settle()
    late = digest_posts()[2:]
    assert [card.key for _, card in late] == ["digest:sales:2026-11-24", "digest:sales:2026-11-25"]
    assert all(card.notes and card.notes[0].startswith("Sent late") for _, card in late)
    assert late[0][1].title.endswith("2026-11-23")
    assert all(call.destination == CHANNEL for _, call in walk.log if call.method == "post_card")

    # a day without activity does not repeat Friday's breaches: b and c were overdue on
    # Friday and are counted there, not again in Tuesday's digest (covering Monday)
    tuesday = {f.label: f.value for f in late[0][1].fields}
    assert tuesday["SLA breaches"] == "0" and tuesday["New"] == "0"
    assert tuesday["Open now / unclaimed"] == "2 / 1"

    # the CLI: --date X is the day X itself, with the same numbers; never "Sent late"
    text = await digest_for_cli(settings, "sales", day=date(2026, 11, 20))
    assert text.startswith("Daily digest · Sales EU · 2026-11-20\n")
    assert "Sent late" not in text and "SLA breaches: 3\n" in text
    assert "New: 3\n" in text and "Won: 1\n" in text
    assert "Oldest unclaimed:\n" in text and f"#{c} Solar lamps" in text


def test_digest_text_in_chinese() -> None:
    report = DigestReport(
        team="asia",
        team_title="亚洲组",
        locale="zh-CN",
        day="2026-11-24",
        period_first="2026-11-23",
        period_last="2026-11-23",
        new=2,
        claimed=1,
        claim_median_seconds=600,
        claim_p90_seconds=600,
    )
    text = render_digest_text(DigestReport.from_dict(report.to_dict()))
    assert text.startswith("每日简报 · 亚洲组 · 2026-11-23\n")
    assert "新询盘: 2" in text and "认领用时（中位数 / P90）: 10 分钟 / 10 分钟" in text
