"""A question in an account manager's words -> a `StructuredQuery`, or the words it could not
place.

How a question is read, in order (each step consumes the words it understands):

1. Normalise: Slack markup (``<@U123|maria>`` -> ``@maria``, ``<!channel>`` -> a word that
   is placed nowhere), HTML entities, odd Unicode, punctuation; split into words.
2. Correct typos word by word (rapidfuzz, Damerau-Levenshtein) against the keywords below
   and the words of the vocabulary — the database's segments, regions, companies, owners.
3. Phrase rules: "what should I offer ...", segment moves, referrals, thresholds ("churn
   risk over 50%", "more than 5 orders"), recency ("no order in 60 days"), dates ("since
   March", "this quarter", "in Q3"), grouping ("by region"), ranking ("top 10 ... by CLV").
4. Names: n-grams of the words left are fuzzily matched against the vocabulary.
5. Whatever is left that is not a filler word ("which", "the", "show me") is reported back:
   a question is answered only when every word was placed, so nothing is silently dropped.

Dates are relative to an injected `today`; see `resolve_date` for what each phrase means.
"""

from __future__ import annotations

import calendar
import html
import re
import threading
import unicodedata
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from rapidfuzz import fuzz, process
from rapidfuzz.distance import DamerauLevenshtein

from crmbot.analytics.segments import SEGMENT_ORDER
from crmbot.ask.query import (
    HIGH_CHURN_RISK,
    HIGH_SATISFACTION,
    LOW_CHURN_RISK,
    LOW_SATISFACTION,
    PROBABILITY_FIELDS,
    DateRange,
    StructuredQuery,
    Threshold,
)

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


# ---------------------------------------------------------------------------------------
# Words


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = _words(
    "a an the which what who whom whose are is was were be been being have has had having "
    "with in on at of for from to me show list give find get tell display please pls "
    "kindly all any some our us we i do does did that those these there their them they "
    "whats and or currently right now still also just only can could would should you "
    "your hey hi hello crm bot like about where whos whats its it by as into than then so "
    "many much how ask question let lets see view want need know whether same one ones "
    "here"
)
# Words that name the rows asked about; consumed once every rule has had its turn.
CUSTOMER_WORDS = _words(
    "customers customer clients client accounts account buyers buyer people folks users "
    "companies contacts"
)
ORDER_NOUNS = _words("orders order purchases purchase transactions transaction")
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
_NUMWORD = "|".join(sorted((w for w in NUMBER_WORDS if w not in ("a", "an")), key=len))

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
    "csat": "satisfaction",
    "happiness": "satisfaction",
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
_MEASURE = "|".join(re.escape(p) for p in sorted(MEASURE_PHRASES, key=len, reverse=True))
_LONG_MEASURES = [p for p in MEASURE_PHRASES if " " in p]

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
_OP = "|".join(re.escape(p) for p in sorted(OPERATOR_PHRASES, key=len, reverse=True))
# A number as people write it: 5000, 5,000, 5k, $2.5m, 50%, 0.5, "50 percent", "5 thousand".
_NUM = (
    r"[$€£]?(?:\d+(?:,\d{3})+|\d+)(?:\.\d+)?(?:k|m|mm|bn|b|%)?"
    r"(?: (?:percent|pct|thousand|million|k|%|dollars|usd|eur|euros))?"
)
_NUMBER = re.compile(
    r"^(?P<cur>[$€£])?(?P<num>(?:\d+(?:,\d{3})+|\d+)(?:\.\d+)?)(?P<suf>k|m|mm|bn|b|%)?"
    r"(?: (?P<word>percent|pct|thousand|million|k|%|dollars|usd|eur|euros))?$"
)
_UNIT = r"(?:days?|weeks?|months?|years?|d|wks?|mos?|yrs?)"

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
}
_DIM = "|".join(re.escape(p) for p in sorted(DIMENSION_WORDS, key=len, reverse=True))

MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name} | {
    name.lower(): number for number, name in enumerate(calendar.month_abbr) if name
}
MONTHS["sept"] = 9
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_PERIOD = r"(?:week|month|quarter|year)"
# A date phrase that can follow "since", "before", "between"...
_DATE = (
    r"(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)? (?:of )?(?:{_MONTH})(?: \d{{4}})?"
    rf"|(?:{_MONTH}) \d{{1,2}}(?:st|nd|rd|th)?(?: \d{{4}})?"
    rf"|(?:{_MONTH})(?: \d{{4}})?"
    r"|q[1-4](?: \d{4})?|(?:19|20)\d{2}"
    rf"|(?:the )?(?:last|this|previous|past|current) {_PERIOD}"
    r"|yesterday|today"
    rf"|(?:a|an|\d+|{_NUMWORD}) {_UNIT} ago"
    rf"|the (?:start|beginning) of (?:the |this )?{_PERIOD})"
)

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
    ]
    for w in phrase.split()
)
# English words close to a keyword that must stay what they are.
PROTECTED_WORDS = _words("local lots cost post most mast loss lose host rose")


@dataclass
class _Token:
    raw: str
    low: str
    used: bool = False


class _Sentence:
    """The question's words, with which of them a rule has already placed."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens

    def text(self) -> tuple[str, list[tuple[int, int]]]:
        # Placed words become "|" so that no later pattern can match across them.
        parts: list[str] = []
        spans: list[tuple[int, int]] = []
        offset = 0
        for token in self.tokens:
            word = "|" if token.used else token.low
            spans.append((offset, offset + len(word)))
            parts.append(word)
            offset += len(word) + 1
        return " ".join(parts), spans

    def find(self, pattern: re.Pattern[str]) -> list[tuple[re.Match[str], list[int]]]:
        text, spans = self.text()
        found = []
        for match in pattern.finditer(text):
            if match.end() == match.start():
                continue
            indices = self._indices(spans, match.start(), match.end())
            if indices and not any(self.tokens[i].used for i in indices):
                found.append((match, indices))
        return found

    def first(self, pattern: re.Pattern[str]) -> tuple[re.Match[str], list[int]] | None:
        matches = self.find(pattern)
        return matches[0] if matches else None

    def group_indices(self, match: re.Match[str], group: str) -> list[int]:
        if match.start(group) < 0:
            return []
        _text, spans = self.text()
        return self._indices(spans, match.start(group), match.end(group))

    def raw(self, indices: Iterable[int]) -> str:
        return " ".join(self.tokens[i].raw for i in indices)

    @staticmethod
    def _indices(spans: list[tuple[int, int]], start: int, end: int) -> list[int]:
        return [i for i, (s, e) in enumerate(spans) if s < end and e > start]

    def consume(self, indices: Iterable[int]) -> None:
        for i in indices:
            self.tokens[i].used = True

    def unused(self) -> list[int]:
        return [i for i, token in enumerate(self.tokens) if not token.used]

    def has(self, words: Iterable[str]) -> bool:
        wanted = set(words)
        return any(t.low in wanted for t in self.tokens)


# ---------------------------------------------------------------------------------------
# Normalising


_SLACK_MARKUP = re.compile(r"<([^<>]{0,200})>")


def normalize_phrase(text: str) -> str:
    """The form names and questions are compared in: lower case, plain words."""
    return " ".join(token.low for token in _tokenize(text, mentions={}))


def _slack_markup(text: str, mentions: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        if inner.startswith("@"):
            user_id, _, label = inner[1:].partition("|")
            name = re.sub(r"\W+", "", label) or user_id
            mentions[name.lower()] = user_id
            return f" @{name} "
        if inner.startswith("!"):
            # <!channel>, <!here>, <!subteam^S1|team>: never placed, never echoed as markup.
            word = re.sub(r"\W+", "", inner[1:].split("|")[0].split("^")[0])
            return f" !{word or 'mention'} "
        if inner.startswith("#"):
            label = re.sub(r"[^\w-]+", "", inner.partition("|")[2] or inner[1:])
            return f" #{label} "
        if "|" in inner:
            return f" {inner.partition('|')[2]} "
        return f" {inner} "

    return _SLACK_MARKUP.sub(replace, text)


def _tokenize(text: str, mentions: dict[str, str]) -> list[_Token]:
    text = unicodedata.normalize("NFKC", text)
    # Control and invisible format characters (zero-width joiners, bidi overrides) go.
    text = "".join(
        ch if unicodedata.category(ch)[0] != "C" else " " for ch in text if ch != "\u00ad"
    )
    text = _slack_markup(text, mentions)
    text = html.unescape(text)
    text = _SLACK_MARKUP.sub(lambda m: f" {m.group(1)} ", text)
    for old, new in {
        "\u2019": "'",
        "\u2018": "'",
        "\u02bc": "'",
        "`": "'",
        "\u2265": ">=",
        "\u2264": "<=",
        "\u2013": " - ",
        "\u2014": " - ",
    }.items():
        text = text.replace(old, new)
    text = re.sub(r"(>=|<=|[<>])", r" \1 ", text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "\x01", text)  # thousands separators survive
    text = re.sub(r"(?<=\d)\.(?=\d)", "\x02", text)  # decimal points survive
    text = re.sub(r"(?<=\d)/(?=\d)", "\x03", text)  # 15/03/2026
    text = re.sub(r"(?<=\d)-(?=\d)", "\x04", text)  # 2026-03-15
    text = re.sub(r"'s\b", " 's", text)  # maria's -> maria 's
    text = re.sub(r"(?<=\w)'(?=\w)", "", text)  # can't -> cant
    text = re.sub(r"(?<=\d)\s+%", "%", text)
    text = re.sub(r"([$€£])\s+(?=\d)", r"\1", text)
    text = re.sub(r"[^\w\s$€£%@#!<>=\x01\x02\x03\x04']", " ", text)
    text = text.replace("_", " ")
    text = text.replace("\x01", ",").replace("\x02", ".").replace("\x03", "/")
    text = text.replace("\x04", "-")
    tokens = []
    for word in text.split():
        word = word.strip("'") if word != "'s" else word
        if not word:
            continue
        # "p(alive)" and similar leave lone symbols; drop those.
        if re.fullmatch(r"[@#!$€£%]+", word):
            continue
        tokens.append(_Token(raw=word[:60], low=word.lower()[:60]))
    return tokens


# ---------------------------------------------------------------------------------------
# Numbers and dates


def parse_number(text: str) -> tuple[float, bool] | None:
    """ "5k" -> (5000, False); "50%" -> (50, True); "$2.5m" -> (2500000, False)."""
    match = _NUMBER.match(text.strip())
    if not match:
        return None
    value = float(match.group("num").replace(",", ""))
    suffix = (match.group("suf") or "") + (match.group("word") or "")
    percent = "%" in suffix or "percent" in suffix or "pct" in suffix
    if suffix.startswith("k") or "thousand" in suffix:
        value *= 1_000
    elif suffix.startswith(("m", "million")):
        value *= 1_000_000
    elif suffix.startswith("b"):
        value *= 1_000_000_000
    return value, percent


def _count(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    return NUMBER_WORDS.get(word)


def _to_days(amount: float, unit: str) -> float:
    unit = unit.lower()
    if unit.startswith("w"):
        return amount * 7
    if unit.startswith("mo") or unit == "months" or unit == "month":
        return amount * 30
    if unit.startswith("y"):
        return amount * 365
    return amount


def _field_value(field_name: str, value: float, percent: bool) -> float:
    """The stored scale: probabilities 0..1 ("over 50" means 50%), satisfaction 0..100."""
    if field_name in PROBABILITY_FIELDS:
        return value / 100 if (percent or value > 1) else value
    if field_name == "satisfaction" and not percent and 0 < value <= 1:
        return value * 100
    return value


def _add_months(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    return date(year, month + 1, 1)


def _quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


@dataclass(frozen=True)
class _Period:
    start: date
    end: date  # exclusive
    # The moment a relative phrase names ("last week" -> 7 days ago); "since" uses it.
    point: date


def resolve_date(phrase: str, today: date) -> _Period | None:
    """What a date phrase means relative to `today`.

    * "this week/month/quarter/year": from its first day up to today (Monday starts weeks).
    * "last/previous week/month/quarter/year": the whole previous calendar period; as a
      starting point ("since last week") it means that long ago: 7 days, a month, ...
    * "Q3", "March": the most recent one that has begun (this year's, else last year's);
      "Q3 2025", "March 2025" as said.
    * "2026-03-15", "15 March", "3 weeks ago", "yesterday": that day (dateparser).
    """
    phrase = phrase.strip().removeprefix("the ").strip()
    tomorrow = today + timedelta(days=1)
    relative = re.fullmatch(rf"(last|this|previous|past|current) ({_PERIOD})", phrase)
    if relative:
        which, period = relative.groups()
        if period == "week":
            start = today - timedelta(days=today.weekday())
            step = timedelta(days=7)
            if which == "this" or which == "current":
                return _Period(start, tomorrow, start)
            return _Period(start - step, start, today - step)
        if period == "month":
            start = today.replace(day=1)
            if which in ("this", "current"):
                return _Period(start, tomorrow, start)
            return _Period(_add_months(start, -1), start, _dateparser_point("1 month ago", today))
        if period == "quarter":
            start = _quarter_start(today)
            if which in ("this", "current"):
                return _Period(start, tomorrow, start)
            return _Period(_add_months(start, -3), start, _add_months(start, -3))
        start = date(today.year, 1, 1)
        if which in ("this", "current"):
            return _Period(start, tomorrow, start)
        return _Period(date(today.year - 1, 1, 1), start, _dateparser_point("1 year ago", today))
    start_of = re.fullmatch(rf"(?:start|beginning) of (?:the |this )?({_PERIOD})", phrase)
    if start_of:
        period_now = resolve_date(f"this {start_of.group(1)}", today)
        if period_now is None:  # pragma: no cover - "this <period>" always resolves
            return None
        return _Period(period_now.start, tomorrow, period_now.start)
    if phrase == "today":
        return _Period(today, tomorrow, today)
    if phrase == "yesterday":
        day = today - timedelta(days=1)
        return _Period(day, today, day)
    quarter = re.fullmatch(r"q([1-4])(?: (\d{4}))?", phrase)
    if quarter:
        number = int(quarter.group(1))
        year = int(quarter.group(2)) if quarter.group(2) else today.year
        start = date(year, 3 * number - 2, 1)
        if not quarter.group(2) and start > today:
            start = date(year - 1, 3 * number - 2, 1)
        return _Period(start, _add_months(start, 3), start)
    year_only = re.fullmatch(r"(?:19|20)\d{2}", phrase)
    if year_only:
        start = date(int(phrase), 1, 1)
        return _Period(start, date(start.year + 1, 1, 1), start)
    month_only = re.fullmatch(rf"({_MONTH})(?: (\d{{4}}))?", phrase)
    if month_only:
        month = MONTHS[month_only.group(1)]
        year = int(month_only.group(2)) if month_only.group(2) else today.year
        start = date(year, month, 1)
        if not month_only.group(2) and start > today:
            start = date(year - 1, month, 1)
        return _Period(start, _add_months(start, 1), start)
    ago = re.fullmatch(rf"(a|an|\d+|{_NUMWORD}) ({_UNIT}) ago", phrase)
    if ago:
        amount = _count(ago.group(1)) or 1
        unit = _full_unit(ago.group(2))
        point = _dateparser_point(f"{amount} {unit} ago", today)
        return _Period(point, point + timedelta(days=1), point)
    named_day = _dateparser_day(phrase, today)
    if named_day is None:
        return None
    return _Period(named_day, named_day + timedelta(days=1), named_day)


def _full_unit(unit: str) -> str:
    unit = unit.lower()
    if unit.startswith("w"):
        return "weeks"
    if unit.startswith("mo"):
        return "months"
    if unit.startswith("y"):
        return "years"
    return "days"


def _dateparser_day(phrase: str, today: date) -> date | None:
    import dateparser

    settings: Any = {
        "RELATIVE_BASE": datetime(today.year, today.month, today.day),
        "PREFER_DATES_FROM": "past",
        "RETURN_AS_TIMEZONE_AWARE": False,
        "DATE_ORDER": "DMY",
    }
    parsed = dateparser.parse(phrase, languages=["en"], settings=settings)
    return parsed.date() if parsed else None


def _dateparser_point(phrase: str, today: date) -> date:
    day = _dateparser_day(phrase, today)
    if day is None:  # pragma: no cover - dateparser understands every phrase passed here
        raise ValueError(f"cannot resolve {phrase!r}")
    return day


# ---------------------------------------------------------------------------------------
# Matching names


def _aliases(segment: str) -> set[str]:
    base = normalize_phrase(segment)
    found = {base}
    words = base.split()
    if words and words[-1].endswith("s") and len(words[-1]) > 3:
        found.add(" ".join([*words[:-1], words[-1][:-1]]))
    if base == "need attention":
        found.add("needs attention")
    if base == "cant lose them":
        found |= {"cant lose", "cannot lose them", "cannot lose"}
    if base == "about to sleep":
        found.add("sleeping")
    if base == "hibernating":
        found.add("hibernate")
    if base == "prospects":
        found.add("prospect")
    if base == "potential loyalists":
        found.add("potential loyal")
    return found


# Words in company names that say nothing about which company is meant.
_GENERIC_NAME_WORDS = _words(
    "inc ltd llc plc gmbh ag sa co corp corporation company group the and of holdings "
    "limited partners international global solutions services"
)


@dataclass(frozen=True)
class _Entry:
    kind: str  # segment | region | company | owner | cluster | customer
    value: str  # the canonical value (segment name, region, customer_id...)
    phrase: str  # the normalised phrase matched against


class _Matcher:
    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        entries: list[_Entry] = []
        for segment in vocab.segments:
            entries += [_Entry("segment", segment, alias) for alias in _aliases(segment)]
        entries += [_Entry("region", r, normalize_phrase(r)) for r in vocab.regions]
        entries += [_Entry("owner", o, normalize_phrase(o)) for o in vocab.owners]
        entries += [_Entry("company", c, normalize_phrase(c)) for c in vocab.companies]
        entries += [
            _Entry("cluster", str(number), normalize_phrase(label))
            for number, label in vocab.clusters.items()
            if label
        ]
        self.entries = [e for e in entries if e.phrase]
        self.by_phrase: dict[str, list[_Entry]] = {}
        for entry in self.entries:
            self.by_phrase.setdefault(entry.phrase, []).append(entry)
        self.phrases = list(self.by_phrase)
        # Single distinctive words of multi-word names: "acme" -> "Acme Corp".
        self.by_word: dict[str, list[_Entry]] = {}
        for entry in self.entries:
            if entry.kind in ("company", "owner", "region") and " " in entry.phrase:
                for word in entry.phrase.split():
                    if word not in _GENERIC_NAME_WORDS and word not in STOPWORDS and len(word) > 2:
                        self.by_word.setdefault(word, []).append(entry)
        self.customer_names: dict[str, list[str]] = {}
        for customer_id, name in vocab.customers.items():
            if name:
                self.customer_names.setdefault(normalize_phrase(name), []).append(customer_id)
        self.customer_ids = {cid.lower(): cid for cid in vocab.customers}
        # Typos are corrected towards words that mean something, never towards filler
        # words: "world" must not quietly become "would".
        self.lexicon = sorted(
            (_keywords() - STOPWORDS)
            | {w for p in self.phrases for w in p.split()}
            | set(self.by_word)
            | {w for name in self.customer_names for w in name.split()}
        )
        self.lexicon_set = frozenset(self.lexicon)

    def correct(self, word: str) -> str:
        """The keyword or name `word` is most likely a typo of, or `word` itself."""
        if (
            len(word) < 4
            or word in self.lexicon_set
            or word in STOPWORDS
            or word in PROTECTED_WORDS
            or not word.isalpha()
        ):
            return word
        max_distance = 1 if len(word) < 8 else 2
        best = process.extractOne(
            word,
            self.lexicon,
            scorer=DamerauLevenshtein.distance,
            score_cutoff=max_distance,
        )
        return best[0] if best else word

    def best(self, phrase: str, kinds: tuple[str, ...] | None = None) -> list[_Entry]:
        """The entries `phrase` names (ties included), or [] when none is close enough."""
        if not phrase or all(w in STOPWORDS for w in phrase.split()):
            return []
        exact = self.by_phrase.get(phrase, [])
        if not exact and " " not in phrase:
            exact = self.by_word.get(phrase, [])
        if exact:
            return [e for e in exact if kinds is None or e.kind in kinds]
        if len(phrase) < 5:
            return []
        if " " not in phrase and self.by_word:
            # One distinctive word of a longer name, misspelt or plural: "cafes" -> "cafe".
            word = process.extractOne(
                phrase, list(self.by_word), scorer=fuzz.ratio, score_cutoff=88
            )
            if word:
                return [e for e in self.by_word[word[0]] if kinds is None or e.kind in kinds]
        cutoff = 85 if len(phrase) < 8 else 88
        candidates = process.extract(
            phrase, self.phrases, scorer=fuzz.ratio, score_cutoff=cutoff, limit=5
        )
        if not candidates:
            return []
        top = candidates[0][1]
        found = [e for c in candidates if c[1] == top for e in self.by_phrase[c[0]]]
        return [e for e in found if kinds is None or e.kind in kinds]

    def owner(self, name: str, mentions: Mapping[str, str]) -> list[str]:
        """Owners `name` ("maria", "@maria", a Slack id) refers to."""
        name = name.lstrip("@").lower()
        owners = self.vocab.owners
        user_id = mentions.get(name)
        for candidate in (user_id, name):
            if candidate:
                exact = [o for o in owners if o.lower() == candidate.lower()]
                if exact:
                    return exact
        words = {o: normalize_phrase(o).split() for o in owners}
        by_word = [o for o, ws in words.items() if name in ws]
        if by_word:
            return by_word
        if len(name) < 4:
            return []
        scored = [
            (max([fuzz.ratio(name, normalize_phrase(o))] + [fuzz.ratio(name, w) for w in ws]), o)
            for o, ws in words.items()
        ]
        best = max((s for s, _ in scored), default=0)
        return [o for s, o in scored if s == best and s >= 80]

    def customer(self, ref: str) -> tuple[str | None, str | None]:
        """(customer_id, None) when `ref` is a known id or name; (None, name) to look up."""
        ref = ref.strip().lstrip("#")
        if ref.lower() in self.customer_ids:
            return self.customer_ids[ref.lower()], None
        phrase = normalize_phrase(ref)
        if phrase in self.customer_names and len(self.customer_names[phrase]) == 1:
            return self.customer_names[phrase][0], None
        if self.customer_names and len(phrase) >= 4:
            best = process.extractOne(
                phrase, list(self.customer_names), scorer=fuzz.ratio, score_cutoff=88
            )
            if best and len(self.customer_names[best[0]]) == 1:
                return self.customer_names[best[0]][0], None
        if re.fullmatch(r"[\w-]*\d[\w-]*", ref):
            return ref, None  # an id we have not seen: the query says it is not found
        return None, ref


_MATCHERS: weakref.WeakKeyDictionary[Vocabulary, _Matcher] = weakref.WeakKeyDictionary()
_MATCHERS_LOCK = threading.Lock()


def _matcher_for(vocab: Vocabulary) -> _Matcher:
    with _MATCHERS_LOCK:
        matcher = _MATCHERS.get(vocab)
    if matcher is None:
        matcher = _Matcher(vocab)
        with _MATCHERS_LOCK:
            _MATCHERS[vocab] = matcher
    return matcher


# ---------------------------------------------------------------------------------------
# The parser


def _rx(pattern: str) -> re.Pattern[str]:
    compiled = re.compile(rf"(?<![\w|])(?:{pattern})(?![\w])")
    _PATTERNS.append(compiled)
    return compiled


# Every pattern a rule uses; their words join the lexicon typos are corrected against.
_PATTERNS: list[re.Pattern[str]] = []


_OFFER = [
    re.compile(
        r"^(?:so )?(?:(?:what|which|wat|wht|whta)(?: (?:products?|items?|things?|else))? )?"
        r"(?:should|could|can|shall|would|do|might) (?:i|we)"
        r" (?:offer|sell|recommend|pitch|propose|suggest|upsell|cross sell)"
        r"(?: to)? (?P<ref>.+?)(?: next| now| today)?$"
    ),
    re.compile(
        r"^(?:(?:the )?next best (?:products?|offers?)|next (?:products?|offers?)"
        r"|recommended products?|product recommendations?|recommendations?|offers?"
        r"|upsell|cross sell|what to offer|what to sell)"
        r" (?:for|to) (?P<ref>.+)$"
    ),
]
_CUSTOMER_REF = _rx(r"(?:customer|client|account) (?:id |number |no |nr )?#?(?P<id>[\w-]*\d[\w-]*)")
_MOVE_VERB = _rx(
    r"(?:moved|move|moving|migrated|migrate|dropped|drop|fell|fallen|falling|slipped|slid"
    r"|went|gone|shifted|changed|became|become|becoming|turned|entered|downgraded|upgraded"
    r"|transitioned)"
)
_REFERRALS = [
    (
        _rx(
            r"who (?:has |have )?referred (?:the )?most(?: (?:new )?(?:customers|clients|"
            r"accounts|people|referrals|buyers))?"
        ),
        "top",
    ),
    (
        _rx(
            r"(?:who|which customers) (?:brought|brought in) (?:the )?most(?: (?:new )?"
            r"(?:customers|clients|accounts|people|referrals))?"
        ),
        "top",
    ),
    (_rx(r"(?:most|top) referrals?"), "top"),
    (_rx(r"referred (?:the )?most(?: (?:new )?(?:customers|clients|accounts|people))?"), "top"),
    (_rx(r"referrers?"), "top"),
    (
        _rx(
            r"(?:new )?(?:customers|clients|accounts) (?:were |got |who were |that were )?referred"
        ),
        "list",
    ),
    (_rx(r"referrals?"), "list"),
]
_THRESHOLD_A = _rx(
    rf"(?P<m>{_MEASURE})(?: (?:score|rate|value))?(?: (?:is|are|was|were|of|at|that is))?"
    rf" (?P<op>{_OP}) (?P<n>{_NUM})(?: (?P<unit>{_UNIT}))?"
)
_THRESHOLD_B = _rx(
    rf"(?P<op>{_OP}) (?P<n>{_NUM})(?: (?P<unit>{_UNIT}))?(?: (?:in|of|on|for))? (?P<m>{_MEASURE})"
)
_THRESHOLD_OR_MORE = _rx(
    rf"(?P<n>{_NUM}) or (?P<dir>more|above|higher|over|less|fewer|below|lower|under)"
    rf" (?P<m>{_MEASURE})"
)
_THRESHOLD_M_OR_MORE = _rx(
    rf"(?P<m>{_MEASURE})(?: (?:of|is|at))? (?P<n>{_NUM}) or"
    rf" (?P<dir>more|above|higher|over|less|fewer|below|lower|under)"
)
_BETWEEN_A = _rx(
    rf"(?P<m>{_MEASURE})(?: (?:is|of))? between (?P<a>{_NUM}) (?:and|to) (?P<b>{_NUM})"
)
_BETWEEN_B = _rx(
    rf"between (?P<a>{_NUM}) (?:and|to) (?P<b>{_NUM}) (?:(?:in|of) )?(?P<m>{_MEASURE})"
)
_QUALITATIVE: list[tuple[re.Pattern[str], Threshold]] = [
    (
        _rx(r"(?:high|elevated|big|large|serious) (?:churn risk|risk of churn|churn|risk)"),
        Threshold("churn_risk", ">=", HIGH_CHURN_RISK),
    ),
    (_rx(r"likely to (?:churn|leave)"), Threshold("churn_risk", ">=", HIGH_CHURN_RISK)),
    (
        _rx(r"low (?:churn risk|risk of churn|churn|risk)"),
        Threshold("churn_risk", "<", LOW_CHURN_RISK),
    ),
    (
        _rx(r"(?:low|poor|bad) (?:satisfaction|csat)|unhappy|dissatisfied|unsatisfied"),
        Threshold("satisfaction", "<", LOW_SATISFACTION),
    ),
    (
        _rx(r"(?:high|good|great) (?:satisfaction|csat)|happy|satisfied"),
        Threshold("satisfaction", ">=", HIGH_SATISFACTION),
    ),
]
_ORDER_WORD = r"(?:orders?|purchases?|sales?|buys?|transactions?)"
_NOT_ORDERED = (
    r"(?:have not|havent|hasnt|has not|did not|didnt|dont|do not|not|never)"
    r" (?:ordered|bought|purchased|placed an order|made a purchase|been active|ordered anything"
    r"|bought anything|purchased anything)"
)
_SPAN = (
    rf"(?:the )?(?:last |past )?(?:(?:more than|over) )?"
    rf"(?P<n>\d+|{_NUMWORD}|a|an)? ?(?P<unit>{_UNIT})"
)
_RECENCY_OVER = [
    _rx(
        rf"(?:with )?(?:no|without(?: an?| any)?|zero|not a single|not any) {_ORDER_WORD}"
        rf"(?: placed)? (?:in|for|within|over|during) {_SPAN}"
    ),
    _rx(rf"(?:who |that )?{_NOT_ORDERED} (?:in|for|within|over|during) {_SPAN}"),
    _rx(rf"(?:inactive|dormant|quiet|silent) (?:for|in|over|during) {_SPAN}"),
    _rx(rf"(?:last (?:order|purchase)|last ordered|last bought)(?: was)? {_SPAN} ago"),
]
_RECENCY_WITHIN = _rx(
    rf"(?:who |that )?(?:ordered|bought|purchased|were active|active|placed an order"
    rf"|made a purchase) (?:in|within|during) (?:the )?(?:last|past) {_SPAN}"
)
_NO_ORDERS_EVER = _rx(rf"(?:with )?(?:no|without(?: any)?|zero|never placed an?) {_ORDER_WORD}")
_AOV = _rx(
    r"(?:average|avg|mean|typical) (?:order|basket|purchase|deal|ticket) (?:value|size|amount"
    r"|total)s?|aov|order values?|order sizes?|order amounts?|basket sizes?"
)
_REVENUE = _rx(r"revenue|sales|turnover|takings|income")
_COUNT = _rx(r"how many|number of|count of|count|total number of|how much")
_AVG = _rx(r"average|avg|mean|typical")
_SUM = _rx(r"total|sum of|sum|combined|overall|altogether")
_COMPARE = _rx(r"compare|comparison of|comparing|contrast|chart|plot|graph")
_GROUP = _rx(
    rf"(?:grouped by|broken down by|break down by|breakdown by|split by|by|per|for each"
    rf"|for every|in each|across|across all|among|between|each) (?:the |all )?(?P<dim>{_DIM})"
)
_WHICH_GROUP = _rx(
    rf"(?:which|what) (?P<dim>{_DIM}) (?:has|have|had|is|with|shows?|gets?) (?:the )?"
    rf"(?P<dir>highest|most|lowest|least|biggest|largest|smallest|best|worst|top)"
)
_TOP_N = _rx(rf"(?:the )?(?:top|best|biggest|largest|highest|first|leading) (?P<n>\d+|{_NUMWORD})")
_BOTTOM_N = _rx(rf"(?:the )?(?:bottom|worst|lowest|smallest|least) (?P<n>\d+|{_NUMWORD})")
_TOP = _rx(r"(?:the )?top")
_N_MOST = _rx(rf"(?P<n>\d+|{_NUMWORD})(?= (?:most|least|riskiest|biggest|largest|happiest))")
_SUPERLATIVES: list[tuple[re.Pattern[str], str, bool]] = [
    (_rx(r"most valuable|highest value|biggest value"), "clv", True),
    (_rx(r"least valuable|lowest value"), "clv", False),
    (
        _rx(r"riskiest|most risky|most at risk|most likely to churn|highest risk"),
        "churn_risk",
        True,
    ),
    (
        _rx(r"least risky|least at risk|least likely to churn|lowest risk|safest"),
        "churn_risk",
        False,
    ),
    (
        _rx(
            r"(?:biggest|top|highest|largest) spenders"
            r"|spent the most|spend the most|spends the most"
        ),
        "total_spend",
        True,
    ),
    (_rx(r"most influential|top influencers|biggest influencers|influencers"), "influence", True),
    (_rx(r"happiest|most satisfied|most happy"), "satisfaction", True),
    (
        _rx(r"unhappiest|least satisfied|least happy|most unhappy|most dissatisfied"),
        "satisfaction",
        False,
    ),
    (
        _rx(r"ordered the most|order the most|most orders|bought the most|most frequent"),
        "orders_count",
        True,
    ),
]
_SORT_BY = _rx(
    rf"(?:sorted|ranked|ordered|sort|rank|order) by (?:the )?(?:(?P<dir>highest|lowest) )?"
    rf"(?P<m>{_MEASURE})(?: (?P<dir2>ascending|descending|asc|desc))?"
)
_WITH_THE = _rx(
    rf"(?:with|by|having|has|have) (?:the )?(?P<dir>highest|most|lowest|least|biggest|largest"
    rf"|smallest|best|worst|greatest|top) (?P<m>{_MEASURE})"
)
_DIR_MEASURE = _rx(rf"(?P<dir>highest|lowest|biggest|largest|smallest|greatest) (?P<m>{_MEASURE})")
_BY_MEASURE = _rx(rf"by (?:their |the )?(?P<m>{_MEASURE})")
_DATE_BETWEEN = _rx(
    rf"(?:between|from) (?P<a>{_DATE}) (?:and|to|until|till|through|-) (?P<b>{_DATE})"
)
_DATE_SINCE = _rx(rf"(?P<kw>since|after|from|starting|beginning) (?P<a>{_DATE})")
_DATE_BEFORE = _rx(rf"(?P<kw>before|until|till|up to|through|prior to) (?P<a>{_DATE})")
_DATE_LAST_N = _rx(
    rf"(?:in |during |over |within )?(?:the )?(?:last|past|previous)"
    rf" (?P<n>\d+|{_NUMWORD}) (?P<unit>{_UNIT})"
)
_DATE_PERIOD = _rx(
    rf"(?:in |during |for |over )?(?P<a>(?:the )?(?:last|this|previous|past|current) {_PERIOD}"
    rf"|yesterday|today|ytd|year to date|qtd|quarter to date|mtd|month to date"
    rf"|q[1-4](?: \d{{4}})?)"
)
_DATE_YEAR = _rx(r"(?:in|during|for|of) (?P<a>(?:19|20)\d{2})")
_DATE_MONTH = _rx(rf"(?:in|during|for|of) (?P<a>(?:{_MONTH})(?: \d{{4}})?)")
_DATE_MONTH_YEAR = _rx(rf"(?P<a>(?:{_MONTH}) \d{{4}})")
_SIGNED_UP = _rx(
    r"new (?:customers|clients|accounts|signups|sign ups)|signed up|signups|sign ups|joined"
    r"|onboarded|acquired|registered|new"
)
_OWNER_MENTION = _rx(r"@(?P<name>[\w.-]+)")
_OWNER_POSSESSIVE = _rx(r"(?P<name>[\w.-]+(?: [\w.-]+)?) 's")
_OWNER_BY = _rx(
    r"(?:owned|managed|handled|run|looked after|covered) by (?P<name>[\w.-]+(?: [\w.-]+)?)"
)
_OWNER_OF = _rx(
    r"(?:customers|accounts|clients|book|portfolio) (?:of|for) (?P<name>[\w.-]+(?: [\w.-]+)?)"
)
_MINE = _rx(r"my (?:customers|accounts|clients|book|portfolio)|my|mine")
_CLUSTER = _rx(r"cluster (?:#|no |number )?(?P<n>\d+)")
_SEGMENT_PHRASE_WORDS = 4


def _keywords() -> frozenset[str]:
    global _KEYWORD_CACHE
    if _KEYWORD_CACHE is None:
        from_patterns = {
            word
            for pattern in [*_PATTERNS, *_OFFER]
            for word in re.findall(r"(?<![\\?])\b[a-z]{3,}\b", pattern.pattern)
        }
        _KEYWORD_CACHE = KEYWORDS | from_patterns
    return _KEYWORD_CACHE


_KEYWORD_CACHE: frozenset[str] | None = None


@dataclass
class _State:
    today: date
    askers: tuple[str, ...]
    matcher: _Matcher
    mentions: dict[str, str]
    entity: str | None = None
    weak_orders: bool = False
    metric: str | None = None
    measure: str | None = None
    segments: list[str] = field(default_factory=list)
    from_segments: list[str] = field(default_factory=list)
    clusters: list[int] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    companies: list[str] = field(default_factory=list)
    customer: str | None = None
    customer_name: str | None = None
    thresholds: list[Threshold] = field(default_factory=list)
    date_range: DateRange | None = None
    date_field: str | None = None
    group_by: str | None = None
    sort: str | None = None
    descending: bool = True
    limit: int | None = None
    chart: bool = False
    problems: list[str] = field(default_factory=list)

    @staticmethod
    def add(values: list[str], new: Iterable[str]) -> None:
        for value in new:
            if value not in values:
                values.append(value)


def parse_question(
    question: str,
    vocab: Vocabulary,
    *,
    today: date,
    askers: Iterable[str] = (),
) -> ParseResult:
    """Read `question`; `askers` are who is asking (Slack user id, email), for "my
    customers": the owners among them are the asker's book."""
    question = question[: MAX_QUESTION_CHARS * 2]
    mentions: dict[str, str] = {}
    tokens = _tokenize(question, mentions)
    matcher = _matcher_for(vocab)
    if not tokens:
        return ParseResult(None, (), ("ask a question, e.g. `champions in EMEA with CLV over 5k`",))
    sentence = _Sentence(tokens)
    state = _State(
        today=today,
        askers=tuple(a.lower() for a in askers if a),
        matcher=matcher,
        mentions=mentions,
    )

    if _offer(sentence, state):
        return _finish(sentence, state)
    for token in tokens:
        if not token.low.startswith(("@", "!", "#")):
            token.low = matcher.correct(token.low)
    if _offer(sentence, state):
        return _finish(sentence, state)
    _customer_ref(sentence, state)
    _segment_moves(sentence, state)
    _thresholds(sentence, state)
    _recency(sentence, state)
    _referrals(sentence, state)
    _owners(sentence, state)
    _dates(sentence, state)
    _orders(sentence, state)
    _grouping(sentence, state)
    _ranking(sentence, state)
    _metrics(sentence, state)
    _long_measures(sentence, state)
    _names(sentence, state)
    _short_measures(sentence, state)
    _entity_words(sentence, state)
    return _finish(sentence, state)


def _offer(sentence: _Sentence, state: _State) -> bool:
    for pattern in _OFFER:
        found = sentence.first(pattern)
        if found is None:
            continue
        match, _indices = found
        ref_indices = [
            i
            for i in sentence.group_indices(match, "ref")
            if sentence.tokens[i].low not in {"customer", "client", "account", "the", "our", "my"}
        ]
        ref = sentence.raw(ref_indices).lstrip("#")
        if not ref:
            return False
        state.entity = "offer"
        state.customer, state.customer_name = state.matcher.customer(ref)
        sentence.consume(range(len(sentence.tokens)))
        return True
    return False


def _customer_ref(sentence: _Sentence, state: _State) -> None:
    found = sentence.first(_CUSTOMER_REF)
    if found:
        match, indices = found
        state.customer, state.customer_name = state.matcher.customer(
            sentence.raw(sentence.group_indices(match, "id"))
        )
        sentence.consume(indices)


def _segment_at(sentence: _Sentence, start: int, matcher: _Matcher) -> tuple[list[str], int]:
    """Segment names that the words from `start` begin with; (names, words used)."""
    tokens = sentence.tokens
    if start < len(tokens) and tokens[start].low == "the":
        names, used = _segment_at(sentence, start + 1, matcher)
        return names, used + 1 if names else 0
    for size in range(_SEGMENT_PHRASE_WORDS, 0, -1):
        window = tokens[start : start + size]
        if len(window) < size or any(t.used for t in window):
            continue
        phrase = " ".join(t.low for t in window)
        entries = matcher.best(phrase, ("segment",))
        if entries:
            return sorted({e.value for e in entries}), size
    return [], 0


def _segment_moves(sentence: _Sentence, state: _State) -> None:
    found = sentence.first(_MOVE_VERB)
    if found is None:
        return
    _match, verb_indices = found
    i = verb_indices[-1] + 1
    consumed = list(verb_indices)
    tokens = sentence.tokens
    moved = False
    while i < len(tokens):
        word = tokens[i].low
        if word in ("from", "out") or (word == "of" and i > 0 and tokens[i - 1].low == "out"):
            names, size = _segment_at(sentence, i + 1, state.matcher)
            if names:
                state.add(state.from_segments, names)
                consumed += list(range(i, i + 1 + size))
                i += 1 + size
                moved = True
                continue
            if word == "out":
                consumed.append(i)
                i += 1
                continue
            break
        if word in ("to", "into", "in"):
            nxt = i + 1
            if word == "in" and nxt < len(tokens) and tokens[nxt].low == "to":
                nxt += 1
            names, size = _segment_at(sentence, nxt, state.matcher)
            if names:
                state.add(state.segments, names)
                consumed += list(range(i, nxt + size))
                i = nxt + size
                moved = True
                continue
            break
        names, size = _segment_at(sentence, i, state.matcher)
        if names and tokens[verb_indices[0]].low in ("became", "become", "becoming", "turned"):
            state.add(state.segments, names)
            consumed += list(range(i, i + size))
            i += size
            moved = True
            continue
        break
    if moved or tokens[verb_indices[0]].low in ("moved", "changed", "migrated", "shifted"):
        state.entity = "segment_moves"
        sentence.consume(consumed)
        if i < len(tokens) and tokens[i].low == "segments":
            sentence.consume([i])


def _threshold_value(state: _State, measure: str, number: str, unit: str | None) -> float | None:
    parsed = parse_number(number)
    if parsed is None:
        return None
    value, percent = parsed
    field_name = MEASURE_PHRASES[measure]
    if field_name == "recency_days" and unit:
        value = _to_days(value, unit)
    return _field_value(field_name, value, percent)


def _thresholds(sentence: _Sentence, state: _State) -> None:
    for pattern in (_BETWEEN_A, _BETWEEN_B):
        for match, indices in sentence.find(pattern):
            low = _threshold_value(state, match.group("m"), match.group("a"), None)
            high = _threshold_value(state, match.group("m"), match.group("b"), None)
            if low is None or high is None:
                continue
            field_name = MEASURE_PHRASES[match.group("m")]
            low, high = min(low, high), max(low, high)
            state.thresholds += [
                Threshold(field_name, ">=", low),  # type: ignore[arg-type]
                Threshold(field_name, "<=", high),  # type: ignore[arg-type]
            ]
            sentence.consume(indices)
    for pattern in (_THRESHOLD_A, _THRESHOLD_B):
        for match, indices in sentence.find(pattern):
            if any(sentence.tokens[i].used for i in indices):
                continue
            value = _threshold_value(state, match.group("m"), match.group("n"), match.group("unit"))
            if value is None:
                continue
            op = OPERATOR_PHRASES[match.group("op")]
            field_name = MEASURE_PHRASES[match.group("m")]
            state.thresholds.append(Threshold(field_name, op, value))  # type: ignore[arg-type]
            sentence.consume(indices)
    for pattern in (_THRESHOLD_OR_MORE, _THRESHOLD_M_OR_MORE):
        for match, indices in sentence.find(pattern):
            value = _threshold_value(state, match.group("m"), match.group("n"), None)
            if value is None:
                continue
            up = match.group("dir") in ("more", "above", "higher", "over")
            field_name = MEASURE_PHRASES[match.group("m")]
            state.thresholds.append(
                Threshold(field_name, ">=" if up else "<=", value)  # type: ignore[arg-type]
            )
            sentence.consume(indices)
    for pattern, threshold in _QUALITATIVE:
        for _match, indices in sentence.find(pattern):
            state.thresholds.append(threshold)
            sentence.consume(indices)


def _span_days(match: re.Match[str]) -> float:
    number = match.group("n")
    amount = _count(number) if number else 1
    return _to_days(float(amount or 1), match.group("unit"))


def _recency(sentence: _Sentence, state: _State) -> None:
    for pattern in _RECENCY_OVER:
        for match, indices in sentence.find(pattern):
            state.thresholds.append(Threshold("recency_days", ">", _span_days(match)))
            sentence.consume(indices)
    for match, indices in sentence.find(_RECENCY_WITHIN):
        state.thresholds.append(Threshold("recency_days", "<=", _span_days(match)))
        sentence.consume(indices)
    for _match, indices in sentence.find(_NO_ORDERS_EVER):
        state.thresholds.append(Threshold("orders_count", "<=", 0))
        sentence.consume(indices)


def _referrals(sentence: _Sentence, state: _State) -> None:
    for pattern, kind in _REFERRALS:
        found = sentence.first(pattern)
        if found is None:
            continue
        _match, indices = found
        state.entity = "referrals"
        if kind == "top":
            state.group_by = "referrer"
            state.metric = "count"
            state.descending = True
        sentence.consume(indices)
        return


def _owners(sentence: _Sentence, state: _State) -> None:
    matcher = state.matcher
    for match, indices in sentence.find(_OWNER_MENTION):
        owners = matcher.owner(match.group("name"), state.mentions)
        if owners:
            state.add(state.owners, owners)
            sentence.consume(indices)
        else:
            state.problems.append(
                f"I know no account owner called “{_clean(match.group('name'))}”"
                + (
                    f" (owners: {', '.join(matcher.vocab.owners[:6])})"
                    if matcher.vocab.owners
                    else ""
                )
            )
            sentence.consume(indices)
    for pattern in (_OWNER_POSSESSIVE, _OWNER_BY, _OWNER_OF):
        for match, indices in sentence.find(pattern):
            name_indices = sentence.group_indices(match, "name")
            # Try the two words, then the last (possessive) or the first (by/of) alone.
            options = [name_indices]
            if len(name_indices) > 1:
                options.append(
                    name_indices[-1:] if pattern is _OWNER_POSSESSIVE else name_indices[:1]
                )
            for option in options:
                name = " ".join(sentence.tokens[i].low for i in option)
                owners = matcher.owner(name, state.mentions)
                if owners:
                    state.add(state.owners, owners)
                    keep = [i for i in indices if i in option or i not in name_indices]
                    # "customers of maria": leave "customers" for the entity words.
                    sentence.consume(
                        i for i in keep if sentence.tokens[i].low not in CUSTOMER_WORDS
                    )
                    break
    found = sentence.first(_MINE)
    if found:
        _match, indices = found
        mine = [o for o in matcher.vocab.owners if o.lower() in state.askers]
        if mine:
            state.add(state.owners, mine)
        else:
            state.problems.append(
                "I can't tell which owner you are in the CRM; name them instead, "
                "e.g. `customers of @maria`"
            )
        sentence.consume(i for i in indices if sentence.tokens[i].low not in CUSTOMER_WORDS)


def _dates(sentence: _Sentence, state: _State) -> None:
    today = state.today

    def period(text: str) -> _Period | None:
        text = text.strip()
        aliases = {
            "ytd": "this year",
            "year to date": "this year",
            "qtd": "this quarter",
            "quarter to date": "this quarter",
            "mtd": "this month",
            "month to date": "this month",
        }
        return resolve_date(aliases.get(text, text), today)

    def label(indices: list[int]) -> str:
        return sentence.raw(indices).lower()

    found = sentence.first(_DATE_BETWEEN)
    if found:
        match, indices = found
        a, b = period(match.group("a")), period(match.group("b"))
        if a and b:
            state.date_range = DateRange(min(a.start, b.start), max(a.end, b.end), label(indices))
            sentence.consume(indices)
            return
    found = sentence.first(_DATE_SINCE)
    if found:
        match, indices = found
        a = period(match.group("a"))
        if a:
            keyword = match.group("kw")
            start = a.end if keyword == "after" else (a.point if keyword == "since" else a.start)
            state.date_range = DateRange(start, None, label(indices))
            sentence.consume(indices)
            return
    found = sentence.first(_DATE_BEFORE)
    if found:
        match, indices = found
        a = period(match.group("a"))
        if a:
            end = a.start if match.group("kw") in ("before", "prior to") else a.end
            state.date_range = DateRange(None, end, label(indices))
            sentence.consume(indices)
            return
    found = sentence.first(_DATE_LAST_N)
    if found:
        match, indices = found
        amount = _count(match.group("n")) or 1
        unit = _full_unit(match.group("unit"))
        if unit == "months":
            start = _add_months(today, -amount).replace(day=min(today.day, 28))
        elif unit == "years":
            start = today.replace(year=today.year - amount, day=min(today.day, 28))
        else:
            start = today - timedelta(days=_to_days(amount, unit))
        state.date_range = DateRange(start, today + timedelta(days=1), label(indices))
        sentence.consume(indices)
        return
    for pattern in (_DATE_PERIOD, _DATE_YEAR, _DATE_MONTH, _DATE_MONTH_YEAR):
        found = sentence.first(pattern)
        if found:
            match, indices = found
            a = period(match.group("a"))
            if a:
                state.date_range = DateRange(a.start, a.end, label(indices))
                sentence.consume(indices)
                return


def _orders(sentence: _Sentence, state: _State) -> None:
    found = sentence.first(_AOV)
    if found:
        _match, indices = found
        state.entity, state.metric, state.measure = "orders", state.metric or "avg", "amount"
        if state.metric not in ("avg", "sum"):
            state.metric = "avg"
        sentence.consume(indices)
    found = sentence.first(_REVENUE)
    if found and state.entity in (None, "orders"):
        _match, indices = found
        state.entity, state.measure = "orders", "amount"
        sentence.consume(indices)
    if state.date_range is not None:
        found = sentence.first(_SIGNED_UP)
        if found and state.entity in (None, "customers"):
            _match, indices = found
            state.date_field = "signed_up"
            sentence.consume(i for i in indices if sentence.tokens[i].low not in CUSTOMER_WORDS)
    # Bare order nouns: which rows are asked about is settled once every rule has run.
    for i in sentence.unused():
        if sentence.tokens[i].low in ORDER_NOUNS:
            state.weak_orders = True
            sentence.consume([i])
    for i in sentence.unused():
        if sentence.tokens[i].low in ("ordered", "bought", "purchased", "placed", "made"):
            state.date_field = state.date_field or "ordered"
            sentence.consume([i])


def _grouping(sentence: _Sentence, state: _State) -> None:
    found = sentence.first(_COMPARE)
    if found:
        state.chart = True
        sentence.consume(found[1])
    found = sentence.first(_WHICH_GROUP)
    if found:
        match, indices = found
        state.group_by = DIMENSION_WORDS[match.group("dim")]
        state.descending = match.group("dir") not in ("lowest", "least", "smallest", "worst")
        sentence.consume(indices)
    for match, indices in sentence.find(_GROUP):
        state.group_by = DIMENSION_WORDS[match.group("dim")]
        sentence.consume(indices)
        break
    for i in sentence.unused():
        if sentence.tokens[i].low in ("versus", "vs"):
            sentence.consume([i])


def _measure_in(sentence: _Sentence, match: re.Match[str]) -> str:
    return MEASURE_PHRASES[match.group("m")]


def _ranking(sentence: _Sentence, state: _State) -> None:
    for pattern, descending in ((_TOP_N, True), (_BOTTOM_N, False)):
        found = sentence.first(pattern)
        if found:
            match, indices = found
            state.limit = _count(match.group("n"))
            state.descending = descending
            sentence.consume(indices)
    found = sentence.first(_N_MOST)
    if found:
        match, indices = found
        state.limit = _count(match.group("n"))
        sentence.consume(indices)
    for pattern, measure, descending in _SUPERLATIVES:
        found = sentence.first(pattern)
        if found:
            state.sort, state.descending = measure, descending
            sentence.consume(found[1])
    for pattern in (_SORT_BY, _WITH_THE, _DIR_MEASURE, _BY_MEASURE):
        found = sentence.first(pattern)
        if found:
            match, indices = found
            groups = match.groupdict()
            direction = groups.get("dir") or groups.get("dir2") or ""
            descending = direction not in (
                "lowest",
                "least",
                "smallest",
                "worst",
                "ascending",
                "asc",
            )
            if pattern is _BY_MEASURE:
                descending = state.descending
            measure = _measure_in(sentence, match)
            if state.group_by:
                state.measure = state.measure or measure
            else:
                state.sort = measure
            state.descending = descending
            sentence.consume(indices)
            break
    found = sentence.first(_TOP)
    if found:
        state.limit = state.limit or 10
        state.descending = True
        sentence.consume(found[1])
    for i in sentence.unused():
        if sentence.tokens[i].low in ("highest", "most", "biggest", "largest", "greatest"):
            if state.sort or state.group_by:
                state.descending = True
                sentence.consume([i])
        elif sentence.tokens[i].low in ("lowest", "least", "smallest") and (
            state.sort or state.group_by
        ):
            state.descending = False
            sentence.consume([i])


def _metrics(sentence: _Sentence, state: _State) -> None:
    found = sentence.first(_COUNT)
    if found:
        match, indices = found
        state.metric = "sum" if match.group(0) == "how much" else "count"
        sentence.consume(indices)
    for pattern, metric in ((_AVG, "avg"), (_SUM, "sum")):
        found = sentence.first(pattern)
        if found:
            state.metric = metric
            sentence.consume(found[1])


def _long_measures(sentence: _Sentence, state: _State) -> None:
    pattern = _rx("|".join(re.escape(p) for p in sorted(_LONG_MEASURES, key=len, reverse=True)))
    for match, indices in sentence.find(pattern):
        _set_measure(state, MEASURE_PHRASES[match.group(0)])
        sentence.consume(indices)


def _short_measures(sentence: _Sentence, state: _State) -> None:
    for i in sentence.unused():
        word = sentence.tokens[i].low
        if word in MEASURE_PHRASES and " " not in word:
            if word in ("orders", "purchases"):
                state.weak_orders = True
            else:
                _set_measure(state, MEASURE_PHRASES[word])
            sentence.consume([i])


def _set_measure(state: _State, measure: str) -> None:
    if state.measure is None or state.measure == measure:
        state.measure = measure
    elif state.sort is None:
        state.sort = measure


def _names(sentence: _Sentence, state: _State) -> None:
    matcher = state.matcher
    for match, indices in sentence.find(_CLUSTER):
        if int(match.group("n")) not in state.clusters:
            state.clusters.append(int(match.group("n")))
        sentence.consume(indices)
    tokens = sentence.tokens
    i = 0
    while i < len(tokens):
        if tokens[i].used:
            i += 1
            continue
        matched = 0
        for size in range(4, 0, -1):
            window = tokens[i : i + size]
            if len(window) < size or any(t.used for t in window):
                continue
            phrase = " ".join(t.low.lstrip("@") for t in window)
            entries = matcher.best(phrase)
            if not entries:
                continue
            for entry in entries:
                target = {
                    "segment": state.segments,
                    "region": state.regions,
                    "owner": state.owners,
                    "company": state.companies,
                }.get(entry.kind)
                if target is not None:
                    state.add(target, [entry.value])
                elif entry.kind == "cluster" and int(entry.value) not in state.clusters:
                    state.clusters.append(int(entry.value))
            matched = size
            break
        if matched:
            sentence.consume(range(i, i + matched))
            i += matched
        else:
            i += 1
    # A customer by name ("orders of Ada Lovelace"): two or more words, a close match.
    left = [i for i in sentence.unused() if tokens[i].low not in STOPWORDS]
    if left and state.customer is None and len(left) >= 2 and matcher.customer_names:
        phrase = " ".join(tokens[i].low for i in left)
        best = process.extractOne(
            phrase, list(matcher.customer_names), scorer=fuzz.ratio, score_cutoff=90
        )
        if best and len(matcher.customer_names[best[0]]) == 1:
            state.customer = matcher.customer_names[best[0]][0]
            sentence.consume(left)


def _entity_words(sentence: _Sentence, state: _State) -> None:
    for i in sentence.unused():
        if sentence.tokens[i].low in CUSTOMER_WORDS:
            if state.entity is None:
                state.entity = "customers"
            sentence.consume([i])


def _clean(word: str) -> str:
    """A word fit to echo back: no markup, no mentions, no formatting characters."""
    cleaned = re.sub(r"[<>&*_~`|\\]", "", word)
    return cleaned[:40]


def _finish(sentence: _Sentence, state: _State) -> ParseResult:
    unplaced = tuple(
        _clean(sentence.tokens[i].raw)
        for i in sentence.unused()
        if sentence.tokens[i].low not in STOPWORDS and sentence.tokens[i].low != "'s"
    )
    unplaced = tuple(w for w in unplaced if w)
    entity = state.entity
    if entity is None:
        entity = "orders" if state.weak_orders and state.date_field != "ordered" else "customers"
    date_field = None
    if entity == "customers" and state.date_range is not None:
        date_field = state.date_field or "ordered"
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
    descending = state.descending
    query = StructuredQuery(
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
        descending=descending,
        limit=state.limit,
        chart=state.chart and state.group_by is not None,
    )
    problems = tuple(state.problems) + tuple(query.problems())
    nothing_asked = query == StructuredQuery() and not unplaced
    if nothing_asked and not any(t.low in CUSTOMER_WORDS for t in sentence.tokens):
        problems += ("ask about customers, orders or referrals",)
    return ParseResult(query, unplaced, problems)


def canonicalize(query: StructuredQuery, vocab: Vocabulary) -> tuple[StructuredQuery, list[str]]:
    """`query` with every name mapped onto the vocabulary's spelling ("emea" -> "EMEA"), and
    what could not be mapped. For queries that did not come from `parse_question`."""
    matcher = _matcher_for(vocab)
    problems: list[str] = []

    def mapped(values: tuple[str, ...], kind: str) -> tuple[str, ...]:
        found: list[str] = []
        for value in values:
            if kind == "owner":
                names = matcher.owner(normalize_phrase(value), {})
            else:
                names = [e.value for e in matcher.best(normalize_phrase(value), (kind,))]
            if names:
                found += [n for n in names if n not in found]
            else:
                problems.append(f"the CRM has no {kind} “{_clean(value)}”")
        return tuple(found)

    customer, customer_name = query.customer, query.customer_name
    if customer or customer_name:
        customer, customer_name = matcher.customer(customer or customer_name or "")
    known_clusters = set(vocab.clusters)
    for cluster in query.clusters:
        if known_clusters and cluster not in known_clusters:
            problems.append(f"the model has no cluster {cluster}")
    fixed = query.with_changes(
        segments=mapped(query.segments, "segment"),
        from_segments=mapped(query.from_segments, "segment"),
        regions=mapped(query.regions, "region"),
        owners=mapped(query.owners, "owner"),
        companies=mapped(query.companies, "company"),
        customer=customer,
        customer_name=customer_name,
    )
    return fixed, problems + fixed.problems()
