"""Run a `StructuredQuery` with SQLAlchemy `select()` and bound parameters.

Every value that came from a question (a segment, a region, a threshold, a date) reaches
the database as a bound parameter of a statement built here from closed choices; no SQL
text is ever assembled from the question. Scores are read through the active model run.

Segment moves "since <date>" compare the active run with the newest run that went live
(``activated_at`` set) whose ``as_of`` is on or before that date; without a date they use
``previous_segment`` (the segment in the run that was live before the active one).
Customers who were not in the older run have no move. Orders are purchases: refunds and
zero amounts (amount <= 0) are left out of every count, sum and average.

Every answer covers the customers the asker's `Scope` may see (`crmbot.queries.scope`):
each customer a row names is in it — for referrals both the referrer and the referred —
and the names a question may use (customers, companies) are read from it too, so a
customer outside the asker's book is neither listed, counted nor recognised by name or id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import date, datetime
from datetime import time as day_time
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from crmbot import runs
from crmbot.ask import areas, summary
from crmbot.ask.answer import MAX_GROUPS, Answer, AskError
from crmbot.ask.explain import format_value
from crmbot.ask.parse import SEGMENT_NAMES, Vocabulary
from crmbot.ask.query import (
    COUNT_FIELDS,
    DEFAULT_LIST_LIMIT,
    DEFAULT_TOP_LIMIT,
    ENTITY_LABELS,
    MAX_LIMIT,
    SCORE_FIELDS,
    StructuredQuery,
    field_label,
)
from crmbot.core.db import read_session
from crmbot.core.models import Customer, CustomerScore, ModelRun, Order, Product, Referral
from crmbot.queries.scope import Scope
from crmbot.queries.vocabulary import distinct_values, run_clusters, segment_names

# Above this many customers, names are looked up in the database instead of held in memory.
MAX_VOCABULARY_CUSTOMERS = 50_000
VOCABULARY_TTL_SECONDS = 300.0
# Vocabularies kept at once (one per engine, model run and book in use).
MAX_CACHED_VOCABULARIES = 64

# ---------------------------------------------------------------------------------------
# Vocabulary


_VocabularyKey = tuple[int, int | None, int | None, Scope]
_vocabulary_cache: dict[_VocabularyKey, tuple[float, Vocabulary]] = {}
_vocabulary_lock = threading.Lock()


def load_vocabulary(engine: Engine, scope: Scope, *, clock: Any = time.monotonic) -> Vocabulary:
    """The names questions may use, from the database, with the customers and companies of
    `scope` only; cached for a few minutes per model run, customer count and scope, so a
    new import or a retrain is seen at once."""
    with read_session(engine) as session:
        run_id = runs.active_run_id(session=session)
        newest_customer = session.execute(select(func.max(col(Customer.id)))).scalar()
        key = (id(engine), run_id, newest_customer, scope)
        now = clock()
        with _vocabulary_lock:
            cached = _vocabulary_cache.get(key)
            if cached and now - cached[0] < VOCABULARY_TTL_SECONDS:
                return cached[1]
        vocab = _read_vocabulary(session, run_id, scope)
    with _vocabulary_lock:
        for stale in [k for k in _vocabulary_cache if k[0] == id(engine) and k[1:3] != key[1:3]]:
            del _vocabulary_cache[stale]
        _vocabulary_cache[key] = (now, vocab)
        while len(_vocabulary_cache) > MAX_CACHED_VOCABULARIES:
            oldest = min(_vocabulary_cache, key=lambda k: _vocabulary_cache[k][0])
            del _vocabulary_cache[oldest]
    return vocab


def _distinct(session: Session, column: Any, *where: Any, seek: bool = False) -> tuple[str, ...]:
    """The distinct names in `column`: one index seek each (`seek`, for an indexed column
    whose rows mostly match `where`), or else read in one pass of the rows matching."""
    if seek:
        values: Any = distinct_values(session, column, *where)
    else:
        values = session.execute(select(column).where(column.is_not(None), *where).distinct())
        values = values.scalars()
    return tuple(sorted({v.strip() for v in values if v and v.strip()}))


def _read_vocabulary(session: Session, run_id: int | None, scope: Scope) -> Vocabulary:
    segments: tuple[str, ...] = SEGMENT_NAMES
    clusters: dict[int, str] = {}
    run = session.get(ModelRun, run_id) if run_id is not None else None
    if run is not None:
        # The run's own record names its segments and clusters: no scan of its scores.
        found = segment_names(session=session, run=run)
        segments = tuple(dict.fromkeys([*SEGMENT_NAMES, *found]))
        recorded = run_clusters(run)
        for number, label in (
            recorded.items()
            if recorded is not None
            else session.execute(
                select(col(CustomerScore.cluster), col(CustomerScore.cluster_label))
                .where(col(CustomerScore.run_id) == run_id, col(CustomerScore.cluster).is_not(None))
                .distinct()
            ).all()
        ):
            clusters[int(number)] = label or ""
    visible = scope.where(Customer)
    # Counted only as far as the limit: whether the names fit in memory, not how many.
    count = session.execute(
        select(func.count()).select_from(
            select(col(Customer.id)).where(visible).limit(MAX_VOCABULARY_CUSTOMERS + 1).subquery()
        )
    ).scalar_one()
    customers: dict[str, str] = {}
    if count <= MAX_VOCABULARY_CUSTOMERS:
        for customer_id, name in session.execute(
            select(col(Customer.customer_id), col(Customer.name)).where(visible)
        ).all():
            customers[customer_id] = name or ""
    # Regions and owners name no customer; a company does, so only the visible ones.
    return Vocabulary(
        segments=segments,
        regions=_distinct(session, col(Customer.region), seek=True),
        companies=_distinct(session, col(Customer.company), visible, seek=scope.is_everyone),
        owners=_distinct(session, col(Customer.owner), seek=True),
        clusters=clusters,
        customers=customers,
        products=_distinct(session, col(Product.name)),
        categories=_distinct(session, col(Product.category)),
    )


# ---------------------------------------------------------------------------------------
# Running a query


# Reading a run's scores in key order: a run's score rows are read in the order of the
# table's key (run, customer), the order training wrote them in, through a condition that
# is always true (`customer_pk > 0`: ids start at 1). Without it SQLite, which keeps no
# statistics on the table, reads a run's rows through whichever (run_id, ...) index it
# meets first, e.g. by value at risk: in random order, 6 to 15 s for a million customers
# instead of 0.4 to 1 s.
# Score columns with a (run_id, column) index: a list sorted by one walks it instead.
_INDEXED_SCORES = frozenset({"clv", "value_at_risk", "influence", "churn_risk"})

# The rows an export asks for instead of a message's limit (set by `execute`).
_ROW_LIMIT: ContextVar[int | None] = ContextVar("ask_row_limit", default=None)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, day_time.min)


def execute(
    engine: Engine, query: StructuredQuery, *, scope: Scope, row_limit: int | None = None
) -> Answer:
    """Answer `query` over the customers `scope` may see (`Scope.everyone()`: all).
    `row_limit` replaces the limit of a message (an export: `crmbot.reply.export`)."""
    problems = query.problems()
    if problems:
        raise AskError("; ".join(problems).capitalize() + ".", outcome="usage")
    limit_set = _ROW_LIMIT.set(row_limit)
    try:
        return _execute(engine, query, scope=scope)
    finally:
        _ROW_LIMIT.reset(limit_set)


def _execute(engine: Engine, query: StructuredQuery, *, scope: Scope) -> Answer:
    with read_session(engine) as session:
        run = runs.active_run(session=session)
        if query.compare_range is not None:
            return areas.compare_periods(
                lambda one: _answer(_Runner(session, one, run, scope)), query
            )
        return _answer(_Runner(session, query, run, scope))


def _answer(runner: _Runner) -> Answer:
    entity = runner.query.entity
    if entity in areas.ENTITIES:
        return areas.answer(runner)  # type: ignore[no-any-return]
    if entity == "offer":
        # The offers of one customer are the customer card's; these are a group's.
        return areas.group_offers(runner)  # type: ignore[no-any-return]
    if entity == "customers":
        return runner.customers()
    if entity == "orders":
        return runner.orders()
    if entity == "referrals":
        return runner.referrals()
    return runner.segment_moves()


def _score_column(scores: Any, name: str) -> Any:
    if name in COUNT_FIELDS:
        return areas.count_column(scores, name)
    if name not in SCORE_FIELDS:
        raise AskError(f"I cannot sort or average by {name}.", outcome="usage")
    return getattr(scores, name)


_OPERATORS = {
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
}


class _Runner:
    def __init__(
        self,
        session: Session,
        query: StructuredQuery,
        run: ModelRun | None,
        scope: Scope,
    ) -> None:
        self.session = session
        self.query = query
        self.run = run
        self.scope = scope

    # -- shared pieces ------------------------------------------------------------------

    def needs_scores(self) -> bool:
        q = self.query
        return bool(
            q.segments
            or q.clusters
            or q.thresholds
            or q.not_segments
            or q.nps_categories
            or q.bands
            or q.group_by in ("segment", "cluster", "nps_category")
            or q.entity in ("customers", "segment_moves")
        )

    def run_id(self) -> int:
        if self.run is None or self.run.id is None:
            raise AskError(
                "No model has been trained yet, so there are no segments or scores to ask "
                "about. An admin can run `crmbot train` (or `/crm retrain`)."
            )
        return self.run.id

    def join_scores(self, statement: Any, customer: Any, scores: Any | None) -> Any:
        """`statement` joined to `customer`'s score row in the active run when `scores` is
        wanted (`needs_scores`), else as it is."""
        if scores is None:
            return statement
        return statement.join(
            scores, and_(scores.customer_pk == customer.id, scores.run_id == self.run_id())
        )

    def customer_filters(self, customer: Any, scores: Any | None) -> list[Any]:
        """Clauses on one customer (and their score row): the reader's scope and every
        filter but dates."""
        q = self.query
        clauses: list[Any] = [self.scope.where(customer)]
        if q.regions:
            clauses.append(customer.region.in_(list(q.regions)))
        if q.owners:
            clauses.append(customer.owner.in_(list(q.owners)))
        if q.companies:
            clauses.append(customer.company.in_(list(q.companies)))
        if q.customer:
            clauses.append(customer.customer_id == q.customer)
        if q.customer_name:
            clauses.append(func.lower(customer.name) == q.customer_name.lower())
        if scores is not None:
            if q.segments and q.entity != "segment_moves":
                clauses.append(scores.segment.in_(list(q.segments)))
            if q.clusters:
                clauses.append(scores.cluster.in_(list(q.clusters)))
            for threshold in q.thresholds:
                if threshold.field in COUNT_FIELDS:  # tickets: counted once, not per row
                    clauses.append(
                        areas.count_clause(scores, threshold.field, threshold.op, threshold.value)
                    )
                    continue
                column = _score_column(scores, threshold.field)
                clauses.append(_OPERATORS[threshold.op](column, threshold.value))
        return clauses + areas.customer_clauses(self, customer, scores)

    def date_clauses(self, column: Any, *, is_date: bool = False) -> list[Any]:
        date_range = self.query.date_range
        if date_range is None:
            return []
        clauses = []
        if date_range.start is not None:
            start = date_range.start if is_date else _day_start(date_range.start)
            clauses.append(column >= start)
        if date_range.end is not None:
            end = date_range.end if is_date else _day_start(date_range.end)
            clauses.append(column < end)
        return clauses

    def group_column(self, customer: Any, scores: Any | None) -> Any:
        group = self.query.group_by
        if group in ("segment", "cluster") and scores is None:
            raise AskError(f"Grouping by {group} needs a trained model.")
        columns = {
            "region": customer.region,
            "owner": customer.owner,
            "company": customer.company,
            "segment": scores.segment if scores is not None else None,
            "cluster": scores.cluster_label if scores is not None else None,
            "nps_category": scores.nps_category if scores is not None else None,
        }
        if group not in columns:
            raise AskError(f"I cannot group these by {group}.", outcome="usage")
        return columns[group]

    def limit(self, default: int) -> int:
        exported = _ROW_LIMIT.get()
        return exported if exported is not None else min(self.query.limit or default, MAX_LIMIT)

    def grouped(self, statement: Any, label: Any, value: Any, value_field: str) -> Answer:
        """Run a grouped statement whose columns are (label, rows, value)."""
        descending = self.query.descending
        order = value.desc() if descending else value.asc()
        # Groups without a figure, then without a name, last on every database.
        rows = self.session.execute(
            statement.group_by(label)
            .order_by(value.is_(None), order, label.is_(None), label)
            .limit(self.limit(MAX_GROUPS))
        ).all()
        return self.grouped_answer(rows, value_field)

    def grouped_answer(self, rows: Any, value_field: str) -> Answer:
        """The answer for (label, rows, value) per group, in the order given."""
        answer = Answer(columns=[self.query.group_by.capitalize() if self.query.group_by else ""])
        metric = self.query.metric
        value_name = (
            "Count"
            if metric == "count"
            else (f"{'Average' if metric == 'avg' else 'Total'} {field_label(value_field)}")
        )
        rows_name = ENTITY_LABELS[self.query.entity]
        answer.columns += [rows_name, value_name] if metric != "count" else [value_name]
        for group_label, count, group_value in rows:
            name = str(group_label) if group_label not in (None, "") else "(none)"
            shown = format_value(None if metric == "count" else value_field, group_value)
            answer.rows.append([name, f"{count:,}", shown] if metric != "count" else [name, shown])
            answer.chart_labels.append(name)
            answer.chart_values.append(float(group_value or 0))
            answer.found += int(count)
        return answer

    # -- customers --------------------------------------------------------------------

    def customers(self) -> Answer:
        q = self.query
        run_id = self.run_id()
        customer: Any = aliased(Customer, name="c")
        scores: Any = aliased(CustomerScore, name="s")
        clauses = self.customer_filters(customer, scores)
        if q.date_range is not None and q.date_field == "signed_up":
            clauses += self.date_clauses(customer.signed_up_at, is_date=True)
        elif q.date_range is not None:
            clauses.append(
                exists(
                    select(col(Order.id)).where(
                        col(Order.customer_pk) == customer.id,
                        col(Order.amount) > 0,
                        *self.date_clauses(col(Order.ordered_at)),
                    )
                )
            )
        joined = and_(scores.customer_pk == customer.id, scores.run_id == run_id)

        # A segment's rows come through its own (run_id, segment) index, in key order too.
        def base(*columns: Any, in_key_order: bool = not q.segments) -> Any:
            # `customer_pk > 0` is always true: see "reading a run's scores in key order".
            on = and_(joined, scores.customer_pk > 0) if in_key_order else joined
            return select(*columns).select_from(customer).join(scores, on).where(*clauses)

        cells = summary.matching_cells(self.session, run_id, q, self.scope)
        if cells is not None and (q.group_by or q.metric != "list"):
            return self.summarised(cells)
        if q.group_by:  # each group is counted: no count of its own
            label = self.group_column(customer, scores)
            measure = _score_column(scores, q.measure) if q.measure else None
            value = (
                func.avg(measure)
                if q.metric == "avg"
                else (func.sum(measure) if q.metric == "sum" else func.count())
            )
            return self.grouped(
                base(label, func.count(), value), label, value, q.measure or "count"
            )
        if q.metric in ("sum", "avg"):
            assert q.measure is not None
            measure = _score_column(scores, q.measure)
            aggregate = func.avg(measure) if q.metric == "avg" else func.sum(measure)
            # One pass for both the rows counted and the figure.
            found, result = self.session.execute(base(func.count(), aggregate)).one()
            return self.customer_figure(found, result)
        if q.metric == "count":
            return self.customer_figure(self.session.execute(base(func.count())).scalar_one())
        return self.customer_list(base, customer, scores, cells)

    def customer_figure(self, found: int, result: float | None = None) -> Answer:
        """The answer to a count of customers, or to a total or average over them."""
        q = self.query
        if q.metric == "count":
            return Answer(found=found, value=f"{found:,}", value_label="customers", number=found)
        assert q.measure is not None
        word = "Average" if q.metric == "avg" else "Total"
        return Answer(
            found=found,
            value=format_value(q.measure, result),
            number=None if result is None else float(result),
            value_label=f"{word} {field_label(q.measure)}",
        )

    def summarised(self, cells: Any) -> Answer:
        """A count, total, average or grouping of customers from the run summary's cells
        (`crmbot.ask.summary`): the figures the rows would give, without reading them."""
        q = self.query
        if q.group_by:
            rows = summary.grouped_rows(cells, q, self.limit(MAX_GROUPS))
            return self.grouped_answer(rows, q.measure or "count")
        found = summary.customer_count(cells)
        if q.metric == "count":
            return self.customer_figure(found)
        assert q.measure is not None
        return self.customer_figure(found, summary.total(cells, q.measure, q.metric))

    def customer_list(self, base: Any, customer: Any, scores: Any, cells: Any = None) -> Answer:
        q = self.query
        sort_field = q.sort
        descending = q.descending
        if sort_field is None:
            first = q.thresholds[0] if q.thresholds else None
            sort_field = first.field if first else "clv"
            descending = first.op in (">", ">=") if first else True
        shown_fields = [sort_field] + [t.field for t in q.thresholds]
        shown_fields += ["clv", "churn_risk"]
        shown = list(dict.fromkeys(shown_fields))[:3]
        sort_column = _score_column(scores, sort_field)
        columns = [
            customer.customer_id,
            customer.name,
            scores.segment,
            customer.region,
            customer.owner,
            *[_score_column(scores, f) for f in shown],
        ]
        order = sort_column.desc() if descending else sort_column.asc()
        limit = self.limit(DEFAULT_TOP_LIMIT if q.limit else DEFAULT_LIST_LIMIT)
        if sort_field in _INDEXED_SCORES:
            # Rows with a value first, in the order of the sort column's index: the LIMIT
            # stops after a few rows instead of sorting them all. Rows without one (no CLV
            # yet) follow, read only when the list is not full; and only a full list needs
            # the rows counted.
            rows: list[Any] = list(
                self.session.execute(
                    base(*columns, in_key_order=False)
                    .where(sort_column.is_not(None))
                    .order_by(order, customer.customer_id)
                    .limit(limit)
                ).all()
            )
            if len(rows) < limit:
                rows += self.session.execute(
                    base(*columns)
                    .where(sort_column.is_(None))
                    .order_by(customer.customer_id)
                    .limit(limit - len(rows))
                ).all()
            found = len(rows)
            if found == limit:
                found = (
                    summary.customer_count(cells)
                    if cells is not None
                    else self.session.execute(base(func.count())).scalar_one()
                )
        else:
            # Every matching row is read to sort them anyway: counted in the same pass.
            counted = self.session.execute(
                base(*columns, func.count().over())
                .order_by(sort_column.is_(None), order, customer.customer_id)
                .limit(limit)
            ).all()
            found = int(counted[0][-1]) if counted else 0
            rows = [row[:-1] for row in counted]
        answer = Answer(
            columns=["Customer", "Name", "Segment", "Region", "Owner"]
            + [field_label(f).capitalize() if f != "clv" else "CLV" for f in shown],
            found=found,
        )
        for row in rows:
            cells = [str(v) if v not in (None, "") else "–" for v in row[:5]]
            cells += [format_value(f, v) for f, v in zip(shown, row[5:], strict=True)]
            answer.rows.append(cells)
            answer.customer_ids.append(str(row[0]))
        return answer

    # -- orders -----------------------------------------------------------------------

    def orders(self) -> Answer:
        q = self.query
        customer: Any = aliased(Customer, name="c")
        scores: Any = aliased(CustomerScore, name="s") if self.needs_scores() else None
        clauses = [col(Order.amount) > 0, *self.customer_filters(customer, scores)]
        clauses += self.date_clauses(col(Order.ordered_at))

        def base(*columns: Any) -> Any:
            statement = (
                select(*columns)
                .select_from(Order)
                .join(customer, col(Order.customer_pk) == customer.id)
            )
            return self.join_scores(statement, customer, scores).where(*clauses)

        amount = col(Order.amount)
        if q.metric in ("sum", "avg") and not q.group_by:
            aggregate = func.avg(amount) if q.metric == "avg" else func.sum(amount)
            # One pass over the orders for both the count and the figure.
            found, result = self.session.execute(base(func.count(), aggregate)).one()
            label = "Average order value" if q.metric == "avg" else "Revenue"
            number = None if result is None else float(result)
            value = format_value("amount", result)
            return Answer(found=found, value=value, value_label=label, number=number)
        found = self.session.execute(base(func.count())).scalar_one()
        if q.group_by == "month":
            return self._orders_by_month(base, found)
        if q.group_by:
            label = self.group_column(customer, scores)
            value = self._order_metric(amount)
            answer = self.grouped(base(label, func.count(), value), label, value, "amount")
            answer.found = found
            return answer
        if q.metric == "count":
            return Answer(found=found, value=f"{found:,}", value_label="orders", number=found)
        return self._orders_listed(base, customer, found)

    def _order_metric(self, amount: Any) -> Any:
        """The per-group figure the question asks for: average, sum or count of orders."""
        if self.query.metric == "avg":
            return func.avg(amount)
        return func.sum(amount) if self.query.metric == "sum" else func.count()

    def _orders_by_month(self, base: Callable[..., Any], found: int) -> Answer:
        q = self.query
        year = func.extract("year", col(Order.ordered_at))
        month = func.extract("month", col(Order.ordered_at))
        value = self._order_metric(col(Order.amount))
        rows = self.session.execute(
            base(year, month, func.count(), value)
            .group_by(year, month)
            .order_by(year, month)
            .limit(self.limit(MAX_GROUPS))
        ).all()
        answer = Answer(found=found, columns=["Month", "Orders"])
        answer.columns.append(
            "Count"
            if q.metric == "count"
            else ("Average order value" if q.metric == "avg" else "Revenue")
        )
        for y, m, count, total in rows:
            label = f"{int(y):04d}-{int(m):02d}"
            answer.rows.append(
                [
                    label,
                    f"{count:,}",
                    format_value("amount" if q.metric != "count" else None, total),
                ]
            )
            answer.chart_labels.append(label)
            answer.chart_values.append(float(total or 0))
        return answer

    def _orders_listed(self, base: Callable[..., Any], customer: Any, found: int) -> Answer:
        rows = self.session.execute(
            base(
                col(Order.order_id),
                col(Order.ordered_at),
                customer.customer_id,
                customer.name,
                col(Order.amount),
                col(Order.currency),
            )
            .order_by(col(Order.ordered_at).desc(), col(Order.order_id))
            .limit(self.limit(DEFAULT_LIST_LIMIT))
        ).all()
        answer = Answer(columns=["Order", "Date", "Customer", "Name", "Amount"], found=found)
        for order_id, ordered_at, customer_id, name, value, currency in rows:
            answer.rows.append(
                [
                    str(order_id),
                    ordered_at.date().isoformat(),
                    str(customer_id),
                    name or "–",
                    f"{format_value('amount', value)} {currency or ''}".strip(),
                ]
            )
            answer.customer_ids.append(str(customer_id))
        return answer

    # -- referrals --------------------------------------------------------------------

    def referrals(self) -> Answer:
        q = self.query
        referrer: Any = aliased(Customer, name="referrer")
        referred: Any = aliased(Customer, name="referred")
        scores: Any = aliased(CustomerScore, name="s") if self.needs_scores() else None
        # Both ends of a referral are customers the reader must be allowed to see.
        clauses = [*self.customer_filters(referrer, scores), self.scope.where(referred)]
        clauses += self.date_clauses(col(Referral.referred_at))

        def base(*columns: Any) -> Any:
            statement = (
                select(*columns)
                .select_from(Referral)
                .join(referrer, col(Referral.referrer_pk) == referrer.id)
                .join(referred, col(Referral.referred_pk) == referred.id)
            )
            return self.join_scores(statement, referrer, scores).where(*clauses)

        found = self.session.execute(base(func.count())).scalar_one()
        if q.group_by == "referrer":
            count = func.count()
            order = count.desc() if q.descending else count.asc()
            rows = self.session.execute(
                base(referrer.customer_id, referrer.name, referrer.region, count)
                .group_by(referrer.id, referrer.customer_id, referrer.name, referrer.region)
                .order_by(order, referrer.customer_id)
                .limit(self.limit(DEFAULT_TOP_LIMIT))
            ).all()
            answer = Answer(columns=["Customer", "Name", "Region", "Referrals"], found=found)
            for customer_id, name, region, referrals in rows:
                answer.rows.append([str(customer_id), name or "–", region or "–", f"{referrals:,}"])
                answer.customer_ids.append(str(customer_id))
                answer.chart_labels.append(name or str(customer_id))
                answer.chart_values.append(float(referrals))
            return answer
        if q.group_by:
            label = self.group_column(referrer, scores)
            return self.grouped(
                base(label, func.count(), func.count()), label, func.count(), "referrals"
            )
        if q.metric == "count":
            return Answer(found=found, value=f"{found:,}", value_label="referrals", number=found)
        rows = self.session.execute(
            base(
                col(Referral.referred_at),
                referrer.customer_id,
                referrer.name,
                referred.customer_id,
                referred.name,
            )
            .order_by(col(Referral.referred_at).desc(), referred.customer_id)
            .limit(self.limit(DEFAULT_LIST_LIMIT))
        ).all()
        answer = Answer(columns=["Date", "Referrer", "Referred"], found=found)
        for referred_at, referrer_id, referrer_name, referred_id, referred_name in rows:
            answer.rows.append(
                [
                    referred_at.date().isoformat() if referred_at else "–",
                    f"{referrer_name or '–'} ({referrer_id})",
                    f"{referred_name or '–'} ({referred_id})",
                ]
            )
            answer.customer_ids += [str(referrer_id), str(referred_id)]
        return answer

    # -- segment moves ----------------------------------------------------------------

    def baseline_run(self, day: date) -> ModelRun:
        run_id = self.run_id()
        baseline = self.session.execute(
            select(ModelRun)
            .where(
                col(ModelRun.activated_at).is_not(None),
                col(ModelRun.as_of) <= day,
                col(ModelRun.id) != run_id,
            )
            .order_by(col(ModelRun.as_of).desc(), col(ModelRun.id).desc())
            .limit(1)
        ).scalar_one_or_none()
        if baseline is None:
            oldest = self.session.execute(
                select(func.min(col(ModelRun.as_of))).where(col(ModelRun.activated_at).is_not(None))
            ).scalar()
            since = f" The oldest model run is as of {oldest.isoformat()}." if oldest else ""
            raise AskError(
                f"There is no model run from on or before {day.isoformat()} to compare "
                f"with, so I cannot tell who moved since then.{since} Ask without a date "
                "to compare with the previous run."
            )
        return baseline

    def segment_moves(self) -> Answer:
        q = self.query
        run_id = self.run_id()
        assert self.run is not None
        customer: Any = aliased(Customer, name="c")
        now: Any = aliased(CustomerScore, name="s")
        clauses = self.customer_filters(customer, now)
        note = ""
        statement_joins: list[tuple[Any, Any]] = []
        if q.date_range is not None and q.date_range.start is not None:
            baseline = self.baseline_run(q.date_range.start)
            before_scores: Any = aliased(CustomerScore, name="b")
            statement_joins.append(
                (
                    before_scores,
                    and_(
                        before_scores.customer_pk == customer.id,
                        before_scores.run_id == baseline.id,
                    ),
                )
            )
            before = before_scores.segment
            note = (
                f"run {baseline.id} (as of {baseline.as_of.isoformat()}) → "
                f"run {run_id} (as of {self.run.as_of.isoformat()})"
            )
        else:
            before = now.previous_segment
            note = f"previous run → run {run_id} (as of {self.run.as_of.isoformat()})"
        clauses += [before.is_not(None), before != now.segment]
        if q.segments:
            clauses.append(now.segment.in_(list(q.segments)))
        if q.from_segments:
            clauses.append(before.in_(list(q.from_segments)))

        def base(*columns: Any) -> Any:
            statement = (
                select(*columns)
                .select_from(customer)
                .join(now, and_(now.customer_pk == customer.id, now.run_id == run_id))
            )
            for table, condition in statement_joins:
                statement = statement.join(table, condition)
            return statement.where(*clauses)

        found = self.session.execute(base(func.count())).scalar_one()
        if q.group_by:
            label = self.group_column(customer, now)
            answer = self.grouped(
                base(label, func.count(), func.count()), label, func.count(), "count"
            )
            answer.note = note
            return answer
        if q.metric == "count":
            return Answer(found=found, value=f"{found:,}", value_label="customers moved", note=note)
        return self._moves_listed(base, customer, now, before, found, note)

    def _moves_listed(
        self, base: Callable[..., Any], customer: Any, now: Any, before: Any, found: int, note: str
    ) -> Answer:
        rows = self.session.execute(
            base(
                customer.customer_id,
                customer.name,
                before,
                now.segment,
                customer.region,
                customer.owner,
                now.clv,
            )
            .order_by(now.clv.is_(None), now.clv.desc(), customer.customer_id)
            .limit(self.limit(DEFAULT_LIST_LIMIT))
        ).all()
        answer = Answer(
            columns=["Customer", "Name", "From", "To", "Region", "Owner", "CLV"],
            found=found,
            note=note,
        )
        for customer_id, name, was, is_now, region, owner, clv in rows:
            answer.rows.append(
                [
                    str(customer_id),
                    name or "–",
                    str(was),
                    str(is_now),
                    region or "–",
                    owner or "–",
                    format_value("clv", clv),
                ]
            )
            answer.customer_ids.append(str(customer_id))
        return answer
