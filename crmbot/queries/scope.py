"""What every read of customers shares: which rows a reader may see."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import func
from sqlmodel import col

from crmbot.core.models import Customer


def live() -> Any:
    """Erased customers keep their row for aggregate counts but are never shown."""
    return col(Customer.erased_at).is_(None)


def owned_by(owners: Collection[str] | None) -> Any:
    """Customers of these account owners (matched without regard to case); None: all."""
    if owners is None:
        return True
    cleaned = sorted({o.strip().lower() for o in owners if o and o.strip()})
    if not cleaned:
        return False
    return func.lower(col(Customer.owner)).in_(cleaned)
