"""`parse_question`: the order the phrase rules run in.

Each rule consumes the words it understands, so the order matters: an offer first (it is
the whole question), then phrases with numbers, dates and owners, then grouping, ranking
and metrics, then names in whatever words are left, and the words naming the rows last."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date

from crmbot.ask.parse import rules_answer, rules_areas, rules_filters, rules_subject
from crmbot.ask.parse.assemble import ParseResult, finish
from crmbot.ask.parse.matcher import matcher_for
from crmbot.ask.parse.state import ParseState
from crmbot.ask.parse.tokens import Sentence, tokenize
from crmbot.ask.parse.vocabulary import MAX_QUESTION_CHARS, Vocabulary

_RULES: tuple[Callable[[Sentence, ParseState], None], ...] = (
    rules_subject.customer_ref,
    rules_areas.score_changes,
    rules_subject.segment_moves,
    rules_areas.compare_periods,
    rules_areas.negation,
    rules_filters.thresholds,
    rules_filters.recency,
    rules_areas.tickets,
    rules_areas.satisfaction,
    rules_subject.referrals,
    rules_filters.owners,
    rules_filters.dates,
    rules_subject.orders,
    rules_areas.product_words,
    rules_answer.grouping,
    rules_answer.ranking,
    rules_areas.best_customers,
    rules_answer.metrics,
    rules_areas.nps,
    rules_answer.long_measures,
    rules_filters.names,
    rules_areas.bought,
    rules_answer.short_measures,
    rules_subject.entity_words,
    rules_areas.framing,
)


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
    tokens = tokenize(question, mentions)
    matcher = matcher_for(vocab)
    if not tokens:
        return ParseResult(None, (), ("ask a question, e.g. `champions in EMEA with CLV over 5k`",))
    sentence = Sentence(tokens)
    state = ParseState(
        today=today,
        askers=tuple(a.lower() for a in askers if a),
        matcher=matcher,
        mentions=mentions,
    )
    # An offer is looked for as typed, and again once typos are corrected.
    if rules_subject.offer(sentence, state):
        return finish(sentence, state)
    for token in tokens:
        if not token.low.startswith(("@", "!", "#")):
            token.low = matcher.correct(token.low)
    # "why is Acme at risk": one customer's reasons are `/crm why`'s, never guessed here.
    pointer = rules_areas.why(sentence)
    if pointer is not None:
        return ParseResult(None, (), (pointer,), final=True)
    if rules_subject.offer(sentence, state):
        return finish(sentence, state)
    for rule in _RULES:
        rule(sentence, state)
    return finish(sentence, state)
