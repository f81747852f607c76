"""Orders, their lines, and refunds, generated without a Python loop per order.

Purchase times are a thinned Poisson process per customer: candidates at the customer's
peak rate, kept with probability season(t) x decline(t) / peak — Q4 is the busy season and
churners buy less and less before they stop. Each order's lines are picked from product
popularity and the customer's favourite category; "starter kit" orders plant the
affinity rules of `catalog.AFFINITY_RULES`, and any order holding a rule's antecedents gets
its consequent with the rule's confidence. Quantities scale the basket towards the order's
Gamma-Gamma spend, so the order amount is always the sum of its lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crmbot.demo import catalog
from crmbot.demo.lifecycle import SPEND_P, Lifecycles

# Order volume by calendar month (Jan..Dec): a Q4 peak, a summer lull.
MONTH_SEASONALITY = np.array([0.85, 0.8, 0.9, 0.95, 0.95, 0.9, 0.8, 0.85, 1.0, 1.15, 1.45, 1.7])
KIT_SHARE_FIRST_ORDER = 0.22
KIT_SHARE_LATER = 0.04
EXTRA_LINES_MEAN = 0.9
MAX_LINES = 6
MAX_QUANTITY = 60
FAVOURITE_CATEGORY_SHARE = 0.45
REFUND_SHARE = 0.012
REFUND_SHARE_DECLINING = 0.05
DISCOUNTS = np.array([1.0, 0.95, 0.9, 0.85])
DISCOUNT_WEIGHTS = np.array([0.8, 0.1, 0.07, 0.03])
OPENING_HOURS = (8.0, 20.0)


@dataclass
class Catalog:
    product_id: np.ndarray
    name: np.ndarray
    category: np.ndarray
    price: np.ndarray
    margin: np.ndarray
    popularity: np.ndarray  # normalised

    @classmethod
    def standard(cls) -> Catalog:
        ids, names, categories, prices, margins, weights = zip(*catalog.PRODUCTS, strict=True)
        popularity = np.array(weights, dtype=float)
        return cls(
            product_id=np.array(ids),
            name=np.array(names),
            category=np.array(categories),
            price=np.array(prices, dtype=float),
            margin=np.array(margins, dtype=float),
            popularity=popularity / popularity.sum(),
        )

    def index_of(self, product_ids: tuple[str, ...] | list[str]) -> np.ndarray:
        lookup = {pid: i for i, pid in enumerate(self.product_id)}
        return np.array([lookup[pid] for pid in product_ids], dtype=np.int64)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "product_id": self.product_id,
                "name": self.name,
                "category": self.category,
                "price": self.price,
                "margin": self.margin,
            }
        )


@dataclass
class Sales:
    """Orders (refunds included, negative amounts) and lines, as arrays."""

    order_customer: np.ndarray  # customer position
    order_t: np.ndarray  # days since the period start, sorted ascending
    order_amount: np.ndarray
    line_order: np.ndarray  # order position
    line_product: np.ndarray  # catalog position
    line_quantity: np.ndarray
    line_unit_price: np.ndarray

    @property
    def is_refund(self) -> np.ndarray:
        return self.order_amount < 0


def season_by_day(start: np.datetime64, period_days: int) -> np.ndarray:
    days = start + np.arange(period_days + 1).astype("timedelta64[D]")
    month = days.astype("datetime64[M]").astype(int) % 12
    return MONTH_SEASONALITY[month]


def make_sales(
    rng: np.random.Generator,
    life: Lifecycles,
    products: Catalog,
    *,
    start: np.datetime64,
    period_days: float,
) -> Sales:
    season = season_by_day(start, int(np.ceil(period_days)))
    peak = float(MONTH_SEASONALITY.max())
    customers = np.arange(len(life.first_t))
    buyers = customers[life.first_t < period_days]
    active_end = np.minimum(life.churn_t[buyers], period_days)
    active_len = np.maximum(active_end - life.first_t[buyers], 0.0)

    # Repeat purchases: candidates at the peak rate over the active window, then thinned.
    candidates = rng.poisson(life.rate[buyers] * peak * active_len)
    cand_customer = np.repeat(buyers, candidates)
    cand_t = np.repeat(life.first_t[buyers], candidates) + rng.random(candidates.sum()) * np.repeat(
        active_len, candidates
    )
    keep_p = (
        season[cand_t.astype(np.int64)] / peak * life.decline_factor(cand_customer, cand_t, 0.25)
    )
    kept = rng.random(len(cand_t)) < keep_p

    order_customer = np.concatenate([buyers, cand_customer[kept]])
    order_day = np.concatenate([life.first_t[buyers], cand_t[kept]])
    is_first = np.zeros(len(order_customer), dtype=bool)
    is_first[: len(buyers)] = True
    # Orders happen in opening hours; shop days are whole days plus a time of day.
    order_t = np.floor(order_day) + rng.uniform(*OPENING_HOURS, size=len(order_day)) / 24.0
    inside = order_t < period_days
    order_customer, order_t, is_first = order_customer[inside], order_t[inside], is_first[inside]

    spend_target = rng.gamma(SPEND_P, 1.0 / life.spend_nu[order_customer])
    spend_target *= life.decline_factor(order_customer, order_t, 0.5)

    favourite = _favourite_categories(rng, products, len(life.first_t))
    line_order, line_product = _basket_lines(
        rng, products, order_customer, order_t, is_first, favourite[order_customer]
    )
    quantity, unit_price = _quantities(rng, products, line_order, line_product, spend_target)
    amount = np.round(
        np.bincount(line_order, weights=quantity * unit_price, minlength=len(order_t)), 2
    )

    refund_customer, refund_t, refund_amount = _refunds(
        rng, life, order_customer, order_t, amount, period_days
    )
    all_customer = np.concatenate([order_customer, refund_customer])
    all_t = np.concatenate([order_t, refund_t])
    all_amount = np.concatenate([amount, refund_amount])
    ordering = np.lexsort((all_customer, all_t))
    # Lines point at order positions; renumber them into the time-sorted order.
    new_position = np.empty(len(ordering), dtype=np.int64)
    new_position[ordering] = np.arange(len(ordering))
    line_order = new_position[line_order]
    line_sort = np.lexsort((line_product, line_order))
    return Sales(
        order_customer=all_customer[ordering],
        order_t=all_t[ordering],
        order_amount=all_amount[ordering],
        line_order=line_order[line_sort],
        line_product=line_product[line_sort],
        line_quantity=quantity[line_sort],
        line_unit_price=unit_price[line_sort],
    )


def _favourite_categories(rng: np.random.Generator, products: Catalog, count: int) -> np.ndarray:
    categories, inverse = np.unique(products.category, return_inverse=True)
    weight = np.bincount(inverse, weights=products.popularity)
    return rng.choice(len(categories), size=count, p=weight / weight.sum())


def _basket_lines(
    rng: np.random.Generator,
    products: Catalog,
    order_customer: np.ndarray,
    order_t: np.ndarray,
    is_first: np.ndarray,
    favourite: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    orders = len(order_customer)
    rules = catalog.AFFINITY_RULES
    kit_p = np.where(is_first, KIT_SHARE_FIRST_ORDER, KIT_SHARE_LATER)
    is_kit = rng.random(orders) < kit_p
    kit_weights = np.array([rule.kit_weight for rule in rules])
    kit_rule = rng.choice(len(rules), size=orders, p=kit_weights / kit_weights.sum())

    # Random picks: a kit order adds a few extras, any other order has one or more lines.
    extra = rng.poisson(np.where(is_kit, 0.5, EXTRA_LINES_MEAN))
    random_lines = np.minimum(np.where(is_kit, 0, 1) + extra, MAX_LINES)
    pick_order = np.repeat(np.arange(orders), random_lines)
    pick_product = rng.choice(len(products.product_id), size=len(pick_order), p=products.popularity)
    _, category_index = np.unique(products.category, return_inverse=True)
    from_favourite = rng.random(len(pick_order)) < FAVOURITE_CATEGORY_SHARE
    for category in range(category_index.max() + 1):
        members = np.flatnonzero(category_index == category)
        mask = from_favourite & (favourite[pick_order] == category)
        weights = products.popularity[members] / products.popularity[members].sum()
        pick_product[mask] = rng.choice(members, size=int(mask.sum()), p=weights)

    kit_orders_parts = [pick_order]
    kit_products_parts = [pick_product]
    for number, rule in enumerate(rules):
        seeded = np.flatnonzero(is_kit & (kit_rule == number))
        for product in products.index_of(rule.antecedents):
            kit_orders_parts.append(seeded)
            kit_products_parts.append(np.full(len(seeded), product))
    line_order = np.concatenate(kit_orders_parts)
    line_product = np.concatenate(kit_products_parts)
    line_order, line_product = _distinct(line_order, line_product, len(products.product_id))

    # The planted affinities: whatever put the antecedents into an order, the consequent
    # follows with the rule's confidence.
    basket = np.zeros(orders, dtype=np.int64)
    np.bitwise_or.at(basket, line_order, np.left_shift(1, line_product))
    added_orders, added_products = [line_order], [line_product]
    for rule in rules:
        antecedent_bits = int(np.bitwise_or.reduce(1 << products.index_of(rule.antecedents)))
        consequent = int(products.index_of((rule.consequent,))[0])
        holds = (basket & antecedent_bits) == antecedent_bits
        lacks = (basket & (1 << consequent)) == 0
        gets = np.flatnonzero(holds & lacks & (rng.random(orders) < rule.confidence))
        added_orders.append(gets)
        added_products.append(np.full(len(gets), consequent))
        basket[gets] |= 1 << consequent
    line_order, line_product = np.concatenate(added_orders), np.concatenate(added_products)
    return _customer_affinities(rng, products, order_customer, order_t, line_order, line_product)


def _customer_affinities(
    rng: np.random.Generator,
    products: Catalog,
    order_customer: np.ndarray,
    order_t: np.ndarray,
    line_order: np.ndarray,
    line_product: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The rules hold over customers' histories too: a customer who has come to own every
    antecedent (over any number of orders) buys the consequent with the rule's confidence,
    in the order that completed the set."""
    lines = pd.DataFrame(
        {
            "customer": order_customer[line_order],
            "product": line_product,
            "t": order_t[line_order],
            "order": line_order,
        }
    )
    added_orders, added_products = [line_order], [line_product]
    for rule in catalog.AFFINITY_RULES:
        antecedents = products.index_of(rule.antecedents)
        consequent = int(products.index_of((rule.consequent,))[0])
        first_buys = (
            lines[lines["product"].isin(antecedents)]
            .sort_values(["t", "order"], kind="stable")
            .drop_duplicates(["customer", "product"])
        )
        owns_all = first_buys.groupby("customer")["product"].transform("size") == len(antecedents)
        completing = first_buys[owns_all].groupby("customer")["order"].last()
        has_consequent = lines.loc[lines["product"] == consequent, "customer"].unique()
        completing = completing[~completing.index.isin(has_consequent)]
        gets = completing.to_numpy()[rng.random(len(completing)) < rule.confidence]
        added_orders.append(gets.astype(np.int64))
        added_products.append(np.full(len(gets), consequent))
    return np.concatenate(added_orders), np.concatenate(added_products)


def _distinct(
    line_order: np.ndarray, line_product: np.ndarray, product_count: int
) -> tuple[np.ndarray, np.ndarray]:
    """One line per (order, product): a product picked twice becomes one line."""
    key = line_order * product_count + line_product
    _, first = np.unique(key, return_index=True)
    first.sort()
    return line_order[first], line_product[first]


def _quantities(
    rng: np.random.Generator,
    products: Catalog,
    line_order: np.ndarray,
    line_product: np.ndarray,
    spend_target: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    orders = len(spend_target)
    discount = rng.choice(DISCOUNTS, size=len(line_order), p=DISCOUNT_WEIGHTS)
    unit_price = np.round(products.price[line_product] * discount, 2)
    one_of_each = np.bincount(line_order, weights=unit_price, minlength=orders)
    headroom = np.maximum(spend_target - one_of_each, 0.0)
    # Big orders buy more of the cheap things (beans, filters), not five espresso machines.
    consumable = products.price[line_product] < 100
    share_weight = rng.exponential(1.0, size=len(line_order)) * np.where(consumable, 1.0, 0.02)
    weight_total = np.bincount(line_order, weights=share_weight, minlength=orders)
    share = share_weight / np.maximum(weight_total[line_order], 1e-12)
    extra_units = np.floor(headroom[line_order] * share / unit_price)
    quantity = np.minimum(1 + extra_units, MAX_QUANTITY).astype(np.int64)
    return quantity, unit_price


def _refunds(
    rng: np.random.Generator,
    life: Lifecycles,
    order_customer: np.ndarray,
    order_t: np.ndarray,
    amount: np.ndarray,
    period_days: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    declining = life.decline_factor(order_customer, order_t, 0.0) < 1.0
    share = np.where(declining, REFUND_SHARE_DECLINING, REFUND_SHARE)
    refunded = np.flatnonzero(rng.random(len(order_t)) < share)
    refund_t = order_t[refunded] + rng.uniform(2.0, 20.0, size=len(refunded))
    customer = order_customer[refunded]
    # A refund is money going back, not a purchase: it comes before the customer stops.
    inside = refund_t < np.minimum(life.churn_t[customer], period_days)
    refunded, refund_t, customer = refunded[inside], refund_t[inside], customer[inside]
    full = rng.random(len(refunded)) < 0.5
    part = np.where(full, 1.0, rng.uniform(0.2, 0.6, size=len(refunded)))
    return customer, refund_t, -np.round(amount[refunded] * part, 2)
