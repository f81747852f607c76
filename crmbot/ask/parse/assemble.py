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

    @property
    def ok(self) -> bool:
        return self.query is not None and not self.unplaced and not self.problems


def finish(sentence: Sentence, state: ParseState) -> ParseResult:
    unplaced = _unplaced(sentence)
    query = _query(state)
    problems = tuple(state.problems) + tuple(query.problems())
    nothing_asked = query == StructuredQuery() and not unplaced
    if nothing_asked and not any(t.low in CUSTOMER_WORDS for t in sentence.tokens):
        problems += ("ask about customers, orders or referrals",)
    return ParseResult(query, unplaced, problems)


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
        date_range=state.date_range,
        date_field=date_field,  # type: ignore[arg-type]
        group_by=state.group_by,  # type: ignore[arg-type]
        sort=sort,  # type: ignore[arg-type]
        descending=state.descending,
        limit=state.limit,
        chart=state.chart and state.group_by is not None,
    )


def _entity(state: ParseState) -> str:
    """The rows asked about: what a rule said, else orders when order nouns were seen
    ("orders last month") unless a verb asked who ordered ("who placed orders in May")."""
    if state.entity is not None:
        return state.entity
    return "orders" if state.weak_orders and state.date_field != "ordered" else "customers"


def _metric_measure_sort(state: ParseState, entity: str) -> tuple[str, str | None, str | None]:
    metric = state.metric or "list"
    measure, sort = state.measure, state.sort
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
