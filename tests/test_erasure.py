"""Erasure: a customer's personal data leaves every table, score and log; totals stay."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from crmbot.core.audit import record
from crmbot.core.erasure import CustomerNotFound, erase_customer, pseudonym
from crmbot.core.models import (
    AuditLog,
    Customer,
    CustomerScore,
    DigestLog,
    Feedback,
    ModelRun,
    Order,
    Ticket,
)
from crmbot.ingest import import_file

AT = datetime(2026, 7, 1, 9, 0)
FILES = {
    "customers": "customer_id,name,email,phone,company,region,owner,signed_up_at\n"
    "CUST-ANN,Annabel Lee,annabel@example.com,+1 555 010 0199,Leeworks,EMEA,UAM1,2025-01-03\n"
    "CUST-BOB,Bob Stone,bob@example.com,,Stone Inc,AMER,UAM2,2025-02-01\n",
    "orders": "order_id,customer_id,ordered_at,amount\n"
    "O1,CUST-ANN,2026-03-01,100\nO2,CUST-ANN,2026-04-01,50\nO3,CUST-BOB,2026-04-02,70\n",
    "tickets": "ticket_id,customer_id,opened_at,subject,body,csat\n"
    "T1,CUST-ANN,2026-03-02,Invoice for Annabel Lee,Call me on +1 555 010 0199,2\n"
    "T2,CUST-BOB,2026-03-03,Login,Cannot log in,4\n",
    "feedback": "feedback_id,customer_id,submitted_at,nps,comment\n"
    "F1,CUST-ANN,2026-03-05,3,Annabel here: too slow\nF2,CUST-BOB,2026-03-06,9,Great\n",
    "referrals": "referrer_id,referred_id\nCUST-ANN,CUST-BOB\n",
}
PERSONAL = [
    "CUST-ANN",
    "Annabel Lee",
    "annabel@example.com",
    "555 010 0199",
    "Leeworks",
    "too slow",
    "Invoice for",
]


def load(engine: Engine, folder: Path) -> None:
    for kind, text in FILES.items():
        path = folder / f"{kind}.csv"
        path.write_text(text)
        assert import_file(engine, kind, path).ok, kind


def add_scores_and_logs(engine: Engine) -> None:
    with Session(engine) as session:
        pks = dict(session.execute(select(Customer.customer_id, Customer.id)).all())
        run = ModelRun(
            as_of=date(2026, 6, 30),
            started_at=AT,
            status="succeeded",
            metrics={"graph": {"hubs": ["CUST-ANN", "CUST-BOB"]}},
        )
        session.add(run)
        session.flush()
        assert run.id is not None
        for pk in pks.values():
            session.add(
                CustomerScore(run_id=run.id, customer_pk=pk, segment="Champions", clv=123.0)
            )
        session.add(
            DigestLog(
                kind="at-risk",
                channel="C0",
                period="2026-W27",
                created_at=AT,
                customer_ids=["CUST-ANN", "CUST-BOB"],
                summary={"entries": [{"customer_id": "CUST-ANN", "rank": 1}]},
            )
        )
        session.commit()
    record(
        engine,
        transport="slack",
        user_id="U1",
        channel_id="C0",
        command="customer",
        arguments="Annabel Lee",
        outcome="ok",
        customer_ids=["CUST-ANN"],
        at=AT,
    )
    record(
        engine,
        transport="slack",
        user_id="U1",
        channel_id="C0",
        command="why",
        arguments="CUST-ANN",
        outcome="ok",
        customer_ids=["CUST-ANN", "CUST-BOB"],
        at=AT,
    )
    record(
        engine,
        transport="slack",
        user_id="U2",
        channel_id="C0",
        command="customer",
        arguments="CUST-BOB",
        outcome="ok",
        customer_ids=["CUST-BOB"],
        at=AT,
    )


def every_value(engine: Engine) -> str:
    """Every value of every table, as one text to search."""
    parts = []
    with engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for row in connection.execute(select(table)):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


def test_erasure_removes_personal_data_everywhere_and_keeps_totals(
    storage_engine: Engine, tmp_path: Path
) -> None:
    load(storage_engine, tmp_path)
    add_scores_and_logs(storage_engine)
    everything = every_value(storage_engine)
    assert all(text in everything for text in PERSONAL)

    result = erase_customer(storage_engine, "CUST-ANN", requested_by="UADMIN", at=AT)

    alias = pseudonym("CUST-ANN")
    assert result.pseudonym == alias and alias.startswith("erased-")
    assert (result.tickets, result.feedback, result.scores) == (1, 1, 1)
    assert (result.audit_rows, result.digest_rows, result.model_runs) == (2, 1, 1)
    everything = every_value(storage_engine)
    leaks = [text for text in PERSONAL if text in everything]
    assert leaks == []
    # Bob is untouched.
    assert "Bob Stone" in everything and "Cannot log in" in everything and "Great" in everything

    with storage_engine.connect() as connection:
        ann = connection.execute(select(Customer).where(Customer.customer_id == alias)).one()
        assert (ann.name, ann.email, ann.phone, ann.company) == (None, None, None, None)
        assert (ann.region, ann.signed_up_at, ann.erased_at) == ("EMEA", date(2025, 1, 3), AT)
        orders = connection.execute(select(func.count(), func.sum(Order.amount))).one()
        assert tuple(orders) == (3, pytest.approx(220))
        ticket = connection.execute(select(Ticket).where(Ticket.ticket_id == "T1")).one()
        assert (ticket.subject, ticket.body, ticket.csat) == (None, None, 2)
        feedback = connection.execute(select(Feedback).where(Feedback.feedback_id == "F1")).one()
        assert (feedback.comment, feedback.nps) == (None, 3)
        scores = connection.execute(select(func.count()).select_from(CustomerScore)).scalar()
        assert scores == 1
        audit = connection.execute(select(AuditLog).order_by(AuditLog.id)).all()
    assert [row.customer_ids for row in audit] == [
        [alias],
        [alias, "CUST-BOB"],
        ["CUST-BOB"],
        [alias],
    ]
    assert audit[0].arguments == alias and audit[1].arguments == alias
    erasure = audit[-1]
    assert (erasure.command, erasure.user_id, erasure.transport, erasure.outcome) == (
        "erase",
        "UADMIN",
        "cli",
        "ok",
    )
    assert erasure.detail is not None and "emptied 1 tickets" in erasure.detail


def test_erased_customers_do_not_come_back_with_an_old_export(
    storage_engine: Engine, tmp_path: Path
) -> None:
    load(storage_engine, tmp_path)
    erase_customer(storage_engine, "CUST-ANN", requested_by="UADMIN", at=AT)

    customers = import_file(storage_engine, "customers", tmp_path / "customers.csv")
    assert [(r.line, r.reason) for r in customers.rejected] == [
        (2, "this customer was erased; remove them from the export")
    ]
    assert customers.unchanged == 1
    # Orders and referrals carry no personal data: they still match the erased row.
    orders = import_file(storage_engine, "orders", tmp_path / "orders.csv")
    assert orders.ok and orders.unchanged == 3
    assert import_file(storage_engine, "referrals", tmp_path / "referrals.csv").ok
    # Tickets and surveys would bring the free text back: refused.
    tickets = import_file(storage_engine, "tickets", tmp_path / "tickets.csv", create_missing=True)
    assert [(r.line, r.column) for r in tickets.rejected] == [(2, "customer_id")]
    assert tickets.created == {}
    assert "Invoice for" not in every_value(storage_engine)


def test_erasing_twice_or_an_unknown_customer(engine: Engine, tmp_path: Path) -> None:
    load(engine, tmp_path)
    first = erase_customer(engine, "CUST-ANN", requested_by="UADMIN", at=AT)
    again = erase_customer(engine, "CUST-ANN", requested_by="UADMIN", at=AT)
    assert again.already_erased and again.pseudonym == first.pseudonym
    assert "already erased" in again.summary()
    by_alias = erase_customer(engine, first.pseudonym, requested_by="UADMIN", at=AT)
    assert by_alias.already_erased
    with pytest.raises(CustomerNotFound, match="there is no customer 'NOBODY'"):
        erase_customer(engine, "NOBODY", requested_by="UADMIN", at=AT)
    with engine.connect() as connection:
        commands = connection.execute(select(AuditLog.command)).scalars().all()
    assert commands == ["erase", "erase", "erase"]


def test_erasure_removes_what_was_done_about_the_customer(
    storage_engine: Engine, tmp_path: Path
) -> None:
    """Touches, follow-ups, follows, snoozes and alert records about the person go; other
    customers' notes that mention them are rewritten; Bob's own rows stay."""
    from crmbot.actions.alerts import claim_alert
    from crmbot.actions.follows import follow, snooze
    from crmbot.actions.followups import add_follow_up
    from crmbot.actions.touches import log_touch
    from crmbot.core.db import write_session
    from crmbot.core.models import AlertDelivery, Follow, FollowUp, Snooze, Touch

    load(storage_engine, tmp_path)
    add_scores_and_logs(storage_engine)
    with Session(storage_engine) as session:
        pks = dict(session.execute(select(Customer.customer_id, Customer.id)).all())
    ann, bob = pks["CUST-ANN"], pks["CUST-BOB"]
    with write_session(storage_engine) as session:
        for pk in (ann, bob):
            log_touch(
                session=session,
                customer_pk=pk,
                kind="call",
                author="UAM1",
                now=AT,
                note="Annabel Lee asked for a call on +1 555 010 0199"
                if pk == ann
                else "Bob was referred by Annabel Lee",
                outcome="reached",
            )
            add_follow_up(
                session=session,
                customer_pk=pk,
                assignee="UAM1",
                due_on=AT.date(),
                created_by="UAM1",
                now=AT,
                today=AT.date(),
                note="mail annabel@example.com" if pk == ann else "ask Annabel Lee to vouch",
            )
            follow(session=session, customer_pk=pk, user_id="UAM1", now=AT)
            snooze(session=session, customer_pk=pk, user_id="UAM1", days=3, as_of=AT.date())
            claim_alert(session=session, run_id=1, customer_pk=pk, recipient="UAM1", now=AT)

    result = erase_customer(storage_engine, "CUST-ANN", requested_by="UADMIN", at=AT)

    assert (result.actions, result.action_notes) == (5, 2)
    assert "removed 5 touches, follow-ups, follows, snoozes" in result.summary()
    assert [text for text in PERSONAL if text in every_value(storage_engine)] == []
    alias = pseudonym("CUST-ANN")
    with Session(storage_engine) as session:
        for model in (Touch, FollowUp, Follow, Snooze, AlertDelivery):
            owners = session.execute(select(model.customer_pk)).scalars().all()  # type: ignore[attr-defined]
            assert owners == [bob], model.__name__
        notes = [
            session.execute(select(Touch.note)).scalar_one(),
            session.execute(select(FollowUp.note)).scalar_one(),
        ]
    assert notes == [f"Bob was referred by {alias}", f"ask {alias} to vouch"]
