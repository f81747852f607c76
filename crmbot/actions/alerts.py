"""The record that an alert about a customer went to a person: once per model run."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from crmbot.core.models import AlertDelivery


def claim_alert(
    *,
    session: Session,
    run_id: int,
    customer_pk: int,
    recipient: str,
    now: datetime,
    reason: str = "",
) -> bool:
    """Claim the alert about `customer_pk` for `recipient` under run `run_id`: True for the
    first caller only (the primary key is the run, the customer and the recipient)."""
    if session.get(AlertDelivery, (run_id, customer_pk, recipient)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(
                AlertDelivery(
                    run_id=run_id,
                    customer_pk=customer_pk,
                    recipient=recipient[:120],
                    sent_at=now,
                    reason=reason[:200],
                )
            )
    except IntegrityError:
        return False
    return True


def release_alerts(
    *, session: Session, run_id: int, recipient: str, customer_pks: list[int]
) -> None:
    """Give back the claims of a message Slack did not take, so the next round sends it."""
    session.execute(
        delete(AlertDelivery).where(
            col(AlertDelivery.run_id) == run_id,
            col(AlertDelivery.recipient) == recipient[:120],
            col(AlertDelivery.customer_pk).in_(customer_pks),
        )
    )
