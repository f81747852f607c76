"""The score writer's paths: COPY on PostgreSQL stores what a Core insert stores, and a run
that fails half-way through writing its scores leaves the previous run live."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine

from crmbot import queries, runs
from crmbot.core.config import Settings
from crmbot.core.db import read_session
from crmbot.core.models import CustomerScore
from crmbot.runs import train
from crmbot.training import pipeline
from crmbot.training import scores as score_writer
from tests.support.value_data import END, build_company, insert_company
from tests.test_training import _running_run, _score_count

SCORE_TABLE = CustomerScore.__table__  # type: ignore[attr-defined]


def _stored_rows(engine: Engine, run_id: int) -> pd.DataFrame:
    """Every column of the run's score rows as the database holds them, by customer."""
    columns = [c for c in SCORE_TABLE.c if c.name != "run_id"]
    statement = (
        select(*columns).where(SCORE_TABLE.c.run_id == run_id).order_by(SCORE_TABLE.c.customer_pk)
    )
    with engine.connect() as connection:
        rows = connection.execute(statement).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=[c.name for c in columns])


@pytest.mark.parametrize("storage_engine", ["postgres"], indirect=True)
def test_copy_stores_what_the_core_insert_stores(
    storage_engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One run's scores (every stage: numbers, texts, datetimes, JSON lists), written by
    COPY and by the Core insert other databases use: every column of every row equal."""
    insert_company(storage_engine, build_company())
    ctx = pipeline.fit(
        storage_engine,
        settings,
        END,
        previous=None,
        stages=pipeline.STAGES,
        notify=lambda _event: None,
        timings={},
        row_counts={},
    )
    scores = ctx.scores
    assert {"last_order_at", "churn_reasons", "next_products", "segment"} <= set(scores)
    monkeypatch.setattr(score_writer, "WRITE_CHUNK_ROWS", 7)  # several COPYs
    by_copy, by_insert = _running_run(storage_engine), _running_run(storage_engine)
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(storage_engine, "before_cursor_execute", record)
    try:
        assert score_writer.write_scores(storage_engine, by_copy, scores) == len(scores) == 40
    finally:
        event.remove(storage_engine, "before_cursor_execute", record)
    assert not [s for s in statements if "INSERT INTO customer_score" in s]  # COPY, not INSERT
    score_writer._write_executemany(storage_engine, by_insert, score_writer.score_chunks(scores))

    copied, inserted = (
        _stored_rows(storage_engine, by_copy),
        _stored_rows(storage_engine, by_insert),
    )
    assert len(copied) == 40
    assert copied["churn_reasons"].map(lambda v: isinstance(v, list)).any()
    assert copied["last_order_at"].notna().any()
    pd.testing.assert_frame_equal(copied, inserted, check_exact=True)


REFUSE_ONE_SCORE = {
    "sqlite": [
        "CREATE TRIGGER refuse_one_score BEFORE INSERT ON customer_score "
        "WHEN NEW.customer_pk = 30 BEGIN SELECT RAISE(ABORT, 'score refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_one_score() RETURNS trigger AS $$ BEGIN "
        "IF NEW.customer_pk = 30 THEN RAISE EXCEPTION 'score refused after % rows of the run', "
        "(SELECT count(*) FROM customer_score WHERE run_id = NEW.run_id); END IF; "
        "RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_one_score BEFORE INSERT ON customer_score "
        "FOR EACH ROW EXECUTE FUNCTION refuse_one_score()",
    ],
    "mysql": [
        "CREATE TRIGGER refuse_one_score BEFORE INSERT ON customer_score FOR EACH ROW "
        "BEGIN IF NEW.customer_pk = 30 THEN "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'score refused'; END IF; END"
    ],
}
DROP_REFUSAL = {
    "sqlite": ["DROP TRIGGER IF EXISTS refuse_one_score"],
    "postgresql": [
        "DROP TRIGGER IF EXISTS refuse_one_score ON customer_score",
        "DROP FUNCTION IF EXISTS refuse_one_score()",
    ],
    "mysql": ["DROP TRIGGER IF EXISTS refuse_one_score"],
}


def _statements(engine: Engine, statements: list[str]) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def test_a_failure_half_way_through_writing_leaves_the_previous_run_live(
    storage_engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses the 30th customer's score, after four chunks of 7 have been
    written and committed (on PostgreSQL, four COPYs, which the refusal counts): the run
    fails at "write", readers still see the whole previous run, and the failed run's rows
    are gone."""
    insert_company(storage_engine, build_company())
    stages = pipeline.STAGES[:4]
    first = train(storage_engine, settings, END, stages=stages)
    assert first.activated
    with read_session(storage_engine) as session:
        before = queries.scores_frame(session=session)
    monkeypatch.setattr(score_writer, "WRITE_CHUNK_ROWS", 7)
    dialect = storage_engine.dialect.name
    kind = "mysql" if dialect in ("mysql", "mariadb") else dialect
    _statements(storage_engine, REFUSE_ONE_SCORE[kind])
    try:
        failed = train(storage_engine, settings, END - timedelta(days=7), stages=stages)
    finally:
        _statements(storage_engine, DROP_REFUSAL[kind])
    assert failed.status == "failed" and not failed.activated
    assert failed.error is not None and failed.error.startswith("write: ")
    assert "score refused" in failed.error
    if kind == "postgresql":
        # Four COPYs committed (28 rows), and the fifth's first row was in when it failed.
        assert "after 29 rows of the run" in failed.error
    with read_session(storage_engine) as session:
        assert runs.active_run_id(session=session) == first.run_id
        after = queries.scores_frame(session=session)
    pd.testing.assert_frame_equal(after, before)
    assert _score_count(storage_engine, failed.run_id) == 0
