"""Faults across the whole nightly cycle: the scheduled retrain's process is killed
(SIGKILL) half-way through writing its scores, then the day goes on — readers, the lock,
the digests and the next retrain — on a SQLite file, against the local Slack fake.

Pieces of this are tested where they live (tests/test_training.py kills a run before its
flip, tests/test_locks.py a bare lock holder, tests/test_digests.py crashed senders); here
they are one story, with the kill landing between two committed chunks of score rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from slack_sdk.http_retry import FixedValueRetryIntervalCalculator
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from crmbot import queries, runs
from crmbot.core.config import Settings
from crmbot.core.db import make_engine, read_session, upgrade
from crmbot.core.models import CustomerScore, DigestLog, ModelRun
from crmbot.runs import train
from crmbot.scheduler import SchedulerRuntime, run_job_now, run_retrain
from crmbot.slack.delivery import slack_poster
from tests.support.scored_data import digest_headers
from tests.support.slack_fake import SlackFake
from tests.support.value_data import END, build_company, insert_company

MONDAY_RETRAIN = datetime(2026, 1, 5, 2, 0, 5)  # the nightly slot (0 2 * * *), Monday
LEASE_SECONDS = 60  # short, so "after the lease" is a minute of injected clock
CHUNK = 10  # score rows per committed chunk in the killed run (40 customers: 4 chunks)
CHANNEL = "CRISK"

# The scheduler's retrain, as the scheduler runs it, in a process of its own. It stops
# (sleeps) while the second chunk of score rows is inserted but not committed: the first
# chunk is in the database, the second holds SQLite's write lock. Then it is killed.
KILLED_RETRAIN = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime
    from sqlalchemy import event
    from crmbot.training import scores as score_writer
    from crmbot.core.config import Settings
    from crmbot.core.db import make_engine
    from crmbot.scheduler import SchedulerRuntime, run_retrain

    url, started, chunk, lease = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    score_writer.WRITE_CHUNK_ROWS = chunk
    engine = make_engine(url)
    score_inserts = []

    @event.listens_for(engine, "after_cursor_execute")
    def stop_in_the_second_chunk(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO CUSTOMER_SCORE"):
            score_inserts.append(statement)
            if len(score_inserts) == 2:
                print("HALF-WRITTEN", flush=True)
                time.sleep(600)

    settings = Settings(_env_file=None, database_url=url, training_lock_lease_seconds=lease)
    runtime = SchedulerRuntime(
        engine=engine, settings=settings, poster=None,
        clock=lambda: datetime.fromisoformat(started), holder="nightly retrain",
    )
    run_retrain(runtime, scheduled=True)
    print("FINISHED", flush=True)
    """
)


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


def _scores(engine: Engine) -> pd.DataFrame:
    with read_session(engine) as session:
        return queries.scores_frame(session=session)


def _active(engine: Engine) -> int | None:
    with read_session(engine) as session:
        return runs.active_run_id(session=session)


def _score_rows(engine: Engine, run_id: int) -> int:
    with read_session(engine) as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(CustomerScore)
                .where(CustomerScore.run_id == run_id)  # type: ignore[arg-type]
            ).scalar_one()
        )


@pytest.mark.slow  # three real trainings of a 40-customer company and a killed one (~20 s)
def test_a_retrain_killed_mid_write_loses_nothing_and_the_day_goes_on(
    tmp_path: Path, settings: Settings, slack: SlackFake
) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = make_engine(url)
    upgrade(engine)
    insert_company(engine, build_company())
    night_settings = settings.model_copy(
        update={
            "database_url": url,
            "training_lock_lease_seconds": LEASE_SECONDS,
            "at_risk_channel": CHANNEL,
            "slack_api_base_url": slack.base_url,
            # Every finished retrain goes live: champion/challenger is tested elsewhere.
            "churn_auc_margin": 1.0,
            "clv_margin": 1.0,
        }
    )
    poster = slack_poster(
        engine, night_settings, interval=FixedValueRetryIntervalCalculator(0.01), timeout=5
    )
    sunday = train(engine, night_settings, END, clock=lambda: MONDAY_RETRAIN - timedelta(days=1))
    assert sunday.activated, sunday.error
    live_before = _scores(engine)

    # -- 02:00 Monday: the scheduled retrain dies half-way through writing its scores.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLED_RETRAIN,
            url,
            MONDAY_RETRAIN.isoformat(),
            str(CHUNK),
            str(LEASE_SECONDS),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stderr is not None
        line = child.stdout.readline().strip()
        assert line == "HALF-WRITTEN", child.stderr.read()
        with read_session(engine) as session:
            killed_id = session.execute(
                select(ModelRun.id).where(ModelRun.status == "running")  # type: ignore[arg-type]
            ).scalar_one()
        # Mid-write: one chunk committed, the next one pending. Readers, on threads of
        # their own as the bot's listeners are, see the whole previous run and only it.
        assert _score_rows(engine, killed_id) == CHUNK
        seen: list[pd.DataFrame] = []
        readers = [threading.Thread(target=lambda: seen.append(_scores(engine))) for _ in range(4)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(timeout=30)
        assert len(seen) == 4
        for frame in seen:
            pd.testing.assert_frame_equal(frame, live_before)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    # The uncommitted chunk is gone with the process; the committed one is never read.
    assert _active(engine) == sunday.run_id
    assert _score_rows(engine, killed_id) == CHUNK
    pd.testing.assert_frame_equal(_scores(engine), live_before)

    # -- 02:00:35: inside the dead holder's lease a retrain is refused, naming the holder.
    early = run_job_now(
        "retrain",
        engine,
        night_settings,
        requested_by="UADMIN",
        clock=lambda: MONDAY_RETRAIN + timedelta(seconds=30),
    )
    assert early.status == "skipped" and "nightly retrain" in early.message

    # -- 08:00: the at-risk digest goes out once, from the model that stayed live.
    def digest_at(moment: datetime) -> str:
        return run_job_now(
            "at-risk-digest",
            engine,
            night_settings,
            requested_by="scheduler",
            poster=poster,
            clock=lambda: moment,
        ).status

    assert digest_at(MONDAY_RETRAIN.replace(hour=8, second=0)) == "ok"
    assert len(digest_headers(slack.messages(CHANNEL))) == 1

    # -- Tuesday 02:00: the lease ran out long ago. The nightly retrain runs on schedule,
    # closes the dead run (its committed chunk goes with it) and goes live.
    tuesday = MONDAY_RETRAIN + timedelta(days=1)
    runtime = SchedulerRuntime(
        engine=engine, settings=night_settings, poster=poster, clock=lambda: tuesday
    )
    nightly = run_retrain(runtime, scheduled=True)
    assert nightly.status == "ok", nightly.message
    tuesday_run = _active(engine)
    assert tuesday_run not in (None, sunday.run_id, killed_id)
    with read_session(engine) as session:
        killed = session.get(ModelRun, killed_id)
        assert killed is not None and killed.status == "failed"
        assert killed.error is not None and "abandoned" in killed.error
    assert _score_rows(engine, killed_id) == 0
    assert _score_rows(engine, tuesday_run) == 40  # type: ignore[arg-type]

    # -- Tuesday 08:00: the digest goes out once from the new model; the job running again
    # (a second scheduler, a restart) posts nothing, and Monday's is not sent again.
    assert digest_at(tuesday.replace(hour=8, second=0)) == "ok"
    assert digest_at(tuesday.replace(hour=8, minute=5)) == "ok"
    assert digest_at(MONDAY_RETRAIN.replace(hour=9, second=0)) == "ok"
    assert len(digest_headers(slack.messages(CHANNEL))) == 2
    # Each message of each digest once: the headers and every account's row.
    keys = [m["metadata"]["event_payload"]["digest"] for m in slack.messages(CHANNEL)]
    assert len(keys) > 2 and len(set(keys)) == len(keys)
    with read_session(engine) as session:
        periods = [
            (row.period, row.status)
            for row in session.execute(select(DigestLog).order_by(DigestLog.id)).scalars()
        ]
    assert periods == [("2026-01-05", "posted"), ("2026-01-06", "posted")]
    engine.dispose()
