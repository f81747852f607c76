"""A question in an account manager's words -> a `StructuredQuery`, or the words it could not
place.

How a question is read (`question.parse_question`), each step consuming the words it
understands:

1. Tokenize (`tokens`): Slack markup (``<@U123|maria>`` -> ``@maria``, ``<!channel>`` -> a
   word that is placed nowhere), HTML entities, odd Unicode, punctuation; split into words.
2. Correct typos word by word (`matcher`; rapidfuzz, Damerau-Levenshtein) against the
   keywords (`vocabulary`, `patterns`) and the words of the `Vocabulary` — the database's
   segments, regions, companies, owners.
3. Phrase rules fill a `state.ParseState`, in the order `question` runs them:
   * `rules_subject`: "what should I offer ...", a customer by id, segment moves,
     referrals, orders;
   * `rules_filters`: thresholds ("churn risk over 50%", "more than 5 orders"), recency
     ("no order in 60 days"), owners, dates ("since March", "this quarter", "in Q3"; the
     days they mean come from `dates`);
   * `rules_answer`: grouping ("by region"), ranking ("top 10 ... by CLV"), metrics.
4. Names: n-grams of the words left are fuzzily matched against the vocabulary
   (`rules_filters.names`).
5. Finish (`assemble`): the state becomes a `StructuredQuery`; whatever is left that is not
   a filler word ("which", "the", "show me") is reported back: a question is answered only
   when every word was placed, so nothing is silently dropped.

Dates are relative to an injected `today`; see `resolve_date` for what each phrase means.
`canonicalize` maps a query built elsewhere (by a language model) onto the same names.
"""

from crmbot.ask.parse.assemble import ParseResult
from crmbot.ask.parse.canonical import canonicalize
from crmbot.ask.parse.dates import Period, resolve_date
from crmbot.ask.parse.numbers import parse_number
from crmbot.ask.parse.question import parse_question
from crmbot.ask.parse.tokens import normalize_phrase
from crmbot.ask.parse.vocabulary import MAX_QUESTION_CHARS, SEGMENT_NAMES, Vocabulary

__all__ = [
    "MAX_QUESTION_CHARS",
    "SEGMENT_NAMES",
    "ParseResult",
    "Period",
    "Vocabulary",
    "canonicalize",
    "normalize_phrase",
    "parse_number",
    "parse_question",
    "resolve_date",
]
