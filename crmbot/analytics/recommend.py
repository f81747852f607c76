"""Next best product: association rules over what customers bought.

Baskets
    One basket per customer who bought anything up to `as_of`: the set of products they ever
    bought (their purchase history), not one basket per order. The offer we make is "a
    product this customer does not have yet", so the question a rule must answer is "of the
    customers who have A and B, how many also have C" — and complementary products are
    often bought in different orders (the machine now, the descaler next month), which
    per-order baskets would miss. Customers who never bought get no basket and no offer.

Rules
    mlxtend's FP-growth over a sparse one-hot matrix of the products frequent enough to
    matter (in at least `MIN_SUPPORT` of baskets and `MIN_SUPPORT_COUNT` customers), with
    itemsets of at most three products, then mlxtend's `association_rules` for support,
    confidence and lift. Kept: rules with one or two products on the left and one on the
    right, confidence >= `MIN_CONFIDENCE` and lift >= `MIN_LIFT` (so a product everyone
    buys anyway is not "recommended"). With more than `MAX_MINING_BASKETS` customers the
    rules are mined on a seeded random sample of that many histories: support and
    confidence are then estimates (about +-1 percentage point), and the run records the
    sample size. The recommendations are still made for every customer.

Per customer
    A rule fires for a customer who has all its left-hand products and not its right-hand
    one. Which rules fire for whom is one sparse product (histories x rule antecedents),
    done in chunks of customers, never a loop over products or product pairs. Each product
    on offer is scored by the best rule that fires for it: confidence x lift x (1 + the
    product's margin), so a strong rule comes first and, between equally strong ones, the
    product the company keeps more of. Up to `OFFERS_PER_CUSTOMER` products per customer,
    each with its reason: "78% of customers who bought A and B also bought C".
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from crmbot.analytics.base import RunContext
from crmbot.analytics.graph import purchase_pairs

logger = logging.getLogger(__name__)

STAGE = "recommend"

MIN_SUPPORT = 0.005
MIN_SUPPORT_COUNT = 10
MIN_CONFIDENCE = 0.2
MIN_LIFT = 1.2
MAX_ANTECEDENTS = 2
# Rules carried into scoring, strongest first; bounds the firing product's width.
MAX_RULES = 5_000
# FP-growth's tree is built in Python, one basket at a time; past this many histories a
# seeded sample gives the same rules (at 0.5% support, 1,000+ customers back each one).
MAX_MINING_BASKETS = 200_000
# mlxtend densifies the basket frame to count item supports; this caps its width.
MAX_MINED_PRODUCTS = 1_000
OFFERS_PER_CUSTOMER = 3
RULES_RECORDED = 20
CUSTOMERS_PER_CHUNK = 20_000


@dataclass
class Histories:
    """Who bought what: a boolean customers x products CSR matrix and its labels."""

    matrix: sp.csr_array  # rows: positions in ctx.scores.index; columns: `products`
    products: np.ndarray  # product_pk per column

    @property
    def buyers(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.matrix.indptr) > 0)


@dataclass
class Rules:
    """Association rules, strongest first; antecedents as column positions of Histories."""

    antecedents: list[tuple[int, ...]]
    consequent: np.ndarray
    support: np.ndarray
    confidence: np.ndarray
    lift: np.ndarray
    baskets: int  # how many histories the rules were mined on

    def __len__(self) -> int:
        return len(self.consequent)


def purchase_histories(ctx: RunContext) -> Histories:
    customers = pd.Index(ctx.scores.index)
    pairs = purchase_pairs(ctx.data, customers)
    products = np.unique(pairs["product_pk"].to_numpy())
    column = np.searchsorted(products, pairs["product_pk"].to_numpy())
    row = pairs["customer"].to_numpy()
    matrix = sp.csr_array(
        (np.ones(len(row), dtype=bool), (row, column)), shape=(len(customers), len(products))
    )
    matrix.sort_indices()
    return Histories(matrix=matrix, products=products)


def mine_rules(histories: Histories, *, seed: int) -> Rules:
    """Frequent itemsets by FP-growth, then rules with 1-2 antecedents and 1 consequent."""
    from mlxtend.frequent_patterns import association_rules, fpgrowth

    baskets = histories.matrix[histories.buyers]
    if baskets.shape[0] > MAX_MINING_BASKETS:
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(baskets.shape[0], MAX_MINING_BASKETS, replace=False))
        baskets = baskets[sample]
    count = baskets.shape[0]
    min_support = max(MIN_SUPPORT, MIN_SUPPORT_COUNT / max(count, 1))
    item_counts = np.asarray(baskets.sum(axis=0)).ravel()
    frequent = np.flatnonzero(item_counts >= min_support * count)
    frequent = frequent[np.argsort(-item_counts[frequent], kind="stable")][:MAX_MINED_PRODUCTS]
    frequent = np.sort(frequent)
    if count == 0 or len(frequent) < 2:
        return _no_rules(count)
    onehot = pd.DataFrame.sparse.from_spmatrix(  # type: ignore[attr-defined]
        sp.csc_matrix(baskets[:, frequent]), columns=range(len(frequent))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        itemsets = fpgrowth(onehot, min_support=min_support, max_len=MAX_ANTECEDENTS + 1)
    if (itemsets["itemsets"].map(len) < 2).all():
        return _no_rules(count)
    found = association_rules(
        itemsets, num_itemsets=count, metric="confidence", min_threshold=MIN_CONFIDENCE
    )
    found = found[(found["consequents"].map(len) == 1) & (found["lift"] >= MIN_LIFT)]
    if found.empty:
        return _no_rules(count)
    found = found.assign(
        strength=found["confidence"] * found["lift"],
        left=found["antecedents"].map(lambda items: tuple(sorted(frequent[list(items)].tolist()))),
        right=found["consequents"].map(lambda items: int(frequent[next(iter(items))])),
    )
    # Strongest first; ties by support, then by the products' columns so runs agree.
    found = found.sort_values(
        ["strength", "support", "left", "right"], ascending=[False, False, True, True]
    ).head(MAX_RULES)
    return Rules(
        antecedents=found["left"].tolist(),
        consequent=found["right"].to_numpy(dtype=np.int64),
        support=found["support"].to_numpy(dtype=float),
        confidence=found["confidence"].to_numpy(dtype=float),
        lift=found["lift"].to_numpy(dtype=float),
        baskets=count,
    )


def _no_rules(baskets: int) -> Rules:
    empty = np.zeros(0)
    return Rules([], np.zeros(0, dtype=np.int64), empty, empty, empty, baskets)


def product_margins(ctx: RunContext, products: np.ndarray) -> np.ndarray:
    """Margin share (0..1) per product; unknown margins count as the catalogue's median."""
    catalogue = ctx.data.products
    if "margin" not in catalogue.columns:
        return np.zeros(len(products))
    known = pd.to_numeric(catalogue["margin"], errors="coerce")
    fallback = float(known.median()) if known.notna().any() else 0.0
    margin = known.reindex(products).fillna(fallback).clip(0.0, 1.0)
    return margin.to_numpy(dtype=float)


def best_offers(
    histories: Histories, rules: Rules, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(customer position, rule) of each customer's offers, best first within a customer.

    A customer's offers are distinct products they do not have, each by the best-scoring
    rule that fires for them, at most `OFFERS_PER_CUSTOMER`.
    """
    product_count = len(histories.products)
    antecedents = sp.csr_array(
        (
            np.ones(sum(len(a) for a in rules.antecedents)),
            (
                np.repeat(np.arange(len(rules)), [len(a) for a in rules.antecedents]),
                np.concatenate([np.asarray(a, dtype=np.int64) for a in rules.antecedents]),
            ),
        ),
        shape=(len(rules), product_count),
    )
    needed = np.array([len(a) for a in rules.antecedents])
    by_product = antecedents.T.tocsr()
    customers_out, rules_out = [], []
    matrix = histories.matrix
    for start in range(0, matrix.shape[0], CUSTOMERS_PER_CHUNK):
        chunk = sp.csr_array(matrix[start : start + CUSTOMERS_PER_CHUNK], dtype=np.float32)
        # held[c, r]: how many of rule r's antecedents customer c has.
        held = (chunk @ by_product).tocoo()
        fires = held.data >= needed[held.col] - 0.5
        customer = held.row[fires].astype(np.int64)
        rule = held.col[fires].astype(np.int64)
        offered = rules.consequent[rule]
        owned_keys = (
            np.repeat(np.arange(chunk.shape[0]), np.diff(chunk.indptr)) * product_count
            + chunk.indices
        )
        wanted_keys = customer * product_count + offered
        at = np.searchsorted(owned_keys, wanted_keys)
        owned = (at < len(owned_keys)) & (
            owned_keys[np.minimum(at, max(len(owned_keys) - 1, 0))] == wanted_keys
        )
        customer, rule, offered = customer[~owned], rule[~owned], offered[~owned]
        # Best first within each customer; between equal scores the stronger rule.
        order = np.lexsort((rule, -score[rule], customer))
        customer, rule, offered = customer[order], rule[order], offered[order]
        first_for_product = ~pd.DataFrame({"c": customer, "p": offered}).duplicated().to_numpy()
        customer, rule = customer[first_for_product], rule[first_for_product]
        group_start = np.flatnonzero(np.r_[True, customer[1:] != customer[:-1]])
        position = np.arange(len(customer)) - np.repeat(
            group_start, np.diff(np.r_[group_start, len(customer)])
        )
        keep = position < OFFERS_PER_CUSTOMER
        customers_out.append(customer[keep] + start)
        rules_out.append(rule[keep])
    if not customers_out:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(customers_out), np.concatenate(rules_out)


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


def run(ctx: RunContext) -> None:
    """Fill `next_products` of `ctx.scores` (see the module docstring)."""
    settings_record: dict[str, Any] = {
        "baskets": "customer purchase histories (every product a customer bought up to as_of)",
        "min_support": MIN_SUPPORT,
        "min_support_customers": MIN_SUPPORT_COUNT,
        "min_confidence": MIN_CONFIDENCE,
        "min_lift": MIN_LIFT,
        "max_antecedents": MAX_ANTECEDENTS,
        "score": "confidence x lift x (1 + margin)",
    }
    ctx.scores["next_products"] = pd.Series(
        [None] * len(ctx.scores), index=ctx.scores.index, dtype=object
    )
    histories = purchase_histories(ctx)
    buyers = histories.buyers
    skipped = None
    rules = _no_rules(0)
    if ctx.data.lines.empty:
        skipped = "there are no order lines up to as_of"
    elif len(buyers) == 0:
        skipped = "no current customer has an order line up to as_of"
    else:
        rules = mine_rules(histories, seed=ctx.settings.random_seed)
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
        margin = product_margins(ctx, histories.products)
        score = rules.confidence * rules.lift * (1.0 + margin[rules.consequent])
        customer, rule = best_offers(histories, rules, score)
        offers: list[list[dict[str, Any]] | None] = [None] * len(ctx.scores)
        for position, r in zip(customer.tolist(), rule.tolist(), strict=True):
            record = records[r]
            offer = {
                "product_id": record["consequent_id"],
                "name": record["consequent"],
                "confidence": record["confidence"],
                "lift": record["lift"],
                "support": record["support"],
                "reason": record["reason"],
            }
            held = offers[position]
            if held is None:
                offers[position] = [offer]
            else:
                held.append(offer)
        ctx.scores["next_products"] = pd.Series(offers, index=ctx.scores.index, dtype=object)
        offers_made = len(customer)
        customers_with_offers = len(np.unique(customer))
    else:
        logger.info("next best product not computed: %s", skipped)

    ctx.params[STAGE] = {
        **settings_record,
        "customers_with_history": len(buyers),
        "mined_on_customers": rules.baskets,
        "products": len(histories.products),
        "skipped_because": skipped,
        "rules": records[:RULES_RECORDED],
    }
    ctx.metrics[STAGE] = {
        "rules": len(rules),
        "customers_with_offers": customers_with_offers,
        "offers": offers_made,
        "coverage": round(customers_with_offers / len(buyers), 4) if len(buyers) else 0.0,
    }
