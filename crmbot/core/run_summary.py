"""The run summary: the live run's customers counted and summed by what questions filter on.

"Compare churn risk by region" or "how many customers are in the At risk segment" would
read every score row of the run and its customer: at a million customers, a second on
SQLite. The summary (`models.RUN_SUMMARY`) holds the same customers grouped by segment,
region, owner, cluster, NPS category and churn-risk band, with a count and, for each
summed score (`models.SUMMED_SCORES`), the sum and how many customers have a value. A few
thousand cells give the same count, total and average as the rows (`crmbot.queries.summary`
reads them; `/crm ask` uses them when every filter of a question is one of those columns).

It is derived data, kept true by rebuilding it whenever what it counts changes:

* a run's scores are written (`build`, before the run can go live);
* a run goes live (`keep_only`: built if missing, the other runs' cells dropped);
* customers are imported or erased (`refresh`: the kept runs' cells built again, in the
  same transaction as the change).

Only our own writers keep it: rows changed in the database by hand are seen after the
next retrain or customers import, or at once with `crmbot db summarise`. Each build takes a
new `revision`, so a reader that cached the cells knows to read them again.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Integer, and_, case, delete, func, insert, literal, select, update
from sqlalchemy.engine import Connection

from crmbot.core.models import RUN_SUMMARY, SUMMED_SCORES, Customer, CustomerScore

# The tenths churn risk is banded against: "over 70%" is a threshold the cells can count.
RISK_TENTHS: tuple[float, ...] = tuple(k / 10 for k in range(11))

# The cells' grouping columns, as named in RUN_SUMMARY.
GROUPS: tuple[str, ...] = (
    "segment",
    "region",
    "owner",
    "cluster",
    "cluster_label",
    "nps_category",
    "risk_band",
)

_SCORE: Any = CustomerScore.__table__  # type: ignore[attr-defined]
_CUSTOMER: Any = Customer.__table__  # type: ignore[attr-defined]


def risk_band(risk: Any) -> Any:
    """Where `risk` lies against RISK_TENTHS, as an SQL expression: 2k+1 exactly on the
    k-th tenth, 2k+2 strictly between the k-th and the next, 0 below zero, 22 above one,
    NULL for no risk. Compared with the same floats a question's threshold is, so "over
    70%" (> 0.7) keeps bands above 15 and leaves a risk of exactly 0.7 out, as the rows do.
    """
    whens: list[tuple[Any, int]] = [(risk < RISK_TENTHS[0], 0)]
    for k, tenth in enumerate(RISK_TENTHS):
        whens.append((risk == tenth, 2 * k + 1))
        if k + 1 < len(RISK_TENTHS):
            whens.append((risk < RISK_TENTHS[k + 1], 2 * k + 2))
    return case((risk.is_(None), None), *whens, else_=2 * len(RISK_TENTHS))


def band_limit(op: str, value: float) -> tuple[str, int] | None:
    """A churn-risk threshold (`risk op value`) as the same comparison on the band:
    (op, band), or None when `value` is not one of RISK_TENTHS (the cells cannot say)."""
    if value not in RISK_TENTHS:
        return None
    return op, 2 * RISK_TENTHS.index(value) + 1


def _grouped(run_id: int, revision: int, customer_pks: list[int] | None = None) -> Any:
    """The cells of run `run_id` as a SELECT; `customer_pks`: of those customers only."""
    score, customer = _SCORE, _CUSTOMER
    only = [] if customer_pks is None else [score.c.customer_pk.in_(customer_pks)]
    # The band is a column of a subquery, so GROUP BY names it instead of repeating an
    # expression with its own parameters (which PostgreSQL would not match).
    rows = (
        select(
            score.c.segment,
            customer.c.region,
            customer.c.owner,
            score.c.cluster,
            score.c.cluster_label,
            score.c.nps_category,
            risk_band(score.c.churn_risk).label("risk_band"),
            *[score.c[name] for name in SUMMED_SCORES],
        )
        .select_from(score)
        # `customer_pk > 0` is always true: SQLite then reads the run's rows in key order,
        # the order they were written in, instead of through the first (run_id, ...) index
        # it meets (8 s instead of 5.5 s at 1M; see crmbot.ask.execute, "key order").
        .join(
            customer,
            and_(
                customer.c.id == score.c.customer_pk,
                score.c.run_id == run_id,
                score.c.customer_pk > 0,
            ),
        )
        # Erased customers keep their row for the books but are never counted.
        .where(customer.c.erased_at.is_(None), *only)
        .subquery("scored")
    )
    groups = [rows.c[name] for name in GROUPS]
    sums: list[Any] = []
    for name in SUMMED_SCORES:
        sums += [func.sum(rows.c[name]), func.count(rows.c[name])]
    return select(
        literal(run_id, Integer), literal(revision, Integer), *groups, func.count(), *sums
    ).group_by(*groups)


def _columns() -> list[str]:
    names = ["run_id", "revision", *GROUPS, "customers"]
    for name in SUMMED_SCORES:
        names += [f"{name}_sum", f"{name}_n"]
    return names


def _next_revision(connection: Connection) -> int:
    """A revision no cells have: random rather than counted, so a reader's cache cannot
    mistake another database's cells (a test's, a restored copy's) for these."""
    taken = set(connection.execute(select(RUN_SUMMARY.c.revision).distinct()).scalars())
    while True:
        revision = secrets.randbelow(2**31 - 2) + 1
        if revision not in taken:
            return revision


def build(connection: Connection, run_id: int) -> int:
    """(Re)build run `run_id`'s cells from its scores and the customers as they are now;
    returns how many cells it has. In the caller's transaction."""
    revision = _next_revision(connection)
    connection.execute(delete(RUN_SUMMARY).where(RUN_SUMMARY.c.run_id == run_id))
    connection.execute(insert(RUN_SUMMARY).from_select(_columns(), _grouped(run_id, revision)))
    return int(
        connection.execute(select(func.count()).where(RUN_SUMMARY.c.run_id == run_id)).scalar_one()
    )


def summarised_runs(connection: Connection) -> list[int]:
    """The runs that have cells (the live run's, and a new run's before it goes live)."""
    return list(connection.execute(select(RUN_SUMMARY.c.run_id).distinct()).scalars())


def refresh(connection: Connection) -> None:
    """Build again the cells of every run that has them: customers changed."""
    for run_id in summarised_runs(connection):
        build(connection, run_id)


def keep_only(connection: Connection, run_id: int) -> None:
    """Run `run_id` goes live: its cells (built now if it has none), no other run's."""
    if run_id not in summarised_runs(connection):
        build(connection, run_id)
    connection.execute(delete(RUN_SUMMARY).where(RUN_SUMMARY.c.run_id != run_id))


def forget(connection: Connection, customer_pks: list[int]) -> None:
    """Take these customers out of every run's cells (they are being erased): their own
    contribution subtracted, in place of a rebuild that reads every score row."""
    names = _columns()
    counted = names[len(GROUPS) + 2 :]  # customers, then each score's sum and count
    for run_id in summarised_runs(connection):
        for row in connection.execute(_grouped(run_id, 0, customer_pks)).all():
            cell = dict(zip(names, row, strict=True))
            same_cell = [RUN_SUMMARY.c.run_id == run_id] + [
                RUN_SUMMARY.c[name].is_not_distinct_from(cell[name]) for name in GROUPS
            ]
            less = {
                name: RUN_SUMMARY.c[name] - (cell[name] or 0)
                for name in counted
                if not name.endswith("_sum") or cell[name] is not None
            }
            connection.execute(update(RUN_SUMMARY).where(*same_cell).values(less))
            for name in SUMMED_SCORES:  # a sum over no value is NULL, as SUM says
                connection.execute(
                    update(RUN_SUMMARY)
                    .where(*same_cell, RUN_SUMMARY.c[f"{name}_n"] == 0)
                    .values({f"{name}_sum": None})
                )
        connection.execute(
            delete(RUN_SUMMARY).where(RUN_SUMMARY.c.run_id == run_id, RUN_SUMMARY.c.customers <= 0)
        )
        connection.execute(
            update(RUN_SUMMARY)
            .where(RUN_SUMMARY.c.run_id == run_id)
            .values(revision=_next_revision(connection))
        )


def discard(connection: Connection, run_id: int) -> None:
    """Drop run `run_id`'s cells (a run that failed or was pruned)."""
    connection.execute(delete(RUN_SUMMARY).where(RUN_SUMMARY.c.run_id == run_id))
