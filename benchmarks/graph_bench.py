"""How long the influence (graph) and next-best-product (recommend) stages take at scale.

    python -m benchmarks.graph_bench                       # 1M customers, both stages
    python -m benchmarks.graph_bench --customers 100000 --stages recommend

Builds a synthetic company straight into a `TrainingData` (no database: this measures the
stages, not the import): customers with a Poisson number of orders of a few lines each
over a catalogue with skewed popularity and a few planted product affinities, and a
referral network where a small share of customers refer others (a heavy-tailed number
each, a few true hubs). Prints the seconds per stage, peak memory, and what the stages
found, including whether the planted hubs and affinities came out on top.
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import date, datetime

import numpy as np
import pandas as pd

from crmbot.analytics import graph, recommend
from crmbot.analytics.base import RunContext, TrainingData
from crmbot.core.config import Settings
from crmbot.reply.reasons import influence_reason

AS_OF = date(2026, 6, 30)
START = datetime(2023, 7, 1)
HUBS = 20
HUB_REFERRALS = 120
# (antecedents, consequent, probability the consequent follows)
AFFINITIES = [((20, 21), 400, 0.8), ((30,), 401, 0.7), ((40, 41), 402, 0.75)]


def make_company(
    customers: int, lines_per_customer: float, products: int, seed: int
) -> tuple[TrainingData, np.ndarray]:
    rng = np.random.default_rng(seed)
    days = (datetime.combine(AS_OF, datetime.min.time()) - START).days
    pks = np.arange(1, customers + 1)
    customer_frame = pd.DataFrame(
        {
            "customer_id": pd.Series(pks).map("C{:07d}".format),
            "name": None,
            "company": None,
            "region": rng.choice(["EMEA", "NA", "APAC", "LATAM"], customers),
            "owner": None,
            "signed_up_at": pd.Timestamp(START),
        },
        index=pd.Index(pks, name="customer_pk"),
    )
    # Orders: Poisson per customer (some never buy), each with a few lines.
    lines_per_order = 2.5
    order_counts = rng.poisson(lines_per_customer / lines_per_order, customers)
    order_customer = np.repeat(pks, order_counts)
    order_count = len(order_customer)
    order_day = rng.integers(0, days, order_count)
    order_pk = np.arange(1, order_count + 1)
    line_counts = 1 + rng.poisson(lines_per_order - 1, order_count)
    line_order = np.repeat(order_pk, line_counts)
    popularity = 1.0 / np.arange(1, products + 1) ** 0.9
    popularity[[a[1] for a in AFFINITIES]] *= 0.05  # consequents are rare on their own
    popularity /= popularity.sum()
    line_product = rng.choice(products, len(line_order), p=popularity)
    # Planted affinities: "kit" orders (1% per affinity) hold its antecedents, and orders
    # holding the antecedents get the consequent as an extra line.
    for antecedents, _consequent, _probability in AFFINITIES:
        kits = rng.choice(order_pk, order_count // 100, replace=False)
        line_order = np.concatenate([line_order, np.repeat(kits, len(antecedents))])
        line_product = np.concatenate([line_product, np.tile(antecedents, len(kits))])
    extra_orders, extra_products = [], []
    for antecedents, consequent, probability in AFFINITIES:
        chosen = np.unique(line_order[line_product == antecedents[0]])
        for other in antecedents[1:]:
            chosen = np.intersect1d(chosen, line_order[line_product == other])
        chosen = chosen[rng.random(len(chosen)) < probability]
        extra_orders.append(chosen)
        extra_products.append(np.full(len(chosen), consequent))
    line_order = np.concatenate([line_order, *extra_orders])
    line_product = np.concatenate([line_product, *extra_products])
    lines = pd.DataFrame({"order_pk": line_order, "product_pk": line_product + 1})
    lines = lines.drop_duplicates(["order_pk", "product_pk"])
    lines["quantity"] = 1.0
    lines["unit_price"] = 20.0
    amount = np.bincount(line_order, minlength=order_count + 1)[1:] * 20.0
    orders = pd.DataFrame(
        {
            "order_pk": order_pk,
            "customer_pk": order_customer,
            "ordered_at": pd.Timestamp(START) + pd.to_timedelta(order_day, unit="D"),
            "amount": amount,
        }
    )
    # Referrals: ~12% of customers were referred, by 2% of customers (a log-normal number
    # each, typically a handful); the planted hubs each brought in HUB_REFERRALS.
    referred = rng.choice(pks, int(customers * 0.12), replace=False)
    pool = rng.choice(pks, max(customers // 50, HUBS + 1), replace=False)
    hubs, others = pool[:HUBS], pool[HUBS:]
    weight = rng.lognormal(0.0, 0.8, len(others))
    referrer = rng.choice(others, len(referred), p=weight / weight.sum())
    take = rng.choice(len(referred), HUBS * HUB_REFERRALS, replace=False)
    referrer[take] = np.repeat(hubs, HUB_REFERRALS)
    keep = referrer != referred
    referral_day = rng.integers(0, days, keep.sum())
    referrals = pd.DataFrame(
        {
            "referrer_pk": referrer[keep],
            "referred_pk": referred[keep],
            "referred_at": pd.Timestamp(START) + pd.to_timedelta(referral_day, unit="D"),
        }
    )
    product_frame = pd.DataFrame(
        {
            "product_id": [f"P{i:05d}" for i in range(1, products + 1)],
            "name": [f"Product {i}" for i in range(1, products + 1)],
            "category": None,
            "price": 20.0,
            "margin": rng.uniform(0.1, 0.6, products),
        },
        index=pd.Index(np.arange(1, products + 1), name="product_pk"),
    )
    data = TrainingData(
        as_of=AS_OF,
        customers=customer_frame,
        orders=orders,
        lines=lines,
        products=product_frame,
        tickets=pd.DataFrame(columns=["customer_pk", "opened_at", "closed_at", "csat"]),
        feedback=pd.DataFrame(columns=["customer_pk", "submitted_at", "nps", "csat"]),
        referrals=referrals,
    )
    return data, hubs


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--lines-per-customer", type=float, default=10.0)
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--stages", default="graph,recommend")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    t0 = time.perf_counter()
    data, hubs = make_company(args.customers, args.lines_per_customer, args.products, args.seed)
    print(
        f"synthetic company: {len(data.customers):,} customers, {len(data.orders):,} orders, "
        f"{len(data.lines):,} order lines, {len(data.referrals):,} referrals, "
        f"{args.products} products ({time.perf_counter() - t0:.1f} s to build)"
    )
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    ctx = RunContext.start(data, settings)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    for name in stages:
        module = {"graph": graph, "recommend": recommend}[name]
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        module.run(ctx)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        print(f"{name}: {seconds:.1f} s wall, {cpu:.1f} s CPU; metrics {ctx.metrics[name]}")
    if "graph" in stages:
        top = ctx.scores.sort_values("influence", ascending=False).head(HUBS)
        found = len(set(top.index) & set(hubs.tolist()))
        print(f"planted hubs among the top {HUBS} influencers: {found} of {HUBS}")
        best = ctx.scores.loc[top.index[0]].to_dict()
        print(f"top influencer: {influence_reason(best)}")
    if "recommend" in stages:
        rules = ctx.params["recommend"]["rules"]
        planted = {
            (tuple(f"P{a + 1:05d}" for a in antecedents), f"P{consequent + 1:05d}")
            for antecedents, consequent, _ in AFFINITIES
        }
        top_rules = {(tuple(r["antecedent_ids"]), r["consequent_id"]) for r in rules[:20]}
        print(f"planted affinities among the top 20 rules: {len(planted & top_rules)} of 3")
        for rule in rules[:3]:
            print(f"  rule: {rule['reason']} (lift {rule['lift']})")
    print(f"peak memory: {peak_memory_mb():,.0f} MB")


if __name__ == "__main__":
    main()
