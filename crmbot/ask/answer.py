"""What `/crm ask` answers with: the rows or the one number (`Answer`), and the error whose
sentence says why a question cannot be answered (`AskError`). Its own module so that
`execute` and the areas it hands questions to (`areas`) both import it and not each other."""

from __future__ import annotations

from dataclasses import dataclass, field

# Groups shown at most in a grouped answer (one bar each).
MAX_GROUPS = 50


class AskError(Exception):
    """A question that cannot be answered, with a sentence saying why and what to do."""

    def __init__(self, message: str, *, outcome: str = "not_found") -> None:
        super().__init__(message)
        self.message = message
        self.outcome = outcome


@dataclass
class Answer:
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    # How many rows matched (customers, orders, referrals, moves) before any limit.
    found: int = 0
    # The one number asked for (count / sum / average), already formatted.
    value: str | None = None
    value_label: str = ""
    # Grouped answers: one bar per group.
    chart_labels: list[str] = field(default_factory=list)
    chart_values: list[float] = field(default_factory=list)
    customer_ids: list[str] = field(default_factory=list)
    note: str = ""
    # The one number asked for, unformatted (for comparing two periods).
    number: float | None = None
