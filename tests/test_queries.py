"""The read side the chat commands use: lookups, rankings, summaries through the active run."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from crmbot import queries, runs
from crmbot.core.db import read_session, write_session
from crmbot.core.models import ActiveRun
from crmbot.queries.scope import EVERYONE, Scope
from tests.support.small_crm import SmallCrm, seed


@pytest.fixture
def crm(engine: Engine) -> SmallCrm:
    return seed(engine)


def test_find_by_id_email_and_exact_name(crm: SmallCrm) -> None:
    with read_session(crm.engine) as session:
        by_id = queries.find_customer(session=session, query="C004")
        by_email = queries.find_customer(session=session, query="GRACE@cobol.example")
        by_name = queries.find_customer(session=session, query="alan turing")
    assert (by_id.customer.customer_id, by_id.how) == ("C004", "id")  # type: ignore[union-attr]
    assert (by_email.customer.customer_id, by_email.how) == ("C002", "email")  # type: ignore[union-attr]
    assert (by_name.customer.customer_id, by_name.how) == ("C003", "name")  # type: ignore[union-attr]


def test_fuzzy_name_finds_a_typo(crm: SmallCrm) -> None:
    with read_session(crm.engine) as session:
        lookup = queries.find_customer(session=session, query="Margret Hamiltn")
    assert lookup.found and lookup.customer.customer_id == "C010"  # type: ignore[union-attr]
    assert lookup.how == "fuzzy"


def test_same_name_twice_lists_the_candidates(crm: SmallCrm) -> None:
    with read_session(crm.engine) as session:
        lookup = queries.find_customer(session=session, query="john smith")
    assert not lookup.found
    assert sorted(c.customer_id for c in lookup.candidates) == ["C007", "C008"]


def test_company_names_match_too(crm: SmallCrm) -> None:
    with read_session(crm.engine) as session:
        lookup = queries.find_customer(session=session, query="Orbit Analytics")
    assert lookup.found and lookup.customer.customer_id == "C004"  # type: ignore[union-attr]


def test_unknown_input_suggests_the_nearest(crm: SmallCrm) -> None:
    with read_session(crm.engine) as session:
        nothing = queries.find_customer(session=session, query="zzqx")
        near = queries.find_customer(session=session, query="Tim Bernard")
    assert not nothing.found and not nothing.candidates
    assert not near.found
    assert "C012" in [c.customer_id for c in near.candidates + near.suggestions]


def test_erased_customers_are_never_found(crm: SmallCrm) -> None:
    with read_session(crm.engine) as session:
        assert not queries.find_customer(session=session, query="C011").found
        assert not queries.find_customer(session=session, query="Erased Person").found
        run = runs.active_run(session=session)
        assert run is not None
        ranked = queries.at_risk(session=session, run=run, scope=EVERYONE, limit=50)
    assert "C011" not in [r.customer.customer_id for r in ranked]


def test_owner_scope_limits_lookups(crm: SmallCrm) -> None:
    with read_session(crm.engine) as session:
        mine = queries.find_customer(session=session, query="C003", owners=["MARIA@crm.example"])
        not_mine = queries.find_customer(
            session=session, query="C004", owners=["maria@crm.example"]
        )
    assert mine.found
    assert not not_mine.found


def test_hostile_text_is_just_text(crm: SmallCrm) -> None:
    with read_session(crm.engine) as session:
        hostile = ["' OR 1=1 --", "C001'; DROP TABLE customer; --", "%", "_", "\x00", "é" * 300]
        for text in hostile:
            lookup = queries.find_customer(session=session, query=text)
            # Never an exact hit (which unbound SQL could produce), at most a fuzzy guess.
            assert lookup.how in ("", "fuzzy"), text
        assert queries.find_customer(
            session=session, query="C001"
        ).found  # the table is still there


def test_at_risk_ranks_by_value_at_risk_with_filters(crm: SmallCrm) -> None:
    with read_session(crm.engine) as session:
        run = runs.active_run(session=session)
        assert run is not None and run.id == crm.run_id
        everyone = queries.at_risk(session=session, run=run, scope=EVERYONE, limit=3)
        emea = queries.at_risk(session=session, run=run, scope=EVERYONE, limit=10, region="emea")
        at_risk_segment = queries.at_risk(
            session=session, run=run, scope=EVERYONE, limit=10, segment="At risk"
        )
        uam1 = queries.at_risk(session=session, run=run, scope=Scope.book(["uam1"]), limit=10)
    values = [r.score.value_at_risk for r in everyone]
    assert values == sorted(values, reverse=True)
    assert [r.customer.customer_id for r in everyone] == ["C003", "C002", "C009"]
    assert {r.customer.region for r in emea} == {"EMEA"}
    assert {r.score.segment for r in at_risk_segment} == {"At risk"}
    assert {r.customer.owner for r in uam1} == {"UAM1"}


def test_segment_summary_counts_and_migration(crm: SmallCrm) -> None:
    with read_session(crm.engine) as session:
        run = runs.active_run(session=session)
        assert run is not None
        summary = queries.segment_summary(session=session, run=run, scope=EVERYONE)
        flows = queries.segment_flows(session=session, run=run, scope=EVERYONE, segment="Loyal")
    sizes = {row.segment: row.customers for row in summary.rows}
    assert sizes["Champions"] == 2 and sizes["At risk"] == 2
    assert summary.total_customers == 11  # the erased customer is not counted
    assert summary.has_previous
    loyal = next(row for row in summary.rows if row.segment == "Loyal")
    assert loyal.previous_customers == 4 and loyal.customers == 1
    moves = {(m.from_segment, m.to_segment): m.customers for m in summary.migrations}
    assert moves[("Loyal", "At risk")] == 1
    assert ("Loyal", "Loyal") not in moves
    assert flows == (0, 3)  # C001, C002 and C012 left Loyal; C004 stayed


def test_influencers_and_similar(crm: SmallCrm) -> None:
    with read_session(crm.engine) as session:
        run = runs.active_run(session=session)
        assert run is not None
        top = queries.influencers(session=session, run=run, scope=EVERYONE, limit=2)
        ada = queries.find_customer(session=session, query="C001").customer
        assert ada is not None
        own, similar = queries.similar_customers(
            session=session, run=run, scope=EVERYONE, customer=ada, limit=3
        )
    assert [r.customer.customer_id for r in top] == ["C010", "C006"]
    assert own is not None
    assert similar and all(r.score.cluster == own.cluster for r in similar)
    assert ada.customer_id not in [r.customer.customer_id for r in similar]


def test_readers_follow_the_active_run(crm: SmallCrm) -> None:
    with write_session(crm.engine) as session:
        active = session.get(ActiveRun, "scores")
        assert active is not None
        active.run_id = crm.previous_run_id
        active.activated_at = datetime(2026, 7, 2)
    with read_session(crm.engine) as session:
        run = runs.active_run(session=session)
        assert run is not None and run.id == crm.previous_run_id
        card = queries.customer_card(
            session=session,
            customer=queries.find_customer(session=session, query="C002").customer,
            run=run,  # type: ignore[arg-type]
        )
    assert card.score is not None and card.score.segment == "Loyal"


def test_owner_book(crm: SmallCrm) -> None:
    with read_session(crm.engine) as session:
        book = queries.owner_book(session=session, owners=["UAM1"], limit=2)
        nobody = queries.owner_book(session=session, owners=["UNOBODY"], limit=2)
    assert book.customers == 4  # C001, C002, C007, C010 (C011 is erased)
    assert [r.customer.customer_id for r in book.at_risk] == ["C002", "C010"]
    assert [r.customer.customer_id for r in book.top_value] == ["C010", "C001"]
    assert nobody.customers == 0 and nobody.at_risk == []


def test_lookup_by_id_uses_the_index(crm: SmallCrm) -> None:
    plans: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and "customer_id = ?" in statement:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            plans.append(" ".join(str(row[-1]) for row in plan))

    event.listen(crm.engine, "before_cursor_execute", capture)
    try:
        with read_session(crm.engine) as session:
            queries.find_customer(session=session, query="C004")
    finally:
        event.remove(crm.engine, "before_cursor_execute", capture)
    assert plans and all("USING INDEX" in plan and "SCAN" not in plan for plan in plans)
