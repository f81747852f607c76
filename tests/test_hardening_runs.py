"""Recovery from a bad model run record, a dead run and a database outage.

A run's record is corrupted the way a bad write or a hand edit would, with raw SQL: on
SQLite text that is not JSON and a date that is not a date; on PostgreSQL and MariaDB
(whose JSON and DATE columns refuse those) JSON of the wrong shape. Then: the score
commands still answer (or, when the live run's data date is unreadable, say so and name the
way out), `/crm model` and `crmbot model list|show` show the run as unreadable, `crmbot
model activate` of a good run recovers, and a retrain goes live past a corrupt champion.

This module is also a tiny model stage (`run`, `compare`) for the retrain test: its
champion/challenger check reads the live run's metrics as a real one does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from crmbot.chat.dispatch import Dispatcher
from crmbot.cli.main import app as cli
from crmbot.core.clock import utc_now
from crmbot.core.config import Settings, get_settings
from crmbot.core.db import make_engine, read_session, upgrade, write_session
from crmbot.core.models import ModelRun
from crmbot.runs import get_run, train
from crmbot.training.pipeline import STAGES
from tests.support.slack_fake import SlackFake
from tests.support.small_crm import AS_OF, TODAY, ChatBot, SmallCrm, seed

SCORE_COMMANDS = ["customer C001", "at-risk", "why C001", "segment Champions", "influencers"]


# -- a model stage, for the retrain test ---------------------------------------------------


def run(ctx: Any) -> None:
    """The probe stage: a fixed score, so the check below has something to compare."""
    ctx.metrics["probe"] = {"score": 0.5}


def compare(new: dict[str, Any], champion: dict[str, Any], settings: Settings) -> str | None:
    """Object when the champion scored higher (reads the champion like churn does)."""
    best = champion.get("score")
    if best is None:
        return None
    return "the probe scored lower" if new["score"] < best - 0.1 else None


PROBE_STAGES = [STAGES[0], ("probe", __name__)]


# -- helpers -------------------------------------------------------------------------------


def kind(engine: Engine) -> str:
    return engine.dialect.name


def corrupt_json(engine: Engine, run_id: int) -> None:
    """Every JSON value of the run unreadable: not JSON on SQLite, the wrong shape on the
    servers (their JSON columns only take valid JSON)."""
    if kind(engine) == "sqlite":
        values = {"metrics": "{not json", "params": "[[", "timings": "{", "row_counts": "x"}
    else:
        values = {
            "metrics": "[1, 2]",
            "params": '"text"',
            "timings": "[]",
            "row_counts": "3",
        }
    assignments = ", ".join(f"{column} = '{value}'" for column, value in values.items())
    with engine.begin() as connection:
        connection.execute(
            text(f"UPDATE model_run SET {assignments} WHERE id = :id"), {"id": run_id}
        )


def corrupt_date(engine: Engine, run_id: int) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE model_run SET as_of = 'garbage', started_at = 'last tuesday' WHERE id = :id"
            ),
            {"id": run_id},
        )


def flat(output: str) -> str:
    return " ".join(output.split())


def table_row(output: str, run_id: int) -> list[str]:
    """The cells of run `run_id`'s row in `crmbot model list`'s table."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if cells and cells[0] == str(run_id):
            return cells
    raise AssertionError(f"no row for run {run_id} in\n{output}")


def database_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def crm(storage_engine: Engine) -> SmallCrm:
    return seed(storage_engine)


@pytest.fixture
def sqlite_crm(tmp_path: Path) -> Iterator[SmallCrm]:
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    upgrade(engine)
    yield seed(engine)
    engine.dispose()


@pytest.fixture
def cli_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """`crmbot ...` through the typer app, on a given engine's database."""

    def invoke(engine: Engine, *args: str) -> tuple[int, str]:
        monkeypatch.setenv("DATABASE_URL", database_url(engine))
        get_settings.cache_clear()
        result = CliRunner().invoke(cli, list(args))
        return result.exit_code, result.output

    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line
    yield invoke
    get_settings.cache_clear()


# -- corrupt JSON: everything still answers --------------------------------------------------


def test_corrupt_metrics_and_params_break_no_command(
    crm: SmallCrm,
    settings: Settings,
    tmp_path: Path,
    cli_on: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from crmbot.runs import lifecycle

    monkeypatch.setattr(lifecycle, "_warned", set())  # what earlier tests' runs logged
    corrupt_json(crm.engine, crm.run_id)
    bot = ChatBot(crm.engine, settings, tmp_path / "charts")
    for line in SCORE_COMMANDS:
        reply = bot.reply(line)
        assert reply.outcome == "ok", (line, reply.text)
    model = bot.reply("model")
    assert model.outcome == "ok", model.text
    assert "metrics are unreadable" in model.text
    fields = dict(model.fields)
    assert fields["Customers scored"] == "unreadable"
    assert fields["Record"] == "unreadable: params, metrics, timings, row_counts (corrupt)"
    # Logged once per value, however often it is read.
    for _ in range(3):
        bot.reply("model")
    warnings = [r.getMessage() for r in caplog.records if "is unreadable" in r.getMessage()]
    assert len(warnings) == 4 == len(set(warnings)), warnings

    code, output = cli_on(crm.engine, "model", "list")
    assert code == 0, output
    row = table_row(output, crm.run_id)
    assert row[1:3] == ["2026-06-30", "succeeded (active)"]
    assert row[5] == "unreadable" and row[6] == "unreadable: params, metrics, timings, row_counts"
    code, output = cli_on(crm.engine, "model", "show")
    assert code == 0, output
    assert "Unreadable (the record is corrupt): params, metrics, timings, row_counts" in flat(
        output
    )


# -- a corrupt date: refused with a way out, and the way out works ---------------------------


def test_an_unreadable_data_date_is_refused_with_a_way_out_that_works(
    sqlite_crm: SmallCrm, settings: Settings, tmp_path: Path, cli_on: Any
) -> None:
    crm = sqlite_crm
    corrupt_date(crm.engine, crm.run_id)
    corrupt_json(crm.engine, crm.run_id)
    bot = ChatBot(crm.engine, settings, tmp_path / "charts")
    for line in SCORE_COMMANDS:
        reply = bot.reply(line)
        assert reply.outcome == "error", line
        assert f"The live model run {crm.run_id} cannot be used" in reply.text
        assert "crmbot model activate" in reply.text and "failed on my side" not in reply.text
    model = bot.reply("model")
    assert model.outcome == "ok", model.text
    assert dict(model.fields)["Data as of"].startswith("unreadable")
    assert "unreadable" in str(model.table.rows if model.table else "")

    code, output = cli_on(crm.engine, "model", "list")
    assert code == 0, output
    row = table_row(output, crm.run_id)
    assert row[1:4] == ["unreadable", "succeeded (active)", "unreadable"]
    assert row[6].startswith("unreadable: as_of, started_at, params")
    code, output = cli_on(crm.engine, "model", "show")
    assert code == 0 and "as of unreadable" in flat(output), output
    code, output = cli_on(crm.engine, "model", "activate", str(crm.run_id))
    assert code == 1 and "unreadable" in flat(output), output

    code, output = cli_on(crm.engine, "model", "activate", str(crm.previous_run_id))
    assert code == 0, output
    assert f"Model run {crm.previous_run_id} (as of 2026-06-23)" in flat(output)
    card = bot.reply("customer C001")
    assert card.outcome == "ok" and f"Model run {crm.previous_run_id}" in (card.footer or "")


# -- retraining past a corrupt champion --------------------------------------------------------


def test_a_retrain_goes_live_past_a_corrupt_champion(
    crm: SmallCrm, settings: Settings, tmp_path: Path
) -> None:
    if kind(crm.engine) == "sqlite":
        corrupt_json(crm.engine, crm.run_id)
    else:  # valid JSON, but the probe's check cannot read it
        with crm.engine.begin() as connection:
            connection.execute(
                text('UPDATE model_run SET metrics = \'{"probe": "garbage"}\' WHERE id = :id'),
                {"id": crm.run_id},
            )
    result = train(crm.engine, settings, AS_OF, stages=PROBE_STAGES)
    assert result.status == "succeeded" and result.activated, result.error
    note = result.params["run"]["note"]
    assert f"the previous run {crm.run_id}'s metrics" in note
    assert "went live without the champion/challenger check" in note
    model = ChatBot(crm.engine, settings, tmp_path / "charts").reply("model")
    assert model.title == f"Model run {result.run_id}"
    assert dict(model.fields)["Note"] == note


def test_a_readable_champion_still_blocks_a_worse_run(crm: SmallCrm, settings: Settings) -> None:
    with write_session(crm.engine) as session:
        champion = session.get(ModelRun, crm.run_id)
        assert champion is not None
        champion.metrics = {"probe": {"score": 0.9}}
    result = train(crm.engine, settings, AS_OF, stages=PROBE_STAGES)
    assert result.status == "rejected" and not result.activated
    assert "probe: the probe scored lower" in (result.error or "")


# -- dead runs at start-up -------------------------------------------------------------------


def add_running_run(engine: Engine, started: datetime) -> int:
    with write_session(engine) as session:
        dead = ModelRun(as_of=AS_OF, started_at=started, status="running")
        session.add(dead)
        session.flush()
        assert dead.id is not None
        return dead.id


def status_of(engine: Engine, run_id: int) -> tuple[str, str | None]:
    with read_session(engine) as session:
        found = get_run(session=session, run_id=run_id)
        assert found is not None
        return found.status, found.error


def test_the_scheduler_marks_dead_runs_abandoned_when_it_starts(
    crm: SmallCrm, settings: Settings, tmp_path: Path
) -> None:
    from crmbot.scheduler import start_scheduler, stop_scheduler

    # Two minutes old: well inside a lease, so only start-up can know it is dead.
    dead = add_running_run(crm.engine, utc_now() - timedelta(minutes=2))
    scheduler = start_scheduler(settings, crm.engine, None, paused=True)
    stop_scheduler(scheduler, wait=False)
    status, error = status_of(crm.engine, dead)
    assert status == "failed" and (error or "").startswith("abandoned")
    model = ChatBot(crm.engine, settings, tmp_path / "charts").reply("model")
    assert model.table is not None
    assert [row[2] for row in model.table.rows if row[0] == str(dead)][0].startswith(
        "failed: abandoned"
    )


def test_a_run_being_trained_elsewhere_is_left_alone_at_start_up(
    crm: SmallCrm, settings: Settings
) -> None:
    from crmbot.runs import close_dead_runs_at_startup
    from crmbot.runs.lock import acquire_training_lock

    live = add_running_run(crm.engine, utc_now() - timedelta(minutes=2))
    dead = add_running_run(
        crm.engine, utc_now() - timedelta(seconds=settings.training_lock_lease_seconds + 60)
    )
    with acquire_training_lock(crm.engine, "a retrain elsewhere"):
        closed = close_dead_runs_at_startup(crm.engine, settings, holder="start-up")
    assert closed == [dead]
    assert status_of(crm.engine, live) == ("running", None)


def test_crmbot_run_marks_dead_runs_abandoned_when_it_starts(
    sqlite_crm: SmallCrm, tmp_path: Path
) -> None:
    """`crmbot run --no-scheduler` (a replica): the bot's own start-up closes the run."""
    crm = sqlite_crm
    dead = add_running_run(crm.engine, utc_now() - timedelta(minutes=2))
    crmbot = str(Path(sys.executable).parent / "crmbot")
    with SlackFake() as slack:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "DATABASE_URL": database_url(crm.engine),
            "SLACK_BOT_TOKEN": "xoxb-0000-live-looking-token",
            "SLACK_SIGNING_SECRET": "test-signing-secret",
            "SLACK_API_BASE_URL": slack.base_url,
        }
        process = subprocess.Popen(
            [crmbot, "run", "--host", "127.0.0.1", "--port", "0", "--no-scheduler"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while status_of(crm.engine, dead)[0] == "running":
                assert process.poll() is None, process.stdout.read()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "crmbot run did not close the dead run"
                time.sleep(0.1)
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=30)
    status, error = status_of(crm.engine, dead)
    assert status == "failed" and (error or "").startswith("abandoned"), output


# -- /crm retrain during an outage -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:{port}/test",
        "mysql+pymysql://root@127.0.0.1:{port}/test",
    ],
    ids=["postgres", "mariadb"],
)
def test_retrain_during_an_outage_says_the_database_is_not_reachable(
    url: str, settings: Settings
) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = make_engine(url.format(port=port), connect_args={"connect_timeout": 3})
    reply = Dispatcher(engine, settings).handle("retrain", user_id="UADMIN", today=TODAY)
    assert reply.outcome == "error"
    assert "database is not reachable" in reply.text and "failed on my side" not in reply.text
    engine.dispose()
