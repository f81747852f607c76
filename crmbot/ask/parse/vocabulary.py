"""The words a question is read with: filler words, measures, operators, dimensions,
months, and the regex building blocks the rule patterns are assembled from.

Also `Vocabulary`, the names from the database (segments, regions, companies, owners,
clusters, customers) that a question may use.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from crmbot.analytics.segments import SEGMENT_ORDER

MAX_QUESTION_CHARS = 500

# The segment names training writes; the vocabulary adds any other name found in the
# active run.
SEGMENT_NAMES: tuple[str, ...] = tuple(SEGMENT_ORDER)


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """The names a question may use, as stored in the database.

    Compared by identity: the matcher built from it is cached per object, so a vocabulary
    loaded once (and cached by `crmbot.ask.execute.load_vocabulary`) is indexed once."""

    segments: tuple[str, ...] = SEGMENT_NAMES
    regions: tuple[str, ...] = ()
    companies: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    # cluster number -> its description ("frequent, high spend, recent")
    clusters: Mapping[int, str] = field(default_factory=dict)
    # customer_id -> name; may be empty for very large books (names are then looked up
    # in the database when the query runs)
    customers: Mapping[str, str] = field(default_factory=dict)
    # The catalogue: product names and their categories ("Descaler", "Machines").
    products: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------
# Words


def word_set(text: str) -> frozenset[str]:
    """The words of a space-separated list."""
    return frozenset(text.split())


STOPWORDS = word_set(
    "a an the which what who whom whose are is was were be been being have has had having "
    "with in on at of for from to me show list give find get tell display please pls "
    "kindly all any some our us we i do does did that those these there their them they "
    "whats and or currently right now still also just only can could would should you "
    "your hey hi hello crm bot like about where whos whats its it by as into than then so "
    "many much how ask question let lets see view want need know whether same one ones "
    "here"
)
# Words that name the rows asked about; consumed once every rule has had its turn.
CUSTOMER_WORDS = word_set(
    "customers customer clients client accounts account buyers buyer people folks users "
    "companies contacts"
)
ORDER_NOUNS = word_set("orders order purchases purchase transactions transaction")
NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "ninety": 90,
    "hundred": 100,
    "dozen": 12,
}
NUMBER_WORD_RX = "|".join(sorted((w for w in NUMBER_WORDS if w not in ("a", "an")), key=len))

# Measure phrases: what a number or a ranking is about. Longer phrases first.
MEASURE_PHRASES: dict[str, str] = {
    "customer lifetime value": "clv",
    "lifetime value": "clv",
    "customer value": "clv",
    "predicted value": "clv",
    "clv": "clv",
    "ltv": "clv",
    "cltv": "clv",
    "value": "clv",
    "value at risk": "value_at_risk",
    "revenue at risk": "value_at_risk",
    "money at risk": "value_at_risk",
    "churn risk": "churn_risk",
    "churn probability": "churn_risk",
    "probability of churn": "churn_risk",
    "chance of churn": "churn_risk",
    "chance of churning": "churn_risk",
    "churn likelihood": "churn_risk",
    "likelihood of churn": "churn_risk",
    "likelihood to churn": "churn_risk",
    "risk of churn": "churn_risk",
    "risk of churning": "churn_risk",
    "churn score": "churn_risk",
    "churn": "churn_risk",
    "risk": "churn_risk",
    "satisfaction score": "satisfaction",
    "customer satisfaction": "satisfaction",
    "satisfaction": "satisfaction",
    "happiness": "satisfaction",
    "csat score": "csat_avg",
    "average csat": "csat_avg",
    "csat": "csat_avg",
    "nps score": "nps_latest",
    "net promoter score": "nps_latest",
    "nps": "nps_latest",
    "sentiment score": "sentiment",
    "sentiment": "sentiment",
    "number of tickets": "tickets",
    "number of open tickets": "open_tickets",
    "support tickets": "tickets",
    "tickets": "tickets",
    "cases": "tickets",
    "complaints": "tickets",
    "open tickets": "open_tickets",
    "unresolved tickets": "open_tickets",
    "open cases": "open_tickets",
    "recency": "recency_days",
    "days since last order": "recency_days",
    "days since the last order": "recency_days",
    "days since last purchase": "recency_days",
    "days since the last purchase": "recency_days",
    "days inactive": "recency_days",
    "inactivity": "recency_days",
    "total spend": "total_spend",
    "total spent": "total_spend",
    "lifetime spend": "total_spend",
    "money spent": "total_spend",
    "spend": "total_spend",
    "spent": "total_spend",
    "spending": "total_spend",
    "average spend per order": "monetary",
    "spend per order": "monetary",
    "number of orders": "orders_count",
    "order count": "orders_count",
    "orders count": "orders_count",
    "orders": "orders_count",
    "purchases": "orders_count",
    "influence score": "influence",
    "influence": "influence",
    "number of referrals": "referred_customers",
    "referred customers": "referred_customers",
    "customers referred": "referred_customers",
    "referrals": "referred_customers",
    "probability alive": "p_alive",
    "p alive": "p_alive",
    "chance alive": "p_alive",
    "expected purchases": "expected_purchases",
    "predicted purchases": "expected_purchases",
}
# Longer phrases first, so that "churn risk" is read before "churn".
MEASURE_RX = "|".join(re.escape(p) for p in sorted(MEASURE_PHRASES, key=len, reverse=True))
LONG_MEASURES = [p for p in MEASURE_PHRASES if " " in p]

OPERATOR_PHRASES: dict[str, str] = {
    "over": ">",
    "above": ">",
    "more than": ">",
    "greater than": ">",
    "higher than": ">",
    "bigger than": ">",
    "larger than": ">",
    "exceeding": ">",
    "exceeds": ">",
    "exceed": ">",
    "in excess of": ">",
    "upwards of": ">",
    "north of": ">",
    ">": ">",
    "at least": ">=",
    "no less than": ">=",
    "not less than": ">=",
    "minimum of": ">=",
    "minimum": ">=",
    "min": ">=",
    ">=": ">=",
    "under": "<",
    "below": "<",
    "less than": "<",
    "lower than": "<",
    "fewer than": "<",
    "smaller than": "<",
    "beneath": "<",
    "<": "<",
    "at most": "<=",
    "no more than": "<=",
    "not more than": "<=",
    "maximum of": "<=",
    "maximum": "<=",
    "max": "<=",
    "up to": "<=",
    "<=": "<=",
}
OPERATOR_RX = "|".join(re.escape(p) for p in sorted(OPERATOR_PHRASES, key=len, reverse=True))

DIMENSION_WORDS: dict[str, str] = {
    "region": "region",
    "regions": "region",
    "segment": "segment",
    "segments": "segment",
    "cluster": "cluster",
    "clusters": "cluster",
    "owner": "owner",
    "owners": "owner",
    "account manager": "owner",
    "account managers": "owner",
    "manager": "owner",
    "managers": "owner",
    "sales rep": "owner",
    "sales reps": "owner",
    "rep": "owner",
    "reps": "owner",
    "company": "company",
    "companies": "company",
    "month": "month",
    "months": "month",
    "monthly": "month",
    "referrer": "referrer",
    "referrers": "referrer",
    "channel": "channel",
    "channels": "channel",
    "status": "status",
    "state": "status",
    "nps category": "nps_category",
    "nps categories": "nps_category",
    "nps group": "nps_category",
    "nps groups": "nps_category",
    "promoter category": "nps_category",
    "product": "product",
    "products": "product",
    "item": "product",
    "sku": "product",
    "category": "category",
    "categories": "category",
    "product category": "category",
    "product categories": "category",
}
DIMENSION_RX = "|".join(re.escape(p) for p in sorted(DIMENSION_WORDS, key=len, reverse=True))

# ---------------------------------------------------------------------------------------
# Numbers, units and dates. Like the *_RX alternations after the phrase tables, these are
# uncompiled building blocks that the rule patterns in `patterns` are assembled from.

# A number as people write it: 5000, 5,000, 5k, $2.5m, 50%, 0.5, "50 percent", "5 thousand".
NUMBER_RX = (
    r"[$€£]?(?:\d+(?:,\d{3})+|\d+)(?:\.\d+)?(?:k|m|mm|bn|b|%)?"
    r"(?: (?:percent|pct|thousand|million|k|%|dollars|usd|eur|euros))?"
)
UNIT_RX = r"(?:days?|weeks?|months?|years?|d|wks?|mos?|yrs?)"

MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name} | {
    name.lower(): number for number, name in enumerate(calendar.month_abbr) if name
}
MONTHS["sept"] = 9
MONTH_RX = "|".join(sorted(MONTHS, key=len, reverse=True))
PERIOD_RX = r"(?:week|month|quarter|year)"
# A date phrase that can follow "since", "before", "between"...
DATE_RX = (
    r"(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)? (?:of )?(?:{MONTH_RX})(?: \d{{4}})?"
    rf"|(?:{MONTH_RX}) \d{{1,2}}(?:st|nd|rd|th)?(?: \d{{4}})?"
    rf"|(?:{MONTH_RX})(?: \d{{4}})?"
    r"|q[1-4](?: \d{4})?|(?:19|20)\d{2}"
    rf"|(?:the )?(?:last|this|previous|past|current) {PERIOD_RX}"
    r"|yesterday|today"
    rf"|(?:a|an|\d+|{NUMBER_WORD_RX}) {UNIT_RX} ago"
    rf"|the (?:start|beginning) of (?:the |this )?{PERIOD_RX})"
)

# ---------------------------------------------------------------------------------------
# Typo correction

# Every word a rule may look for: the lexicon typos are corrected against.
KEYWORDS = frozenset(
    w
    for phrase in [
        *MEASURE_PHRASES,
        *OPERATOR_PHRASES,
        *DIMENSION_WORDS,
        *MONTHS,
        *CUSTOMER_WORDS,
        *ORDER_NOUNS,
        *NUMBER_WORDS,
        "top best biggest largest highest lowest bottom worst smallest least most first",
        "average avg mean median total sum combined overall count number how many much",
        "compare comparison versus breakdown broken down split grouped group each every per",
        "moved move moving migrated dropped fell slipped went shifted changed became "
        "become turned entered into from since before after until between during ago",
        "referred referrer referrers referral referrals refer",
        "offer sell recommend pitch propose suggest upsell cross next product products",
        "order ordered ordering bought purchased buy inactive dormant active signed joined",
        "valuable riskiest risky likely happiest unhappy unhappiest satisfied dissatisfied "
        "unsatisfied happy spenders sorted ranked ordered",
        "last this previous past current quarter week month year yesterday today days weeks "
        "months years revenue sales turnover",
        "high low elevated poor good bad new signups",
        "ticket tickets support case cases open unresolved outstanding pending closed resolved "
        "solved complaints priority",
        "promoter promoters passive passives detractor detractors nps csat sentiment "
        "negative positive survey surveys feedback",
        "product products units sold selling sellers bestsellers catalogue category",
        "excluding except without outside never other apart versus compared against "
        "arent isnt werent wasnt besides havent hasnt didnt dont",
        "why reasons increased decreased rose risen rising fell dropped improved worsened",
    ]
    for w in phrase.split()
)
# English words close to a keyword that must stay what they are.
PROTECTED_WORDS = word_set("local lots cost post most mast loss lose host rose")
