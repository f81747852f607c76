"""What the rules read -> a `ParseResult`: the rows asked about, the metric and sort settled
between rules that each saw only part of the question, and the words left unplaced."""

from __future__ import annotations

from dataclasses import dataclass

from crmbot.ask.parse.state import ParseState
from crmbot.ask.parse.tokens import Sentence, echo_safe
from crmbot.ask.parse.vocabulary import CUSTOMER_WORDS, STOPWORDS
from crmbot.ask.query import StructuredQuery


@dataclass(frozen=True)
class ParseResult:
    query: StructuredQuery | None
    # Words of the question that no rule or name could place (as typed, cleaned).
    unplaced: tuple[str, ...] = ()
    # Why an otherwise understood question cannot be answered ("say which customer").
    problems: tuple[str, ...] = ()
    # The rules know this cannot be answered here — it is another command's (`/crm why`)
    # or about what the CRM does not hold (a ticket's priority): the problem says so, and
    # no language model is asked to read it instead.
    final: bool = False

    @property
    def ok(self) -> bool:
        return self.query is not None and not self.unplaced and not self.problems


def finish(sentence: Sentence, state: ParseState) -> ParseResult:
    unplaced = _unplaced(sentence)
    query = _query(state)
    problems = tuple(state.problems) + tuple(query.problems())
    nothing_asked = query == StructuredQuery() and not unplaced
    if nothing_asked and not any(t.low in CUSTOMER_WORDS for t in sentence.tokens):
        problems += ("ask about customers, orders, tickets, satisfaction or products",)
    return ParseResult(query, unplaced, problems, final=state.final)


def _unplaced(sentence: Sentence) -> tuple[str, ...]:
    """The words no rule placed, fit to echo back; filler words are not missed."""
    unplaced = (
        echo_safe(sentence.tokens[i].raw)
        for i in sentence.unused()
        if sentence.tokens[i].low not in STOPWORDS and sentence.tokens[i].low != "'s"
    )
    return tuple(w for w in unplaced if w)


def _query(state: ParseState) -> StructuredQuery:
    entity = _entity(state)
    date_field = None
    if entity == "customers" and state.date_range is not None:
        date_field = state.date_field or "ordered"
    if entity == "tickets" and state.date_range is not None:
        date_field = "closed" if state.date_field == "closed" else "opened"
    _measure_for(state, entity)
    metric, measure, sort = _metric_measure_sort(state, entity)
    return StructuredQuery(
        entity=entity,  # type: ignore[arg-type]
        metric=metric,  # type: ignore[arg-type]
        measure=measure,  # type: ignore[arg-type]
        segments=tuple(state.segments),
        from_segments=tuple(state.from_segments),
        clusters=tuple(state.clusters),
        regions=tuple(state.regions),
        owners=tuple(state.owners),
        companies=tuple(state.companies),
        customer=state.customer,
        customer_name=state.customer_name,
        thresholds=tuple(state.thresholds),
        bands=tuple(state.bands),
        not_segments=tuple(state.not_segments),
        not_regions=tuple(state.not_regions),
        not_owners=tuple(state.not_owners),
        not_companies=tuple(state.not_companies),
        products=tuple(state.products),
        not_products=tuple(state.not_products),
        categories=tuple(state.categories),
        nps_categories=tuple(state.nps_categories),  # type: ignore[arg-type]
        status=state.status,  # type: ignore[arg-type]
        channels=tuple(state.channels),
        change=state.change,  # type: ignore[arg-type]
        compare_range=state.compare_range,
        date_range=state.date_range,
        date_field=date_field,  # type: ignore[arg-type]
        group_by=state.group_by,  # type: ignore[arg-type]
        sort=sort,  # type: ignore[arg-type]
        descending=state.descending,
        limit=state.limit,
        chart=state.chart and state.group_by is not None,
    )


def _entity(state: ParseState) -> str:
    """The rows asked about: what a rule said; products when they are ranked or their
    revenue or units asked for; survey answers for NPS, feedback, or NPS categories in a
    date range; else orders when order nouns were seen ("orders last month") unless a verb
    asked who ordered ("who placed orders in May"); else customers."""
    named_products = bool(state.products or state.categories)
    if state.group_by in ("product", "category") and state.entity in (None, "orders"):
        return "products"
    if state.product_rows and state.entity in (None, "orders"):
        return "products"
    if named_products and state.entity == "orders" and state.measure == "amount":
        return "products"  # "revenue of the French Press"
    if state.entity is not None:
        return state.entity
    dated = state.date_range is not None and state.date_field is None
    # "detractors last month", "average CSAT this quarter": the answers given then.
    dated_answers = dated and (
        state.nps_categories or state.measure in ("csat_avg", "nps_latest", "csat", "nps")
    )
    if state.surveys or dated_answers:
        return "feedback"
    if state.weak_orders and state.date_field != "ordered" and not named_products:
        return "orders"
    return "customers"


# What a survey answer's measure is called on a customer's score row, and back.
_ANSWER_TO_SCORE = {"nps": "nps_latest", "csat": "csat_avg"}
_SCORE_TO_ANSWER = {v: k for k, v in _ANSWER_TO_SCORE.items()}


def _measure_for(state: ParseState, entity: str) -> None:
    """NPS and CSAT are a customer's latest answer and average on their score row, and the
    answers themselves for survey answers."""
    if entity == "customers":
        state.measure = _ANSWER_TO_SCORE.get(state.measure or "", state.measure)
        state.sort = _ANSWER_TO_SCORE.get(state.sort or "", state.sort)
    elif entity == "feedback":
        state.measure = _SCORE_TO_ANSWER.get(state.measure or "", state.measure)
        state.sort = None
    elif entity == "products":
        if state.measure not in ("amount", "units"):
            state.measure = "amount" if state.measure is None else state.measure
    elif entity == "tickets" and state.measure in ("tickets", "open_tickets"):
        state.measure = None


def _metric_measure_sort(state: ParseState, entity: str) -> tuple[str, str | None, str | None]:
    metric = state.metric or "list"
    measure, sort = state.measure, state.sort
    if state.compare_range is not None and metric == "list":
        # "orders this month vs last month": how many, or how much for amounts.
        metric = "sum" if entity in ("orders", "products") and measure else "count"
        if entity == "orders" and measure is None:
            metric = "count"
    if entity == "products":
        by_units = measure == "units" or sort == "units"
        measure = "units" if by_units else "amount"
        if metric == "count" and (state.measure == "units" or state.products):
            # "how many units of X", "how many descalers did we sell": units, not products.
            metric, measure, by_units = "sum", "units", True
        if state.group_by in ("product", "category") and metric in ("sum", "avg"):
            metric = "list"
        return metric, measure, "units" if by_units and metric == "list" else None
    if entity == "score_changes":
        if state.group_by and metric == "list":
            metric = "count"
        return metric, measure, None
    if entity == "offer":
        return metric, measure, None
    if entity in ("tickets", "feedback"):
        if state.group_by and metric == "list":
            metric = "avg" if measure else "count"
        if metric == "list":
            measure = None
        return metric, measure, None
    if entity == "orders" and (metric in ("sum", "avg") or measure is not None):
        measure = "amount"
        if metric == "list" and (state.group_by or state.measure == "amount"):
            metric = "sum"  # "revenue by region", "revenue last month"
    if entity == "referrals":
        measure = None
        if state.group_by:
            metric = "count"
    if state.group_by:
        # Groups are ranked by their value; `descending` says which way.
        if metric == "list":
            metric = "avg" if measure else "count"
        sort = None
    elif metric == "list" and entity == "customers" and measure is not None:
        # "churn risk of champions": list them by that number.
        sort = sort or measure
        measure = None
    elif metric in ("count", "sum", "avg"):
        sort = None
    return metric, measure, sort
