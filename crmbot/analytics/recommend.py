"""Next best product: association rules over what customers bought.

Baskets
    One basket per customer who bought anything up to `as_of`: the set of products they ever
    bought (their purchase history), not one basket per order. The offer we make is "a
    product this customer does not have yet", so the question a rule must answer is "of the
    customers who have A and B, how many also have C" — and complementary products are
    often bought in different orders (the machine now, the descaler next month), which
    per-order baskets would miss. Customers who never bought get no basket and no offer.

Rules
    Rules have one or two products on the left and one on the right, so only itemsets of up
    to three products matter, and those are counted exactly over every history with two
    sparse matrix products: pairs as Bᵀ B over the frequent products (in at least
    `MIN_SUPPORT` of baskets and `MIN_SUPPORT_COUNT` customers), triples as Pᵀ B where P
    marks which frequent pairs each customer holds. Apriori's pruning (every part of a
    frequent itemset is frequent) makes that complete. Support, confidence and lift are
    then what mlxtend's FP-growth + `association_rules` give — a test checks the two agree
    rule for rule — but FP-growth builds its tree in Python one basket at a time, which
    took 11 s for 100,000 customers here, against well under a second this way.

    Kept: confidence >= `MIN_CONFIDENCE` and lift >= `MIN_LIFT` (so a product everyone buys
    anyway is not "recommended"); a rule with two products on the left only when it beats
    each of them alone by `MIN_IMPROVEMENT` confidence (Bayardo's minimum improvement: "A
    and B -> C" must say more than "A -> C"), counting only the confidence it has for sure
    (the lower bound of its confidence), not what a few customers happened to do. Strongest
    first, by that lower bound times lift, so a rule a dozen customers happen to follow
    does not outrank one that hundreds do.

Per customer
    A rule fires for a customer who has all its left-hand products and not its right-hand
    one. Which rules fire for whom is one more sparse product (customers x the itemsets
    they hold, times itemsets x the rules they start), in chunks of customers, never a loop
    over products or product pairs. Each product on offer is scored by the best rule that
    fires for it: the lower bound of its confidence x (1 + the product's margin), the
    purchase most likely to happen, weighted by what the company keeps of it. Up to
    `OFFERS_PER_CUSTOMER` products per customer, each with its reason: "78% of customers
    who bought A and B also bought C". The offers (one per rule, reason included) are the
    run's `ctx.offers`, stored once per run; a customer's `next_products` lists the numbers
    of their offers, best first. The run's metrics include a backtest: offers made
    `churn_horizon_days` before as_of, how many came true within that window, beside
    offering the most popular products the customer lacked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from crmbot.analytics.base import RunContext, TrainingData
from crmbot.analytics.graph import run_purchase_pairs
from crmbot.analytics.source.frames import day_end
from crmbot.analytics.source.pandas_source import purchase_pairs

logger = logging.getLogger(__name__)

STAGE = "recommend"

MIN_SUPPORT = 0.005
MIN_SUPPORT_COUNT = 10
MIN_CONFIDENCE = 0.2
MIN_LIFT = 1.2
MAX_ANTECEDENTS = 2
MIN_IMPROVEMENT = 0.05
CONFIDENCE_Z = 1.645  # one-sided 95% for confidence_lower_bound
# Rules carried into scoring, strongest first; bounds how many fire per customer.
MAX_RULES = 2_000
# The most frequent products counted (the pair table is this squared).
MAX_MINED_PRODUCTS = 2_000
OFFERS_PER_CUSTOMER = 3
RULES_RECORDED = 20
# The backtest of a larger book mines and offers on a seeded sample of this many customers.
BACKTEST_CUSTOMERS = 200_000
# Customers whose frequent pairs are listed at a time (`owned_pairs`).
PAIR_BLOCK_ROWS = 100_000
# Cells (customer x offered product, 4 bytes each) of the best-offer table per chunk.
DENSE_CHUNK_CELLS = 10_000_000
MIN_CHUNK_ROWS = 1_000


@dataclass
class Histories:
    """Who bought what: a boolean customers x products CSR matrix and its labels."""

    matrix: sp.csr_array  # rows: positions in ctx.scores.index; columns: `products`
    products: np.ndarray  # product_pk per column

    @property
    def buyers(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.matrix.indptr) > 0)


@dataclass
class Itemsets:
    """Frequent products, pairs and triples, counted over every purchase history.

    "Frequent" products are indexed 0..F-1 (`frequent` maps them to Histories columns);
    pairs 0..P-1 are frequent-product index pairs (first < second).
    """

    baskets: int
    min_count: int
    frequent: np.ndarray
    item_count: np.ndarray
    pair_first: np.ndarray
    pair_second: np.ndarray
    pair_count: np.ndarray
    co_counts: np.ndarray  # frequent x frequent: customers who have both (any count)
    # Who owns each itemset, column by column (rows: customers, sorted within a column):
    # frequent products, and frequent pairs (the customer has both products).
    owners_of_frequent: sp.csc_array
    owners_of_pair: sp.csc_array
    triple_pair: np.ndarray  # (pair, third product, count) for every frequent triple,
    triple_third: np.ndarray  # once per pair inside it
    triple_count: np.ndarray


@dataclass
class Rules:
    """Association rules, strongest first; antecedents as column positions of Histories."""

    antecedents: list[tuple[int, ...]]
    # Which counted itemset is the left-hand side: a frequent product f (0..F-1) or a
    # frequent pair p (F + p). A rule fires for a customer who owns its key.
    key: np.ndarray
    consequent: np.ndarray
    support: np.ndarray
    confidence: np.ndarray
    lift: np.ndarray
    sure_confidence: np.ndarray  # the confidence's lower bound: what offers rank by
    strength: np.ndarray  # the lower bound of the confidence x lift: what rules rank by
    baskets: int  # how many purchase histories the rules were counted on

    def __len__(self) -> int:
        return len(self.consequent)


def purchase_histories(data: TrainingData, customers: pd.Index) -> Histories:
    return histories_of(purchase_pairs(data, customers), len(customers))


def histories_of(pairs: pd.DataFrame, customer_count: int) -> Histories:
    """The customers x products matrix of `purchase_pairs` (customer positions as rows)."""
    products = np.unique(pairs["product_pk"].to_numpy())
    column = np.searchsorted(products, pairs["product_pk"].to_numpy())
    row = pairs["customer"].to_numpy()
    matrix = sp.csr_array(
        (np.ones(len(row), dtype=bool), (row, column)), shape=(customer_count, len(products))
    )
    matrix.sort_indices()
    return Histories(matrix=matrix, products=products)


def _pairs_per_row(owns: sp.csr_array, pair_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, pair id) for every frequent pair of columns two in the same row.

    Walks the offsets d = 1, 2, ... between a row's entries, each step over the entries
    that still have a partner d places on in their row: the work is the number of pairs
    the rows hold, with one vectorised step per offset (never a Python loop over pairs).
    """
    indptr, indices = owns.indptr, owns.indices
    # 32-bit rows and ids: a million customers hold 56 million pairs.
    row = np.repeat(np.arange(owns.shape[0], dtype=np.int32), np.diff(indptr))
    row_end = indptr[1:][row]
    alive = np.arange(len(indices))
    rows, ids = [], []
    step = 1
    while True:
        alive = alive[alive + step < row_end[alive]]
        if len(alive) == 0:
            break
        found = pair_id[indices[alive], indices[alive + step]]
        keep = found >= 0
        rows.append(row[alive][keep])
        ids.append(found[keep])
        step += 1
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # One list at a time: 224 MB less at the peak for a million customers.
    all_rows = np.concatenate(rows)
    del rows
    return all_rows, np.concatenate(ids)


def owned_pairs(owns: sp.csr_array, pair_id: np.ndarray, pairs: int) -> sp.csr_array:
    """Customers x frequent pairs: True where the customer holds both products of a pair.

    Built `PAIR_BLOCK_ROWS` customers at a time and joined into one matrix block by block:
    made at once, a million customers' 56 million (customer, pair) entries were held as
    row and column lists and as the matrix together, 0.8 GB at once."""
    blocks = []
    for start in range(0, owns.shape[0], PAIR_BLOCK_ROWS):
        block = owns[start : start + PAIR_BLOCK_ROWS]
        rows, ids = _pairs_per_row(block, pair_id)
        blocks.append(
            sp.csr_array(
                (np.ones(len(rows), dtype=bool), (rows, ids)), shape=(block.shape[0], pairs)
            )
        )
        del rows, ids
    return _stacked(blocks, owns.shape[0], pairs)


def _stacked(blocks: list[sp.csr_array], rows: int, columns: int) -> sp.csr_array:
    """The boolean CSR blocks one under the other, each freed as soon as it is copied."""
    entries = sum(block.nnz for block in blocks)
    index = np.int32 if max(entries, rows, columns) < np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(rows + 1, dtype=index)
    indices = np.empty(entries, dtype=index)
    row = at = 0
    blocks.reverse()
    while blocks:
        block = blocks.pop()
        size = block.shape[0]
        indptr[row + 1 : row + size + 1] = block.indptr[1:] + at
        indices[at : at + block.nnz] = block.indices
        row, at = row + size, at + block.nnz
        del block
    return sp.csr_array((np.ones(entries, dtype=bool), indices, indptr), shape=(rows, columns))


def count_itemsets(histories: Histories) -> Itemsets:
    """Counts of the frequent products, pairs and triples (at most three products: rules
    have one or two on the left and one on the right). Apriori's pruning makes this exact:
    a frequent pair has frequent products and a frequent triple has frequent pairs, so the
    pairs are counted among frequent products only (one sparse product, Bᵀ B) and the
    triples among customers holding a frequent pair (one more, owns_pairᵀ B)."""
    matrix = histories.matrix
    baskets = len(histories.buyers)
    min_count = int(np.ceil(max(MIN_SUPPORT * baskets, MIN_SUPPORT_COUNT)))
    counts = np.asarray(matrix.sum(axis=0)).ravel().astype(np.int64)
    frequent = np.flatnonzero(counts >= min_count)
    if len(frequent) > MAX_MINED_PRODUCTS:
        frequent = np.sort(
            frequent[np.argsort(-counts[frequent], kind="stable")][:MAX_MINED_PRODUCTS]
        )
    owns = sp.csr_array(matrix[:, frequent], dtype=np.int32)
    owns.sort_indices()
    size = len(frequent)
    co_counts = (owns.T @ owns).toarray().astype(np.int64)
    together = sp.coo_array(co_counts)
    upper = (together.row < together.col) & (together.data >= min_count)
    first = together.row[upper].astype(np.int64)
    second = together.col[upper].astype(np.int64)
    order = np.lexsort((second, first))
    first, second, pair_count = first[order], second[order], together.data[upper][order]
    pair_id = np.full((size, size), -1, dtype=np.int32)
    pair_id[first, second] = np.arange(len(first), dtype=np.int32)
    owns_pair = owned_pairs(owns, pair_id, len(first))
    # (Counted from the row-major matrix: from a column-major one built directly the same
    # product took 15 s instead of 10 s at a million customers.)
    triples = (owns_pair.T @ owns).tocoo()
    # Kept column by column, as `best_offers` reads it: as a bool CSC the 57 million
    # (customer, pair) entries of a million customers take 280 MB.
    owners_of_pair = owns_pair.tocsc()
    del owns_pair
    owners_of_pair.sort_indices()
    owners_of_frequent = sp.csc_array(owns, dtype=bool)
    owners_of_frequent.sort_indices()
    third_is_new = (triples.col != first[triples.row]) & (triples.col != second[triples.row])
    keep = third_is_new & (triples.data >= min_count)
    return Itemsets(
        baskets=baskets,
        min_count=min_count,
        frequent=frequent,
        item_count=counts[frequent],
        pair_first=first,
        pair_second=second,
        pair_count=pair_count.astype(np.int64),
        co_counts=co_counts,
        owners_of_frequent=owners_of_frequent,
        owners_of_pair=owners_of_pair,
        triple_pair=triples.row[keep].astype(np.int64),
        triple_third=triples.col[keep].astype(np.int64),
        triple_count=triples.data[keep].astype(np.int64),
    )


def confidence_lower_bound(confidence: np.ndarray, customers: np.ndarray) -> np.ndarray:
    """The Wilson score lower bound (one-sided 95%) of a confidence seen on `customers`
    customers: 10 of 10 gives 0.79, 90 of 100 gives 0.84, 900 of 1000 gives 0.88."""
    n = np.maximum(np.asarray(customers, dtype=float), 1.0)
    p = np.asarray(confidence, dtype=float)
    z2 = CONFIDENCE_Z**2
    centre = p + z2 / (2 * n)
    spread = CONFIDENCE_Z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return np.asarray((centre - spread) / (1 + z2 / n))


def mine_rules(itemsets: Itemsets) -> Rules:
    """Rules X -> y with support, confidence and lift, as mlxtend's `association_rules`
    computes them from FP-growth's itemsets (a test checks the two agree); kept when
    confidence >= MIN_CONFIDENCE and lift >= MIN_LIFT (and, for two products on the left,
    a sure improvement over each alone), strongest first."""
    baskets = itemsets.baskets
    size = len(itemsets.frequent)
    # One product on the left: both directions of every frequent pair.
    left_single = np.concatenate([itemsets.pair_first, itemsets.pair_second])
    right_single = np.concatenate([itemsets.pair_second, itemsets.pair_first])
    both_single = np.concatenate([itemsets.pair_count, itemsets.pair_count])
    # Two on the left: every frequent triple, once per pair inside it.
    key = np.concatenate([left_single, size + itemsets.triple_pair])
    right = np.concatenate([right_single, itemsets.triple_third])
    together = np.concatenate([both_single, itemsets.triple_count]).astype(float)
    left_count = np.concatenate(
        [itemsets.item_count[left_single], itemsets.pair_count[itemsets.triple_pair]]
    ).astype(float)
    support = together / max(baskets, 1)
    confidence = together / np.maximum(left_count, 1.0)
    lift = confidence / (itemsets.item_count[right] / max(baskets, 1))
    surely = confidence_lower_bound(confidence, left_count)
    keep = (confidence >= MIN_CONFIDENCE) & (lift >= MIN_LIFT)
    # A second product on the left must add something: "bought A and B -> C" is kept only
    # when it beats both "bought A -> C" and "bought B -> C" by MIN_IMPROVEMENT even at the
    # lower bound of its confidence. Otherwise any product padded onto a strong rule makes
    # one more rule, and a dozen customers who happen to share three products make a
    # "100%" rule.
    pair_rules = np.flatnonzero(key >= size)
    pair = key[pair_rules] - size
    third = right[pair_rules]
    alone = np.maximum(
        itemsets.co_counts[itemsets.pair_first[pair], third]
        / itemsets.item_count[itemsets.pair_first[pair]],
        itemsets.co_counts[itemsets.pair_second[pair], third]
        / itemsets.item_count[itemsets.pair_second[pair]],
    )
    keep[pair_rules] &= surely[pair_rules] >= alone + MIN_IMPROVEMENT
    key, right = key[keep], right[keep]
    support, confidence, lift = support[keep], confidence[keep], lift[keep]
    # Strongest first: the confidence we are sure of times lift, so a rule a handful of
    # customers happen to follow does not outrank one hundreds do. Ties by support, then
    # by the products, so runs agree.
    strength = surely[keep] * lift
    order = np.lexsort((right, key, -support, -strength))[:MAX_RULES]
    key, right = key[order], right[order]
    columns = itemsets.frequent
    antecedents: list[tuple[int, ...]] = []
    for k in key.tolist():
        if k < size:
            antecedents.append((int(columns[k]),))
        else:
            p = k - size
            antecedents.append(
                (int(columns[itemsets.pair_first[p]]), int(columns[itemsets.pair_second[p]]))
            )
    return Rules(
        antecedents=antecedents,
        key=key,
        consequent=columns[right].astype(np.int64),
        support=support[order],
        confidence=confidence[order],
        lift=lift[order],
        sure_confidence=surely[keep][order],
        strength=strength[order],
        baskets=baskets,
    )


def _no_rules(baskets: int) -> Rules:
    empty = np.zeros(0)
    none = np.zeros(0, dtype=np.int64)
    return Rules([], none, none, empty, empty, empty, empty, empty, baskets)


def product_margins(data: TrainingData, products: np.ndarray) -> np.ndarray:
    """Margin share (0..1) per product; unknown margins count as the catalogue's median."""
    catalogue = data.products
    if "margin" not in catalogue.columns:
        return np.zeros(len(products))
    known = pd.to_numeric(catalogue["margin"], errors="coerce")
    fallback = float(known.median()) if known.notna().any() else 0.0
    margin = known.reindex(products).fillna(fallback).clip(0.0, 1.0)
    return margin.to_numpy(dtype=float)


def offer_scores(rules: Rules, margin: np.ndarray) -> np.ndarray:
    """How good an offer each rule makes: the chance of a purchase we are sure of (the
    confidence's lower bound) weighted by the share of the price the company keeps. Lift
    already had its say (a rule needs lift >= MIN_LIFT); ranking offers by it as well
    favoured rare products, and offers made 90 and 180 days before the sample company's
    as_of came true less often than offering the most popular products."""
    return rules.sure_confidence * (1.0 + margin[rules.consequent])


def best_offers(
    histories: Histories, itemsets: Itemsets, rules: Rules, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(customer position, rule) of each customer's offers, best first within a customer.

    A rule fires for a customer who owns its left-hand itemset (`Itemsets.owners_of_*`).
    Offers are distinct products the customer does
    not have, each by its best-scoring rule, at most `OFFERS_PER_CUSTOMER`.

    Per chunk of customers, a table customers x offered products holds the rank of the best
    rule that offers the product: rules are written worst first, each to the rows of the
    customers who own its left-hand side, so a better rule overwrites a worse one. The work
    is one vectorised write per rule — not a list of every firing (11.5 million for 2,000
    rules over 100,000 customers) sorted afterwards.
    """
    if len(rules) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # Rule ids best first: by offer score, then by rule strength (the rules' own order).
    ranked = np.lexsort((np.arange(len(rules)), -score))
    targets, target_column = np.unique(rules.consequent, return_inverse=True)
    unset = len(rules)  # ranks beyond every rule: "no offer"
    matrix = histories.matrix
    chunk_rows = max(MIN_CHUNK_ROWS, DENSE_CHUNK_CELLS // len(targets))
    offers = min(OFFERS_PER_CUSTOMER, len(targets))
    customers_out, rules_out = [], []
    frequent = len(itemsets.frequent)
    owners_of_key = [
        _owners(itemsets.owners_of_frequent, k)
        if k < frequent
        else _owners(itemsets.owners_of_pair, k - frequent)
        for k in rules.key.tolist()
    ]
    for start in range(0, matrix.shape[0], chunk_rows):
        stop = min(start + chunk_rows, matrix.shape[0])
        best = np.full((stop - start, len(targets)), unset, dtype=np.int32)
        for rank in range(len(ranked) - 1, -1, -1):
            rule = ranked[rank]
            owners = owners_of_key[rule]
            first, last = np.searchsorted(owners, (start, stop))
            best[owners[first:last] - start, target_column[rule]] = rank
        # Never offer what the customer already has.
        best[sp.csr_array(matrix[start:stop][:, targets]).toarray()] = unset
        top = np.argpartition(best, offers - 1, axis=1)[:, :offers]
        top_ranks = np.sort(np.take_along_axis(best, top, axis=1), axis=1)
        customer, slot = np.nonzero(top_ranks < unset)
        customers_out.append(customer + start)
        rules_out.append(ranked[top_ranks[customer, slot]])
    return np.concatenate(customers_out), np.concatenate(rules_out)


def _owners(owned_by: sp.csc_array, column: int) -> np.ndarray:
    """The rows (customer positions, ascending) holding this column's itemset."""
    return owned_by.indices[owned_by.indptr[column] : owned_by.indptr[column + 1]]


def backtest(
    data: TrainingData, pairs: pd.DataFrame, customer_count: int, window_days: int, seed: int
) -> dict[str, Any]:
    """How often the offers come true: mine and offer as of `window_days` before as_of,
    then count the customers who bought one of their offered products within the window —
    beside the same count for offering the most popular products they did not have.

    `pairs` are the run's `purchase_pairs`: what a customer had bought by the cutoff is the
    pairs first bought before it. A book of more than `BACKTEST_CUSTOMERS` customers is
    backtested on a seeded sample of them, rules mined on the sample as well."""
    cutoff = data.as_of - timedelta(days=window_days)
    record: dict[str, Any] = {"window_days": window_days, "offered_on": cutoff.isoformat()}
    if customer_count > BACKTEST_CUSTOMERS:
        sample = np.sort(
            np.random.default_rng(seed).choice(customer_count, BACKTEST_CUSTOMERS, replace=False)
        )
        pairs = pairs[np.isin(pairs["customer"].to_numpy(), sample)]
        pairs = pairs.assign(customer=np.searchsorted(sample, pairs["customer"].to_numpy()))
        customer_count = BACKTEST_CUSTOMERS
        record["sampled_customers"] = BACKTEST_CUSTOMERS
    known = pairs["first_at"] < pd.Timestamp(day_end(cutoff))
    then = histories_of(pairs[known], customer_count)
    if len(then.buyers) == 0:
        return {**record, "skipped_because": f"no purchases up to {cutoff.isoformat()}"}
    itemsets = count_itemsets(then)
    rules = mine_rules(itemsets)
    if len(rules) == 0:
        return {**record, "skipped_because": f"no rules as of {cutoff.isoformat()}"}
    margin = product_margins(data, then.products)
    customer, rule = best_offers(then, itemsets, rules, offer_scores(rules, margin))
    offered = then.products[rules.consequent[rule]]
    # What each customer bought for the first time within the window.
    new = pairs[~known]
    bought = np.sort(_pair_keys(new["customer"].to_numpy(), new["product_pk"].to_numpy()))
    offered_customers = np.unique(customer)
    # The popularity baseline: the products most customers had, first three each lacks.
    popular = np.argsort(-np.asarray(then.matrix.sum(axis=0)).ravel(), kind="stable")[:20]
    owned = then.matrix[offered_customers][:, popular].toarray()
    rank_among_missing = np.cumsum(~owned, axis=1)
    pick = ~owned & (rank_among_missing <= OFFERS_PER_CUSTOMER)
    rows, cols = np.nonzero(pick)
    base_customer = offered_customers[rows]
    base_offered = then.products[popular[cols]]
    return {
        **record,
        "customers_with_offers": len(offered_customers),
        "hit_rate": _hit_rate(customer, offered, bought),
        "popular_baseline_hit_rate": _hit_rate(base_customer, base_offered, bought),
    }


def _pair_keys(customer: np.ndarray, product_pk: np.ndarray) -> np.ndarray:
    return customer.astype(np.int64) * (1 << 32) + product_pk.astype(np.int64)


def _hit_rate(customer: np.ndarray, product_pk: np.ndarray, bought: np.ndarray) -> float:
    """Share of the customers offered anything who then bought something offered."""
    if len(customer) == 0:
        return 0.0
    keys = _pair_keys(customer, product_pk)
    at = np.minimum(np.searchsorted(bought, keys), max(len(bought) - 1, 0))
    hit = (bought[at] == keys) if len(bought) else np.zeros(len(keys), dtype=bool)
    return round(len(np.unique(customer[hit])) / len(np.unique(customer)), 4)


def _names(ctx: RunContext, products: np.ndarray) -> tuple[list[str], list[str]]:
    catalogue = ctx.data.products
    ids = catalogue["product_id"].reindex(products) if "product_id" in catalogue else None
    names = catalogue["name"].reindex(products) if "name" in catalogue else None
    product_ids = [
        str(ids.iloc[i]) if ids is not None and pd.notna(ids.iloc[i]) else str(int(pk))
        for i, pk in enumerate(products)
    ]
    product_names = [
        str(names.iloc[i]) if names is not None and pd.notna(names.iloc[i]) else product_ids[i]
        for i in range(len(products))
    ]
    return product_ids, product_names


def _joined(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def rule_reason(antecedents: list[str], consequent: str, confidence: float) -> str:
    """'78% of customers who bought A and B also bought C'."""
    return (
        f"{confidence:.0%} of customers who bought {_joined(antecedents)} also bought {consequent}"
    )


def _rule_records(rules: Rules, ids: list[str], names: list[str]) -> list[dict[str, Any]]:
    records = []
    for r in range(len(rules)):
        left = list(rules.antecedents[r])
        right = int(rules.consequent[r])
        records.append(
            {
                "antecedents": [names[i] for i in left],
                "antecedent_ids": [ids[i] for i in left],
                "consequent": names[right],
                "consequent_id": ids[right],
                "support": round(float(rules.support[r]), 4),
                "confidence": round(float(rules.confidence[r]), 4),
                "lift": round(float(rules.lift[r]), 3),
                "reason": rule_reason(
                    [names[i] for i in left], names[right], float(rules.confidence[r])
                ),
            }
        )
    return records


def _settings_record() -> dict[str, Any]:
    """How rules are mined and offers ranked, as a run records it."""
    return {
        "baskets": "customer purchase histories (every product a customer bought up to as_of)",
        "min_support": MIN_SUPPORT,
        "min_support_customers": MIN_SUPPORT_COUNT,
        "min_confidence": MIN_CONFIDENCE,
        "min_lift": MIN_LIFT,
        "max_antecedents": MAX_ANTECEDENTS,
        "min_improvement": MIN_IMPROVEMENT,
        "rule_strength": "lower bound (one-sided 95%) of the confidence x lift",
        "offer_score": "lower bound of the confidence x (1 + margin)",
    }


def _offer(record: dict[str, Any]) -> dict[str, Any]:
    """The offer a rule makes, as the run stores it once for every customer it fits."""
    return {
        "product_id": record["consequent_id"],
        "name": record["consequent"],
        "confidence": record["confidence"],
        "lift": record["lift"],
        "support": record["support"],
        "reason": record["reason"],
    }


def _offers_per_customer(
    customer: np.ndarray, rule: np.ndarray, rows: int
) -> list[list[int] | None]:
    """Each customer row's offer numbers, best first (None for a customer with none)."""
    offers: list[list[int] | None] = [None] * rows
    if len(customer):
        # Each customer's offers are one slice of the list of all offers.
        grouped = np.argsort(customer, kind="stable")
        customer, rule = customer[grouped], rule[grouped]
        every_offer = rule.tolist()
        starts = np.flatnonzero(np.r_[True, customer[1:] != customer[:-1]])
        ends = np.r_[starts[1:], len(customer)]
        slices = zip(customer[starts].tolist(), starts.tolist(), ends.tolist(), strict=True)
        for position, start, end in slices:
            offers[position] = every_offer[start:end]
    return offers


def run(ctx: RunContext) -> None:
    """Fill `next_products` of `ctx.scores` (see the module docstring)."""
    settings_record = _settings_record()
    ctx.scores["next_products"] = pd.Series(
        [None] * len(ctx.scores), index=ctx.scores.index, dtype=object
    )
    customers = pd.Index(ctx.scores.index)
    pairs = run_purchase_pairs(ctx)
    histories = histories_of(pairs, len(customers))
    buyers = histories.buyers
    skipped = None
    rules = _no_rules(0)
    if len(buyers) == 0:
        skipped = "no current customer has an order line up to as_of"
    else:
        itemsets = count_itemsets(histories)
        rules = mine_rules(itemsets)
        if len(rules) == 0:
            skipped = (
                "no products are bought together often enough for a rule (support >= "
                f"{MIN_SUPPORT:.1%} and {MIN_SUPPORT_COUNT} customers, confidence >= "
                f"{MIN_CONFIDENCE:.0%}, lift >= {MIN_LIFT})"
            )
    offers_made = 0
    customers_with_offers = 0
    records: list[dict[str, Any]] = []
    if skipped is None:
        ids, names = _names(ctx, histories.products)
        records = _rule_records(rules, ids, names)
        margin = product_margins(ctx.data, histories.products)
        score = offer_scores(rules, margin)
        customer, rule = best_offers(histories, itemsets, rules, score)
        # One offer per rule, stored once for the run; a customer's row lists offer numbers.
        ctx.offers = [_offer(record) for record in records]
        offers = _offers_per_customer(customer, rule, len(ctx.scores))
        ctx.scores["next_products"] = pd.Series(offers, index=ctx.scores.index, dtype=object)
        offers_made = len(customer)
        customers_with_offers = len(np.unique(customer))
    else:
        logger.info("next best product not computed: %s", skipped)

    ctx.params[STAGE] = {
        **settings_record,
        "customers_with_history": len(buyers),
        "products": len(histories.products),
        "skipped_because": skipped,
        "rules": records[:RULES_RECORDED],
    }
    ctx.metrics[STAGE] = {
        "backtest": (
            backtest(
                ctx.data,
                pairs,
                len(customers),
                ctx.settings.churn_horizon_days,
                ctx.settings.random_seed,
            )
            if skipped is None
            else {"skipped_because": skipped}
        ),
        "rules": len(rules),
        "customers_with_offers": customers_with_offers,
        "offers": offers_made,
        "coverage": round(customers_with_offers / len(buyers), 4) if len(buyers) else 0.0,
    }
