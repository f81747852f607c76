"""`crmbot.ask.parse`: questions in many wordings -> the structured query they mean.

The table below is the contract: each phrasing (the issue's examples and variations in
wording, word order, typos and case) with the query it must become. The vocabulary is
passed in, as the database would give it.
"""

from __future__ import annotations

import calendar
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmbot.ask.parse import Vocabulary, canonicalize, parse_number, parse_question, resolve_date
from crmbot.ask.query import DateRange, StructuredQuery, Threshold

TODAY = date(2026, 6, 30)  # a Tuesday

VOCAB = Vocabulary(
    regions=("EMEA", "NA", "APAC", "LATAM"),
    companies=(
        "Blue Bean Cafe",
        "Golden Oak Roasters",
        "Northwind Retail",
        "Harbor Retail Group",
        "Initech",
    ),
    owners=("maria", "omar", "sofia", "james", "aiko", "Tom Becker"),
    clusters={0: "frequent, high spend, recent", 1: "occasional, low spend"},
    customers={"C0001": "Ada Lovelace", "C0002": "Alan Turing", "123": "Grace Hopper"},
)

Q = StructuredQuery


def T(field: str, op: str, value: float) -> Threshold:
    return Threshold(field, op, value)  # type: ignore[arg-type]


def D(start: date | None, end: date | None, label: str) -> DateRange:
    return DateRange(start, end, label)


CHAMPIONS_EMEA_RISKY = Q(
    segments=("Champions",), regions=("EMEA",), thresholds=(T("churn_risk", ">", 0.5),)
)
RETAIL = ("Northwind Retail", "Harbor Retail Group")
TOP_CLV_RETAIL = Q(companies=RETAIL, sort="clv", limit=10)
SINCE_LAST_WEEK = D(date(2026, 6, 23), None, "since last week")
MOVED_TO_AT_RISK = Q(
    entity="segment_moves", metric="count", segments=("At risk",), date_range=SINCE_LAST_WEEK
)
AOV_HIBERNATING = Q(entity="orders", metric="avg", measure="amount", segments=("Hibernating",))
MARIA_INACTIVE = Q(owners=("maria",), thresholds=(T("recency_days", ">", 60),))
THIS_QUARTER = D(date(2026, 4, 1), date(2026, 7, 1), "this quarter")
TOP_REFERRERS = Q(entity="referrals", metric="count", group_by="referrer", date_range=THIS_QUARTER)
CHURN_BY_REGION = Q(metric="avg", measure="churn_risk", group_by="region", chart=True)
OFFER_123 = Q(entity="offer", customer="123")
LAST_MONTH = D(date(2026, 5, 1), date(2026, 6, 1), "last month")
THIS_YEAR = D(date(2026, 1, 1), date(2026, 7, 1), "this year")

CASES: list[tuple[str, StructuredQuery]] = [
    # "which champions in EMEA have churn risk over 50%?"
    ("which champions in EMEA have churn risk over 50%?", CHAMPIONS_EMEA_RISKY),
    ("Which CHAMPIONS in emea have a churn risk above 50 percent", CHAMPIONS_EMEA_RISKY),
    ("champions in EMEA with churn risk > 0.5", CHAMPIONS_EMEA_RISKY),
    ("EMEA champions churn risk over 50", CHAMPIONS_EMEA_RISKY),
    ("chmpions in EMAE with churn rsik over 50%", CHAMPIONS_EMEA_RISKY),
    ("show me champions from emea whose risk of churn is more than 50%", CHAMPIONS_EMEA_RISKY),
    ("champion customers, EMEA, churn probability greater than 50 %", CHAMPIONS_EMEA_RISKY),
    # "top 10 customers by CLV in retail"
    ("top 10 customers by CLV in retail", TOP_CLV_RETAIL),
    ("top ten customers in retail by lifetime value", TOP_CLV_RETAIL),
    ("Top 10 by clv, retail", TOP_CLV_RETAIL),
    ("retail: top 10 accounts by customer lifetime value", TOP_CLV_RETAIL),
    ("10 most valuable customers in EMEA", Q(regions=("EMEA",), sort="clv", limit=10)),
    # "how many customers moved to At risk since last week?"
    ("how many customers moved to At risk since last week?", MOVED_TO_AT_RISK),
    ("How many customers have moved into at-risk since last week", MOVED_TO_AT_RISK),
    ("how many accounts dropped to At Risk since last week", MOVED_TO_AT_RISK),
    ("since last week, how many customers moved to at risk?", MOVED_TO_AT_RISK),
    (
        "customers who moved from Loyal to At risk",
        Q(entity="segment_moves", segments=("At risk",), from_segments=("Loyal",)),
    ),
    (
        "who became hibernating since March",
        Q(
            entity="segment_moves",
            segments=("Hibernating",),
            date_range=D(date(2026, 3, 1), None, "since march"),
        ),
    ),
    # "average order value of Hibernating customers"
    ("average order value of Hibernating customers", AOV_HIBERNATING),
    ("AOV for hibernating", AOV_HIBERNATING),
    ("avg order value, hibernating customers", AOV_HIBERNATING),
    ("what is the average order size of hibernating accounts?", AOV_HIBERNATING),
    ("Hibernating customers: mean order value", AOV_HIBERNATING),
    # "customers of @maria with no order in 60 days"
    ("customers of @maria with no order in 60 days", MARIA_INACTIVE),
    ("<@U0MARIA|maria> customers with no orders in the last 60 days", MARIA_INACTIVE),
    ("maria's customers who haven't ordered in 60 days", MARIA_INACTIVE),
    ("customers owned by maria with no purchase for 2 months", MARIA_INACTIVE),
    ("accounts of maria inactive for 60 days", MARIA_INACTIVE),
    ("@Maria customers without an order in sixty days", MARIA_INACTIVE),
    # "who referred the most new customers this quarter?"
    ("who referred the most new customers this quarter?", TOP_REFERRERS),
    ("Who has referred the most customers this quarter", TOP_REFERRERS),
    ("this quarter, who referred the most?", TOP_REFERRERS),
    ("top referrers this quarter", TOP_REFERRERS.with_changes(limit=10)),
    (
        "how many referrals last month",
        Q(entity="referrals", metric="count", date_range=LAST_MONTH),
    ),
    # "compare churn risk by region"
    ("compare churn risk by region", CHURN_BY_REGION),
    ("Compare churn across regions", CHURN_BY_REGION),
    ("compare the churn risk of each region", CHURN_BY_REGION),
    ("compare average churn risk per region", CHURN_BY_REGION),
    ("churn risk by region", CHURN_BY_REGION.with_changes(chart=False)),
    (
        "which region has the highest churn risk",
        CHURN_BY_REGION.with_changes(chart=False),
    ),
    (
        "which segment has the lowest satisfaction",
        Q(metric="avg", measure="satisfaction", group_by="segment", descending=False),
    ),
    ("compare customers by region", Q(metric="count", group_by="region", chart=True)),
    ("count customers per owner", Q(metric="count", group_by="owner")),
    # "what should I offer customer 123?"
    ("what should I offer customer 123?", OFFER_123),
    ("What could we sell to customer #123", OFFER_123),
    ("next best product for customer 123", OFFER_123),
    ("wat should i ofer customer 123", OFFER_123),
    ("what can I offer Ada Lovelace?", Q(entity="offer", customer="C0001")),
    ("recommendations for alan turing", Q(entity="offer", customer="C0002")),
    ("what should I offer Someone Unknown", Q(entity="offer", customer_name="Someone Unknown")),
    # counts, sums, averages
    ("how many champions are there", Q(metric="count", segments=("Champions",))),
    ("number of customers in APAC", Q(metric="count", regions=("APAC",))),
    (
        "average CLV of loyal customers in NA",
        Q(metric="avg", measure="clv", segments=("Loyal",), regions=("NA",)),
    ),
    ("total spend of champions", Q(metric="sum", measure="total_spend", segments=("Champions",))),
    # thresholds with units
    ("customers with CLV over 5k", Q(thresholds=(T("clv", ">", 5000),))),
    ("customers with clv > $5,000", Q(thresholds=(T("clv", ">", 5000),))),
    (
        "customers with clv between 1k and 5k",
        Q(thresholds=(T("clv", ">=", 1000), T("clv", "<=", 5000))),
    ),
    ("accounts that spent more than $2.5m", Q(thresholds=(T("total_spend", ">", 2_500_000),))),
    ("customers with more than 5 orders", Q(thresholds=(T("orders_count", ">", 5),))),
    ("customers with at least 3 referrals", Q(thresholds=(T("referred_customers", ">=", 3),))),
    ("customers with satisfaction below 40", Q(thresholds=(T("satisfaction", "<", 40),))),
    ("customers with value at risk over 10k", Q(thresholds=(T("value_at_risk", ">", 10_000),))),
    (
        "unhappy customers in APAC",
        Q(regions=("APAC",), thresholds=(T("satisfaction", "<", 50),)),
    ),
    (
        "high churn risk customers of Tom",
        Q(owners=("Tom Becker",), thresholds=(T("churn_risk", ">=", 0.5),)),
    ),
    ("customers with no orders", Q(thresholds=(T("orders_count", "<=", 0),))),
    (
        "customers who ordered in the last 30 days",
        Q(thresholds=(T("recency_days", "<=", 30),)),
    ),
    # ranking
    ("5 riskiest customers in LATAM", Q(regions=("LATAM",), sort="churn_risk", limit=5)),
    (
        "customers in EMEA sorted by lowest satisfaction",
        Q(regions=("EMEA",), sort="satisfaction", descending=False),
    ),
    ("lowest 3 customers by satisfaction", Q(sort="satisfaction", descending=False, limit=3)),
    ("biggest spenders in NA", Q(regions=("NA",), sort="total_spend")),
    # orders and revenue over dates
    ("how many orders last month", Q(entity="orders", metric="count", date_range=LAST_MONTH)),
    (
        "revenue by region this year",
        Q(entity="orders", metric="sum", measure="amount", group_by="region", date_range=THIS_YEAR),
    ),
    (
        "total revenue in Q1",
        Q(
            entity="orders",
            metric="sum",
            measure="amount",
            date_range=D(date(2026, 1, 1), date(2026, 4, 1), "in q1"),
        ),
    ),
    (
        "how many orders in Q3",  # Q3 2026 has not begun: the last one is 2025's
        Q(
            entity="orders",
            metric="count",
            date_range=D(date(2025, 7, 1), date(2025, 10, 1), "in q3"),
        ),
    ),
    (
        "orders from EMEA in March 2026",
        Q(
            entity="orders",
            regions=("EMEA",),
            date_range=D(date(2026, 3, 1), date(2026, 4, 1), "in march 2026"),
        ),
    ),
    (
        "orders between 2026-01-01 and 2026-03-31",
        Q(
            entity="orders",
            date_range=D(date(2026, 1, 1), date(2026, 4, 1), "between 2026-01-01 and 2026-03-31"),
        ),
    ),
    (
        "revenue by month this year",
        Q(entity="orders", metric="sum", measure="amount", group_by="month", date_range=THIS_YEAR),
    ),
    (
        "orders of customer C0001 this year",
        Q(entity="orders", customer="C0001", date_range=THIS_YEAR),
    ),
    (
        "revenue last week",
        Q(
            entity="orders",
            metric="sum",
            measure="amount",
            date_range=D(date(2026, 6, 22), date(2026, 6, 29), "last week"),
        ),
    ),
    # customers and dates
    (
        "how many new customers since March",
        Q(
            metric="count",
            date_range=D(date(2026, 3, 1), None, "since march"),
            date_field="signed_up",
        ),
    ),
    (
        "champions who bought last month",
        Q(segments=("Champions",), date_range=LAST_MONTH, date_field="ordered"),
    ),
    # names: segments, regions, companies, clusters
    ("cant lose them in emea", Q(segments=("Can't lose them",), regions=("EMEA",))),
    ("Can't lose them customers in EMEA", Q(segments=("Can't lose them",), regions=("EMEA",))),
    (
        "potential loyalists at Initech",
        Q(segments=("Potential loyalists",), companies=("Initech",)),
    ),
    (
        "champions and loyal customers in EMEA",
        Q(segments=("Champions", "Loyal"), regions=("EMEA",)),
    ),
    ("customers in EMEA or APAC", Q(regions=("EMEA", "APAC"))),
    ("at risk customers", Q(segments=("At risk",))),
    ("customers in cluster 1", Q(clusters=(1,))),
    ("occasional low spend customers", Q(clusters=(1,))),
    ("customers at blue bean cafe", Q(companies=("Blue Bean Cafe",))),
]


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 60
    assert len({question for question, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("question", "expected"), CASES, ids=[q for q, _ in CASES])
def test_question_becomes_structured_query(question: str, expected: StructuredQuery) -> None:
    result = parse_question(question, VOCAB, today=TODAY)
    assert result.unplaced == ()
    assert result.problems == ()
    assert result.query == expected
    assert result.ok


@pytest.mark.parametrize(
    ("question", "unplaced"),
    [
        ("customers in narnia", ("narnia",)),
        ("what is the weather in paris", ("weather", "paris")),
        ("'; DROP TABLE customer; --", ("DROP", "TABLE")),
        ("<!channel> champions", ("!channel",)),
        ("champions except those in Narnia", ("except", "Narnia")),
        ("customers who are not in narnia", ("not", "narnia")),
    ],
)
def test_words_it_cannot_place_are_reported(question: str, unplaced: tuple[str, ...]) -> None:
    result = parse_question(question, VOCAB, today=TODAY)
    assert result.unplaced == unplaced
    assert not result.ok


def test_unknown_owner_and_whose_book_is_mine() -> None:
    unknown = parse_question("customers of @zorro", VOCAB, today=TODAY)
    assert not unknown.ok and "zorro" in unknown.problems[0]
    stranger = parse_question("my customers", VOCAB, today=TODAY, askers=["U999"])
    assert not stranger.ok and "which owner you are" in stranger.problems[0]
    mine = parse_question(
        "my customers with churn risk over 50%", VOCAB, today=TODAY, askers=["U1", "JAMES"]
    )
    assert mine.ok and mine.query is not None and mine.query.owners == ("james",)


def test_nothing_to_ask() -> None:
    assert not parse_question("", VOCAB, today=TODAY).ok
    assert parse_question("hello", VOCAB, today=TODAY).problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5k", (5000.0, False)),
        ("5,000", (5000.0, False)),
        ("$2.5m", (2_500_000.0, False)),
        ("50%", (50.0, True)),
        ("0.5", (0.5, False)),
        ("12 thousand", (12_000.0, False)),
        ("€1bn", (1_000_000_000.0, False)),
        ("five", None),
    ],
)
def test_numbers_with_units(text: str, expected: tuple[float, bool] | None) -> None:
    assert parse_number(text) == expected


@pytest.mark.parametrize(
    ("phrase", "start", "end"),
    [
        ("this quarter", date(2026, 4, 1), date(2026, 7, 1)),
        ("last quarter", date(2026, 1, 1), date(2026, 4, 1)),
        ("last month", date(2026, 5, 1), date(2026, 6, 1)),
        ("this week", date(2026, 6, 29), date(2026, 7, 1)),
        ("last week", date(2026, 6, 22), date(2026, 6, 29)),
        ("q2", date(2026, 4, 1), date(2026, 7, 1)),
        ("q4", date(2025, 10, 1), date(2026, 1, 1)),
        ("q3 2024", date(2024, 7, 1), date(2024, 10, 1)),
        ("march", date(2026, 3, 1), date(2026, 4, 1)),
        ("december", date(2025, 12, 1), date(2026, 1, 1)),
        ("2026-03-15", date(2026, 3, 15), date(2026, 3, 16)),
        ("15 march 2026", date(2026, 3, 15), date(2026, 3, 16)),
        ("3 weeks ago", date(2026, 6, 9), date(2026, 6, 10)),
        ("yesterday", date(2026, 6, 29), date(2026, 6, 30)),
    ],
)
def test_date_phrases(phrase: str, start: date, end: date) -> None:
    period = resolve_date(phrase, TODAY)
    assert period is not None
    assert (period.start, period.end) == (start, end)


def test_since_a_relative_phrase_starts_that_long_ago() -> None:
    month = parse_question("orders since last month", VOCAB, today=TODAY).query
    assert month is not None and month.date_range == D(date(2026, 5, 30), None, "since last month")
    after = parse_question("orders after march", VOCAB, today=TODAY).query
    assert after is not None and after.date_range == D(date(2026, 4, 1), None, "after march")
    before = parse_question("orders before 2026-02-01", VOCAB, today=TODAY).query
    assert before is not None and before.date_range == D(
        None, date(2026, 2, 1), "before 2026-02-01"
    )


def test_canonicalize_maps_names_and_refuses_unknown_ones() -> None:
    query, problems = canonicalize(
        Q(segments=("champions",), regions=("emea",), owners=("Maria",)), VOCAB
    )
    assert problems == []
    assert (query.segments, query.regions, query.owners) == (("Champions",), ("EMEA",), ("maria",))
    _query, problems = canonicalize(Q(regions=("Narnia",)), VOCAB)
    assert problems == ["the CRM has no region “Narnia”"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_without_an_exception(text: str) -> None:
    result = parse_question(text, VOCAB, today=TODAY)
    for word in result.unplaced:
        assert "<" not in word and ">" not in word and "&" not in word


SOUP_TEXT = (
    "champions emea churn risk over 50% top 10 by clv since last week moved to at risk "
    "how many orders revenue region compare @maria no order in 60 days q3 $5k between "
    "and referred the most what should i offer customer 123 <!channel> ' ; -- drop"
)
KEYWORD_SOUP = tuple(SOUP_TEXT.split())


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(KEYWORD_SOUP),
        max_size=14,
    )
)
def test_jumbled_keywords_parse_without_an_exception(words: list[str]) -> None:
    result = parse_question(" ".join(words), VOCAB, today=TODAY)
    if result.query is not None:
        assert isinstance(result.query.problems(), list)


@pytest.mark.parametrize("unit", ["days", "weeks", "months", "years"])
def test_so_long_ago_is_the_day_dateparser_reads(unit: str) -> None:
    # "last month", "3 months ago" are worked out without dateparser (whose first use
    # costs half a second); the day must be the one it would give, month ends included.
    from crmbot.ask.parse.dates import _dateparser_day, ago_from

    days = [
        date(2024, month, day)
        for month in range(1, 13)
        for day in (1, 15, 28, 29, 30, 31)
        if day <= calendar.monthrange(2024, month)[1]
    ]
    for today in days + [date(2025, 3, 31), date(2026, 2, 28), date(2026, 12, 31)]:
        for amount in (1, 2, 13):
            assert ago_from(today, amount, unit) == _dateparser_day(f"{amount} {unit} ago", today)
