"""`crmbot.ask.execute`: structured queries answered from rows inserted here, on SQLite and
(where reachable) PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.engine import Engine

from crmbot.ask import execute as ask_execute
from crmbot.ask.answer import Answer, AskError
from crmbot.ask.parse import parse_question
from crmbot.ask.query import DateRange, StructuredQuery, Threshold
from crmbot.queries.scope import EVERYONE, Scope
from tests.support.ask_crm import TODAY, seed


def execute(engine: Engine, query: StructuredQuery, *, scope: Scope = EVERYONE) -> Answer:
    """The executor as an admin asks (everyone's customers) unless a scope is given."""
    return ask_execute.execute(engine, query, scope=scope)


@pytest.fixture
def crm(engine: Engine) -> Engine:
    seed(engine)
    return engine


def ids(answer: object) -> list[str]:
    return list(answer.customer_ids)  # type: ignore[attr-defined]


def test_customers_filtered_and_sorted_by_the_threshold(crm: Engine) -> None:
    query = StructuredQuery(thresholds=(Threshold("churn_risk", ">", 0.5),))
    answer = execute(crm, query)
    # C5 is riskier but erased: never shown, never counted.
    assert ids(answer) == ["C1", "C3"]
    assert answer.found == 2
    assert answer.columns[:5] == ["Customer", "Name", "Segment", "Region", "Owner"]
    assert answer.rows[0][5] == "70%"


def test_segment_region_owner_company_filters(crm: Engine) -> None:
    assert ids(execute(crm, StructuredQuery(segments=("Champions",), regions=("EMEA",)))) == ["C2"]
    assert execute(crm, StructuredQuery(owners=("maria",))).found == 2
    assert execute(crm, StructuredQuery(companies=("Blue Bean Cafe",))).found == 2
    assert execute(crm, StructuredQuery(clusters=(1,))).found == 1
    top = execute(crm, StructuredQuery(sort="clv", limit=2))
    assert ids(top) == ["C2", "C3"] and top.found == 4


def test_counts_sums_and_averages(crm: Engine) -> None:
    count = execute(crm, StructuredQuery(metric="count", segments=("Champions",)))
    assert count.value == "2"
    average = execute(crm, StructuredQuery(metric="avg", measure="clv", regions=("EMEA",)))
    assert average.value == "8,500"
    total = execute(crm, StructuredQuery(metric="sum", measure="clv"))
    assert total.value == "25,300"


def test_average_order_value_leaves_refunds_and_erased_customers_out(crm: Engine) -> None:
    query = StructuredQuery(entity="orders", metric="avg", measure="amount", segments=("At risk",))
    answer = execute(crm, query)
    assert answer.value == "200" and answer.found == 2
    everyone = execute(crm, StructuredQuery(entity="orders", metric="count"))
    assert everyone.found == 6


def test_orders_in_a_date_range_and_by_month(crm: Engine) -> None:
    may = DateRange(date(2026, 5, 1), date(2026, 6, 1), "last month")
    answer = execute(crm, StructuredQuery(entity="orders", date_range=may))
    assert [row[0] for row in answer.rows] == ["O6", "O5"]
    by_month = execute(
        crm, StructuredQuery(entity="orders", metric="sum", measure="amount", group_by="month")
    )
    assert [row[0] for row in by_month.rows] == ["2026-03", "2026-04", "2026-05", "2026-06"]
    assert by_month.chart_values == [100.0, 300.0, 700.0, 1050.0]


def test_customers_who_ordered_or_signed_up_in_a_range(crm: Engine) -> None:
    may = DateRange(date(2026, 5, 1), date(2026, 6, 1), "last month")
    ordered = execute(crm, StructuredQuery(date_range=may, date_field="ordered"))
    assert sorted(ids(ordered)) == ["C2", "C3"]
    since_march = DateRange(date(2026, 3, 1), None, "since march")
    signed = execute(
        crm, StructuredQuery(metric="count", date_range=since_march, date_field="signed_up")
    )
    assert signed.value == "2"


def test_compare_churn_risk_by_region(crm: Engine) -> None:
    query = StructuredQuery(metric="avg", measure="churn_risk", group_by="region", chart=True)
    answer = execute(crm, query)
    assert [row[0] for row in answer.rows] == ["NA", "EMEA", "APAC"]
    assert answer.chart_values == pytest.approx([0.55, 0.45, 0.40])
    assert answer.rows[1][2] == "45%"


def test_top_referrers_in_a_quarter(crm: Engine) -> None:
    quarter = DateRange(date(2026, 4, 1), date(2026, 7, 1), "this quarter")
    query = StructuredQuery(
        entity="referrals", metric="count", group_by="referrer", date_range=quarter
    )
    answer = execute(crm, query)
    assert answer.rows == [["C1", "Ada Lovelace", "EMEA", "1"]]
    all_time = execute(crm, StructuredQuery(entity="referrals", metric="count"))
    assert all_time.value == "3"


def test_segment_moves_since_a_date_compare_with_the_run_live_then(crm: Engine) -> None:
    since = DateRange(date(2026, 6, 23), None, "since last week")
    query = StructuredQuery(
        entity="segment_moves", metric="count", segments=("At risk",), date_range=since
    )
    answer = execute(crm, query)
    assert answer.value == "1"
    assert "as of 2026-06-20" in answer.note
    listed = execute(crm, StructuredQuery(entity="segment_moves"))
    # C1 Loyal -> At risk, C2 New -> Champions, C4 Prospects -> New; C3 stayed; C5 erased.
    assert sorted(ids(listed)) == ["C1", "C2", "C4"]
    assert listed.rows[[r[0] for r in listed.rows].index("C1")][2:4] == ["Loyal", "At risk"]


def test_segment_moves_before_the_first_run_say_so(crm: Engine) -> None:
    query = StructuredQuery(
        entity="segment_moves", date_range=DateRange(date(2026, 1, 1), None, "since january")
    )
    with pytest.raises(AskError, match="no model run from on or before 2026-01-01"):
        execute(crm, query)


def test_own_book_only_limits_rows(crm: Engine) -> None:
    answer = execute(crm, StructuredQuery(metric="count"), scope=Scope.book(["JAMES"]))
    assert answer.value == "1"
    assert execute(crm, StructuredQuery(metric="count"), scope=Scope.book([])).value == "0"


def test_no_model_yet(engine: Engine) -> None:
    with pytest.raises(AskError, match="No model has been trained yet"):
        execute(engine, StructuredQuery())
    # Orders need no model unless a score is asked about.
    assert execute(engine, StructuredQuery(entity="orders", metric="count")).value == "0"


def test_hostile_values_are_bound_parameters(crm: Engine) -> None:
    query = StructuredQuery(
        segments=("x' OR '1'='1",), regions=("EMEA'); DROP TABLE customer; --",)
    )
    assert execute(crm, query).found == 0
    assert execute(crm, StructuredQuery(metric="count")).value == "4"


def test_questions_through_the_loaded_vocabulary(crm: Engine) -> None:
    vocab = ask_execute.load_vocabulary(crm, EVERYONE)
    assert vocab.owners == ("aiko", "james", "maria")
    assert "Erased Person" not in vocab.customers.values()
    parsed = parse_question("customers of @maria with no order in 60 days", vocab, today=TODAY)
    assert parsed.ok and parsed.query is not None
    assert ids(execute(crm, parsed.query)) == ["C1"]
    parsed = parse_question("champions in emea", vocab, today=TODAY)
    assert parsed.query is not None and ids(execute(crm, parsed.query)) == ["C2"]


def test_the_same_answers_on_every_database(storage_engine: Engine) -> None:
    seed(storage_engine)
    by_month = execute(
        storage_engine,
        StructuredQuery(entity="orders", metric="count", group_by="month"),
    )
    assert [row[0] for row in by_month.rows] == ["2026-03", "2026-04", "2026-05", "2026-06"]
    moves = execute(
        storage_engine,
        StructuredQuery(
            entity="segment_moves",
            metric="count",
            date_range=DateRange(date(2026, 6, 23), None, "since last week"),
        ),
    )
    assert moves.value == "3"
    grouped = execute(
        storage_engine, StructuredQuery(metric="avg", measure="churn_risk", group_by="region")
    )
    assert [row[0] for row in grouped.rows] == ["NA", "EMEA", "APAC"]
    referrers = execute(
        storage_engine, StructuredQuery(entity="referrals", metric="count", group_by="referrer")
    )
    assert referrers.rows[0][0] == "C1"
