"""`/crm ask` over tickets, survey answers, products, a group's offers and score changes,
and the filters every kind of row shares — questions read by the parser, answered from
the rows of `tests.support.ask_crm` on SQLite, PostgreSQL and MariaDB, asserting the rows."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from crmbot import runs
from crmbot.ask import execute as ask_execute
from crmbot.ask.answer import Answer, AskError
from crmbot.ask.parse import parse_question
from crmbot.core.db import write_session
from crmbot.core.models import CustomerScore, RunOffer
from crmbot.queries.scope import EVERYONE, Scope
from tests.support.ask_crm import TODAY, seed


@pytest.fixture
def crm(storage_engine: Engine) -> Engine:
    seed(storage_engine)
    return storage_engine


def ask(engine: Engine, question: str, *, scope: Scope = EVERYONE) -> Answer:
    """The question read with the database's names and answered, as `/crm ask` does."""
    vocab = ask_execute.load_vocabulary(engine, scope)
    parsed = parse_question(question, vocab, today=TODAY, askers=["maria"])
    assert parsed.ok, (parsed.unplaced, parsed.problems)
    assert parsed.query is not None
    return ask_execute.execute(engine, parsed.query, scope=scope)


def first_column(answer: Answer) -> list[str]:
    return [row[0] for row in answer.rows]


def test_tickets_open_closed_time_to_close_and_groups(crm: Engine) -> None:
    # T6 is the erased customer's: never counted.
    assert ask(crm, "how many open tickets").value == "2"
    assert ask(crm, "how many tickets are closed").value == "3"
    listed = ask(crm, "unresolved tickets")
    assert first_column(listed) == ["T3", "T2"]
    assert [row[2] for row in listed.rows] == ["open", "open"]
    average = ask(crm, "average time to close tickets")
    assert average.value == "2.3 days" and average.found == 3
    by_channel = ask(crm, "how long do tickets take to close by channel")
    assert first_column(by_channel) == ["phone", "email", "chat"]
    assert by_channel.chart_values == pytest.approx([4.0, 2.0, 1.0])
    by_status = ask(crm, "tickets by status")
    assert sorted(map(tuple, by_status.rows)) == [("closed", "3"), ("open", "2")]
    assert first_column(ask(crm, "tickets closed in june")) == ["T5", "T1"]
    assert first_column(ask(crm, "tickets opened in may")) == ["T4"]
    assert ask(crm, "open tickets of Ada Lovelace").found == 2
    assert first_column(ask(crm, "email tickets")) == ["T3", "T1"]
    assert ask(crm, "how many tickets did we close in june").value == "2"


def test_customers_by_their_tickets(crm: Engine) -> None:
    assert ask(crm, "customers with more than 2 tickets").customer_ids == ["C1"]
    assert ask(crm, "customers with open tickets").customer_ids == ["C1"]
    assert ask(crm, "customers without tickets").customer_ids == ["C4"]
    most = ask(crm, "which customers have the most tickets")
    # C2 and C3 have one each: then by customer id.
    assert most.customer_ids == ["C1", "C2", "C3", "C4"]
    assert most.rows[0][5] == "3"


def test_nps_csat_and_categories(crm: Engine) -> None:
    # Five live answers: two promoters, one passive, two detractors.
    assert ask(crm, "what is our NPS").value == "+0"
    assert ask(crm, "NPS in june").value == "+33"
    by_region = ask(crm, "nps by region")
    assert first_column(by_region) == ["APAC", "NA", "EMEA"]
    assert [row[2] for row in by_region.rows] == ["+100", "+0", "-33"]
    assert ask(crm, "average csat of survey answers").value == "3.50"
    assert ask(crm, "how many detractors").value == "1"
    assert sorted(ask(crm, "promoters").customer_ids) == ["C2", "C4"]
    assert ask(crm, "how many detractors answered in june").value == "1"
    assert ask(crm, "customers with negative sentiment").customer_ids == ["C1"]
    grouped = ask(crm, "customers by nps category")
    assert sorted(map(tuple, grouped.rows)) == [
        ("detractor", "1"),
        ("passive", "1"),
        ("promoter", "2"),
    ]


def test_bands_are_cut_from_the_run(crm: Engine) -> None:
    # Four live customers: the top quarter by CLV is C2 (the erased C5 is not counted).
    assert ask(crm, "customers with high CLV").customer_ids == ["C2"]
    assert ask(crm, "low value customers").customer_ids == ["C4"]
    assert ask(crm, "unhappy customers with high clv").found == 0


def test_products_ranked_bought_and_never_bought(crm: Engine) -> None:
    by_revenue = ask(crm, "top products by revenue")
    assert by_revenue.rows == [
        ["Espresso Machine", "3", "1,500", "1"],
        ["Milk Frother", "7", "280", "2"],
        ["Descaler", "10", "100", "2"],
    ]
    assert first_column(ask(crm, "best selling products by units")) == [
        "Descaler",
        "Milk Frother",
        "Espresso Machine",
    ]
    assert ask(crm, "how many units of descaler were sold").value == "10"
    assert ask(crm, "revenue of the espresso machine in june").rows[0][2] == "1,000"
    assert sorted(ask(crm, "who bought the descaler").customer_ids) == ["C1", "C4"]
    assert ask(crm, "customers who bought descaler but not milk frother").customer_ids == ["C4"]
    assert ask(crm, "who bought descaler in june").customer_ids == ["C4"]
    never = ask(crm, "customers who never bought an espresso machine")
    assert sorted(never.customer_ids) == ["C1", "C3", "C4"]
    assert first_column(ask(crm, "revenue by product category")) == [
        "Machines",
        "Accessories",
        "Maintenance",
    ]


def test_next_best_products_of_a_group(crm: Engine) -> None:
    answer = ask(crm, "next best product for champions")
    assert answer.rows == [["1", "Descaler", "2", "2"]]
    assert answer.note == "2 customers"
    # Offers as runs store them now: numbers of the run's `RunOffer` rows.
    with write_session(crm) as session:
        run_id = runs.active_run_id(session=session)
        assert run_id is not None
        session.execute(
            update(CustomerScore)
            .where(col(CustomerScore.run_id) == run_id, col(CustomerScore.segment) == "Champions")
            .values(next_products=[1, 0])
        )
    with write_session(crm) as session:
        for number, name in ((0, "Milk Frother"), (1, "Espresso Machine")):
            session.add(
                RunOffer(
                    run_id=run_id,
                    offer=number,
                    product_id=f"P{number}",
                    name=name,
                    confidence=0.5,
                    lift=2.0,
                    support=0.1,
                    reason="-",
                )
            )
    answer = ask(crm, "what should we offer champions")
    assert answer.rows == [
        ["1", "Espresso Machine", "2", "2"],
        ["2", "Milk Frother", "0", "2"],
    ]


def test_score_changes_between_runs(crm: Engine) -> None:
    up = ask(crm, "customers whose churn risk went up")
    assert up.customer_ids == ["C1", "C4"]
    assert up.rows[0][5:] == ["50%", "70%"]
    assert "as of 2026-06-20" in up.note
    assert ask(crm, "churn risk up since last week").customer_ids == ["C1", "C4"]
    assert ask(crm, "how many customers have falling churn risk").value == "1"
    assert ask(crm, "who got riskier").customer_ids == ["C1", "C4"]
    with pytest.raises(AskError, match="no model run from on or before 2026-01-01"):
        ask(crm, "churn risk up since january")


def test_exclusions(crm: Engine) -> None:
    assert sorted(ask(crm, "customers not in EMEA").customer_ids) == ["C3", "C4"]
    assert sorted(ask(crm, "customers excluding champions").customer_ids) == ["C1", "C4"]
    assert sorted(ask(crm, "customers other than maria's").customer_ids) == ["C3", "C4"]
    assert ask(crm, "champions outside NA").customer_ids == ["C2"]


def test_two_periods_compared(crm: Engine) -> None:
    orders = ask(crm, "orders in june vs may")
    assert orders.rows == [
        ["june (2026-06-01 – 2026-06-30)", "2"],
        ["may (2026-05-01 – 2026-05-31)", "2"],
    ]
    assert orders.value == "+0 (+0%)"
    revenue = ask(crm, "revenue june 2026 versus may 2026")
    assert [row[1] for row in revenue.rows] == ["1,050", "700"]
    assert revenue.value == "+350 (+50%)"
    assert ask(crm, "tickets in june vs may").value == "+3 (+300%)"
    before = ask(crm, "revenue in june compared with the month before")
    assert [row[1] for row in before.rows] == ["1,050", "700"]


def test_own_book_covers_the_new_rows(crm: Engine) -> None:
    james = Scope.book(["james"])
    assert ask(crm, "how many tickets", scope=james).value == "1"
    assert ask(crm, "how many survey answers", scope=james).value == "1"
    assert first_column(ask(crm, "top products", scope=james)) == ["Milk Frother"]
    assert ask(crm, "customers whose churn risk went up", scope=james).found == 0
