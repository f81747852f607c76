"""The run summary (`crmbot.core.run_summary`): questions about groups of customers answered
from its cells give exactly what the score rows give, and the cells follow every change
to what they count (a new run, an import, an erasure), on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from crmbot.ask import execute as ask_execute
from crmbot.ask import summary as ask_summary
from crmbot.ask.answer import Answer
from crmbot.ask.parse import parse_question
from crmbot.ask.query import StructuredQuery, Threshold
from crmbot.core import run_summary
from crmbot.core.db import write_session
from crmbot.core.erasure import erase_customer
from crmbot.core.models import RUN_SUMMARY, ActiveRun, CustomerScore, ModelRun
from crmbot.ingest import import_file
from crmbot.queries.scope import EVERYONE, Scope
from crmbot.queries.summary import run_cells
from tests.conftest import SampleCompany, copy_of_sample
from tests.support.ask_crm import TODAY, seed


def live_run(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(ActiveRun.run_id)).scalar_one())  # type: ignore[call-overload]


def both_ways(
    engine: Engine, query: StructuredQuery, scope: Scope = EVERYONE
) -> tuple[Answer, Answer]:
    """The answer from the cells, then from the rows (the cells dropped, then built again)."""
    run_id = live_run(engine)
    with engine.begin() as connection:
        run_summary.build(connection, run_id)
    from_cells = ask_execute.execute(engine, query, scope=scope)
    with engine.begin() as connection:
        run_summary.discard(connection, run_id)
    from_rows = ask_execute.execute(engine, query, scope=scope)
    with engine.begin() as connection:
        run_summary.build(connection, run_id)
    return from_cells, from_rows


def assert_same(from_cells: Answer, from_rows: Answer) -> None:
    cells, rows = dataclasses.asdict(from_cells), dataclasses.asdict(from_rows)
    for figures in ("number", "chart_values"):  # sums added in another order
        expected = rows.pop(figures)
        assert cells.pop(figures) == (
            expected if expected is None else pytest.approx(expected, rel=1e-9)
        )
    assert cells == rows


def short(query: StructuredQuery) -> str:
    """The fields a query sets, for a test's name."""
    default = StructuredQuery()
    return ",".join(
        f"{f.name}={getattr(query, f.name)}"
        for f in dataclasses.fields(query)
        if getattr(query, f.name) != getattr(default, f.name)
    )


@pytest.fixture
def small_crm(storage_engine: Engine) -> Engine:
    """The five customers of `tests.support.ask_crm` (one erased), with two more risks
    exactly on a tenth, so a threshold there must keep or drop them as the rows do."""
    seed(storage_engine)
    run_id = live_run(storage_engine)
    with storage_engine.begin() as connection:
        for customer_pk, risk in ((2, 0.5), (4, 0.3)):
            connection.execute(
                update(CustomerScore.__table__)  # type: ignore[attr-defined]
                .where(
                    CustomerScore.__table__.c.run_id == run_id,  # type: ignore[attr-defined]
                    CustomerScore.__table__.c.customer_pk == customer_pk,  # type: ignore[attr-defined]
                )
                .values(churn_risk=risk)
            )
    return storage_engine


ANSWERED_FROM_CELLS = [
    StructuredQuery(metric="count"),
    StructuredQuery(metric="count", segments=("Champions",)),
    StructuredQuery(metric="count", regions=("EMEA",), not_segments=("At risk",)),
    StructuredQuery(metric="count", not_regions=("EMEA",)),
    StructuredQuery(metric="count", owners=("maria",), clusters=(0,)),
    StructuredQuery(metric="count", nps_categories=("promoter",)),
    StructuredQuery(metric="count", not_owners=("aiko",)),
    *[
        StructuredQuery(metric="count", thresholds=(Threshold("churn_risk", op, value),))
        for op in (">", ">=", "<", "<=")
        for value in (0.3, 0.5, 0.7)
    ],
    StructuredQuery(metric="sum", measure="clv"),
    StructuredQuery(metric="avg", measure="csat_avg", regions=("EMEA",)),
    StructuredQuery(metric="avg", measure="satisfaction", segments=("Champions",)),
    StructuredQuery(
        metric="sum", measure="recency_days", thresholds=(Threshold("churn_risk", ">", 0.5),)
    ),
    StructuredQuery(metric="avg", measure="churn_risk", group_by="region"),
    StructuredQuery(metric="avg", measure="churn_risk", group_by="region", descending=False),
    StructuredQuery(metric="sum", measure="clv", group_by="segment", limit=1),
    StructuredQuery(metric="count", group_by="owner"),
    StructuredQuery(metric="count", group_by="cluster"),
    StructuredQuery(metric="avg", measure="csat_avg", group_by="nps_category"),
    StructuredQuery(metric="avg", measure="sentiment", group_by="segment", descending=False),
]


@pytest.mark.parametrize("query", ANSWERED_FROM_CELLS, ids=short)
def test_cells_answer_as_the_rows_do(small_crm: Engine, query: StructuredQuery) -> None:
    assert ask_summary.answerable(query)
    from_cells, from_rows = both_ways(small_crm, query)
    assert_same(from_cells, from_rows)


@pytest.mark.parametrize(
    "scope", [Scope.book(["Maria"]), Scope.book(["aiko", "james"]), Scope.book([])], ids=repr
)
def test_a_readers_book_is_counted_from_the_cells_as_from_the_rows(
    small_crm: Engine, scope: Scope
) -> None:
    for query in (
        StructuredQuery(metric="count"),
        StructuredQuery(metric="sum", measure="clv", group_by="segment"),
    ):
        assert_same(*both_ways(small_crm, query, scope))


def test_the_cells_are_read_for_a_summarised_run_and_not_for_other_questions(
    small_crm: Engine,
) -> None:
    run_id = live_run(small_crm)
    with small_crm.begin() as connection:
        run_summary.build(connection, run_id)
    with Session(small_crm) as session:
        cells = run_cells(session, run_id)
    assert cells is not None
    # Four live customers (the erased one is not counted), over three runs' worth of cells.
    assert int(cells["customers"].sum()) == 4
    not_from_cells = [
        StructuredQuery(metric="count", thresholds=(Threshold("churn_risk", ">", 0.55),)),
        StructuredQuery(metric="count", thresholds=(Threshold("clv", ">", 1000),)),
        StructuredQuery(metric="count", companies=("Blue Bean Cafe",)),
        StructuredQuery(metric="count", group_by="company"),
        StructuredQuery(entity="orders", metric="count"),
    ]
    assert not any(ask_summary.answerable(query) for query in not_from_cells)


def test_a_list_counts_what_it_found_from_the_cells(small_crm: Engine) -> None:
    query = StructuredQuery(sort="churn_risk", limit=2, regions=("EMEA", "NA", "APAC"))
    from_cells, from_rows = both_ways(small_crm, query)
    assert from_cells.found == from_rows.found == 4
    assert from_cells.customer_ids == from_rows.customer_ids


def test_an_erased_customer_leaves_the_cells_as_a_rebuild_would(small_crm: Engine) -> None:
    run_id = live_run(small_crm)
    with small_crm.begin() as connection:
        run_summary.build(connection, run_id)
    erase_customer(small_crm, "C3", requested_by="U1")
    with small_crm.connect() as connection:
        after_erasure = _cells(connection, run_id)
    with small_crm.begin() as connection:
        run_summary.build(connection, run_id)
    with small_crm.connect() as connection:
        rebuilt = _cells(connection, run_id)
    assert after_erasure == rebuilt
    count = StructuredQuery(metric="count", segments=("Champions",))
    assert_same(*both_ways(small_crm, count))
    assert ask_execute.execute(small_crm, count, scope=EVERYONE).found == 1


def test_an_import_that_moves_a_customer_moves_them_between_cells(
    small_crm: Engine, tmp_path: Path
) -> None:
    by_region = StructuredQuery(metric="count", group_by="region")
    before = ask_execute.execute(small_crm, by_region, scope=EVERYONE)
    csv = tmp_path / "customers.csv"
    csv.write_text("customer_id,name,region\nC2,Alan Turing,LATAM\n")
    report = import_file(small_crm, "customers", csv, today=TODAY)
    assert report.ok and report.updated == 1
    after = ask_execute.execute(small_crm, by_region, scope=EVERYONE)
    assert ["LATAM", "1"] in after.rows and ["LATAM", "1"] not in before.rows
    assert_same(after, both_ways(small_crm, by_region)[1])


def test_a_new_run_goes_live_with_its_own_cells_only(
    sample_company: SampleCompany, tmp_path: Path
) -> None:
    from crmbot.runs import train

    engine = copy_of_sample(sample_company, tmp_path)
    first = live_run(engine)
    run = train(engine, sample_company.settings, sample_company.as_of, force=True)
    assert run.status == "succeeded"
    with engine.connect() as connection:
        summarised = run_summary.summarised_runs(connection)
    assert summarised == [live_run(engine)] and first not in summarised
    engine.dispose()


def test_a_rejected_run_has_no_cells_until_it_is_forced_live(
    sample_company: SampleCompany, tmp_path: Path
) -> None:
    from crmbot import runs

    engine = copy_of_sample(sample_company, tmp_path)
    champion = live_run(engine)
    with write_session(engine) as session:
        record = session.get(ModelRun, champion)
        assert record is not None
        record.metrics = {**record.metrics, "churn": {"roc_auc": 1.0}}  # unbeatable
    rejected = runs.train(engine, sample_company.settings, sample_company.as_of)
    assert rejected.status == "rejected"
    with engine.connect() as connection:
        assert run_summary.summarised_runs(connection) == [champion]
    runs.activate(engine, rejected.run_id)
    with engine.connect() as connection:
        assert run_summary.summarised_runs(connection) == [rejected.run_id]
    count = StructuredQuery(metric="count", group_by="segment")
    assert_same(*both_ways(engine, count))
    engine.dispose()


SAMPLE_QUESTIONS = [
    "compare churn risk by region",
    "how many customers are in the At risk segment?",
    "total spend of Champions",
    "average clv by segment",
    "how many customers in EMEA have churn risk over 50%",
    "number of customers per owner",
    "average satisfaction of promoters",
    "champions in EMEA with churn risk over 50%",
    "5 riskiest customers in LATAM",
]


@pytest.mark.parametrize("question", SAMPLE_QUESTIONS)
def test_the_sample_company_answers_the_same_from_the_cells(
    sample_company: SampleCompany, tmp_path: Path, question: str
) -> None:
    engine = copy_of_sample(sample_company, tmp_path)
    vocabulary = ask_execute.load_vocabulary(engine, EVERYONE)
    query = parse_question(question, vocabulary, today=sample_company.as_of).query
    assert query is not None and ask_summary.answerable(query), question
    assert_same(*both_ways(engine, query))
    engine.dispose()


def _cells(connection: Any, run_id: int) -> list[tuple[Any, ...]]:
    """The run's cells without their revision, in a stable order, sums rounded."""
    rows = connection.execute(select(RUN_SUMMARY).where(RUN_SUMMARY.c.run_id == run_id)).mappings()
    cells = []
    for row in rows:
        cell = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}
        cell.pop("revision")
        cells.append(tuple(sorted(cell.items(), key=lambda item: item[0])))
    return sorted(cells, key=repr)


def test_crmbot_db_summarise_sees_a_change_made_by_hand(
    sample_company: SampleCompany, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from crmbot.cli.main import app
    from crmbot.core.config import get_settings
    from crmbot.core.models import Customer

    engine = copy_of_sample(sample_company, tmp_path)
    monkeypatch.setenv("DATABASE_URL", str(engine.url))
    get_settings.cache_clear()
    by_region = StructuredQuery(metric="count", group_by="region")
    with engine.begin() as connection:  # by hand: the summary does not see it
        connection.execute(update(Customer.__table__).values(region="Moon"))  # type: ignore[attr-defined]
    assert "Moon" not in ask_execute.execute(engine, by_region, scope=EVERYONE).chart_labels
    result = CliRunner().invoke(app, ["db", "summarise"])
    assert result.exit_code == 0 and "summary built again" in result.output, result.output
    assert ask_execute.execute(engine, by_region, scope=EVERYONE).chart_labels == ["Moon"]
    get_settings.cache_clear()
    engine.dispose()
