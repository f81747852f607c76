"""`canonicalize`: a query built elsewhere (by a language model) mapped onto the names the
CRM spells, with what could not be mapped."""

from __future__ import annotations

from crmbot.ask.parse.matcher import matcher_for
from crmbot.ask.parse.tokens import echo_safe, normalize_phrase
from crmbot.ask.parse.vocabulary import Vocabulary
from crmbot.ask.query import StructuredQuery


def canonicalize(query: StructuredQuery, vocab: Vocabulary) -> tuple[StructuredQuery, list[str]]:
    """`query` with every name mapped onto the vocabulary's spelling ("emea" -> "EMEA"), and
    what could not be mapped. For queries that did not come from `parse_question`."""
    matcher = matcher_for(vocab)
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
                problems.append(f"the CRM has no {kind} “{echo_safe(value)}”")
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
        not_segments=mapped(query.not_segments, "segment"),
        not_regions=mapped(query.not_regions, "region"),
        not_owners=mapped(query.not_owners, "owner"),
        not_companies=mapped(query.not_companies, "company"),
        products=mapped(query.products, "product"),
        not_products=mapped(query.not_products, "product"),
        categories=mapped(query.categories, "category"),
        customer=customer,
        customer_name=customer_name,
    )
    return fixed, problems + fixed.problems()
