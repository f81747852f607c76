"""The training lock: one run at a time across threads and processes, and a holder that
dies (SIGKILL) never keeps the lock — on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from crmbot.core.config import Settings
from crmbot.core.db import read_session
from crmbot.core.models import ModelRun, TrainingLock
from crmbot.runs import train_exclusively
from crmbot.runs.lock import TrainingInProgress, acquire_training_lock, current_holder

T0 = datetime(2026, 6, 30, 2, 0, 0)


def _uses_lease(engine: Engine) -> bool:
    return engine.dialect.name != "postgresql"


def _refused(engine: Engine, holder: str, now: datetime) -> TrainingInProgress:
    """The refusal a second caller gets (fails the test when it gets the lock instead)."""
    try:
        with acquire_training_lock(engine, holder, 60, now):
            pass
    except TrainingInProgress as refusal:
        return refusal
    pytest.fail(f"{holder} got the lock while another run held it")


def test_a_second_holder_is_refused_with_who_and_since(storage_engine: Engine) -> None:
    with acquire_training_lock(storage_engine, "nightly retrain", 600, T0) as lease:
        assert lease.backend == ("lease" if _uses_lease(storage_engine) else "advisory")
        refused = _refused(storage_engine, "U123 via /crm retrain", T0)
        assert refused.holder == "nightly retrain"
        assert refused.since == T0
        assert "already in progress" in refused.user_message
        assert "nightly retrain" in refused.user_message
        assert current_holder(storage_engine, T0) is not None
    # Released: the next caller gets it, and nobody is shown as holding it.
    assert current_holder(storage_engine, T0) is None
    with acquire_training_lock(storage_engine, "next", 600, T0):
        pass


def test_the_lock_is_released_when_the_block_raises(storage_engine: Engine) -> None:
    with pytest.raises(ValueError), acquire_training_lock(storage_engine, "failing", 600, T0):
        raise ValueError("training blew up")
    with acquire_training_lock(storage_engine, "after", 600, T0):
        pass


def test_threads_racing_for_the_lock_let_exactly_one_in(storage_engine: Engine) -> None:
    racers = 6
    barrier = threading.Barrier(racers)
    won: list[str] = []
    refused: list[str] = []
    errors: list[BaseException] = []
    release = threading.Event()

    def race(name: str) -> None:
        try:
            barrier.wait(timeout=10)
            with acquire_training_lock(storage_engine, name, 600, T0):
                won.append(name)
                release.wait(timeout=10)
        except TrainingInProgress:
            refused.append(name)
        except BaseException as exc:  # anything else is a bug the test must show
            errors.append(exc)
        finally:
            if len(won) + len(refused) + len(errors) == racers:
                release.set()

    threads = [threading.Thread(target=race, args=(f"racer-{i}",)) for i in range(racers)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(won) + len(refused) + len(errors) < racers and time.monotonic() < deadline:
        time.sleep(0.02)
    release.set()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors, errors
    assert len(won) == 1, (won, refused)
    assert len(refused) == racers - 1


def test_an_expired_lease_is_taken_over(engine: Engine) -> None:
    first_hold = acquire_training_lock(engine, "stuck", 60, T0)
    first = first_hold.__enter__()
    _refused(engine, "early", T0 + timedelta(seconds=59))
    # The holder stopped renewing (hung); past its lease, the lock is free again.
    later = T0 + timedelta(seconds=61)
    assert current_holder(engine, later) is None
    with acquire_training_lock(engine, "successor", 60, later) as second:
        assert second.acquired_at == later
        # The old holder finds out when it next renews...
        assert first.renew() is False
        assert first.lost
        # ...and leaving its block does not release the successor's lock.
        first_hold.__exit__(None, None, None)
        holder = current_holder(engine, later)
        assert holder is not None and holder.holder == "successor"
    with read_session(engine) as session:
        assert session.get(TrainingLock, "training") is None


def test_the_holder_renews_its_lease_while_it_works(engine: Engine) -> None:
    moments = iter([T0, T0 + timedelta(seconds=40), T0 + timedelta(seconds=80)])
    current = [T0]

    def clock() -> datetime:
        return current[0]

    with acquire_training_lock(engine, "long run", 60, clock, renew_every=3600) as lease:
        assert lease.expires_at == T0 + timedelta(seconds=60)
        for moment in moments:
            current[0] = moment
            assert lease.renew()
        assert lease.expires_at == T0 + timedelta(seconds=140)
        # 100 s after the start, a plain 60 s lease would have run out; this one did not.
        _refused(engine, "other", T0 + timedelta(seconds=100))


def test_the_renewal_thread_extends_the_lease(tmp_path: Path) -> None:
    from crmbot.core.db import make_engine, upgrade

    file_engine = make_engine(f"sqlite:///{tmp_path / 'renew.db'}")
    upgrade(file_engine)
    ticks = [T0]

    def clock() -> datetime:
        ticks[0] += timedelta(seconds=10)
        return ticks[0]

    with acquire_training_lock(file_engine, "worker", 60, clock, renew_every=0.05) as lease:
        first_expiry = lease.expires_at
        deadline = time.monotonic() + 2
        while lease.expires_at == first_expiry and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lease.expires_at is not None and first_expiry is not None
        assert lease.expires_at > first_expiry
        with read_session(file_engine) as session:
            row = session.get(TrainingLock, "training")
            assert row is not None and row.expires_at >= first_expiry
    file_engine.dispose()


HOLDER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime
    from crmbot.core.db import make_engine
    from crmbot.runs.lock import acquire_training_lock

    engine = make_engine(sys.argv[1])
    started = datetime.fromisoformat(sys.argv[2])
    with acquire_training_lock(engine, "doomed trainer", 60, started):
        print("locked", flush=True)
        time.sleep(600)
    """
)


def _lock_in_subprocess(url: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, url, T0.isoformat()],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line == "locked", f"the holder process did not take the lock: {line!r}"
    return process


def test_a_sigkilled_holder_does_not_keep_the_lock(storage_engine: Engine) -> None:
    url = storage_engine.url.render_as_string(hide_password=False)
    process = _lock_in_subprocess(url)
    try:
        refused = _refused(storage_engine, "next", T0 + timedelta(seconds=5))
        assert refused.holder == "doomed trainer"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL

    if _uses_lease(storage_engine):
        # The lease it can no longer renew still runs for its 60 s...
        _refused(storage_engine, "too early", T0 + timedelta(seconds=30))
        # ...and then the lock is free.
        with acquire_training_lock(storage_engine, "next", 60, T0 + timedelta(seconds=61)):
            pass
    else:
        # PostgreSQL frees an advisory lock as soon as its connection is gone.
        deadline = time.monotonic() + 10
        while True:
            try:
                with acquire_training_lock(storage_engine, "next", 60, T0):
                    break
            except TrainingInProgress:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def test_train_exclusively_starts_nothing_while_a_run_holds_the_lock(
    engine: Engine, settings: Settings
) -> None:
    with (
        acquire_training_lock(engine, "nightly retrain", 600, T0),
        pytest.raises(TrainingInProgress),
    ):
        train_exclusively(
            engine, settings, holder="U123", as_of=date(2026, 6, 30), clock=lambda: T0
        )
    with read_session(engine) as session:
        assert session.execute(select(func.count()).select_from(ModelRun)).scalar_one() == 0
