"""The scheduler: persistent jobs, coalesced missed runs, one training across schedulers,
failures reported without stopping anything. APScheduler runs for real over real
databases; nothing waits for a schedule (due times are set in the past instead)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_SUBMITTED, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler
from slack_sdk.http_retry import FixedValueRetryIntervalCalculator
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from crmbot.core.config import Settings
from crmbot.core.cron import CronError, parse_cron
from crmbot.core.db import make_engine, read_session, upgrade, write_session
from crmbot.core.models import ActiveRun, ModelRun
from crmbot.runs.lock import acquire_training_lock
from crmbot.scheduler import (
    JOBS,
    MISFIRE_GRACE_SECONDS,
    SchedulerRuntime,
    _bind_runtime,
    find_job,
    latest_fire_time,
    reset_override,
    retrain_job,
    run_job_now,
    run_retrain,
    save_override,
    start_scheduler,
    stop_scheduler,
    sync_jobs,
)
from crmbot.slack.delivery import SlackPoster, slack_poster
from tests.support.scored_data import add_customers, add_run, book, digest_headers
from tests.support.slack_fake import SlackFake

RUN_DAY = datetime(2026, 6, 29, 2, 0)  # the injected "now" of job runs (naive UTC)


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def sched_settings(settings: Settings, slack: SlackFake) -> Settings:
    return settings.model_copy(
        update={
            "slack_api_base_url": slack.base_url,
            "admin_channel": "CADMIN",
            "at_risk_channel": "CRISK",
            "influencer_channel": "CINFL",
            "timezone": "Europe/Berlin",
            "digest_size": 3,
        }
    )


@pytest.fixture
def file_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def fast_poster(engine: Engine, settings: Settings) -> SlackPoster:
    return slack_poster(
        engine, settings, interval=FixedValueRetryIntervalCalculator(0.01), timeout=5
    )


@pytest.fixture
def schedulers() -> Iterator[list[BackgroundScheduler]]:
    """Schedulers a test starts; all shut down afterwards, whatever happens."""
    started: list[BackgroundScheduler] = []
    yield started
    for scheduler in started:
        stop_scheduler(scheduler, wait=True)


def start(
    schedulers: list[BackgroundScheduler],
    settings: Settings,
    engine: Engine,
    *,
    clock: Callable[[], datetime] = lambda: RUN_DAY,
    holder: str | None = None,
) -> BackgroundScheduler:
    scheduler = start_scheduler(
        settings, engine, fast_poster(engine, settings), clock=clock, holder=holder, paused=True
    )
    schedulers.append(scheduler)
    return scheduler


def stop(schedulers: list[BackgroundScheduler], scheduler: BackgroundScheduler) -> None:
    stop_scheduler(scheduler)
    schedulers.remove(scheduler)


def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def model_runs(engine: Engine) -> list[ModelRun]:
    with read_session(engine) as session:
        return list(session.execute(select(ModelRun).order_by(ModelRun.id)).scalars())


def stored_job_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM apscheduler_jobs")).scalar_one())


def real_now() -> datetime:
    return datetime.now(UTC)


def scored(engine: Engine) -> None:
    """An active model over customers without orders: digests work, training fails."""
    accounts = book(6)
    pks = add_customers(engine, accounts)
    add_run(engine, accounts, pks, as_of=date(2026, 6, 28))


# -- cron -----------------------------------------------------------------------------------


def test_crontab_weekday_numbers_mean_what_crontab_means() -> None:
    weekdays = parse_cron("0 8 * * 1-5", "UTC")
    assert "day_of_week='mon,tue,wed,thu,fri', hour='8', minute='0'" in str(weekdays)
    assert "day_of_week='sun'" in str(parse_cron("0 9 * * 0", "UTC"))
    assert "day_of_week='sun'" in str(parse_cron("0 9 * * 7", "UTC"))
    assert "day_of_week='sun,tue,thu,sat'" in str(parse_cron("0 9 * * */2", "UTC"))
    assert "day_of_week='mon-fri'" in str(parse_cron("0 8 * * mon-fri", "UTC"))
    monday = datetime(2026, 6, 29, 7, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    trigger = parse_cron("0 8 * * 1-5", "Europe/Berlin")
    assert trigger.get_next_fire_time(None, monday) == monday.replace(hour=8)
    assert trigger.timezone == ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 8 * *", "has 4 fields"),
        ("0 25 * * *", "not a valid schedule"),
        ("0 8 * * 1-mon", "mixes numbers and names"),
        ("0 8 * * 9", "out of range"),
    ],
)
def test_bad_cron_expressions_are_explained(expression: str, words: str) -> None:
    with pytest.raises(CronError, match=words):
        parse_cron(expression, "UTC")


def test_the_latest_slot_of_a_schedule() -> None:
    trigger = parse_cron("0 2 * * *", "UTC")
    now = datetime(2026, 6, 29, 9, 30, tzinfo=UTC)
    assert latest_fire_time(trigger, now) == datetime(2026, 6, 29, 2, 0, tzinfo=UTC)
    assert latest_fire_time(parse_cron("0 2 * * *", "UTC"), now.replace(hour=1)) is None


def test_jobs_have_names_people_can_type() -> None:
    assert find_job("at-risk") == JOBS["at-risk-digest"]
    assert find_job("Influencers") == JOBS["influencer-digest"]
    assert find_job("train") == JOBS["retrain"]
    assert find_job("nope") is None


# -- persistence ----------------------------------------------------------------------------


def test_jobs_persist_across_a_scheduler_restart(
    storage_engine: Engine, sched_settings: Settings, schedulers: list[BackgroundScheduler]
) -> None:
    first = start(schedulers, sched_settings, storage_engine)
    jobs = {job.id: job for job in first.get_jobs(jobstore="default")}
    assert set(jobs) == {"retrain", "at-risk-digest", "influencer-digest", "notify"}
    berlin = ZoneInfo("Europe/Berlin")
    for job in jobs.values():
        assert job.trigger.timezone == berlin  # every trigger carries the zone explicitly
        assert job.coalesce is True
        assert job.max_instances == 1
        assert job.misfire_grace_time == MISFIRE_GRACE_SECONDS
        assert job.func_ref == JOBS[job.id].func
    assert "hour='2'" in str(jobs["retrain"].trigger)
    before = {job_id: job.next_run_time for job_id, job in jobs.items()}
    stop(schedulers, first)

    # A new process: the same jobs come back from the database, not twice.
    second = start(schedulers, sched_settings, storage_engine)
    after = {job.id: job.next_run_time for job in second.get_jobs(jobstore="default")}
    assert after == before
    assert stored_job_rows(storage_engine) == len(JOBS)


def test_admin_overrides_are_applied_on_start(
    file_engine: Engine, sched_settings: Settings, schedulers: list[BackgroundScheduler]
) -> None:
    save_override(file_engine, "at-risk-digest", by="UADMIN", now=RUN_DAY, cron="30 7 * * 1-5")
    save_override(file_engine, "influencer-digest", by="UADMIN", now=RUN_DAY, paused=True)
    scheduler = start(schedulers, sched_settings, file_engine)
    at_risk = scheduler.get_job("at-risk-digest")
    assert at_risk is not None and "hour='7', minute='30'" in str(at_risk.trigger)
    influencer = scheduler.get_job("influencer-digest")
    assert influencer is not None and influencer.next_run_time is None  # paused
    stop(schedulers, scheduler)

    assert reset_override(file_engine, "at-risk-digest")
    save_override(file_engine, "influencer-digest", by="UADMIN", now=RUN_DAY, paused=False)
    restarted = start(schedulers, sched_settings, file_engine)
    at_risk = restarted.get_job("at-risk-digest")
    assert at_risk is not None and "hour='8'" in str(at_risk.trigger)
    influencer = restarted.get_job("influencer-digest")
    assert influencer is not None and influencer.next_run_time is not None


def test_changes_made_in_another_process_are_picked_up_without_a_restart(
    file_engine: Engine, sched_settings: Settings, schedulers: list[BackgroundScheduler]
) -> None:
    scheduler = start(schedulers, sched_settings, file_engine)
    assert sync_jobs(scheduler, file_engine, sched_settings) == []
    save_override(file_engine, "retrain", by="UADMIN", now=RUN_DAY, cron="15 3 * * *")
    save_override(file_engine, "at-risk-digest", by="UADMIN", now=RUN_DAY, paused=True)
    changes = sync_jobs(scheduler, file_engine, sched_settings)
    assert changes == ["retrain: now '15 3 * * *'", "at-risk-digest: paused"]
    retrain = scheduler.get_job("retrain")
    assert retrain is not None and "hour='3', minute='15'" in str(retrain.trigger)
    at_risk = scheduler.get_job("at-risk-digest")
    assert at_risk is not None and at_risk.next_run_time is None


# -- running --------------------------------------------------------------------------------


class Events:
    """Counts what a scheduler reports for one job."""

    def __init__(self, scheduler: BackgroundScheduler, job_id: str) -> None:
        self.submitted: list[JobEvent] = []
        self.executed: list[JobEvent] = []

        def listen(event: JobEvent) -> None:
            if event.job_id != job_id:
                return
            (self.submitted if event.code == EVENT_JOB_SUBMITTED else self.executed).append(event)

        scheduler.add_listener(listen, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED)


def test_a_missed_run_runs_once_after_downtime(
    file_engine: Engine,
    sched_settings: Settings,
    slack: SlackFake,
    schedulers: list[BackgroundScheduler],
) -> None:
    scored(file_engine)
    hourly = sched_settings.model_copy(update={"at_risk_digest_cron": "0 * * * *"})
    first = start(schedulers, hourly, file_engine)
    # The process went down more than five hourly slots ago.
    first.modify_job("at-risk-digest", next_run_time=real_now() - timedelta(hours=5, minutes=5))
    stop(schedulers, first)

    second = start(schedulers, hourly, file_engine)
    events = Events(second, "at-risk-digest")
    second.resume()
    assert wait_for(lambda: len(events.executed) >= 1)
    time.sleep(0.5)  # room for a second run, if coalescing failed
    assert len(events.submitted) == 1
    assert len(events.submitted[0].scheduled_run_times) == 1  # five slots, one run
    assert len(events.executed) == 1
    assert len(digest_headers(slack.messages("CRISK"))) == 1
    job = second.get_job("at-risk-digest")
    assert job is not None and job.next_run_time > real_now()


def test_a_run_missed_beyond_the_grace_time_is_reported_not_run(
    file_engine: Engine,
    sched_settings: Settings,
    slack: SlackFake,
    schedulers: list[BackgroundScheduler],
) -> None:
    scored(file_engine)
    slot = (real_now() - timedelta(seconds=MISFIRE_GRACE_SECONDS + 3600)).replace(
        second=0, microsecond=0
    )
    daily = sched_settings.model_copy(
        update={"timezone": "UTC", "at_risk_digest_cron": f"{slot.minute} {slot.hour} * * *"}
    )
    first = start(schedulers, daily, file_engine)
    first.modify_job("at-risk-digest", next_run_time=slot)
    stop(schedulers, first)
    second = start(schedulers, daily, file_engine)
    second.resume()
    assert wait_for(lambda: len(slack.messages("CADMIN")) == 1)
    assert "missed its run" in slack.messages("CADMIN")[0]["text"]
    assert slack.messages("CRISK") == []


def test_two_schedulers_on_one_database_train_once(
    storage_engine: Engine,
    sched_settings: Settings,
    slack: SlackFake,
    schedulers: list[BackgroundScheduler],
) -> None:
    scored(storage_engine)
    one = start(schedulers, sched_settings, storage_engine, holder="scheduler one")
    two = start(schedulers, sched_settings, storage_engine, holder="scheduler two")
    one.modify_job("retrain", next_run_time=real_now() - timedelta(minutes=1))
    events = [Events(one, "retrain"), Events(two, "retrain")]
    one.resume()
    two.resume()
    # Run 1 is the active model `scored` wrote; the retrain adds run 2, and only run 2.
    assert wait_for(lambda: len(model_runs(storage_engine)) >= 2)
    time.sleep(1.0)  # both schedulers have looked at the due job by now
    assert len(model_runs(storage_engine)) == 2
    assert sum(len(e.submitted) for e in events) >= 1
    # The run failed (no orders yet): one report, from the scheduler that trained.
    assert wait_for(lambda: len(slack.messages("CADMIN")) == 1)
    time.sleep(0.2)
    assert len(slack.messages("CADMIN")) == 1


def test_two_schedulers_firing_the_same_slot_train_once(
    storage_engine: Engine, sched_settings: Settings, slack: SlackFake
) -> None:
    """Deterministic twin of the test above: both schedulers' job runs start together."""
    scored(storage_engine)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def fire(holder: str) -> None:
        _bind_runtime(
            SchedulerRuntime(
                storage_engine,
                sched_settings,
                fast_poster(storage_engine, sched_settings),
                lambda: RUN_DAY,
                holder,
            )
        )
        barrier.wait(timeout=10)
        try:
            outcomes.append(retrain_job())
        except Exception as exc:  # the run that trained fails: no orders in this database
            outcomes.append(f"failed: {exc}")

    threads = [threading.Thread(target=fire, args=(f"scheduler {i}",)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(model_runs(storage_engine)) == 2  # the active model's run, and one retrain
    assert len(outcomes) == 2
    assert sum(o.startswith("failed") for o in outcomes) == 1
    skipped = next(o for o in outcomes if not o.startswith("failed"))
    assert "already in progress" in skipped or "already started" in skipped


def test_a_failed_retrain_keeps_the_active_model_and_tells_the_admins(
    file_engine: Engine,
    sched_settings: Settings,
    slack: SlackFake,
    schedulers: list[BackgroundScheduler],
) -> None:
    scored(file_engine)
    with read_session(file_engine) as session:
        active_before = session.get(ActiveRun, "scores")
        assert active_before is not None
    scheduler = start(schedulers, sched_settings, file_engine)
    scheduler.modify_job("retrain", next_run_time=real_now() - timedelta(minutes=1))
    scheduler.resume()
    assert wait_for(lambda: len(slack.messages("CADMIN")) == 1)
    notice = slack.messages("CADMIN")[0]["text"]
    assert "Retrain as of 2026-06-29 failed" in notice
    assert "clv" in notice and "no customer has a purchase" in notice
    assert f"run {active_before.run_id}, data as of 2026-06-28) stays live" in notice
    runs = model_runs(file_engine)
    assert [r.status for r in runs] == ["succeeded", "failed"]
    with read_session(file_engine) as session:
        active = session.get(ActiveRun, "scores")
        assert active is not None and active.run_id == active_before.run_id

    # The scheduler lives on: the next job runs.
    assert scheduler.running
    scheduler.modify_job("at-risk-digest", next_run_time=real_now() - timedelta(minutes=1))
    assert wait_for(lambda: len(digest_headers(slack.messages("CRISK"))) == 1)


def test_a_job_that_raises_is_reported_and_the_scheduler_carries_on(
    file_engine: Engine,
    sched_settings: Settings,
    slack: SlackFake,
    schedulers: list[BackgroundScheduler],
) -> None:
    scored(file_engine)
    with write_session(file_engine) as session:  # the digest log is gone: the job must fail
        session.execute(text("DROP TABLE digest_log"))
    scheduler = start(schedulers, sched_settings, file_engine)
    scheduler.modify_job("influencer-digest", next_run_time=real_now() - timedelta(minutes=1))
    scheduler.resume()
    assert wait_for(lambda: len(slack.messages("CADMIN")) == 1)
    notice = slack.messages("CADMIN")[0]["text"]
    assert "Scheduled job `influencer-digest` failed: OperationalError" in notice
    assert "digest_log" in notice
    time.sleep(0.2)
    assert len(slack.messages("CADMIN")) == 1  # reported once, not again by the listener
    assert scheduler.running
    job = scheduler.get_job("influencer-digest")
    assert job is not None and job.next_run_time > real_now()  # still scheduled


def test_a_retrain_asked_for_while_one_runs_says_so_and_starts_nothing(
    file_engine: Engine, sched_settings: Settings
) -> None:
    with acquire_training_lock(file_engine, "nightly retrain", 600, RUN_DAY):
        result = run_job_now(
            "retrain", file_engine, sched_settings, requested_by="UADMIN", clock=lambda: RUN_DAY
        )
    assert result.status == "skipped"
    assert "already in progress (started by nightly retrain since 2026-06-29 02:00 UTC)" in (
        result.message
    )
    assert model_runs(file_engine) == []


def test_a_scheduled_retrain_skips_a_slot_that_was_already_trained(
    file_engine: Engine, sched_settings: Settings
) -> None:
    scored(file_engine)
    utc = sched_settings.model_copy(update={"timezone": "UTC"})
    # Run 1 (from `scored`) started at the slot's time, 02:00: this slot is done.
    with write_session(file_engine) as session:
        run = session.get(ModelRun, 1)
        assert run is not None
        run.started_at = RUN_DAY
    runtime = SchedulerRuntime(file_engine, utc, None, lambda: RUN_DAY + timedelta(minutes=3))
    skipped = run_retrain(runtime, scheduled=True)
    assert skipped.status == "skipped" and "run 1 already started" in skipped.message
    assert len(model_runs(file_engine)) == 1
    # Asked for by a person ("run now"), it trains regardless.
    asked = run_retrain(runtime, scheduled=False)
    assert asked.status == "failed"  # no orders in this database; it did try
    assert len(model_runs(file_engine)) == 2


def test_every_job_can_run_now(
    file_engine: Engine, sched_settings: Settings, slack: SlackFake
) -> None:
    scored(file_engine)
    poster = fast_poster(file_engine, sched_settings)
    for job_id, channel in (("at-risk-digest", "CRISK"), ("influencer-digest", "CINFL")):
        result = run_job_now(
            job_id,
            file_engine,
            sched_settings,
            requested_by="UADMIN",
            poster=poster,
            clock=lambda: RUN_DAY,
        )
        assert result.status == "ok", result.message
        assert len(digest_headers(slack.messages(channel))) == 1
    with read_session(file_engine) as session:
        assert session.execute(select(func.count()).select_from(ModelRun)).scalar_one() == 1


def test_crmbot_scheduler_runs_in_the_foreground_and_stops_on_sigterm(
    tmp_path: Path, slack: SlackFake
) -> None:
    import os
    import signal
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_API_BASE_URL": slack.base_url,
        "CRMBOT_TIMEZONE": "Europe/Berlin",
        "CRMBOT_RETRAIN_CRON": "15 3 * * *",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", "from crmbot.cli.main import main; main()", "scheduler"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "scheduler running" in line:
            break
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=30)
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert "retrain            next run" in output and "03:15 CE" in output
    assert "crmbot scheduler stopped." in output
    engine = make_engine(url)
    assert stored_job_rows(engine) == len(JOBS)
    engine.dispose()


def test_settings_refuse_a_bad_time_zone_or_schedule() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="'Mars/Olympus' is not a time zone"):
        Settings(_env_file=None, timezone="Mars/Olympus")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="has 4 fields"):
        Settings(_env_file=None, at_risk_digest_cron="0 8 * *")  # type: ignore[call-arg]
    fine = Settings(_env_file=None, timezone="Europe/Berlin", retrain_cron="0 3 * * 1-5")  # type: ignore[call-arg]
    assert fine.retrain_cron == "0 3 * * 1-5"


TRAINER_SCRIPT = """
import sys, time
from datetime import date, datetime
from crmbot.core.config import Settings
from crmbot.core.db import make_engine
from crmbot.runs import train_exclusively

engine = make_engine(sys.argv[1])
settings = Settings(_env_file=None, training_lock_lease_seconds=60)

def progress(event):
    if event.step == "load" and event.state == "done":
        print("training", flush=True)
        time.sleep(600)  # the next stage never comes: the process is killed here

train_exclusively(
    engine, settings, holder="doomed trainer", as_of=date(2026, 6, 29),
    progress=progress, clock=lambda: datetime(2026, 6, 29, 2, 0),
)
"""


def test_training_killed_mid_run_keeps_the_model_and_the_next_run_starts(
    storage_engine: Engine, sched_settings: Settings
) -> None:
    import signal
    import subprocess
    import sys

    scored(storage_engine)
    with read_session(storage_engine) as session:
        active_before = session.get(ActiveRun, "scores")
        assert active_before is not None
    url = storage_engine.url.render_as_string(hide_password=False)
    process = subprocess.Popen(
        [sys.executable, "-c", TRAINER_SCRIPT, url], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "training"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)

    runs = model_runs(storage_engine)
    assert [r.status for r in runs] == ["succeeded", "running"]  # the killed run, half done
    with read_session(storage_engine) as session:
        active = session.get(ActiveRun, "scores")
        assert active is not None and active.run_id == active_before.run_id

    utc = sched_settings.model_copy(update={"timezone": "UTC", "training_lock_lease_seconds": 60})
    lease_over = RUN_DAY + timedelta(seconds=61)

    def next_run() -> str:
        runtime = SchedulerRuntime(storage_engine, utc, None, lambda: lease_over, "next")
        return run_retrain(runtime, scheduled=False).status

    if storage_engine.dialect.name == "postgresql":
        # The server released the advisory lock with the dead connection.
        assert wait_for(lambda: next_run() != "skipped")
    else:
        assert next_run() == "failed"  # it started (and failed: no orders in this database)
    runs = model_runs(storage_engine)
    assert len(runs) == 3 and runs[-1].status == "failed"
    with read_session(storage_engine) as session:
        active = session.get(ActiveRun, "scores")
        assert active is not None and active.run_id == active_before.run_id
