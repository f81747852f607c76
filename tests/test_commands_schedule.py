"""`/crm schedule`: admins list and change the jobs; changes persist and reach a running
scheduler. Driven through the dispatcher, as Slack and the shell drive it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from slack_sdk.http_retry import FixedValueRetryIntervalCalculator
from sqlalchemy.engine import Engine

from crmbot.chat.dispatch import Dispatcher
from crmbot.core.config import Settings
from crmbot.core.db import make_engine, read_session, upgrade
from crmbot.core.models import ScheduleOverride
from crmbot.reply import Reply
from crmbot.runs.lock import acquire_training_lock
from crmbot.scheduler import start_scheduler, stop_scheduler
from crmbot.shell.text import render
from crmbot.slack.delivery import configured_poster, slack_poster
from tests.support.scored_data import add_customers, add_run, book
from tests.support.slack_fake import SlackFake


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def admin_settings(settings: Settings, slack: SlackFake) -> Settings:
    return settings.model_copy(
        update={
            "slack_api_base_url": slack.base_url,
            "influencer_channel": "CINFL",
            "admin_channel": "CADMIN",
            "timezone": "Europe/Berlin",
        }
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def ask(engine: Engine, settings: Settings, text: str, user: str = "UADMIN") -> Reply:
    # As `crmbot shell` builds it: with SLACK_BOT_TOKEN set, digests can be posted.
    dispatcher = Dispatcher(engine, settings, configured_poster(engine, settings))
    return dispatcher.handle(text, user_id=user, channel_id="D1")


def override(engine: Engine, job_id: str) -> ScheduleOverride | None:
    with read_session(engine) as session:
        return session.get(ScheduleOverride, job_id)


def test_the_list_shows_every_job(db: Engine, admin_settings: Settings) -> None:
    reply = ask(db, admin_settings, "/crm schedule")
    assert reply.outcome == "ok"
    assert reply.table is not None
    rows = {row[0]: row for row in reply.table.rows}
    assert set(rows) == {"retrain", "at-risk-digest", "influencer-digest", "notify"}
    assert rows["retrain"][1:4] == ["0 2 * * *", "—", "active"]
    assert rows["at-risk-digest"][2] == "(none set)"
    assert rows["influencer-digest"][2] == "CINFL"
    assert rows["retrain"][4].endswith(("CET", "CEST"))  # next run, in the configured zone
    assert "Times are in Europe/Berlin" in reply.text
    assert "at-risk-digest has no channel yet" in reply.text
    assert "No scheduler runs in this process" in reply.text


def test_only_admins_may_use_it(db: Engine, admin_settings: Settings) -> None:
    reply = ask(db, admin_settings, "/crm schedule pause retrain", user="USOMEONE")
    assert reply.outcome == "denied"
    assert "admins only" in reply.text
    assert override(db, "retrain") is None


def test_set_changes_and_persists_a_schedule(db: Engine, admin_settings: Settings) -> None:
    reply = ask(db, admin_settings, '/crm schedule set at-risk "30 7 * * 1-5"')
    assert reply.outcome == "ok", reply.text
    assert "`at-risk-digest` now runs at `30 7 * * 1-5`" in reply.text
    assert "picks it up within 60 s" in reply.text
    saved = override(db, "at-risk-digest")
    assert saved is not None and saved.cron == "30 7 * * 1-5" and saved.updated_by == "UADMIN"
    listed = ask(db, admin_settings, "/crm schedule")
    assert listed.table is not None
    row = next(r for r in listed.table.rows if r[0] == "at-risk-digest")
    assert row[1] == "30 7 * * 1-5" and row[5].startswith("UADMIN ")
    # Slack's curly quotes and an unquoted schedule work too.
    assert ask(db, admin_settings, "/crm schedule set retrain “15 3 * * *”").outcome == "ok"
    assert ask(db, admin_settings, "/crm schedule set influencers 0 9 * * mon").outcome == "ok"
    assert (override(db, "retrain") or ScheduleOverride(job_id="x")).cron == "15 3 * * *"
    assert (override(db, "influencer-digest") or ScheduleOverride(job_id="x")).cron == "0 9 * * mon"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('/crm schedule set at-risk "0 25 * * *"', "not a valid schedule"),
        ('/crm schedule set at-risk "0 8 * *"', "has 4 fields"),
        ("/crm schedule set at-risk", "Give the schedule in quotes"),
        ("/crm schedule set payroll '0 8 * * *'", "There is no job 'payroll'"),
        ("/crm schedule frobnicate retrain", "I don't know `schedule frobnicate`"),
        ("/crm schedule pause", "Which job?"),
        ("/crm schedule channel retrain C0123ABCD", "posts nothing"),
        ("/crm schedule channel at-risk #general", "by its id"),
        ("/crm schedule pause retrain now", "takes nothing more"),
    ],
)
def test_mistakes_get_a_sentence_saying_what_to_do(
    db: Engine, admin_settings: Settings, text: str, words: str
) -> None:
    reply = ask(db, admin_settings, text)
    assert reply.outcome == "usage"
    assert words in reply.text
    for job_id in ("retrain", "at-risk-digest", "influencer-digest"):
        assert override(db, job_id) is None


def test_pause_resume_channel_and_reset(db: Engine, admin_settings: Settings) -> None:
    assert "`retrain` is paused" in ask(db, admin_settings, "/crm schedule pause retrain").text
    assert (override(db, "retrain") or ScheduleOverride(job_id="x")).paused
    listed = ask(db, admin_settings, "/crm schedule")
    assert listed.table is not None
    assert listed.table.rows[0][3:5] == ["paused", "none (paused)"]
    assert "running again" in ask(db, admin_settings, "/crm schedule resume retrain").text
    assert not (override(db, "retrain") or ScheduleOverride(job_id="x", paused=True)).paused

    moved = ask(db, admin_settings, "/crm schedule channel at-risk <#C0NEW123|deals>")
    assert "now posts to channel C0NEW123" in moved.text
    assert (override(db, "at-risk-digest") or ScheduleOverride(job_id="x")).channel == "C0NEW123"

    assert "back to the schedule in the settings" in (
        ask(db, admin_settings, "/crm schedule reset at-risk").text
    )
    assert override(db, "at-risk-digest") is None
    assert (
        "already follows the settings"
        in ask(db, admin_settings, "/crm schedule reset at-risk").text
    )


def test_run_posts_a_digest_now_and_never_twice(
    db: Engine, admin_settings: Settings, slack: SlackFake
) -> None:
    accounts = book(5)
    add_run(db, accounts, add_customers(db, accounts), as_of=date(2026, 6, 28))
    first = ask(db, admin_settings, "/crm schedule run influencers")
    assert first.outcome == "ok", first.text
    assert "was posted to CINFL" in first.text
    second = ask(db, admin_settings, "/crm schedule run influencers")
    assert "already posted" in second.text and "not posting it twice" in second.text
    assert len(slack.messages("CINFL")) == 1
    no_channel = ask(db, admin_settings, "/crm schedule run at-risk")
    assert "has no channel to go to" in no_channel.text


def test_run_retrain_while_one_runs_says_so(db: Engine, admin_settings: Settings) -> None:
    with acquire_training_lock(db, "scheduler@host:42", 600):
        reply = ask(db, admin_settings, "/crm schedule run retrain")
    assert "already in progress (started by scheduler@host:42" in reply.text
    assert "not starting a second one" in reply.text


def test_changes_reach_a_scheduler_running_in_this_process(
    db: Engine, admin_settings: Settings
) -> None:
    poster = slack_poster(db, admin_settings, interval=FixedValueRetryIntervalCalculator(0.01))
    scheduler = start_scheduler(admin_settings, db, poster, paused=True)
    try:
        reply = ask(db, admin_settings, '/crm schedule set retrain "45 4 * * *"')
        assert "Applied to the running scheduler" in reply.text
        job = scheduler.get_job("retrain")
        assert job is not None and "hour='4', minute='45'" in str(job.trigger)
        assert "Next run: " in reply.text and " 04:45 " in reply.text
        ask(db, admin_settings, "/crm schedule pause influencers")
        paused = scheduler.get_job("influencer-digest")
        assert paused is not None and paused.next_run_time is None
        listed = ask(db, admin_settings, "/crm schedule")
        assert "The scheduler runs in this process" in listed.text
    finally:
        stop_scheduler(scheduler)


def test_the_shell_shows_the_schedule(db: Engine, admin_settings: Settings) -> None:
    text = render(ask(db, admin_settings, "/crm schedule"))
    assert "== Scheduled jobs ==" in text
    assert "influencer-digest" in text and "0 9 * * mon" in text


def test_run_without_a_slack_token_says_so(db: Engine, admin_settings: Settings) -> None:
    tokenless = admin_settings.model_copy(update={"slack_bot_token": ""})
    reply = ask(db, tokenless, "/crm schedule run influencers")
    assert reply.outcome == "error"
    assert "cannot be posted: SLACK_BOT_TOKEN is not set" in reply.text
