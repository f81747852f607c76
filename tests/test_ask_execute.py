"""`crmbot.ask.execute`: structured queries answered from rows inserted here, on SQLite and
(where reachable) PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy.engine import Engine

from crmbot.ask.execute import AskError, execute, load_vocabulary
from crmbot.ask.parse import parse_question
from crmbot.ask.query import DateRange, StructuredQuery, Threshold
from crmbot.db import write_session
from crmbot.models import ActiveRun, Customer, CustomerScore, ModelRun, Order, Referral

TODAY = date(2026, 6, 30)

# customer_id: name, region, owner, company, signed up, erased
CUSTOMERS = {
    "C1": ("Ada Lovelace", "EMEA", "maria", "Blue Bean Cafe", date(2025, 1, 10), False),
    "C2": ("Alan Turing", "EMEA", "maria", "Blue Bean Cafe", date(2026, 3, 5), False),
    "C3": ("Grace Hopper", "NA", "james", "Golden Oak Hotel", date(2025, 6, 1), False),
    "C4": ("Linus Berg", "APAC", "aiko", None, date(2026, 5, 20), False),
    "C5": ("Erased Person", "EMEA", "maria", None, date(2025, 2, 1), True),
}
# Run 1 (as of 2026-06-20) then run 2 (as of 2026-06-30, active).
SEGMENTS_RUN1 = {"C1": "Loyal", "C2": "New", "C3": "Champions", "C4": "Prospects", "C5": "Lost"}
# customer_id: segment, clv, churn_risk, recency_days, satisfaction
SCORES_RUN2 = {
    "C1": ("At risk", 5000.0, 0.70, 75.0, 40.0),
    "C2": ("Champions", 12000.0, 0.20, 5.0, 90.0),
    "C3": ("Champions", 8000.0, 0.55, 40.0, 70.0),
    "C4": ("New", 300.0, 0.40, 10.0, None),
    "C5": ("Champions", 99999.0, 0.90, 1.0, 10.0),
}
ORDERS = [
    ("O1", "C1", datetime(2026, 3, 1, 10), 100.0),
    ("O2", "C1", datetime(2026, 4, 16, 9), 300.0),
    ("O3", "C1", datetime(2026, 4, 20, 9), -50.0),  # a refund
    ("O4", "C2", datetime(2026, 6, 25, 15), 1000.0),
    ("O5", "C2", datetime(2026, 5, 10, 11), 500.0),
    ("O6", "C3", datetime(2026, 5, 21, 8), 200.0),
    ("O7", "C4", datetime(2026, 6, 20, 12), 50.0),
    ("O8", "C5", datetime(2026, 6, 1, 12), 999.0),  # erased customer: never shown
]
REFERRALS = [
    ("C1", "C2", datetime(2026, 3, 5)),
    ("C1", "C4", datetime(2026, 5, 20)),
    ("C3", "C1", datetime(2025, 1, 10)),
]


def seed(engine: Engine) -> None:
    with write_session(engine) as session:
        pks: dict[str, int] = {}
        for cid, (name, region, owner, company, signed_up, erased) in CUSTOMERS.items():
            customer = Customer(
                customer_id=cid,
                name=name,
                region=region,
                owner=owner,
                company=company,
                signed_up_at=signed_up,
                erased_at=datetime(2026, 6, 2) if erased else None,
            )
            session.add(customer)
            session.flush()
            assert customer.id is not None
            pks[cid] = customer.id
        runs = []
        for as_of in (date(2026, 6, 20), date(2026, 6, 30)):
            run = ModelRun(
                as_of=as_of,
                started_at=datetime.combine(as_of, datetime.min.time()),
                status="succeeded",
                activated_at=datetime.combine(as_of, datetime.min.time()),
            )
            session.add(run)
            session.flush()
            runs.append(run.id)
        for cid, segment in SEGMENTS_RUN1.items():
            session.add(CustomerScore(run_id=runs[0], customer_pk=pks[cid], segment=segment))
        for cid, (segment, clv, churn, recency, satisfaction) in SCORES_RUN2.items():
            session.add(
                CustomerScore(
                    run_id=runs[1],
                    customer_pk=pks[cid],
                    segment=segment,
                    previous_segment=SEGMENTS_RUN1[cid],
                    clv=clv,
                    churn_risk=churn,
                    value_at_risk=clv * churn,
                    recency_days=recency,
                    satisfaction=satisfaction,
                    cluster=0 if clv > 1000 else 1,
                    cluster_label="frequent, high spend" if clv > 1000 else "occasional",
                    next_products=[{"product_id": "P9", "name": "Descaler", "confidence": 0.8}],
                )
            )
        session.flush()
        session.add(ActiveRun(slot="scores", run_id=runs[1], activated_at=datetime(2026, 6, 30)))
        for order_id, cid, at, amount in ORDERS:
            session.add(
                Order(order_id=order_id, customer_pk=pks[cid], ordered_at=at, amount=amount)
            )
        for referrer, referred, at in REFERRALS:
            session.add(
                Referral(referrer_pk=pks[referrer], referred_pk=pks[referred], referred_at=at)
            )


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
    answer = execute(crm, StructuredQuery(metric="count"), book_owners=["JAMES"])
    assert answer.value == "1"
    assert execute(crm, StructuredQuery(metric="count"), book_owners=[]).value == "0"


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
    vocab = load_vocabulary(crm)
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
