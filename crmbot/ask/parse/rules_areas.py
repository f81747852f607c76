"""Phrase rules for the areas beyond customers, orders and referrals — support tickets,
satisfaction (NPS categories, NPS, sentiment, "high CLV"), products, scores that went up or
down — and for the framings every area shares: exclusions ("not in EMEA", "bought X but not
Y"), two periods compared ("this month vs last month"), "my best customers", "in the At
risk segment", and questions about one customer's reasons, which `/crm why` answers."""

from __future__ import annotations

import re
from datetime import timedelta

from crmbot.ask.parse.dates import add_months, resolve_date
from crmbot.ask.parse.patterns import (
    BANDS,
    BEST_CUSTOMERS,
    BOUGHT,
    COMPARATIVES,
    COMPARE_PERIODS,
    GOT_COMPARATIVE,
    NEGATION_FILLERS,
    NEGATION_PAIRS,
    NEGATION_WORDS,
    NPS,
    NPS_CATEGORIES,
    OPEN_STATES,
    OVER_PERIOD,
    PRIORITY,
    PRODUCT_ROWS,
    SCORE_CHANGE,
    SENTIMENT,
    SOLD,
    SURVEYS,
    TICKETS_ANY,
    TICKETS_BY,
    TICKETS_MOST,
    TICKETS_NONE,
    TICKETS_STATED,
    TIME_TO_CLOSE,
    UNITS,
    WHY,
    WHY_NAME_END,
)
from crmbot.ask.parse.rules_filters import product_context
from crmbot.ask.parse.state import ParseState
from crmbot.ask.parse.tokens import Sentence, echo_safe
from crmbot.ask.parse.vocabulary import CUSTOMER_WORDS, MONTHS, STOPWORDS
from crmbot.ask.query import DateRange, Threshold

# ---------------------------------------------------------------------------------------
# "why is Acme at risk": pointed to /crm why

# Words of a "why" question that are never part of the customer's name.
_NOT_NAMES = frozenset(
    {
        "'s",
        "is",
        "are",
        "was",
        "were",
        "did",
        "does",
        "has",
        "have",
        "do",
        "customer",
        "client",
        "account",
        "our",
        "my",
        "the",
    }
)


def why(sentence: Sentence) -> str | None:
    """The pointer to `/crm why` for a question about reasons, or None."""
    text, _spans = sentence.text()
    match = WHY.match(text)
    if match is None:
        return None
    skip = len(match.group(0).split())
    words = [t for t in sentence.tokens[skip:] if t.low not in _NOT_NAMES]
    # "why is Acme Corp at risk": the words after the verb, up to what is said of them.
    name: list[str] = []
    for token in words:
        if WHY_NAME_END.match(token.low) or token.low in ("why", "driving"):
            if name:
                break
            continue
        name.append(echo_safe(token.raw))
        if len(name) == 4:
            break
    who = " ".join(w for w in name if w) or "Acme"
    return (
        "I answer what, who and how many; the reasons behind one customer's scores are "
        f"on their card: `/crm why {who}`"
    )


# ---------------------------------------------------------------------------------------
# Scores up or down between runs; two periods compared

_CHANGE_MEASURES = {
    "churn risk": "churn_risk",
    "risk of churn": "churn_risk",
    "churn probability": "churn_risk",
    "churn": "churn_risk",
    "risk": "churn_risk",
    "clv": "clv",
    "ltv": "clv",
    "lifetime value": "clv",
    "customer lifetime value": "clv",
    "satisfaction": "satisfaction",
    "csat": "satisfaction",
    "value at risk": "value_at_risk",
    "probability alive": "p_alive",
}
_UP_WORDS = frozenset(
    [
        "up",
        "increased",
        "increasing",
        "rose",
        "risen",
        "rising",
        "grew",
        "grown",
        "growing",
        "climbed",
        "climbing",
        "jumped",
        "spiked",
        "higher",
    ]
)
# Said of a score where higher is worse (churn risk, value at risk) or better (the rest).
_WORSE = frozenset({"worse", "worsened", "worsening"})
_BETTER = frozenset({"better", "improved", "improving"})
_HIGHER_IS_WORSE = frozenset({"churn_risk", "value_at_risk"})


def score_changes(sentence: Sentence, state: ParseState) -> None:
    """ "churn risk up since last week", "whose CLV dropped", "rising churn risk", "who got
    riskier"."""
    found = sentence.first(GOT_COMPARATIVE)
    if found is not None:
        match, indices = found
        measure, up = COMPARATIVES[match.group("c")]
        state.entity, state.measure = "score_changes", measure
        state.change = "up" if up else "down"
        sentence.consume(indices)
        return
    for pattern in SCORE_CHANGE:
        found = sentence.first(pattern)
        if found is None:
            continue
        match, indices = found
        measure = _CHANGE_MEASURES[match.group("m")]
        word = match.group("dir")
        if word in _WORSE or word in _BETTER:
            up = (word in _WORSE) == (measure in _HIGHER_IS_WORSE)
        else:
            up = word in _UP_WORDS
        state.entity, state.measure = "score_changes", measure
        state.change = "up" if up else "down"
        sentence.consume(indices)
        return


def _range(text: str, state: ParseState) -> DateRange | None:
    period = resolve_date(text.strip(), state.today)
    if period is None:
        return None
    return DateRange(period.start, period.end, text.strip())


def _before(first: DateRange, said: str) -> DateRange | None:
    """The period of the same length just before `first` ("vs last", "the month before")."""
    if first.start is None:
        return None
    text = f"{first.label} {said}"
    start = first.start
    if "week" in text:
        earlier = start - timedelta(days=7)
    elif "quarter" in text or re.search(r"\bq[1-4]\b", text):
        earlier = add_months(start, -3)
    elif "month" in text or any(m in text.split() for m in MONTHS):
        earlier = add_months(start, -1)
    elif "year" in text or re.search(r"\b(?:19|20)\d{2}\b", text):
        earlier = start.replace(year=start.year - 1)
    else:
        return None
    return DateRange(earlier, start, said)


def compare_periods(sentence: Sentence, state: ParseState) -> None:
    """ "this month vs last month", "Q1 versus Q2", "compare May and June", "this year vs
    last", "last month compared with the month before", "month over month"."""
    found = sentence.first(COMPARE_PERIODS)
    if found is not None:
        match, indices = found
        first = _range(match.group("a"), state)
        if match.group("b"):
            second = _range(match.group("b"), state)
        else:
            second = _before(first, match.group("before")) if first else None
        if first is not None and second is not None:
            state.date_range, state.compare_range = first, second
            sentence.consume(indices)
            return
    found = sentence.first(OVER_PERIOD)
    if found is not None:
        match, indices = found
        abbreviations = {"wow": "week", "mom": "month", "qoq": "quarter", "yoy": "year"}
        period = match.group("p") or abbreviations[match.group("abbr")]
        first, second = _range(f"this {period}", state), _range(f"last {period}", state)
        if first is not None and second is not None:
            state.date_range, state.compare_range = first, second
            sentence.consume(indices)


# ---------------------------------------------------------------------------------------
# Exclusions

_EXCLUDED = {
    "segment": "not_segments",
    "region": "not_regions",
    "owner": "not_owners",
    "company": "not_companies",
    "product": "not_products",
}
_EXCLUDED_NOT_PRODUCTS = {k: v for k, v in _EXCLUDED.items() if k != "product"}


def negation(sentence: Sentence, state: ParseState) -> None:
    """ "not in EMEA", "excluding champions and loyal", "bought X but not Y", "never bought
    X", "other than @maria": each excluded name; a negation followed by no name is left
    unplaced, so the question is refused rather than read without it."""
    tokens = sentence.tokens
    i = 0
    while i < len(tokens):
        if tokens[i].used:
            i += 1
            continue
        pair = i + 1 < len(tokens) and (tokens[i].low, tokens[i + 1].low) in NEGATION_PAIRS
        if not pair and (tokens[i].low not in NEGATION_WORDS or tokens[i].low == "but"):
            i += 1
            continue
        taken, end = _excluded_names(sentence, state, i + (2 if pair else 1))
        if taken:
            sentence.consume([*range(i, i + (2 if pair else 1)), *taken])
            i = end
        else:
            i += 1


def _excluded_names(sentence: Sentence, state: ParseState, start: int) -> tuple[list[int], int]:
    """The indices of the fillers and names excluded from `start` on, and where they end:
    one name after any fillers ("not in the EMEA"), then more joined by "or", "and",
    "nor" ("excluding champions and loyal")."""
    tokens = sentence.tokens
    k = start
    size = 0
    while k < len(tokens) and not tokens[k].used:
        size = _excluded_name_at(sentence, state, k)
        if size or tokens[k].low not in NEGATION_FILLERS:
            break
        k += 1
    if not size:
        return [], start
    taken = list(range(start, k + size))
    j = k + size
    while j + 1 < len(tokens) and tokens[j].low in ("or", "and", "nor") and not tokens[j].used:
        more = _excluded_name_at(sentence, state, j + 1)
        if not more:
            break
        taken += range(j, j + 1 + more)
        j += 1 + more
    return taken, j


def _excluded_name_at(sentence: Sentence, state: ParseState, start: int) -> int:
    tokens = sentence.tokens
    if start >= len(tokens) or tokens[start].used:
        return 0
    first = tokens[start].low
    possessive = start + 1 < len(tokens) and tokens[start + 1].low == "'s"
    if first.startswith("@") or possessive:
        owners = state.matcher.owner(first, state.mentions)
        if owners:
            state.add(state.not_owners, owners)
            return 2 if possessive else 1
        return 0
    for size in range(4, 0, -1):
        window = tokens[start : start + size]
        if len(window) < size or any(t.used for t in window):
            continue
        if window[-1].low in STOPWORDS or window[-1].low in CUSTOMER_WORDS:
            continue
        phrase = " ".join(t.low for t in window)
        kinds = _EXCLUDED if product_context(sentence, state) else _EXCLUDED_NOT_PRODUCTS
        entries = [e for e in state.matcher.best(phrase) if e.kind in kinds]
        if entries:
            for entry in entries:
                state.add(getattr(state, _EXCLUDED[entry.kind]), [entry.value])
            return size
    return 0


# ---------------------------------------------------------------------------------------
# Support tickets


def tickets(sentence: Sentence, state: ParseState) -> None:
    """ "customers with the most open tickets", "customers with open tickets", "without
    tickets", "unresolved tickets", "how long tickets take to close", "by priority"."""
    found = sentence.first(PRIORITY)
    if found is not None:
        state.problems.append(
            "tickets have no priority or SLA in this CRM; ask by channel, status, region, "
            "segment or owner, e.g. `open tickets by channel`"
        )
        state.final = True
        sentence.consume(found[1])
    found = sentence.first(TICKETS_BY)
    if found is not None and state.group_by is None:
        match, indices = found
        state.sort = "open_tickets" if match.group("state") else "tickets"
        sentence.consume(indices)
    found = sentence.first(TICKETS_MOST)
    if found is not None:
        match, indices = found
        state.sort = "open_tickets" if match.group("state") else "tickets"
        state.descending = not any(sentence.tokens[i].low in ("fewest", "least") for i in indices)
        sentence.consume(indices)
    for pattern, op, value in ((TICKETS_NONE, "<=", 0.0), (TICKETS_ANY, ">=", 1.0)):
        for match, indices in sentence.find(pattern):
            groups = match.groupdict()
            opened = bool(groups.get("state") or groups.get("after"))
            field_name = "open_tickets" if opened else "tickets"
            state.thresholds.append(Threshold(field_name, op, value))  # type: ignore[arg-type]
            sentence.consume(indices)
    found = sentence.first(TIME_TO_CLOSE)
    if found is not None:
        state.entity, state.measure = "tickets", "resolution_days"
        state.metric = state.metric if state.metric in ("avg", "sum") else "avg"
        sentence.consume(found[1])
    for match, indices in sentence.find(TICKETS_STATED):
        said = match.group("before") or match.group("after")
        if said:
            state.status = "open" if said in OPEN_STATES else "closed"
            if state.status == "closed":
                state.date_field = "closed"
        if match.group("opened"):
            state.date_field = "opened"
        if match.group("channel"):
            state.add(state.channels, [_CHANNELS[match.group("channel")]])
        state.entity = "tickets"
        sentence.consume(indices)
    if state.entity == "tickets":
        _opening_verb(sentence, state)
        for i in sentence.unused():
            channel = _CHANNELS.get(sentence.tokens[i].low)
            if channel is not None:
                state.add(state.channels, [channel])
                sentence.consume([i])


# How a ticket came in, as the words say it -> as the CRM spells it.
_CHANNELS = {
    "email": "email",
    "emails": "email",
    "mail": "email",
    "chat": "chat",
    "chats": "chat",
    "phone": "phone",
    "call": "phone",
    "calls": "phone",
    "web": "web",
    "social": "social",
}


_AUXILIARIES = frozenset({"did", "do", "does", "have", "has", "had"})
_OPENING_VERBS = frozenset(
    {"open", "opened", "raise", "raised", "file", "filed", "log", "logged", "submit", "submitted"}
)
_CLOSING_VERBS = frozenset(
    {"close", "closed", "resolve", "resolved", "solve", "solved", "fix", "fixed"}
)


def _opening_verb(sentence: Sentence, state: ParseState) -> None:
    """ "how many tickets did champions open", "did we close": a verb after an auxiliary,
    not a state."""
    tokens = sentence.tokens
    asked = False
    for i in sentence.unused():
        if tokens[i].low in _AUXILIARIES:
            asked = True
        elif asked and tokens[i].low in _OPENING_VERBS:
            state.date_field = state.date_field or "opened"
            sentence.consume([i])
        elif asked and tokens[i].low in _CLOSING_VERBS:
            state.status, state.date_field = "closed", "closed"
            sentence.consume([i])


# ---------------------------------------------------------------------------------------
# Satisfaction


def satisfaction(sentence: Sentence, state: ParseState) -> None:
    """NPS categories ("detractors"), sentiment ("angry customers"), bands ("high CLV"),
    and survey answers as the rows ("feedback last month")."""
    for pattern, category in NPS_CATEGORIES:
        for _match, indices in sentence.find(pattern):
            state.add(state.nps_categories, [category])
            sentence.consume(indices)
    for pattern, threshold in SENTIMENT:
        for _match, indices in sentence.find(pattern):
            state.thresholds.append(threshold)
            sentence.consume(indices)
    for pattern, band in BANDS:
        for _match, indices in sentence.find(pattern):
            if band not in state.bands:
                state.bands.append(band)
            sentence.consume(indices)
    found = sentence.first(SURVEYS)
    if found is not None:
        state.surveys = True
        state.entity = state.entity or "feedback"
        text = " ".join(sentence.tokens[i].low for i in found[1])
        if "csat" in text:
            state.measure = state.measure or "csat"
        elif "nps" in text:
            state.measure = state.measure or "nps"
        sentence.consume(found[1])


def nps(sentence: Sentence, state: ParseState) -> None:
    """ "what is our NPS", "NPS by region": the net promoter score of survey answers —
    unless an average or a total of the answers was asked for ("average NPS")."""
    found = sentence.first(NPS)
    if found is None:
        return
    if state.metric in ("avg", "sum"):
        state.measure = state.measure or "nps"
    else:
        state.metric = "nps"
    state.surveys = True
    state.entity = state.entity or "feedback"
    sentence.consume(found[1])


# ---------------------------------------------------------------------------------------
# Products


def product_words(sentence: Sentence, state: ParseState) -> None:
    """ "best sellers", "top products", "units sold": products are the rows."""
    found = sentence.first(PRODUCT_ROWS)
    if found is not None:
        match, indices = found
        state.product_rows = True
        text = match.group(0)
        if text.startswith(("worst", "least", "slowest")):
            state.descending = False
        if text.startswith("top "):
            state.limit = state.limit or 10
        if any(w in text for w in ("popular", "sold", "bought", "selling", "seller")):
            state.sort = state.sort or "units"
        sentence.consume(indices)
    found = sentence.first(UNITS)
    if found is not None:
        state.product_rows = True
        state.measure = "units"
        if "how many" in found[0].group(0):
            state.metric = "sum"
        sentence.consume(found[1])
    for _match, indices in sentence.find(SOLD):
        state.product_rows = True
        sentence.consume(indices)


def bought(sentence: Sentence, state: ParseState) -> None:
    """ "who bought Descaler", "buyers of the French Press": once products are named."""
    if not (state.products or state.categories or state.not_products):
        return
    for _match, indices in sentence.find(BOUGHT):
        state.bought = True
        sentence.consume(indices)


# ---------------------------------------------------------------------------------------
# "my best customers"; "in the At risk segment"


def best_customers(sentence: Sentence, state: ParseState) -> None:
    """ "best", "biggest", "most loyal" said of customers: ranked by CLV, spend, orders."""
    for pattern, measure, descending in BEST_CUSTOMERS:
        found = sentence.first(pattern)
        if found is None:
            continue
        if state.sort is None and not state.group_by:
            state.sort, state.descending = measure, descending
        elif state.group_by:
            state.measure = state.measure or measure
        sentence.consume(found[1])


_FRAMES = {
    "segment": "segments",
    "segments": "segments",
    "region": "regions",
    "regions": "regions",
    "company": "companies",
    "product": "products",
    "products": "products",
    "category": "categories",
}


def framing(sentence: Sentence, state: ParseState) -> None:
    """ "the At risk segment", "in segment Champions", "the EMEA region": the kind of a name
    that was placed."""
    for i in sentence.unused():
        word = sentence.tokens[i].low
        target = _FRAMES.get(word)
        if target is None:
            continue
        excluded = getattr(state, f"not_{target}", [])
        if getattr(state, target) or excluded:
            sentence.consume([i])
