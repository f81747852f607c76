"""The phrasebook: how account managers ask, area by area, and the structured query each
question must become — or, for the questions `/crm ask` cannot answer, that it says so
(the words it could not place, or why) instead of answering something else.

Phrasings vary word order, casing, typos and punctuation on purpose. Each case asserts the
whole `StructuredQuery`, so a misreading of any part fails.
"""

from __future__ import annotations

from datetime import date

import pytest

from crmbot.ask.parse import Vocabulary, parse_question
from crmbot.ask.query import Band, DateRange, StructuredQuery, Threshold
from crmbot.ask.suggest import EXAMPLES

TODAY = date(2026, 6, 30)  # a Tuesday
ASKER = ("U0MARIA", "maria@example.com", "maria")

VOCAB = Vocabulary(
    regions=("EMEA", "NA", "APAC", "LATAM"),
    companies=("Blue Bean Cafe", "Initech", "Northwind Retail"),
    owners=("maria", "omar", "sofia", "james", "Tom Becker"),
    clusters={0: "frequent, high spend, recent", 1: "occasional, low spend"},
    customers={"C0001": "Ada Lovelace", "C0002": "Alan Turing", "123": "Grace Hopper"},
    products=(
        "Descaler",
        "Milk Frother",
        "Espresso Machine",
        "French Press",
        "Cold Brew Maker",
        "Travel Mug",
    ),
    categories=("Machines", "Accessories", "Maintenance", "Coffee"),
)

Q = StructuredQuery


def T(field: str, op: str, value: float) -> Threshold:
    return Threshold(field, op, value)  # type: ignore[arg-type]


def D(start: date | None, end: date | None, label: str) -> DateRange:
    return DateRange(start, end, label)


def TK(**changes: object) -> StructuredQuery:
    return Q(entity="tickets").with_changes(**changes)


def FB(**changes: object) -> StructuredQuery:
    return Q(entity="feedback").with_changes(**changes)


def P(**changes: object) -> StructuredQuery:
    return Q(entity="products", measure="amount").with_changes(**changes)


def SC(measure: str, change: str, **changes: object) -> StructuredQuery:
    return Q(entity="score_changes", measure=measure, change=change).with_changes(**changes)  # type: ignore[arg-type]


def ORD(**changes: object) -> StructuredQuery:
    return Q(entity="orders").with_changes(**changes)


def OFFER(**changes: object) -> StructuredQuery:
    return Q(entity="offer").with_changes(**changes)


def MOVES(**changes: object) -> StructuredQuery:
    return Q(entity="segment_moves").with_changes(**changes)


HIGH_CLV = Band("clv")
LOW_CLV = Band("clv", top=False)
LAST_MONTH = D(date(2026, 5, 1), date(2026, 6, 1), "last month")
THIS_MONTH = D(date(2026, 6, 1), date(2026, 7, 1), "this month")
LAST_WEEK = D(date(2026, 6, 22), date(2026, 6, 29), "last week")
THIS_WEEK = D(date(2026, 6, 29), date(2026, 7, 1), "this week")
THIS_QUARTER = D(date(2026, 4, 1), date(2026, 7, 1), "this quarter")
LAST_QUARTER = D(date(2026, 1, 1), date(2026, 4, 1), "last quarter")
THIS_YEAR = D(date(2026, 1, 1), date(2026, 7, 1), "this year")
LAST_YEAR = D(date(2025, 1, 1), date(2026, 1, 1), "last year")
SINCE_LAST_WEEK = D(date(2026, 6, 23), None, "since last week")
SINCE_LAST_MONTH = D(date(2026, 5, 30), None, "since last month")


def Q2(label: str) -> DateRange:
    return D(date(2026, 4, 1), date(2026, 7, 1), label)


def JUNE(label: str) -> DateRange:
    return D(date(2026, 6, 1), date(2026, 7, 1), label)


def MAY(label: str) -> DateRange:
    return D(date(2026, 5, 1), date(2026, 6, 1), label)


OPEN_COUNT = TK(metric="count", status="open")
TIME_TO_CLOSE = TK(metric="avg", measure="resolution_days")
OPEN_TICKETS_1 = (T("open_tickets", ">=", 1),)
NO_TICKETS = (T("tickets", "<=", 0),)
UNHAPPY = T("satisfaction", "<", 50)
NPS = FB(metric="nps")
BOUGHT_D_NOT_MF = Q(products=("Descaler",), not_products=("Milk Frother",))
CHURN_UP = SC("churn_risk", "up")

# ---------------------------------------------------------------------------------------
# Questions it answers: (phrasing, the query it must become)

TICKETS: list[tuple[str, StructuredQuery]] = [
    ("how many open tickets", OPEN_COUNT),
    ("How many OPEN tickets do we have?", OPEN_COUNT),
    ("how many unresolved tickets are there", OPEN_COUNT),
    ("count of outstanding tickets", OPEN_COUNT),
    ("number of open support tickets??", OPEN_COUNT),
    ("how many tikets are still open", OPEN_COUNT),
    ("open tickets in EMEA", TK(status="open", regions=("EMEA",))),
    ("EMEA: open tickets", TK(status="open", regions=("EMEA",))),
    ("unresolved tickets for champions", TK(status="open", segments=("Champions",))),
    ("tickets still open for maria's customers", TK(status="open", owners=("maria",))),
    ("pending cases in APAC", TK(status="open", regions=("APAC",))),
    (
        "closed tickets last month",
        TK(status="closed", date_field="closed", date_range=LAST_MONTH),
    ),
    (
        "tickets resolved this quarter",
        TK(status="closed", date_field="closed", date_range=THIS_QUARTER),
    ),
    (
        "how many tickets were opened last week",
        TK(metric="count", date_field="opened", date_range=LAST_WEEK),
    ),
    ("tickets opened in may", TK(date_field="opened", date_range=MAY("in may"))),
    ("average time to close tickets", TIME_TO_CLOSE),
    ("avg resolution time", TIME_TO_CLOSE),
    ("how long does it take to close a ticket?", TIME_TO_CLOSE),
    ("How long do tickets take to resolve in EMEA", TIME_TO_CLOSE.with_changes(regions=("EMEA",))),
    ("average time to close tickets by channel", TIME_TO_CLOSE.with_changes(group_by="channel")),
    ("resolution time by region", TIME_TO_CLOSE.with_changes(group_by="region")),
    ("open tickets by channel", TK(metric="count", status="open", group_by="channel")),
    ("tickets by status", TK(metric="count", group_by="status")),
    ("compare tickets by region", TK(metric="count", group_by="region", chart=True)),
    (
        "tickets per owner this month",
        TK(metric="count", group_by="owner", date_field="opened", date_range=THIS_MONTH),
    ),
    ("customers with open tickets", Q(thresholds=OPEN_TICKETS_1)),
    ("clients who have unresolved tickets", Q(thresholds=OPEN_TICKETS_1)),
    ("customers with more than 3 tickets", Q(thresholds=(T("tickets", ">", 3),))),
    ("accounts with at least 5 support tickets", Q(thresholds=(T("tickets", ">=", 5),))),
    ("customers with 3 or more tickets", Q(thresholds=(T("tickets", ">=", 3),))),
    ("customers with 3+ tickets", Q(thresholds=(T("tickets", ">=", 3),))),
    ("customers without tickets", Q(thresholds=NO_TICKETS)),
    ("customers who never raised a ticket", Q(thresholds=NO_TICKETS)),
    ("which customers have the most tickets", Q(sort="tickets")),
    (
        "customers with the most open tickets in NA",
        Q(sort="open_tickets", regions=("NA",)),
    ),
    ("top 5 customers by number of tickets", Q(sort="tickets", limit=5)),
    ("open tickets of Ada Lovelace", TK(status="open", customer="C0001")),
    ("tickets for customer 123", TK(customer="123")),
    (
        "how many tickets did champions open this year",
        TK(metric="count", segments=("Champions",), date_field="opened", date_range=THIS_YEAR),
    ),
    ("Tickets per channel", TK(metric="count", group_by="channel")),
    (
        "how many tickets did we close last week",
        TK(metric="count", status="closed", date_field="closed", date_range=LAST_WEEK),
    ),
    (
        "what's the resolution time for phone tickets",
        TIME_TO_CLOSE.with_changes(channels=("phone",)),
    ),
    (
        "open phone tickets in EMEA",
        TK(status="open", channels=("phone",), regions=("EMEA",)),
    ),
    ("how many unresolved email tickets", OPEN_COUNT.with_changes(channels=("email",))),
    (
        "champions with high churn risk and open tickets",
        Q(
            segments=("Champions",),
            thresholds=(T("churn_risk", ">=", 0.5), *OPEN_TICKETS_1),
        ),
    ),
    (
        "Tickets closed in Q2, by channel",
        TK(
            metric="count",
            status="closed",
            date_field="closed",
            date_range=Q2("in q2"),
            group_by="channel",
        ),
    ),
]

SATISFACTION: list[tuple[str, StructuredQuery]] = [
    ("what is our NPS", NPS),
    ("whats our nps?", NPS),
    ("NPS by region", NPS.with_changes(group_by="region")),
    ("net promoter score by segment", NPS.with_changes(group_by="segment")),
    ("compare NPS across regions", NPS.with_changes(group_by="region", chart=True)),
    ("NPS this quarter", NPS.with_changes(date_range=THIS_QUARTER)),
    ("nps for champions", NPS.with_changes(segments=("Champions",))),
    ("average NPS", FB(metric="avg", measure="nps")),
    ("average csat of survey answers", FB(metric="avg", measure="csat")),
    ("average csat by region", Q(metric="avg", measure="csat_avg", group_by="region")),
    ("how many promoters", Q(metric="count", nps_categories=("promoter",))),
    (
        "how many detractors do we have in EMEA?",
        Q(metric="count", nps_categories=("detractor",), regions=("EMEA",)),
    ),
    ("list detractors", Q(nps_categories=("detractor",))),
    (
        "passives in the champions segment",
        Q(nps_categories=("passive",), segments=("Champions",)),
    ),
    ("detractors with high CLV", Q(nps_categories=("detractor",), bands=(HIGH_CLV,))),
    (
        "promoters by region",
        Q(metric="count", nps_categories=("promoter",), group_by="region"),
    ),
    ("customers by nps category", Q(metric="count", group_by="nps_category")),
    ("detractors last month", FB(nps_categories=("detractor",), date_range=LAST_MONTH)),
    (
        "how many detractors answered this quarter",
        FB(metric="count", nps_categories=("detractor",), date_range=THIS_QUARTER),
    ),
    ("survey responses last month", FB(date_range=LAST_MONTH)),
    ("how many survey answers this year", FB(metric="count", date_range=THIS_YEAR)),
    ("feedback from maria's customers", FB(owners=("maria",))),
    ("unhappy customers", Q(thresholds=(UNHAPPY,))),
    ("unhappy customers with high CLV", Q(thresholds=(UNHAPPY,), bands=(HIGH_CLV,))),
    (
        "Unhappy, high-value customers in EMEA",
        Q(thresholds=(UNHAPPY,), bands=(HIGH_CLV,), regions=("EMEA",)),
    ),
    (
        "dissatisfied customers with high lifetime value",
        Q(thresholds=(UNHAPPY,), bands=(HIGH_CLV,)),
    ),
    ("unhapy customers with hgih clv", Q(thresholds=(UNHAPPY,), bands=(HIGH_CLV,))),
    ("customers with negative sentiment", Q(thresholds=(T("sentiment", "<", 0),))),
    ("angry customers in APAC", Q(thresholds=(T("sentiment", "<", 0),), regions=("APAC",))),
    ("customers with positive sentiment", Q(thresholds=(T("sentiment", ">", 0),))),
    ("customers with nps below 7", Q(thresholds=(T("nps_latest", "<", 7),))),
    ("customers with csat under 3", Q(thresholds=(T("csat_avg", "<", 3),))),
    ("happiest customers", Q(sort="satisfaction")),
    ("10 happiest customers in NA", Q(sort="satisfaction", limit=10, regions=("NA",))),
    (
        "least satisfied champions",
        Q(sort="satisfaction", descending=False, segments=("Champions",)),
    ),
    ("average satisfaction by owner", Q(metric="avg", measure="satisfaction", group_by="owner")),
    ("sentiment by region", Q(metric="avg", measure="sentiment", group_by="region")),
    ("low value customers", Q(bands=(LOW_CLV,))),
    (
        "promoters in APAC with low churn risk",
        Q(nps_categories=("promoter",), regions=("APAC",), thresholds=(T("churn_risk", "<", 0.2),)),
    ),
    ("NPS by month", NPS.with_changes(group_by="month")),
    (
        "what's the average csat this quarter",
        FB(metric="avg", measure="csat", date_range=THIS_QUARTER),
    ),
]

PRODUCTS: list[tuple[str, StructuredQuery]] = [
    ("top products", P(limit=10)),
    ("top 5 products by revenue", P(limit=5)),
    ("top 5 products by revenue in Q2", P(limit=5, date_range=Q2("in q2"))),
    ("best selling products", P(measure="units", sort="units")),
    ("best sellers this month", P(measure="units", sort="units", date_range=THIS_MONTH)),
    ("most popular products in EMEA", P(measure="units", sort="units", regions=("EMEA",))),
    ("top 10 products by units sold", P(measure="units", sort="units", limit=10)),
    ("worst selling products", P(measure="units", sort="units", descending=False)),
    ("revenue by product", P(group_by="product")),
    ("revenue by product category", P(group_by="category")),
    (
        "sales by category last quarter",
        P(group_by="category", date_range=LAST_QUARTER),
    ),
    ("units sold by product", P(measure="units", sort="units", group_by="product")),
    (
        "how many units of descaler were sold",
        P(metric="sum", measure="units", products=("Descaler",)),
    ),
    (
        "how many descalers did we sell last month",
        P(metric="sum", measure="units", products=("Descaler",), date_range=LAST_MONTH),
    ),
    ("revenue from the espresso machine", P(products=("Espresso Machine",))),
    (
        "total revenue of french press this year",
        P(metric="sum", products=("French Press",), date_range=THIS_YEAR),
    ),
    ("top products for champions", P(limit=10, segments=("Champions",))),
    ("who bought the descaler", Q(products=("Descaler",))),
    ("customers who bought a milk frother", Q(products=("Milk Frother",))),
    ("buyers of the cold brew maker in EMEA", Q(products=("Cold Brew Maker",), regions=("EMEA",))),
    (
        "who purchased travel mugs last month",
        Q(products=("Travel Mug",), date_range=LAST_MONTH, date_field="ordered"),
    ),
    ("customers who bought descaler but not milk frother", BOUGHT_D_NOT_MF),
    ("Customers who bought the Descaler, but not the Milk Frother?", BOUGHT_D_NOT_MF),
    ("bought descaler without milk frother", BOUGHT_D_NOT_MF),
    (
        "bought an espresso machine but never bought descaler",
        Q(products=("Espresso Machine",), not_products=("Descaler",)),
    ),
    ("who never bought a french press", Q(not_products=("French Press",))),
    (
        "champions who haven't bought the travel mug",
        Q(segments=("Champions",), not_products=("Travel Mug",)),
    ),
    ("customers who bought machines", Q(categories=("Machines",))),
    ("who bought a mug", Q(products=("Travel Mug",))),
    ("who bought from the accessories category", Q(categories=("Accessories",))),
    ("next best product for champions", OFFER(segments=("Champions",))),
    ("what should we offer at risk customers", OFFER(segments=("At risk",))),
    (
        "what should i sell to champions in EMEA",
        OFFER(segments=("Champions",), regions=("EMEA",)),
    ),
    ("recommended products for the loyal segment", OFFER(segments=("Loyal",))),
    ("what should I offer customer 123?", OFFER(customer="123")),
    ("what could we sell to Ada Lovelace", OFFER(customer="C0001")),
    ("what to offer my customers", OFFER(owners=("maria",))),
    ("upsell opportunities for champions", OFFER(segments=("Champions",))),
    (
        "top selling product last month",
        P(measure="units", sort="units", limit=10, date_range=LAST_MONTH),
    ),
    (
        "who bought descaler in EMEA last month",
        Q(products=("Descaler",), regions=("EMEA",), date_range=LAST_MONTH, date_field="ordered"),
    ),
]

MOVES_AND_CHANGES: list[tuple[str, StructuredQuery]] = [
    (
        "how many customers moved to at risk since last week",
        MOVES(metric="count", segments=("At risk",), date_range=SINCE_LAST_WEEK),
    ),
    (
        "who dropped out of champions this month",
        MOVES(from_segments=("Champions",), date_range=THIS_MONTH),
    ),
    ("customers who became champions", MOVES(segments=("Champions",))),
    (
        "moves from loyal to at risk by region",
        MOVES(metric="count", from_segments=("Loyal",), segments=("At risk",), group_by="region"),
    ),
    (
        "how many accounts slipped into hibernating",
        MOVES(metric="count", segments=("Hibernating",)),
    ),
    ("churn risk up since last week", CHURN_UP.with_changes(date_range=SINCE_LAST_WEEK)),
    ("customers whose churn risk went up", CHURN_UP),
    (
        "whose churn risk increased since last month?",
        CHURN_UP.with_changes(date_range=SINCE_LAST_MONTH),
    ),
    ("accounts with rising churn risk in EMEA", CHURN_UP.with_changes(regions=("EMEA",))),
    ("customers whose CLV dropped", SC("clv", "down")),
    ("how many customers have falling churn risk", SC("churn_risk", "down", metric="count")),
    (
        "satisfaction down since last week",
        SC("satisfaction", "down", date_range=SINCE_LAST_WEEK),
    ),
    ("who has improving satisfaction", SC("satisfaction", "up")),
    ("customers whose churn risk got worse", CHURN_UP),
    ("churn risk up by region", CHURN_UP.with_changes(metric="count", group_by="region")),
    ("clv went down for champions", SC("clv", "down", segments=("Champions",))),
    ("who got riskier since last week", CHURN_UP.with_changes(date_range=SINCE_LAST_WEEK)),
    ("customers who became happier", SC("satisfaction", "up")),
]

EXCLUSIONS: list[tuple[str, StructuredQuery]] = [
    ("champions not in EMEA", Q(segments=("Champions",), not_regions=("EMEA",))),
    ("customers not in emea or apac", Q(not_regions=("EMEA", "APAC"))),
    ("customers excluding champions", Q(not_segments=("Champions",))),
    ("all customers except at risk ones", Q(not_segments=("At risk",))),
    ("customers outside NA", Q(not_regions=("NA",))),
    ("non champions in EMEA", Q(not_segments=("Champions",), regions=("EMEA",))),
    ("customers other than maria's", Q(not_owners=("maria",))),
    ("accounts not owned by omar", Q(not_owners=("omar",))),
    ("customers excluding @sofia", Q(not_owners=("sofia",))),
    ("customers not at blue bean cafe", Q(not_companies=("Blue Bean Cafe",))),
    (
        "high churn risk customers not in the champions segment",
        Q(thresholds=(T("churn_risk", ">=", 0.5),), not_segments=("Champions",)),
    ),
    (
        "champions and loyal but not in EMEA",
        Q(segments=("Champions", "Loyal"), not_regions=("EMEA",)),
    ),
    ("customers who aren't in At risk", Q(not_segments=("At risk",))),
    ("orders not from EMEA last month", ORD(not_regions=("EMEA",), date_range=LAST_MONTH)),
    (
        "revenue excluding EMEA this year",
        ORD(metric="sum", measure="amount", not_regions=("EMEA",), date_range=THIS_YEAR),
    ),
    ("how many customers are not champions", Q(metric="count", not_segments=("Champions",))),
    ("tickets not from champions", TK(not_segments=("Champions",))),
    (
        "open tickets excluding EMEA and APAC",
        TK(status="open", not_regions=("EMEA", "APAC")),
    ),
    ("customers besides omar's", Q(not_owners=("omar",))),
    ("CHAMPIONS NOT IN EMAE", Q(segments=("Champions",), not_regions=("EMEA",))),
]

FRAMINGS: list[tuple[str, StructuredQuery]] = [
    ("how many customers are in the At risk segment", Q(metric="count", segments=("At risk",))),
    ("How many customers are in the at-risk segment?", Q(metric="count", segments=("At risk",))),
    ("customers in segment champions", Q(segments=("Champions",))),
    ("who are in at risk", Q(segments=("At risk",))),
    ("list the hibernating segment", Q(segments=("Hibernating",))),
    ("accounts in the EMEA region", Q(regions=("EMEA",))),
    ("customers in the champions segment in emea", Q(segments=("Champions",), regions=("EMEA",))),
    ("my customers", Q(owners=("maria",))),
    ("who are my best customers", Q(owners=("maria",), sort="clv")),
    ("my top 10 accounts by clv", Q(owners=("maria",), sort="clv", limit=10)),
    ("which of mine are at risk", Q(owners=("maria",), segments=("At risk",))),
    ("my customers with open tickets", Q(owners=("maria",), thresholds=OPEN_TICKETS_1)),
    ("my detractors", Q(owners=("maria",), nps_categories=("detractor",))),
    ("my best customers in EMEA", Q(owners=("maria",), sort="clv", regions=("EMEA",))),
    ("my biggest customers", Q(owners=("maria",), sort="total_spend")),
    ("most loyal customers", Q(sort="orders_count")),
    (
        "customers with the most orders this year",
        Q(sort="orders_count", date_range=THIS_YEAR, date_field="ordered"),
    ),
    ("top customers", Q(limit=10)),
    ("best customers in APAC", Q(sort="clv", regions=("APAC",))),
    ("most valuable champions", Q(sort="clv", segments=("Champions",))),
    ("riskiest accounts of omar", Q(sort="churn_risk", owners=("omar",))),
    ("biggest spenders in latam", Q(sort="total_spend", regions=("LATAM",))),
    ("BEST CUSTOMERS", Q(sort="clv")),
    ("my riskiest customers", Q(owners=("maria",), sort="churn_risk")),
    (
        "how many of my customers are champions",
        Q(metric="count", owners=("maria",), segments=("Champions",)),
    ),
]

PERIODS: list[tuple[str, StructuredQuery]] = [
    (
        "orders this month vs last month",
        ORD(metric="count", date_range=THIS_MONTH, compare_range=LAST_MONTH),
    ),
    (
        "revenue this quarter compared to last quarter",
        ORD(metric="sum", measure="amount", date_range=THIS_QUARTER, compare_range=LAST_QUARTER),
    ),
    (
        "new customers this month versus last month",
        Q(
            metric="count",
            date_range=THIS_MONTH,
            compare_range=LAST_MONTH,
            date_field="signed_up",
        ),
    ),
    (
        "orders in june vs may",
        ORD(metric="count", date_range=JUNE("june"), compare_range=MAY("may")),
    ),
    (
        "tickets this month vs last month",
        TK(metric="count", date_range=THIS_MONTH, compare_range=LAST_MONTH, date_field="opened"),
    ),
    (
        "revenue month over month",
        ORD(metric="sum", measure="amount", date_range=THIS_MONTH, compare_range=LAST_MONTH),
    ),
    (
        "NPS this quarter vs last quarter",
        NPS.with_changes(date_range=THIS_QUARTER, compare_range=LAST_QUARTER),
    ),
    (
        "average order value this year vs last year",
        ORD(metric="avg", measure="amount", date_range=THIS_YEAR, compare_range=LAST_YEAR),
    ),
    (
        "how many orders in Q1 vs Q2",
        ORD(
            metric="count",
            date_range=D(date(2026, 1, 1), date(2026, 4, 1), "q1"),
            compare_range=Q2("q2"),
        ),
    ),
    (
        "orders this week against last week",
        ORD(metric="count", date_range=THIS_WEEK, compare_range=LAST_WEEK),
    ),
    (
        "Revenue YoY",
        ORD(metric="sum", measure="amount", date_range=THIS_YEAR, compare_range=LAST_YEAR),
    ),
    (
        "orders last month compared with the month before",
        ORD(
            metric="count",
            date_range=LAST_MONTH,
            compare_range=D(date(2026, 4, 1), date(2026, 5, 1), "month before"),
        ),
    ),
    (
        "revenue this year vs last",
        ORD(
            metric="sum",
            measure="amount",
            date_range=THIS_YEAR,
            compare_range=D(date(2025, 1, 1), date(2026, 1, 1), "last"),
        ),
    ),
    (
        "compare may and june orders",
        ORD(metric="count", date_range=MAY("may"), compare_range=JUNE("june")),
    ),
    (
        "orders between march and may",
        ORD(date_range=D(date(2026, 3, 1), date(2026, 6, 1), "between march and may")),
    ),
    (
        "emea revenue this month vs last month",
        ORD(
            metric="sum",
            measure="amount",
            regions=("EMEA",),
            date_range=THIS_MONTH,
            compare_range=LAST_MONTH,
        ),
    ),
]

# The areas that worked before, asked the way account managers ask.
CUSTOMERS_ORDERS_REFERRALS: list[tuple[str, StructuredQuery]] = [
    (
        "which champions in EMEA have churn risk over 50%?",
        Q(segments=("Champions",), regions=("EMEA",), thresholds=(T("churn_risk", ">", 0.5),)),
    ),
    ("top 10 customers by CLV in EMEA", Q(regions=("EMEA",), sort="clv", limit=10)),
    ("Top 10 by clv, emea", Q(regions=("EMEA",), sort="clv", limit=10)),
    (
        "average order value of hibernating customers",
        ORD(metric="avg", measure="amount", segments=("Hibernating",)),
    ),
    (
        "customers of @maria with no order in 60 days",
        Q(owners=("maria",), thresholds=(T("recency_days", ">", 60),)),
    ),
    (
        "who referred the most new customers this quarter?",
        Q(entity="referrals", metric="count", group_by="referrer", date_range=THIS_QUARTER),
    ),
    (
        "compare churn risk by region",
        Q(metric="avg", measure="churn_risk", group_by="region", chart=True),
    ),
    ("how many orders last month", ORD(metric="count", date_range=LAST_MONTH)),
    (
        "revenue by region this year",
        ORD(metric="sum", measure="amount", group_by="region", date_range=THIS_YEAR),
    ),
    ("5 riskiest customers in LATAM", Q(regions=("LATAM",), sort="churn_risk", limit=5)),
    (
        "customers with clv between 1k and 5k",
        Q(thresholds=(T("clv", ">=", 1000), T("clv", "<=", 5000))),
    ),
    ("how many champions are there", Q(metric="count", segments=("Champions",))),
    ("total spend of champions", Q(metric="sum", measure="total_spend", segments=("Champions",))),
    ("customers who ordered in the last 30 days", Q(thresholds=(T("recency_days", "<=", 30),))),
    ("count customers per owner", Q(metric="count", group_by="owner")),
    ("customers at blue bean cafe", Q(companies=("Blue Bean Cafe",))),
    (
        "revenue by month this year",
        ORD(metric="sum", measure="amount", group_by="month", date_range=THIS_YEAR),
    ),
    (
        "which segment has the lowest satisfaction",
        Q(metric="avg", measure="satisfaction", group_by="segment", descending=False),
    ),
    ("chmpions in emea", Q(segments=("Champions",), regions=("EMEA",))),
    ("how many referrals last month", Q(entity="referrals", metric="count", date_range=LAST_MONTH)),
]

CASES: list[tuple[str, StructuredQuery]] = [
    *TICKETS,
    *SATISFACTION,
    *PRODUCTS,
    *MOVES_AND_CHANGES,
    *EXCLUSIONS,
    *FRAMINGS,
    *PERIODS,
    *CUSTOMERS_ORDERS_REFERRALS,
]

# ---------------------------------------------------------------------------------------
# Questions it must refuse or send elsewhere: (phrasing, a word or phrase the reply names)

REFUSED: list[tuple[str, str]] = [
    # One customer's reasons: `/crm why`.
    ("why is Acme at risk", "/crm why Acme"),
    ("Why is Ada Lovelace flagged as at risk?", "/crm why Ada Lovelace"),
    ("why did customer 123 churn", "/crm why 123"),
    ("reasons why grace hopper is unhappy", "/crm why grace hopper"),
    ("how come alan turing is so risky", "/crm why alan turing"),
    ("why are champions leaving", "/crm why champions"),
    # What the CRM does not hold.
    ("tickets by priority", "no priority"),
    ("how many high priority tickets", "no priority"),
    ("urgent tickets in EMEA", "no priority"),
    ("escalated tickets this week", "no priority"),
    ("tickets breaching SLA", "no priority"),
    ("average age of customers", "age"),
    ("customers by gender", "gender"),
    ("profit margin by region", "profit"),
    ("top products by margin", "margin"),
    ("open tickets older than 30 days", "30"),
    ("tickets with subject refund", "subject"),
    ("customers who tweeted about us", "tweeted"),
    ("customers with the most complaints about delivery", "delivery"),
    # Names the CRM does not have.
    ("customers in narnia", "narnia"),
    ("customers not in narnia", "narnia"),
    ("who bought the unicorn blender", "unicorn"),
    # A product's word without a purchase is not read as the product.
    ("travel customers in EMEA", "travel"),
    ("customers in the machines", "machines"),
    ("how many customers moved to narnia", "narnia"),
    ("customers of @zorro", "zorro"),
    # Not questions about the CRM.
    ("what is the weather in paris", "weather"),
    ("what's the capital of france", "capital"),
    ("delete customer 123", "delete"),
    ("send an email to maria", "email"),
    ("'; DROP TABLE ticket; --", "DROP"),
    ("hello", "ask about"),
    # Ambiguous or incomplete: said back, never guessed.
    ("worst customers", "worst"),
    ("newest customers", "newest"),
    ("champions except", "except"),
    ("customers without", "without"),
    ("whose churn risk went up by more than 10 points", "points"),
    ("which customers bought both descaler and milk frother", "both"),
    ("orders this month vs the moon", "moon"),
    # Shapes the rows do not have.
    ("NPS by product", "not by product"),
    ("orders by channel", "not by channel"),
    ("revenue by status", "not by status"),
    ("referrals by nps category", "not by NPS category"),
    ("next best product for champions by region", "not by region"),
    ("average sentiment of tickets", "tickets have days to close"),
    ("compare orders this month vs last month by region", "not both"),
    ("customers by month", "not by month"),
]


def _refusal_text(question: str) -> str:
    result = parse_question(question, VOCAB, today=TODAY, askers=ASKER)
    assert not result.ok, result.query
    return " ".join([*result.unplaced, *result.problems])


def test_the_phrasebook_is_large_enough() -> None:
    assert len(CASES) + len(REFUSED) >= 250
    assert len(REFUSED) >= 40
    questions = [q for q, _ in CASES] + [q for q, _ in REFUSED]
    assert len(set(questions)) == len(questions)
    for area in (TICKETS, SATISFACTION, PRODUCTS, MOVES_AND_CHANGES, EXCLUSIONS, PERIODS):
        assert len(area) >= 10


@pytest.mark.parametrize(("question", "expected"), CASES, ids=[q for q, _ in CASES])
def test_phrasing_becomes_structured_query(question: str, expected: StructuredQuery) -> None:
    result = parse_question(question, VOCAB, today=TODAY, askers=ASKER)
    assert (result.unplaced, result.problems) == ((), ())
    assert result.query == expected
    assert result.ok


@pytest.mark.parametrize(("question", "named"), REFUSED, ids=[q for q, _ in REFUSED])
def test_phrasing_is_refused_with_what_was_not_understood(question: str, named: str) -> None:
    assert named.lower() in _refusal_text(question).lower()


def test_what_the_rules_know_is_not_sent_to_a_language_model() -> None:
    result = parse_question("why is Acme at risk", VOCAB, today=TODAY)
    assert result.final and result.query is None
    assert parse_question("tickets by priority", VOCAB, today=TODAY).final
    assert not parse_question("customers in narnia", VOCAB, today=TODAY).final


def test_my_customers_needs_an_asker_who_owns_customers() -> None:
    result = parse_question("my best customers", VOCAB, today=TODAY, askers=["U999"])
    assert not result.ok and "which owner you are" in result.problems[0]


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_offered_is_understood(example: str) -> None:
    vocab = Vocabulary(
        regions=VOCAB.regions,
        owners=VOCAB.owners,
        customers=VOCAB.customers,
        products=VOCAB.products,
        categories=VOCAB.categories,
    )
    result = parse_question(example, vocab, today=TODAY, askers=ASKER)
    assert result.ok, (result.unplaced, result.problems)
