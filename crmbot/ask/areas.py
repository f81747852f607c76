"""The rows `/crm ask` reads beyond customers, orders, referrals and segment moves: support
tickets, survey answers, products bought, the next best products of a group of customers,
scores that went up or down between runs — and what every kind of row shares: exclusions
("not in EMEA"), products bought or never bought, NPS categories, bands ("high CLV"),
ticket counts per customer, and one figure compared between two periods.

Like `crmbot.ask.execute`, everything is a SQLAlchemy statement whose values from the
question are bound parameters, read through the active model run and the asker's `Scope`
(the `_Runner` of `execute` carries both; each function here takes it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, case, false, func, literal_column, not_, or_, select
from sqlalchemy.orm import aliased
from sqlmodel import col

from crmbot.ask.answer import MAX_GROUPS, Answer, AskError
from crmbot.ask.explain import describe_dates, format_value
from crmbot.ask.query import (
    DEFAULT_LIST_LIMIT,
    DEFAULT_TOP_LIMIT,
    ENTITY_LABELS,
    GROUP_LABELS,
    StructuredQuery,
    field_label,
)
from crmbot.core.models import (
    Customer,
    CustomerScore,
    Feedback,
    Order,
    OrderLine,
    Product,
    RunOffer,
    Ticket,
)
from crmbot.queries.scope import live

# Entities answered here rather than in `execute`.
ENTITIES = frozenset({"tickets", "feedback", "products", "score_changes"})
PROMOTER_NPS = 9
DETRACTOR_NPS = 6
# Customers whose offers are counted for a group at most (the most valuable first).
MAX_OFFER_CUSTOMERS = 200_000
SECONDS_PER_DAY = 86_400.0


# ---------------------------------------------------------------------------------------
# Filters every kind of row shares


def customer_clauses(runner: Any, customer: Any, scores: Any | None) -> list[Any]:
    """The clauses beyond `execute`'s own for one customer (and their score row):
    exclusions, products bought or not, NPS categories, bands."""
    q: StructuredQuery = runner.query
    clauses: list[Any] = []
    for column, values in (
        (customer.region, q.not_regions),
        (customer.owner, q.not_owners),
        (customer.company, q.not_companies),
    ):
        if values:
            clauses.append(or_(column.is_(None), column.not_in(list(values))))
    if q.products or q.categories:
        product = col(Product.name).in_(list(q.products)) if q.products else None
        category = col(Product.category).in_(list(q.categories)) if q.categories else None
        dated = runner.date_clauses(col(Order.ordered_at)) if q.entity == "customers" else []
        wanted = [c for c in (product, category) if c is not None]
        clauses.append(_bought(customer, or_(*wanted), *dated))
    if q.not_products:
        clauses.append(not_(_bought(customer, col(Product.name).in_(list(q.not_products)))))
    if scores is None:
        return clauses
    if q.not_segments:
        clauses.append(scores.segment.not_in(list(q.not_segments)))
    if q.nps_categories:
        clauses.append(scores.nps_category.in_(list(q.nps_categories)))
    for band in q.bands:
        clauses.append(_band_clause(runner, scores, band.field, band.top, band.share))
    return clauses


def _bought(customer: Any, product_clause: Any, *more: Any) -> Any:
    """The customer placed a purchase with a line of a product `product_clause` keeps.

    A semi-join (`id IN (buyers)`): the buyers are found once from the product's lines,
    instead of the lines being searched again for every customer."""
    # The products first, so the lines are found through their product's index.
    products = select(col(Product.id)).where(product_clause)
    buyers = (
        select(col(Order.customer_pk))
        .select_from(OrderLine)
        .join(Order, col(Order.id) == col(OrderLine.order_pk))
        .where(col(OrderLine.product_pk).in_(products), col(Order.amount) > 0, *more)
    )
    return customer.id.in_(buyers)


def _band_clause(runner: Any, scores: Any, field_name: str, top: bool, share: float) -> Any:
    """`field` at or beyond the cut-off that keeps `share` of the run's customers."""
    run_id = runner.run_id()
    column = getattr(CustomerScore, field_name)
    # Over every live customer of the run, whoever asks: the band means the same to all.
    present = [
        col(CustomerScore.run_id) == run_id,
        column.is_not(None),
        col(CustomerScore.customer_pk).in_(select(col(Customer.id)).where(live())),
    ]
    total = runner.session.execute(select(func.count()).where(*present)).scalar_one()
    if not total:
        return false()
    skip = max(int(total * share) - 1, 0)
    cut = runner.session.execute(
        select(column)
        .where(*present)
        .order_by(column.desc() if top else column.asc())
        .offset(skip)
        .limit(1)
    ).scalar()
    mine = getattr(scores, field_name)
    return mine >= cut if top else mine <= cut


def count_clause(scores: Any, name: str, op: str, value: float) -> Any:
    """`name` (tickets, open tickets) `op` `value` for the customer of `scores`, as a
    semi-join over the tickets grouped once by customer. When a customer with none
    qualifies ("no tickets", "fewer than 2"), it is the customers *not* among those whose
    count fails."""
    count = func.count()
    compare = _COMPARE[op]
    tickets = select(col(Ticket.customer_pk)).select_from(Ticket)
    if name == "open_tickets":
        tickets = tickets.where(col(Ticket.closed_at).is_(None))
    tickets = tickets.group_by(col(Ticket.customer_pk))
    if compare(0, value):
        return scores.customer_pk.not_in(tickets.having(not_(compare(count, value))))
    return scores.customer_pk.in_(tickets.having(compare(count, value)))


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def count_column(scores: Any, name: str) -> Any:
    """A number counted per customer when asked: their tickets, or those still open."""
    clauses = [col(Ticket.customer_pk) == scores.customer_pk]
    if name == "open_tickets":
        clauses.append(col(Ticket.closed_at).is_(None))
    return select(func.count()).select_from(Ticket).where(*clauses).scalar_subquery()


def _days_between(session: Any, start: Any, end: Any) -> Any:
    """Days from `start` to `end` (fractional), in each database's own words."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return func.julianday(end) - func.julianday(start)
    if dialect == "postgresql":
        return func.extract("epoch", end - start) / SECONDS_PER_DAY
    return func.timestampdiff(literal_column("SECOND"), start, end) / SECONDS_PER_DAY


def _month(column: Any) -> tuple[Any, Any]:
    return func.extract("year", column), func.extract("month", column)


def _grouped_by_month(
    runner: Any, base_statement: Callable[..., Any], column: Any, value: Any, field_name: str
) -> Any:
    year, month = _month(column)
    rows = runner.session.execute(
        base_statement(year, month, func.count(), value)
        .group_by(year, month)
        .order_by(year, month)
        .limit(runner.limit(MAX_GROUPS))
    ).all()
    counted = runner.query.metric == "count"
    answer = Answer(columns=["Month", *_figure_columns(runner)])
    for y, m, count, figure in rows:
        label = f"{int(y):04d}-{int(m):02d}"
        shown = _shown(runner, field_name, figure)
        answer.rows.append([label, shown] if counted else [label, f"{count:,}", shown])
        answer.chart_labels.append(label)
        answer.chart_values.append(float(figure or 0))
        answer.found += int(count)
    return answer


def _figure_columns(runner: Any) -> list[str]:
    """A count is one column; an average or total comes with how many rows it is over."""
    if runner.query.metric == "count":
        return ["Count"]
    return [ENTITY_LABELS[runner.query.entity], _value_name(runner)]


def _value_name(runner: Any) -> str:
    q = runner.query
    if q.metric == "count":
        return "Count"
    if q.metric == "nps":
        return "NPS"
    word = "Average" if q.metric == "avg" else "Total"
    return f"{word} {field_label(q.measure or 'count')}"


def _shown(runner: Any, field_name: str, value: Any) -> str:
    if runner.query.metric == "count":
        return format_value(None, value)
    if runner.query.metric == "nps":
        return _nps_text(value)
    return format_value(field_name, value)


def _nps_text(value: Any) -> str:
    return "–" if value is None else f"{float(value):+.0f}"


def _grouped(
    runner: Any,
    base_statement: Callable[..., Any],
    label: Any,
    value: Any,
    field_name: str,
) -> Any:
    """A grouped answer whose figure `value` may be an NPS (`execute`'s `grouped` formats
    every figure as a measure)."""
    q = runner.query
    order = value.desc() if q.descending else value.asc()
    rows = runner.session.execute(
        base_statement(label, func.count(), value)
        .group_by(label)
        .order_by(order, label)
        .limit(runner.limit(MAX_GROUPS))
    ).all()
    group_name = GROUP_LABELS.get(q.group_by or "", "")
    counted = q.metric == "count"
    answer = Answer(columns=[group_name[:1].upper() + group_name[1:], *_figure_columns(runner)])
    for group_label, count, figure in rows:
        name = str(group_label) if group_label not in (None, "") else "(none)"
        shown = _shown(runner, field_name, figure)
        answer.rows.append([name, shown] if counted else [name, f"{count:,}", shown])
        answer.chart_labels.append(name)
        answer.chart_values.append(float(figure or 0))
        answer.found += int(count)
    return answer


def _scalar(runner: Any, value: Any, found: int, label: str, field_name: str | None) -> Any:
    shown = _nps_text(value) if runner.query.metric == "nps" else format_value(field_name, value)
    number = None if value is None else float(value)
    return Answer(found=found, value=shown, value_label=label, number=number)


def answer(runner: Any) -> Any:
    """Answer `runner.query` for an entity of this module."""
    entity = runner.query.entity
    if entity == "tickets":
        return _tickets(runner)
    if entity == "feedback":
        return _feedback(runner)
    if entity == "products":
        return _products(runner)
    return _score_changes(runner)


# ---------------------------------------------------------------------------------------
# Tickets


def _ticket_status() -> Any:
    return case((col(Ticket.closed_at).is_(None), "open"), else_="closed")


def _tickets(runner: Any) -> Any:
    q: StructuredQuery = runner.query
    customer: Any = aliased(Customer, name="c")
    scores: Any = aliased(CustomerScore, name="s") if runner.needs_scores() else None
    clauses = [*runner.customer_filters(customer, scores)]
    if q.channels:
        clauses.append(func.lower(col(Ticket.channel)).in_(list(q.channels)))
    if q.status == "open":
        clauses.append(col(Ticket.closed_at).is_(None))
    elif q.status == "closed" or q.measure == "resolution_days":
        clauses.append(col(Ticket.closed_at).is_not(None))
    dated = col(Ticket.closed_at) if q.date_field == "closed" else col(Ticket.opened_at)
    clauses += runner.date_clauses(dated)

    def statement(*columns: Any) -> Any:
        built = (
            select(*columns)
            .select_from(Ticket)
            .join(customer, col(Ticket.customer_pk) == customer.id)
        )
        return runner.join_scores(built, customer, scores).where(*clauses)

    days = _days_between(runner.session, col(Ticket.opened_at), col(Ticket.closed_at))
    value = (
        func.count()
        if q.metric == "count" or q.measure is None
        else (func.avg(days) if q.metric == "avg" else func.sum(days))
    )
    field_name = "resolution_days"
    if q.group_by == "month":
        return _grouped_by_month(runner, statement, dated, value, field_name)
    if q.group_by:
        label = {"channel": col(Ticket.channel), "status": _ticket_status()}.get(q.group_by)
        if label is None:
            label = runner.group_column(customer, scores)
        return _grouped(runner, statement, label, value, field_name)
    # Each group is counted, and a figure is read in one pass with the rows it is over: the
    # rows matched are counted on their own only for a count or a list.
    if q.metric in ("sum", "avg"):
        found, figure = runner.session.execute(statement(func.count(), value)).one()
        word = "Average" if q.metric == "avg" else "Total"
        return _scalar(runner, figure, found, f"{word} days to close", field_name)
    found = runner.session.execute(statement(func.count())).scalar_one()
    if q.metric == "count":
        return Answer(found=found, value=f"{found:,}", value_label="tickets", number=found)
    rows = runner.session.execute(
        statement(
            col(Ticket.ticket_id),
            col(Ticket.opened_at),
            col(Ticket.closed_at),
            col(Ticket.channel),
            customer.customer_id,
            customer.name,
        )
        .order_by(col(Ticket.opened_at).desc(), col(Ticket.ticket_id))
        .limit(runner.limit(DEFAULT_LIST_LIMIT))
    ).all()
    result = Answer(
        columns=["Ticket", "Opened", "Closed", "Channel", "Customer", "Name"], found=found
    )
    for ticket_id, opened, closed, channel, customer_id, name in rows:
        result.rows.append(
            [
                str(ticket_id),
                opened.date().isoformat(),
                closed.date().isoformat() if closed else "open",
                channel or "–",
                str(customer_id),
                name or "–",
            ]
        )
        result.customer_ids.append(str(customer_id))
    return result


# ---------------------------------------------------------------------------------------
# Survey answers


def _nps_category() -> Any:
    return case(
        (col(Feedback.nps) >= PROMOTER_NPS, "promoter"),
        (col(Feedback.nps) > DETRACTOR_NPS, "passive"),
        (col(Feedback.nps).is_not(None), "detractor"),
        else_=None,
    )


def _nps_score() -> Any:
    """Promoters' share minus detractors' share of the answers with an NPS, in points."""
    nps = col(Feedback.nps)
    promoters = func.sum(case((nps >= PROMOTER_NPS, 1), else_=0))
    detractors = func.sum(case((nps <= DETRACTOR_NPS, 1), else_=0))
    answered = func.count(nps)
    return (promoters - detractors) * 100.0 / func.nullif(answered, 0)


def _feedback(runner: Any) -> Any:
    q: StructuredQuery = runner.query
    customer: Any = aliased(Customer, name="c")
    scores: Any = aliased(CustomerScore, name="s") if runner.needs_scores() else None
    clauses = [*runner.customer_filters(customer, scores)]
    clauses += runner.date_clauses(col(Feedback.submitted_at))
    if q.nps_categories:
        clauses.append(_nps_category().in_(list(q.nps_categories)))
    if q.measure == "nps" or q.metric == "nps":
        clauses.append(col(Feedback.nps).is_not(None))
    elif q.measure == "csat":
        clauses.append(col(Feedback.csat).is_not(None))

    def statement(*columns: Any) -> Any:
        built = (
            select(*columns)
            .select_from(Feedback)
            .join(customer, col(Feedback.customer_pk) == customer.id)
        )
        return runner.join_scores(built, customer, scores).where(*clauses)

    measure = col(Feedback.csat) if q.measure == "csat" else col(Feedback.nps)
    field_name = "csat" if q.measure == "csat" else "nps"
    if q.metric == "nps":
        value = _nps_score()
    elif q.metric == "avg":
        value = func.avg(measure)
    elif q.metric == "sum":
        value = func.sum(measure)
    else:
        value = func.count()
    if q.group_by == "month":
        return _grouped_by_month(runner, statement, col(Feedback.submitted_at), value, field_name)
    if q.group_by:
        label = _nps_category() if q.group_by == "nps_category" else None
        if label is None:
            label = runner.group_column(customer, scores)
        return _grouped(runner, statement, label, value, field_name)
    # Each group is counted, and a figure is read in one pass with the rows it is over: the
    # rows matched are counted on their own only for a count or a list.
    if q.metric in ("nps", "avg", "sum"):
        found, figure = runner.session.execute(statement(func.count(), value)).one()
        if q.metric == "avg" and figure is not None:
            figure = round(float(figure), 1)
        label = "NPS" if q.metric == "nps" else _value_name(runner)
        return _scalar(runner, figure, found, label, field_name)
    found = runner.session.execute(statement(func.count())).scalar_one()
    if q.metric == "count":
        return Answer(found=found, value=f"{found:,}", value_label="answers", number=found)
    rows = runner.session.execute(
        statement(
            col(Feedback.submitted_at),
            customer.customer_id,
            customer.name,
            col(Feedback.nps),
            col(Feedback.csat),
        )
        .order_by(col(Feedback.submitted_at).desc(), col(Feedback.feedback_id))
        .limit(runner.limit(DEFAULT_LIST_LIMIT))
    ).all()
    result = Answer(columns=["Date", "Customer", "Name", "NPS", "CSAT"], found=found)
    for submitted, customer_id, name, nps, csat in rows:
        result.rows.append(
            [
                submitted.date().isoformat(),
                str(customer_id),
                name or "–",
                "–" if nps is None else str(nps),
                "–" if csat is None else str(csat),
            ]
        )
        result.customer_ids.append(str(customer_id))
    return result


# ---------------------------------------------------------------------------------------
# Products


def _products(runner: Any) -> Any:
    q: StructuredQuery = runner.query
    customer: Any = aliased(Customer, name="c")
    scores: Any = aliased(CustomerScore, name="s") if runner.needs_scores() else None
    clauses = [col(Order.amount) > 0, *runner.customer_filters(customer, scores)]
    clauses += runner.date_clauses(col(Order.ordered_at))
    if q.products:
        clauses.append(col(Product.name).in_(list(q.products)))
    if q.categories:
        clauses.append(col(Product.category).in_(list(q.categories)))

    def statement(*columns: Any) -> Any:
        built = (
            select(*columns)
            .select_from(OrderLine)
            .join(Order, col(Order.id) == col(OrderLine.order_pk))
            .join(Product, col(Product.id) == col(OrderLine.product_pk))
            .join(customer, col(Order.customer_pk) == customer.id)
        )
        return runner.join_scores(built, customer, scores).where(*clauses)

    units = func.sum(col(OrderLine.quantity))
    price = func.coalesce(col(OrderLine.unit_price), col(Product.price), 0)
    revenue = func.sum(col(OrderLine.quantity) * price)
    by_units = q.measure == "units" or q.sort == "units"
    value = units if by_units else revenue
    field_name = "units" if by_units else "amount"
    if q.group_by in (None, "product", "category") and q.metric in ("list", "count"):
        return _products_ranked(runner, statement, units, revenue, by_units)
    if q.group_by:
        label = runner.group_column(customer, scores)
        return _grouped(runner, statement, label, value, field_name)
    # One pass over the order lines for both the count and the figure.
    lines, figure = runner.session.execute(statement(func.count(), value)).one()
    label = "Units sold" if by_units else "Revenue"
    if q.metric == "avg":
        figure = None if not lines else float(figure or 0) / lines
        label = f"Average {label.lower()} per order line"
    return _scalar(runner, figure, lines, label, None if by_units else "amount")


def _products_ranked(
    runner: Any, statement: Callable[..., Any], units: Any, revenue: Any, by_units: bool
) -> Any:
    """Products (or categories) ranked by revenue or units, with how many bought them."""
    q: StructuredQuery = runner.query
    by_category = q.group_by == "category"
    name = col(Product.category) if by_category else col(Product.name)
    buyers = func.count(func.distinct(col(Order.customer_pk)))
    ranked_by = units if by_units else revenue
    order = ranked_by.desc() if q.descending else ranked_by.asc()
    if q.metric == "count":
        found = runner.session.execute(statement(func.count(func.distinct(name)))).scalar_one()
        return Answer(found=found, value=f"{found:,}", value_label="products", number=found)
    # Every product sold is one row of a catalogue-sized result: read them all in one pass
    # and keep the first, rather than counting them in a pass of their own.
    ranked = runner.session.execute(
        statement(name, units, revenue, buyers).group_by(name).order_by(order, name)
    ).all()
    found = len(ranked)
    rows = ranked[: runner.limit(DEFAULT_TOP_LIMIT)]
    result = Answer(
        columns=["Category" if by_category else "Product", "Units", "Revenue", "Customers"],
        found=found,
    )
    for product, sold, money, customers in rows:
        label = str(product) if product not in (None, "") else "(none)"
        result.rows.append(
            [
                label,
                format_value(None, float(sold or 0)),
                format_value("amount", money),
                f"{customers:,}",
            ]
        )
        result.chart_labels.append(label)
        result.chart_values.append(float((sold if by_units else money) or 0))
    return result


# ---------------------------------------------------------------------------------------
# The next best products of a group of customers


def group_offers(runner: Any) -> Any:
    """For the customers the filters keep: which product is most often their first offer,
    and to how many it is offered at all."""
    customer: Any = aliased(Customer, name="c")
    scores: Any = aliased(CustomerScore, name="s")
    run_id = runner.run_id()
    clauses = runner.customer_filters(customer, scores)
    rows = runner.session.execute(
        select(scores.next_products)
        .select_from(customer)
        .join(scores, and_(scores.customer_pk == customer.id, scores.run_id == run_id))
        .where(*clauses)
        .order_by(scores.clv.is_(None), scores.clv.desc(), customer.id)
        .limit(MAX_OFFER_CUSTOMERS)
    ).scalars()
    first: Counter[str] = Counter()
    offered: Counter[str] = Counter()
    numbers: set[int] = set()
    customers = 0
    picks: list[list[Any]] = []
    for offers in rows:
        customers += 1
        if offers:
            picks.append(list(offers))
            numbers |= {o for o in offers if isinstance(o, int)}
    names = _offer_names(runner, run_id, numbers)
    for offers in picks:
        keys = [_offer_key(o, names) for o in offers]
        keys = [k for k in dict.fromkeys(keys) if k]
        if keys:
            first[keys[0]] += 1
            offered.update(keys)
    # Rows are products: `found` counts them; the note says over how many customers.
    result = Answer(
        columns=["#", "Product", "First offer for", "Offered to"],
        found=len(offered),
        note=f"{customers:,} customers",
    )
    ranked = sorted(offered, key=lambda k: (-first[k], -offered[k], k))
    for rank, key in enumerate(ranked[: runner.limit(DEFAULT_TOP_LIMIT)], start=1):
        result.rows.append([str(rank), key, f"{first[key]:,}", f"{offered[key]:,}"])
        result.chart_labels.append(key)
        result.chart_values.append(float(first[key]))
    if customers >= MAX_OFFER_CUSTOMERS:
        result.note = f"the {MAX_OFFER_CUSTOMERS:,} most valuable customers"
    return result


def _offer_names(runner: Any, run_id: int, numbers: set[int]) -> dict[int, str]:
    if not numbers:
        return {}
    found = runner.session.execute(
        select(col(RunOffer.offer), col(RunOffer.name)).where(
            col(RunOffer.run_id) == run_id, col(RunOffer.offer).in_(sorted(numbers))
        )
    ).all()
    return {int(number): str(name) for number, name in found}


def _offer_key(offer: Any, names: dict[int, str]) -> str:
    """An offer's product name: a `RunOffer` number, or (older runs) the offer itself."""
    if isinstance(offer, int):
        return names.get(offer, "")
    if isinstance(offer, dict):
        return str(offer.get("name") or offer.get("product_id") or "")
    return ""


# ---------------------------------------------------------------------------------------
# Scores that went up or down between two runs


def _compared_run(runner: Any) -> Any:
    """The run scores are compared with (`baseline_run`): the newest run that went live as
    of the date range's start, or else as of the active run's own date (the one before)."""
    q: StructuredQuery = runner.query
    start = q.date_range.start if q.date_range is not None else None
    try:
        return runner.baseline_run(start if start is not None else runner.run.as_of)
    except AskError:
        if start is None:
            raise AskError(
                "There is only one model run, so there is nothing to compare its scores with."
            ) from None
        raise AskError(
            f"There is no model run from on or before {start.isoformat()} "
            "to compare scores with. Ask without a date to compare with the run before "
            "the live one."
        ) from None


def _score_changes(runner: Any) -> Any:
    q: StructuredQuery = runner.query
    run_id = runner.run_id()
    assert q.measure is not None
    compared = _compared_run(runner)
    customer: Any = aliased(Customer, name="c")
    now: Any = aliased(CustomerScore, name="s")
    before: Any = aliased(CustomerScore, name="b")
    then_value, now_value = getattr(before, q.measure), getattr(now, q.measure)
    delta = now_value - then_value
    clauses = [
        *runner.customer_filters(customer, now),
        then_value.is_not(None),
        now_value.is_not(None),
        delta > 0 if q.change == "up" else delta < 0,
    ]
    note = (
        f"run {compared.id} (as of {compared.as_of.isoformat()}) → "
        f"run {run_id} (as of {runner.run.as_of.isoformat()})"
    )

    def statement(*columns: Any) -> Any:
        return (
            select(*columns)
            .select_from(customer)
            .join(now, and_(now.customer_pk == customer.id, now.run_id == run_id))
            .join(before, and_(before.customer_pk == customer.id, before.run_id == compared.id))
            .where(*clauses)
        )

    if q.group_by:
        label = runner.group_column(customer, now)
        grouped = _grouped(runner, statement, label, func.count(), "count")
        grouped.note = note
        return grouped
    # Each group is counted, and a figure is read in one pass with the rows it is over: the
    # rows matched are counted on their own only for a count or a list.
    if q.metric in ("avg", "sum"):
        found, figure = runner.session.execute(
            statement(func.count(), func.avg(delta) if q.metric == "avg" else func.sum(delta))
        ).one()
        word = "Average" if q.metric == "avg" else "Total"
        result = _scalar(
            runner, figure, found, f"{word} change in {field_label(q.measure)}", q.measure
        )
        result.note = note
        return result
    found = runner.session.execute(statement(func.count())).scalar_one()
    if q.metric == "count":
        return Answer(
            found=found, value=f"{found:,}", value_label="customers", number=found, note=note
        )
    order = delta.desc() if q.change == "up" else delta.asc()
    rows = runner.session.execute(
        statement(
            customer.customer_id,
            customer.name,
            now.segment,
            customer.region,
            customer.owner,
            then_value,
            now_value,
        )
        .order_by(order, customer.customer_id)
        .limit(runner.limit(DEFAULT_LIST_LIMIT))
    ).all()
    label = field_label(q.measure)
    label = label[:1].upper() + label[1:]
    result = Answer(
        columns=["Customer", "Name", "Segment", "Region", "Owner", f"{label} then", f"{label} now"],
        found=found,
        note=note,
    )
    for customer_id, name, segment, region, owner, was, is_now in rows:
        result.rows.append(
            [
                str(customer_id),
                name or "–",
                segment or "–",
                region or "–",
                owner or "–",
                format_value(q.measure, was),
                format_value(q.measure, is_now),
            ]
        )
        result.customer_ids.append(str(customer_id))
    return result


# ---------------------------------------------------------------------------------------
# One figure, two periods


def compare_periods(answer_for: Callable[[StructuredQuery], Any], query: StructuredQuery) -> Any:
    """The count, total or average of `query` for its date range and for `compare_range`,
    side by side, with the change."""
    assert query.date_range is not None and query.compare_range is not None
    now = answer_for(query.with_changes(compare_range=None))
    then = answer_for(query.with_changes(date_range=query.compare_range, compare_range=None))
    result = Answer(columns=["Period", now.value_label[:1].upper() + now.value_label[1:]])
    for period, figure in ((query.date_range, now), (query.compare_range, then)):
        label = describe_dates(period)
        result.rows.append([label, figure.value or "–"])
        result.chart_labels.append(period.label or label)
        result.chart_values.append(float(figure.number or 0))
    result.found = now.found + then.found
    result.value = _change_text(now.number, then.number)
    result.value_label = f"change from {query.compare_range.label or 'then'}"
    result.number = None if now.number is None or then.number is None else now.number - then.number
    result.note = now.note
    return result


def _change_text(now: float | None, then: float | None) -> str:
    if now is None or then is None:
        return "–"
    difference = now - then
    whole = abs(difference) >= 10 or float(difference).is_integer()
    shown = f"{difference:+,.0f}" if whole else f"{difference:+,.2f}"
    if then:
        return f"{shown} ({difference / abs(then):+.0%})"
    return shown
