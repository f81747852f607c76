"""Phrase rules for the shape of the answer: grouping and charts, ranking and how many,
the metric (count, average, total) and the measure it is about."""

from __future__ import annotations

from crmbot.ask.parse.numbers import count_of
from crmbot.ask.parse.patterns import (
    AVERAGE,
    BARE_TOP,
    BOTTOM_N,
    BY_MEASURE,
    COMPARE,
    COUNT,
    DIRECTION_MEASURE,
    GROUP_BY,
    LONG_MEASURE,
    N_MOST,
    SORT_BY,
    SUPERLATIVES,
    TOP_N,
    TOTAL,
    WHICH_GROUP,
    WITH_THE_MOST,
)
from crmbot.ask.parse.state import ParseState
from crmbot.ask.parse.tokens import Sentence
from crmbot.ask.parse.vocabulary import DIMENSION_WORDS, MEASURE_PHRASES

_LOW_FIRST = ("lowest", "least", "smallest", "worst", "ascending", "asc")


def grouping(sentence: Sentence, state: ParseState) -> None:
    found = sentence.first(COMPARE)
    if found:
        state.chart = True
        sentence.consume(found[1])
    found = sentence.first(WHICH_GROUP)
    if found:
        match, indices = found
        state.group_by = DIMENSION_WORDS[match.group("dim")]
        state.descending = match.group("dir") not in ("lowest", "least", "smallest", "worst")
        sentence.consume(indices)
    for match, indices in sentence.find(GROUP_BY):
        state.group_by = DIMENSION_WORDS[match.group("dim")]
        sentence.consume(indices)
        break
    for i in sentence.unused():
        if sentence.tokens[i].low in ("versus", "vs"):
            sentence.consume([i])


def ranking(sentence: Sentence, state: ParseState) -> None:
    """How many ("top 10"), by what ("riskiest", "sorted by clv") and which way."""
    _how_many(sentence, state)
    for pattern, measure, descending in SUPERLATIVES:
        found = sentence.first(pattern)
        if found:
            state.sort, state.descending = measure, descending
            sentence.consume(found[1])
    _ranked_by(sentence, state)
    found = sentence.first(BARE_TOP)
    if found:
        state.limit = state.limit or 10
        state.descending = True
        sentence.consume(found[1])
    _direction_words(sentence, state)


def _how_many(sentence: Sentence, state: ParseState) -> None:
    for pattern, descending in ((TOP_N, True), (BOTTOM_N, False)):
        found = sentence.first(pattern)
        if found:
            match, indices = found
            state.limit = count_of(match.group("n"))
            state.descending = descending
            sentence.consume(indices)
    found = sentence.first(N_MOST)
    if found:
        match, indices = found
        state.limit = count_of(match.group("n"))
        sentence.consume(indices)


def _ranked_by(sentence: Sentence, state: ParseState) -> None:
    """ "sorted by clv", "with the highest churn risk": the first such phrase only. With a
    grouping the measure is what each group is valued by rather than a sort."""
    for pattern in (SORT_BY, WITH_THE_MOST, DIRECTION_MEASURE, BY_MEASURE):
        found = sentence.first(pattern)
        if not found:
            continue
        match, indices = found
        groups = match.groupdict()
        direction = groups.get("dir") or groups.get("dir2") or ""
        # "by clv" says what, not which way: the direction already read stands.
        descending = state.descending if pattern is BY_MEASURE else direction not in _LOW_FIRST
        measure = MEASURE_PHRASES[match.group("m")]
        if state.group_by:
            state.measure = state.measure or measure
        else:
            state.sort = measure
        state.descending = descending
        sentence.consume(indices)
        return


def _direction_words(sentence: Sentence, state: ParseState) -> None:
    """A lone "highest" or "lowest" sets the direction once something is ranked."""
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


def metrics(sentence: Sentence, state: ParseState) -> None:
    found = sentence.first(COUNT)
    if found:
        match, indices = found
        state.metric = "sum" if match.group(0) == "how much" else "count"
        sentence.consume(indices)
    for pattern, metric in ((AVERAGE, "avg"), (TOTAL, "sum")):
        found = sentence.first(pattern)
        if found:
            state.metric = metric
            sentence.consume(found[1])


def long_measures(sentence: Sentence, state: ParseState) -> None:
    """Measures of several words ("lifetime value"), read before names are matched."""
    for match, indices in sentence.find(LONG_MEASURE):
        _set_measure(state, MEASURE_PHRASES[match.group(0)])
        sentence.consume(indices)


def short_measures(sentence: Sentence, state: ParseState) -> None:
    """One-word measures ("clv", "risk"), read after names so that a name containing one
    stays a name."""
    for i in sentence.unused():
        word = sentence.tokens[i].low
        if word in MEASURE_PHRASES and " " not in word:
            if word in ("orders", "purchases"):
                state.weak_orders = True
            else:
                _set_measure(state, MEASURE_PHRASES[word])
            sentence.consume([i])


def _set_measure(state: ParseState, measure: str) -> None:
    # The first measure named is what is computed; a second one is what to sort by.
    if state.measure is None or state.measure == measure:
        state.measure = measure
    elif state.sort is None:
        state.sort = measure
