"""What every read of customers shares: which rows a reader may see.

A `Scope` is the one answer to "whose customers may this reader see": live customers
(erased ones keep their row for aggregate counts but are never shown), and, for an
account manager under CRMBOT_OWN_BOOK_ONLY, only those whose owner is one of theirs.
Every query that lists, counts or looks up customers for a person takes a scope as a
required argument, so no reader can forget it; `/crm ask` applies it to every customer a
row names (both ends of a referral) and to the names a question may use. The chat layer
decides the scope once per request (`crmbot.chat.commandkit.reader_scope`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, false, func, true
from sqlmodel import col

from crmbot.core.models import Customer


def _cleaned(owners: Collection[str]) -> tuple[str, ...]:
    return tuple(sorted({o.strip().lower() for o in owners if o and o.strip()}))


@dataclass(frozen=True)
class Scope:
    """The customers a reader may see: live ones, of `owners` (lower-case) or of everyone
    when `owners` is None. An empty `owners` sees no customer at all."""

    owners: tuple[str, ...] | None = None

    @classmethod
    def everyone(cls) -> Scope:
        """Every live customer: admins, digests to a channel, the command line."""
        return cls(None)

    @classmethod
    def book(cls, owners: Collection[str]) -> Scope:
        """The live customers of these account owners (matched without regard to case)."""
        return cls(_cleaned(owners))

    @property
    def is_everyone(self) -> bool:
        return self.owners is None

    def owner_clause(self, customer: Any = Customer) -> Any:
        """The book half alone, on `customer` (the Customer entity or an alias of it)."""
        if self.owners is None:
            return true()
        if not self.owners:
            return false()
        return func.lower(customer.owner).in_(self.owners)

    def where(self, customer: Any = Customer) -> Any:
        """The clause a customer row (the entity or an alias) must meet to be seen."""
        return and_(customer.erased_at.is_(None), self.owner_clause(customer))


EVERYONE = Scope.everyone()


def live() -> Any:
    """Erased customers keep their row for aggregate counts but are never shown."""
    return col(Customer.erased_at).is_(None)


def owned_by(owners: Collection[str] | None) -> Any:
    """Customers of these account owners (matched without regard to case); None: all."""
    return (EVERYONE if owners is None else Scope.book(owners)).owner_clause(Customer)
