"""Phrase rules for which rows are meant: thresholds on a measure, recency, owners, dates,
and the names of segments, regions, companies, clusters and customers."""

from __future__ import annotations

import re
from datetime import date, timedelta

from crmbot.ask.parse.dates import Period, add_months, resolve_date
from crmbot.ask.parse.numbers import count_of, full_unit, parse_number, stored_value, to_days
from crmbot.ask.parse.patterns import (
    BETWEEN_MEASURE,
    CLUSTER,
    DATE_BEFORE,
    DATE_BETWEEN,
    DATE_LAST_N,
    DATE_MONTH,
    DATE_MONTH_YEAR,
    DATE_PERIOD,
    DATE_SINCE,
    DATE_YEAR,
    MEASURE_BETWEEN,
    MEASURE_NUMBER_OR_MORE,
    MEASURE_OP_NUMBER,
    MINE,
    NO_ORDERS_EVER,
    NOT_ORDERED_FOR,
    NUMBER_OR_MORE_MEASURE,
    OP_NUMBER_MEASURE,
    ORDERED_WITHIN,
    OWNER_BY,
    OWNER_MENTION,
    OWNER_OF,
    OWNER_POSSESSIVE,
    QUALITATIVE,
)
from crmbot.ask.parse.state import ParseState
from crmbot.ask.parse.tokens import Sentence, echo_safe
from crmbot.ask.parse.vocabulary import (
    CUSTOMER_WORDS,
    MEASURE_PHRASES,
    OPERATOR_PHRASES,
    STOPWORDS,
    word_set,
)
from crmbot.ask.query import DateRange, Threshold

# ---------------------------------------------------------------------------------------
# Thresholds and recency


def thresholds(sentence: Sentence, state: ParseState) -> None:
    """ "clv between 1k and 5k", "churn risk over 50%", "5 or more orders", "unhappy"."""
    for pattern in (MEASURE_BETWEEN, BETWEEN_MEASURE):
        for match, indices in sentence.find(pattern):
            low = _threshold_value(match.group("m"), match.group("a"), None)
            high = _threshold_value(match.group("m"), match.group("b"), None)
            if low is None or high is None:
                continue
            field_name = MEASURE_PHRASES[match.group("m")]
            low, high = min(low, high), max(low, high)
            state.thresholds += [
                Threshold(field_name, ">=", low),  # type: ignore[arg-type]
                Threshold(field_name, "<=", high),  # type: ignore[arg-type]
            ]
            sentence.consume(indices)
    for pattern in (MEASURE_OP_NUMBER, OP_NUMBER_MEASURE):
        for match, indices in sentence.find(pattern):
            if any(sentence.tokens[i].used for i in indices):
                continue
            value = _threshold_value(match.group("m"), match.group("n"), match.group("unit"))
            if value is None:
                continue
            op = OPERATOR_PHRASES[match.group("op")]
            field_name = MEASURE_PHRASES[match.group("m")]
            state.thresholds.append(Threshold(field_name, op, value))  # type: ignore[arg-type]
            sentence.consume(indices)
    for pattern in (NUMBER_OR_MORE_MEASURE, MEASURE_NUMBER_OR_MORE):
        for match, indices in sentence.find(pattern):
            value = _threshold_value(match.group("m"), match.group("n"), None)
            if value is None:
                continue
            up = match.group("dir") in ("more", "above", "higher", "over")
            field_name = MEASURE_PHRASES[match.group("m")]
            state.thresholds.append(
                Threshold(field_name, ">=" if up else "<=", value)  # type: ignore[arg-type]
            )
            sentence.consume(indices)
    for pattern, threshold in QUALITATIVE:
        for _match, indices in sentence.find(pattern):
            state.thresholds.append(threshold)
            sentence.consume(indices)


def _threshold_value(measure: str, number: str, unit: str | None) -> float | None:
    parsed = parse_number(number)
    if parsed is None:
        return None
    value, percent = parsed
    field_name = MEASURE_PHRASES[measure]
    if field_name == "recency_days" and unit:
        value = to_days(value, unit)
    return stored_value(field_name, value, percent)


def recency(sentence: Sentence, state: ParseState) -> None:
    for pattern in NOT_ORDERED_FOR:
        for match, indices in sentence.find(pattern):
            state.thresholds.append(Threshold("recency_days", ">", _span_days(match)))
            sentence.consume(indices)
    for match, indices in sentence.find(ORDERED_WITHIN):
        state.thresholds.append(Threshold("recency_days", "<=", _span_days(match)))
        sentence.consume(indices)
    for _match, indices in sentence.find(NO_ORDERS_EVER):
        state.thresholds.append(Threshold("orders_count", "<=", 0))
        sentence.consume(indices)


def _span_days(match: re.Match[str]) -> float:
    number = match.group("n")
    amount = count_of(number) if number else 1
    return to_days(float(amount or 1), match.group("unit"))


# ---------------------------------------------------------------------------------------
# Owners


def owners(sentence: Sentence, state: ParseState) -> None:
    _owner_mentions(sentence, state)
    _owners_named(sentence, state)
    _my_customers(sentence, state)


def _owner_mentions(sentence: Sentence, state: ParseState) -> None:
    """ "@maria": an owner, or a problem to report; the mention is placed either way."""
    matcher = state.matcher
    for match, indices in sentence.find(OWNER_MENTION):
        found = matcher.owner(match.group("name"), state.mentions)
        if found:
            state.add(state.owners, found)
        else:
            known = matcher.vocab.owners
            state.problems.append(
                f"I know no account owner called “{echo_safe(match.group('name'))}”"
                + (f" (owners: {', '.join(known[:6])})" if known else "")
            )
        sentence.consume(indices)


def _owners_named(sentence: Sentence, state: ParseState) -> None:
    """ "maria's customers", "owned by maria", "customers of tom becker"."""
    for pattern in (OWNER_POSSESSIVE, OWNER_BY, OWNER_OF):
        for match, indices in sentence.find(pattern):
            name_indices = sentence.group_indices(match, "name")
            # Try the two words, then the last (possessive) or the first (by/of) alone.
            options = [name_indices]
            if len(name_indices) > 1:
                options.append(
                    name_indices[-1:] if pattern is OWNER_POSSESSIVE else name_indices[:1]
                )
            for option in options:
                name = " ".join(sentence.tokens[i].low for i in option)
                found = state.matcher.owner(name, state.mentions)
                if found:
                    state.add(state.owners, found)
                    keep = [i for i in indices if i in option or i not in name_indices]
                    # "customers of maria": leave "customers" for the entity words.
                    sentence.consume(
                        i for i in keep if sentence.tokens[i].low not in CUSTOMER_WORDS
                    )
                    break


def _my_customers(sentence: Sentence, state: ParseState) -> None:
    found = sentence.first(MINE)
    if not found:
        return
    _match, indices = found
    mine = [o for o in state.matcher.vocab.owners if o.lower() in state.askers]
    if mine:
        state.add(state.owners, mine)
    else:
        state.problems.append(
            "I can't tell which owner you are in the CRM; name them instead, "
            "e.g. `customers of @maria`"
        )
    sentence.consume(i for i in indices if sentence.tokens[i].low not in CUSTOMER_WORDS)


# ---------------------------------------------------------------------------------------
# Dates

# Shorthands for periods to date.
_TO_DATE = {
    "ytd": "this year",
    "year to date": "this year",
    "qtd": "this quarter",
    "quarter to date": "this quarter",
    "mtd": "this month",
    "month to date": "this month",
}


def dates(sentence: Sentence, state: ParseState) -> None:
    """The first date phrase that resolves, tried from the most specific wording."""
    for rule in (_date_between, _date_since, _date_before, _last_n):
        if rule(sentence, state):
            return
    for pattern in (DATE_PERIOD, DATE_YEAR, DATE_MONTH, DATE_MONTH_YEAR):
        found = sentence.first(pattern)
        if found:
            match, indices = found
            a = _period(match.group("a"), state)
            if a:
                _set_date_range(sentence, state, indices, a.start, a.end)
                return


def _period(text: str, state: ParseState) -> Period | None:
    text = text.strip()
    return resolve_date(_TO_DATE.get(text, text), state.today)


def _set_date_range(
    sentence: Sentence, state: ParseState, indices: list[int], start: date | None, end: date | None
) -> None:
    """The range from `start` up to `end` (exclusive), labelled with the words that said it."""
    state.date_range = DateRange(start, end, sentence.raw(indices).lower())
    sentence.consume(indices)


def _date_between(sentence: Sentence, state: ParseState) -> bool:
    found = sentence.first(DATE_BETWEEN)
    if not found:
        return False
    match, indices = found
    a, b = _period(match.group("a"), state), _period(match.group("b"), state)
    if not (a and b):
        return False
    _set_date_range(sentence, state, indices, min(a.start, b.start), max(a.end, b.end))
    return True


def _date_since(sentence: Sentence, state: ParseState) -> bool:
    found = sentence.first(DATE_SINCE)
    if not found:
        return False
    match, indices = found
    a = _period(match.group("a"), state)
    if not a:
        return False
    keyword = match.group("kw")
    start = a.end if keyword == "after" else (a.point if keyword == "since" else a.start)
    _set_date_range(sentence, state, indices, start, None)
    return True


def _date_before(sentence: Sentence, state: ParseState) -> bool:
    found = sentence.first(DATE_BEFORE)
    if not found:
        return False
    match, indices = found
    a = _period(match.group("a"), state)
    if not a:
        return False
    end = a.start if match.group("kw") in ("before", "prior to") else a.end
    _set_date_range(sentence, state, indices, None, end)
    return True


def _last_n(sentence: Sentence, state: ParseState) -> bool:
    """ "in the last 3 months": from that long ago up to today, inclusive."""
    found = sentence.first(DATE_LAST_N)
    if not found:
        return False
    match, indices = found
    today = state.today
    amount = count_of(match.group("n")) or 1
    unit = full_unit(match.group("unit"))
    if unit == "months":
        start = add_months(today, -amount).replace(day=min(today.day, 28))
    elif unit == "years":
        start = today.replace(year=today.year - amount, day=min(today.day, 28))
    else:
        start = today - timedelta(days=to_days(amount, unit))
    _set_date_range(sentence, state, indices, start, today + timedelta(days=1))
    return True


# ---------------------------------------------------------------------------------------
# Names

# Names are looked for in windows of up to this many words, longest first.
_NAME_WORDS = 4


def names(sentence: Sentence, state: ParseState) -> None:
    """Cluster numbers, then names of the vocabulary in the words left, then a customer
    whose name the remaining words spell."""
    for match, indices in sentence.find(CLUSTER):
        if int(match.group("n")) not in state.clusters:
            state.clusters.append(int(match.group("n")))
        sentence.consume(indices)
    tokens = sentence.tokens
    i = 0
    while i < len(tokens):
        size = 0 if tokens[i].used else _name_at(sentence, state, i)
        if size:
            sentence.consume(range(i, i + size))
        i += size or 1
    _customer_by_name(sentence, state)


def _name_at(sentence: Sentence, state: ParseState, start: int) -> int:
    """Place the longest name the words from `start` spell; the number of words it took."""
    tokens = sentence.tokens
    for size in range(_NAME_WORDS, 0, -1):
        window = tokens[start : start + size]
        if len(window) < size or any(t.used for t in window):
            continue
        phrase = " ".join(t.low.lstrip("@") for t in window)
        entries = state.matcher.best(phrase)
        if not product_context(sentence, state):
            # "customers in the water" is not about the Water Filter Cartridge.
            entries = [e for e in entries if e.kind not in ("product", "category")]
        if not entries:
            continue
        for entry in entries:
            target = {
                "segment": state.segments,
                "region": state.regions,
                "owner": state.owners,
                "company": state.companies,
                "product": state.products,
                "category": state.categories,
            }.get(entry.kind)
            if target is not None:
                state.add(target, [entry.value])
            elif entry.kind == "cluster" and int(entry.value) not in state.clusters:
                state.clusters.append(int(entry.value))
        return size
    return 0


# Words that make a question about what was bought, so that product and category names are
# read in it: "customers who bought Descaler", "revenue of the French Press".
PURCHASE_WORDS = word_set(
    "bought buy buys buying purchased purchase purchases buyers purchasers ordered sold sell "
    "sells selling sales revenue units product products items category categories"
)


def product_context(sentence: Sentence, state: ParseState) -> bool:
    """Whether product and category names may be read in this question."""
    return state.product_rows or any(t.low in PURCHASE_WORDS for t in sentence.tokens)


def _customer_by_name(sentence: Sentence, state: ParseState) -> None:
    # A customer by name ("orders of Ada Lovelace"): two or more words, a close match.
    tokens = sentence.tokens
    left = [i for i in sentence.unused() if tokens[i].low not in STOPWORDS]
    if state.customer is not None or len(left) < 2:
        return
    phrase = " ".join(tokens[i].low for i in left)
    customer_id = state.matcher.closest_customer(phrase, score_cutoff=90)
    if customer_id is not None:
        state.customer = customer_id
        sentence.consume(left)
