"""Customers whose names are near what was typed, through the name index
(`crmbot.core.name_index`): bounded work per lookup, whatever the size of the book.

1. Each typed word (at most `MAX_TYPED_WORDS`) is looked up among the stored words: itself,
   the words it starts (3 letters or more: "hamil" -> "hamilton") and the words that share a
   one-letter-left-out form with it (at most two edits apart: "hamiltn", "hmailton").
   Each stored word is weighed by its similarity to the typed one.
2. The nearest stored words of each typed word are taken while the customers that have
   them stay within the typed word's share of `ROW_BUDGET` (a word more common than the
   whole budget, like "ltd", narrows nothing and is left out); the database ranks those
   customers by how many typed words they match, and how well, and returns the best
   `MAX_CANDIDATES`. At most `ROW_BUDGET` index rows are read, however big the book.

The caller compares those few customers' names in full (`crmbot.queries.customers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session
from sqlmodel import col

from crmbot.core.models import Customer, CustomerNameToken, NameToken, NameTokenVariant
from crmbot.core.name_index import tokens, variants

MAX_TYPED_WORDS = 6
# Stored words taken per typed word: the nearest ones.
NEAR_WORDS = 40
# Words a typed prefix may stand for ("ma" is no prefix: 3 letters at least).
MIN_PREFIX = 3
PREFIX_WORDS = 30
# Index rows (customer, word) read per lookup at most, and customers handed back.
ROW_BUDGET = 50_000
MAX_CANDIDATES = 200
PREFIX_WEIGHT = 0.9


@dataclass(frozen=True)
class Near:
    word: str  # a stored word
    typed: int  # which typed word it stands for
    weight: float  # 1.0 the same word, less the further apart
    customers: int  # how many customers have it


def word_counts(session: Session, words: Sequence[str]) -> dict[str, int]:
    """{stored word: customers that have it} for those of `words` the index holds."""
    if not words:
        return {}
    rows = session.execute(
        select(col(NameToken.token), col(NameToken.customers)).where(
            col(NameToken.token).in_(list(words))
        )
    ).all()
    return {word: int(count) for word, count in rows}


def near_words(session: Session, typed: Sequence[str]) -> list[Near]:
    """The stored words near each typed word, best first."""
    found: dict[str, tuple[float, int]] = {}  # stored word -> (weight, typed index)
    for index, word in enumerate(typed[:MAX_TYPED_WORDS]):
        weights: dict[str, float] = {word: 1.0}
        forms = variants(word)
        if forms:
            for stored in session.execute(
                select(col(NameTokenVariant.token))
                .where(col(NameTokenVariant.variant).in_(sorted(forms)))
                .distinct()
                .limit(NEAR_WORDS * 5)
            ).scalars():
                weights.setdefault(stored, fuzz.ratio(word, stored) / 100)
        if len(word) >= MIN_PREFIX:
            for stored in session.execute(
                select(col(NameToken.token))
                .where(col(NameToken.token) > word, col(NameToken.token) < word + "\U0010ffff")
                .order_by(col(NameToken.token))
                .limit(PREFIX_WORDS)
            ).scalars():
                weights[stored] = max(weights.get(stored, 0.0), PREFIX_WEIGHT)
        best = sorted(weights.items(), key=lambda item: (-item[1], item[0]))[:NEAR_WORDS]
        for stored, weight in best:
            if weight > found.get(stored, (0.0, 0))[0]:
                found[stored] = (weight, index)
    counts = word_counts(session, list(found))
    near = [Near(word, found[word][1], found[word][0], count) for word, count in counts.items()]
    return sorted(near, key=lambda n: (-n.weight, n.customers, n.word))


def within_budget(near: Sequence[Near], budget: int = ROW_BUDGET) -> list[Near]:
    """The words whose customers are read: for each typed word its nearest words, while
    that word's share of `budget` lasts (its best word even beyond, within `budget`). A word
    more common than `budget` narrows nothing and is left out, unless nothing else is left."""
    by_typed: dict[int, list[Near]] = {}
    for candidate in near:
        by_typed.setdefault(candidate.typed, []).append(candidate)
    share = budget // max(1, len(by_typed))
    chosen: list[Near] = []
    for words in by_typed.values():
        rows = 0
        for rank, candidate in enumerate(words):
            if candidate.customers > budget or (rank and rows + candidate.customers > share):
                continue
            chosen.append(candidate)
            rows += candidate.customers
    if not chosen and near:
        chosen = [min(near, key=lambda n: (-n.weight, n.customers))]
    return chosen


def candidate_ids(
    session: Session, text: str, *, scope: Any = None, limit: int = MAX_CANDIDATES
) -> list[int]:
    """Surrogate ids of at most `limit` customers whose name or company words are near
    `text`'s, best first: most typed words matched, then nearest. `scope` (a condition on
    `Customer`) narrows them, e.g. to an owner's book."""
    typed = tokens(text)
    if not typed:
        return []
    chosen = within_budget(near_words(session, typed))
    if not chosen:
        return []
    token = col(CustomerNameToken.token)
    # Which typed word a stored word stands for, and how near it is (in tenths): a few IN
    # lists rather than one branch per word, cheap for every row read.
    groups: dict[tuple[int, float], list[str]] = {}
    for n in chosen:
        groups.setdefault((n.typed, int(n.weight * 10) / 10), []).append(n.word)
    typed_of = case(
        *[
            (token.in_([n.word for n in chosen if n.typed == i]), i)
            for i in {n.typed for n in chosen}
        ]
    )
    weight_of = case(
        *[(token.in_(words), literal(weight)) for (_i, weight), words in sorted(groups.items())]
    )
    rows = select(
        col(CustomerNameToken.customer_pk).label("pk"),
        typed_of.label("typed"),
        weight_of.label("weight"),
    ).where(token.in_([n.word for n in chosen]))
    if scope is not None:
        rows = rows.join(Customer, col(Customer.id) == col(CustomerNameToken.customer_pk)).where(
            scope
        )
    read = rows.limit(ROW_BUDGET).subquery("read")
    per_word = (
        select(read.c.pk, read.c.typed, func.max(read.c.weight).label("weight"))
        .group_by(read.c.pk, read.c.typed)
        .subquery("per_word")
    )
    score = func.sum(per_word.c.weight)
    ranked = (
        select(per_word.c.pk)
        .group_by(per_word.c.pk)
        .order_by(score.desc(), per_word.c.pk)
        .limit(limit)
    )
    return [int(pk) for pk in session.execute(ranked).scalars()]


def exact_name_ids(
    session: Session, text: str, *, scope: Any = None, limit: int
) -> list[int] | None:
    """Ids of customers named `text` (in any case), read only among the customers with its
    rarest word; None when `text` has no index words (the caller then compares the name
    as typed, through the name column's own index)."""
    typed = tokens(text)
    if not typed:
        return None
    counts = word_counts(session, typed)
    if len(counts) < len(typed):
        return []  # a word no customer has: nobody has this name
    rarest = min(counts, key=lambda word: (counts[word], word))
    having = select(col(CustomerNameToken.customer_pk)).where(
        col(CustomerNameToken.token) == rarest
    )
    statement = select(col(Customer.id)).where(
        col(Customer.id).in_(having), func.lower(col(Customer.name)) == text.lower()
    )
    if scope is not None:
        statement = statement.where(scope)
    found = session.execute(statement.order_by(col(Customer.customer_id)).limit(limit))
    return [int(pk) for pk in found.scalars() if pk is not None]
