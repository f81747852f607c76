"""Phrase rules for what a question is about: an offer for one customer, a customer by id,
segment moves, referrals, orders, or customers."""

from __future__ import annotations

from crmbot.ask.parse.matcher import Matcher
from crmbot.ask.parse.patterns import (
    CUSTOMER_REF,
    MOVE_VERB,
    OFFER,
    ORDER_VALUE,
    REFERRALS,
    REVENUE,
    SIGNED_UP,
)
from crmbot.ask.parse.state import ParseState
from crmbot.ask.parse.tokens import Sentence
from crmbot.ask.parse.vocabulary import CUSTOMER_WORDS, ORDER_NOUNS

# Segment names are looked for in windows of up to this many words.
_SEGMENT_PHRASE_WORDS = 4
_MOVE_FROM = ("from", "out")
_MOVE_TO = ("to", "into", "in")
# Verbs after which a bare segment name is where the customers went: "became champions".
_BECAME = ("became", "become", "becoming", "turned")
# Verbs that ask about moves even without a segment named: "who moved this month".
_MOVED = ("moved", "changed", "migrated", "shifted")


def offer(sentence: Sentence, state: ParseState) -> bool:
    """ "What should I offer to <customer>": the whole question, or nothing of it."""
    for pattern in OFFER:
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
        said = sentence.group_indices(match, "ref")
        if _names_a_group(sentence, said, state.matcher):
            # "what should we offer Champions in EMEA": the group's offers; the names are
            # placed by the rules that follow.
            state.entity = "offer"
            sentence.consume(i for i in range(len(sentence.tokens)) if i not in said)
            return False
        state.entity = "offer"
        state.customer, state.customer_name = state.matcher.customer(ref)
        sentence.consume(range(len(sentence.tokens)))
        return True
    return False


# Words around the names of a group of customers ("the customers in the At risk segment").
_GROUP_FILLERS = frozenset(
    {
        "customers",
        "clients",
        "accounts",
        "the",
        "our",
        "segment",
        "segments",
        "in",
        "of",
        "all",
        "who",
        "are",
        "region",
        "from",
        "with",
        "those",
        "people",
        "and",
        "or",
    }
)
_GROUP_KINDS = ("segment", "region", "company", "owner", "cluster")


def _names_a_group(sentence: Sentence, indices: list[int], matcher: Matcher) -> bool:
    """Whether the words at `indices` begin with a segment, region, company or owner (or
    "my customers"): a group of customers rather than one customer."""
    words = [sentence.tokens[i].low for i in indices]
    words = [w for w in words if w not in _GROUP_FILLERS]
    if not words:
        return False
    if words[0] in ("my", "mine") or words[0].startswith("@"):
        return True
    # The words begin with a group's name; what follows ("in EMEA", "by region") is read
    # by the rules like any other question.
    return any(
        matcher.best(" ".join(words[:size]), _GROUP_KINDS)
        for size in range(min(4, len(words)), 0, -1)
    )


def customer_ref(sentence: Sentence, state: ParseState) -> None:
    found = sentence.first(CUSTOMER_REF)
    if found:
        match, indices = found
        state.customer, state.customer_name = state.matcher.customer(
            sentence.raw(sentence.group_indices(match, "id"))
        )
        sentence.consume(indices)


def segment_moves(sentence: Sentence, state: ParseState) -> None:
    """ "moved from Champions to At risk", "became champions", "dropped out of Loyal"."""
    found = sentence.first(MOVE_VERB)
    if found is None:
        return
    _match, verb_indices = found
    verb = sentence.tokens[verb_indices[0]].low
    tokens = sentence.tokens
    i = verb_indices[-1] + 1
    consumed = list(verb_indices)
    moved = False
    while i < len(tokens):
        step = _move_step(sentence, state, i, verb)
        if step is None:
            break
        taken, named = step
        consumed += taken
        i += len(taken)
        moved = moved or named
    if moved or verb in _MOVED:
        state.entity = "segment_moves"
        sentence.consume(consumed)
        if i < len(tokens) and tokens[i].low == "segments":
            sentence.consume([i])


def _move_step(
    sentence: Sentence, state: ParseState, i: int, verb: str
) -> tuple[list[int], bool] | None:
    """The words from `i` that are part of the move ("from <segment>", "into <segment>",
    a lone "out"), and whether they named a segment; None where the move ends."""
    tokens = sentence.tokens
    word = tokens[i].low
    if word in _MOVE_FROM or (word == "of" and i > 0 and tokens[i - 1].low == "out"):
        names, size = _segment_at(sentence, i + 1, state.matcher)
        if names:
            state.add(state.from_segments, names)
            return list(range(i, i + 1 + size)), True
        if word == "out":
            return [i], False
        return None
    if word in _MOVE_TO:
        nxt = i + 1
        if word == "in" and nxt < len(tokens) and tokens[nxt].low == "to":
            nxt += 1
        names, size = _segment_at(sentence, nxt, state.matcher)
        if names:
            state.add(state.segments, names)
            return list(range(i, nxt + size)), True
        return None
    names, size = _segment_at(sentence, i, state.matcher)
    if names and verb in _BECAME:
        state.add(state.segments, names)
        return list(range(i, i + size)), True
    return None


def _segment_at(sentence: Sentence, start: int, matcher: Matcher) -> tuple[list[str], int]:
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


def referrals(sentence: Sentence, state: ParseState) -> None:
    for pattern, kind in REFERRALS:
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


def orders(sentence: Sentence, state: ParseState) -> None:
    """Order value and revenue make the rows orders; "signed up" with a date asks when
    customers joined; bare order nouns are left for `finish` to weigh."""
    found = sentence.first(ORDER_VALUE)
    if found:
        _match, indices = found
        state.entity, state.metric, state.measure = "orders", state.metric or "avg", "amount"
        if state.metric not in ("avg", "sum"):
            state.metric = "avg"
        sentence.consume(indices)
    found = sentence.first(REVENUE)
    if found and state.entity in (None, "orders"):
        _match, indices = found
        state.entity, state.measure = "orders", "amount"
        sentence.consume(indices)
    if state.date_range is not None:
        found = sentence.first(SIGNED_UP)
        if found and state.entity in (None, "customers"):
            _match, indices = found
            state.date_field = "signed_up"
            sentence.consume(i for i in indices if sentence.tokens[i].low not in CUSTOMER_WORDS)
    # Bare order nouns: which rows are asked about is settled once every rule has run.
    for i in sentence.unused():
        if sentence.tokens[i].low in ORDER_NOUNS:
            if i > 0 and sentence.tokens[i - 1].low in ("most", "fewest", "least"):
                continue  # "the most orders": a ranking, read by `rules_answer`
            state.weak_orders = True
            sentence.consume([i])
    for i in sentence.unused():
        if sentence.tokens[i].low in ("ordered", "bought", "purchased", "placed", "made"):
            state.date_field = state.date_field or "ordered"
            sentence.consume([i])


def entity_words(sentence: Sentence, state: ParseState) -> None:
    """ "customers", "accounts": placed last, as other rules' phrases include them ("customers
    of maria", "new customers", "customers referred")."""
    for i in sentence.unused():
        if sentence.tokens[i].low in CUSTOMER_WORDS:
            if state.entity is None:
                state.entity = "customers"
            sentence.consume([i])
