"""Recovery from a bad model run record.

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

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from crmbot.cli.main import app as cli
from crmbot.core.config import Settings, get_settings
from crmbot.core.db import make_engine, upgrade, write_session
from crmbot.core.models import ModelRun
from crmbot.runs import train
from crmbot.training.pipeline import STAGES
from tests.support.small_crm import AS_OF, ChatBot, SmallCrm, seed

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
