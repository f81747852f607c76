"""Alerts on change and follow-up reminders, sent once (`crmbot.digests.direct`), through
the real Slack poster against the local Web API fake, on SQLite, PostgreSQL and MariaDB.

The small CRM's live run replaced the previous one: Grace Hopper (C002, owner UAM1) moved
from Loyal into At risk, Alan Turing (C003, owner maria@crm.example: no Slack user) from
Champions into Can't lose them. Nothing else changed enough to alert.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from crmbot.actions.follows import follow, snooze
from crmbot.actions.followups import add_follow_up
from crmbot.core.config import Settings
from crmbot.core.db import read_session, write_session
from crmbot.core.models import AlertDelivery, FollowUp, ModelRun
from crmbot.digests.direct import ALERT_WINDOW, send_alerts, send_follow_ups
from crmbot.slack.delivery import SlackPoster, slack_poster
from tests.support.slack_bot import text_of
from tests.support.slack_fake import Reply, SlackFake
from tests.support.small_crm import SmallCrm, seed

NOW = datetime(2026, 7, 1, 10, 0)  # an hour and a bit after the live run went live
REFUSED = Reply(200, {"ok": False, "error": "not_allowed_token_type"})


@pytest.fixture
def crm(storage_engine: Engine) -> SmallCrm:
    crm = seed(storage_engine)
    with write_session(storage_engine) as session:
        session.execute(
            update(ModelRun)
            .where(col(ModelRun.id) == crm.run_id)
            .values(params={"run": {"previous_run_id": crm.previous_run_id}})
        )
    return crm


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def poster(crm: SmallCrm, settings: Settings, slack: SlackFake) -> SlackPoster:
    client = WebClient(token=settings.slack_bot_token, base_url=slack.base_url)
    return slack_poster(crm.engine, settings, client, retries=0)


def _dm(slack: SlackFake, user: str) -> list[dict[str, Any]]:
    return slack.messages(f"D{user[1:]}")


def _act(crm: SmallCrm, write: Any) -> None:
    with write_session(crm.engine) as session:
        write(session)


def _claims(crm: SmallCrm) -> set[tuple[int, int, str]]:
    with read_session(crm.engine) as session:
        rows = session.execute(select(AlertDelivery)).scalars().all()
    return {(row.run_id, row.customer_pk, row.recipient) for row in rows}


def test_the_owner_and_followers_each_get_one_message_per_run(
    crm: SmallCrm, settings: Settings, slack: SlackFake, poster: SlackPoster
) -> None:
    _act(crm, lambda s: follow(session=s, customer_pk=crm.pks["C003"], user_id="UAM2", now=NOW))
    _act(crm, lambda s: follow(session=s, customer_pk=crm.pks["C002"], user_id="UAM2", now=NOW))
    report = send_alerts(crm.engine, settings, poster, clock=lambda: NOW)
    assert (report.messages, report.items, report.failed) == (2, 3, [])
    [owner] = _dm(slack, "UAM1")
    assert "Grace Hopper (C002)" in text_of(owner) and "C003" not in text_of(owner)
    assert "moved into At risk (from Loyal)" in text_of(owner)
    [follower] = _dm(slack, "UAM2")
    text = text_of(follower)
    # Both accounts, most value at risk first, each with its buttons; UAM2 follows both.
    assert text.index("Alan Turing") < text.index("Grace Hopper")
    assert "moved into Can't lose them (from Champions)" in text
    assert text.count('"act_touch"') == 2 and text.count('"act_unfollow"') == 2
    assert '"act_follow"' not in text and text_of(owner).count('"act_follow"') == 1
    assert _claims(crm) == {
        (crm.run_id, crm.pks["C002"], "UAM1"),
        (crm.run_id, crm.pks["C002"], "UAM2"),
        (crm.run_id, crm.pks["C003"], "UAM2"),
    }
    # The next round (the notify job, a second scheduler) sends nothing more.
    again = send_alerts(crm.engine, settings, poster, clock=lambda: NOW + timedelta(hours=1))
    assert again.messages == 0 and len(slack.messages()) == 2
    # A run that went live too long ago is not alerted at all.
    with write_session(crm.engine) as session:
        session.execute(update(ModelRun).values(activated_at=NOW - ALERT_WINDOW * 2))
        session.execute(AlertDelivery.__table__.delete())
    assert send_alerts(crm.engine, settings, poster, clock=lambda: NOW).messages == 0


def test_a_snoozed_account_is_left_out_for_that_person_only(
    crm: SmallCrm, settings: Settings, slack: SlackFake, poster: SlackPoster
) -> None:
    _act(crm, lambda s: follow(session=s, customer_pk=crm.pks["C002"], user_id="UAM2", now=NOW))
    _act(
        crm,
        lambda s: snooze(
            session=s, customer_pk=crm.pks["C002"], user_id="UAM2", days=7, as_of=NOW.date()
        ),
    )
    report = send_alerts(crm.engine, settings, poster, clock=lambda: NOW)
    assert report.messages == 1
    assert len(_dm(slack, "UAM1")) == 1 and not _dm(slack, "UAM2")


def test_quiet_hours_hold_alerts_and_follow_ups_until_they_end(
    crm: SmallCrm, settings: Settings, slack: SlackFake, poster: SlackPoster
) -> None:
    settings = settings.model_copy(
        update={"alert_quiet_hours": "20-08", "timezone": "Europe/Berlin"}
    )
    _act(
        crm,
        lambda s: add_follow_up(
            session=s,
            customer_pk=crm.pks["C001"],
            assignee="UAM1",
            due_on=date(2026, 7, 1),
            created_by="UAM2",
            now=NOW - timedelta(days=1),
            today=(NOW - timedelta(days=1)).date(),
        ),
    )
    night = datetime(2026, 7, 1, 4, 30)  # 06:30 in Berlin
    held = send_alerts(crm.engine, settings, poster, clock=lambda: night)
    reminders = send_follow_ups(crm.engine, settings, poster, clock=lambda: night)
    assert (held.held, reminders.held) == (1, 1) and not slack.messages() and not _claims(crm)
    morning = datetime(2026, 7, 1, 6, 5)  # 08:05 in Berlin
    assert send_alerts(crm.engine, settings, poster, clock=lambda: morning).messages == 1
    assert send_follow_ups(crm.engine, settings, poster, clock=lambda: morning).messages == 1
    assert len(_dm(slack, "UAM1")) == 2


def test_beyond_the_daily_cap_the_rest_is_counted_and_never_sent_later(
    crm: SmallCrm, settings: Settings, slack: SlackFake, poster: SlackPoster
) -> None:
    settings = settings.model_copy(update={"alert_daily_cap": 1})
    for cid in ("C002", "C003"):
        _act(
            crm, lambda s, c=cid: follow(session=s, customer_pk=crm.pks[c], user_id="UAM2", now=NOW)
        )
    send_alerts(crm.engine, settings, poster, clock=lambda: NOW)
    [message] = _dm(slack, "UAM2")
    text = text_of(message)
    assert "Alan Turing" in text and "Grace Hopper" not in text
    assert "…and 1 more — see `/crm at-risk mine`" in text
    assert "Churn risk changed on 2 of your accounts" in text
    assert send_alerts(crm.engine, settings, poster, clock=lambda: NOW).messages == 0
    assert len(_dm(slack, "UAM2")) == 1


def test_a_refused_post_gives_its_claims_back_and_the_next_round_sends_it(
    crm: SmallCrm, settings: Settings, slack: SlackFake, poster: SlackPoster
) -> None:
    slack.script("chat.postMessage", REFUSED)
    failed = send_alerts(crm.engine, settings, poster, clock=lambda: NOW)
    assert failed.messages == 0 and failed.failed and not _claims(crm)
    assert send_alerts(crm.engine, settings, poster, clock=lambda: NOW).messages == 1
    assert len(_dm(slack, "UAM1")) == 1


def test_a_follow_up_goes_once_on_its_day_and_a_refused_one_next_round(
    crm: SmallCrm, settings: Settings, slack: SlackFake, poster: SlackPoster
) -> None:
    _act(
        crm,
        lambda s: add_follow_up(
            session=s,
            customer_pk=crm.pks["C002"],
            assignee="UAM1",
            due_on=date(2026, 7, 2),
            created_by="UAM2",
            now=NOW,
            today=NOW.date(),
            note="Ask about the renewal",
        ),
    )
    the_day_before = send_follow_ups(crm.engine, settings, poster, clock=lambda: NOW)
    assert the_day_before.messages == 0
    on_the_day = NOW + timedelta(days=1)
    slack.script("chat.postMessage", REFUSED)
    refused = send_follow_ups(crm.engine, settings, poster, clock=lambda: on_the_day)
    assert refused.failed and not slack.messages()
    with read_session(crm.engine) as session:
        assert session.execute(select(FollowUp)).scalar_one().sent_at is None
    for _ in range(2):
        send_follow_ups(crm.engine, settings, poster, clock=lambda: on_the_day)
    [reminder] = _dm(slack, "UAM1")
    assert "Follow-up due today: Grace Hopper (C002)" in text_of(reminder)
    assert "Ask about the renewal" in text_of(reminder)


def test_the_alert_channel_gets_each_run_once_masked(
    crm: SmallCrm, settings: Settings, slack: SlackFake, poster: SlackPoster
) -> None:
    report = send_alerts(crm.engine, settings, poster, clock=lambda: NOW, channel="CALERTS")
    assert report.messages == 2  # the owner's DM and the channel
    [posted] = slack.messages("CALERTS")
    text = text_of(posted)
    assert "Churn risk changed on 2 accounts" in text
    assert '"act_touch"' not in text  # a channel gets "Why?", acting is personal
    assert "@" not in text.replace("<@", "")  # no email, even of an owner
    assert (
        send_alerts(crm.engine, settings, poster, clock=lambda: NOW, channel="CALERTS").messages
        == 0
    )


def test_an_owners_digest_dm_leaves_out_what_they_snoozed(
    crm: SmallCrm, settings: Settings
) -> None:
    from crmbot.digests import build_at_risk_digest

    def listed() -> list[str]:
        digest = build_at_risk_digest(
            crm.engine, settings, channel="UAM1", period="2026-07-01", owner="UAM1"
        )
        assert digest is not None
        return digest.customer_ids

    assert "C002" in listed()
    _act(
        crm,
        lambda s: snooze(
            session=s, customer_pk=crm.pks["C002"], user_id="UAM1", days=7, as_of=date(2026, 7, 1)
        ),
    )
    assert "C002" not in listed() and listed()
    # The channel's digest is everyone's: a snooze is personal.
    everyone = build_at_risk_digest(crm.engine, settings, channel="C1", period="2026-07-01")
    assert everyone is not None and "C002" in everyone.customer_ids


def test_an_owner_stored_by_email_is_found_through_the_workspace(
    crm: SmallCrm, settings: Settings, slack: SlackFake, poster: SlackPoster
) -> None:
    slack.user_emails["UMARIA"] = "maria@crm.example"  # users.lookupByEmail finds her
    report = send_alerts(crm.engine, settings, poster, clock=lambda: NOW)
    assert report.messages == 2
    [maria] = _dm(slack, "UMARIA")
    assert "Alan Turing (C003)" in text_of(maria) and "C002" not in text_of(maria)
    assert (crm.run_id, crm.pks["C003"], "UMARIA") in _claims(crm)


def test_an_admins_retrain_sends_its_alerts_at_once(
    sample_company: Any, tmp_path: Any, slack: SlackFake
) -> None:
    """`/crm retrain` through the dispatcher with the Slack poster: the run goes live and
    the owner (the sample company's Maria, here the Slack user UAM1) gets the alert DM."""
    from crmbot.chat.dispatch import Dispatcher
    from crmbot.core.models import Customer
    from tests.conftest import copy_of_sample

    engine = copy_of_sample(sample_company, tmp_path)
    settings = sample_company.settings.model_copy(update={"database_url": str(engine.url)})
    with write_session(engine) as session:
        session.execute(update(Customer).where(col(Customer.owner) == "maria").values(owner="UAM1"))
    client = WebClient(token=settings.slack_bot_token, base_url=slack.base_url)
    dispatcher = Dispatcher(engine, settings, slack_poster(engine, settings, client))
    reply = dispatcher.handle("retrain --force 2026-07-31", user_id="UADMIN")
    fields = dict(reply.fields)
    assert "live now" in fields["Status"], reply.text
    assert fields["Alerts"].startswith("Alerts: 1 sent"), fields["Alerts"]
    [alert] = _dm(slack, "UAM1")
    assert "Why now:" in text_of(alert)
    engine.dispose()


def test_rules_alert_what_they_say_and_a_zero_rise_alerts_no_rise() -> None:
    from crmbot.core.models import Customer
    from crmbot.digests.alerts import AlertRules, why_alerted
    from crmbot.queries.changes import RiskChange

    def change(before: float | None, after: float, seg_before: str, seg: str) -> RiskChange:
        return RiskChange(Customer(id=1, customer_id="C1"), after, before, seg, seg_before, [], 1.0)

    rules = AlertRules(rise=0.15, threshold=0.7, segments=("At risk",))
    assert why_alerted(change(0.2, 0.36, "Loyal", "Loyal"), rules) == (
        "churn risk ▲ 16 pts (20% → 36%)",
    )
    assert why_alerted(change(0.2, 0.34, "Loyal", "Loyal"), rules) == ()
    assert why_alerted(change(0.65, 0.72, "Loyal", "At risk"), rules) == (
        "churn risk 72%, at or over the 70% alert line",
        "moved into At risk (from Loyal)",
    )
    assert why_alerted(change(0.75, 0.8, "At risk", "At risk"), rules) == ()
    assert why_alerted(change(None, 0.9, "", "At risk"), rules)[0].startswith("churn risk 90%")
    no_rise = AlertRules(rise=0.0, threshold=0.7, segments=())
    assert why_alerted(change(0.2, 0.6, "Loyal", "Loyal"), no_rise) == ()


def test_a_zero_rise_setting_alerts_on_nothing_but_the_other_rules(
    crm: SmallCrm, settings: Settings, slack: SlackFake, poster: SlackPoster
) -> None:
    from crmbot.core.models import CustomerScore

    with write_session(crm.engine) as session:  # Ada's risk rose 30 points
        session.execute(
            update(CustomerScore)
            .where(col(CustomerScore.run_id) == crm.run_id)
            .where(col(CustomerScore.customer_pk) == crm.pks["C001"])
            .values(churn_risk=0.38)
        )
    settings = settings.model_copy(update={"alert_rise_points": 0, "alert_segments": []})
    assert send_alerts(crm.engine, settings, poster, clock=lambda: NOW).messages == 0
    settings = settings.model_copy(update={"alert_rise_points": 25})
    assert send_alerts(crm.engine, settings, poster, clock=lambda: NOW).messages == 1
    assert "Ada Lovelace (C001)" in text_of(_dm(slack, "UAM1")[0])
